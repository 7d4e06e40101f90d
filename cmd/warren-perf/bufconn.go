package main

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// bufConn batches writes; see the package comment.
type bufConn struct {
	net.Conn
	delay   time.Duration
	mu      sync.Mutex
	w       *bufio.Writer
	pending bool
	err     error
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newBufConn(c net.Conn, delay time.Duration) *bufConn {
	b := &bufConn{
		Conn:    c,
		delay:   delay,
		w:       bufio.NewWriterSize(c, 64<<10),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go b.flusher()
	return b
}

func (b *bufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.w.Write(p)
	if err != nil {
		b.err = err
		return n, err
	}
	if !b.pending && b.w.Buffered() > 0 {
		b.pending = true
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return n, nil
}

// Flush writes what is buffered now, without waiting for the flusher's delay. The fixed-rate
// producer calls it before it sleeps, so that batching never adds latency to a paced message.
func (b *bufConn) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = false
	if b.err == nil && b.w.Buffered() > 0 {
		b.err = b.w.Flush()
	}
	return b.err
}

func (b *bufConn) flusher() {
	defer close(b.stopped)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-b.kick:
		}
		t.Reset(b.delay)
		select {
		case <-b.done:
			t.Stop()
			return
		case <-t.C:
		}
		b.mu.Lock()
		b.pending = false
		if b.err == nil && b.w.Buffered() > 0 {
			b.err = b.w.Flush()
		}
		b.mu.Unlock()
	}
}

func (b *bufConn) Close() error {
	b.once.Do(func() {
		close(b.done)
		<-b.stopped
		b.mu.Lock()
		if b.err == nil {
			b.err = b.w.Flush()
		}
		if b.err == nil {
			b.err = net.ErrClosed
		}
		b.mu.Unlock()
	})
	return b.Conn.Close()
}
