package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Handler receives what a Transport reads and what it learns about its sends. Its methods are
// called from the transport's goroutines.
type Handler interface {
	// Receive takes the messages a peer sent (every one addressed to this node and from that
	// peer). It may block to push back on the peer, but must return once the handler stops.
	Receive(from uint64, envs []Envelope)
	// Unreachable reports that messages to peer for these groups were lost (a write failed, or
	// they were queued when the connection broke). It must not block.
	Unreachable(peer uint64, groups []uint64)
	// SnapshotStatus reports whether a MsgSnap to peer for group was written to the connection
	// (ok) or lost. It must not block.
	SnapshotStatus(peer, group uint64, ok bool)
}

// TransportOptions configure a Transport.
type TransportOptions struct {
	// ID is this node's Raft id; Cluster the cluster's name, which both ends of a connection must
	// share.
	ID      uint64
	Cluster string
	// Listener is the inter-node listener (the transport owns and closes it). When its address is
	// a specific IP, outgoing connections leave from that IP too.
	Listener net.Listener
	// Peers are the other nodes' ids and addresses (host:port).
	Peers map[uint64]string
	// QueueSize bounds the messages queued for one peer (default 4096); past it Send drops.
	QueueSize int
	// MaxFrame bounds one frame in either direction (default DefaultMaxFrame).
	MaxFrame int
	// DialTimeout and WriteTimeout bound a dial with its handshake and one frame's write
	// (defaults 2 s and 5 s).
	DialTimeout, WriteTimeout time.Duration
	// BackoffMin and BackoffMax bound the pause before a redial (defaults 20 ms and 1 s).
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
}

// Transport carries Raft messages between nodes: one TCP connection per pair of nodes, dialed by
// the node with the lower id, used both ways; each direction carries batch frames of messages
// tagged with their group. Send never blocks: each peer has a bounded queue that a writer
// goroutine drains into batches.
type Transport struct {
	o      TransportOptions
	h      Handler
	ln     net.Listener
	local  *net.TCPAddr // outgoing connections' local address (nil: any)
	peers  map[uint64]*peer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger

	isolated  atomic.Bool
	closeOnce sync.Once

	mu       sync.Mutex
	shaking  map[net.Conn]struct{} // accepted connections in their handshake
	isClosed bool

	framesOut, msgsOut, msgsIn, dropped atomic.Uint64
}

type peer struct {
	t        *Transport
	id       uint64
	addr     string
	dialer   bool          // this node dials the peer (its id is lower)
	q        chan Envelope // messages waiting for the writer
	incoming chan net.Conn // acceptor side: a connection the peer dialed, after its handshake
	up       atomic.Bool   // a connection is established

	mu   sync.Mutex
	conn net.Conn
}

// TransportStats are counters since the transport started.
type TransportStats struct {
	FramesSent, MessagesSent, MessagesReceived, Dropped uint64
}

// NewTransport starts a transport on o.Listener and its connections to o.Peers.
func NewTransport(o TransportOptions, h Handler) (*Transport, error) {
	if o.ID == 0 {
		return nil, errors.New("cluster: transport: node id 0")
	}
	if o.Listener == nil {
		return nil, errors.New("cluster: transport: no listener")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 20 * time.Millisecond
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(time.Second, o.BackoffMin)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t := &Transport{o: o, h: h, ln: o.Listener, peers: map[uint64]*peer{}, shaking: map[net.Conn]struct{}{},
		log: o.Logger.With("node", o.ID)}
	if a, ok := o.Listener.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		t.local = &net.TCPAddr{IP: a.IP}
	}
	for id, addr := range o.Peers {
		if id == o.ID || id == 0 {
			return nil, fmt.Errorf("cluster: transport: peer id %d", id)
		}
		t.peers[id] = &peer{t: t, id: id, addr: addr, dialer: o.ID < id,
			q: make(chan Envelope, o.QueueSize), incoming: make(chan net.Conn, 1)}
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1 + len(t.peers))
	go t.accept()
	for _, p := range t.peers {
		go p.run()
	}
	return t, nil
}

// Addr is the listener's address.
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// Stats returns the transport's counters.
func (t *Transport) Stats() TransportStats {
	return TransportStats{FramesSent: t.framesOut.Load(), MessagesSent: t.msgsOut.Load(),
		MessagesReceived: t.msgsIn.Load(), Dropped: t.dropped.Load()}
}

// Send queues m for peer to. It never blocks: when the peer is not connected, the transport is
// isolated or the peer's queue is full, it drops m and returns false (the caller reports the
// peer unreachable to raft, or the snapshot failed).
func (t *Transport) Send(to, group uint64, m *pb.Message) bool {
	p := t.peers[to]
	if p == nil || t.isolated.Load() || !p.up.Load() {
		t.dropped.Add(1)
		return false
	}
	select {
	case p.q <- Envelope{Group: group, Msg: m}:
		return true
	default:
		t.dropped.Add(1)
		return false
	}
}

// Connected reports whether a connection to peer is established.
func (t *Transport) Connected(peer uint64) bool {
	p := t.peers[peer]
	return p != nil && p.up.Load()
}

// SetIsolated cuts this node off (on) or reconnects it: while isolated, its connections are
// closed, it neither dials nor accepts, and Send drops everything. For fault tests (a partition of
// one node) and for operators fencing a node.
func (t *Transport) SetIsolated(on bool) {
	t.isolated.Store(on)
	if on {
		for _, p := range t.peers {
			p.closeConn()
		}
	}
}

// Close stops the transport: closes the listener and every connection and waits for its
// goroutines.
func (t *Transport) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.cancel()
		err = t.ln.Close()
		t.mu.Lock()
		t.isClosed = true
		for c := range t.shaking {
			_ = c.Close()
		}
		t.mu.Unlock()
		for _, p := range t.peers {
			p.closeConn()
		}
		t.wg.Wait()
		for _, p := range t.peers {
			select {
			case c := <-p.incoming:
				_ = c.Close()
			default:
			}
		}
	})
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("cluster: transport close: %w", err)
	}
	return nil
}

func (t *Transport) closing() bool { return t.ctx.Err() != nil }

// pause waits d or until the transport closes (false).
func (t *Transport) pause(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

func (t *Transport) accept() {
	defer t.wg.Done()
	backoff := t.o.BackoffMin
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.closing() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("cluster: accept", "err", err)
			if !t.pause(backoff) {
				return
			}
			backoff = min(2*backoff, t.o.BackoffMax)
			continue
		}
		backoff = t.o.BackoffMin
		t.mu.Lock()
		if t.isClosed {
			t.mu.Unlock()
			_ = c.Close()
			return
		}
		t.shaking[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.handshakeIn(c)
	}
}

// handshakeIn reads an accepted connection's hello and, when it names this cluster and node and a
// peer that dials this node, answers helloOK and hands the connection to that peer.
func (t *Transport) handshakeIn(c net.Conn) {
	defer t.wg.Done()
	handed := false
	defer func() {
		t.mu.Lock()
		delete(t.shaking, c)
		t.mu.Unlock()
		if !handed {
			_ = c.Close()
		}
	}()
	_ = c.SetDeadline(time.Now().Add(t.o.DialTimeout))
	typ, payload, _, err := readFrame(c, nil, 4096)
	if err != nil {
		t.log.Debug("cluster: handshake read", "remote", c.RemoteAddr(), "err", err)
		return
	}
	refuse := func(reason string) {
		t.log.Warn("cluster: refused a connection", "remote", c.RemoteAddr(), "reason", reason)
		_, _ = c.Write(appendFrame(nil, frameHelloErr, []byte(reason)))
	}
	if typ != frameHello {
		refuse(fmt.Sprintf("expected a hello frame, got type %d", typ))
		return
	}
	h, err := decodeHello(payload)
	if err != nil {
		refuse(err.Error())
		return
	}
	p := t.peers[h.from]
	switch {
	case h.version != wireVersion:
		refuse(fmt.Sprintf("wire version %d, this node speaks %d", h.version, wireVersion))
		return
	case h.cluster != t.o.Cluster:
		refuse(fmt.Sprintf("cluster %q, this node is in cluster %q", h.cluster, t.o.Cluster))
		return
	case h.to != t.o.ID:
		refuse(fmt.Sprintf("dialed node %d, this is node %d", h.to, t.o.ID))
		return
	case p == nil:
		refuse(fmt.Sprintf("node %d is not a member", h.from))
		return
	case p.dialer:
		refuse(fmt.Sprintf("node %d has the higher id: this node dials it", h.from))
		return
	case t.isolated.Load():
		refuse("node isolated")
		return
	}
	var ok [8]byte
	putUint64(ok[:], t.o.ID)
	if _, err := c.Write(appendFrame(nil, frameHelloOK, ok[:])); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	// Hand over, replacing a connection the peer's goroutine has not taken yet.
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		select {
		case p.incoming <- c:
			handed = true
			return
		default:
		}
		select {
		case old := <-p.incoming:
			_ = old.Close()
		default:
		}
	}
}

func (p *peer) setConn(c net.Conn) {
	p.mu.Lock()
	p.conn = c
	p.mu.Unlock()
}

func (p *peer) closeConn() {
	p.mu.Lock()
	if p.conn != nil {
		_ = p.conn.Close()
	}
	p.mu.Unlock()
}

// run is the peer's goroutine: get a connection (dial it, or take the one the peer dialed), serve
// it until it breaks, repeat.
func (p *peer) run() {
	t := p.t
	defer t.wg.Done()
	backoff := t.o.BackoffMin
	var next net.Conn
	for {
		c := next
		next = nil
		if c == nil {
			if p.dialer {
				c = p.dialLoop(&backoff)
			} else {
				select {
				case c = <-p.incoming:
				case <-t.ctx.Done():
				}
			}
		}
		if c == nil || t.closing() {
			if c != nil {
				_ = c.Close()
			}
			p.dropQueued()
			return
		}
		next = p.serve(c)
		if p.dialer && !t.pause(backoff) {
			p.dropQueued()
			return
		}
	}
}

// dialLoop dials the peer until a handshake succeeds (nil: the transport closed).
func (p *peer) dialLoop(backoff *time.Duration) net.Conn {
	t := p.t
	for {
		if t.closing() {
			return nil
		}
		if !t.isolated.Load() {
			c, err := p.dial()
			if err == nil {
				*backoff = t.o.BackoffMin
				return c
			}
			t.log.Debug("cluster: dial", "peer", p.id, "addr", p.addr, "err", err)
		}
		if !t.pause(*backoff) {
			return nil
		}
		*backoff = min(2**backoff, t.o.BackoffMax)
	}
}

func (p *peer) dial() (net.Conn, error) {
	t := p.t
	d := net.Dialer{Timeout: t.o.DialTimeout}
	if t.local != nil {
		d.LocalAddr = t.local
	}
	c, err := d.DialContext(t.ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	// Registered at once so that Close and SetIsolated can interrupt the handshake.
	p.setConn(c)
	fail := func(err error) (net.Conn, error) {
		p.setConn(nil)
		_ = c.Close()
		return nil, err
	}
	if t.isolated.Load() || t.closing() {
		return fail(errors.New("isolated or closing"))
	}
	_ = c.SetDeadline(time.Now().Add(t.o.DialTimeout))
	if _, err := c.Write(appendHello(nil, hello{version: wireVersion, cluster: t.o.Cluster, from: t.o.ID, to: p.id})); err != nil {
		return fail(err)
	}
	typ, payload, _, err := readFrame(c, nil, 4096)
	if err != nil {
		return fail(fmt.Errorf("handshake: %w", err))
	}
	switch {
	case typ == frameHelloErr:
		err := fmt.Errorf("peer %d at %s refused the connection: %s", p.id, p.addr, payload)
		t.log.Warn("cluster: handshake", "err", err)
		return fail(err)
	case typ != frameHelloOK || len(payload) != 8:
		return fail(fmt.Errorf("handshake: %w: reply type %d", ErrMalformed, typ))
	case readUint64(payload) != p.id:
		err := fmt.Errorf("peer at %s is node %d, not %d", p.addr, readUint64(payload), p.id)
		t.log.Warn("cluster: handshake", "err", err)
		return fail(err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// maxBatch bounds the messages in one batch frame.
const maxBatch = 1024

// serve runs an established connection: a reader goroutine and the writer loop here. It returns
// when the connection breaks or the transport closes; on the acceptor side it returns a newer
// connection the peer dialed, which replaces this one.
func (p *peer) serve(c net.Conn) (next net.Conn) {
	t := p.t
	p.setConn(c)
	readErr := make(chan error, 1)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		readErr <- p.read(c)
	}()
	p.up.Store(true)
	var incoming chan net.Conn
	if !p.dialer {
		incoming = p.incoming
	}
	var (
		batch []Envelope
		buf   []byte
		rerr  error
	)
	readerDone := false
loop:
	for {
		select {
		case e := <-p.q:
			batch = append(batch[:0], e)
		drain:
			for len(batch) < maxBatch {
				select {
				case e := <-p.q:
					batch = append(batch, e)
				default:
					break drain
				}
			}
			var err error
			if buf, err = appendBatch(buf[:0], batch); err == nil && len(buf)-4 > t.o.MaxFrame {
				err = fmt.Errorf("batch of %d bytes over the frame limit %d", len(buf)-4, t.o.MaxFrame)
			}
			if err != nil {
				// Not the connection's fault (a message too large): drop the batch.
				t.log.Warn("cluster: send", "peer", p.id, "err", err)
				p.lost(batch)
				continue
			}
			_ = c.SetWriteDeadline(time.Now().Add(t.o.WriteTimeout))
			if _, err := c.Write(buf); err != nil {
				t.log.Debug("cluster: write", "peer", p.id, "err", err)
				p.lost(batch)
				break loop
			}
			t.framesOut.Add(1)
			t.msgsOut.Add(uint64(len(batch)))
			for _, e := range batch {
				if e.Msg.GetType() == pb.MessageType_MsgSnap {
					t.h.SnapshotStatus(p.id, e.Group, true)
				}
			}
			clear(batch)
			if cap(buf) > 1<<20 {
				buf = nil // do not keep a snapshot's buffer
			}
		case rerr = <-readErr:
			readerDone = true
			if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, net.ErrClosed) {
				t.log.Debug("cluster: read", "peer", p.id, "err", rerr)
			}
			break loop
		case next = <-incoming:
			break loop
		case <-t.ctx.Done():
			break loop
		}
	}
	p.up.Store(false)
	p.setConn(nil)
	_ = c.Close()
	if !readerDone {
		<-readErr
	}
	p.dropQueued()
	return next
}

// read is a connection's reader: batch frames in, to the handler. Any malformed frame, or a
// message not from the peer to this node, closes the connection.
func (p *peer) read(c net.Conn) error {
	t := p.t
	br := bufio.NewReaderSize(c, 64<<10)
	var buf []byte
	for {
		typ, payload, b, err := readFrame(br, buf, t.o.MaxFrame)
		buf = b
		if err != nil {
			return err
		}
		if typ != frameBatch {
			return fmt.Errorf("%w: frame type %d after the handshake", ErrMalformed, typ)
		}
		envs, err := decodeBatch(payload)
		if err != nil {
			t.log.Warn("cluster: closing the connection", "peer", p.id, "err", err)
			_ = c.Close()
			return err
		}
		for _, e := range envs {
			if e.Msg.GetTo() != t.o.ID || e.Msg.GetFrom() != p.id {
				err := fmt.Errorf("%w: message from %d to %d on the connection from %d", ErrMalformed, e.Msg.GetFrom(), e.Msg.GetTo(), p.id)
				t.log.Warn("cluster: closing the connection", "peer", p.id, "err", err)
				_ = c.Close()
				return err
			}
		}
		if cap(buf) > 1<<20 {
			buf = nil
		}
		t.msgsIn.Add(uint64(len(envs)))
		t.h.Receive(p.id, envs)
	}
}

// lost reports a batch that did not reach the peer.
func (p *peer) lost(batch []Envelope) {
	var groups []uint64
	seen := map[uint64]bool{}
	for _, e := range batch {
		p.t.dropped.Add(1)
		if e.Msg.GetType() == pb.MessageType_MsgSnap {
			p.t.h.SnapshotStatus(p.id, e.Group, false)
		}
		if !seen[e.Group] {
			seen[e.Group] = true
			groups = append(groups, e.Group)
		}
	}
	if len(groups) > 0 {
		p.t.h.Unreachable(p.id, groups)
	}
}

// dropQueued empties the queue of a peer that is not connected.
func (p *peer) dropQueued() {
	var batch []Envelope
	for {
		select {
		case e := <-p.q:
			batch = append(batch, e)
		default:
			p.lost(batch)
			return
		}
	}
}
