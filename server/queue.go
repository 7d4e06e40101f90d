package server

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// message is one published message. It is immutable once published and shared by every queue it
// was routed to (fanout copies nothing).
type message struct {
	exchange   string
	routingKey string
	props      []byte // raw content-header properties (flags + list), as received
	body       []byte
	headers    amqp.Table // the headers property, decoded once on publish (for headers exchanges)
	arrived    int64      // Unix milliseconds when it was published (TTLs run from then)
	ttl        int64      // the expiration property in milliseconds, if hasTTL
	hasTTL     bool
	priority   uint8 // the priority property
	persistent bool  // delivery-mode 2

	// Of an MQTT publish (server/mqtt_publish.go), for MQTT 5 subscription options; in memory
	// only (a message read back from the store has neither).
	mqttRetain bool    // published with the retain flag (Retain As Published)
	mqttFrom   *string // the publishing connection's client id (No Local); nil: not from MQTT

	// rec is the store record, built once while the message is routed (by the publishing
	// goroutine) if some queue writes it, and dropped after routing.
	rec []byte
}

// record returns m's store record, encoding it on first use. Only the routing goroutine calls it.
func (m *message) record() []byte {
	if m.rec == nil {
		m.rec = encodeMessage(m)
	}
	return m.rec
}

// qentry is a message's place in one queue.
type qentry struct {
	msg         *message
	seq         uint64 // position in the queue: requeued entries go back to it
	redelivered bool
	stored      bool   // the message has a record under the queue's id (deleted on ack)
	marked      bool   // a DeliveredKey exists for it (deleted with the record)
	expiry      int64  // Unix milliseconds after which it expires at the head; 0: never
	prio        uint8  // priority level in the queue (0 unless x-max-priority)
	returns     uint32 // times requeued (x-delivery-count), on queues that count deliveries
	stamped     uint32 // returns+1 when msg carries x-delivery-count for returns; 0: not stamped
}

// queue holds ready messages in order and hands them to consumers with credit. Its state is
// guarded by mu; dispatch runs on whichever goroutine changes what can be delivered.
//
// Memory is bounded by a window: once a queue holds window messages (or bytes) in memory, newer
// messages stay only in the store (the paged range) until consumers drain the window, and the
// pager reads them back in order. Persistent messages on a durable queue are stored in any case
// (synced before they are confirmed); others are written only when paged (unsynced).
//
// Its identity (name, vhost, flags, arguments, store id, counters) is the queue's (*queueMeta,
// queue_type.go), shared with the *queue the rest of the broker holds.
type classicQueue struct {
	*queueMeta
	argLimits queueLimits // what args alone set; immutable
	// limits are the effective settings: argLimits combined with the applied policy's definition.
	// Replaced whole (policy.go) under mu; read with lim(), with or without mu.
	limits   atomic.Pointer[queueLimits]
	pageable bool // false when a drop-head length limit already bounds the queue

	recLast *qentry // during recovery only: the last entry recovered into memory (persist.go)

	mu struct {
		sync.Mutex
		ready       readyQueue // in memory, by priority then seq
		nextSeq     uint64
		consumers   []*subscription
		rr          int         // round-robin position in consumers
		run         dispatchRun // the dispatch run under way (dispatchFreshLocked)
		unacked     int         // delivered to a consumer or get and not yet settled
		deleted     bool
		hadConsumer bool // for auto-delete: a queue is deleted when its last consumer goes

		paged     pagedRange    // stored messages not in memory, all newer than ready's
		pageGen   uint64        // bumped by purge and delete: a page-in in flight is discarded
		paging    chan struct{} // non-nil while a page-in runs; closed when it ends
		queuedIn  bool          // waiting in the pager's queue
		lastWrite *commitGroup  // the last group with one of this queue's message records
		storedAny bool          // some record may exist under id (delete drops the range)
		// After an unclean stop every recovered message may have been delivered: those up to
		// this seq come back redelivered.
		uncleanUpTo uint64
		dead        []deadLetter // dead-lettered under the lock, republished by unlock
		deadBusy    bool         // a goroutine is republishing dead (queue_deadletter.go)

		// Publisher flow control (queue_flow.go).
		flowWake   chan struct{} // non-nil while a publisher may be paused for this queue; closed to release it
		dispatched uint64        // entries taken from ready by consumers and gets (progress)
		stalled    bool          // a paused publisher saw no progress: do not pause while dispatched == stallMark
		stallMark  uint64

		timer    *time.Timer // expiries (queue_ttl.go); nil until first needed
		timerAt  int64       // when timer fires (Unix ms); 0: not armed
		lastUsed int64       // for x-expires: the last declare, get or consumer (Unix ms)
	}
}

// pagedRange counts the messages of a queue that are only in the store: every one has seq >= from.
type pagedRange struct {
	n     int64
	bytes int64
	from  uint64
}

// newClassicQueue makes a classic queue (the constructor of the classic and quorum types,
// queue_type.go).
func newClassicQueue(m *queueMeta, lim queueLimits) queueImpl {
	q := &classicQueue{queueMeta: m, argLimits: lim}
	q.limits.Store(&q.argLimits)
	q.pageable = !(lim.overflow == "drop-head" && (lim.maxLen >= 0 || lim.maxBytes >= 0)) && lim.maxPriority == 0
	q.mu.ready.init(int(lim.maxPriority))
	q.mu.lastUsed = nowMillis()
	return q
}

// unlock is the one way to release q.mu: no other code calls q.mu.Unlock (TestQueueUnlockOnly
// checks it). Before the lock goes it finishes what the hold left pending:
//   - publishers paused for this queue (queue_flow.go) are woken if its backlog is down to the low
//     mark;
//   - messages dead-lettered under the lock (q.mu.dead, queue_deadletter.go) are republished, in
//     the order they left the queue, with q.mu released: one goroutine at a time republishes a
//     queue's dead list (another that finds it busy leaves its messages to it).
//
// Republishing routes (it takes v.mu for reading), so a hold that may dead-letter must be released
// with no other lock held. The holds taken under v.mu or another queue-wide lock (markDeleted,
// stopTimers, markClean, recovery) dead-letter nothing, and outside a hold q.mu.dead is empty
// unless a republishing goroutine owns it (deadBusy), so unlock does no republishing for them.
func (q *classicQueue) unlock() {
	if q.mu.flowWake != nil {
		q.flowReleaseLocked(false)
	}
	if len(q.mu.dead) == 0 || q.mu.deadBusy {
		q.mu.Unlock()
		return
	}
	q.mu.deadBusy = true
	for len(q.mu.dead) > 0 {
		dead := q.mu.dead
		q.mu.dead = nil
		q.mu.Unlock()
		q.deadLetterAll(dead)
		q.mu.Lock()
	}
	q.mu.deadBusy = false
	q.mu.Unlock()
}

// lim returns the queue's effective settings (a snapshot: never modified once stored).
func (q *classicQueue) lim() *queueLimits { return q.limits.Load() }

func (q *classicQueue) commit() *committer { return q.v.srv.commit }

// publishResult says what a queue did with a message.
type publishResult uint8

const (
	published publishResult = iota // enqueued (possibly delivered at once)
	rejected                       // refused: the queue is full and overflows with reject-publish
	gone                           // the queue was deleted meanwhile
)

// publish enqueues msg and delivers what it can, applying x-max-length / x-max-length-bytes. If
// the message must be durable before it is confirmed, the commit group holding it is returned.
func (q *classicQueue) publish(msg *message) (publishResult, *commitGroup) {
	res, g, _ := q.publishFrom(msg, nil, nil)
	return res, g
}

// publishFrom is publish for a message from source from (nil: the broker itself, publish.go). If
// the publisher should stop reading until the queue drains (queue_flow.go), wake is the channel
// to wait on. spare, if not nil, is a zero entry the queue may use for msg (saving an allocation).
func (q *classicQueue) publishFrom(msg *message, from publishSource, spare *qentry) (res publishResult, g *commitGroup, wake <-chan struct{}) {
	q.mu.Lock()
	defer q.unlock()
	if q.mu.deleted {
		return gone, nil, nil
	}
	var wb *writeBatch
	if from != nil {
		wb = from.batch() // publishFrom runs on from's goroutine
	}
	res, g = q.publishLocked(msg, spare, wb)
	if res == published && from != nil && q.flowHighLocked(from) {
		wake = q.flowWakeLocked()
	}
	return res, g, wake
}

func (q *classicQueue) publishLocked(msg *message, spare *qentry, wb *writeBatch) (publishResult, *commitGroup) {
	lim := q.lim()
	if lim.overflow != "drop-head" && q.fullLocked(int64(len(msg.body))) {
		if lim.overflow == "reject-publish-dlx" && lim.hasDLX {
			q.mu.dead = append(q.mu.dead, deadLetter{msg: msg, reason: "maxlen"})
		}
		return rejected, nil
	}
	q.mu.nextSeq++
	e := spare
	if e == nil {
		e = new(qentry)
	}
	*e = qentry{msg: msg, seq: q.mu.nextSeq, expiry: q.expiryOf(msg), prio: q.prioOf(msg)}
	durable := msg.persistent && q.isDurable()
	opts := &q.v.srv.opts
	pageOut := q.pageable && (q.mu.paged.n > 0 || q.mu.ready.len() >= opts.QueueWindow ||
		q.mu.ready.bytes >= opts.QueueWindowBytes)
	var g *commitGroup
	if durable || pageOut {
		rec, key := msg.record(), storage.MessageKey(q.id, e.seq)
		g = q.commit().add(durable, func(b *storage.Batch) { b.Set(key, rec) })
		q.mu.lastWrite, q.mu.storedAny, e.stored = g, true, true
		if !durable {
			g = nil // a transient message is confirmed without waiting for its page-out
		}
	}
	if pageOut {
		if q.mu.paged.n == 0 {
			q.mu.paged.from = e.seq
		}
		q.mu.paged.n++
		q.mu.paged.bytes += int64(len(msg.body))
		q.trimLocked() // a limit set by a policy on a paging queue: the oldest are in memory
		q.wantPageInLocked()
		return published, g
	}
	q.mu.ready.push(e)
	q.dispatchFreshLocked(e, wb)
	dropped := q.trimLocked()
	// As RabbitMQ's deliver_or_enqueue: the expired messages at the head are dropped after a
	// publish only if the new message is the only one (so a TTL of 0 means "now or never" for a
	// message that finds no consumer) or the length limit dropped some, unless that left just the
	// new message and it has no expiry. A message with an expiry that a priority put at the head
	// of a backlog stays there until a delivery or the timer looks at the head.
	if n := q.lenLocked(); (dropped || n == 1) && !(dropped && n == 1 && e.expiry == 0) {
		q.expireHeadLocked(nil)
	}
	return published, g
}

// trimLocked drops (dead-letters) messages from the head while the queue is over its length
// limits (drop-head), and reports whether it dropped any. Paged messages are trimmed once they
// are paged in, in order.
func (q *classicQueue) trimLocked() (dropped bool) {
	for q.mu.ready.len() > 0 && q.overLocked() {
		q.deadLocked(q.mu.ready.pop(), "maxlen")
		dropped = true
	}
	return dropped
}

// forgetLocked deletes the record of an entry that leaves the queue for good.
func (q *classicQueue) forgetLocked(e *qentry) {
	if !e.stored || q.mu.deleted {
		return
	}
	key := storage.MessageKey(q.id, e.seq)
	q.commit().add(false, func(b *storage.Batch) {
		b.Delete(key)
		if e.marked {
			b.Delete(storage.DeliveredKey(q.id, e.seq))
		}
	})
}

func (q *classicQueue) lenLocked() int64   { return int64(q.mu.ready.len()) + q.mu.paged.n }
func (q *classicQueue) bytesLocked() int64 { return q.mu.ready.bytes + q.mu.paged.bytes }

// fullLocked reports whether one more message of size bytes would pass a limit.
func (q *classicQueue) fullLocked(size int64) bool {
	lim := q.lim()
	return (lim.maxLen >= 0 && q.lenLocked()+1 > lim.maxLen) ||
		(lim.maxBytes >= 0 && q.bytesLocked()+size > lim.maxBytes)
}

// overLocked reports whether the messages exceed a limit.
func (q *classicQueue) overLocked() bool {
	lim := q.lim()
	return (lim.maxLen >= 0 && q.lenLocked() > lim.maxLen) ||
		(lim.maxBytes >= 0 && q.bytesLocked() > lim.maxBytes)
}

// dispatchLocked hands ready messages to consumers round-robin while any has credit, dropping
// the expired ones at the head.
func (q *classicQueue) dispatchLocked() { q.dispatchFreshLocked(nil, nil) }

// dispatchFreshLocked is dispatchLocked for a publish of fresh (nil otherwise). As RabbitMQ's
// fetch, a delivery takes the head without looking at its expiry and then drops the expired
// messages at the new head: messages expire at the head when a delivery, a publish to an empty
// queue, a requeue or the timer looks (queue_ttl.go). wb is the batch of the read loop it runs on, if
// any (dispatchRun).
func (q *classicQueue) dispatchFreshLocked(fresh *qentry, wb *writeBatch) {
	defer q.wantPageInLocked()
	if q.mu.ready.len() == 0 || len(q.mu.consumers) == 0 {
		return // the common publish without consumers pays for no run
	}
	// One clock read for every delivery of this run. The run lives in the queue, not on the
	// stack: the targets are reached through an interface, so a pointer to a stack run would
	// escape and cost an allocation per dispatch.
	run := &q.mu.run
	*run = dispatchRun{wb: wb}
	for q.mu.ready.len() > 0 && len(q.mu.consumers) > 0 {
		e := q.mu.ready.peek()
		q.stampLocked(e)
		c := q.pickConsumerLocked(e, run)
		if c == nil {
			break
		}
		q.mu.ready.pop()
		q.mu.dispatched++
		if !c.noAck {
			q.mu.unacked++
		} else {
			q.forgetLocked(e)
		}
		q.expireHeadLocked(nil)
	}
	*run = dispatchRun{} // keep no write batch past the run
}

// wantPageInLocked asks the pager to refill the window (pageWindow: smaller under the memory
// alarm) when it has drained below half.
func (q *classicQueue) wantPageInLocked() {
	if q.mu.paged.n == 0 || q.mu.queuedIn || q.mu.paging != nil || q.mu.deleted ||
		q.mu.ready.len() >= q.v.srv.pageWindow()/2 {
		return
	}
	q.mu.queuedIn = true
	q.v.srv.pager.enqueue(q)
}

// pageIn reads the oldest paged messages back into memory, up to the window, with no lock held
// while it reads the store. It returns after another goroutine's page-in if one is running.
func (q *classicQueue) pageIn() {
	q.mu.Lock()
	if ch := q.mu.paging; ch != nil {
		q.unlock()
		<-ch
		return
	}
	want := q.v.srv.pageWindow() - q.mu.ready.len()
	if q.mu.deleted || q.mu.paged.n == 0 || want <= 0 {
		q.unlock()
		return
	}
	done := make(chan struct{})
	q.mu.paging = done
	snap, gen, upto, wait := q.mu.paged, q.mu.pageGen, q.mu.nextSeq, q.mu.lastWrite
	unclean := q.mu.uncleanUpTo
	q.unlock()

	if wait != nil {
		<-wait.done // the records of the paged messages are in the store (or failed)
	}
	es, next, err := q.readRange(snap.from, upto, want)
	if err != nil {
		q.v.srv.log.Error("reading paged messages", "vhost", q.v.name, "queue", q.name, "err", err)
	}

	q.mu.Lock()
	defer q.unlock()
	q.mu.paging = nil
	close(done)
	if gen != q.mu.pageGen || q.mu.deleted || err != nil {
		q.wantPageInLocked()
		return
	}
	var bytes int64
	for _, e := range es {
		e.redelivered = e.redelivered || e.seq <= unclean
		bytes += int64(len(e.msg.body))
		q.mu.ready.push(e)
	}
	if next != 0 {
		q.mu.paged.n -= int64(len(es))
		q.mu.paged.bytes -= bytes
		q.mu.paged.from = next
	} else {
		// Everything paged up to upto was read; what remains was paged since the snapshot.
		if missing := snap.n - int64(len(es)); missing != 0 {
			q.v.srv.log.Error("paged messages missing from the store", "vhost", q.v.name, "queue", q.name, "missing", missing)
		}
		q.mu.paged.n -= snap.n
		q.mu.paged.bytes -= snap.bytes
		q.mu.paged.from = upto + 1
	}
	if q.mu.paged.n <= 0 {
		q.mu.paged = pagedRange{}
	}
	q.trimLocked()          // over a limit a policy lowered meanwhile
	q.expireHeadLocked(nil) // and asks for the next page if they all expired
	q.dispatchLocked()
}

// readRange decodes up to max stored messages with seq in [from, upto]. next is the seq of the
// first message left unread (0 if it read to upto).
func (q *classicQueue) readRange(from, upto uint64, max int) (es []*qentry, next uint64, err error) {
	err = q.v.srv.store.ScanRange(storage.MessageKey(q.id, from), storage.MessageKey(q.id, upto+1), func(k, v []byte) error {
		_, seq, err := storage.ParseMessageKey(k)
		if err != nil {
			return err
		}
		if storage.IsDeliveredKey(k) {
			if n := len(es); n > 0 && es[n-1].seq == seq {
				es[n-1].redelivered, es[n-1].marked = true, true
			}
			return nil
		}
		if len(es) == max {
			next = seq
			return storage.ErrStop
		}
		m, err := decodeMessage(v)
		if err != nil {
			return fmt.Errorf("message %d: %w", seq, err)
		}
		es = append(es, &qentry{msg: m, seq: seq, stored: true, expiry: q.expiryOf(m), prio: q.prioOf(m)})
		return nil
	})
	return es, next, err
}

// kick delivers what it can after credit was freed: subs are the consumers of the channel that
// freed it (nil: none in particular), which rejoin the round-robin turn if they had left it
// (unblockLocked). wb is the batch of the read loop it runs on, or nil.
func (q *classicQueue) kick(subs []*subscription, wb *writeBatch) {
	q.mu.Lock()
	defer q.unlock()
	if !q.mu.deleted {
		q.unblockLocked(subs)
		q.dispatchFreshLocked(nil, wb)
	}
}

// get takes the head message for basic.get. ackRequired counts it as unacked. If the head is
// paged out, get reads it back first.
func (q *classicQueue) get(ackRequired bool) (e *qentry, remaining uint32) {
	for range 3 {
		q.mu.Lock()
		if q.mu.deleted {
			q.unlock()
			return nil, 0
		}
		q.touchLocked()
		if q.mu.ready.len() > 0 {
			// As RabbitMQ's fetch: the head is taken whatever its expiry, then the expired
			// messages at the new head are dropped.
			q.stampLocked(q.mu.ready.peek())
			e = q.mu.ready.pop()
			q.mu.dispatched++
			if ackRequired {
				q.mu.unacked++
			} else {
				q.forgetLocked(e)
			}
			q.expireHeadLocked(nil)
			remaining = uint32(q.lenLocked())
			q.wantPageInLocked()
			q.unlock()
			return e, remaining
		}
		paged := q.mu.paged.n > 0
		q.unlock()
		if !paged {
			return nil, 0
		}
		q.pageIn()
	}
	return nil, 0
}

// settle finishes unacked entries for good (ack, or reject/nack without requeue): their records
// are deleted.
func (q *classicQueue) settle(es []*qentry) {
	q.mu.Lock()
	defer q.unlock()
	q.mu.unacked -= len(es)
	for _, e := range es {
		q.forgetLocked(e)
	}
}

// requeue puts unacked entries back at their positions, marked redelivered, and delivers again.
func (q *classicQueue) requeue(es []*qentry) {
	q.mu.Lock()
	defer q.unlock()
	q.mu.unacked -= len(es)
	if q.mu.deleted {
		return
	}
	for _, e := range es {
		e.redelivered = true
		if q.lim().countDeliveries {
			e.returns++
			if lim := q.lim().deliveryLimit; lim >= 0 && int64(e.returns) > lim {
				q.deadLocked(e, "delivery_limit")
				continue
			}
		}
		q.mu.ready.insertSorted(e)
	}
	if q.lim().overflow == "drop-head" {
		q.trimLocked() // as RabbitMQ's requeue_and_run: heads over a length limit go, then deliveries
	}
	q.expireHeadLocked(nil)
	q.dispatchLocked()
}

// addConsumer attaches c unless exclusivity forbids it. onAdded runs under the queue lock before
// any delivery (it queues consume-ok, so the client sees it before the first basic.deliver).
func (q *classicQueue) addConsumer(c *subscription, onAdded func()) error {
	q.mu.Lock()
	defer q.unlock()
	if q.mu.deleted {
		return q.v.errNoQueue(q.name)
	}
	if x, ok := c.args["x-priority"]; ok {
		if _, ok := intArg(x); !ok {
			return amqp.Errorf(amqp.PreconditionFailed, "invalid arg 'x-priority' for queue '%s' in vhost '%s': \"expected integer, got %s\"",
				q.name, q.v.name, amqp.FieldTypeName(x))
		}
	}
	if len(q.mu.consumers) > 0 && (c.exclusive || q.mu.consumers[0].exclusive) || c.exclusive && q.lim().single {
		return amqp.Errorf(amqp.AccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.name, q.v.name)
	}
	onAdded()
	q.touchLocked()
	q.insertConsumerLocked(c)
	q.mu.hadConsumer = true
	q.dispatchLocked()
	return nil
}

// removeConsumer detaches c. It reports whether the queue should now be auto-deleted.
func (q *classicQueue) removeConsumer(c *subscription) (autoDelete bool) {
	q.mu.Lock()
	defer q.unlock()
	for i, x := range q.mu.consumers {
		if x == c {
			q.mu.consumers = append(q.mu.consumers[:i], q.mu.consumers[i+1:]...)
			q.flowReleaseLocked(true) // a paused publisher decides again on its next publish
			if q.mu.rr > i {
				q.mu.rr--
			}
			if len(q.mu.consumers) > 0 {
				q.mu.rr %= len(q.mu.consumers)
			} else {
				q.mu.rr = 0
				q.touchLocked() // x-expires counts from the last consumer's going
				q.armTimerLocked()
			}
			break
		}
	}
	return q.autoDelete && q.mu.hadConsumer && len(q.mu.consumers) == 0 && !q.mu.deleted
}

// counts returns ready messages and consumers (queue.declare-ok's numbers).
func (q *classicQueue) counts() (ready, consumers uint32) {
	q.mu.Lock()
	defer q.unlock()
	return uint32(q.lenLocked()), uint32(len(q.mu.consumers))
}

// declared is counts for a queue.declare (passive or not), which is a use for x-expires, as in
// RabbitMQ; it also arms the queue's timer for a queue just created. As in RabbitMQ it does not
// drop expired messages: the count includes those no delivery or timer has looked at yet.
func (q *classicQueue) declared() (ready, consumers uint32) {
	q.mu.Lock()
	defer q.unlock()
	if !q.mu.deleted {
		q.touchLocked()
		q.armTimerForLocked(false)
	}
	return uint32(q.lenLocked()), uint32(len(q.mu.consumers))
}

// start arms the timer of a recovered queue (its messages' expiries, its x-expires).
func (q *classicQueue) start() {
	q.mu.Lock()
	defer q.unlock()
	q.expireHeadLocked(nil)
}

// purge drops the ready messages (not the unacked ones) and returns how many. The paged ones go
// with one range delete.
func (q *classicQueue) purge() uint32 {
	q.mu.Lock()
	defer q.unlock()
	n := q.lenLocked()
	for q.mu.ready.len() > 0 {
		q.forgetLocked(q.mu.ready.pop())
	}
	if q.mu.paged.n > 0 {
		from := storage.MessageKey(q.id, q.mu.paged.from)
		_, end := storage.MessageRange(q.id)
		q.commit().add(false, func(b *storage.Batch) { b.DeleteRange(from, end) })
	}
	q.mu.paged = pagedRange{}
	q.mu.pageGen++
	q.flowReleaseLocked(false)
	return uint32(n)
}

// markDeleted checks if-unused/if-empty, marks the queue deleted, drops its messages and cancels
// its consumers, returning the targets whose clients are to be told (AMQP: those that asked for
// consumer_cancel_notify), with notifyCancelled once the locks are released. The caller holds v.mu.
func (q *classicQueue) markDeleted(ifUnused, ifEmpty bool) (_ uint32, cancelled []deliveryTarget, _ error) {
	q.mu.Lock()
	defer q.unlock()
	// RabbitMQ checks if-empty before if-unused.
	if ifEmpty && q.lenLocked() > 0 {
		return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' not empty", q.name, q.v.name)
	}
	if ifUnused && len(q.mu.consumers) > 0 {
		return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' in use", q.name, q.v.name)
	}
	n := q.lenLocked()
	if q.mu.storedAny {
		start, end := storage.MessageRange(q.id)
		q.commit().add(false, func(b *storage.Batch) { b.DeleteRange(start, end) })
	}
	q.mu.deleted = true
	q.stopTimerLocked()
	q.mu.ready.reset()
	q.mu.paged = pagedRange{}
	q.mu.pageGen++
	q.flowReleaseLocked(true)
	for _, c := range q.mu.consumers {
		if c.target.queueDeleted() {
			cancelled = append(cancelled, c.target)
		}
	}
	q.mu.consumers = nil
	return uint32(n), cancelled, nil
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

// peekLast is the newest entry; the queue must not be empty.
func (d *entryQueue) peekLast() *qentry { return d.s[len(d.s)-1] }
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
