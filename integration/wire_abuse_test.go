package integration

// More raw-socket cases for the conformance suite: frame-level damage the first set does not cover,
// oversized and deeply nested field tables, handshake methods repeated after open, thousands of
// channels on one connection, and floods of connections and failed logins. Expected answers were
// checked against RabbitMQ 3.10.8 with WARREN_TEST_URL.

import (
	"sync"
	"testing"
)

// wireNested returns a field table nested depth times: {"k": {"k": ... {}}} with type octet typ ('F'
// nests tables, 'A' nests arrays).
func wireNested(typ byte, depth int) []byte {
	entry := 1 // the type octet
	if typ == 'F' {
		entry += 2 // the key "k"
	}
	// Level i (0 innermost, an empty table) is 4 length octets plus, above 0, one entry holding level
	// i-1; every header comes before the levels it holds, so the encoding is built outside in.
	sizes := make([]int, depth+1)
	sizes[0] = 4
	for i := 1; i <= depth; i++ {
		sizes[i] = 4 + entry + sizes[i-1]
	}
	e := wireEnc{b: make([]byte, 0, sizes[depth])}
	for i := depth; i >= 1; i-- {
		e.long(uint32(sizes[i] - 4))
		if typ == 'F' {
			e.shortstr("k")
		}
		e.octet(typ)
	}
	return e.long(0).b
}

// wireDeclareArgs is a queue.declare (server-named, exclusive, auto-delete) with a raw arguments table.
func wireDeclareArgs(table []byte) []byte {
	a := wireArgs().short(0).shortstr("").bits(false, false, true, true, false).raw(table)
	return wireMethodFrame(1, wireQueue, 10, a)
}

// expectDeclareOK reads queue.declare-ok on channel 1 and proves the connection still works.
func (w *wireConn) expectDeclareOK() {
	w.t.Helper()
	f := w.expect(1, wireQueue, 11)
	d := wireArgsOf(f)
	if q := d.shortstr(); d.err != nil || q == "" {
		w.t.Fatalf("queue.declare-ok: %q %v", q, d.err)
	}
	w.checkOtherChannel(2)
}

// wireAbuseCases are the cases added to the first conformance set.
func wireAbuseCases() []wireCase {
	return []wireCase{
		{name: "frame/header-truncated-then-eof", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send([]byte{wireFrameMethod, 0, 1})
			w.closeWrite()
			w.expectEOF()
		}},
		{name: "frame/bad-end-octet-on-heartbeat", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			f := wireHeartbeatFrame()
			f[len(f)-1] = 0xFF
			w.send(f)
			w.expectConnectionClose(wireHard(501, wireAnyText, 0, 0))
		}},
		{name: "frame/bad-end-octet-on-body", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			body := wireBodyFrame(1, []byte("abc"))
			body[len(body)-1] = 'x'
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 3, 0, nil), body)
			w.expectConnectionClose(wireHard(501, wireAnyText, 0, 0))
		}},
		{name: "frame/unknown-type-4", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(4, 0, []byte{1}))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 4, all octets = <<1>>: unknown_frame", 0, 0))
		}},
		{name: "frame/unknown-type-255", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireFrameBytes(255, 1, nil))
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 255, all octets = <<>>: unknown_frame", 0, 0))
		}},
		{name: "frame/header-larger-than-frame-max", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			// A content header whose headers table makes the frame 200 KiB, past frame_max 128 KiB: the
			// broker judges it from the frame header, before reading the payload.
			_ = w.write(wireBasicPublish(1, "", "x"),
				wireArgs().octet(wireFrameHeader).short(1).long(200<<10).raw(make([]byte, 100)).b)
			w.expectConnectionClose(wireHard(501, "FRAME_ERROR - type 2, all octets = <<>>: {frame_too_large,204800,131064}", 0, 0))
		}},
		{name: "content/body-shorter-then-next-publish", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 10, 0, nil),
				wireBodyFrame(1, []byte("12345")), wireBasicPublish(1, "", "x"))
			w.expectConnectionClose(wireHard(505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", 60, 40))
		}},
		{name: "content/header-on-channel-0", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireHeaderFrame(0, wireBasic, 3, 0, nil))
			w.expectConnectionClose(wireHard(505, wireAnyText, 0, 0), wireHard(504, wireAnyText, 0, 0))
		}},
		{name: "content/body-on-channel-0", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireBodyFrame(0, []byte("abc")))
			w.expectConnectionClose(wireHard(505, wireAnyText, 0, 0), wireHard(504, wireAnyText, 0, 0))
		}},
		{name: "method/publish-on-channel-0", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wirePublish(0, "", "x", []byte("abc")))
			w.expectConnectionClose(wireHard(504, wireAnyText, 60, 40), wireHard(503, wireAnyText, 60, 40))
		}},
		{name: "table/oversized-within-frame-max", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			// 1,000 arguments of 100 bytes each (about 110 KiB), none of them a known x- argument.
			var fields []wireField
			val := string(make([]byte, 100))
			for i := range 1000 {
				fields = append(fields, wireField{Name: "junk-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)), Value: val})
			}
			w.send(wireDeclareArgs(wireArgs().table(fields...).b))
			w.expectDeclareOK()
		}},
		{name: "table/nested-tables-10000-deep", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			nested := wireNested('F', 10000)
			tbl := wireArgs().long(uint32(len(nested) + 3)).shortstr("n").octet('F').raw(nested).b
			w.send(wireDeclareArgs(tbl))
			w.expectDeclareOKOrClose()
		}},
		{name: "table/nested-arrays-10000-deep", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			nested := wireNested('A', 10000)
			tbl := wireArgs().long(uint32(len(nested) + 3)).shortstr("n").octet('A').raw(nested).b
			w.send(wireDeclareArgs(tbl))
			w.expectDeclareOKOrClose()
		}},
		{name: "table/every-field-type", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			var e wireEnc
			e.shortstr("t").octet('t').octet(1)
			e.shortstr("b").octet('b').octet(0xff)
			e.shortstr("B").octet('B').octet(0xff)
			e.shortstr("s").octet('s').short(1)
			e.shortstr("u").octet('u').short(1)
			e.shortstr("I").octet('I').long(1)
			e.shortstr("i").octet('i').long(1)
			e.shortstr("l").octet('l').longlong(1)
			e.shortstr("f").octet('f').long(0)
			e.shortstr("d").octet('d').longlong(0)
			e.shortstr("D").octet('D').octet(2).long(12345)
			e.shortstr("S").octet('S').longstr("s")
			e.shortstr("x").octet('x').longstr("\x00\x01")
			e.shortstr("A").octet('A').long(2).octet('t').octet(0)
			e.shortstr("T").octet('T').longlong(1)
			e.shortstr("F").octet('F').long(0)
			e.shortstr("V").octet('V')
			w.send(wireDeclareArgs(wireArgs().long(uint32(len(e.b))).raw(e.b).b))
			w.expectDeclareOK()
		}},
		{name: "table/array-with-bad-type", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			tbl := wireArgs().long(10).shortstr("a").octet('A').long(3).octet('Z').octet(0).octet(0).b
			w.send(wireDeclareArgs(tbl))
			w.expectDrop(wireHard(502, wireAnyText, 50, 10), wireHard(501, wireAnyText, 50, 10))
		}},
		{name: "table/array-length-past-end", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			tbl := wireArgs().long(8).shortstr("a").octet('A').long(500).octet('t').b
			w.send(wireDeclareArgs(tbl))
			w.expectDrop(wireHard(502, wireAnyText, 50, 10), wireHard(501, wireAnyText, 50, 10))
		}},
		{name: "handshake/connection-open-again-after-open", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireConnectionOpen("/"))
			w.expectConnectionClose(wireHard(504, wireAnyText, 10, 40), wireHard(503, wireAnyText, 10, 40))
		}},
		{name: "handshake/tune-ok-again-after-open", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireTuneOK(w.tu))
			w.expectConnectionClose(wireHard(504, wireAnyText, 10, 31), wireHard(503, wireAnyText, 10, 31))
		}},
		{name: "handshake/start-ok-again-after-open", run: func(t *testing.T, b broker) {
			w := wireReady(t, b)
			w.send(wireStartOK())
			w.expectConnectionClose(wireHard(504, wireAnyText, 10, 11), wireHard(503, wireAnyText, 10, 11))
		}},
		{name: "channel/2047-channels-then-one-more", run: func(t *testing.T, b broker) {
			w := wireHandshake(t, b)
			limit := w.tu.ChannelMax
			var all []byte
			for ch := uint16(1); ch <= limit; ch++ {
				all = append(all, wireChannelOpen(ch)...)
			}
			w.send(all)
			// RabbitMQ runs a process per channel, so the open-oks may come in any order.
			opened := map[uint16]bool{}
			for range limit {
				f := w.next()
				if !f.Is(wireChannel, 11) || opened[f.Channel] || f.Channel < 1 || f.Channel > limit {
					t.Fatalf("got %v, want channel.open-ok on a new channel", f)
				}
				opened[f.Channel] = true
			}
			w.send(wireChannelOpen(limit + 1))
			w.expectConnectionClose(wireHard(530, "NOT_ALLOWED - number of channels opened (2047) has reached the negotiated channel_max (2047)", 0, 0))
		}},
		{name: "channel/5000-channels-opened-and-closed", run: func(t *testing.T, b broker) {
			// Channels 1..5000 each opened and closed, pipelined in batches of 1,000 (a channel number
			// is reused only after its close-ok, as the spec requires, and RabbitMQ counts a closing
			// channel against channel_max until it is gone), then channel 1 again.
			w := wireHandshake(t, b)
			state := map[uint16]int{} // 1: open-ok seen, 2: close-ok seen
			for first := uint16(1); first <= 5000; first += 1000 {
				var all []byte
				for ch := first; ch < first+1000; ch++ {
					all = append(all, wireChannelOpen(ch)...)
					all = append(all, wireChannelClose(ch, 200, "", 0, 0)...)
				}
				w.send(all)
				for range 2 * 1000 {
					f := w.next()
					switch {
					case f.Is(wireChannel, 11) && state[f.Channel] == 0:
						state[f.Channel] = 1
					case f.Is(wireChannel, 41) && state[f.Channel] == 1:
						state[f.Channel] = 2
					default:
						t.Fatalf("got %v out of order", f)
					}
				}
			}
			w.checkOtherChannel(1)
		}},
		{name: "flood/200-connections-at-once", run: func(t *testing.T, b broker) {
			ws := make([]*wireConn, 200)
			var wg sync.WaitGroup
			for i := range ws {
				ws[i] = wireDial(t, b)
				wg.Add(1)
				go func() { defer wg.Done(); ws[i].send([]byte(wireProtocolHeader)) }()
			}
			wg.Wait()
			for _, w := range ws {
				w.expect(0, wireConnection, 10)
				w.send(wireStartOK())
				w.tu = w.readTune()
				w.send(wireTuneOK(w.tu), wireConnectionOpen("/"), wireChannelOpen(1))
			}
			for _, w := range ws {
				w.expect(0, wireConnection, 41)
				w.expect(1, wireChannel, 11)
				w.closeConnection()
			}
		}},
		{name: "flood/200-failed-logins", run: func(t *testing.T, b broker) {
			// Every bad login is refused (403, or the socket dropped by a broker that throttles failed
			// logins); none gets in, and a good login works right after.
			ws := make([]*wireConn, 200)
			bad := wireMethodFrame(0, wireConnection, 11,
				wireArgs().raw(wireClientProperties().b).shortstr("PLAIN").longstr("\x00guest\x00wrong").shortstr("en_US"))
			for i := range ws {
				ws[i] = wireDial(t, b)
				ws[i].send([]byte(wireProtocolHeader))
			}
			for _, w := range ws {
				w.expect(0, wireConnection, 10)
				_ = w.write(bad)
			}
			for _, w := range ws {
				w.expectDrop(wireHard(403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.", 0, 0))
			}
		}},
	}
}

// expectDeclareOKOrClose accepts either a queue.declare-ok (the table was parsed and ignored, as
// RabbitMQ does) or a connection.close with a frame or syntax error, but not a hang or a drop.
func (w *wireConn) expectDeclareOKOrClose() {
	w.t.Helper()
	f := w.next()
	if f.Channel == 1 && f.Is(wireQueue, 11) {
		w.checkOtherChannel(2)
		return
	}
	w.finishConnectionClose(f, wireHard(501, wireAnyText, 50, 10), wireHard(502, wireAnyText, 50, 10))
}
