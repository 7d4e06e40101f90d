package server

// Priority queues (x-max-priority). A queue's ready messages are a readyQueue: one FIFO per
// priority level (a single level for a queue without x-max-priority), served from the highest
// non-empty level, FIFO within a level; a requeued message goes back to its seq position in its
// level. A message's priority is its priority property capped at the queue's maximum (0 when
// absent), as RabbitMQ does. Priority queues do not page: they keep all their messages in memory
// (a backlog's order across levels is not the store's seq order), so x-max-priority bounds
// nothing and such a queue's memory is bounded only by length limits.

// readyQueue is the ready messages of a queue, by priority then seq.
type readyQueue struct {
	levels []entryQueue // index: priority
	n      int
	bytes  int64 // sum of the body sizes of the entries
}

// init makes maxPriority+1 levels.
func (r *readyQueue) init(maxPriority int) { r.levels = make([]entryQueue, maxPriority+1) }

func (r *readyQueue) len() int { return r.n }

// top is the highest non-empty level; r must not be empty.
func (r *readyQueue) top() *entryQueue {
	for i := len(r.levels) - 1; i > 0; i-- {
		if r.levels[i].len() > 0 {
			return &r.levels[i]
		}
	}
	return &r.levels[0]
}

// peek is the next message to deliver; r must not be empty.
func (r *readyQueue) peek() *qentry { return r.top().peek() }

func (r *readyQueue) pop() *qentry {
	e := r.top().pop()
	r.n--
	r.bytes -= int64(len(e.msg.body))
	return e
}

func (r *readyQueue) push(e *qentry) {
	r.levels[e.prio].push(e)
	r.n++
	r.bytes += int64(len(e.msg.body))
}

// insertSorted puts a requeued e back at its seq position in its level.
func (r *readyQueue) insertSorted(e *qentry) {
	r.levels[e.prio].insertSorted(e)
	r.n++
	r.bytes += int64(len(e.msg.body))
}

// isLast reports whether e is the newest entry of its level.
func (r *readyQueue) isLast(e *qentry) bool {
	l := &r.levels[e.prio]
	return l.len() > 0 && l.peekLast() == e
}

// each calls fn for every entry.
func (r *readyQueue) each(fn func(e *qentry)) {
	for i := range r.levels {
		l := &r.levels[i]
		for _, e := range l.s[l.head:] {
			fn(e)
		}
	}
}

func (r *readyQueue) reset() {
	for i := range r.levels {
		r.levels[i].reset()
	}
	r.n, r.bytes = 0, 0
}

// prioOf is m's priority level in q.
func (q *classicQueue) prioOf(m *message) uint8 {
	return min(m.priority, q.lim().maxPriority)
}
