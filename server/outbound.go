package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// outbound is a connection's write side. Producers (the read loop, queue dispatch on any goroutine)
// append encoded frames to mu.buf under mu and ring the bell; the write loop (run) swaps the buffer
// out under mu and writes it with the lock released, so one socket write carries every frame queued
// since the last one (flush coalescing) and no lock is ever held across I/O.
type outbound struct {
	nc       net.Conn
	bell     chan struct{} // 1-buffered doorbell: "mu.buf is not empty" or "closing"
	done     chan struct{} // closed by run when it returns
	frameMax uint32        // written once in the handshake, before any concurrent producer exists

	// full is set (under mu) when the pending buffer passes outboundLimit: queues deliver no more
	// to this connection's consumers (tryDeliver) until the write loop takes the buffer, then it
	// calls onDrain (set before run starts) with no lock held so that they deliver again.
	full    atomic.Bool
	onDrain func()

	mu struct {
		sync.Mutex
		buf        []byte
		closeAfter bool // close the socket once buf is written
		stopped    bool // a write failed and run returned: appends are dropped
		wrote      bool // bytes were written since the heartbeat ticker last looked
	}
}

// idleBufMax is the largest write buffer a connection keeps once it has been idle for half a
// heartbeat interval: a burst's buffers (up to 4 MiB each, see run) are let go then, so an idle
// connection does not pin them. Busy connections are unaffected (they write between ticks).
const idleBufMax = 64 << 10

// outboundLimit bounds the bytes of deliveries waiting for a connection's write loop: past it, a
// consumer that does not keep up (no-ack, or no prefetch limit) gets no more until they are written,
// so its messages stay in their queues, where flow control and paging bound them.
const outboundLimit = 4 << 20

func newOutbound(nc net.Conn) *outbound {
	return &outbound{nc: nc, bell: make(chan struct{}, 1), done: make(chan struct{}), frameMax: amqp.FrameMinSize}
}

func (o *outbound) ring() {
	select {
	case o.bell <- struct{}{}:
	default:
	}
}

// write lets fn append frames to the pending buffer and wakes the write loop. It reports false if
// the connection is no longer writable (the frames are dropped).
func (o *outbound) write(fn func([]byte) []byte) bool {
	o.mu.Lock()
	if o.mu.stopped || o.mu.closeAfter {
		o.mu.Unlock()
		return false
	}
	o.mu.buf = fn(o.mu.buf)
	if len(o.mu.buf) >= outboundLimit && !o.full.Load() {
		o.full.Store(true)
	}
	o.mu.Unlock()
	o.ring()
	return true
}

// writeMethod encodes one method frame. Encoding errors (a field too long for its type) are
// programming errors of the broker; they are returned so the caller can close the channel.
func (o *outbound) writeMethod(ch uint16, m amqp.Method) error {
	var encErr error
	o.write(func(b []byte) []byte {
		nb, err := amqp.AppendMethodFrame(b, ch, m)
		if err != nil {
			encErr = err
			return b
		}
		return nb
	})
	return encErr
}

// closeAfterFlush makes the write loop close the socket after writing what is queued; later writes
// are dropped.
func (o *outbound) closeAfterFlush() {
	o.mu.Lock()
	o.mu.closeAfter = true
	o.mu.Unlock()
	o.ring()
}

// run is the write loop. heartbeat > 0 sends a heartbeat frame whenever nothing else was written
// for half the interval. It returns when stopped, after closeAfterFlush has flushed, or on a write
// error (the socket is closed so the read loop ends too).
func (o *outbound) run(heartbeat time.Duration) {
	defer close(o.done)
	var tick <-chan time.Time
	if heartbeat > 0 {
		t := time.NewTicker(heartbeat / 2)
		defer t.Stop()
		tick = t.C
	}
	var spare []byte
	for {
		select {
		case <-o.bell:
		case <-tick:
			o.mu.Lock()
			idle := !o.mu.wrote
			if idle && len(o.mu.buf) == 0 && cap(o.mu.buf) > idleBufMax {
				o.mu.buf = nil // nothing written for half a heartbeat: give a burst's buffer back
			}
			if idle && len(o.mu.buf) == 0 && !o.mu.stopped && !o.mu.closeAfter {
				o.mu.buf = amqp.AppendHeartbeat(o.mu.buf)
			}
			o.mu.wrote = false
			o.mu.Unlock()
			if idle && cap(spare) > idleBufMax {
				spare = nil
			}
		}
		o.mu.Lock()
		buf := o.mu.buf
		o.mu.buf = spare[:0]
		stopped, closeAfter := o.mu.stopped, o.mu.closeAfter
		drained := o.full.Load()
		if drained {
			o.full.Store(false)
		}
		if len(buf) > 0 {
			o.mu.wrote = true
		}
		o.mu.Unlock()
		if stopped {
			return
		}
		if len(buf) > 0 {
			if _, err := o.nc.Write(buf); err != nil {
				o.mu.Lock()
				o.mu.stopped = true
				o.mu.Unlock()
				o.nc.Close()
				return
			}
		}
		if drained && !closeAfter && o.onDrain != nil {
			o.onDrain() // deliveries held back while the buffer was full may go on
		}
		if closeAfter {
			o.mu.Lock()
			more := len(o.mu.buf) > 0
			o.mu.Unlock()
			if !more {
				o.nc.Close()
				return
			}
		}
		// Keep the written buffer as the next spare unless it grew very large (a burst of big
		// bodies): then let it go rather than pin the memory.
		if cap(buf) <= 4<<20 {
			spare = buf[:0]
		} else {
			spare = nil
		}
	}
}
