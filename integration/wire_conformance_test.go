package integration

// Raw-socket wire conformance: each malformed or abusive input gets the close RabbitMQ 3.10.8 sends for it
// (connection.close with a hard code, channel.close with a soft one, or a dropped socket), and the broker
// keeps serving a well-behaved client afterwards. The expected codes and texts were observed on RabbitMQ
// 3.10.8; they are the specification Warren implements.

import (
	"bytes"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// wireCase is one conformance case: run drives a raw client against b and checks the broker's answer.
// A case whose answer is slow (RabbitMQ pauses 3 s before dropping a failed handshake) sets start and
// finish instead: every start runs first, so that the slow answers overlap, then finish checks it.
type wireCase struct {
	name   string
	run    func(t *testing.T, b broker)
	start  func(t testing.TB, b broker) *wireConn
	finish func(w *wireConn)
}

// wireDropped is a finish that expects the socket dropped without a frame.
func wireDropped(w *wireConn) {
	w.t.Helper()
	w.expectDrop()
}

// wireCloseBound is how soon after the offending write the broker must close, once the connection is
// open: 100 ms, as the issue asks; 1 s under the race detector, which slows the broker several times,
// on a shared 2-core machine. WARREN_WIRE_CLOSE_BOUND overrides it (a Go duration).
func wireCloseBound(t testing.TB) time.Duration {
	if s := os.Getenv("WARREN_WIRE_CLOSE_BOUND"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("WARREN_WIRE_CLOSE_BOUND=%q: %v", s, err)
		}
		return d
	}
	if raceEnabled {
		return time.Second
	}
	return 100 * time.Millisecond
}

// wireCheckCloseLatency fails t if a connection that was open saw the broker's error close more than
// bound after the write that provoked it, and returns the slowest such close.
func wireCheckCloseLatency(t testing.TB, bound time.Duration, ws ...*wireConn) time.Duration {
	t.Helper()
	var slowest time.Duration
	for _, w := range ws {
		if w == nil || !w.closeSeen || !w.closeOpen {
			continue
		}
		slowest = max(slowest, w.closeLatency)
		if w.closeLatency > bound {
			t.Errorf("the broker closed %v after the offending write, want within %v", w.closeLatency, bound)
		}
	}
	return slowest
}

// wireRunCases runs each case as a parallel subtest against one broker whose log is captured, and
// checks for every case: its own expectations (reply code and text), the close within wireCloseBound
// of the offending write once the connection is open, and a new connection served right after. Once
// all cases are done, the process's goroutines, open files and heap must come back to where they were
// before the cases, and the broker's log must not mention a panic.
func wireRunCases(t *testing.T, cases []wireCase) {
	b, _ := startLoggedBroker(t)
	wireCheckServing(t, b) // warm up: the first connection allocates what every later one reuses
	base := takeProcState()
	bound := wireCloseBound(t)
	var mu sync.Mutex
	var slowest time.Duration
	var slowestName string
	measured := 0
	note := func(name string, d time.Duration, n int) {
		mu.Lock()
		defer mu.Unlock()
		measured += n
		if d > slowest {
			slowest, slowestName = d, name
		}
	}
	start := time.Now()
	t.Run("cases", func(t *testing.T) {
		// Against RabbitMQ, whose answers to some cases take 3 s, every start runs first so that the
		// slow answers overlap. Warren answers at once, so each case starts inside its subtest, which
		// lets the close latency be measured from the offending write.
		started := make([]*wireConn, len(cases))
		for i, c := range cases {
			if c.start != nil && externalURL != "" {
				started[i] = c.start(t, b)
			}
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				var ws []*wireConn
				if c.start != nil {
					w := started[i]
					if w == nil {
						w = c.start(t, b)
					}
					w.t = t
					c.finish(w)
					ws = []*wireConn{w}
				} else {
					c.run(t, b)
					ws = wireTracked(t)
				}
				n := 0
				for _, w := range ws {
					if w.closeSeen && w.closeOpen {
						n++
					}
				}
				note(c.name, wireCheckCloseLatency(t, bound, ws...), n)
				wireCheckServing(t, b)
				wireTracked(t) // forget the checking connection
			})
		}
	})
	wireTracked(t)
	t.Logf("%d wire cases in %v; %d closes of open connections timed, slowest %v (%s), bound %v",
		len(cases), time.Since(start).Round(time.Millisecond), measured, slowest, slowestName, bound)
	if externalURL == "" {
		end := waitBaseline(t, base, leakBounds{Goroutines: 2, FDs: 2, Heap: 16 << 20}, 10*time.Second)
		t.Logf("before the cases %v; after %v", base, end)
	}
}

// wireReady returns a connection after the handshake with channel 1 open.
func wireReady(t testing.TB, b broker, adjust ...func(*wireTune)) *wireConn {
	t.Helper()
	w := wireHandshake(t, b, adjust...)
	w.openChannel(1)
	return w
}

// wireHard is a connection.close expectation.
func wireHard(code uint16, text string, class, method uint16) wireCloseInfo {
	return wireCloseInfo{Code: code, Text: text, ClassID: class, MethodID: method}
}

// checkOtherChannel proves the connection still works after a channel error: channel ch opens and
// carries a publish+get round trip; then the connection closes cleanly.
func (w *wireConn) checkOtherChannel(ch uint16) {
	w.t.Helper()
	w.openChannel(ch)
	q := w.declareQueue(ch)
	w.roundTrip(ch, q, "other channel")
	w.closeConnection()
}

// expectHeaderReply reads everything until the broker closes the socket and checks that it was exactly
// the AMQP 0-9-1 protocol header.
func (w *wireConn) expectHeaderReply() {
	w.t.Helper()
	got := w.readAll()
	if string(got) != wireProtocolHeader {
		w.t.Fatalf("got %q before close, want %q", got, wireProtocolHeader)
	}
}

// readAll reads until the broker closes the socket; it fails the test if the deadline passes first.
func (w *wireConn) readAll() []byte {
	w.t.Helper()
	if err := w.c.SetReadDeadline(time.Now().Add(wireTimeout)); err != nil {
		w.t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, w.r)
	if err != nil && !wireClosed(err) {
		w.t.Fatalf("after %q: want the socket closed, got %v", buf.Bytes(), err)
	}
	return buf.Bytes()
}

// closeWrite half-closes the client side, so the broker sees end of input.
func (w *wireConn) closeWrite() {
	w.t.Helper()
	if err := w.c.(*net.TCPConn).CloseWrite(); err != nil {
		w.t.Fatalf("close write: %v", err)
	}
	w.lastWrite = time.Now()
}

// expectHugeBodyHandled checks the answer to a content header declaring a body no broker should buffer:
// RabbitMQ 3.10.8 checks the size only once the whole body has arrived, so it says nothing and the rest of
// the connection keeps working; rejecting the header at once with channel.close 406 on channel 1 is
// accepted too. Either way another channel completes a round trip and the connection closes cleanly.
func (w *wireConn) expectHugeBodyHandled() {
	w.t.Helper()
	w.send(wireChannelOpen(2))
	f := w.next()
	if f.Channel == 1 && f.Is(wireChannel, 40) {
		got, err := wireDecodeClose(f)
		if err != nil || got.Code != 406 || got.ClassID != wireBasic || got.MethodID != 40 {
			w.t.Fatalf("got %v (%v), want channel.close 406 for basic.publish", got, err)
		}
		w.send(wireChannelCloseOK(1))
		f = w.next()
	}
	if f.Channel != 2 || !f.Is(wireChannel, 11) {
		w.t.Fatalf("got %v, want channel.open-ok on ch 2", f)
	}
	q := w.declareQueue(2)
	w.roundTrip(2, q, "beside a huge body")
	w.closeConnection()
}

// wireHeaderCases: a wrong protocol header is answered with the 0-9-1 header and a close.
func wireHeaderCases() []wireCase {
	refused := func(header string) func(t *testing.T, b broker) {
		return func(t *testing.T, b broker) {
			w := wireDial(t, b)
			w.send([]byte(header))
			w.expectHeaderReply()
		}
	}
	return []wireCase{
		{name: "header/http", run: refused("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{name: "header/amqp-1-0", run: refused("AMQP\x00\x01\x00\x00")},
		{name: "header/amqp-1-0-sasl", run: refused("AMQP\x03\x01\x00\x00")},
		{name: "header/amqp-0-9-2", run: refused("AMQP\x00\x00\x09\x02")},
		{name: "header/amqp-0-10", run: refused("AMQP\x01\x01\x00\x0a")},
		{name: "header/lowercase", run: refused("amqp\x00\x00\x09\x01")},
		{name: "header/garbage", run: refused("\x00\xff\x13\x37garbage")},
		{name: "header/method-frame-first", run: refused(string(wireStartOK()))},
		{name: "header/short-then-eof", run: func(t *testing.T, b broker) {
			w := wireDial(t, b)
			w.send([]byte("AMQP\x00"))
			w.closeWrite()
			if got := w.readAll(); len(got) != 0 {
				t.Fatalf("got %q, want the socket closed with nothing sent", got)
			}
		}},
		{name: "header/nothing-then-eof", run: func(t *testing.T, b broker) {
			w := wireDial(t, b)
			w.closeWrite()
			if got := w.readAll(); len(got) != 0 {
				t.Fatalf("got %q, want the socket closed with nothing sent", got)
			}
		}},
		{name: "header/slowloris-one-byte-at-a-time", run: func(t *testing.T, b broker) {
			w := wireDial(t, b)
			for i := 0; i < len(wireProtocolHeader); i++ {
				w.send([]byte{wireProtocolHeader[i]})
			}
			w.expect(0, wireConnection, 10)
			// The rest of the handshake and a round trip, also one byte per write.
			for _, p := range [][]byte{wireStartOK()} {
				for i := range p {
					w.send(p[i : i+1])
				}
			}
			tu := w.readTune()
			w.tu = tu
			var rest []byte
			rest = append(rest, wireTuneOK(tu)...)
			rest = append(rest, wireConnectionOpen("/")...)
			rest = append(rest, wireChannelOpen(1)...)
			for i := range rest {
				w.send(rest[i : i+1])
			}
			w.expect(0, wireConnection, 41)
			w.expect(1, wireChannel, 11)
			q := w.declareQueue(1)
			w.roundTrip(1, q, "slow")
			w.closeConnection()
		}},
	}
}

// wireHandshakeCases: frames out of order or malformed during the handshake.
func wireHandshakeCases() []wireCase {
	afterStart := func(t testing.TB, b broker) *wireConn {
		w := wireDial(t, b)
		w.readStart()
		return w
	}
	afterTune := func(t testing.TB, b broker) *wireConn {
		w := afterStart(t, b)
		w.send(wireStartOK())
		w.tu = w.readTune()
		return w
	}
	afterTuneOK := func(t testing.TB, b broker) *wireConn {
		w := afterTune(t, b)
		w.send(wireTuneOK(w.tu))
		return w
	}
	return []wireCase{
		{name: "handshake/tune-ok-instead-of-start-ok", start: func(t testing.TB, b broker) *wireConn {
			w := afterStart(t, b)
			w.send(wireTuneOK(wireTune{2047, 131072, 60}))
			return w
		}, finish: wireDropped},
		{name: "handshake/channel-open-instead-of-start-ok", start: func(t testing.TB, b broker) *wireConn {
			w := afterStart(t, b)
			w.send(wireChannelOpen(1))
			return w
		}, finish: wireDropped},
		{name: "handshake/content-header-instead-of-start-ok", start: func(t testing.TB, b broker) *wireConn {
			w := afterStart(t, b)
			w.send(wireHeaderFrame(0, wireBasic, 0, 0, nil))
			return w
		}, finish: wireDropped},
		{name: "handshake/unknown-mechanism", start: func(t testing.TB, b broker) *wireConn {
			w := afterStart(t, b)
			a := wireArgs().raw(wireClientProperties().b).shortstr("FOO").longstr("x").shortstr("en_US")
			w.send(wireMethodFrame(0, wireConnection, 11, a))
			return w
		}, finish: wireDropped},
		{name: "handshake/bad-password", run: func(t *testing.T, b broker) {
			w := afterStart(t, b)
			a := wireArgs().raw(wireClientProperties().b).shortstr("PLAIN").longstr("\x00guest\x00wrong").shortstr("en_US")
			w.send(wireMethodFrame(0, wireConnection, 11, a))
			w.expectConnectionClose(wireHard(403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.", 0, 0))
		}},
		{name: "handshake/truncated-start-ok", start: func(t testing.TB, b broker) *wireConn {
			w := afterStart(t, b)
			w.send(wireMethodFrame(0, wireConnection, 11, wireArgs().long(100)))
			return w
		}, finish: wireDropped},
		{name: "handshake/1MiB-frame-before-tune", start: func(t testing.TB, b broker) *wireConn {
			w := afterStart(t, b)
			h := wireArgs().octet(wireFrameMethod).short(0).long(1 << 20).short(wireConnection).short(11)
			_ = w.write(h.b, make([]byte, 4096))
			return w
		}, finish: wireDropped},
		{name: "handshake/start-ok-again-instead-of-tune-ok", start: func(t testing.TB, b broker) *wireConn {
			w := afterTune(t, b)
			w.send(wireStartOK())
			return w
		}, finish: wireDropped},
		{name: "handshake/open-instead-of-tune-ok", start: func(t testing.TB, b broker) *wireConn {
			w := afterTune(t, b)
			w.send(wireConnectionOpen("/"))
			return w
		}, finish: wireDropped},
		{name: "handshake/tune-ok-frame-max-below-minimum", start: func(t testing.TB, b broker) *wireConn {
			w := afterTune(t, b)
			w.send(wireTuneOK(wireTune{w.tu.ChannelMax, 1024, w.tu.Heartbeat}))
			return w
		}, finish: wireDropped},
		{name: "handshake/tune-ok-frame-max-above-server", start: func(t testing.TB, b broker) *wireConn {
			w := afterTune(t, b)
			w.send(wireTuneOK(wireTune{w.tu.ChannelMax, w.tu.FrameMax + 1, w.tu.Heartbeat}))
			return w
		}, finish: wireDropped},
		{name: "handshake/tune-ok-channel-max-above-server", start: func(t testing.TB, b broker) *wireConn {
			w := afterTune(t, b)
			w.send(wireTuneOK(wireTune{w.tu.ChannelMax + 1, w.tu.FrameMax, w.tu.Heartbeat}))
			return w
		}, finish: wireDropped},
		{name: "handshake/channel-open-before-connection-open", run: func(t *testing.T, b broker) {
			w := afterTuneOK(t, b)
			w.send(wireChannelOpen(1))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>", 0, 0))
		}},
		{name: "handshake/unknown-vhost", run: func(t *testing.T, b broker) {
			w := afterTuneOK(t, b)
			w.send(wireConnectionOpen("/no-such-vhost"))
			w.expectConnectionClose(wireHard(530, "NOT_ALLOWED - vhost /no-such-vhost not found", 10, 40))
		}},
		{name: "handshake/heartbeat-during-handshake-is-accepted", run: func(t *testing.T, b broker) {
			w := afterStart(t, b)
			w.send(wireHeartbeatFrame(), wireStartOK())
			w.tu = w.readTune()
			w.send(wireHeartbeatFrame(), wireTuneOK(w.tu), wireHeartbeatFrame(), wireConnectionOpen("/"))
			w.expect(0, wireConnection, 41)
			w.checkOtherChannel(1)
		}},
	}
}

// wireFramingCases: malformed frames on an open connection.
func wireFramingCases() []wireCase {
	return []wireCase{
		{name: "frame/bad-end-octet", start: func(t testing.TB, b broker) *wireConn {
			w := wireReady(t, b)
			f := wireQueueDeclare(1, "", true, true, nil)
			f[len(f)-1] = 0x00
			w.send(f)
			return w
		}, finish: func(w *wireConn) {
			w.t.Helper()
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 1, all octets = <<0,50,0,10,0,0,0,12,0,0,0,0>>: {invalid_frame_end_marker,\n                                                      0}", 0, 0),
				wireHard(501, wireAnyText, 0, 0))
		}},
		{name: "frame/larger-than-negotiated-frame-max", start: func(t testing.TB, b broker) *wireConn {
			w := wireReady(t, b, func(tu *wireTune) { tu.FrameMax = 4096 })
			w.send(wireBasicPublish(1, "", "nowhere"), wireHeaderFrame(1, wireBasic, 8192, 0, nil))
			w.sendOversizedFrameStart(8192)
			return w
		}, finish: func(w *wireConn) {
			w.t.Helper()
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,8192,4088}", 0, 0))
		}},
		{name: "frame/size-4GiB-header-only", start: func(t testing.TB, b broker) *wireConn {
			w := wireReady(t, b)
			_ = w.write(wireArgs().octet(wireFrameBody).short(1).long(0xFFFFFFF0).b)
			return w
		}, finish: func(w *wireConn) {
			w.t.Helper()
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4294967280,131064}", 0, 0))
		}},
		{name: "frame/unknown-type-9", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(9, 1, []byte("xyz")))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 9, all octets = <<\"xyz\">>: unknown_frame", 0, 0))
		}},
		{name: "frame/unknown-type-0", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(0, 0, nil))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 0, all octets = <<>>: unknown_frame", 0, 0))
		}},
		{name: "frame/truncated-then-eof", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			f := wireQueueDeclare(1, "", true, true, nil)
			w.send(f[:len(f)-5])
			w.closeWrite()
			w.expectEOF()
		}},
		{name: "frame/heartbeat-on-channel-1", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(wireFrameHeartbeat, 1, nil))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0))
		}},
		{name: "frame/heartbeat-with-payload", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(wireFrameHeartbeat, 0, []byte("boo")))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 8, all octets = <<\"boo\">>: unknown_frame", 0, 0))
		}},
		{name: "frame/empty-method-frame", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(wireFrameMethod, 1, nil))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 1, all octets = <<>>: unknown_frame", 0, 0))
		}},
		{name: "frame/method-frame-with-2-byte-payload", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(wireFrameMethod, 1, []byte{0, wireQueue}))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame", 0, 0))
		}},
	}
}

// wireChannelCases: channel numbers and the channel state machine.
func wireChannelCases() []wireCase {
	return []wireCase{
		{name: "channel/method-on-never-opened-channel", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireQueueDeclare(5, "", true, true, nil))
			w.expectConnectionClose(wireHard(504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10))
		}},
		// RabbitMQ 3.10.8 limits the number of open channels, not their numbers: a channel id above
		// channel_max opens and works.
		{name: "channel/id-above-channel-max-is-accepted", run: func(t *testing.T, b broker) {
			w := wireHandshake(t, b)
			w.checkOtherChannel(w.tu.ChannelMax + 1)
		}},
		{name: "channel/id-65535-is-accepted", run: func(t *testing.T, b broker) {
			w := wireHandshake(t, b)
			w.checkOtherChannel(65535)
		}},
		{name: "channel/open-past-negotiated-channel-max", run: func(t *testing.T, b broker) {
			w := wireHandshake(t, b, func(tu *wireTune) { tu.ChannelMax = 8 })
			for ch := uint16(1); ch <= 8; ch++ {
				w.openChannel(ch)
			}
			w.send(wireChannelOpen(9))
			w.expectConnectionClose(wireHard(530, "NOT_ALLOWED - number of channels opened (8) has reached the negotiated channel_max (8)", 0, 0))
		}},
		{name: "channel/open-on-channel-0", run: func(t *testing.T, b broker) {
			w := wireHandshake(t, b)
			w.send(wireChannelOpen(0))
			w.expectConnectionClose(wireHard(504, "CHANNEL_ERROR - unexpected method in connection state running", 20, 10))
		}},
		{name: "channel/connection-method-on-channel-1", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireMethodFrame(1, wireConnection, 50, wireArgs().short(200).shortstr("").short(0).short(0)))
			w.expectConnectionClose(wireHard(503, "COMMAND_INVALID - unimplemented method", 10, 50))
		}},
		{name: "channel/second-open-on-same-channel", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireChannelOpen(1))
			w.expectConnectionClose(wireHard(504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10))
		}},
		{name: "channel/close-ok-without-close", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireChannelCloseOK(1))
			w.expectConnectionClose(wireHard(503, "COMMAND_INVALID - unimplemented method", 20, 41))
		}},
		{name: "channel/close-ok-on-never-opened-channel", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireChannelCloseOK(7))
			w.expectConnectionClose(wireHard(504, "CHANNEL_ERROR - expected 'channel.open'", 20, 41))
		}},
		{name: "channel/server-only-method-open-ok", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireMethodFrame(1, wireChannel, 11, wireArgs().longstr("")))
			w.expectConnectionClose(wireHard(503, "COMMAND_INVALID - unimplemented method", 20, 11))
		}},
		{name: "channel/ack-unknown-delivery-tag", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicAck(1, 42, false))
			w.expectChannelClose(1, wireHard(406, "PRECONDITION_FAILED - unknown delivery tag 42", 60, 80))
			w.checkOtherChannel(2)
		}},
		{name: "channel/frames-after-server-close-are-ignored", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicAck(1, 42, false))
			f := w.next()
			if f.Channel != 1 || !f.Is(wireChannel, 40) {
				t.Fatalf("got %v, want channel.close on ch 1", f)
			}
			// Until the client's close-ok, the broker must discard whatever arrives on the channel,
			// content included, and not answer it.
			w.send(wireQueueDeclare(1, "", true, true, nil), wirePublish(1, "", "x", []byte("ignored")),
				wireBasicAck(1, 43, false), wireChannelCloseOK(1))
			w.send(wireChannelOpen(1))
			w.expect(1, wireChannel, 11)
			w.checkOtherChannel(2)
		}},
		{name: "channel/consume-on-closed-channel", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireChannelClose(1, 200, "", 0, 0))
			w.expect(1, wireChannel, 41)
			w.send(wireBasicConsume(1, "amq.rabbitmq.reply-to", ""))
			w.expectConnectionClose(wireHard(504, "CHANNEL_ERROR - expected 'channel.open'", 60, 20))
		}},
		{name: "channel/publish-on-closed-channel", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireChannelClose(1, 200, "", 0, 0))
			w.expect(1, wireChannel, 41)
			w.send(wirePublish(1, "", "x", []byte("late")))
			w.expectConnectionClose(wireHard(504, "CHANNEL_ERROR - expected 'channel.open'", 60, 40))
		}},
		{name: "channel/publish-to-missing-exchange", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wirePublish(1, "no-such-exchange", "x", []byte("lost")))
			w.expectChannelClose(1, wireHard(404, "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'", 60, 40))
			w.checkOtherChannel(2)
		}},
	}
}

// wireContentCases: content assembly (method, header, body).
func wireContentCases() []wireCase {
	return []wireCase{
		{name: "content/header-without-method", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireHeaderFrame(1, wireBasic, 3, 0, nil))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0))
		}},
		{name: "content/body-without-header", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireBodyFrame(1, []byte("abc")))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead", 60, 40))
		}},
		{name: "content/body-without-anything", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBodyFrame(1, []byte("abc")))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0))
		}},
		{name: "content/method-between-header-and-body", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 10, 0, nil),
				wireQueueDeclare(1, "", true, true, nil))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40))
		}},
		{name: "content/body-longer-than-declared", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 5, 0, nil),
				wireBodyFrame(1, []byte("0123456789")))
			// RabbitMQ keeps waiting for a body that can never add up; the next method on the channel
			// then gets 505. Rejecting the oversized body frame itself (505 or 501) is accepted too.
			w.send(wireQueueDeclare(1, "", true, true, nil))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40),
				wireHard(505, wireAnyText, 60, 40), wireHard(501, wireAnyText, 60, 40), wireHard(501, wireAnyText, 0, 0))
		}},
		{name: "content/extra-body-frame-after-complete", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 3, 0, nil),
				wireBodyFrame(1, []byte("abc")), wireBodyFrame(1, []byte("d")))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0))
		}},
		{name: "content/body-frame-after-empty-body", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 0, 0, nil),
				wireBodyFrame(1, []byte("x")))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0))
		}},
		{name: "content/header-class-mismatch", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireQueue, 3, 0, nil))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead", 60, 40))
		}},
		{name: "content/header-on-other-channel", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.openChannel(2)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(2, wireBasic, 3, 0, nil))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", 0, 0))
		}},
		{name: "content/body-size-2^63", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 1<<63, 0, nil))
			w.expectHugeBodyHandled()
		}},
		{name: "content/body-size-above-max-message-size", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 512<<20+1, 0, nil))
			w.expectHugeBodyHandled()
		}},
		{name: "content/properties-truncated", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			q := w.declareQueue(1)
			// content-type and headers flagged present, but only a partial content-type follows.
			w.send(wireBasicPublish(1, "", q), wireHeaderFrame(1, wireBasic, 1, 0x8000|0x2000, []byte{10, 'a'}),
				wireBodyFrame(1, []byte("x")), wireBasicGet(1, q, true))
			w.expectConnectionClose(wireHard(541, "INTERNAL_ERROR", 0, 0), wireHard(502, wireAnyText, 60, 40))
		}},
		{name: "content/properties-bad-headers-table", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			q := w.declareQueue(1)
			props := wireArgs().long(7).shortstr("k").octet('Z').octet(0).octet(0).b
			w.send(wireBasicPublish(1, "", q), wireHeaderFrame(1, wireBasic, 1, 0x2000, props),
				wireBodyFrame(1, []byte("x")), wireBasicGet(1, q, true))
			w.expectConnectionClose(wireHard(541, "INTERNAL_ERROR", 0, 0), wireHard(502, wireAnyText, 60, 40))
		}},
		{name: "content/connection-close-mid-content", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 10, 0, nil))
			w.closeConnection()
		}},
		{name: "content/channel-close-mid-content", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 10, 0, nil),
				wireChannelClose(1, 200, "", 0, 0))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40))
		}},
	}
}

// wireMethodCases: unknown and malformed methods.
func wireMethodCases() []wireCase {
	declareWith := func(table []byte) []byte {
		a := wireArgs().short(0).shortstr("").bits(false, false, true, true, false).raw(table)
		return wireMethodFrame(1, wireQueue, 10, a)
	}
	return []wireCase{
		{name: "method/unknown-class", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireMethodFrame(1, 99, 10, nil))
			w.expectDrop(wireHard(540, wireAnyText, 99, 10), wireHard(503, wireAnyText, 99, 10))
		}},
		{name: "method/unknown-method-in-known-class", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireMethodFrame(1, wireQueue, 99, nil))
			w.expectDrop(wireHard(540, wireAnyText, 50, 99), wireHard(503, wireAnyText, 50, 99))
		}},
		{name: "method/unknown-method-on-channel-0", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireMethodFrame(0, wireConnection, 99, nil))
			w.expectDrop(wireHard(540, wireAnyText, 10, 99), wireHard(503, wireAnyText, 10, 99))
		}},
		{name: "method/truncated-arguments", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireMethodFrame(1, wireQueue, 10, wireArgs().short(0)))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - cannot decode <<0,0>>", 50, 10))
		}},
		{name: "method/shortstr-length-past-end", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireMethodFrame(1, wireQueue, 10, wireArgs().short(0).octet(200).raw([]byte("abc"))))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - cannot decode <<0,0,200,97,98,99>>", 50, 10))
		}},
		{name: "method/table-bad-type-octet", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			tbl := wireArgs().long(5).shortstr("k").octet('Z').octet(0).octet(0).b
			w.send(declareWith(tbl))
			w.expectDrop(wireHard(502, wireAnyText, 50, 10), wireHard(501, wireAnyText, 50, 10))
		}},
		{name: "method/table-length-past-end", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			tbl := wireArgs().long(1000).shortstr("k").octet('t').octet(1).b
			w.send(declareWith(tbl))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - cannot decode <<0,0,0,12,0,0,3,232,1,107,116,1>>", 50, 10))
		}},
		{name: "method/table-longstr-length-past-end", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			tbl := wireArgs().long(9).shortstr("k").octet('S').long(100).octet('x').b
			w.send(declareWith(tbl))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - cannot decode <<0,0,0,12,0,0,0,9,1,107,83,0,0,0,100,120>>", 50, 10))
		}},
		{name: "method/table-key-length-past-end", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			tbl := wireArgs().long(3).octet(50).raw([]byte("ab")).b
			w.send(declareWith(tbl))
			w.expectDrop(wireHard(502, wireAnyText, 50, 10), wireHard(501, wireAnyText, 50, 10))
		}},
		{name: "method/table-nested-table-past-end", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			tbl := wireArgs().long(7).shortstr("k").octet('F').long(500).b
			w.send(declareWith(tbl))
			w.expectDrop(wireHard(502, wireAnyText, 50, 10), wireHard(501, wireAnyText, 50, 10))
		}},
		{name: "method/queue-argument-of-wrong-type", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(declareWith(wireArgs().table(wireField{"x-max-length", "ten"}).b))
			w.expectChannelClose(1, wireHard(406, wireAnyText, 50, 10))
			w.checkOtherChannel(2)
		}},
		{name: "method/trailing-bytes-after-arguments", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			f := wireMethodPayload(wireBasic, 80, wireArgs().longlong(0).bits(true).raw([]byte("junk")))
			w.send(wireFrameBytes(wireFrameMethod, 1, f))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - cannot decode <<0,0,0,0,0,0,0,0,1,106,117,110,107>>", 60, 80))
		}},
	}
}

// TestWireConformance runs every raw-socket case against one broker.
func TestWireConformance(t *testing.T) {
	var cases []wireCase
	cases = append(cases, wireHeaderCases()...)
	cases = append(cases, wireHandshakeCases()...)
	cases = append(cases, wireFramingCases()...)
	cases = append(cases, wireChannelCases()...)
	cases = append(cases, wireContentCases()...)
	cases = append(cases, wireMethodCases()...)
	cases = append(cases, wireAbuseCases()...)
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] || strings.TrimSpace(c.name) == "" {
			t.Fatalf("duplicate or empty case name %q", c.name)
		}
		seen[c.name] = true
	}
	wireRunCases(t, cases)
}
