package integration

// A tiny AMQP 0-9-1 frame encoder and decoder for the raw-socket wire conformance suite (wire_*_test.go).
// It deliberately does not use package amqp: the suite must be able to send bytes no correct encoder would
// produce, and must not depend on the code it checks.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Frame types and the frame end octet.
const (
	wireFrameMethod    = 1
	wireFrameHeader    = 2
	wireFrameBody      = 3
	wireFrameHeartbeat = 8
	wireFrameEnd       = 0xCE
)

// wireProtocolHeader is the AMQP 0-9-1 protocol header; a broker answers a wrong header with it.
const wireProtocolHeader = "AMQP\x00\x00\x09\x01"

// wireTimeout bounds every read, so that a wedged broker fails a test instead of hanging it.
const wireTimeout = 5 * time.Second

// wireMaxIncoming bounds the payload size the suite accepts from a broker.
const wireMaxIncoming = 4 << 20

// Class and method ids used by the suite.
const (
	wireConnection = 10
	wireChannel    = 20
	wireExchange   = 40
	wireQueue      = 50
	wireBasic      = 60
	wireConfirm    = 85
	wireTx         = 90
)

// wireEnc appends AMQP domain values to a byte slice.
type wireEnc struct{ b []byte }

func (e *wireEnc) octet(v uint8) *wireEnc     { e.b = append(e.b, v); return e }
func (e *wireEnc) short(v uint16) *wireEnc    { e.b = binary.BigEndian.AppendUint16(e.b, v); return e }
func (e *wireEnc) long(v uint32) *wireEnc     { e.b = binary.BigEndian.AppendUint32(e.b, v); return e }
func (e *wireEnc) longlong(v uint64) *wireEnc { e.b = binary.BigEndian.AppendUint64(e.b, v); return e }
func (e *wireEnc) raw(p []byte) *wireEnc      { e.b = append(e.b, p...); return e }

func (e *wireEnc) shortstr(s string) *wireEnc {
	if len(s) > 255 {
		panic("wire: shortstr too long")
	}
	e.b = append(e.b, uint8(len(s)))
	e.b = append(e.b, s...)
	return e
}

func (e *wireEnc) longstr(s string) *wireEnc {
	e.long(uint32(len(s)))
	e.b = append(e.b, s...)
	return e
}

// table appends a field table whose entries are encoded in order.
func (e *wireEnc) table(fields ...wireField) *wireEnc {
	var body wireEnc
	for _, f := range fields {
		body.shortstr(f.Name)
		body.value(f.Value)
	}
	e.long(uint32(len(body.b)))
	e.b = append(e.b, body.b...)
	return e
}

// wireField is one field-table entry. Value is a string (S), bool (t), int32 (I), int64 (l) or
// []wireField (F).
type wireField struct {
	Name  string
	Value any
}

func (e *wireEnc) value(v any) {
	switch v := v.(type) {
	case string:
		e.octet('S').longstr(v)
	case bool:
		b := uint8(0)
		if v {
			b = 1
		}
		e.octet('t').octet(b)
	case int32:
		e.octet('I').long(uint32(v))
	case int64:
		e.octet('l').longlong(uint64(v))
	case []wireField:
		e.octet('F').table(v...)
	default:
		panic(fmt.Sprintf("wire: unsupported field value %T", v))
	}
}

// bits packs consecutive bit fields into one octet, first field in the lowest bit.
func (e *wireEnc) bits(bs ...bool) *wireEnc {
	var v uint8
	for i, b := range bs {
		if b {
			v |= 1 << i
		}
	}
	return e.octet(v)
}

// wireArgs starts an argument list.
func wireArgs() *wireEnc { return &wireEnc{} }

// wireFrameBytes encodes one frame: type, channel, size, payload and end octet.
func wireFrameBytes(typ uint8, ch uint16, payload []byte) []byte {
	b := make([]byte, 0, 8+len(payload))
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, ch)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return append(b, wireFrameEnd)
}

// wireMethodPayload is the payload of a method frame.
func wireMethodPayload(class, method uint16, args *wireEnc) []byte {
	b := binary.BigEndian.AppendUint16(nil, class)
	b = binary.BigEndian.AppendUint16(b, method)
	if args != nil {
		b = append(b, args.b...)
	}
	return b
}

// wireMethodFrame encodes a method frame.
func wireMethodFrame(ch, class, method uint16, args *wireEnc) []byte {
	return wireFrameBytes(wireFrameMethod, ch, wireMethodPayload(class, method, args))
}

// wireHeaderFrame encodes a content header with the given raw property flags and property list.
func wireHeaderFrame(ch, class uint16, bodySize uint64, flags uint16, props []byte) []byte {
	p := wireArgs().short(class).short(0).longlong(bodySize).short(flags).raw(props)
	return wireFrameBytes(wireFrameHeader, ch, p.b)
}

// wireBodyFrame encodes a body frame.
func wireBodyFrame(ch uint16, body []byte) []byte { return wireFrameBytes(wireFrameBody, ch, body) }

// wireHeartbeatFrame is a heartbeat on channel 0.
func wireHeartbeatFrame() []byte { return wireFrameBytes(wireFrameHeartbeat, 0, nil) }

// Common methods.

func wireChannelOpen(ch uint16) []byte {
	return wireMethodFrame(ch, wireChannel, 10, wireArgs().shortstr(""))
}

func wireChannelClose(ch, code uint16, text string, class, method uint16) []byte {
	return wireMethodFrame(ch, wireChannel, 40, wireArgs().short(code).shortstr(text).short(class).short(method))
}

func wireChannelCloseOK(ch uint16) []byte { return wireMethodFrame(ch, wireChannel, 41, nil) }

func wireConnectionClose(code uint16, text string, class, method uint16) []byte {
	return wireMethodFrame(0, wireConnection, 50, wireArgs().short(code).shortstr(text).short(class).short(method))
}

func wireConnectionCloseOK() []byte { return wireMethodFrame(0, wireConnection, 51, nil) }

// wireQueueDeclare declares a queue; an empty name asks for a server-named one.
func wireQueueDeclare(ch uint16, name string, exclusive, autoDelete bool, args *wireEnc) []byte {
	if args == nil {
		args = wireArgs().table()
	}
	a := wireArgs().short(0).shortstr(name).bits(false, false, exclusive, autoDelete, false).raw(args.b)
	return wireMethodFrame(ch, wireQueue, 10, a)
}

func wireBasicPublish(ch uint16, exchange, key string) []byte {
	return wireMethodFrame(ch, wireBasic, 40, wireArgs().short(0).shortstr(exchange).shortstr(key).bits(false, false))
}

func wireBasicGet(ch uint16, queue string, noAck bool) []byte {
	return wireMethodFrame(ch, wireBasic, 70, wireArgs().short(0).shortstr(queue).bits(noAck))
}

func wireBasicAck(ch uint16, tag uint64, multiple bool) []byte {
	return wireMethodFrame(ch, wireBasic, 80, wireArgs().longlong(tag).bits(multiple))
}

func wireBasicConsume(ch uint16, queue, tag string) []byte {
	a := wireArgs().short(0).shortstr(queue).shortstr(tag).bits(false, false, false, false).table()
	return wireMethodFrame(ch, wireBasic, 20, a)
}

// wirePublish encodes basic.publish, its content header (no properties) and one body frame.
func wirePublish(ch uint16, exchange, key string, body []byte) []byte {
	var b []byte
	b = append(b, wireBasicPublish(ch, exchange, key)...)
	b = append(b, wireHeaderFrame(ch, wireBasic, uint64(len(body)), 0, nil)...)
	if len(body) > 0 {
		b = append(b, wireBodyFrame(ch, body)...)
	}
	return b
}

// wireFrame is one frame read from the broker.
type wireFrame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// Method returns the class and method ids of a method frame (0, 0 otherwise).
func (f wireFrame) Method() (class, method uint16) {
	if f.Type != wireFrameMethod || len(f.Payload) < 4 {
		return 0, 0
	}
	return binary.BigEndian.Uint16(f.Payload), binary.BigEndian.Uint16(f.Payload[2:])
}

// Is reports whether f is the given method.
func (f wireFrame) Is(class, method uint16) bool {
	c, m := f.Method()
	return f.Type == wireFrameMethod && c == class && m == method
}

func (f wireFrame) String() string {
	if f.Type == wireFrameMethod {
		c, m := f.Method()
		if (c == wireConnection || c == wireChannel) && (m == 50 || m == 40) {
			if ci, err := wireDecodeClose(f); err == nil {
				return fmt.Sprintf("ch %d %d.%d %v", f.Channel, c, m, ci)
			}
		}
		return fmt.Sprintf("ch %d method %d.%d (%d bytes)", f.Channel, c, m, len(f.Payload))
	}
	return fmt.Sprintf("ch %d frame type %d (%d bytes)", f.Channel, f.Type, len(f.Payload))
}

// wireDec reads AMQP domain values; the first short read sets err and every later read returns zero.
type wireDec struct {
	b   []byte
	err error
}

func (d *wireDec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = io.ErrUnexpectedEOF
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *wireDec) octet() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *wireDec) short() uint16 {
	if p := d.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *wireDec) long() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *wireDec) longlong() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *wireDec) shortstr() string { return string(d.take(int(d.octet()))) }

// wireArgsOf returns a decoder over a method frame's arguments.
func wireArgsOf(f wireFrame) *wireDec {
	if len(f.Payload) < 4 {
		return &wireDec{err: io.ErrUnexpectedEOF}
	}
	return &wireDec{b: f.Payload[4:]}
}

// wireCloseInfo is the content of a connection.close or channel.close.
type wireCloseInfo struct {
	Code     uint16
	Text     string
	ClassID  uint16
	MethodID uint16
}

func (c wireCloseInfo) String() string {
	return fmt.Sprintf("{%d %q class %d method %d}", c.Code, c.Text, c.ClassID, c.MethodID)
}

// wireDecodeClose decodes a connection.close or channel.close frame.
func wireDecodeClose(f wireFrame) (wireCloseInfo, error) {
	d := wireArgsOf(f)
	ci := wireCloseInfo{Code: d.short(), Text: d.shortstr(), ClassID: d.short(), MethodID: d.short()}
	return ci, d.err
}

// wireConn is a raw client connection.
type wireConn struct {
	t  testing.TB
	c  net.Conn
	r  *bufio.Reader
	tu wireTune // what was negotiated, after wireHandshake

	// For the close-latency check: whether connection.open-ok was seen, when the client last wrote,
	// and, for the first sign of an error close from the broker (connection.close, channel.close, or
	// the socket closed), how long after the last write before it it arrived.
	opened       bool
	lastWrite    time.Time
	closeSeen    bool
	closeOpen    bool // the connection was open when the close arrived
	closeLatency time.Duration
}

// wireTune holds tune parameters.
type wireTune struct {
	ChannelMax uint16
	FrameMax   uint32
	Heartbeat  uint16
}

// wireDial connects to the broker and closes the socket when the test ends.
func wireDial(t testing.TB, b broker) *wireConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.Addr, wireTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", b.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	w := &wireConn{t: t, c: c, r: bufio.NewReader(c)}
	wireTrack(t, w)
	return w
}

// wireConns records the connections each test dialled, for the close-latency check.
var wireConns struct {
	sync.Mutex
	m map[testing.TB][]*wireConn
}

func wireTrack(t testing.TB, w *wireConn) {
	wireConns.Lock()
	defer wireConns.Unlock()
	if wireConns.m == nil {
		wireConns.m = map[testing.TB][]*wireConn{}
	}
	wireConns.m[t] = append(wireConns.m[t], w)
}

// wireTracked returns and forgets the connections t dialled.
func wireTracked(t testing.TB) []*wireConn {
	wireConns.Lock()
	defer wireConns.Unlock()
	ws := wireConns.m[t]
	delete(wireConns.m, t)
	return ws
}

// noteClose records the first error close from the broker and how long after the last write it came.
func (w *wireConn) noteClose() {
	if w.closeSeen {
		return
	}
	w.closeSeen, w.closeOpen = true, w.opened
	if !w.lastWrite.IsZero() {
		w.closeLatency = time.Since(w.lastWrite)
	}
}

// send writes raw bytes and fails the test on error.
func (w *wireConn) send(p ...[]byte) {
	w.t.Helper()
	if err := w.write(p...); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// write writes raw bytes and returns the error (a broker may already have closed the socket).
func (w *wireConn) write(p ...[]byte) error {
	var all []byte
	for _, b := range p {
		all = append(all, b...)
	}
	if err := w.c.SetWriteDeadline(time.Now().Add(wireTimeout)); err != nil {
		return err
	}
	_, err := w.c.Write(all)
	w.lastWrite = time.Now()
	return err
}

// readFrame reads one frame, waiting at most until the deadline.
func (w *wireConn) readFrameBy(deadline time.Time) (wireFrame, error) {
	if err := w.c.SetReadDeadline(deadline); err != nil {
		return wireFrame{}, err
	}
	f, err := w.readFrameRaw()
	if err != nil && wireClosed(err) {
		w.noteClose()
	}
	if err == nil && f.Type == wireFrameMethod && (f.Is(wireConnection, 50) || f.Is(wireChannel, 40)) {
		w.noteClose()
	}
	if err == nil && f.Channel == 0 && f.Is(wireConnection, 41) {
		w.opened = true
	}
	return f, err
}

// readFrameRaw reads one frame under the deadline already set.
func (w *wireConn) readFrameRaw() (wireFrame, error) {
	var h [7]byte
	if _, err := io.ReadFull(w.r, h[:]); err != nil {
		return wireFrame{}, err
	}
	f := wireFrame{Type: h[0], Channel: binary.BigEndian.Uint16(h[1:])}
	if string(h[:]) == wireProtocolHeader[:7] {
		return wireFrame{}, fmt.Errorf("got a protocol header instead of a frame")
	}
	size := binary.BigEndian.Uint32(h[3:])
	if size > wireMaxIncoming {
		return wireFrame{}, fmt.Errorf("incoming frame of %d bytes", size)
	}
	buf := make([]byte, size+1)
	if _, err := io.ReadFull(w.r, buf); err != nil {
		return wireFrame{}, err
	}
	if buf[size] != wireFrameEnd {
		return wireFrame{}, fmt.Errorf("incoming frame end octet %#x", buf[size])
	}
	f.Payload = buf[:size]
	return f, nil
}

func (w *wireConn) readFrame() (wireFrame, error) {
	return w.readFrameBy(time.Now().Add(wireTimeout))
}

// next reads the next frame other than a heartbeat and fails the test on error.
func (w *wireConn) next() wireFrame {
	w.t.Helper()
	for {
		f, err := w.readFrame()
		if err != nil {
			w.t.Fatalf("read frame: %v", err)
		}
		if f.Type == wireFrameHeartbeat {
			continue
		}
		return f
	}
}

// expect reads the next non-heartbeat frame and fails unless it is the given method on the given channel.
func (w *wireConn) expect(ch, class, method uint16) wireFrame {
	w.t.Helper()
	f := w.next()
	if f.Channel != ch || !f.Is(class, method) {
		w.t.Fatalf("got %v, want ch %d method %d.%d", f, ch, class, method)
	}
	return f
}

// wireClosed reports whether err means the peer closed the connection (EOF or reset).
func wireClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expectEOF reads until the broker closes the socket, allowing only heartbeats on the way; it fails if a
// non-heartbeat frame arrives or the deadline passes.
func (w *wireConn) expectEOF() {
	w.t.Helper()
	deadline := time.Now().Add(wireTimeout)
	for {
		f, err := w.readFrameBy(deadline)
		if err == nil && f.Type == wireFrameHeartbeat {
			continue
		}
		if err == nil {
			w.t.Fatalf("got %v, want the socket closed", f)
		}
		if !wireClosed(err) {
			w.t.Fatalf("want the socket closed, got %v", err)
		}
		return
	}
}

// wireAnyText in an expected close matches any reply text.
const wireAnyText = "\x00any"

// matches reports whether got is want, or one of alts; an expectation with wireAnyText matches any text.
func wireMatches(got wireCloseInfo, want wireCloseInfo, alts []wireCloseInfo) bool {
	for _, w := range append([]wireCloseInfo{want}, alts...) {
		if w.Text == wireAnyText {
			w.Text = got.Text
		}
		if got == w {
			return true
		}
	}
	return false
}

// expectDrop expects the broker to close the socket without sending any frame but heartbeats; with alts,
// a connection.close matching one of them (followed by the socket closing) is accepted instead. RabbitMQ
// drops the socket for errors before connection.open (after a 3 s anti-flood pause) and when its
// connection process crashes on input it cannot parse.
func (w *wireConn) expectDrop(alts ...wireCloseInfo) {
	w.t.Helper()
	deadline := time.Now().Add(wireTimeout)
	for {
		f, err := w.readFrameBy(deadline)
		if err == nil && f.Type == wireFrameHeartbeat {
			continue
		}
		if err == nil && len(alts) > 0 {
			w.finishConnectionClose(f, alts[0], alts[1:]...)
			return
		}
		if err == nil {
			w.t.Fatalf("got %v, want the socket dropped without a frame", f)
		}
		if !wireClosed(err) {
			w.t.Fatalf("want the socket dropped, got %v", err)
		}
		return
	}
}

// wireOr formats alternative expectations for a failure message.
func wireOr(alts []wireCloseInfo) string {
	if len(alts) == 0 {
		return ""
	}
	return fmt.Sprintf(" or one of %v", alts)
}

// expectConnectionClose expects connection.close equal to want (RabbitMQ's answer) or to one of alts (the
// spec's answer where RabbitMQ's is odd), answers close-ok, and expects the broker to close the socket.
func (w *wireConn) expectConnectionClose(want wireCloseInfo, alts ...wireCloseInfo) {
	w.t.Helper()
	f, err := w.readFrame()
	for err == nil && f.Type == wireFrameHeartbeat {
		f, err = w.readFrame()
	}
	if err != nil {
		w.t.Fatalf("want connection.close %v, got %v", want, err)
	}
	w.finishConnectionClose(f, want, alts...)
}

// finishConnectionClose checks that f is the expected connection.close and completes the close.
func (w *wireConn) finishConnectionClose(f wireFrame, want wireCloseInfo, alts ...wireCloseInfo) {
	w.t.Helper()
	if f.Channel != 0 || !f.Is(wireConnection, 50) {
		w.t.Fatalf("got %v, want connection.close %v%s", f, want, wireOr(alts))
	}
	got, err := wireDecodeClose(f)
	if err != nil {
		w.t.Fatalf("decode connection.close: %v", err)
	}
	if !wireMatches(got, want, alts) {
		w.t.Fatalf("connection.close:\n got %v\nwant %v%s", got, want, wireOr(alts))
	}
	// The broker may close the socket right after connection.close; a failed write is fine then.
	_ = w.write(wireConnectionCloseOK())
	w.expectEOF()
}

// expectChannelClose expects channel.close on ch with the given content and answers close-ok.
func (w *wireConn) expectChannelClose(ch uint16, want wireCloseInfo) {
	w.t.Helper()
	f := w.next()
	if f.Channel != ch || !f.Is(wireChannel, 40) {
		w.t.Fatalf("got %v, want channel.close on ch %d %v", f, ch, want)
	}
	got, err := wireDecodeClose(f)
	if err != nil {
		w.t.Fatalf("decode channel.close: %v", err)
	}
	if !wireMatches(got, want, nil) {
		w.t.Fatalf("channel.close:\n got %v\nwant %v", got, want)
	}
	w.send(wireChannelCloseOK(ch))
}

// wireClientProperties is the client-properties table every raw client sends.
func wireClientProperties() *wireEnc {
	return wireArgs().table(
		wireField{"product", "warren-wire-test"},
		wireField{"capabilities", []wireField{
			{"authentication_failure_close", true},
			{"basic.nack", true},
			{"connection.blocked", true},
			{"consumer_cancel_notify", true},
			{"publisher_confirms", true},
		}},
	)
}

// wireStartOK is a PLAIN connection.start-ok for guest/guest.
func wireStartOK() []byte {
	a := wireArgs().raw(wireClientProperties().b).shortstr("PLAIN").longstr("\x00guest\x00guest").shortstr("en_US")
	return wireMethodFrame(0, wireConnection, 11, a)
}

func wireTuneOK(t wireTune) []byte {
	return wireMethodFrame(0, wireConnection, 31, wireArgs().short(t.ChannelMax).long(t.FrameMax).short(t.Heartbeat))
}

func wireConnectionOpen(vhost string) []byte {
	return wireMethodFrame(0, wireConnection, 40, wireArgs().shortstr(vhost).shortstr("").bits(false))
}

// readStart sends the protocol header and reads connection.start, checking its version.
func (w *wireConn) readStart() {
	w.t.Helper()
	w.send([]byte(wireProtocolHeader))
	f := w.expect(0, wireConnection, 10)
	d := wireArgsOf(f)
	if maj, min := d.octet(), d.octet(); maj != 0 || min != 9 {
		w.t.Fatalf("connection.start version %d-%d, want 0-9", maj, min)
	}
}

// readTune reads connection.tune.
func (w *wireConn) readTune() wireTune {
	w.t.Helper()
	f := w.expect(0, wireConnection, 30)
	d := wireArgsOf(f)
	tu := wireTune{ChannelMax: d.short(), FrameMax: d.long(), Heartbeat: d.short()}
	if d.err != nil {
		w.t.Fatalf("decode connection.tune: %v", d.err)
	}
	return tu
}

// wireHandshake opens a connection to vhost "/" and returns it ready for channel 1. The tune-ok echoes
// the broker's tune, changed by adjust if given.
func wireHandshake(t testing.TB, b broker, adjust ...func(*wireTune)) *wireConn {
	t.Helper()
	w := wireDial(t, b)
	w.readStart()
	w.send(wireStartOK())
	tu := w.readTune()
	for _, f := range adjust {
		f(&tu)
	}
	w.tu = tu
	w.send(wireTuneOK(tu), wireConnectionOpen("/"))
	w.expect(0, wireConnection, 41)
	return w
}

// openChannel opens channel ch and waits for open-ok.
func (w *wireConn) openChannel(ch uint16) {
	w.t.Helper()
	w.send(wireChannelOpen(ch))
	w.expect(ch, wireChannel, 11)
}

// declareQueue declares an exclusive, auto-delete, server-named queue on ch and returns its name.
func (w *wireConn) declareQueue(ch uint16) string {
	w.t.Helper()
	w.send(wireQueueDeclare(ch, "", true, true, nil))
	f := w.expect(ch, wireQueue, 11)
	d := wireArgsOf(f)
	name := d.shortstr()
	if d.err != nil || name == "" {
		w.t.Fatalf("queue.declare-ok: name %q, %v", name, d.err)
	}
	return name
}

// roundTrip publishes a message to queue q through the default exchange on ch, fetches it with
// basic.get (no-ack) and checks the body.
func (w *wireConn) roundTrip(ch uint16, q string, body string) {
	w.t.Helper()
	w.send(wirePublish(ch, "", q, []byte(body)), wireBasicGet(ch, q, true))
	w.expect(ch, wireBasic, 71)
	h := w.next()
	if h.Type != wireFrameHeader || h.Channel != ch {
		w.t.Fatalf("got %v, want a content header on ch %d", h, ch)
	}
	d := &wireDec{b: h.Payload}
	d.short()
	d.short()
	size := d.longlong()
	if size != uint64(len(body)) {
		w.t.Fatalf("content header body size %d, want %d", size, len(body))
	}
	var got []byte
	for uint64(len(got)) < size {
		bf := w.next()
		if bf.Type != wireFrameBody || bf.Channel != ch {
			w.t.Fatalf("got %v, want a body frame on ch %d", bf, ch)
		}
		got = append(got, bf.Payload...)
	}
	if string(got) != body {
		w.t.Fatalf("body %q, want %q", got, body)
	}
}

// closeConnection performs a clean client-initiated close: connection.close, close-ok, then the client
// closes the socket (RabbitMQ 3.10.8 waits for the client to do so).
func (w *wireConn) closeConnection() {
	w.t.Helper()
	w.send(wireConnectionClose(200, "bye", 0, 0))
	w.expect(0, wireConnection, 51)
	if err := w.c.Close(); err != nil {
		w.t.Fatalf("close: %v", err)
	}
}

// wireCheckServing proves the broker still serves a well-behaved client: a fresh connection completes a
// publish and a get, then closes cleanly.
func wireCheckServing(t testing.TB, b broker) {
	t.Helper()
	w := wireHandshake(t, b)
	w.openChannel(1)
	q := w.declareQueue(1)
	w.roundTrip(1, q, "still serving")
	w.closeConnection()
}
