package server

import (
	"io"
	"net"
	"testing"
	"time"
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
	deadline := time.Now().Add(10 * time.Second)
	for bufCap() <= idleBufMax {
		if time.Now().After(deadline) {
			t.Fatal("the write buffer never grew")
		}
		o.write(func(b []byte) []byte { return append(b, burst...) })
		time.Sleep(time.Millisecond)
	}
	for bufCap() > idleBufMax {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection still holds a %d-byte write buffer", bufCap())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
