package server

import (
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/warrenmq/warren/mqtt"
)

// CONNECT: TLS handshake, the first packet, authentication through the broker's users, the vhost,
// the session (client-id takeover, clean or resumed) and CONNACK.
//
// Logins are RabbitMQ's: a user name "vhost:user" names the vhost, otherwise it is
// MQTTOptions.Vhost; a client without a user name logs in as MQTTOptions.DefaultUser. A bad user
// name or password, or a vhost that does not exist, is CONNACK 4 (0x86 in MQTT 5), as RabbitMQ
// answers both; a user without access to the vhost is CONNACK 5 (0x87).

// connect runs the connection up to CONNACK; false: the connection is to be closed.
func (c *mqttConn) connect() bool {
	c.connectAt = time.Now()
	c.nc.SetDeadline(time.Now().Add(c.srv.opts.HandshakeTimeout))
	if tc := c.tlsConn(); tc != nil {
		if err := tc.Handshake(); err != nil {
			c.srv.tlsHandshakeFailures.Add(1)
			c.log.Debug("TLS handshake failed", "err", err)
			return false
		}
		st := tc.ConnectionState()
		c.tls = &st
	}
	p, err := c.readPacket()
	if err != nil {
		var me *mqtt.Error
		if errors.As(err, &me) && me.Type == mqtt.CONNECT {
			switch me.Code {
			case mqtt.UnsupportedProtocolVersion, mqtt.ClientIdentifierNotValid:
				// The client speaks MQTT: it is told why in the CONNACK of its level (3.1.1's for a
				// level this broker does not know).
				c.version = peekConnectLevel(c.rbuf[c.roff:])
				c.connack(false, me.Code, nil)
			}
		}
		if !errors.Is(err, io.EOF) {
			c.log.Info("MQTT connection refused before CONNECT", "err", err)
		}
		return false
	}
	cp, ok := p.(*mqtt.Connect)
	if !ok {
		c.log.Info("MQTT connection refused: first packet is not CONNECT", "type", p.Type())
		return false
	}
	c.version = cp.Version
	c.dec.Version = cp.Version
	c.dec.MaxPacketSize = c.srv.opts.MaxMessageSize + 64<<10 // the payload and the packet's fields
	if cp.Version == mqtt.V5 && cp.Properties.Has(mqtt.PropAuthMethod) {
		// Enhanced authentication (MQTT 5.0 section 4.12): no method is supported, so any
		// Authentication Method is answered with CONNACK 0x8C and the connection closed
		// [MQTT-4.12.0-1], before the user name and password are looked at.
		c.log.Info("MQTT connection refused: unsupported authentication method", "method", cp.Properties.AuthMethod)
		c.connack(false, mqtt.BadAuthenticationMethod, nil)
		return false
	}
	if code := c.login(cp); code != mqtt.Success {
		c.connack(false, code, nil)
		return false
	}
	if code := c.setClientID(cp); code != mqtt.Success {
		c.connack(false, code, nil)
		return false
	}
	c.keepAlive = time.Duration(cp.KeepAlive) * time.Second
	c.idleWait = c.keepAlive * 3 / 2
	c.recvMax = c.srv.opts.MQTT.Prefetch
	if cp.Version == mqtt.V5 {
		pr := &cp.Properties
		c.expiry = pr.SessionExpiry
		c.persistent = c.expiry > 0
		if pr.Has(mqtt.PropReceiveMaximum) {
			c.recvMax = int(pr.ReceiveMaximum)
		} else {
			c.recvMax = 65535
		}
		if pr.Has(mqtt.PropMaximumPacketSize) {
			c.maxOut = pr.MaximumPacketSize
		}
		if pr.Has(mqtt.PropTopicAliasMaximum) {
			c.aliasMax = pr.TopicAliasMaximum
		}
	} else {
		c.persistent = !cp.CleanStart
	}
	if cp.Will != nil {
		w := *cp.Will
		w.Payload = append([]byte(nil), w.Payload...)
		w.Properties.CorrelationData = append([]byte(nil), w.Properties.CorrelationData...)
		c.will = &w
		if code := c.checkWill(&w); code != mqtt.Success {
			c.connack(false, code, nil)
			return false
		}
	}

	c.takeOver()
	resume, err := c.startSession(cp.CleanStart)
	present := resume != [3]*queue{}
	if err == nil && c.takeQoS2(cp.CleanStart) {
		present = true
	}
	if err != nil {
		c.log.Warn("MQTT session could not start", "client_id", c.clientID, "err", err)
		c.connack(false, mqtt.ServerUnavailable, nil)
		c.will = nil // refused: the will was never in force
		c.teardown()
		return false
	}
	// Open from here: Shutdown, a takeover and the management API close it through out.
	c.open.Store(true)
	var props *mqtt.Properties
	if c.version == mqtt.V5 {
		props = c.connackProps(cp)
	}
	c.connack(present, mqtt.Success, props)
	c.nc.SetDeadline(time.Time{})
	c.resendPubrels()
	for qos, q := range resume {
		if q != nil {
			if err := c.consume(q, byte(qos)); err != nil {
				c.log.Warn("MQTT session queue could not be consumed", "queue", q.name, "err", err)
			}
		}
	}
	if c.isStopped() { // taken over or shut down while connecting
		c.teardown()
		return false
	}
	return true
}

// connackProps are the MQTT 5 CONNACK properties: what this broker does and does not do, and the
// client identifier it assigned.
func (c *mqttConn) connackProps(cp *mqtt.Connect) *mqtt.Properties {
	p := &mqtt.Properties{} // maximum QoS absent: 2
	p.SharedSubAvailable = 1
	p.Set(mqtt.PropSharedSubAvailable)
	p.SubscriptionIDAvailable = 1
	p.Set(mqtt.PropSubscriptionIDAvailable)
	p.TopicAliasMaximum = mqttTopicAliasMax
	p.Set(mqtt.PropTopicAliasMaximum)
	p.RetainAvailable = 1
	p.Set(mqtt.PropRetainAvailable)
	if cp.ClientID == "" {
		p.AssignedClientID = c.clientID
		p.Set(mqtt.PropAssignedClientID)
	}
	return p
}

// mqttTopicAliasMax is the number of topic aliases an MQTT 5 client may set.
const mqttTopicAliasMax = 64

// connack sends CONNACK straight to the socket (the write loop does not run yet). code is the
// MQTT 5 reason code; a 3.1/3.1.1 client gets the return code that says the same.
func (c *mqttConn) connack(present bool, code mqtt.ReasonCode, props *mqtt.Properties) {
	ack := &mqtt.Connack{SessionPresent: present && code == mqtt.Success, ReasonCode: code}
	v := c.version
	if v != mqtt.V5 {
		ack.ReasonCode = mqtt.ReasonCode(mqtt.ConnackReturnCode(code))
		if v != mqtt.V31 {
			v = mqtt.V311
		}
	}
	if props != nil {
		ack.Properties = *props
	}
	b, err := mqtt.Append(nil, ack, v)
	if err != nil {
		c.log.Error("encoding CONNACK", "err", err)
		return
	}
	if c.open.Load() {
		c.out.write(func(dst []byte) []byte { return append(dst, b...) })
		return
	}
	c.nc.Write(b)
}

// peekConnectLevel returns the protocol level of the CONNECT at the start of b (3.1.1 if it cannot
// be read or is not one this broker speaks).
func peekConnectLevel(b []byte) mqtt.Version {
	if len(b) < 2 {
		return mqtt.V311
	}
	i := 1
	for i < len(b) && i < 5 && b[i]&0x80 != 0 {
		i++
	}
	i++
	if i+2 > len(b) {
		return mqtt.V311
	}
	n := int(b[i])<<8 | int(b[i+1])
	i += 2 + n
	if i >= len(b) {
		return mqtt.V311
	}
	switch v := mqtt.Version(b[i]); v {
	case mqtt.V31, mqtt.V5:
		return v
	}
	return mqtt.V311
}

func (c *mqttConn) tlsConn() *tls.Conn {
	nc := c.nc
	if m, ok := nc.(*meteredConn); ok {
		nc = m.Conn
	}
	if web, tc := webConn(nc); web {
		return tc // wss://: the HTTP server did the handshake
	}
	tc, _ := nc.(*tls.Conn)
	return tc
}

// login authenticates the client and picks its vhost; it returns the reason code to refuse with,
// or Success.
func (c *mqttConn) login(cp *mqtt.Connect) mqtt.ReasonCode {
	o := &c.srv.opts.MQTT
	name, pass, vhost := o.DefaultUser, o.DefaultPass, o.Vhost
	if cp.HasUsername {
		name, pass = cp.Username, string(cp.Password)
		if vh, u, ok := strings.Cut(name, ":"); ok {
			vhost, name = vh, u
		}
	}
	fail := func(code mqtt.ReasonCode, reason string) mqtt.ReasonCode {
		c.srv.authAttempts.mqtt.record(false)
		if d := c.srv.logins.failed(c.nc.RemoteAddr(), name, "MQTT", reason); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-c.stopped:
			}
			t.Stop()
		}
		return code
	}
	u := c.srv.lookupUser(name)
	if u == nil || (cp.HasUsername && !cp.HasPassword) || !u.checkPassword(pass) {
		return fail(mqtt.BadUserNameOrPassword, "invalid credentials for user '"+name+"'")
	}
	if c.srv.loopback[u.name] && !isLoopback(c.nc.RemoteAddr()) {
		return fail(mqtt.BadUserNameOrPassword, "user '"+name+"' can only connect via localhost")
	}
	v := c.srv.vhost(vhost)
	if v == nil {
		return fail(mqtt.BadUserNameOrPassword, "vhost '"+vhost+"' not found")
	}
	c.srv.authAttempts.mqtt.record(true)
	if !c.srv.hasVhostAccess(u.name, v.name) {
		c.log.Warn("MQTT login refused: no access to the vhost", "user", u.name, "vhost", v.name)
		return mqtt.NotAuthorized
	}
	// The vhost's and the user's max-connections count MQTT connections too, as RabbitMQ's.
	if err := c.srv.checkConnectionLimit(v, u.name); err != nil {
		c.log.Warn("MQTT login refused", "err", err)
		return mqtt.QuotaExceeded
	}
	if err := c.srv.checkUserConnectionLimit(u.name); err != nil {
		c.log.Warn("MQTT login refused", "err", err)
		return mqtt.QuotaExceeded
	}
	c.user, c.vhost = u, v
	return mqtt.Success
}

// setClientID applies the rules for the client identifier: an empty one gets a generated name
// (3.1.1 with a clean session, MQTT 5; the codec refused the other cases); 3.1 allows at most 23
// characters.
func (c *mqttConn) setClientID(cp *mqtt.Connect) mqtt.ReasonCode {
	id := cp.ClientID
	if cp.Version == mqtt.V31 && len(id) > 23 {
		return mqtt.ClientIdentifierNotValid
	}
	if id == "" {
		id = "warren-" + randomName()
	}
	c.clientID = id
	c.origin = &id // its own string: a message that carries it does not keep the connection alive
	return mqtt.Success
}

// takeOver registers the connection as its client id's in the vhost; a connection that had it
// is closed (session taken over), and its teardown awaited, before this one's session starts.
func (c *mqttConn) takeOver() {
	st := &c.srv.mqtt
	key := mqttClientKey{c.vhost.name, c.clientID}
	st.mu.Lock()
	if st.mu.clients == nil {
		st.mu.clients = map[mqttClientKey]*mqttConn{}
	}
	old := st.mu.clients[key]
	st.mu.clients[key] = c
	if t := st.mu.wills[key]; t != nil {
		// The client is back within its will delay: the will is not published.
		t.Stop()
		delete(st.mu.wills, key)
	}
	st.mu.Unlock()
	if old == nil {
		return
	}
	c.log.Info("MQTT client id taken over by a new connection", "client_id", c.clientID, "old", old.name)
	old.closeFromOutside(mqtt.SessionTakenOver)
	t := time.NewTimer(c.srv.opts.HandshakeTimeout)
	defer t.Stop()
	select {
	case <-old.torn:
	case <-t.C:
	case <-c.stopped:
	}
}

// release gives up the connection's client id, if it still holds it.
func (c *mqttConn) releaseClientID() {
	if c.vhost == nil || c.clientID == "" {
		return
	}
	st := &c.srv.mqtt
	key := mqttClientKey{c.vhost.name, c.clientID}
	st.mu.Lock()
	if st.mu.clients[key] == c {
		delete(st.mu.clients, key)
	}
	st.mu.Unlock()
}
