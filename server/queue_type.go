package server

import (
	"github.com/warrenmq/warren/amqp"
)

// Queue types: the interface the rest of the broker reaches a queue through, and the registry
// x-queue-type picks an implementation from at declare time.
//
// Types as clients declare them (x-queue-type): classic is Warren's queue; quorum is accepted with
// RabbitMQ's restrictions (durable, not exclusive, not auto-delete, named by the client) and
// behaves as a classic queue on this single node (it counts deliveries, queue_deliverycount.go);
// any other type, stream included, is refused with RabbitMQ's text for an unsupported type.
// x-queue-mode and x-queue-version are accepted and ignored.

// queueImpl is what a queue type implements: every operation channels (channel*.go), vhosts
// (vhost.go), policies (queue_policy.go), management (admin*.go) and recovery (persist.go) perform
// on a queue. The classic queue (*queue, queue.go and queue_*.go) is the first implementation;
// the quorum type reuses it on one node.
//
// Concurrency: every method takes the queue's own lock and releases it with q.unlock (no method is
// called with the queue's lock held); markDeleted is called with the vhost's lock held and must
// not route. Deliveries leave the queue only through its consumers' deliveryTargets
// (queue_consumers.go), which encode them for their protocol.
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
	// kick delivers what it can after a target's credit grew (wb: the caller's write batch, or nil).
	kick(wb *writeBatch)
	// get takes the head message (basic.get), counted unacked if ackRequired.
	get(ackRequired bool) (e *qentry, remaining uint32)

	// --- settling ---

	settle(es []*qentry)  // acked: gone for good
	reject(es []*qentry)  // rejected or nacked without requeue: dead-lettered
	requeue(es []*qentry) // back at their places, redelivered (delivery limit applies)

	// --- lifecycle ---

	declared() (ready, consumers uint32) // a declare or a passive declare: a use, for x-expires
	start()                              // after recovery: arm timers
	purge() uint32
	// markDeleted checks if-empty/if-unused, marks the queue deleted, drops its messages and tells
	// its consumers' targets; it returns the targets to tell with cancelled once no lock is held.
	// The caller holds v.mu.
	markDeleted(ifUnused, ifEmpty bool) (n uint32, cancelled []deliveryTarget, err error)
	applyPolicy() // the matching policy may have changed

	// --- counts and stats ---

	counts() (ready, consumers uint32)
	lengths() (ready, unacked int64)
	info(un *unackedSums) QueueInfo
	consumerInfos() []ConsumerInfo
	isDurable() bool
	record() []byte // the queue's definition record (persist.go)
}

var _ queueImpl = (*queue)(nil)

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
	// make constructs a queue of the type (lim: its arguments' settings, already validated).
	make func(v *vhost, name string, durable, autoDelete bool, owner *conn, args amqp.Table, lim queueLimits) *queue
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

// newQueue makes a queue of the type its arguments name. Declares were checked
// (checkNewQueueType); a recovered queue of a type this build does not know (none is written)
// comes back classic.
func newQueue(v *vhost, name string, durable, autoDelete bool, owner *conn, args amqp.Table, lim queueLimits) *queue {
	t := lookupQueueType(args)
	if t == nil {
		t = queueTypes["classic"]
	}
	return t.make(v, name, durable, autoDelete, owner, args, lim)
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
