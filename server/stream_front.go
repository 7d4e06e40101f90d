package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
	"github.com/warrenmq/warren/streamproto"
)

// The stream protocol front end: RabbitMQ's stream protocol (its stream plugin's
// PROTOCOL.adoc, port 5552) over the stream queue type (stream.go). The codec is streamproto;
// this file is the connection: handshake (peer properties, SASL PLAIN against the broker's
// users, tune, open with vhost access), stream create/delete/metadata/stats, publishers with
// confirms after the commit group's fsync and deduplication by publisher reference,
// subscriptions with credit delivered in osiris chunks, and server-side offset tracking.
//
// Goroutines: per connection a read loop (serve, owned by the server's WaitGroup) and a writer
// (owned by the read loop, which waits for it). Everything sent is appended to the connection's
// out buffer (c.out.mu) and written by the writer, never by the goroutine that produced it:
// confirms come from the committer's callbacks and chunks from the streams' reader goroutines
// (through streamSub.deliver), neither of which may block on a socket. The writer also cuts
// each subscription's pending entries into a chunk when the subscription has credit.
//
// Locks (server/doc.go): streamConn.subs -> streamSub.mu, streamConsumer.dmu (the stream's
// reader, in deliver) -> streamSub.mu; streamConn.out is a leaf. The writer kicks a stream's
// readers (s.mu) with none of them held.

// RabbitMQ's names of the stream listeners' protocols in /api/overview.
const (
	ProtocolStream    = "stream"
	ProtocolStreamTLS = "stream/ssl"
)

// Stream protocol defaults, RabbitMQ's: the frame_max and heartbeat the server offers in tune.
const (
	streamFrameMax  = 1048576
	streamHeartbeat = 60 * time.Second
	// A subscription's pending chunk is cut at this many bytes of entries.
	streamChunkBytes = 512 << 10
	// streamOutMax bounds the bytes waiting to be written before the read loop stops reading.
	streamOutMax = 8 << 20
)

// ServeStream accepts stream protocol connections on ln until Shutdown (listed as RabbitMQ's
// "stream" listener). It returns ErrServerClosed after Shutdown.
func (s *Server) ServeStream(ln net.Listener) error {
	return s.serve(ln, Listener{Protocol: ProtocolStream})
}

// ServeStreamTLS is ServeStream over TLS ("stream/ssl"), with the certificate files for the
// certificate-expiration health check as ServeTLS takes them.
func (s *Server) ServeStreamTLS(ln net.Listener, cfg *tls.Config, files TLSFiles) error {
	return s.serve(tls.NewListener(ln, cfg), Listener{Protocol: ProtocolStreamTLS, Files: files})
}

// closeStreamConns closes every stream connection's socket (Shutdown, after s.mu.closed is set:
// no connection is added after it).
func (s *Server) closeStreamConns() {
	s.mu.Lock()
	conns := make([]*streamConn, 0, len(s.mu.sconns))
	for c := range s.mu.sconns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
}

// streamAdvertised is the host and port metadata and open advertise for a listener on addr:
// Options.StreamAdvertisedHost/Port if set, else the listener's own IP (its host name if it
// listens on every address) and port. A TLS listener (isTLS) always advertises its own port:
// StreamAdvertisedPort is the plain listener's.
func (s *Server) streamAdvertised(addr net.Addr, isTLS bool) (string, int) {
	host, port := "", 0
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = ta.Port
		if !ta.IP.IsUnspecified() {
			host = ta.IP.String()
		}
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	if s.opts.StreamAdvertisedHost != "" {
		host = s.opts.StreamAdvertisedHost
	}
	if s.opts.StreamAdvertisedPort != 0 && !isTLS {
		port = s.opts.StreamAdvertisedPort
	}
	return host, port
}

// streamConn is one stream protocol connection.
type streamConn struct {
	srv     *Server
	nc      net.Conn
	advHost string
	advPort int
	name    string    // RabbitMQ's: "peer -> local"
	at      time.Time // accepted

	adm         streamConnAdm // what management shows (stream_admin.go)
	frameMaxAdm atomic.Int64  // the tuned frame_max, for management

	// Read loop state.
	frameMax  uint32
	heartbeat atomic.Int64 // the tuned heartbeat (a time.Duration; 0: none); the writer reads it
	user      *user
	v         *vhost
	pubs      map[uint8]*streamPub

	subs struct {
		sync.Mutex
		m map[uint8]*streamSub
	}
	sac sacConn // consumer updates awaiting their answer (stream_sac.go)

	out struct {
		sync.Mutex
		buf     []byte
		closing bool // the read loop ended: write what is left, then stop
	}
	relief     chan struct{} // signalled when the writer drained the out buffer
	wake       chan struct{} // 1-buffered: the writer has something to do
	writerDone chan struct{}
	shut       chan struct{} // closed by shutdown
	shutOnce   sync.Once
}

func newStreamConn(s *Server, nc net.Conn, host string, port int) *streamConn {
	c := &streamConn{srv: s, nc: nc, advHost: host, advPort: port, frameMax: streamFrameMax, name: streamConnName(nc), at: time.Now(),
		pubs: map[uint8]*streamPub{}, wake: make(chan struct{}, 1), relief: make(chan struct{}, 1),
		writerDone: make(chan struct{}), shut: make(chan struct{})}
	c.subs.m = map[uint8]*streamSub{}
	c.frameMaxAdm.Store(streamFrameMax)
	if m, ok := nc.(*meteredConn); ok {
		c.at = m.at
	}
	return c
}

// shutdown closes the socket from outside (server shutdown): the read loop ends.
func (c *streamConn) shutdown() {
	c.shutOnce.Do(func() {
		close(c.shut)
		c.send(&streamproto.Close{CorrelationID: 0, Code: streamproto.CodeOK, Reason: "broker shutdown"})
		c.nc.SetReadDeadline(time.Unix(1, 0))
	})
}

func (c *streamConn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// send queues cmd for the writer.
func (c *streamConn) send(cmd streamproto.Command) {
	c.out.Lock()
	b, err := streamproto.Append(c.out.buf, cmd)
	if err == nil {
		c.out.buf = b
	}
	c.out.Unlock()
	if err != nil {
		c.srv.log.Error("stream: encoding a frame", "err", err)
		return
	}
	c.wakeWriter()
}

func (c *streamConn) respond(key uint16, corr uint32, code uint16) {
	c.send(&streamproto.Response{For: key, CorrelationID: corr, Code: code})
}

// serve is the read loop.
func (c *streamConn) serve() {
	go c.writer()
	defer func() {
		c.cleanup()
		c.out.Lock()
		c.out.closing = true
		c.out.Unlock()
		c.wakeWriter()
		select {
		case <-c.writerDone:
		case <-time.After(time.Second):
			c.nc.Close()
			<-c.writerDone
		}
		c.nc.Close()
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var body []byte
	deadline := time.Now().Add(c.srv.opts.HandshakeTimeout)
	if c.srv.opts.HandshakeTimeout <= 0 {
		deadline = time.Now().Add(10 * time.Second)
	}
	for {
		if c.v != nil {
			deadline = time.Time{}
			if hb := time.Duration(c.heartbeat.Load()); hb > 0 {
				deadline = time.Now().Add(2 * hb)
			}
		}
		select {
		case <-c.shut:
			return
		default:
		}
		c.nc.SetReadDeadline(deadline)
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		size := binary.BigEndian.Uint32(hdr[:])
		if uint64(size)+4 > uint64(c.frameMax) || size < 4 {
			code := streamproto.CodeFrameTooLarge
			if size < 4 {
				code = streamproto.CodeUnknownFrame
			}
			c.closeWith(code, fmt.Sprintf("frame of %d bytes", uint64(size)+4))
			return
		}
		if cap(body) < int(size)+4 {
			body = make([]byte, int(size)+4)
		}
		body = body[:int(size)+4]
		copy(body, hdr[:])
		if _, err := io.ReadFull(br, body[4:]); err != nil {
			return
		}
		fr, _, err := streamproto.ReadFrame(body, 0xFFFFFFFF)
		if err != nil {
			c.closeWith(streamproto.CodeUnknownFrame, err.Error())
			return
		}
		cmd, err := streamproto.Decode(fr)
		if err != nil {
			code := streamproto.CodeUnknownFrame
			var pe *streamproto.Error
			if errors.As(err, &pe) {
				code = pe.Code
			}
			c.closeWith(code, err.Error())
			return
		}
		if !c.handle(cmd) {
			return
		}
		if !c.waitOut() {
			return
		}
	}
}

// waitOut holds the read loop while the out buffer is over streamOutMax (a client that does not
// read its confirms and chunks stops being read).
func (c *streamConn) waitOut() bool {
	for {
		c.out.Lock()
		n := len(c.out.buf)
		c.out.Unlock()
		if n < streamOutMax {
			return true
		}
		select {
		case <-c.relief:
		case <-c.shut:
			return false
		case <-c.writerDone:
			return false
		}
	}
}

// closeWith sends a server-initiated close with code and ends the connection.
func (c *streamConn) closeWith(code uint16, reason string) {
	c.srv.log.Debug("stream connection closed by the server", "remote", c.nc.RemoteAddr().String(), "code", code, "reason", reason)
	c.send(&streamproto.Close{CorrelationID: 1, Code: code, Reason: reason})
}

// cleanup ends the connection's subscriptions (their readers stop delivering to it).
func (c *streamConn) cleanup() {
	c.subs.Lock()
	subs := make([]*streamSub, 0, len(c.subs.m))
	for _, b := range c.subs.m {
		subs = append(subs, b)
	}
	c.subs.m = map[uint8]*streamSub{}
	c.subs.Unlock()
	for _, b := range subs {
		b.end()
		b.sacLeave()
	}
}

// writer writes what the out buffer holds and the subscriptions' chunks, and heartbeats while
// idle.
func (c *streamConn) writer() {
	defer close(c.writerDone)
	var spare []byte
	last := time.Now()
	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	failed := false
	for {
		c.out.Lock()
		closing := c.out.closing
		buf := c.out.buf
		c.out.buf = spare[:0]
		c.out.Unlock()
		if len(buf) >= streamOutMax/2 || len(buf) > 0 {
			select {
			case c.relief <- struct{}{}:
			default:
			}
		}
		buf, kicks := c.cutChunks(buf)
		for _, b := range kicks {
			b.q.kick([]*subscription{b.sub}, nil)
		}
		if len(buf) > 0 && !failed {
			c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.nc.Write(buf); err != nil {
				failed = true
				c.nc.Close() // the read loop ends
			}
			last = time.Now()
		}
		spare = buf
		if len(spare) > 4<<20 {
			spare = nil
		}
		if closing {
			return
		}
		hb := time.Duration(c.heartbeat.Load())
		if ticker == nil && hb > 0 {
			ticker = time.NewTicker(hb / 2)
			tick = ticker.C
		}
		select {
		case <-c.wake:
		case <-tick:
			if time.Since(last) >= hb && !failed {
				c.send(&streamproto.Heartbeat{})
			}
		}
	}
}

// cutChunks appends a Deliver for each subscription with pending entries and credit; it returns
// the subscriptions whose readers may go on.
func (c *streamConn) cutChunks(buf []byte) ([]byte, []*streamSub) {
	var kicks []*streamSub
	c.subs.Lock()
	for _, b := range c.subs.m {
		b.mu.Lock()
		if b.n > 0 && b.credit > 0 && b.ready && !b.gone {
			d := streamproto.Deliver{SubscriptionID: b.id, Chunk: streamproto.ChunkHeader{
				MagicVersion: 0x50, NumEntries: uint16(b.n), NumRecords: uint32(b.n), Timestamp: b.ts, Epoch: 1,
				ChunkFirstOffset: b.first, ChunkCRC: crc32.ChecksumIEEE(b.data), DataLength: uint32(len(b.data)),
			}, Data: b.data}
			if nb, err := streamproto.Append(buf, &d); err == nil {
				buf = nb
			}
			b.credit--
			b.consumed += int64(b.n)
			b.lastOffset = int64(b.first) + int64(b.n) - 1
			b.n, b.data, b.ready = 0, b.data[:0], false
			kicks = append(kicks, b)
		}
		b.mu.Unlock()
	}
	c.subs.Unlock()
	return buf, kicks
}

// handle runs one command; false ends the connection.
func (c *streamConn) handle(cmd streamproto.Command) bool {
	switch m := cmd.(type) {
	case *streamproto.PeerProperties:
		props := amqp.Table{}
		for _, kv := range m.Properties {
			props[kv.Key] = kv.Value
		}
		c.adm.Lock()
		c.adm.props = props
		c.adm.Unlock()
		c.send(&streamproto.PeerPropertiesResponse{CorrelationID: m.CorrelationID, Code: streamproto.CodeOK, Properties: []streamproto.KV{
			{Key: "cluster_name", Value: c.srv.clusterName()}, {Key: "copyright", Value: "Warren"},
			{Key: "information", Value: "Warren, a RabbitMQ-compatible broker"}, {Key: "platform", Value: "Go"},
			{Key: "product", Value: "RabbitMQ"}, {Key: "version", Value: streamProtocolVersion}}})
		return true
	case *streamproto.SaslHandshake:
		c.send(&streamproto.SaslHandshakeResponse{CorrelationID: m.CorrelationID, Code: streamproto.CodeOK, Mechanisms: []string{"PLAIN"}})
		return true
	case *streamproto.SaslAuthenticate:
		return c.authenticate(m)
	case *streamproto.Tune:
		if m.FrameMax != 0 && m.FrameMax < streamFrameMax {
			c.frameMax = max(m.FrameMax, 1024)
		}
		c.frameMaxAdm.Store(int64(c.frameMax))
		c.heartbeat.Store(int64(time.Duration(m.Heartbeat) * time.Second))
		c.wakeWriter()
		return true
	case *streamproto.Open:
		return c.open(m)
	case *streamproto.Heartbeat:
		return true
	case *streamproto.Close:
		c.respond(streamproto.KeyClose, m.CorrelationID, streamproto.CodeOK)
		return false
	case *streamproto.Response:
		return m.For != streamproto.KeyClose // the answer to the server's close ends the connection
	}
	if c.v == nil { // anything else needs an open connection
		c.closeWith(streamproto.CodeUnknownFrame, fmt.Sprintf("command %#04x before open", cmd.Key()))
		return false
	}
	switch m := cmd.(type) {
	case *streamproto.Create:
		c.respond(streamproto.KeyCreate, m.CorrelationID, c.create(m))
	case *streamproto.Delete:
		c.respond(streamproto.KeyDelete, m.CorrelationID, c.deleteStream(m.Stream))
	case *streamproto.MetadataQuery:
		c.metadata(m)
	case *streamproto.DeclarePublisher:
		c.respond(streamproto.KeyDeclarePublisher, m.CorrelationID, c.declarePublisher(m))
	case *streamproto.DeletePublisher:
		code := streamproto.CodePublisherDoesNotExist
		if p, ok := c.pubs[m.PublisherID]; ok {
			delete(c.pubs, m.PublisherID)
			c.adm.Lock()
			c.adm.pubs = slices.DeleteFunc(c.adm.pubs, func(x *streamPub) bool { return x == p })
			c.adm.Unlock()
			code = streamproto.CodeOK
		}
		c.respond(streamproto.KeyDeletePublisher, m.CorrelationID, code)
	case *streamproto.Publish:
		c.publish(m)
	case *streamproto.QueryPublisherSequence:
		seq, code := c.querySequence(m)
		c.send(&streamproto.QueryPublisherSequenceResponse{CorrelationID: m.CorrelationID, Code: code, Sequence: seq})
	case *streamproto.Subscribe:
		c.subscribe(m)
	case *streamproto.Credit:
		c.credit(m)
	case *streamproto.Unsubscribe:
		c.unsubscribeAnswered(m)
	case *streamproto.StoreOffset:
		c.storeOffset(m)
	case *streamproto.QueryOffset:
		off, code := c.queryOffset(m)
		c.send(&streamproto.QueryOffsetResponse{CorrelationID: m.CorrelationID, Code: code, Offset: off})
	case *streamproto.StreamStats:
		c.stats(m)
	case *streamproto.Route, *streamproto.Partitions, *streamproto.CreateSuperStream, *streamproto.DeleteSuperStream,
		*streamproto.ConsumerUpdateResponse:
		return c.handleSuper(cmd)
	case *streamproto.ExchangeCommandVersions:
		c.send(&streamproto.ExchangeCommandVersions{Response: true, CorrelationID: m.CorrelationID, Code: streamproto.CodeOK,
			Versions: streamCommandVersions})
	default:
		c.closeWith(streamproto.CodeUnknownFrame, fmt.Sprintf("command %#04x not expected from a client", cmd.Key()))
		return false
	}
	return true
}

// streamCommandVersions are the commands and versions the front end serves (exchange command
// versions).
var streamCommandVersions = []streamproto.CommandVersion{
	{Key: streamproto.KeyDeclarePublisher, Min: 1, Max: 1}, {Key: streamproto.KeyPublish, Min: 1, Max: 2},
	{Key: streamproto.KeyQueryPublisherSequence, Min: 1, Max: 1}, {Key: streamproto.KeyDeletePublisher, Min: 1, Max: 1},
	{Key: streamproto.KeySubscribe, Min: 1, Max: 1}, {Key: streamproto.KeyCredit, Min: 1, Max: 1},
	{Key: streamproto.KeyStoreOffset, Min: 1, Max: 1}, {Key: streamproto.KeyQueryOffset, Min: 1, Max: 1},
	{Key: streamproto.KeyUnsubscribe, Min: 1, Max: 1}, {Key: streamproto.KeyCreate, Min: 1, Max: 1},
	{Key: streamproto.KeyDelete, Min: 1, Max: 1}, {Key: streamproto.KeyMetadata, Min: 1, Max: 1},
	{Key: streamproto.KeyPeerProperties, Min: 1, Max: 1}, {Key: streamproto.KeySaslHandshake, Min: 1, Max: 1},
	{Key: streamproto.KeySaslAuthenticate, Min: 1, Max: 1}, {Key: streamproto.KeyTune, Min: 1, Max: 1},
	{Key: streamproto.KeyOpen, Min: 1, Max: 1}, {Key: streamproto.KeyClose, Min: 1, Max: 1},
	{Key: streamproto.KeyHeartbeat, Min: 1, Max: 1}, {Key: streamproto.KeyExchangeCommandVersions, Min: 1, Max: 1},
	{Key: streamproto.KeyStreamStats, Min: 1, Max: 1},
}

func (s *Server) clusterName() string {
	h, _ := os.Hostname()
	return "warren@" + h
}

// authenticate checks SASL PLAIN credentials against the broker's users (and the loopback
// restriction); a failure is answered with its code and ends the connection, as in RabbitMQ.
func (c *streamConn) authenticate(m *streamproto.SaslAuthenticate) bool {
	fail := func(code uint16) bool {
		c.send(&streamproto.SaslAuthenticateResponse{CorrelationID: m.CorrelationID, Code: code})
		return false
	}
	if m.Mechanism != "PLAIN" {
		return fail(streamproto.CodeSaslMechanismNotSupported)
	}
	parts := strings.SplitN(string(m.Data), "\x00", 3)
	if len(parts) != 3 {
		return fail(streamproto.CodeSaslError)
	}
	u := c.srv.lookupUser(parts[1])
	if u == nil || !u.checkPassword(parts[2]) {
		c.srv.log.Info("stream login refused", "user", parts[1], "remote", c.nc.RemoteAddr().String())
		return fail(streamproto.CodeAuthenticationFailure)
	}
	if c.srv.loopback[u.name] && !isLoopback(c.nc.RemoteAddr()) {
		return fail(streamproto.CodeAuthenticationFailureLoopback)
	}
	c.user = u
	c.adm.Lock()
	c.adm.user, c.adm.mechanism = u.name, m.Mechanism
	c.adm.Unlock()
	c.send(&streamproto.SaslAuthenticateResponse{CorrelationID: m.CorrelationID, Code: streamproto.CodeOK})
	hb := c.srv.opts.Heartbeat
	if hb == 0 {
		hb = streamHeartbeat
	}
	c.send(&streamproto.Tune{FrameMax: streamFrameMax, Heartbeat: uint32(max(hb, 0) / time.Second)})
	return true
}

// open opens the vhost for the logged-in user: 12 if it does not exist or the user may not use it.
func (c *streamConn) open(m *streamproto.Open) bool {
	if c.user == nil {
		c.closeWith(streamproto.CodeUnknownFrame, "open before authentication")
		return false
	}
	v := c.srv.vhost(m.VirtualHost)
	if v == nil || !c.srv.hasVhostAccess(c.user.name, v.name) {
		c.send(&streamproto.OpenResponse{CorrelationID: m.CorrelationID, Code: streamproto.CodeVirtualHostAccessFailure})
		return false
	}
	c.v = v
	c.adm.Lock()
	c.adm.vhost, c.adm.open = v.name, true
	c.adm.Unlock()
	c.send(&streamproto.OpenResponse{CorrelationID: m.CorrelationID, Code: streamproto.CodeOK, Properties: []streamproto.KV{
		{Key: "advertised_host", Value: c.advHost}, {Key: "advertised_port", Value: strconv.Itoa(c.advPort)}}})
	return true
}

// stream finds the stream called name: code 2 if there is none (or the queue is not a stream).
func (c *streamConn) stream(name string) (*queue, *streamQueue, uint16) {
	c.v.mu.RLock()
	q := c.v.mu.queues[name]
	c.v.mu.RUnlock()
	if q == nil {
		return nil, nil, streamproto.CodeStreamDoesNotExist
	}
	sq, ok := q.queueImpl.(*streamQueue)
	if !ok {
		return nil, nil, streamproto.CodeStreamDoesNotExist
	}
	return q, sq, streamproto.CodeOK
}

func (c *streamConn) access(kind access, name string) bool {
	return c.srv.checkAccess(c.user, c.v, kind, "queue", name) == nil
}

// streamCreateArgs maps create's arguments to the queue arguments RabbitMQ's stream plugin gives
// the stream (x- prefixed; sizes as integers).
func streamCreateArgs(kvs []streamproto.KV) (amqp.Table, bool) {
	args := amqp.Table{"x-queue-type": "stream"}
	for _, kv := range kvs {
		switch kv.Key {
		case "max-length-bytes", "stream-max-segment-size-bytes", "initial-cluster-size":
			n, err := strconv.ParseInt(kv.Value, 10, 64)
			if err != nil {
				return nil, false
			}
			args["x-"+kv.Key] = n
		case "max-age", "queue-leader-locator":
			args["x-"+kv.Key] = kv.Value
		}
	}
	return args, true
}

func (c *streamConn) create(m *streamproto.Create) uint16 {
	if m.Stream == "" || strings.HasPrefix(m.Stream, "amq.") {
		return streamproto.CodePreconditionFailed
	}
	if !c.access(accessConfigure, m.Stream) {
		return streamproto.CodeAccessRefused
	}
	c.v.mu.RLock()
	exists := c.v.mu.queues[m.Stream] != nil
	c.v.mu.RUnlock()
	if exists {
		return streamproto.CodeStreamAlreadyExists
	}
	args, ok := streamCreateArgs(m.Arguments)
	if !ok {
		return streamproto.CodePreconditionFailed
	}
	if _, err := c.v.declareQueue(nil, &amqp.QueueDeclare{Queue: m.Stream, Durable: true, Arguments: args}); err != nil {
		c.srv.log.Debug("stream create refused", "stream", m.Stream, "err", err)
		return streamproto.CodePreconditionFailed
	}
	return streamproto.CodeOK
}

func (c *streamConn) deleteStream(name string) uint16 {
	q, _, code := c.stream(name)
	if code != streamproto.CodeOK {
		return code
	}
	if !c.access(accessConfigure, name) {
		return streamproto.CodeAccessRefused
	}
	if _, err := c.v.deleteQueue(q, false, false); err != nil {
		return streamproto.CodeInternalError
	}
	return streamproto.CodeOK
}

// metadata answers with this node as every stream's leader (no replicas on one node).
func (c *streamConn) metadata(m *streamproto.MetadataQuery) {
	resp := &streamproto.Metadata{CorrelationID: m.CorrelationID,
		Brokers: []streamproto.Broker{{Reference: 0, Host: c.advHost, Port: uint32(c.advPort)}}}
	for _, name := range m.Streams {
		_, _, code := c.stream(name)
		sm := streamproto.StreamMetadata{Stream: name, Code: code, Leader: 0}
		if code != streamproto.CodeOK {
			sm.Leader = 0xFFFF
		}
		resp.Streams = append(resp.Streams, sm)
	}
	c.send(resp)
}

func (c *streamConn) stats(m *streamproto.StreamStats) {
	_, sq, code := c.stream(m.Stream)
	resp := &streamproto.StreamStatsResponse{CorrelationID: m.CorrelationID, Code: code}
	if code == streamproto.CodeOK {
		sq.mu.Lock()
		first, committed := int64(-1), int64(-1)
		if sq.mu.hasChunk {
			first, committed = int64(sq.firstLocked()), int64(sq.mu.lastChunk)
		}
		sq.mu.Unlock()
		resp.Stats = []streamproto.Stat{{Name: "first_chunk_id", Value: first}, {Name: "committed_chunk_id", Value: committed}}
	}
	c.send(resp)
}

// readRef reads the uint64 stored under key, after the writes added so far are applied.
func (c *streamConn) readRef(key []byte) (uint64, bool, error) { return c.srv.readStreamRef(key) }

// --- publishing ---

// streamPub is a declared publisher (read loop only).
type streamPub struct {
	id     uint8
	ref    string
	stream string
	q      *queue
	sq     *streamQueue
	seq    uint64 // with a reference: the highest publishing id stored (hasSeq)
	hasSeq bool
	stats  streamPubStats
}

func (c *streamConn) declarePublisher(m *streamproto.DeclarePublisher) uint16 {
	if _, ok := c.pubs[m.PublisherID]; ok {
		return streamproto.CodePreconditionFailed
	}
	q, sq, code := c.stream(m.Stream)
	if code != streamproto.CodeOK {
		return code
	}
	if !c.access(accessWrite, m.Stream) {
		return streamproto.CodeAccessRefused
	}
	p := &streamPub{id: m.PublisherID, ref: m.Reference, stream: m.Stream, q: q, sq: sq}
	if p.ref != "" {
		for _, o := range c.pubs {
			if o.ref == p.ref && o.stream == p.stream {
				return streamproto.CodePreconditionFailed
			}
		}
		seq, found, err := c.readRef(storage.StreamPublisherKey(q.id, p.ref))
		if err != nil {
			return streamproto.CodeInternalError
		}
		p.seq, p.hasSeq = seq, found
	}
	c.pubs[m.PublisherID] = p
	c.adm.Lock()
	c.adm.pubs = append(c.adm.pubs, p)
	c.adm.Unlock()
	return streamproto.CodeOK
}

func (c *streamConn) querySequence(m *streamproto.QueryPublisherSequence) (uint64, uint16) {
	q, _, code := c.stream(m.Stream)
	if code != streamproto.CodeOK {
		return 0, code
	}
	seq, _, err := c.readRef(storage.StreamPublisherKey(q.id, m.Reference))
	if err != nil {
		return 0, streamproto.CodeInternalError
	}
	return seq, streamproto.CodeOK
}

// publish appends the messages of a Publish; their confirm is sent when the commit group of the
// last one is fsynced. With a publisher reference, ids at or below the stored sequence are
// duplicates: confirmed, not stored.
func (c *streamConn) publish(m *streamproto.Publish) {
	p := c.pubs[m.PublisherID]
	if p == nil {
		pe := &streamproto.PublishError{PublisherID: m.PublisherID}
		for _, msg := range m.Messages {
			pe.Errors = append(pe.Errors, streamproto.PublishingError{PublishingID: msg.PublishingID, Code: streamproto.CodePublisherDoesNotExist})
		}
		c.send(pe)
		return
	}
	if ch := c.srv.publishThrottle(); ch != nil {
		select {
		case <-ch:
		case <-c.shut:
		}
	}
	now := time.Now().UnixMilli()
	ids := make([]uint64, 0, len(m.Messages))
	var g *commitGroup
	var errs []streamproto.PublishingError
	advanced := false
	for i := range m.Messages {
		pm := &m.Messages[i]
		if p.ref != "" && p.hasSeq && pm.PublishingID <= p.seq {
			ids = append(ids, pm.PublishingID)
			continue
		}
		// A sub-entry batch is stored as its records, one entry (and offset) each, as osiris
		// numbers them; its one publishing id is confirmed once they all are.
		recs, err := streamproto.SubEntryRecords(pm)
		if err != nil {
			c.srv.log.Debug("stream publish refused", "stream", p.stream, "err", err)
			errs = append(errs, streamproto.PublishingError{PublishingID: pm.PublishingID, Code: streamproto.CodePreconditionFailed})
			continue
		}
		res := published
		for _, rec := range recs {
			msg := streamMessageIn(rec, p.stream, pm.FilterValue, now)
			r, gg, _ := p.sq.publishFrom(msg, nil, nil)
			if r == gone {
				res = gone
				break
			}
			p.q.stats.inc(sPublish)
			g = gg
		}
		if res == gone {
			errs = append(errs, streamproto.PublishingError{PublishingID: pm.PublishingID, Code: streamproto.CodeStreamDoesNotExist})
			continue
		}
		ids = append(ids, pm.PublishingID)
		if p.ref != "" {
			p.seq, p.hasSeq, advanced = pm.PublishingID, true, true
		}
	}
	if advanced {
		key, val := storage.StreamPublisherKey(p.q.id, p.ref), binary.BigEndian.AppendUint64(nil, p.seq)
		g = c.srv.commit.add(true, func(b *storage.Batch) { b.Set(key, val) })
	}
	p.stats.published.Add(int64(len(m.Messages)))
	if len(errs) > 0 {
		p.stats.errored.Add(int64(len(errs)))
		c.send(&streamproto.PublishError{PublisherID: p.id, Errors: errs})
	}
	if len(ids) == 0 {
		return
	}
	if g == nil {
		p.stats.confirmed.Add(int64(len(ids)))
		c.send(&streamproto.PublishConfirm{PublisherID: p.id, PublishingIDs: ids})
		return
	}
	c.srv.commit.onCommit(g, func(err error) {
		if err != nil {
			p.stats.errored.Add(int64(len(ids)))
			pe := &streamproto.PublishError{PublisherID: p.id}
			for _, id := range ids {
				pe.Errors = append(pe.Errors, streamproto.PublishingError{PublishingID: id, Code: streamproto.CodeInternalError})
			}
			c.send(pe)
			return
		}
		p.stats.confirmed.Add(int64(len(ids)))
		c.send(&streamproto.PublishConfirm{PublisherID: p.id, PublishingIDs: ids})
	})
}

// --- consuming ---

// streamSub is a subscription: the stream's reader hands it entries (deliver), which it encodes
// into its pending chunk; the connection's writer cuts the chunk while it has credit.
type streamSub struct {
	c      *streamConn
	id     uint8
	stream string
	q      *queue
	sub    *subscription
	props  []streamproto.KV // the subscribe's properties (management shows them)

	mu sync.Mutex
	// head is the AMQP 1.0 encoding of the sections before the body for a message whose
	// properties are headProps (hasHead): consecutive messages with the same properties, a
	// stream's usual case, encode them once.
	head, headProps []byte
	hasHead         bool
	consumed        int64 // messages sent in chunks (management)
	lastOffset      int64 // the last offset sent (management)
	credit          int
	gone            bool
	data            []byte // pending entries (simple format)
	first           uint64 // offset of the first pending entry
	n               int
	ts              int64
	ready           bool // the reader finished handing over a batch, or the chunk is full: cut it

	// Single active consumer (stream_sac.go): the group, the subscribe's offset, and whether
	// the subscription reads (read loop only).
	sac       *sacKey
	sacOffset any
	reading   bool
}

var _ deliveryTarget = (*streamSub)(nil)

func (b *streamSub) deliver(e *qentry, _ *dispatchRun) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone || b.credit <= 0 {
		return false
	}
	if b.n > 0 && (e.seq != b.first+uint64(b.n) || b.n >= 0xFFFF || len(b.data) >= streamChunkBytes) {
		b.ready = true
		b.c.wakeWriter()
		return false
	}
	if b.n == 0 {
		b.first, b.ts = e.seq, e.msg.arrived
	}
	at := len(b.data)
	b.data = append(b.data, 0, 0, 0, 0)
	if !b.hasHead || !bytes.Equal(b.headProps, e.msg.props) {
		b.headProps = append(b.headProps[:0], e.msg.props...)
		b.head = appendStreamMessageHead(b.head[:0], e.msg.props)
		b.hasHead = true
	}
	b.data = streamproto.AppendDataSection(append(b.data, b.head...), e.msg.body)
	binary.BigEndian.PutUint32(b.data[at:], uint32(len(b.data)-at-4))
	b.n++
	return true
}

// rawStreamProps marks a stream delivery target that wants a message's stored properties as
// they are, without the x-stream-offset header an AMQP 0-9-1 delivery carries (the stream
// protocol sends offsets in its chunks): consecutive messages keep identical properties.
func (b *streamSub) rawStreamProps() {}

// batchFlusher is a delivery target told when its stream reader has handed it a batch
// (stream_reader.go): the entries handed over so far may go out as one chunk.
type batchFlusher interface{ flushBatch() }

func (b *streamSub) flushBatch() {
	b.mu.Lock()
	b.ready = b.n > 0
	b.mu.Unlock()
	b.c.wakeWriter()
}

func (b *streamSub) queueDeleted() bool {
	b.mu.Lock()
	b.gone = true
	b.mu.Unlock()
	return true
}

// cancelled tells the client its stream is gone (metadata update) and drops the subscription.
func (b *streamSub) cancelled() {
	b.c.subs.Lock()
	if b.c.subs.m[b.id] == b {
		delete(b.c.subs.m, b.id)
	}
	b.c.subs.Unlock()
	b.sacLeave()
	b.c.send(&streamproto.MetadataUpdate{Code: streamproto.CodeStreamNotAvailable, Stream: b.stream})
}

func (b *streamSub) deliversOn() any { return b.c }

func (b *streamSub) describe(ci *ConsumerInfo) {}

// end stops the subscription's reader.
func (b *streamSub) end() {
	b.mu.Lock()
	b.gone = true
	b.mu.Unlock()
	b.q.removeConsumer(b.sub)
}

func (c *streamConn) subscribe(m *streamproto.Subscribe) {
	fail := func(code uint16) { c.respond(streamproto.KeySubscribe, m.CorrelationID, code) }
	c.subs.Lock()
	_, dup := c.subs.m[m.SubscriptionID]
	c.subs.Unlock()
	if dup {
		fail(streamproto.CodeSubscriptionIDAlreadyExists)
		return
	}
	q, _, code := c.stream(m.Stream)
	if code != streamproto.CodeOK {
		fail(code)
		return
	}
	if !c.access(accessRead, m.Stream) {
		fail(streamproto.CodeAccessRefused)
		return
	}
	args := amqp.Table{}
	switch m.Offset.Type {
	case streamproto.OffsetFirst:
		args["x-stream-offset"] = "first"
	case streamproto.OffsetLast:
		args["x-stream-offset"] = "last"
	case streamproto.OffsetNext:
		args["x-stream-offset"] = "next"
	case streamproto.OffsetOffset:
		args["x-stream-offset"] = int64(min(m.Offset.Value, 1<<63-1))
	case streamproto.OffsetTimestamp:
		args["x-stream-offset"] = time.UnixMilli(int64(m.Offset.Value))
	}
	b := &streamSub{c: c, id: m.SubscriptionID, stream: m.Stream, q: q, props: m.Properties}
	b.sub = &subscription{tag: "stream-" + strconv.Itoa(int(m.SubscriptionID)), target: b, prefetch: max(m.Credit, 1), args: args}
	if c.sacSubscribe(m, b) {
		return
	}
	c.subs.Lock()
	c.subs.m[m.SubscriptionID] = b
	c.subs.Unlock()
	if err := q.addConsumer(b.sub, func() {}); err != nil {
		c.subs.Lock()
		delete(c.subs.m, m.SubscriptionID)
		c.subs.Unlock()
		c.srv.log.Debug("stream subscribe refused", "stream", m.Stream, "err", err)
		fail(streamproto.CodeInternalError)
		return
	}
	// The response goes out before any chunk: credit is given only now.
	fail(streamproto.CodeOK)
	b.mu.Lock()
	b.credit = int(m.Credit)
	b.mu.Unlock()
	q.kick([]*subscription{b.sub}, nil)
}

func (c *streamConn) credit(m *streamproto.Credit) {
	c.subs.Lock()
	b := c.subs.m[m.SubscriptionID]
	c.subs.Unlock()
	if b == nil {
		c.send(&streamproto.CreditResponse{Code: streamproto.CodeSubscriptionIDDoesNotExist, SubscriptionID: m.SubscriptionID})
		return
	}
	b.mu.Lock()
	b.credit += int(m.Credit)
	b.mu.Unlock()
	c.wakeWriter()
	b.q.kick([]*subscription{b.sub}, nil)
}

func (c *streamConn) unsubscribe(id uint8) uint16 {
	c.subs.Lock()
	b := c.subs.m[id]
	delete(c.subs.m, id)
	c.subs.Unlock()
	if b == nil {
		return streamproto.CodeSubscriptionIDDoesNotExist
	}
	b.end()
	return streamproto.CodeOK
}

// storeOffset records the offset for a reference (no response; ignored for a missing stream or
// without read access, as RabbitMQ does). It is written with the next commit group, not
// fsynced on its own.
func (c *streamConn) storeOffset(m *streamproto.StoreOffset) {
	q, _, code := c.stream(m.Stream)
	if code != streamproto.CodeOK || m.Reference == "" || !c.access(accessRead, m.Stream) {
		return
	}
	key, val := storage.StreamOffsetKey(q.id, m.Reference), binary.BigEndian.AppendUint64(nil, m.Offset)
	c.srv.commit.add(false, func(b *storage.Batch) { b.Set(key, val) })
}

func (c *streamConn) queryOffset(m *streamproto.QueryOffset) (uint64, uint16) {
	q, _, code := c.stream(m.Stream)
	if code != streamproto.CodeOK {
		return 0, code
	}
	if !c.access(accessRead, m.Stream) {
		return 0, streamproto.CodeAccessRefused
	}
	off, found, err := c.readRef(storage.StreamOffsetKey(q.id, m.Reference))
	switch {
	case err != nil:
		return 0, streamproto.CodeInternalError
	case !found:
		return 0, streamproto.CodeNoOffset
	}
	return off, streamproto.CodeOK
}
