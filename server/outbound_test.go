package server

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/wait"
)

// A connection that wrote a burst and then went idle gives the burst's buffers back at a
// heartbeat tick instead of keeping them (up to 4 MiB each) for as long as it stays open.
func TestOutboundIdleReleasesBurstBuffers(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	o := newOutbound(server)
	go o.run(20 * time.Millisecond) // a tick every 10 ms
	defer func() { o.closeAfterFlush(); <-o.done }()
	go io.Copy(io.Discard, client)

	burst := make([]byte, 1<<20)
	bufCap := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return cap(o.mu.buf)
	}
	// Two bursts: the write loop then holds one big buffer as its spare and the other as mu.buf.
	// Keep writing until a tick finds the connection busy: mu.buf is big once a swap handed it
	// the spare of the previous burst.
	if !wait.Until(10*time.Second, time.Millisecond, func() bool {
		if bufCap() > idleBufMax {
			return true
		}
		o.write(func(b []byte) []byte { return append(b, burst...) })
		return false
	}) {
		t.Fatal("the write buffer never grew")
	}
	var n int
	if !wait.Until(10*time.Second, wait.Interval, func() bool { n = bufCap(); return n <= idleBufMax }) {
		t.Fatalf("idle connection still holds a %d-byte write buffer", n)
	}
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// A read loop's batch writes the deliveries it queued itself when it ends: the bytes reach the
// peer with no write loop running and without ringing one.
func TestOutboundFlushDirectWritesWithoutWriteLoop(t *testing.T) {
	server, client := tcpPair(t)
	o := newOutbound(server)
	if o.raw == nil {
		t.Fatal("a plain TCP connection should allow direct writes")
	}
	var wb writeBatch
	for range 3 { // the same connection three times is one entry
		if !o.writeVia(&wb, func(b []byte) []byte { return append(b, "abc"...) }) {
			t.Fatal("writeVia refused")
		}
	}
	if len(wb.outs) != 1 {
		t.Fatalf("batch holds %d connections, want 1", len(wb.outs))
	}
	wb.flush()
	if len(wb.outs) != 0 {
		t.Fatalf("batch holds %d connections after flush, want 0", len(wb.outs))
	}
	if len(o.bell) != 0 {
		t.Fatal("the write loop was rung for a direct write")
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 9)
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "abcabcabc" {
		t.Fatalf("peer read %q", got)
	}
}

// Without a batch, or on a connection that is not a plain socket (TLS, a pipe), the frames go
// through the write loop as before.
func TestOutboundFlushDirectFallsBackToWriteLoop(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	o := newOutbound(server)
	if o.raw != nil {
		t.Fatal("a pipe has no descriptor to write to directly")
	}
	var wb writeBatch
	o.writeVia(&wb, func(b []byte) []byte { return append(b, "xyz"...) })
	if len(o.bell) != 0 {
		t.Fatal("a batched write rang the write loop before the batch ended")
	}
	wb.flush()
	if len(o.bell) != 1 {
		t.Fatal("flush of a pipe did not hand the bytes to the write loop")
	}
	go o.run(0)
	defer func() { o.closeAfterFlush(); <-o.done }()
	got := make([]byte, 3)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "xyz" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	var none *writeBatch
	if none.add(o) {
		t.Fatal("a nil batch took a connection")
	}
}

// A batch stops taking connections at writeBatchMax; the rest are written at once.
func TestWriteBatchBounded(t *testing.T) {
	var wb writeBatch
	for i := range writeBatchMax + 3 {
		o := newOutbound(nil)
		if got, want := wb.add(o), i < writeBatchMax; got != want {
			t.Fatalf("add #%d = %v, want %v", i, got, want)
		}
	}
}

// seqChunk is chunk i of a byte stream whose every 8-byte word is its own offset, so a reader
// can tell a gap, a repeat or a reordering.
func seqChunk(i, size int) []byte {
	b := make([]byte, size)
	for off := 0; off < size; off += 8 {
		binary.BigEndian.PutUint64(b[off:], uint64(i*size+off))
	}
	return b
}

func checkSeqStream(t *testing.T, r io.Reader, total int) {
	t.Helper()
	got := make([]byte, total)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("reading %d bytes: %v", total, err)
	}
	for off := 0; off < total; off += 8 {
		if w := binary.BigEndian.Uint64(got[off:]); w != uint64(off) {
			t.Fatalf("byte %d holds word %d: the stream is out of order", off, w)
		}
	}
}

// When the peer's socket buffer is full, a direct write writes what fits and leaves the rest in
// front of later frames, for the write loop: nothing is lost or reordered, and the read loop
// never blocks on the peer.
func TestOutboundFlushDirectPartialWriteKeepsOrder(t *testing.T) {
	server, client := tcpPair(t)
	o := newOutbound(server)
	const size = 32 << 10
	var wb writeBatch
	n := 0
	// Another goroutine queues a chunk while each direct write is under way: it must follow
	// whatever part of the write the socket did not take.
	o.testHookDirectWrote = func(wrote, of int) {
		if wrote == of {
			return
		}
		chunk := seqChunk(n+1, size)
		o.write(func(b []byte) []byte { return append(b, chunk...) })
		n++
	}
	for ; n < 1000; n++ { // the peer reads nothing yet: the socket fills within a few chunks
		chunk := seqChunk(n, size)
		o.writeVia(&wb, func(b []byte) []byte { return append(b, chunk...) })
		wb.flush()
		o.mu.Lock()
		left := len(o.mu.buf)
		o.mu.Unlock()
		if left > size {
			n++
			break
		}
	}
	o.testHookDirectWrote = nil
	if n == 1000 {
		t.Fatal("the socket never filled up")
	}
	if len(o.bell) != 1 {
		t.Fatal("a partial direct write did not hand the rest to the write loop")
	}
	// More frames after the rest, both through the write loop and through another batch.
	for range 3 {
		chunk := seqChunk(n, size)
		o.write(func(b []byte) []byte { return append(b, chunk...) })
		n++
	}
	go o.run(0)
	defer func() { o.closeAfterFlush(); <-o.done }()
	chunk := seqChunk(n, size)
	o.writeVia(&wb, func(b []byte) []byte { return append(b, chunk...) })
	wb.flush()
	n++
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	checkSeqStream(t, client, n*size)
}

// Direct writes from several read loops race with the write loop: one writer at a time, every
// byte once, in the order it was queued.
func TestOutboundDirectAndLoopWritersConcurrent(t *testing.T) {
	server, client := tcpPair(t)
	o := newOutbound(server)
	go o.run(time.Second)
	defer func() { o.closeAfterFlush(); <-o.done }()
	const size, chunks = 256, 4000
	var next, mu = 0, make(chan struct{}, 1) // mu serialises numbering with queueing, so order is defined
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			var wb writeBatch
			for {
				mu <- struct{}{}
				if next == chunks {
					<-mu
					return
				}
				chunk := seqChunk(next, size)
				next++
				if w%2 == 0 {
					o.writeVia(&wb, func(b []byte) []byte { return append(b, chunk...) })
				} else {
					o.write(func(b []byte) []byte { return append(b, chunk...) })
				}
				<-mu
				wb.flush()
			}
		}()
	}
	client.SetReadDeadline(time.Now().Add(30 * time.Second))
	checkSeqStream(t, client, chunks*size)
	for range 4 {
		<-done
	}
}

// Frames from two batches (two publishers' read loops into one consumer's connection) are left to
// the write loop, so that one write carries both instead of one write each.
func TestOutboundSharedFramesGoThroughWriteLoop(t *testing.T) {
	server, client := tcpPair(t)
	o := newOutbound(server)
	var a, b writeBatch
	o.writeVia(&a, func(p []byte) []byte { return append(p, 'a') })
	o.writeVia(&b, func(p []byte) []byte { return append(p, 'b') })
	a.flush()
	b.flush()
	o.mu.Lock()
	pending := string(o.mu.buf)
	o.mu.Unlock()
	if pending != "ab" || len(o.bell) != 1 {
		t.Fatalf("pending %q, bell %d: want both frames left to the write loop, rung", pending, len(o.bell))
	}
	go o.run(0)
	defer func() { o.closeAfterFlush(); <-o.done }()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 2)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "ab" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	// Once the write loop has taken them, a lone batch writes directly again.
	var c writeBatch
	o.writeVia(&c, func(p []byte) []byte { return append(p, 'c') })
	c.flush()
	if _, err := io.ReadFull(client, got[:1]); err != nil || got[0] != 'c' {
		t.Fatalf("peer read %q, %v", got[:1], err)
	}
}
