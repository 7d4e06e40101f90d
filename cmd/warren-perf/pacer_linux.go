package main

import (
	"context"
	"encoding/binary"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// timerfdPacer ticks with a periodic timerfd read through the Go runtime's poller: the kernel's
// high-resolution timer wakes the producer within microseconds of each slot, where a Go timer
// would round a sub-millisecond sleep up to a millisecond. Each read returns the number of
// intervals elapsed since the last one; those are the slots the producer may spend.
type timerfdPacer struct {
	f      *os.File
	rc     syscall.RawConn
	slots  uint64
	max    uint64 // a second's worth: more is dropped (no catch-up bursts)
	stopFn func() bool
}

// newTimerfdPacer returns nil if a timerfd cannot be made (the caller falls back to sleeping).
func newTimerfdPacer(ctx context.Context, interval time.Duration) pacer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil
	}
	ts := unix.NsecToTimespec(max(int64(interval), 1))
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		unix.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "timerfd") // non-blocking: reads go through the poller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	p := &timerfdPacer{f: f, rc: rc, slots: 1, max: max(1, uint64(time.Second/max(interval, 1)))}
	p.stopFn = context.AfterFunc(ctx, func() { f.Close() }) // unblocks a waiting read
	return p
}

func (p *timerfdPacer) add(b []byte) {
	p.slots = min(p.slots+binary.NativeEndian.Uint64(b), p.max)
}

func (p *timerfdPacer) ready() bool {
	if p.slots > 0 {
		return true
	}
	var b [8]byte
	var n int
	var rerr error
	err := p.rc.Read(func(fd uintptr) bool { // one non-blocking attempt
		n, rerr = unix.Read(int(fd), b[:])
		return true
	})
	if err == nil && rerr == nil && n == 8 {
		p.add(b[:])
	}
	return p.slots > 0
}

func (p *timerfdPacer) take() {
	if p.slots > 0 {
		p.slots--
	}
}

func (p *timerfdPacer) wait() bool {
	for p.slots == 0 {
		var b [8]byte
		n, err := p.f.Read(b[:])
		if err != nil {
			return false // closed: the run is over
		}
		if n == 8 {
			p.add(b[:])
		}
	}
	return true
}

func (p *timerfdPacer) close() {
	p.stopFn()
	_ = p.f.Close() // a second close (after the context's) only returns os.ErrClosed
}
