// Package fifo is the replicated state machine of a quorum queue, after RabbitMQ's rabbit_fifo
// (deps/rabbit/src/rabbit_fifo.erl, 3.10): every member of the queue's Raft group applies the
// same log of Commands with State.Apply and so holds the same queue. It is pure and
// deterministic: no goroutines, no I/O, no clock (each command carries its proposer's time), no
// randomness, and no dependence on map iteration order; Marshal of two members that applied the
// same log is byte-identical. The Raft host (proposals, the log, snapshots) and the server's
// quorum queue type (delivery to consumers, confirms, dead-letter republishing) drive it.
//
// Commands (command.go) have a versioned compact binary encoding (Append, Decode; Decode returns
// an error on anything else, never panics; fuzzed): Enqueue, Checkout, Cancel, Settle, Return,
// Discard, Credit, Dequeue, Purge, Down, Disconnected, Reconnected, Tick, Config,
// DeadLetterSettled.
//
// Apply(index, cmd) returns a Reply to the proposer and Effects (effect.go) for the host: data,
// not actions. A message's id is the log index of its Enqueue.
//
//   - Deliver: a message to a consumer (its delivery count; redelivered when > 0). The leader's
//     host sends it; every member records the message as checked out.
//   - DeadLetter: a message left for a reason (rejected, expired, maxlen, delivery_limit). At
//     most once it is gone; at least once (x-dead-letter-strategy, with x-overflow
//     reject-publish as RabbitMQ requires) it stays, counted toward the length limits, until
//     DeadLetterSettled names it; a new leader's host republishes PendingDeadLetters.
//   - RejectPublish: an Enqueue refused by x-overflow reject-publish(-dlx): nack it.
//   - ConsumerActive, ConsumerInactive: single active consumer's changes.
//   - CreditDrained: a drain gave back unused credit.
//   - Timer: when to propose the next Tick (a message's TTL at the head, x-expires).
//   - QueueExpired: unused for x-expires: delete the queue.
//   - ReleaseCursor: every message at or below Index has left the queue (see snapshot.go).
//
// Semantics (as RabbitMQ 3.10's quorum queues; the scripts in testdata/ show each one):
//   - FIFO; returned messages (requeued, or back from a consumer whose owner went Down) are served
//     before the rest, in id order, their delivery count one higher; a message whose count then
//     exceeds x-delivery-limit is dead-lettered (delivery_limit) instead.
//   - Consumers: the highest x-priority with credit first, the least recently served among equals
//     (round-robin); Prefetch consumers (AMQP 0-9-1 basic.qos: credit = the limit on unsettled
//     messages, 0 none) and Credited ones (an explicit credit, with drain). Cancel stops
//     deliveries; the consumer keeps its unsettled messages until it settles or returns them.
//     Single active consumer: the first attached is active, the next in attach order takes over.
//     The empty tag is reserved: it names an owner's basic.get (Dequeue) messages. A NoAck
//     consumer's deliveries are settled as they are made (basic.consume no-ack).
//   - Deduplication: an Enqueue with a Producer (an owner id, 0 for none) carries Seq 1, 2, 3...;
//     a Seq below the producer's next is a Duplicate (a re-proposal already applied: not applied
//     again, its first outcome stands); one above is OutOfSequence (an earlier proposal was lost:
//     not applied; the host re-proposes that producer's pending enqueues in order). Down of the
//     producer's owner forgets it.
//   - Length limits count ready messages and pending at-least-once dead letters (not unacked
//     ones). drop-head dead-letters the oldest (maxlen). reject-publish, as rabbit_fifo: the
//     enqueue that goes over the limit is taken, later ones are refused until the queue is at or
//     below 80% of the limit (checked against RabbitMQ 3.10.8); reject-publish-dlx also
//     dead-letters the refused one.
//   - TTL (x-message-ttl and the message's own, the smaller) expires messages only at the head,
//     once the time is past their expiry; x-expires fires after that long with no consumer, no
//     basic.get, no configuration change.
//
// The returned effects slice, and the Body of messages (aliasing the Enqueue command's Body, so
// the log entry's bytes), belong to the State: the slice is valid until the next Apply, the bytes
// must not change while the message is held.
package fifo
