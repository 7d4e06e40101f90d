package integration

// Raw-socket tests of negotiated limits: heartbeats, frame_max, channel_max and the maximum message
// size. Tests that a client can provoke by negotiating (a lower heartbeat or frame_max in tune-ok) run
// against RabbitMQ too; those that need a broker option run against Warren only.

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// expectSilentPeerClosed stays silent on a connection that negotiated a 1 s heartbeat and checks that the
// broker drops the socket after two missed heartbeats (RabbitMQ: no connection.close, just the socket),
// not at once and not later than within.
func (w *wireConn) expectSilentPeerClosed(within time.Duration) {
	w.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		f, err := w.readFrameBy(deadline)
		if err == nil && f.Type == wireFrameHeartbeat {
			continue
		}
		if err == nil {
			w.t.Fatalf("got %v, want only heartbeats and then the socket closed", f)
		}
		if !wireClosed(err) {
			w.t.Fatalf("a silent peer was not disconnected within %v: %v", within, err)
		}
		if d := time.Since(start); d < time.Second {
			w.t.Fatalf("a silent peer was disconnected after %v, before one heartbeat interval", d)
		}
		return
	}
}

// keepBeating sends a heartbeat every 300 ms for d, then proves the connection still works.
func (w *wireConn) keepBeating(d time.Duration) {
	w.t.Helper()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	done := time.NewTimer(d)
	defer done.Stop()
	for {
		select {
		case <-tick.C:
			w.send(wireHeartbeatFrame())
		case <-done.C:
			q := w.declareQueue(1)
			w.roundTrip(1, q, "alive after heartbeats")
			w.closeConnection()
			return
		}
	}
}

// TestWireHeartbeat: a client that negotiates a 1 s heartbeat and then goes silent is disconnected after
// two missed heartbeats; one that keeps sending heartbeats stays connected.
func TestWireHeartbeat(t *testing.T) {
	b := startBroker(t)
	oneSecond := func(tu *wireTune) { tu.Heartbeat = 1 }
	t.Run("silent-peer-closed", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b, oneSecond)
		// RabbitMQ 3.10.8 checks once per interval and usually drops the peer after about 3 s, but
		// under load it has taken over 4.5 s; the Warren-only test below is stricter.
		w.expectSilentPeerClosed(6 * time.Second)
		wireCheckServing(t, b)
	})
	t.Run("beating-peer-stays", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b, oneSecond)
		w.keepBeating(3 * time.Second)
	})
	t.Run("broker-sends-heartbeats", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b, oneSecond)
		// Within two intervals the broker must have sent at least one heartbeat frame on channel 0.
		f, err := w.readFrameBy(time.Now().Add(2500 * time.Millisecond))
		if err != nil {
			t.Fatalf("no heartbeat from the broker: %v", err)
		}
		if f.Type != wireFrameHeartbeat || f.Channel != 0 || len(f.Payload) != 0 {
			t.Fatalf("got %v, want a heartbeat on channel 0", f)
		}
		w.closeConnection()
	})
}

// TestWireHeartbeatOption: Warren's Heartbeat option is offered in connection.tune and enforced.
func TestWireHeartbeatOption(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.Heartbeat = time.Second })
	t.Run("offered", func(t *testing.T) {
		t.Parallel()
		w := wireHandshake(t, b)
		if w.tu.Heartbeat != 1 {
			t.Fatalf("tune heartbeat %d, want 1", w.tu.Heartbeat)
		}
		w.closeConnection()
	})
	t.Run("silent-peer-closed", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b)
		// Two missed 1 s intervals, plus scheduling slack.
		w.expectSilentPeerClosed(3500 * time.Millisecond)
		wireCheckServing(t, b)
	})
	t.Run("beating-peer-stays", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b)
		w.keepBeating(3 * time.Second)
	})
}

// wireFrameTooLarge is RabbitMQ's connection.close for a body frame whose payload exceeds frame_max - 8.
func wireFrameTooLarge(payload, frameMax uint32) wireCloseInfo {
	return wireHard(501, fmt.Sprintf("FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,%d,%d}",
		payload, frameMax-8), 0, 0)
}

// sendOversizedFrameStart sends the header and the first 100 payload octets of a body frame on channel 1
// whose declared payload is size, and no more: the broker must judge the size from the frame header,
// before reading (or allocating) the payload.
func (w *wireConn) sendOversizedFrameStart(size uint32) {
	w.t.Helper()
	_ = w.write(wireArgs().octet(wireFrameBody).short(1).long(size).raw(make([]byte, 100)).b)
}

// wirePublishSplit publishes body to q in body frames of at most chunk bytes.
func (w *wireConn) publishSplit(ch uint16, q string, body []byte, chunk int) {
	w.t.Helper()
	w.send(wireBasicPublish(ch, "", q), wireHeaderFrame(ch, wireBasic, uint64(len(body)), 0, nil))
	for len(body) > 0 {
		n := min(chunk, len(body))
		w.send(wireBodyFrame(ch, body[:n]))
		body = body[n:]
	}
}

// getSplit fetches one message from q and checks its body and that no body frame exceeds frame_max.
func (w *wireConn) getSplit(ch uint16, q string, want []byte) {
	w.t.Helper()
	w.send(wireBasicGet(ch, q, true))
	w.expect(ch, wireBasic, 71)
	if h := w.next(); h.Type != wireFrameHeader {
		w.t.Fatalf("got %v, want a content header", h)
	}
	var got []byte
	for len(got) < len(want) {
		f := w.next()
		if f.Type != wireFrameBody || f.Channel != ch {
			w.t.Fatalf("got %v, want a body frame on ch %d", f, ch)
		}
		if len(f.Payload) > int(w.tu.FrameMax)-8 {
			w.t.Fatalf("body frame of %d bytes exceeds frame_max %d", len(f.Payload), w.tu.FrameMax)
		}
		got = append(got, f.Payload...)
	}
	if string(got) != string(want) {
		w.t.Fatalf("body of %d bytes differs from the %d published", len(got), len(want))
	}
}

// TestWireFrameMax: with frame_max 4096 negotiated by the client, body frames of exactly 4088 bytes are
// accepted and deliveries are split to fit; a payload of 4097 closes the connection with 501. RabbitMQ
// 3.10.8 allows a fudge of 8 octets (it rejects a payload only above frame_max, though its message names
// frame_max - 8), so payloads of 4089..4096 are left unchecked here.
func TestWireFrameMax(t *testing.T) {
	b := startBroker(t)
	small := func(tu *wireTune) { tu.FrameMax = 4096 }
	t.Run("exact-fit-round-trip", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b, small)
		q := w.declareQueue(1)
		body := make([]byte, 10000)
		for i := range body {
			body[i] = byte(i)
		}
		w.publishSplit(1, q, body, 4088)
		w.getSplit(1, q, body)
		w.closeConnection()
	})
	t.Run("payload-above-frame-max", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b, small)
		w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 4097, 0, nil))
		w.sendOversizedFrameStart(4097)
		w.expectConnectionClose(wireFrameTooLarge(4097, 4096))
		wireCheckServing(t, b)
	})
}

// TestWireFrameMaxOption: Warren's FrameMax option is offered in connection.tune and enforced.
func TestWireFrameMaxOption(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.FrameMax = 4096 })
	w := wireReady(t, b)
	if w.tu.FrameMax != 4096 {
		t.Fatalf("tune frame_max %d, want 4096", w.tu.FrameMax)
	}
	w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, 5000, 0, nil))
	w.sendOversizedFrameStart(5000)
	w.expectConnectionClose(wireFrameTooLarge(5000, 4096))
	wireCheckServing(t, b)
}

// TestWireChannelMaxOption: Warren's ChannelMax option is offered in connection.tune, and opening one
// channel more than it allows closes the connection with 530, as RabbitMQ does for a negotiated limit.
func TestWireChannelMaxOption(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.ChannelMax = 4 })
	w := wireHandshake(t, b)
	if w.tu.ChannelMax != 4 {
		t.Fatalf("tune channel_max %d, want 4", w.tu.ChannelMax)
	}
	for ch := uint16(1); ch <= 4; ch++ {
		w.openChannel(ch)
	}
	w.send(wireChannelOpen(5))
	w.expectConnectionClose(wireHard(530, "NOT_ALLOWED - number of channels opened (4) has reached the negotiated channel_max (4)", 0, 0))
	wireCheckServing(t, b)
}

// TestWireMaxMessageSizeOption: a body larger than Warren's MaxMessageSize closes the channel with 406,
// with RabbitMQ's text; the connection keeps working on another channel.
func TestWireMaxMessageSizeOption(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.MaxMessageSize = 1024 })
	w := wireReady(t, b)
	q := w.declareQueue(1)
	w.publishSplit(1, q, make([]byte, 1024), 4088)
	w.getSplit(1, q, make([]byte, 1024))
	w.publishSplit(1, q, make([]byte, 1025), 4088)
	w.expectChannelClose(1, wireHard(406, "PRECONDITION_FAILED - message size 1025 is larger than configured max size 1024", 60, 40))
	w.checkOtherChannel(2)
	wireCheckServing(t, b)
}

// TestWireMaxMessageSize: a body one byte over RabbitMQ's default max_message_size (128 MiB) closes the
// channel with 406 once it has arrived; the connection keeps working on another channel.
func TestWireMaxMessageSize(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 128 MiB")
	}
	b := startBroker(t)
	w := wireReady(t, b)
	const size = 128<<20 + 1
	chunk := make([]byte, w.tu.FrameMax-8)
	w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, size, 0, nil))
	// Frames go out in batches; a broker that rejects the header early may stop reading, so write errors
	// end the sending and the answer decides.
	frame := wireBodyFrame(1, chunk)
	batch := make([]byte, 0, 64*len(frame))
	for i := 0; i < 64; i++ {
		batch = append(batch, frame...)
	}
	left := size
	for left >= 64*len(chunk) {
		if err := w.write(batch); err != nil {
			break
		}
		left -= 64 * len(chunk)
	}
	for left > 0 && w.write(wireBodyFrame(1, chunk[:min(left, len(chunk))])) == nil {
		left -= min(left, len(chunk))
	}
	w.expectChannelClose(1, wireHard(406, "PRECONDITION_FAILED - message size 134217729 is larger than configured max size 134217728", 60, 40))
	w.checkOtherChannel(2)
	wireCheckServing(t, b)
}

// TestWireOversizedBodyNotBuffered: a content header declaring 200 MiB, past the default maximum
// message size, followed by the whole body sent in frames with pauses. The broker answers 406 and
// discards the body frames as they come instead of assembling them: the process's heap stays within
// 32 MiB of where it started while the 200 MiB go through, and the connection works afterwards.
func TestWireOversizedBodyNotBuffered(t *testing.T) {
	persistSkipExternal(t)
	if testing.Short() {
		t.Skip("sends 200 MiB")
	}
	b, _ := startLoggedBroker(t)
	w := wireReady(t, b)
	base := takeProcState()
	const size = 200 << 20
	chunk := make([]byte, w.tu.FrameMax-8)
	frame := wireBodyFrame(1, chunk)
	batch := make([]byte, 0, 8*len(frame))
	for range 8 {
		batch = append(batch, frame...)
	}
	w.send(wireBasicPublish(1, "", "x"), wireHeaderFrame(1, wireBasic, size, 0, nil))
	var peak uint64
	for sent, n := 0, 0; sent < size; n++ {
		if size-sent >= 8*len(chunk) {
			w.send(batch)
			sent += 8 * len(chunk)
		} else {
			k := min(size-sent, len(chunk))
			w.send(wireBodyFrame(1, chunk[:k]))
			sent += k
		}
		if n%20 == 0 { // every 20 MiB or so: pause, and look at the heap
			time.Sleep(20 * time.Millisecond)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	w.expectChannelClose(1, wireHard(406, "PRECONDITION_FAILED - message size 209715200 is larger than configured max size 134217728", 60, 40))
	t.Logf("heap before %.1f MiB, peak while 200 MiB were sent %.1f MiB", float64(base.Heap)/(1<<20), float64(peak)/(1<<20))
	if peak > base.Heap+32<<20 {
		t.Errorf("the heap reached %.1f MiB (from %.1f MiB) while an oversized body was sent: it is being buffered",
			float64(peak)/(1<<20), float64(base.Heap)/(1<<20))
	}
	w.checkOtherChannel(2)
}

// TestWireHandshakeTimeout: a client that connects and says nothing, or sends the protocol header and
// then nothing, is disconnected once Warren's HandshakeTimeout passes (RabbitMQ's handshake_timeout,
// 10 s by default); one that completes the handshake in time stays.
func TestWireHandshakeTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	b := startBroker(t, func(o *server.Options) { o.HandshakeTimeout = timeout })
	check := func(t *testing.T, w *wireConn) {
		start := time.Now()
		w.expectEOF()
		if d := time.Since(start); d < timeout/2 || d > timeout+2*time.Second {
			t.Fatalf("dropped after %v, want about %v", d, timeout)
		}
	}
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		check(t, wireDial(t, b))
	})
	t.Run("header-only", func(t *testing.T) {
		t.Parallel()
		w := wireDial(t, b)
		w.readStart()
		check(t, w)
	})
	t.Run("after-start-ok", func(t *testing.T) {
		t.Parallel()
		w := wireDial(t, b)
		w.readStart()
		w.send(wireStartOK())
		w.readTune()
		check(t, w)
	})
	t.Run("in-time-stays", func(t *testing.T) {
		t.Parallel()
		w := wireReady(t, b)
		time.Sleep(2 * timeout)
		q := w.declareQueue(1)
		w.roundTrip(1, q, "after the handshake timeout")
		w.closeConnection()
	})
}
