package server

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/stomp"
)

// The STOMP front end (issue 18): STOMP 1.0, 1.1 and 1.2 over TCP, as RabbitMQ 3.10.8's
// rabbitmq_stomp plugin serves them, on the core's seams (docs/DESIGN.md, "Seams"): a SEND is a
// publish through vhost.publish with the connection as its publishSource (stomp_send.go), a
// SUBSCRIBE is a subscription whose deliveryTarget writes MESSAGE frames (stomp_sub.go). The
// codec is the stomp package.
//
// Each connection has three goroutines, all counted in Server.wg: the read loop (serve, which
// owns every field not marked otherwise), the write loop (outbound.run, which also writes the
// server's heart-beats) and the receipt writer (receiptLoop, which waits for the commit groups
// of receipted persistent SENDs in order and then writes their RECEIPT frames).

// The STOMP listeners' protocols, as RabbitMQ's /api/overview names them.
const (
	ProtocolSTOMP  = "stomp"
	ProtocolSTOMPS = "stomp/ssl"
)

// ServeSTOMP accepts STOMP connections on ln until Shutdown, as Serve does for AMQP; it lists the
// listener as RabbitMQ's "stomp".
func (s *Server) ServeSTOMP(ln net.Listener) error {
	return s.serve(ln, Listener{Protocol: ProtocolSTOMP})
}

// ServeSTOMPTLS is ServeSTOMP over TLS ("stomp/ssl"), as ServeTLS is Serve. The TLS handshake runs
// on the connection's goroutine, within the handshake timeout.
func (s *Server) ServeSTOMPTLS(ln net.Listener, cfg *tls.Config, files TLSFiles) error {
	return s.serve(tls.NewListener(ln, cfg), Listener{Protocol: ProtocolSTOMPS, Files: files})
}

// stompServerName is the CONNECTED frame's server header.
const stompServerName = "Warren/3.10.8"

// stompVersions is what ERROR frames list in their version header, as RabbitMQ does.
const stompVersions = "1.0,1.1,1.2"

// stompConn is one STOMP connection.
type stompConn struct {
	srv     *Server
	nc      net.Conn
	log     *slog.Logger
	out     *outbound
	id      uint64
	name    string
	session string // "session-<random>", in the CONNECTED frame and message ids

	// owner stands for this connection where the core names an AMQP connection: the owner of
	// its exclusive queues, the user and vhost of permission checks (access.go). It is never
	// served and has no socket.
	owner *conn

	v        stomp.Version
	user     *user
	vhost    *vhost
	clientID string // the CONNECT's client-id header (durable subscriptions' queue names)
	dec      stomp.Decoder
	rb       []byte // read buffer: rb[r:w] is unread
	r, w     int
	// readIdle is how long the client may stay silent (3 times its heart-beat, as RabbitMQ); 0:
	// forever.
	readIdle time.Duration
	hbEvery  time.Duration // the server's heart-beat interval (0: none)
	readAt   int64         // Unix ms of the last read: the arrival time of the messages it carries

	pubAccess  publishAccess
	wb         writeBatch
	flowWaits  []flowWait
	lastGroup  *commitGroup // the commit group the last publish joined (its receipt waits for it)
	durable    *commitGroup // the last publish's commit group that was not nil (DISCONNECT's receipt)
	committing bool         // COMMIT is replaying its transaction's frames
	receipts   chan stompReceipt
	txs        map[string][]stomp.Frame // open transactions: their frames, cloned, until COMMIT
	subs       map[string]*stompSub     // by subscription id

	stopped  chan struct{} // closed by closeFromOutside
	stopOnce sync.Once
	closing  atomic.Bool // closeFromOutside ran: the read loop ends at its next wait
	// openVhost is vhost once CONNECT succeeded, for DeleteVhost on another goroutine.
	openVhost atomic.Pointer[vhost]

	mu struct { // guards what deliveries (on queue goroutines) share with the read loop
		sync.Mutex
		closed  bool
		tag     uint64           // the last delivery tag handed out (message-id suffix)
		unacked []*stompDelivery // by tag
		subs    []*stompSub      // the live subscriptions (kickAll)
	}
}

// stompReceipt is a RECEIPT to write once g (if any) is durable.
type stompReceipt struct {
	id string
	g  *commitGroup
}

func newStompConn(s *Server, nc net.Conn) *stompConn {
	sc := &stompConn{
		srv:      s,
		nc:       nc,
		out:      newOutbound(nc),
		id:       s.connSeq.Add(1),
		name:     nc.RemoteAddr().String() + " -> " + nc.LocalAddr().String(),
		session:  "session-" + randomSession(),
		txs:      map[string][]stomp.Frame{},
		subs:     map[string]*stompSub{},
		stopped:  make(chan struct{}),
		receipts: make(chan stompReceipt, 256),
	}
	sc.out.hbFrame = []byte{'\n'}
	sc.out.onDrain = sc.kickAll
	sc.log = s.log.With("conn", sc.name, "protocol", "stomp")
	sc.dec.Limits = stomp.Limits{MaxBody: s.opts.MaxMessageSize}
	sc.owner = &conn{srv: s, id: sc.id, name: sc.name, log: sc.log, stopped: make(chan struct{})}
	return sc
}

func randomSession() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// serveSTOMPConn registers sc and serves it on a goroutine the server's WaitGroup owns; false if
// the server is closed.
func (s *Server) serveSTOMPConn(sc *stompConn) bool { return serveTracked(s, s.mu.stomp, sc) }

// closeFromOutside ends the connection from another goroutine (Shutdown, a deleted vhost): an
// ERROR frame with message and body, then the socket is closed once what is queued is written.
func (sc *stompConn) closeFromOutside(message, body string) {
	if !sc.closing.CompareAndSwap(false, true) {
		return
	}
	sc.stopOnce.Do(func() { close(sc.stopped) })
	// Encoded as 1.0 (no escaping, which this frame's headers do not need): sc.v belongs to the
	// read loop, which may still be negotiating it.
	sc.out.write(func(b []byte) []byte {
		nb, err := stomp.Append(b, stompError(message, body, ""), stomp.V10)
		if err != nil {
			return b
		}
		return append(nb, '\n')
	})
	sc.out.closeAfterFlush()
	// The read loop may be blocked reading: wake it.
	sc.nc.SetReadDeadline(time.Now())
}

// closeSTOMPVhost ends the STOMP connections to v, which DeleteVhost has removed.
func (s *Server) closeSTOMPVhost(v *vhost) {
	s.mu.Lock()
	var scs []*stompConn
	for sc := range s.mu.stomp {
		if sc.openVhost.Load() == v {
			scs = append(scs, sc)
		}
	}
	s.mu.Unlock()
	for _, sc := range scs {
		sc.closeFromOutside("connection_forced", "CONNECTION_FORCED - vhost '"+v.name+"' is deleted")
	}
}

// errStompClose ends the read loop after an ERROR frame that closes the connection.
var errStompClose = errors.New("stomp: connection closed after an error")

// errStompDisconnect ends the read loop after DISCONNECT.
var errStompDisconnect = errors.New("stomp: client disconnected")

// serve runs the connection: CONNECT, the read loop, teardown.
func (sc *stompConn) serve() {
	defer sc.nc.Close()
	if !sc.connect() {
		return
	}
	writeDone := make(chan struct{})
	receiptsDone := make(chan struct{})
	sc.srv.wg.Add(2)
	go func() {
		defer sc.srv.wg.Done()
		defer close(receiptsDone)
		sc.receiptLoop()
	}()
	go func() {
		defer sc.srv.wg.Done()
		defer close(writeDone)
		sc.out.run(sc.hbEvery) // ticks every half: a heart-beat at most hbEvery after the last write
	}()
	err := sc.readLoop()
	switch {
	case err == nil, errors.Is(err, errStompClose), errors.Is(err, errStompDisconnect),
		errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), sc.closing.Load():
	case errors.Is(err, os.ErrDeadlineExceeded):
		sc.log.Warn("missed heart-beats from STOMP client, closing", "timeout", sc.readIdle)
	default:
		sc.log.Debug("STOMP connection read ended", "err", err)
	}
	sc.teardown()
	close(sc.receipts)
	<-receiptsDone
	sc.nc.SetWriteDeadline(time.Now().Add(closeOkTimeout))
	sc.out.closeAfterFlush()
	<-writeDone
	sc.log.Debug("STOMP connection closed")
}

// --- reading ---

// readFrame returns the next frame (heart-beats included). It aliases the read buffer until the
// next call. Before blocking on the socket it ends the batch of deliveries the frames made.
func (sc *stompConn) readFrame() (stomp.Frame, error) {
	for {
		if sc.r < sc.w {
			f, n, err := sc.dec.Decode(sc.v, sc.rb[sc.r:sc.w])
			if err == nil {
				sc.r += n
				return f, nil
			}
			if err != stomp.ErrNeedMore {
				return stomp.Frame{}, err
			}
		}
		if sc.r > 0 { // keep the partial frame at the start: the decoder resumes on its offsets
			sc.w = copy(sc.rb, sc.rb[sc.r:sc.w])
			sc.r = 0
		}
		if sc.w == len(sc.rb) {
			n := max(4096, 2*len(sc.rb))
			nb := make([]byte, n)
			copy(nb, sc.rb[:sc.w])
			sc.rb = nb
		}
		if len(sc.wb.outs) > 0 {
			sc.wb.flush()
		}
		if sc.readIdle > 0 {
			sc.nc.SetReadDeadline(time.Now().Add(sc.readIdle))
		}
		if sc.closing.Load() {
			return stomp.Frame{}, net.ErrClosed
		}
		n, err := sc.nc.Read(sc.rb[sc.w:])
		if n > 0 {
			sc.w += n
			sc.readAt = nowMillis()
			if sc.w-sc.r < 1024 && len(sc.rb) > 64<<10 && sc.r == 0 {
				// Let go of a large frame's buffer once it is consumed.
				sc.rb = append([]byte(nil), sc.rb[:sc.w]...)
			}
			continue
		}
		if err != nil {
			return stomp.Frame{}, err
		}
	}
}

// readLoop handles frames until the connection ends.
func (sc *stompConn) readLoop() error {
	defer sc.wb.flush()
	for {
		if len(sc.flowWaits) > 0 {
			sc.waitFlow()
			clear(sc.flowWaits)
			sc.flowWaits = sc.flowWaits[:0]
		}
		f, err := sc.readFrame()
		if err != nil {
			var se *stomp.Error
			if errors.As(err, &se) {
				sc.frameError(se)
				return errStompClose
			}
			return err
		}
		if f.Heartbeat {
			continue
		}
		if err := sc.handle(f); err != nil {
			return err
		}
	}
}

// frameError answers a malformed frame: an ERROR frame, then the connection closes (the stream
// cannot be trusted after it).
func (sc *stompConn) frameError(e *stomp.Error) {
	msg := e.Message()
	if e.Kind == stomp.ErrUnknownCommand {
		msg = "Bad command"
	}
	sc.log.Warn("malformed STOMP frame", "err", e)
	sc.errorFrame(msg, e.Detail+"\n", "")
}

// handle runs one frame. It returns an error to end the connection.
func (sc *stompConn) handle(f stomp.Frame) error {
	switch f.Command {
	case stomp.CmdSend:
		return sc.send(f)
	case stomp.CmdSubscribe:
		return sc.subscribe(f)
	case stomp.CmdUnsubscribe:
		return sc.unsubscribe(f)
	case stomp.CmdAck, stomp.CmdNack:
		return sc.ackFrame(f)
	case stomp.CmdBegin:
		return sc.begin(f)
	case stomp.CmdCommit:
		return sc.commit(f)
	case stomp.CmdAbort:
		return sc.abort(f)
	case stomp.CmdDisconnect:
		sc.disconnect(f)
		return errStompDisconnect
	case stomp.CmdConnect, stomp.CmdStomp:
		return sc.fail(f, "Unexpected CONNECT", "The connection is already established\n")
	}
	return sc.fail(f, "Bad command", fmt.Sprintf("Could not interpret command %q\n", f.Command))
}

// --- CONNECT ---

// connect reads the first frame (CONNECT or STOMP) within the handshake timeout, negotiates the
// version and heart-beats, logs the user in to the vhost and answers CONNECTED; false if the
// connection is to close (an ERROR frame was written directly).
func (sc *stompConn) connect() bool {
	s := sc.srv
	sc.nc.SetReadDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	sc.v = stomp.V12 // CONNECT is never escaped; 1.2 accepts CRLF too
	var f stomp.Frame
	for {
		var err error
		f, err = sc.readFrame()
		if err != nil {
			var se *stomp.Error
			if errors.As(err, &se) {
				if se.Kind == stomp.ErrUnknownCommand {
					sc.writeErrorDirect("Illegal command", "You must log in using CONNECT first")
				} else {
					sc.writeErrorDirect(se.Message(), se.Detail+"\n")
				}
			}
			return false
		}
		if !f.Heartbeat {
			break
		}
	}
	sc.nc.SetReadDeadline(time.Time{})
	if f.Command != stomp.CmdConnect && f.Command != stomp.CmdStomp {
		sc.writeErrorDirect("Illegal command", "You must log in using CONNECT first")
		return false
	}
	// Version: the highest both support; no accept-version is 1.0.
	v := stomp.V10
	if av, ok := f.Get("accept-version"); ok {
		v = 0
		for _, x := range strings.Split(string(av), ",") {
			if pv, ok := stomp.ParseVersion(strings.TrimSpace(x)); ok && pv > v {
				v = pv
			}
		}
		if v == 0 {
			sc.writeErrorDirect("Version mismatch", "Supported versions are "+stompVersions+"\n")
			return false
		}
	}
	sc.v = v
	// Heart-beats: the client's cx,cy; the server sends every cy and expects the client every cx,
	// both rounded up to whole seconds as RabbitMQ does.
	var cx, cy int64
	if hb, ok := f.Get("heart-beat"); ok {
		a, b, ok := strings.Cut(string(hb), ",")
		var err1, err2 error
		cx, err1 = strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		cy, err2 = strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if !ok || err1 != nil || err2 != nil || cx < 0 || cy < 0 {
			sc.writeErrorDirect("Processing error", "Processing error")
			return false
		}
	}
	roundUp := func(ms int64) int64 {
		if ms <= 0 {
			return 0
		}
		return (ms + 999) / 1000 * 1000
	}
	send, expect := roundUp(cy), roundUp(cx)

	login, hasLogin := f.Get("login")
	pass, _ := f.Get("passcode")
	name, password := string(login), string(pass)
	if !hasLogin && s.opts.STOMPDefaultUser != "" {
		name, password = s.opts.STOMPDefaultUser, s.opts.STOMPDefaultPass
	}
	u := s.lookupUser(name)
	switch {
	case u == nil || !u.checkPassword(password):
		if d := s.logins.failed(sc.nc.RemoteAddr(), name, "STOMP", "invalid credentials for user '"+name+"'"); d > 0 {
			time.Sleep(d)
		}
		sc.writeErrorDirect("Bad CONNECT", "Access refused for user '"+name+"'\n")
		return false
	case s.loopback[u.name] && !isLoopback(sc.nc.RemoteAddr()):
		sc.writeErrorDirect("Bad CONNECT", "Access refused for user '"+name+"'\n")
		return false
	}
	vname := s.opts.STOMPDefaultVhost
	if vname == "" {
		vname = s.opts.DefaultVhost
	}
	if h, ok := f.Get("host"); ok {
		// RabbitMQ takes the host header as the vhost, whatever the version: a client that
		// sends the server's host name there must be told the vhost instead.
		vname = string(h)
	}
	vh := s.vhost(vname)
	if vh == nil || !s.hasVhostAccess(u.name, vh.name) {
		sc.writeErrorDirect("Bad CONNECT", "Virtual host '"+vname+"' access denied")
		return false
	}
	// The vhost's and the user's max-connections count STOMP connections as AMQP and MQTT ones;
	// RabbitMQ 3.10.8 refuses one over either limit as an inaccessible vhost.
	if s.checkConnectionLimit(vh, u.name) != nil || s.checkUserConnectionLimit(u.name) != nil {
		sc.log.Info("STOMP connection refused: connection limit reached", "user", u.name, "vhost", vh.name)
		sc.writeErrorDirect("Bad CONNECT", "Virtual host '"+vname+"' access denied")
		return false
	}
	sc.user, sc.vhost = u, vh
	sc.openVhost.Store(vh)
	if s.vhost(vname) != vh { // deleted meanwhile: DeleteVhost listed us before the Store, or not
		sc.writeErrorDirect("Bad CONNECT", "Virtual host '"+vname+"' access denied")
		return false
	}
	sc.owner.user, sc.owner.vhost = u, vh
	if cid, ok := f.Get("client-id"); ok {
		sc.clientID = string(cid)
	}
	if expect > 0 {
		sc.readIdle = 3 * time.Duration(expect) * time.Millisecond
	}
	sc.hbEvery = time.Duration(send) * time.Millisecond
	connected := stomp.Frame{Command: stomp.CmdConnected, Headers: []stomp.Header{
		stomp.H("server", stompServerName),
		stomp.H("session", sc.session),
		stomp.H("heart-beat", strconv.FormatInt(send, 10)+","+strconv.FormatInt(expect, 10)),
		stomp.H("version", v.String()),
	}}
	sc.writeFrame(connected)
	sc.log.Debug("STOMP connection open", "user", u.name, "vhost", vh.name, "version", v.String())
	return true
}

// writeErrorDirect writes an ERROR frame before the write loop runs (a failed CONNECT) and
// waits a moment for the client to read it.
func (sc *stompConn) writeErrorDirect(message, body string) {
	b, err := stomp.Append(nil, stompError(message, body, ""), stomp.V10)
	if err != nil {
		return
	}
	b = append(b, '\n')
	sc.nc.SetWriteDeadline(time.Now().Add(closeOkTimeout))
	sc.nc.Write(b)
}

// stompError builds an ERROR frame as RabbitMQ writes them.
func stompError(message, body, receipt string) stomp.Frame {
	f := stomp.Frame{Command: stomp.CmdError, Headers: []stomp.Header{
		stomp.H("message", message),
		stomp.H("content-type", "text/plain"),
		stomp.H("version", stompVersions),
	}, Body: []byte(body)}
	if receipt != "" {
		f.Headers = append(f.Headers, stomp.H("receipt-id", receipt))
	}
	return f
}

// --- writing ---

// writeFrame queues f for the write loop, with the LF RabbitMQ writes after each frame.
func (sc *stompConn) writeFrame(f stomp.Frame) {
	sc.out.write(func(b []byte) []byte {
		nb, err := stomp.Append(b, f, sc.v)
		if err != nil {
			sc.log.Error("encoding a STOMP frame", "command", f.Command, "err", err)
			return b
		}
		return append(nb, '\n')
	})
}

// errorFrame queues an ERROR frame.
func (sc *stompConn) errorFrame(message, body, receipt string) {
	sc.writeFrame(stompError(message, body, receipt))
}

// fail answers frame f with a non-fatal ERROR (RabbitMQ keeps the connection open after these,
// and names no receipt-id in them).
func (sc *stompConn) fail(f stomp.Frame, message, body string) error {
	sc.errorFrame(message, body, "")
	return nil
}

// failAMQP answers f with the ERROR frame for an error of the core, as RabbitMQ reports its
// AMQP channel's errors (message: the reply code's name in lower case, body: the reply text),
// and closes the connection, as RabbitMQ does when that channel closes.
func (sc *stompConn) failAMQP(f stomp.Frame, err error) error {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		ae = amqp.Errorf(amqp.InternalError, "%v", err)
	}
	sc.log.Warn("STOMP frame refused", "command", f.Command, "text", ae.Text)
	sc.errorFrame(strings.ToLower(amqp.CodeName(ae.Code)), ae.Text, "")
	return errStompClose
}

// receipt asks for a RECEIPT for f once the publishes it made are durable (g, nil: at once).
func (sc *stompConn) receipt(f stomp.Frame, g *commitGroup) {
	r, ok := f.Get("receipt")
	if !ok {
		return
	}
	sc.wb.flush() // deliveries the frame made go out before its receipt
	sc.receipts <- stompReceipt{id: string(r), g: g}
}

// receiptLoop writes the RECEIPT frames in order, each once its commit group is durable.
func (sc *stompConn) receiptLoop() {
	for r := range sc.receipts {
		if r.g != nil {
			<-r.g.done
			if r.g.err != nil {
				sc.errorFrame("internal_error", "INTERNAL_ERROR - storage write failed: "+r.g.err.Error(), r.id)
				continue
			}
		}
		sc.writeFrame(stomp.Frame{Command: stomp.CmdReceipt, Headers: []stomp.Header{stomp.H("receipt-id", r.id)}})
	}
}

// disconnect answers DISCONNECT: its receipt after every earlier one.
func (sc *stompConn) disconnect(f stomp.Frame) {
	sc.receipt(f, sc.durable)
}

// --- publishSource ---

func (sc *stompConn) batch() *writeBatch { return &sc.wb }
func (sc *stompConn) flowID() any        { return sc }
func (sc *stompConn) pause(q *queue, wake <-chan struct{}) {
	sc.flowWaits = append(sc.flowWaits, flowWait{q: q, wake: wake})
}
func (sc *stompConn) joined(g *commitGroup) { sc.lastGroup = g }

// waitFlow stops reading until the queues a publish filled have drained (queue_flow.go), as
// conn.waitFlow does for AMQP.
func (sc *stompConn) waitFlow() {
	sc.wb.flush()
	sc.srv.awaitFlow(sc.flowWaits, sc.stopped, sc.out.done)
}

// waitPublishAllowed waits, without reading the socket, while the store is behind or a resource
// alarm is raised; false if the connection is closing meanwhile.
func (sc *stompConn) waitPublishAllowed() bool {
	return sc.srv.awaitPublishAllowed(sc.wb.flush, sc.log, sc.stopped, sc.out.done)
}

// teardown releases what the connection holds: its subscriptions (unacked messages back to
// their queues), open transactions, and its exclusive queues.
func (sc *stompConn) teardown() {
	sc.mu.Lock()
	sc.mu.closed = true
	unacked := sc.mu.unacked
	sc.mu.unacked = nil
	sc.mu.Unlock()
	for _, sub := range sc.subs {
		sc.detach(sub, false)
	}
	clear(sc.subs)
	requeueStompDeliveries(unacked)
	clear(sc.txs)
	if sc.vhost != nil {
		sc.vhost.dropExclusive(sc.owner)
	}
}
