package server

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// outbound is a connection's write side. Producers (the read loop, queue dispatch on any goroutine)
// append encoded frames to mu.buf under mu and ring the bell; the write loop (run) swaps the buffer
// out under mu and writes it with the lock released, so one socket write carries every frame queued
// since the last one (flush coalescing) and no lock is ever held across I/O.
//
// A read loop may instead append without ringing (writeVia, recording the outbound in its
// writeBatch) and write the buffer itself when its batch of frames is done (flushDirect): one
// non-blocking write, with no goroutine woken, when the socket has room, no other goroutine is
// writing, and every frame pending came from that batch. Frames from several producers are left to
// the write loop, so that one write still carries them all (100 publishers into one consumer's
// connection would otherwise cost a write each). Whatever a direct write cannot write goes back to
// the front of mu.buf for the write loop.
//
// Invariant: at most one goroutine writes to nc at a time, the one holding mu.writer (writeClaim);
// bytes reach the socket in the order they were appended.
type outbound struct {
	nc       net.Conn
	raw      syscall.RawConn // nc's descriptor for flushDirect; nil if nc is not a plain socket (TLS, pipes)
	meter    *meteredConn    // nc's byte counters, which direct writes bypass; nil if none
	bell     chan struct{}   // 1-buffered doorbell: "mu.buf is not empty" or "closing"
	done     chan struct{}   // closed by run when it returns
	frameMax uint32          // written once in the handshake, before any concurrent producer exists
	hbFrame  []byte          // the heartbeat run writes when idle; nil: AMQP's (set before run starts)

	// full is set (under mu) when the pending buffer passes outboundLimit: queues deliver no more
	// to this connection's consumers (tryDeliver) until the write loop takes the buffer, then it
	// calls onDrain (set before run starts) with no lock held so that they deliver again.
	full    atomic.Bool
	onDrain func()

	testHookDirectWrote func(wrote, of int) // tests: runs after a direct write, before its rest is put back

	mu struct {
		sync.Mutex
		buf        []byte
		spare      []byte      // the last buffer written, reused for the next swap
		owner      *writeBatch // the batch that appended the first frame pending (nil: not a batch)
		shared     bool        // frames pending from more than one producer, or a rest put back
		writer     writeClaim  // held by the goroutine writing a buffer it took: nobody else may write to nc
		closeAfter bool        // close the socket once buf is written
		stopped    bool        // a write failed and run returned: appends are dropped
		wrote      bool        // bytes were written since the heartbeat ticker last looked
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

// directMax is the most a read loop writes to another connection's socket itself (flushDirect).
// Past it the batch is large enough that a write loop running on another core is worth its
// wake-up, and the reader gets back to reading sooner.
const directMax = 64 << 10

func newOutbound(nc net.Conn) *outbound {
	o := &outbound{nc: nc, bell: make(chan struct{}, 1), done: make(chan struct{}), frameMax: amqp.FrameMinSize}
	sock := nc
	if m, ok := nc.(*meteredConn); ok {
		o.meter, sock = m, m.Conn
	}
	if tc, ok := sock.(*net.TCPConn); ok && canWriteDirect {
		if rc, err := tc.SyscallConn(); err == nil {
			o.raw = rc
		}
	}
	return o
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
	if !o.appendFrames(nil, fn) {
		return false
	}
	o.ring()
	return true
}

// appendFrames lets fn append frames to the pending buffer without waking the write loop, for
// batch wb (nil: none).
func (o *outbound) appendFrames(wb *writeBatch, fn func([]byte) []byte) bool {
	o.mu.Lock()
	if o.mu.stopped || o.mu.closeAfter {
		o.mu.Unlock()
		return false
	}
	if len(o.mu.buf) == 0 {
		o.mu.owner = wb
	} else if o.mu.owner != wb {
		o.mu.shared = true
	}
	o.mu.buf = fn(o.mu.buf)
	if len(o.mu.buf) >= outboundLimit && !o.full.Load() {
		o.full.Store(true)
	}
	o.mu.Unlock()
	return true
}

// writeVia is write for a caller that may hold a read loop's batch (wb, nil if none): the frames
// are appended now and written when the batch ends (wb.flush), without waking the write loop.
func (o *outbound) writeVia(wb *writeBatch, fn func([]byte) []byte) bool {
	if wb.add(o) {
		return o.appendFrames(wb, fn)
	}
	return o.write(fn)
}

// flushDirect writes the pending buffer on the calling goroutine (the read loop of batch wb) if
// that can be done at once: the socket is a plain one, nobody else is writing, every pending frame
// is wb's and the buffer is small. It never blocks on the socket: what the socket does not take at
// once, and every case it declines, is left to the write loop, which it wakes.
func (o *outbound) flushDirect(wb *writeBatch) {
	o.mu.Lock()
	if len(o.mu.buf) == 0 {
		o.mu.Unlock()
		return
	}
	if o.raw == nil || o.mu.shared || o.mu.owner != wb || o.mu.stopped || o.mu.closeAfter ||
		o.full.Load() || len(o.mu.buf) > directMax || !o.mu.writer.tryAcquire() {
		o.mu.Unlock()
		o.ring()
		return
	}
	buf := o.takeLocked()
	o.mu.Unlock()

	n := 0
	_ = o.raw.Write(func(fd uintptr) bool { // one attempt: the descriptor is non-blocking
		n = writeNonblocking(fd, buf)
		return true
	}) // an error (closed, say) leaves n at 0: the write loop meets it again and ends
	if n > 0 && o.meter != nil {
		o.meter.countSend(n)
	}
	if o.testHookDirectWrote != nil {
		o.testHookDirectWrote(n, len(buf))
	}

	o.mu.Lock()
	o.mu.writer.release()
	if n < len(buf) {
		// Put the rest back in front of what was appended meanwhile, in buf's own memory.
		rest := copy(buf, buf[n:])
		buf = append(buf[:rest], o.mu.buf...)
		o.mu.buf, o.mu.spare = buf, o.mu.buf[:0]
		o.mu.owner, o.mu.shared = nil, true // the write loop's now
	} else {
		o.keepSpareLocked(buf)
	}
	more := len(o.mu.buf) > 0 || o.mu.closeAfter || o.mu.stopped
	o.mu.Unlock()
	if more {
		o.ring() // the write loop skipped its turn while we wrote, or there is a rest to write
	}
}

// takeLocked hands the pending buffer to the writer that holds mu.writer, which must call
// keepSpareLocked (or put the rest back) and release mu.writer when it is done.
func (o *outbound) takeLocked() []byte {
	buf := o.mu.buf
	o.mu.buf, o.mu.spare = o.mu.spare[:0], nil
	o.mu.owner, o.mu.shared = nil, false
	o.mu.wrote = true
	return buf
}

// writeClaim is the direct socket-write handshake: the right to write a taken buffer to the
// connection's socket, held by at most one goroutine at a time, the write loop (run) or a read
// loop ending its batch (flushDirect). It lives in outbound.mu and its methods are called with
// outbound.mu held. The holder takes the buffer (takeLocked), releases outbound.mu, writes, takes
// outbound.mu again to put back what the socket did not take, and releases the claim. While a read
// loop holds it the write loop skips its turn, and the read loop rings it after releasing if
// anything is left; so bytes reach the socket in the order they were appended.
type writeClaim struct{ held bool }

// tryAcquire takes the claim; false if another goroutine holds it.
func (w *writeClaim) tryAcquire() bool {
	if w.held {
		return false
	}
	w.held = true
	return true
}

// release gives the claim back; only its holder calls it.
func (w *writeClaim) release() { w.held = false }

// busy reports whether a goroutine holds the claim.
func (w *writeClaim) busy() bool { return w.held }

// keepSpareLocked keeps a written buffer for the next swap unless it grew very large (a burst of
// big bodies): then it lets it go rather than pin the memory.
func (o *outbound) keepSpareLocked(buf []byte) {
	if o.mu.spare == nil && cap(buf) <= 4<<20 {
		o.mu.spare = buf[:0]
	}
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
	for {
		select {
		case <-o.bell:
		case <-tick:
			o.mu.Lock()
			idle := !o.mu.wrote
			if idle && len(o.mu.buf) == 0 && cap(o.mu.buf) > idleBufMax {
				o.mu.buf = nil // nothing written for half a heartbeat: give a burst's buffer back
			}
			if idle && cap(o.mu.spare) > idleBufMax {
				o.mu.spare = nil
			}
			if idle && len(o.mu.buf) == 0 && !o.mu.stopped && !o.mu.closeAfter {
				if o.hbFrame != nil {
					o.mu.buf = append(o.mu.buf, o.hbFrame...)
				} else {
					o.mu.buf = amqp.AppendHeartbeat(o.mu.buf)
				}
			}
			o.mu.wrote = false
			o.mu.Unlock()
		}
		o.mu.Lock()
		if o.mu.writer.busy() {
			// A read loop is writing directly (flushDirect); it rings when it is done.
			o.mu.Unlock()
			continue
		}
		stopped, closeAfter := o.mu.stopped, o.mu.closeAfter
		if stopped {
			o.mu.Unlock()
			return
		}
		var buf []byte
		if len(o.mu.buf) > 0 && o.mu.writer.tryAcquire() { // free: it was not busy above
			buf = o.takeLocked()
		}
		drained := o.full.Load()
		if drained {
			o.full.Store(false)
		}
		o.mu.Unlock()
		if len(buf) > 0 {
			_, err := o.nc.Write(buf)
			o.mu.Lock()
			o.mu.writer.release()
			if err != nil {
				o.mu.stopped = true
				o.mu.Unlock()
				o.nc.Close()
				return
			}
			o.keepSpareLocked(buf)
			o.mu.Unlock()
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
	}
}

// writeBatch is a read loop's list of the connections it queued deliveries for without waking
// their write loops (outbound.writeVia). The read loop calls flush (conn.endBatch) when its
// buffered frames are handled and before it waits for flow control or an alarm; not before a wait
// for a commit, which happens under channel.loopMu (flush writes to sockets, so no lock may be
// held). Only the read loop that owns it touches it.
type writeBatch struct {
	outs []*outbound
}

// writeBatchMax bounds a batch: past it (a fanout to many consumer connections) deliveries wake
// their write loops as they are queued, and add stays a short scan.
const writeBatchMax = 16

// add records o in the batch; false if there is no batch or it is full (write at once instead).
func (wb *writeBatch) add(o *outbound) bool {
	if wb == nil {
		return false
	}
	for _, x := range wb.outs {
		if x == o {
			return true
		}
	}
	if len(wb.outs) >= writeBatchMax {
		return false
	}
	wb.outs = append(wb.outs, o)
	return true
}

// flush writes (or hands to their write loops) what the batch queued.
func (wb *writeBatch) flush() {
	for i, o := range wb.outs {
		o.flushDirect(wb)
		wb.outs[i] = nil
	}
	wb.outs = wb.outs[:0]
}
