package server

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/mqtt"
)

// The MQTT front end (server/mqtt*.go): MQTT 3.1, 3.1.1 and 5.0 clients reach the same vhosts,
// users, exchanges and queues as AMQP clients, mapped onto them as RabbitMQ's MQTT plugin maps them.
// The codec is the mqtt package; this file has the listener and the connection (read loop, write
// side, teardown), mqtt_connect.go the CONNECT, mqtt_publish.go the publishes (vhost.publish with the
// connection as publishSource), mqtt_sub.go the subscriptions (queues, each consumed through a
// deliveryTarget), mqtt_retain.go the retained messages.
//
// Goroutines of an MQTT connection, all counted in Server.wg: its read loop (serve; it owns the
// protocol state and tears the connection down), its write loop (outbound.run, without heartbeats)
// and, started on first need, its settler (settleLoop: settles the entries that queues delivered
// under their lock and that need no PUBACK). serve waits for the others before it returns.

// MQTTOptions configure the MQTT front end, with RabbitMQ's mqtt.* keys and defaults.
type MQTTOptions struct {
	// Vhost is the vhost of a login that names none (mqtt.vhost, default "/").
	Vhost string
	// DefaultUser and DefaultPass log in a client that gives no user name (mqtt.default_user,
	// mqtt.default_pass; default guest/guest, as RabbitMQ's mqtt.allow_anonymous = true).
	DefaultUser, DefaultPass string
	// Exchange is the topic exchange publishes go to and subscriptions bind to (mqtt.exchange,
	// default amq.topic).
	Exchange string
	// Prefetch is the in-flight window of QoS 1 deliveries to a 3.1 or 3.1.1 client
	// (mqtt.prefetch, default 10); an MQTT 5 client's receive maximum sets its own.
	Prefetch int
	// SubscriptionTTL expires the queues of a 3.1/3.1.1 persistent session that no client
	// resumed (mqtt.subscription_ttl, default 24 hours; negative: never).
	SubscriptionTTL time.Duration
}

func (o *MQTTOptions) setDefaults() {
	if o.Vhost == "" {
		o.Vhost = "/"
	}
	if o.DefaultUser == "" {
		o.DefaultUser, o.DefaultPass = "guest", "guest"
	}
	if o.Exchange == "" {
		o.Exchange = "amq.topic"
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 10
	}
	if o.SubscriptionTTL == 0 {
		o.SubscriptionTTL = 24 * time.Hour
	}
}

// ServeMQTT accepts MQTT connections on ln until Shutdown, as Serve does for AMQP; the listener is
// listed as RabbitMQ's "mqtt".
func (s *Server) ServeMQTT(ln net.Listener) error {
	return s.serve(ln, Listener{Protocol: ProtocolMQTT})
}

// ServeMQTTTLS is ServeMQTT over TLS ("mqtt/ssl"), with files as for ServeTLS. The handshake runs
// on the connection's goroutine, within the handshake timeout.
func (s *Server) ServeMQTTTLS(ln net.Listener, cfg *tls.Config, files TLSFiles) error {
	return s.serve(tls.NewListener(ln, cfg), Listener{Protocol: ProtocolMQTTS, Files: files})
}

// serveMQTTConn registers c and serves it on a goroutine the server's WaitGroup owns; false if the
// server is closed.
func (s *Server) serveMQTTConn(c *mqttConn) bool { return serveTracked(s, s.mu.mqttConns, c) }

// mqttConns returns the MQTT connections past their CONNECT, oldest first.
func (s *Server) openMQTTConns() []*mqttConn {
	s.mu.Lock()
	out := make([]*mqttConn, 0, len(s.mu.mqttConns))
	for c := range s.mu.mqttConns {
		if c.open.Load() {
			out = append(out, c)
		}
	}
	s.mu.Unlock()
	sortByID(out)
	return out
}

func sortByID(cs []*mqttConn) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j-1].id > cs[j].id; j-- {
			cs[j-1], cs[j] = cs[j], cs[j-1]
		}
	}
}

// mqttState is the server's MQTT state: the sessions by vhost and client id (client-id takeover)
// and the retained messages (mqtt_retain.go).
type mqttState struct {
	mu struct {
		sync.Mutex
		clients map[mqttClientKey]*mqttConn
		wills   map[mqttClientKey]*time.Timer    // MQTT 5 wills waiting for their delay (mqtt_retain.go)
		qos2    map[mqttClientKey]*mqttQoS2State // QoS 2 state of sessions no connection holds (mqtt_qos2.go); nil until read
	}
	retained retainedStore
}

type mqttClientKey struct{ vhost, clientID string }

// mqttConn is one MQTT client connection. Its read loop (serve) owns every field not marked
// otherwise; queue dispatch reaches it only through mu (its deliveryTargets), out and the atomics.
type mqttConn struct {
	srv  *Server
	nc   net.Conn
	log  *slog.Logger
	out  *outbound
	id   uint64
	name string

	// Set by CONNECT; read-only afterwards.
	version    mqtt.Version
	clientID   string
	user       *user
	vhost      *vhost
	keepAlive  time.Duration
	persistent bool   // the session outlives the connection
	expiry     uint32 // MQTT 5 session expiry interval (seconds)
	will       *mqtt.Will
	recvMax    int    // QoS 1 deliveries in flight at most
	maxOut     uint32 // the largest packet the client takes (0: no limit)
	tls        *tls.ConnectionState
	connectAt  time.Time

	dec      mqtt.Decoder
	rbuf     []byte // read buffer: rbuf[roff:] holds bytes read and not yet decoded
	roff     int
	idleWait time.Duration // a client silent this long is gone (1.5 keepalives); 0: none

	wb         writeBatch // deliveries this batch queued for consumers (outbound.writeVia)
	pubAccess  publishAccess
	flowWaits  []flowWait
	lastGroup  *commitGroup        // the last commit group a publish of this batch joined
	acks       []mqttAck           // PUBACK, PUBREC, PUBCOMP this batch earned, in order
	qos2       map[uint16]struct{} // QoS 2 publishes taken, awaiting PUBREL
	ackLedger  mqttAckLedger
	aliases    map[uint16]string // MQTT 5 topic aliases the client set
	normalExit bool              // DISCONNECT received: no will

	origin   *string // the client id, as publishes carry it (message.mqttFrom)
	aliasMax uint16  // the client's topic alias maximum (MQTT 5; 0: send none)
	// Topic aliases this broker set for the client (MQTT 5). Guarded by out.mu: only the
	// write closures (appendDelivery), which run in wire order under it, touch them.
	outAliases map[string]uint16
	owedRels   []uint16 // PUBRELs the resumed session owes, for resendPubrels (CONNECT only)

	stopped  chan struct{} // closed by closeFromOutside
	stopOnce sync.Once
	torn     chan struct{} // closed once teardown is done (a takeover waits for it)
	open     atomic.Bool   // past CONNECT: listed, and closed through out

	settleBell chan struct{} // 1-buffered: mu.settle is not empty, or the connection ends

	mu struct {
		sync.Mutex
		closed   bool
		subs     [3]*mqttSub               // the consumers of the qos0, qos1 and qos2 queues
		keys     [3]map[string]mqttSubOpts // the subscriptions in those queues, by binding key
		special  [3]int                    // how many of them have options deliver looks at
		shared   map[string]*mqttSub       // shared subscriptions by their $share/... filter (mqtt_shared.go)
		inflight map[uint16]mqttInflight
		nextID   uint16
		settle   []mqttSettle  // entries delivered at QoS 0 from a QoS 1 queue, for the settler
		settled  chan struct{} // the settler's end; nil until ringSettler starts it
	}
}

// mqttInflight is a QoS 1 or 2 PUBLISH sent and not yet acknowledged: the entry to settle on PUBACK
// or PUBREC (nil for a retained message, which no queue holds). A QoS 2 one stays after PUBREC,
// released, until PUBCOMP.
type mqttInflight struct {
	sub      *mqttSub
	e        *qentry
	qos2     bool // sent at QoS 2: PUBREC settles it
	released bool // PUBREC came, PUBREL sent: awaiting PUBCOMP
}

type mqttSettle struct {
	q *queue
	e *qentry
}

func newMQTTConn(s *Server, nc net.Conn) *mqttConn {
	c := &mqttConn{
		srv:        s,
		nc:         nc,
		out:        newOutbound(nc),
		id:         s.connSeq.Add(1),
		name:       nc.RemoteAddr().String() + " -> " + nc.LocalAddr().String(),
		stopped:    make(chan struct{}),
		torn:       make(chan struct{}),
		settleBell: make(chan struct{}, 1),
	}
	c.log = s.log.With("conn", c.name, "protocol", "mqtt")
	c.dec.MaxPacketSize = mqttMaxUnauthenticated // until CONNECT is accepted
	c.mu.inflight = map[uint16]mqttInflight{}
	return c
}

// mqttMaxUnauthenticated bounds the packets of a client before its CONNECT is accepted, as
// RabbitMQ's mqtt.max_packet_size_unauthenticated (64 KiB): a stranger cannot make the broker
// buffer a large packet.
const mqttMaxUnauthenticated = 65536

// errMQTTClose ends the read loop after the connection answered what it had to.
var errMQTTClose = errors.New("mqtt: connection closed")

// serve runs the connection: CONNECT, then the read loop, then teardown. It returns once the
// write loop and the settler have ended.
func (c *mqttConn) serve() {
	defer close(c.torn)
	defer c.nc.Close()
	if !c.connect() {
		return
	}
	c.out.onDrain = c.kickAll // deliveries held back while the write buffer was full go on
	done := make(chan struct{})
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		defer close(done)
		c.out.run(0)
	}()
	c.log.Debug("MQTT connection open", "user", c.user.name, "vhost", c.vhost.name, "client_id", c.clientID)

	err := c.readLoop()
	switch {
	case err == nil, errors.Is(err, errMQTTClose), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded) && !c.isStopped():
		c.log.Info("MQTT keepalive timeout, closing", "client_id", c.clientID, "timeout", c.idleWait)
		c.sendDisconnect(mqtt.KeepAliveTimeout)
	default:
		c.log.Debug("MQTT connection read ended", "err", err)
	}
	c.wb.flush()
	c.teardown()
	// No delivery reaches the connection any more (teardown): the settler, if it runs, drains and
	// ends; otherwise what is left is settled here.
	c.mu.Lock()
	settled := c.mu.settled
	c.mu.Unlock()
	if settled != nil {
		close(c.settleBell)
		<-settled
	} else {
		c.drainSettle()
	}
	c.nc.SetWriteDeadline(time.Now().Add(closeOkTimeout))
	c.out.closeAfterFlush()
	<-done
	c.log.Debug("MQTT connection closed", "client_id", c.clientID)
}

func (c *mqttConn) isStopped() bool {
	select {
	case <-c.stopped:
		return true
	default:
		return false
	}
}

// closeFromOutside closes the connection from another goroutine (Shutdown, a takeover, the
// management API): an MQTT 5 client is told why with DISCONNECT; the read loop wakes and tears
// the connection down.
func (c *mqttConn) closeFromOutside(reason mqtt.ReasonCode) {
	c.stopOnce.Do(func() {
		close(c.stopped)
		if c.open.Load() {
			c.sendDisconnect(reason)
		}
		c.nc.SetReadDeadline(time.Now())
	})
}

// sendDisconnect queues DISCONNECT with reason for an MQTT 5 client (3.1.1 has no server
// DISCONNECT: the connection is just closed).
func (c *mqttConn) sendDisconnect(reason mqtt.ReasonCode) {
	if c.version != mqtt.V5 {
		return
	}
	c.out.write(func(b []byte) []byte {
		nb, err := mqtt.Append(b, &mqtt.Disconnect{ReasonCode: reason}, c.version)
		if err != nil {
			return b
		}
		return nb
	})
}

// writePacket queues p for the write loop (nil batch) or the read loop's batch wb.
func (c *mqttConn) writePacket(wb *writeBatch, p mqtt.Packet) {
	c.out.writeVia(wb, func(b []byte) []byte {
		nb, err := mqtt.Append(b, p, c.version)
		if err != nil {
			c.log.Error("encoding MQTT packet", "type", p.Type(), "err", err)
			return b
		}
		return nb
	})
}

// readPacket returns the next packet, reading the socket as needed. Before each socket read, it
// ends the batch (the deliveries and PUBACKs the packets handled so far earned go out). The packet
// is valid until the next call.
func (c *mqttConn) readPacket() (mqtt.Packet, error) {
	for {
		if c.roff < len(c.rbuf) {
			p, n, err := c.dec.Decode(c.rbuf[c.roff:])
			if err == nil || (n > 0 && p != nil) {
				c.roff += n
				return p, err
			}
			if !errors.Is(err, mqtt.ErrNeedMore) {
				return nil, err
			}
		}
		if c.roff == len(c.rbuf) {
			c.rbuf, c.roff = c.rbuf[:0], 0
		}
		if c.open.Load() {
			c.endBatch()
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more bytes into rbuf, within the keepalive deadline (the handshake's before CONNECT).
func (c *mqttConn) fill() error {
	if c.roff > 0 && c.roff == len(c.rbuf) {
		c.rbuf, c.roff = c.rbuf[:0], 0
	}
	if c.roff > 0 && cap(c.rbuf)-len(c.rbuf) < 4096 {
		n := copy(c.rbuf, c.rbuf[c.roff:])
		c.rbuf, c.roff = c.rbuf[:n], 0
	}
	if cap(c.rbuf)-len(c.rbuf) < 4096 {
		nb := make([]byte, len(c.rbuf), max(2*cap(c.rbuf), 4096))
		copy(nb, c.rbuf)
		c.rbuf = nb
	}
	if c.open.Load() {
		if c.idleWait > 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.idleWait))
		} else {
			c.nc.SetReadDeadline(time.Time{})
		}
		if c.isStopped() {
			c.nc.SetReadDeadline(time.Now())
		}
	}
	n, err := c.nc.Read(c.rbuf[len(c.rbuf):cap(c.rbuf)])
	c.rbuf = c.rbuf[:len(c.rbuf)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readLoop handles packets until the connection ends.
func (c *mqttConn) readLoop() error {
	for {
		if c.isStopped() {
			return errMQTTClose
		}
		p, err := c.readPacket()
		var me *mqtt.Error
		if err != nil && errors.As(err, &me) && !me.Close && p != nil {
			err = nil // an MQTT 5 (UN)SUBSCRIBE with an invalid filter: answered per filter
		}
		if err != nil {
			if errors.As(err, &me) {
				// The stream cannot be trusted after a malformed packet: tell an MQTT 5 client
				// why and close, as the specification says.
				c.log.Info("MQTT protocol error, closing", "err", err)
				c.sendDisconnect(me.Code)
				return errMQTTClose
			}
			return err
		}
		if err := c.handle(p); err != nil {
			return err
		}
		if len(c.flowWaits) > 0 {
			c.waitFlow()
			clear(c.flowWaits)
			c.flowWaits = c.flowWaits[:0]
		}
	}
}

// protocolError closes the connection for a packet the client may not send: an MQTT 5 client is
// told with DISCONNECT.
func (c *mqttConn) protocolError(code mqtt.ReasonCode, msg string, args ...any) error {
	c.log.Info("MQTT protocol error, closing: "+msg, args...)
	c.sendDisconnect(code)
	return errMQTTClose
}

// handle handles one packet after CONNECT.
func (c *mqttConn) handle(p mqtt.Packet) error {
	switch p := p.(type) {
	case *mqtt.Publish:
		return c.handlePublish(p)
	case *mqtt.PubAck:
		return c.handlePuback(p.PacketID)
	case *mqtt.Subscribe:
		return c.handleSubscribe(p)
	case *mqtt.Unsubscribe:
		return c.handleUnsubscribe(p)
	case *mqtt.Pingreq:
		c.writePacket(nil, &mqtt.Pingresp{})
		return nil
	case *mqtt.Disconnect:
		if c.version == mqtt.V5 && p.Properties.Has(mqtt.PropSessionExpiry) {
			if c.expiry == 0 && p.Properties.SessionExpiry != 0 {
				return c.protocolError(mqtt.ProtocolError, "session expiry set in DISCONNECT after 0 in CONNECT")
			}
			c.expiry = p.Properties.SessionExpiry
			c.persistent = c.expiry > 0
		}
		// 0x04 (disconnect with will) asks for the will; any other reason discards it.
		c.normalExit = !(c.version == mqtt.V5 && p.ReasonCode == mqtt.DisconnectWithWill)
		return errMQTTClose
	case *mqtt.Connect:
		return c.protocolError(mqtt.ProtocolError, "second CONNECT")
	case *mqtt.PubRel:
		return c.handlePubrel(p.PacketID)
	case *mqtt.PubRec:
		return c.handlePubrec(p.PacketID, p.ReasonCode)
	case *mqtt.PubComp:
		return c.handlePubcomp(p.PacketID)
	case *mqtt.Auth:
		// No CONNECT of this broker's clients names an Authentication Method (one that does is
		// refused with CONNACK 0x8C), so an AUTH is a protocol error [MQTT-4.12.0-6].
		return c.protocolError(mqtt.ProtocolError, "AUTH without enhanced authentication")
	default:
		return c.protocolError(mqtt.ProtocolError, "unexpected packet", "type", p.Type())
	}
}

// endBatch ends a batch of packets before the read loop blocks: the deliveries the batch queued
// are written, and the PUBACKs it earned are sent (once their commit group is durable).
func (c *mqttConn) endBatch() {
	c.wb.flush()
	c.flushAcks()
}

// waitFlow stops reading until the queues a publish filled have drained (queue_flow.go), as the
// AMQP read loop does.
func (c *mqttConn) waitFlow() {
	waits := c.flowWaits
	c.endBatch()
	c.srv.awaitFlow(waits, c.stopped, c.out.done)
}

// waitPublishAllowed waits, without reading the socket, while the store is behind or a resource
// alarm is raised (publish.go). False: the connection is closing.
func (c *mqttConn) waitPublishAllowed() bool {
	return c.srv.awaitPublishAllowed(c.endBatch, c.log, c.stopped, c.out.done)
}

// settleLoop settles what deliver handed it under a queue's lock (mu.settle) with no lock held.
// It ends when serve closes settleBell, after draining.
func (c *mqttConn) settleLoop() {
	for range c.settleBell {
		c.drainSettle()
	}
	c.drainSettle()
}

func (c *mqttConn) drainSettle() {
	c.mu.Lock()
	todo := c.mu.settle
	c.mu.settle = nil
	c.mu.Unlock()
	for _, s := range todo {
		s.q.settle([]*qentry{s.e})
	}
}

// ringSettler wakes the settler, starting it on first use. c.mu is held and the connection is not
// closed (so serve has not yet looked at mu.settled).
func (c *mqttConn) ringSettler() {
	if c.mu.settled == nil {
		settled := make(chan struct{})
		c.mu.settled = settled
		c.srv.wg.Add(1)
		go func() {
			defer c.srv.wg.Done()
			defer close(settled)
			c.settleLoop()
		}()
	}
	select {
	case c.settleBell <- struct{}{}:
	default:
	}
}

// findMQTTConn returns the open MQTT connection called name, or nil.
func (s *Server) findMQTTConn(name string) *mqttConn {
	for _, c := range s.openMQTTConns() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// mqttProtocolName is the protocol of a connection as RabbitMQ lists it: "MQTT 3.1.0" (its name for
// 3.1), "MQTT 3.1.1", "MQTT 5.0".
func mqttProtocolName(v mqtt.Version) string {
	if v == mqtt.V31 {
		return "MQTT 3.1.0"
	}
	return "MQTT " + v.String()
}

// info is the connection's snapshot for the management API, as RabbitMQ shows an MQTT connection:
// protocol "MQTT 3.1.1", one channel, the keepalive as timeout, the client id in its client
// properties.
func (c *mqttConn) info() ConnectionInfo {
	ci := ConnectionInfo{
		Name: c.name, Vhost: c.vhost.name, User: c.user.name, Protocol: mqttProtocolName(c.version),
		Channels: 1, ChannelMax: 1, Heartbeat: int(c.keepAlive / time.Second),
		ClientProperties: amqp.Table{"client_id": c.clientID, "product": "MQTT client"},
	}
	if web, _ := webConn(c.nc); web {
		ci.Protocol = "Web " + ci.Protocol // RabbitMQ's "Web MQTT 3.1.1"
	}
	ci.Host, ci.Port = splitAddr(c.nc.LocalAddr())
	ci.PeerHost, ci.PeerPort = splitAddr(c.nc.RemoteAddr())
	if m, ok := c.nc.(*meteredConn); ok {
		ci.ConnectedAt = m.at
		ci.RecvOct = Stat{Count: m.recvOct.Load()}
		ci.SendOct = Stat{Count: m.sendOct.Load()}
		ci.RecvCnt, ci.SendCnt = m.recvCnt.Load(), m.sendCnt.Load()
	}
	if st := c.tls; st != nil {
		ci.TLS = &ConnTLS{Protocol: tlsVersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite)}
	}
	return ci
}
