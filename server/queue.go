package server

import (
	"sort"
	"sync"

	"github.com/warrenmq/warren/amqp"
)

// message is one published message. It is immutable once published and shared by every queue it
// was routed to (fanout copies nothing).
type message struct {
	exchange   string
	routingKey string
	props      []byte // raw content-header properties (flags + list), as received
	body       []byte
	persistent bool       // delivery-mode 2
	headers    amqp.Table // the headers property, decoded once on publish (for headers exchanges)
}

// qentry is a message's place in one queue.
type qentry struct {
	msg         *message
	seq         uint64 // position in the queue: requeued entries go back to it
	redelivered bool
}

// queue holds ready messages in order and hands them to consumers with credit. Its state is
// guarded by mu; dispatch runs on whichever goroutine changes what can be delivered.
type queue struct {
	v          *vhost
	name       string
	durable    bool
	autoDelete bool
	owner      *conn // exclusive owner, nil if not exclusive; immutable
	args       amqp.Table
	limits     queueLimits
	stats      statSet // message counters (stats.go)

	mu struct {
		sync.Mutex
		ready       entryQueue
		nextSeq     uint64
		consumers   []*consumer
		rr          int // round-robin position in consumers
		unacked     int // delivered to a consumer or get and not yet settled
		deleted     bool
		hadConsumer bool // for auto-delete: a queue is deleted when its last consumer goes
	}
}

func newQueue(v *vhost, name string, durable, autoDelete bool, owner *conn, args amqp.Table, lim queueLimits) *queue {
	return &queue{v: v, name: name, durable: durable, autoDelete: autoDelete, owner: owner, args: args, limits: lim}
}

func (q *queue) destName() string { return q.name }
func (q *queue) destKind() string { return "queue" }

// publishResult says what a queue did with a message.
type publishResult uint8

const (
	published publishResult = iota // enqueued (possibly delivered at once)
	rejected                       // refused: the queue is full and overflows with reject-publish
	gone                           // the queue was deleted meanwhile
)

// publish enqueues msg and delivers what it can, applying x-max-length / x-max-length-bytes.
func (q *queue) publish(msg *message) publishResult {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.deleted {
		return gone
	}
	lim := q.limits
	if lim.overflow != "drop-head" && q.fullLocked(int64(len(msg.body))) {
		return rejected
	}
	q.mu.nextSeq++
	q.mu.ready.push(&qentry{msg: msg, seq: q.mu.nextSeq})
	q.dispatchLocked()
	for q.mu.ready.len() > 0 && q.overLocked() {
		q.mu.ready.pop() // drop-head
	}
	return published
}

// fullLocked reports whether one more message of size bytes would pass a limit.
func (q *queue) fullLocked(size int64) bool {
	lim := q.limits
	return (lim.maxLen >= 0 && int64(q.mu.ready.len())+1 > lim.maxLen) ||
		(lim.maxBytes >= 0 && q.mu.ready.bytes+size > lim.maxBytes)
}

// overLocked reports whether the ready messages exceed a limit.
func (q *queue) overLocked() bool {
	lim := q.limits
	return (lim.maxLen >= 0 && int64(q.mu.ready.len()) > lim.maxLen) ||
		(lim.maxBytes >= 0 && q.mu.ready.bytes > lim.maxBytes)
}

// dispatchLocked hands ready messages to consumers round-robin while any has credit.
func (q *queue) dispatchLocked() {
	for q.mu.ready.len() > 0 && len(q.mu.consumers) > 0 {
		e := q.mu.ready.peek()
		n := len(q.mu.consumers)
		delivered := false
		for i := 0; i < n; i++ {
			c := q.mu.consumers[(q.mu.rr+i)%n]
			if c.ch.tryDeliver(c, e) {
				q.mu.rr = (q.mu.rr + i + 1) % n
				q.mu.ready.pop()
				if !c.noAck {
					q.mu.unacked++
				}
				delivered = true
				break
			}
		}
		if !delivered {
			return
		}
	}
}

// kick delivers what it can (after credit was freed).
func (q *queue) kick() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.mu.deleted {
		q.dispatchLocked()
	}
}

// get takes the head message for basic.get. ackRequired counts it as unacked.
func (q *queue) get(ackRequired bool) (e *qentry, remaining uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.deleted || q.mu.ready.len() == 0 {
		return nil, 0
	}
	e = q.mu.ready.pop()
	if ackRequired {
		q.mu.unacked++
	}
	return e, uint32(q.mu.ready.len())
}

// settle finishes n unacked entries (ack, or reject/nack without requeue).
func (q *queue) settle(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mu.unacked -= n
}

// requeue puts unacked entries back at their positions, marked redelivered, and delivers again.
func (q *queue) requeue(es []*qentry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mu.unacked -= len(es)
	if q.mu.deleted {
		return
	}
	for _, e := range es {
		e.redelivered = true
		q.mu.ready.insertSorted(e)
	}
	q.dispatchLocked()
}

// addConsumer attaches c unless exclusivity forbids it. onAdded runs under the queue lock before
// any delivery (it queues consume-ok, so the client sees it before the first basic.deliver).
func (q *queue) addConsumer(c *consumer, onAdded func()) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.deleted {
		return q.v.errNoQueue(q.name)
	}
	if len(q.mu.consumers) > 0 && (c.exclusive || q.mu.consumers[0].exclusive) {
		return amqp.Errorf(amqp.AccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.name, q.v.name)
	}
	onAdded()
	q.mu.consumers = append(q.mu.consumers, c)
	q.mu.hadConsumer = true
	q.dispatchLocked()
	return nil
}

// removeConsumer detaches c. It reports whether the queue should now be auto-deleted.
func (q *queue) removeConsumer(c *consumer) (autoDelete bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.mu.consumers {
		if x == c {
			q.mu.consumers = append(q.mu.consumers[:i], q.mu.consumers[i+1:]...)
			if q.mu.rr > i {
				q.mu.rr--
			}
			if len(q.mu.consumers) > 0 {
				q.mu.rr %= len(q.mu.consumers)
			} else {
				q.mu.rr = 0
			}
			break
		}
	}
	return q.autoDelete && q.mu.hadConsumer && len(q.mu.consumers) == 0 && !q.mu.deleted
}

// counts returns ready messages and consumers (queue.declare-ok's numbers).
func (q *queue) counts() (ready, consumers uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return uint32(q.mu.ready.len()), uint32(len(q.mu.consumers))
}

// purge drops the ready messages (not the unacked ones) and returns how many.
func (q *queue) purge() uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.mu.ready.len()
	q.mu.ready.reset()
	return uint32(n)
}

// markDeleted checks if-unused/if-empty, marks the queue deleted, drops its messages and cancels
// its consumers (telling clients that asked for consumer_cancel_notify). The caller holds v.mu.
func (q *queue) markDeleted(ifUnused, ifEmpty bool) (uint32, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ifUnused && len(q.mu.consumers) > 0 {
		return 0, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' in use", q.name, q.v.name)
	}
	if ifEmpty && q.mu.ready.len() > 0 {
		return 0, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' not empty", q.name, q.v.name)
	}
	q.mu.deleted = true
	n := q.mu.ready.len()
	q.mu.ready.reset()
	for _, c := range q.mu.consumers {
		c.ch.serverCancel(c)
	}
	q.mu.consumers = nil
	return uint32(n), nil
}

// entryQueue is a FIFO of entries ordered by seq, with cheap pops at the head and cheap
// re-insertion of requeued entries near the head.
type entryQueue struct {
	s     []*qentry
	head  int
	bytes int64 // sum of the body sizes of the entries
}

func (d *entryQueue) len() int      { return len(d.s) - d.head }
func (d *entryQueue) peek() *qentry { return d.s[d.head] }
func (d *entryQueue) push(e *qentry) {
	d.s = append(d.s, e)
	d.bytes += int64(len(e.msg.body))
}

func (d *entryQueue) pop() *qentry {
	e := d.s[d.head]
	d.s[d.head] = nil
	d.head++
	d.bytes -= int64(len(e.msg.body))
	if d.head == len(d.s) {
		d.s, d.head = d.s[:0], 0
	} else if d.head >= 1024 && d.head*2 >= len(d.s) {
		n := copy(d.s, d.s[d.head:])
		clear(d.s[n:])
		d.s, d.head = d.s[:n], 0
	}
	return e
}

// insertSorted puts e back at its seq position.
func (d *entryQueue) insertSorted(e *qentry) {
	d.bytes += int64(len(e.msg.body))
	live := d.s[d.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].seq > e.seq })
	if i == 0 && d.head > 0 {
		d.head--
		d.s[d.head] = e
		return
	}
	i += d.head
	d.s = append(d.s, nil)
	copy(d.s[i+1:], d.s[i:])
	d.s[i] = e
}

func (d *entryQueue) reset() {
	clear(d.s)
	d.s, d.head, d.bytes = d.s[:0], 0, 0
}
