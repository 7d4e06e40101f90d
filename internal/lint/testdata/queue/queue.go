package queue

import "sync"

type queue struct {
	mu struct {
		sync.Mutex
		n int
	}
}

type other struct{ mu sync.Mutex }

func (q *queue) unlock() { q.mu.Unlock() } // a violation: a bare unlock on *queue

func byValue(q queue) { q.mu.Unlock() } // a violation: on a queue value

func deferred(qs []*queue) {
	defer qs[0].mu.Unlock() // a violation: any expression of type *queue
}

func fine(o *other, q *queue) {
	o.mu.Unlock() // another type's lock: no violation
	q.mu.Lock()   // locking is not the rule
	q.unlock()    // the queue's own method: no violation
}
