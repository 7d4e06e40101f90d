package server

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// Version is Warren's version, reported in connection.start and the management API.
var Version = "0.1.0-dev"

// serverProperties are sent in connection.start, with RabbitMQ's keys and capabilities so that
// clients enable the same extensions they use with RabbitMQ; cluster_name is the cluster's name
// (GET /api/cluster-name), as RabbitMQ sends it.
func (s *Server) serverProperties() amqp.Table {
	return amqp.Table{
		"capabilities": amqp.Table{
			"publisher_confirms":           true,
			"exchange_exchange_bindings":   true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"connection.blocked":           true,
			"consumer_priorities":          true,
			"authentication_failure_close": true,
			"per_consumer_qos":             true,
			"direct_reply_to":              true,
		},
		"cluster_name": s.ClusterName(),
		"copyright":    "Copyright (c) the Warren authors",
		"information":  "Licensed under the Apache License 2.0. Website: https://github.com/warrenmq/warren",
		"platform":     "Go",
		"product":      "Warren",
		"version":      Version,
	}
}

// handshake runs the protocol header, start/start-ok, tune/tune-ok and open/open-ok exchange,
// writing directly to the socket (the write loop is not running yet). It reports whether the
// connection is open; on false the caller closes the socket.
func (c *conn) handshake() bool {
	c.nc.SetDeadline(time.Now().Add(c.srv.opts.HandshakeTimeout))
	if tc := c.tlsConn(); tc != nil {
		// The TLS handshake runs within the connection's handshake deadline, on this goroutine.
		if err := tc.Handshake(); err != nil {
			c.srv.tlsHandshakeFailures.Add(1)
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				c.log.Debug("TLS handshake failed", "err", err)
			} else {
				c.log.Info("TLS handshake failed", "err", err)
			}
			return false
		}
		st := tc.ConnectionState()
		c.tls = &st
	}
	var hdr [8]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		// Like RabbitMQ: a peer that leaves before sending a whole header gets nothing back.
		if !errors.Is(err, io.EOF) {
			c.log.Debug("reading protocol header", "err", err)
		}
		return false
	}
	if hdr != amqp.ProtocolHeader {
		c.log.Info("unsupported protocol header; answering with ours", "header", hdr[:])
		c.nc.Write(amqp.ProtocolHeader[:])
		return false
	}

	if err := c.writeDirect(&amqp.ConnectionStart{
		VersionMajor:     0,
		VersionMinor:     9,
		ServerProperties: c.srv.serverProperties(),
		Mechanisms:       c.mechanisms(),
		Locales:          "en_US",
	}); err != nil {
		return false
	}

	// Until connection.open, RabbitMQ answers a protocol error by dropping the socket (it does not
	// trust the peer yet); so does Warren, logging why.
	m, ok := c.expect(amqp.ClassConnection, amqp.MethodConnectionStartOk, "connection.start_ok")
	if !ok {
		return false
	}
	startOk := m.(*amqp.ConnectionStartOk)
	c.clientProps = startOk.ClientProperties
	if caps, ok := startOk.ClientProperties["capabilities"].(amqp.Table); ok {
		c.caps.consumerCancelNotify, _ = caps["consumer_cancel_notify"].(bool)
		c.caps.authFailureClose, _ = caps["authentication_failure_close"].(bool)
		c.caps.connectionBlocked, _ = caps["connection.blocked"].(bool)
	}
	err := c.authenticate(startOk)
	if !c.direct { // a shovel's or federation link's in-process connection is not a login
		c.srv.authAttempts.amqp.record(err == nil)
	}
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
			// Logged (without the password) and rate limited per source address: past the
			// limit, the refusal waits (this goroutine sleeps; Shutdown wakes it).
			if d := c.srv.logins.failed(c.nc.RemoteAddr(), c.loginName, startOk.Mechanism, ae.Text); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.stopped:
				}
				t.Stop()
			}
			if c.caps.authFailureClose {
				c.closeDirect(amqp.Errorf(amqp.AccessRefused,
					"Login was refused using authentication mechanism %s. For details see the broker logfile.", startOk.Mechanism))
			}
			return false
		}
		c.log.Warn("handshake failed", "err", err)
		return false
	}

	heartbeat := uint16(c.srv.opts.Heartbeat / time.Second)
	if err := c.writeDirect(&amqp.ConnectionTune{
		ChannelMax: c.srv.opts.ChannelMax,
		FrameMax:   c.srv.opts.FrameMax,
		Heartbeat:  heartbeat,
	}); err != nil {
		return false
	}
	m, ok = c.expect(amqp.ClassConnection, amqp.MethodConnectionTuneOk, "connection.tune_ok")
	if !ok {
		return false
	}
	tuneOk := m.(*amqp.ConnectionTuneOk)
	if err := c.negotiate(tuneOk); err != nil {
		c.log.Warn("handshake failed", "err", err)
		return false
	}

	c.opening = true // from here on, errors are answered with connection.close
	m, ok = c.expect(amqp.ClassConnection, amqp.MethodConnectionOpen, "connection.open")
	if !ok {
		return false
	}
	open := m.(*amqp.ConnectionOpen)
	vh := c.srv.vhost(open.VirtualHost)
	if vh == nil {
		c.closeDirect(methodErr(amqp.Errorf(amqp.NotAllowed, "vhost %s not found", open.VirtualHost), open))
		return false
	}
	if err := c.srv.checkConnectionLimit(vh, c.user.name); err != nil {
		c.closeDirect(methodErr(asAMQPError(err), open))
		return false
	}
	if err := c.srv.checkUserConnectionLimit(c.user.name); err != nil {
		c.closeDirect(methodErr(asAMQPError(err), open))
		return false
	}
	if !c.user.direct && !c.srv.hasVhostAccess(c.user.name, vh.name) {
		c.closeDirect(methodErr(amqp.Errorf(amqp.NotAllowed, "access to vhost '%s' refused for user '%s'", vh.name, c.user.name), open))
		return false
	}
	c.vhost = vh
	// Open from here: Shutdown and the management API (DeleteVhost, DELETE connection) see the
	// connection and close it through its outbound buffer, which the write loop sends once it
	// starts. A vhost deleted since the lookup above is refused: either DeleteVhost saw this
	// connection open, or this check sees the vhost gone.
	c.open.Store(true)
	if c.srv.vhost(open.VirtualHost) != vh {
		c.closeDirect(methodErr(amqp.Errorf(amqp.NotAllowed, "vhost %s not found", open.VirtualHost), open))
		return false
	}
	if err := c.writeDirect(&amqp.ConnectionOpenOk{}); err != nil {
		return false
	}
	c.nc.SetDeadline(time.Time{})
	// From now on every socket read is bounded by two heartbeat intervals (see deadlineReader);
	// until here the handshake deadline applied.
	c.idleTimeout = 2 * c.heartbeat
	return true
}

// negotiate applies connection.tune-ok as RabbitMQ does: the client may lower frame_max and
// channel_max but not raise them (or ask for 0 = unlimited), nor go below the minimum frame size.
func (c *conn) negotiate(t *amqp.ConnectionTuneOk) *amqp.Error {
	o := c.srv.opts
	if t.FrameMax != 0 && t.FrameMax < amqp.FrameMinSize {
		return amqp.Errorf(amqp.NotAllowed, "negotiated frame_max = %d is lower than the minimum allowed value (%d)", t.FrameMax, amqp.FrameMinSize)
	}
	if t.FrameMax == 0 || t.FrameMax > o.FrameMax {
		return amqp.Errorf(amqp.NotAllowed, "negotiated frame_max = %d is higher than the maximum allowed value (%d)", t.FrameMax, o.FrameMax)
	}
	if t.ChannelMax == 0 || t.ChannelMax > o.ChannelMax {
		return amqp.Errorf(amqp.NotAllowed, "negotiated channel_max = %d is higher than the maximum allowed value (%d)", t.ChannelMax, o.ChannelMax)
	}
	c.frameMax = t.FrameMax
	c.channelMax = t.ChannelMax
	c.heartbeat = time.Duration(t.Heartbeat) * time.Second
	c.fr.SetFrameMax(c.frameMax)
	c.out.frameMax = c.frameMax
	return nil
}

// tlsConn returns the connection's TLS layer, or nil for a plain TCP connection.
func (c *conn) tlsConn() *tls.Conn {
	nc := c.nc
	if m, ok := nc.(*meteredConn); ok {
		nc = m.Conn
	}
	tc, _ := nc.(*tls.Conn)
	return tc
}

// mechanisms are the SASL mechanisms connection.start offers: EXTERNAL too on a TLS connection,
// first, as RabbitMQ with rabbitmq_auth_mechanism_ssl offers it (on every TLS connection, so that a
// client without a certificate is told so rather than finding no common mechanism).
func (c *conn) mechanisms() string {
	if c.direct {
		return "EXTERNAL"
	}
	if c.tls != nil {
		return "EXTERNAL AMQPLAIN PLAIN"
	}
	return "AMQPLAIN PLAIN"
}

// authenticate checks start-ok's credentials (PLAIN, AMQPLAIN, or EXTERNAL: the verified client
// certificate) and the loopback restriction. It records the name tried in c.loginName.
func (c *conn) authenticate(so *amqp.ConnectionStartOk) error {
	var username, password string
	switch so.Mechanism {
	case "EXTERNAL":
		if c.direct {
			c.loginName = directUser
			c.user, c.adm.mechanism = &user{name: directUser, direct: true}, "none"
			return nil
		}
		if c.tls == nil {
			return amqp.Errorf(amqp.CommandInvalid, "unknown authentication mechanism '%s'", so.Mechanism)
		}
		return c.authenticateExternal()
	case "PLAIN":
		// authzid NUL authcid NUL password
		parts := strings.SplitN(so.Response, "\x00", 3)
		if len(parts) != 3 {
			return amqp.Errorf(amqp.AccessRefused, "malformed PLAIN response")
		}
		username, password = parts[1], parts[2]
	case "AMQPLAIN":
		// A field table without its length prefix, with LOGIN and PASSWORD.
		b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(so.Response)), uint32(len(so.Response)))
		t, _, err := amqp.DecodeTable(append(b, so.Response...))
		if err != nil {
			return amqp.Errorf(amqp.AccessRefused, "malformed AMQPLAIN response: %v", err)
		}
		username, _ = t["LOGIN"].(string)
		password, _ = t["PASSWORD"].(string)
	default:
		return amqp.Errorf(amqp.CommandInvalid, "unknown authentication mechanism '%s'", so.Mechanism)
	}
	c.loginName = username
	u := c.srv.lookupUser(username)
	if u == nil || !u.checkPassword(password) {
		return amqp.Errorf(amqp.AccessRefused, "invalid credentials for user '%s'", username)
	}
	return c.loggedIn(u, so.Mechanism)
}

// authenticateExternal logs in as the user named by the client's verified certificate, without a
// password, as rabbitmq_auth_mechanism_ssl: the name is the subject's distinguished name or its
// common name (Options.SSLCertLoginFrom), and the user must exist.
func (c *conn) authenticateExternal() error {
	if len(c.tls.VerifiedChains) == 0 || len(c.tls.PeerCertificates) == 0 {
		return amqp.Errorf(amqp.AccessRefused, "connection peer presented no TLS (x.509) certificate")
	}
	name, err := certLoginName(c.tls.PeerCertificates[0], c.srv.opts.SSLCertLoginFrom)
	if err != nil {
		return amqp.Errorf(amqp.AccessRefused, "%v", err)
	}
	c.loginName = name
	u := c.srv.lookupUser(name)
	if u == nil {
		return amqp.Errorf(amqp.AccessRefused, "user '%s' - invalid credentials", name)
	}
	c.log.Debug("auth mechanism TLS extracted username from peer certificate", "user", name)
	return c.loggedIn(u, "EXTERNAL")
}

// loggedIn applies the loopback restriction to an authenticated user and records the login.
func (c *conn) loggedIn(u *user, mechanism string) error {
	if c.srv.loopback[u.name] && !isLoopback(c.nc.RemoteAddr()) {
		return amqp.Errorf(amqp.AccessRefused, "user '%s' can only connect via localhost", u.name)
	}
	c.user = u
	c.adm.mechanism = mechanism
	return nil
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	_, isUnix := a.(*net.UnixAddr)
	return isUnix
}

// expect reads the next method on channel 0 during the handshake (skipping heartbeats) and checks it
// is classID/methodID. On anything else it fails the handshake (see handshakeError) and reports false.
func (c *conn) expect(classID, methodID uint16, name string) (amqp.Method, bool) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var ae *amqp.Error
			if errors.As(err, &ae) {
				c.handshakeError(ae)
			}
			return nil, false
		}
		if f.Type == amqp.FrameHeartbeat {
			continue
		}
		if f.Type != amqp.FrameMethod || f.Channel != 0 {
			c.handshakeError(amqp.UnexpectedFrameError(f))
			return nil, false
		}
		m, err := amqp.DecodeMethod(f.Payload)
		if err != nil {
			c.handshakeError(asAMQPError(err))
			return nil, false
		}
		if m.ClassID() != classID || m.MethodID() != methodID {
			if _, isClose := m.(*amqp.ConnectionClose); isClose {
				c.writeDirect(&amqp.ConnectionCloseOk{})
				return nil, false
			}
			c.handshakeError(methodErr(amqp.Errorf(amqp.CommandInvalid, "expected '%s', got '%s'", name, m.Name()), m))
			return nil, false
		}
		return m, true
	}
}

// handshakeError fails the handshake: with connection.close once the client has reached
// connection.open, by dropping the socket before that (as RabbitMQ does).
func (c *conn) handshakeError(e *amqp.Error) {
	if c.opening {
		c.closeDirect(e)
		return
	}
	c.log.Warn("handshake failed", "code", e.Code, "text", e.Text)
}

// writeDirect writes one method frame on channel 0 straight to the socket (handshake only).
func (c *conn) writeDirect(m amqp.Method) error {
	b, err := amqp.AppendMethodFrame(nil, 0, m)
	if err != nil {
		return err
	}
	_, err = c.nc.Write(b)
	return err
}

// closeDirect sends connection.close during the handshake and waits briefly for close-ok.
func (c *conn) closeDirect(e *amqp.Error) {
	c.log.Debug("closing connection during handshake", "code", e.Code, "text", e.Text)
	if err := c.writeDirect(&amqp.ConnectionClose{
		ReplyCode: e.Code, ReplyText: truncate(e.Text, 255), FailingClassID: e.ClassID, FailingMethodID: e.MethodID,
	}); err != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(closeOkTimeout))
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		if f.Type == amqp.FrameMethod && f.Channel == 0 {
			if m, err := amqp.DecodeMethod(f.Payload); err == nil {
				if _, ok := m.(*amqp.ConnectionCloseOk); ok {
					return
				}
			}
		}
	}
}

// asAMQPError returns err as an *amqp.Error, or an INTERNAL_ERROR wrapping it.
func asAMQPError(err error) *amqp.Error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae
	}
	return amqp.Errorf(amqp.InternalError, "%v", err)
}
