package server

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// conn is one client connection. Its read loop (serve) owns every field not marked otherwise:
// negotiated settings, the channel table, content assembly. Other goroutines touch it only through
// out (the write side), the atomic fields, and closeFromOutside.
type conn struct {
	srv  *Server
	nc   net.Conn
	log  *slog.Logger
	out  *outbound
	id   uint64
	name string // "client-addr -> server-addr", as RabbitMQ names connections

	br *connReader // small while the connection is idle, 64 KiB once busy (connreader.go)
	fr *amqp.FrameReader
	md amqp.MethodDecoder // reuses basic.publish and basic.ack: a method is handled before the next is decoded

	// Negotiated in the handshake; read-only afterwards.
	frameMax    uint32
	channelMax  uint16
	heartbeat   time.Duration
	idleTimeout time.Duration // 2 heartbeats: a peer silent this long is gone
	user        *user
	vhost       *vhost
	clientProps amqp.Table
	caps        clientCaps
	tls         *tls.ConnectionState // nil on plain TCP; set by the handshake
	loginName   string               // the user name the client tried to log in as (for logs)
	direct      bool                 // an in-process connection (DialDirect): EXTERNAL as the user "none"

	channels     map[uint16]*channel
	confirmDirty []*channel   // channels with confirms to send at the end of this read batch
	holding      []*channel   // channels holding deliveries until the end of this read batch (holdDeliveries)
	wb           writeBatch   // connections this read batch queued deliveries for (outbound.writeVia)
	lastGroup    *commitGroup // the last commit group a publish of this connection must wait for
	groupFresh   bool         // a publish since the last flush wrote to lastGroup
	flowWaits    []flowWait   // queues to wait for before reading on (queue_flow.go)
	// readAt is when the last bytes came off the socket (Unix ms): the arrival time of the
	// messages they carry, without a clock read per message.
	readAt int64

	stopped  chan struct{} // closed by closeFromOutside: wakes a read loop waiting on a blocked publish
	stopOnce sync.Once

	adm connAdmin // what the management API reads (its channel registry, at the end of this file)

	opening bool         // the handshake reached connection.open (errors get connection.close)
	open    atomic.Bool  // connection.open accepted: closes go through out (the write loop starts next)
	closeAt atomic.Int64 // unix nanos: we sent connection.close and wait for close-ok until then
}

// clientCaps are the capabilities the client announced in connection.start-ok.
type clientCaps struct {
	consumerCancelNotify bool
	authFailureClose     bool
	connectionBlocked    bool
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		out:        newOutbound(nc),
		id:         s.connSeq.Add(1),
		name:       nc.RemoteAddr().String() + " -> " + nc.LocalAddr().String(),
		channels:   map[uint16]*channel{},
		stopped:    make(chan struct{}),
		frameMax:   amqp.FrameMinSize,
		channelMax: s.opts.ChannelMax,
	}
	c.out.onDrain = c.kickAll
	c.log = s.log.With("conn", c.name)
	c.br = newConnReader(deadlineReader{c})
	c.fr = amqp.NewFrameReader(c.br)
	return c
}

// deadlineReader arms the read deadline before every socket read: the heartbeat timeout while the
// connection is open, or the close-ok deadline once we have sent connection.close.
type deadlineReader struct{ c *conn }

func (r deadlineReader) Read(p []byte) (int, error) {
	c := r.c
	if at := c.closeAt.Load(); at != 0 {
		c.nc.SetReadDeadline(time.Unix(0, at))
	} else if c.idleTimeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.idleTimeout))
		// closeFromOutside may have stored closeAt between the load and the set above.
		if at := c.closeAt.Load(); at != 0 {
			c.nc.SetReadDeadline(time.Unix(0, at))
		}
	}
	n, err := c.nc.Read(p)
	if n > 0 {
		c.readAt = nowMillis()
	}
	return n, err
}

// serve runs the connection: handshake, then the read loop, then teardown. It returns when the
// connection is closed and its write loop has ended.
func (c *conn) serve() {
	defer c.nc.Close()
	if !c.handshake() {
		return
	}
	done := make(chan struct{})
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		defer close(done)
		c.out.run(c.heartbeat)
	}()
	c.log.Debug("connection open", "user", c.user.name, "vhost", c.vhost.name)

	err := c.readLoop()
	switch {
	case errors.Is(err, errConnClosedByClient):
		// close-ok is on its way: let the client close the socket first, so that it reads
		// close-ok rather than a reset or an early EOF.
		// closeAt (not a plain deadline) so that deadlineReader does not extend it.
		c.closeAt.Store(time.Now().Add(time.Second).UnixNano())
		io.Copy(io.Discard, c.br)
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded) && c.closeAt.Load() == 0:
		c.log.Warn("missed heartbeats from client, closing", "timeout", c.idleTimeout)
	default:
		c.log.Debug("connection read ended", "err", err)
	}
	c.teardown()
	// Flush what is queued (a close-ok, a final close) but do not wait on a stuck peer for long.
	c.nc.SetWriteDeadline(time.Now().Add(closeOkTimeout))
	c.out.closeAfterFlush()
	<-done
	c.log.Debug("connection closed")
}

// readLoop reads frames until the connection ends. Frame errors are answered with connection.close.
func (c *conn) readLoop() error {
	defer c.wb.flush()
	for {
		if len(c.flowWaits) > 0 {
			// A publish filled a queue that others drain: stop reading until it has drained
			// (unless we are closing: then the rest of the stream is discarded anyway).
			if c.closeAt.Load() == 0 {
				c.waitFlow()
			}
			clear(c.flowWaits)
			c.flowWaits = c.flowWaits[:0]
		}
		if (len(c.confirmDirty) > 0 || len(c.wb.outs) > 0 || len(c.holding) > 0) && !c.frameBuffered() {
			// About to block on the socket: send the confirms this batch of frames earned and
			// the deliveries it made.
			c.endBatch()
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			var ae *amqp.Error
			if errors.As(err, &ae) && c.closeAt.Load() == 0 {
				// The stream cannot be trusted after a framing error: close without waiting.
				c.sendConnClose(ae)
				return nil
			}
			return err
		}
		if c.closeAt.Load() != 0 {
			if done := c.handleWhileClosing(f); done {
				return nil
			}
			continue
		}
		if err := c.handleFrame(f); err != nil {
			if errors.Is(err, errConnClosedByClient) {
				return err
			}
			var ae *amqp.Error
			if !errors.As(err, &ae) {
				ae = amqp.Errorf(amqp.InternalError, "%v", err)
			}
			c.sendConnClose(ae)
		}
	}
}

// frameBuffered reports whether a whole frame is already in the read buffer, so reading it will
// not block on the socket.
func (c *conn) frameBuffered() bool {
	h := c.br.peekBuffered(7)
	if h == nil {
		return false
	}
	return uint64(c.br.Buffered()) >= uint64(binary.BigEndian.Uint32(h[3:7]))+8
}

// replyMethodBufferedFor reports whether the next frame, already read whole, is a method frame
// on channel ch other than basic.ack, basic.nack and basic.reject (a method pipelined behind the
// one being handled whose reply must come first, see channel.holdDeliveries).
func (c *conn) replyMethodBufferedFor(ch uint16) bool {
	if !c.frameBuffered() {
		return false
	}
	h := c.br.peekBuffered(11)
	if h == nil || h[0] != amqp.FrameMethod || binary.BigEndian.Uint16(h[1:3]) != ch {
		return false
	}
	class, method := binary.BigEndian.Uint16(h[7:9]), binary.BigEndian.Uint16(h[9:11])
	return class != amqp.ClassBasic || method != 80 && method != 90 && method != 120
}

// errConnClosedByClient ends the read loop after the client's connection.close was answered.
var errConnClosedByClient = errors.New("connection closed by client")

// handleWhileClosing discards everything but connection.close-ok (and a crossing connection.close)
// after we have sent connection.close. It reports whether the connection is done.
func (c *conn) handleWhileClosing(f amqp.Frame) bool {
	if f.Type != amqp.FrameMethod || f.Channel != 0 {
		return false
	}
	m, err := amqp.DecodeMethod(f.Payload)
	if err != nil {
		return false
	}
	switch m.(type) {
	case *amqp.ConnectionCloseOk:
		return true
	case *amqp.ConnectionClose:
		c.out.writeMethod(0, &amqp.ConnectionCloseOk{})
		return true
	}
	return false
}

// sendConnClose sends connection.close for a hard error and arms the close-ok deadline.
func (c *conn) sendConnClose(e *amqp.Error) {
	if e.Code != amqp.ConnectionForced {
		c.log.Warn("closing connection", "code", e.Code, "text", e.Text)
	}
	c.closeAt.Store(time.Now().Add(closeOkTimeout).UnixNano())
	c.out.writeMethod(0, &amqp.ConnectionClose{
		ReplyCode: e.Code, ReplyText: truncate(e.Text, 255), FailingClassID: e.ClassID, FailingMethodID: e.MethodID,
	})
}

// closeFromOutside closes the connection from another goroutine (shutdown, management): it sends
// connection.close and lets the read loop wait for close-ok until the deadline.
func (c *conn) closeFromOutside(code uint16, text string) {
	// Wake a read loop held by a blocked publish only once closeAt is set, so that it discards
	// the rest of that publish instead of reading it as a new frame sequence.
	defer c.stopOnce.Do(func() { close(c.stopped) })
	if !c.open.Load() {
		c.nc.Close()
		return
	}
	at := time.Now().Add(closeOkTimeout)
	if !c.closeAt.CompareAndSwap(0, at.UnixNano()) {
		return // already closing
	}
	c.out.writeMethod(0, &amqp.ConnectionClose{ReplyCode: code, ReplyText: truncate(text, 255)})
	c.nc.SetReadDeadline(at)
}

func (c *conn) handleFrame(f amqp.Frame) error {
	switch f.Type {
	case amqp.FrameHeartbeat:
		if f.Channel != 0 {
			return amqp.UnexpectedFrameError(f)
		}
		return nil
	case amqp.FrameMethod:
		m, err := c.md.Decode(f.Payload)
		if err != nil {
			return err
		}
		if f.Channel == 0 {
			return c.handleConnMethod(m)
		}
		if _, ok := m.(*amqp.BasicPublish); ok && !c.waitPublishAllowed() {
			return nil
		}
		return c.channelMethod(f.Channel, m)
	case amqp.FrameHeader, amqp.FrameBody:
		if f.Channel == 0 {
			return amqp.Errorf(amqp.UnexpectedFrame, "expected method frame, got non method frame on channel 0")
		}
		ch := c.channels[f.Channel]
		if ch == nil {
			return amqp.Errorf(amqp.ChannelError, "expected 'channel.open'")
		}
		ch.loopMu.Lock()
		defer ch.loopMu.Unlock()
		return ch.handleContent(f)
	}
	return amqp.Errorf(amqp.FrameError, "unknown frame type %d", f.Type)
}

func (c *conn) handleConnMethod(m amqp.Method) error {
	switch m := m.(type) {
	case *amqp.ConnectionClose:
		c.log.Debug("client closed connection", "code", m.ReplyCode, "text", m.ReplyText)
		// Release everything first: once the client has close-ok, its unacked messages are back
		// in their queues and its exclusive queues are gone.
		c.flushConfirms()
		c.awaitCommits()
		c.teardown()
		c.out.writeMethod(0, &amqp.ConnectionCloseOk{})
		return errConnClosedByClient
	case *amqp.ConnectionCloseOk:
		return errConnClosedByClient
	case *amqp.ConnectionUpdateSecret:
		// PLAIN/AMQPLAIN credentials do not expire; accept the new secret as RabbitMQ does for them.
		return c.out.writeMethod(0, &amqp.ConnectionUpdateSecretOk{})
	case *amqp.ConnectionBlocked, *amqp.ConnectionUnblocked:
		return nil // client-side flow notices carry no meaning for the server
	}
	if m.ClassID() != amqp.ClassConnection {
		return methodErr(amqp.Errorf(amqp.ChannelError, "unexpected method in connection state running"), m)
	}
	return methodErr(amqp.Errorf(amqp.CommandInvalid, "unimplemented method"), m)
}

// channelMethod routes a method to its channel, opening it on channel.open.
func (c *conn) channelMethod(id uint16, m amqp.Method) error {
	ch := c.channels[id]
	if ch == nil {
		if _, ok := m.(*amqp.ChannelOpen); !ok {
			return methodErr(amqp.Errorf(amqp.ChannelError, "expected 'channel.open'"), m)
		}
		// RabbitMQ limits how many channels are open, not their numbers.
		if len(c.channels) >= int(c.channelMax) {
			return amqp.Errorf(amqp.NotAllowed, "number of channels opened (%d) has reached the negotiated channel_max (%d)", len(c.channels), c.channelMax)
		}
		if err := c.checkUserChannelLimit(); err != nil {
			return err
		}
		ch = newChannel(c, id)
		c.channels[id] = ch
		return c.out.writeMethod(id, &amqp.ChannelOpenOk{})
	}
	ch.loopMu.Lock()
	defer ch.loopMu.Unlock()
	return ch.handleMethod(m)
}

// kickAll asks every queue the connection's channels consume from to deliver again (the write
// loop calls it, with no lock held, when it took a full buffer).
func (c *conn) kickAll() {
	for _, ch := range c.channelList() {
		ch.kickConsumers(nil) // the write loop: no batch
	}
}

// teardown releases everything the connection holds: channels (consumers cancelled, unacked
// messages requeued) and its exclusive queues.
func (c *conn) teardown() {
	// First no channel of the connection takes a delivery any more, then each requeues its unacked
	// messages: those go to other connections' consumers, not to a channel about to be torn down.
	for _, ch := range c.channels {
		ch.stopConsumers()
	}
	for id, ch := range c.channels {
		ch.teardown()
		delete(c.channels, id)
	}
	if c.vhost != nil {
		c.vhost.dropExclusive(c)
	}
}

// endBatch ends a batch of frames before the read loop blocks on its socket, or waits for flow
// control, an alarm or the store's throttle: the deliveries it queued for consumers are written
// and the confirms it earned are sent. No lock may be held (it writes to sockets).
func (c *conn) endBatch() {
	for i, ch := range c.holding {
		ch.releaseHeld()
		c.holding[i] = nil
	}
	c.holding = c.holding[:0]
	c.wb.flush()
	c.flushConfirms()
}

// awaitCommits waits until the connection's writes are durable and their confirms sent. It
// returns the store's error if a write made since the last confirm flush failed.
func (c *conn) awaitCommits() error {
	g := c.lastGroup
	if g == nil {
		return nil
	}
	// The batch's deliveries are not written first: callers hold channel.loopMu, and no lock is
	// held across socket I/O. They go out when the batch ends, after the commit (which does not
	// depend on them).
	<-g.done
	c.lastGroup = nil
	if c.groupFresh {
		c.groupFresh = false
		return g.err
	}
	return nil
}

// methodErr returns a copy of e naming m as the failing method (e itself may be shared).
func methodErr(e *amqp.Error, m amqp.Method) *amqp.Error {
	ce := *e
	if m != nil {
		ce.ClassID, ce.MethodID = m.ClassID(), m.MethodID()
	}
	return &ce
}

// truncate cuts a reply text to n octets as RabbitMQ does: the first n-3 and "...".
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func (c *conn) String() string { return fmt.Sprintf("conn %d (%s)", c.id, c.name) }

// --- the channel registry the management API reads ---

// connAdmin is what the management API reads of a connection besides its immutable fields.
type connAdmin struct {
	mechanism string // written by the handshake before conn.open is set

	mu struct {
		sync.Mutex
		chans map[uint16]*channel // open channels, by number
	}
}

// addChannel registers a new channel of c (called by newChannel).
func (c *conn) addChannel(ch *channel) {
	c.adm.mu.Lock()
	if c.adm.mu.chans == nil {
		c.adm.mu.chans = map[uint16]*channel{}
	}
	c.adm.mu.chans[ch.id] = ch
	c.adm.mu.Unlock()
	c.srv.adm.stats.inc(sChanCreated)
}

// removeChannel forgets ch (called once, by its teardown).
func (c *conn) removeChannel(ch *channel) {
	c.adm.mu.Lock()
	if c.adm.mu.chans[ch.id] == ch {
		delete(c.adm.mu.chans, ch.id)
	}
	c.adm.mu.Unlock()
	c.srv.adm.stats.inc(sChanClosed)
}

func (c *conn) channelList() []*channel {
	c.adm.mu.Lock()
	defer c.adm.mu.Unlock()
	out := make([]*channel, 0, len(c.adm.mu.chans))
	for _, ch := range c.adm.mu.chans {
		out = append(out, ch)
	}
	return out
}
