package server

import (
	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Queue types: the interface the rest of the broker reaches a queue through, and the registry
// x-queue-type picks an implementation from at declare time.
//
// Types as clients declare them (x-queue-type): classic is Warren's queue; quorum is accepted with
// RabbitMQ's restrictions (durable, not exclusive, not auto-delete, named by the client) and
// behaves as a classic queue on this single node (it counts deliveries, queue_deliverycount.go);
// stream is an append-only log (*streamQueue, stream*.go); any other type is refused with
// RabbitMQ's text for an unsupported type.
// x-queue-mode and x-queue-version are accepted and ignored.
//
// The seam has two halves. *queue is what the broker holds: routing returns it, bindings lead to
// it, deliveries and consumers point at it, management lists it. It is the queue's identity,
// common to every type (queueMeta: vhost, name, type, durable, exclusive owner, auto-delete,
// arguments, store id, message counters), fixed when the queue is made, plus its implementation
// (queueImpl), embedded, so that q.settle(es) calls the type's settle. Nothing outside a type's
// own files sees the implementation's concrete type: channels, vhosts, policies, management and
// recovery use the identity's fields and the interface's methods only. The implementation holds a
// pointer to its queue's queueMeta (not to the *queue, so it cannot call itself through the
// interface by mistake); when it needs the *queue (an x-expires deletion), queueMeta.self finds it.
//
// Adding a type: implement queueImpl (in its own queue_*.go files) and add an entry to queueTypes
// with its declare check and its make. Nothing in channel*.go, vhost.go, admin*.go or persist.go
// changes: declare, bind, route, publish, consume, settle, delete, management and recovery reach it
// through *queue. The type's messages are stored under the queue's store id (message keys (id,
// seq)) if it uses the broker's store; recovery hands them back through the recover* methods.

// queueImpl is what a queue type implements: every operation channels (channel*.go), vhosts
// (vhost.go), policies (queue_policy.go), management (admin*.go) and recovery (persist.go) perform
// on a queue. The classic queue (*classicQueue, queue.go and queue_*.go) is the first
// implementation; the quorum type reuses it on one node.
//
// Concurrency: every method takes the queue's own lock and releases it with q.unlock (no method is
// called with the queue's lock held); markDeleted, stop and setPolicy may be called with the
// vhost's lock held and must not route. Deliveries leave the queue only through its consumers'
// deliveryTargets (queue_consumers.go), which encode them for their protocol.
//
// Entries (*qentry) are the handle of a delivered or got message: the queue gives one out with
// deliver or get and takes it back, exactly once, with settle, reject or requeue. A type whose
// messages live elsewhere (a replicated log, a stream segment) keeps its own state keyed by the
// entry's seq and uses the entry only as the handle.
type queueImpl interface {
	// --- publishing ---

	// publishFrom enqueues msg (published by from, nil for the broker itself, as
	// dead-lettering: publish.go) and delivers what it can. If the message must be durable before it is
	// confirmed, g is the commit group to wait for (the publisher's confirm joins it); wake, if
	// not nil, is closed when the publisher paused by flow control may read on. spare is an
	// entry the queue may use instead of allocating one.
	publishFrom(msg *message, from publishSource, spare *qentry) (res publishResult, g *commitGroup, wake <-chan struct{})
	// publish is publishFrom with no connection and no spare entry.
	publish(msg *message) (publishResult, *commitGroup)
	// dispatchCount and flowCheckStall serve a publisher paused by flow control (queue_flow.go).
	dispatchCount() uint64
	flowCheckStall(mark uint64) (uint64, bool)

	// --- consuming ---

	// addConsumer attaches a subscription unless exclusivity forbids it; onAdded runs before the
	// first delivery to it (AMQP sends consume-ok there).
	addConsumer(s *subscription, onAdded func()) error
	// removeConsumer detaches s; autoDelete reports that the queue should now be deleted.
	removeConsumer(s *subscription) (autoDelete bool)
	// kick delivers what it can after targets' credit grew: subs are the subscriptions whose
	// target freed it (they rejoin the round-robin turn), wb the caller's write batch; either may
	// be nil.
	kick(subs []*subscription, wb *writeBatch)
	// get takes the head message (basic.get), counted unacked if ackRequired.
	get(ackRequired bool) (e *qentry, remaining uint32)

	// --- settling ---

	settle(es []*qentry)  // acked: gone for good
	reject(es []*qentry)  // rejected or nacked without requeue: dead-lettered
	requeue(es []*qentry) // back at their places, redelivered (delivery limit applies)

	// --- lifecycle ---

	declared() (ready, consumers uint32) // a declare or a passive declare: a use, for x-expires
	start()                              // after recovery: arm timers
	stop()                               // the server stops (v.mu held): stop timers
	purge() uint32
	// markDeleted checks if-empty/if-unused, marks the queue deleted, drops its messages and tells
	// its consumers' targets; it returns the targets to tell with cancelled once no lock is held.
	// The caller holds v.mu.
	markDeleted(ifUnused, ifEmpty bool) (n uint32, cancelled []deliveryTarget, err error)
	applyPolicy() // the matching policy may have changed
	// setPolicy installs policy p and operator policy op (nil: none) in a queue with no messages or consumers yet, at
	// declare (v.mu held) and at recovery.
	setPolicy(p, op *policy)
	// pageOut moves a chunk of ready messages from memory to the store under the memory alarm
	// (alarm_mem.go); it returns the messages and body bytes moved and the commit group writing
	// them (nil if none). A type that keeps nothing in memory returns zeros.
	pageOut() (n int, b int64, g *commitGroup)

	// --- counts and stats ---

	counts() (ready, consumers uint32)
	lengths() (ready, unacked int64)
	info(un *unackedSums) QueueInfo
	consumerInfos() []ConsumerInfo

	// --- recovery (persist.go) ---
	// Recovery reads the store in key order and hands each recovered queue its stored persistent
	// messages, oldest first, before start; nothing else uses the queue meanwhile.

	// recoverMessage takes back message seq (its store record rec, size bytes of body);
	// redelivered: it may have been delivered before the stop (the stop was unclean).
	recoverMessage(seq uint64, rec []byte, size int64, redelivered bool) error
	// recoverDelivered: message seq, the last one recovered, was delivered before a clean stop.
	recoverDelivered(seq uint64)
	// recovered ends recovery (clean: the last stop was clean).
	recovered(clean bool)
	// markClean adds to b, at a clean stop, what the next recovery needs to know about the
	// queue's messages (which were delivered).
	markClean(b *storage.Batch)
}

var _ queueImpl = (*classicQueue)(nil)

// queue is a queue as the rest of the broker holds it: what every type has (queueMeta) and the
// type's implementation (queueImpl, embedded: q.settle(es) is the implementation's settle).
// Routing hands out *queue values and bindings lead to them, so a queue's identity does not
// depend on its type, and the implementation reaches its own identity through the shared
// *queueMeta without a cycle back to *queue.
type queue struct {
	queueMeta
	queueImpl
}

// queueMeta is the identity common to every queue type: fixed at declare (or recovery), read
// without a lock. An implementation keeps a pointer to its queue's queueMeta.
type queueMeta struct {
	v          *vhost
	name       string
	typ        *queueTypeDef
	durable    bool
	autoDelete bool
	owner      *conn // exclusive owner, nil if not exclusive
	args       amqp.Table
	id         uint64 // the queue's store id: its message keys are (id, seq); unique in the store

	stats statSet // message counters (stats.go), counted by channels and by the implementation
}

func (q *queue) destName() string { return q.name }
func (q *queue) destKind() string { return "queue" }

// isDurable reports whether the queue outlives a restart (durable and not exclusive).
func (m *queueMeta) isDurable() bool { return m.durable && m.owner == nil }

// baseInfo is the part of the management API's view of a queue that its identity gives (its
// implementation's info adds the rest).
func (m *queueMeta) baseInfo() QueueInfo {
	qi := QueueInfo{
		Vhost: m.v.name, Name: m.name, Durable: m.durable, AutoDelete: m.autoDelete, Exclusive: m.owner != nil,
		Arguments: m.args, Totals: m.stats.totals(), Stats: m.stats.messageStats(),
	}
	if m.owner != nil {
		qi.Owner = m.owner.name
	}
	return qi
}

// self returns the vhost's queue whose identity is m, or nil once it is deleted (an
// implementation deleting its own queue: x-expires).
func (m *queueMeta) self() *queue {
	m.v.mu.RLock()
	q := m.v.mu.queues[m.name]
	m.v.mu.RUnlock()
	if q == nil || &q.queueMeta != m {
		return nil
	}
	return q
}

// queueTypeDef is one queue type of the registry.
type queueTypeDef struct {
	name   string // the x-queue-type value
	module string // RabbitMQ's module for it, as its error texts name it
	// serverNamed: a client may declare the type with an empty name (the server names it).
	serverNamed bool
	// countDeliveries: the type keeps x-delivery-count (quorum queues do, with or without
	// x-delivery-limit).
	countDeliveries bool
	// check refuses, with RabbitMQ's texts and in its order, a declare the type does not allow.
	check func(v *vhost, name string, d *amqp.QueueDeclare) error
	// make constructs the implementation of queue m (lim: its arguments' settings, already
	// validated).
	make func(m *queueMeta, lim queueLimits) queueImpl
	// refuses, if not nil, returns the error with which the type refuses an AMQP operation it
	// does not support (RabbitMQ's code and text), or nil. Channels ask before the operation
	// (queueMeta.refuses).
	refuses func(m *queueMeta, op queueOp) error
}

// queueOp is an operation a queue type may refuse (queueTypeDef.refuses).
type queueOp uint8

const (
	opGet     queueOp = iota + 1 // basic.get
	opPurge                      // queue.purge
	opReject                     // basic.nack or basic.reject
	opRecover                    // basic.recover of the queue's deliveries
)

// refuses returns the error with which the queue's type refuses op, or nil if it supports it.
func (m *queueMeta) refuses(op queueOp) error {
	if m.typ.refuses == nil {
		return nil
	}
	return m.typ.refuses(m, op)
}

// queueTypes is the registry: x-queue-type → type. A new queue type adds itself here.
var queueTypes = map[string]*queueTypeDef{
	"classic": {
		name: "classic", module: "rabbit_classic_queue", serverNamed: true,
		check: func(*vhost, string, *amqp.QueueDeclare) error { return nil },
		make:  newClassicQueue,
	},
	"quorum": {
		name: "quorum", module: "rabbit_quorum_queue", countDeliveries: true,
		check: checkQuorumDeclare,
		make:  newClassicQueue, // one node: a classic queue that counts deliveries
	},
	"stream": {
		name: "stream", module: "rabbit_stream_queue",
		check:   checkStreamDeclare,
		make:    newStreamQueue,
		refuses: streamRefuses,
	},
}

// queueType returns the declared type of a queue with args ("classic" when none is given).
func queueType(args amqp.Table) string {
	if t, ok := args["x-queue-type"].(string); ok {
		return t
	}
	return "classic"
}

// lookupQueueType returns the registered type of a queue with args, or nil.
func lookupQueueType(args amqp.Table) *queueTypeDef { return queueTypes[queueType(args)] }

// newQueue makes a queue of the type its arguments name (id: its store id; 0 for a new one).
// Declares were checked (checkNewQueueType); a recovered queue of a type this build does not know
// (none is written) comes back classic.
func newQueue(v *vhost, name string, durable, autoDelete bool, owner *conn, args amqp.Table, id uint64, lim queueLimits) *queue {
	t := lookupQueueType(args)
	if t == nil {
		t = queueTypes["classic"]
	}
	if id == 0 {
		id = v.srv.queueIDs.Add(1)
	}
	q := &queue{queueMeta: queueMeta{v: v, name: name, typ: t, durable: durable, autoDelete: autoDelete, owner: owner, args: args, id: id}}
	q.queueImpl = t.make(&q.queueMeta, lim)
	return q
}

// checkServerNamedType refuses a server-named queue of a type that does not allow it.
func checkServerNamedType(args amqp.Table) error {
	if t := lookupQueueType(args); t != nil && !t.serverNamed {
		return amqp.Errorf(amqp.PreconditionFailed, "Cannot declare a server-named queue for type %s", t.module)
	}
	return nil
}

// checkNewQueueType checks the type of a queue being created, with RabbitMQ's texts and in its order.
func (v *vhost) checkNewQueueType(name string, d *amqp.QueueDeclare) error {
	t := lookupQueueType(d.Arguments)
	if t == nil {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid arg 'x-queue-type' for queue '%s' in vhost '%s': \"unsupported queue type '%s'\"",
			name, v.name, queueType(d.Arguments))
	}
	return t.check(v, name, d)
}

// checkQuorumDeclare is the quorum type's check: no x-max-priority, durable, not auto-delete, not
// exclusive.
func checkQuorumDeclare(v *vhost, name string, d *amqp.QueueDeclare) error {
	invalidProp := func(p string) error {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid property '%s' for queue '%s' in vhost '%s'", p, name, v.name)
	}
	if _, ok := d.Arguments["x-max-priority"]; ok {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid arg 'x-max-priority' for queue '%s' in vhost '%s' of queue type rabbit_quorum_queue", name, v.name)
	}
	switch {
	case d.AutoDelete:
		return invalidProp("auto-delete")
	case d.Exclusive:
		return invalidProp("exclusive-owner")
	case !d.Durable:
		return invalidProp("non-durable")
	}
	return nil
}
