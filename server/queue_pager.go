package server

import (
	"sync"

	"github.com/warrenmq/warren/storage"
)

// pager is the goroutine that reads paged-out messages back into their queues' windows, so that
// neither a queue lock nor a connection's read loop waits on the store for it. Queues ask for a
// page-in with enqueue (under their lock: pager.mu is a leaf).
type pager struct {
	wake chan struct{} // 1-buffered
	stop chan struct{}
	done chan struct{}

	mu struct {
		sync.Mutex
		queues []*classicQueue
	}
}

func newPager() *pager {
	return &pager{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (p *pager) enqueue(q *classicQueue) {
	p.mu.Lock()
	p.mu.queues = append(p.mu.queues, q)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pager) run() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		for {
			p.mu.Lock()
			if len(p.mu.queues) == 0 {
				p.mu.Unlock()
				break
			}
			q := p.mu.queues[0]
			p.mu.queues[0] = nil
			p.mu.queues = p.mu.queues[1:]
			p.mu.Unlock()

			q.mu.Lock()
			q.mu.queuedIn = false
			q.unlock()
			q.pageIn()
			select {
			case <-p.stop:
				return
			default:
			}
		}
	}
}

// shutdown stops the pager and waits for it.
func (p *pager) shutdown() {
	close(p.stop)
	<-p.done
}

// pageOutChunk bounds the body bytes one pageOut moves.
const pageOutChunk = 1 << 20

// pageOut moves the newest ready messages that were never delivered, up to pageOutChunk bytes,
// from memory to the store (a transient one is written there, unsynced; a persistent one on a
// durable queue is there already), where they join the queue's paged range. It returns the
// messages and body bytes moved, and the commit group writing them (nil if none was written).
//
// The paged range must hold every stored message with seq >= paged.from that is not in memory
// (pageIn reads the store from there), so only a tail of the ready list goes: entries newer than
// every unacknowledged one. A never-delivered entry is: deliveries take the head, and a requeued
// entry goes back to its old place marked redelivered. The tail stops at the first entry that was
// redelivered, or has an expiry (read back, its TTL would be counted again from the page-in).
// Queues that do not page (priority queues, drop-head length limits) keep their messages.
func (q *classicQueue) pageOut() (n int, b int64, g *commitGroup) {
	q.mu.Lock()
	defer q.unlock()
	if !q.pageable || q.mu.deleted || q.mu.paging != nil || len(q.mu.ready.levels) != 1 {
		return 0, 0, nil
	}
	l := &q.mu.ready.levels[0]
	cut := len(l.s)
	for cut > l.head && b < pageOutChunk {
		e := l.s[cut-1]
		if e.redelivered || e.returns != 0 || e.stamped != 0 || e.expiry != 0 || e.marked {
			break
		}
		b += int64(len(e.msg.body))
		cut--
	}
	tail := l.s[cut:]
	if len(tail) == 0 {
		return 0, 0, nil
	}
	// The records are encoded before the committer's lock is taken. encodeMessage, not
	// msg.record(): the message may be in other queues, whose publishers may be caching its
	// record on their goroutine.
	var recs [][]byte
	for _, e := range tail {
		if !e.stored {
			recs = append(recs, encodeMessage(e.msg))
		}
	}
	if len(recs) > 0 {
		g = q.commit().add(false, func(batch *storage.Batch) {
			i := 0
			for _, e := range tail {
				if !e.stored {
					batch.Set(storage.MessageKey(q.id, e.seq), recs[i])
					i++
				}
			}
		})
		q.mu.lastWrite, q.mu.storedAny = g, true
	}
	// Every paged message is newer than every ready one, so the range now starts at the tail.
	q.mu.paged.from = tail[0].seq
	q.mu.paged.n += int64(len(tail))
	q.mu.paged.bytes += b
	n = len(tail)
	clear(tail)
	l.s = l.s[:cut]
	l.bytes -= b
	if l.len() == 0 {
		l.s, l.head = l.s[:0], 0
	}
	q.mu.ready.n -= n
	q.mu.ready.bytes -= b
	return n, b, g
}
