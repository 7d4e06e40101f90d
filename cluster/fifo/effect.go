package fifo

import "fmt"

// EffectKind is an effect's type.
type EffectKind uint8

const (
	// EffectDeliver: Msg goes to Consumer (the leader's host sends it; followers ignore it).
	EffectDeliver EffectKind = iota + 1
	// EffectDeadLetter: Msg left the queue for Reason. With AtLeastOnce the queue keeps it
	// until KindDeadLetterSettled names it; otherwise it is gone (the host republishes it to
	// the dead-letter exchange, or drops it when the queue has none).
	EffectDeadLetter
	// EffectRejectPublish: the enqueue Producer/Seq was refused (x-overflow reject-publish): nack it.
	EffectRejectPublish
	// EffectConsumerActive / EffectConsumerInactive: with single active consumer, Consumer
	// became the active one, or attached as a waiting one (management shows it).
	EffectConsumerActive
	EffectConsumerInactive
	// EffectCreditDrained: a drain gave back Credit unused credit of Consumer (now 0).
	EffectCreditDrained
	// EffectTimer: the next time something is due (a message's TTL at the head, x-expires);
	// the leader proposes a KindTick then. Replaces any earlier timer.
	EffectTimer
	// EffectQueueExpired: the queue was unused for x-expires: the host deletes it. Once.
	EffectQueueExpired
	// EffectReleaseCursor: every message enqueued at or below Index has left the queue; log
	// entries up to Index are needed only to rebuild state that a checkpoint taken at or below
	// Index holds (see State.MarshalCheckpoint).
	EffectReleaseCursor
)

var effectNames = [...]string{
	EffectDeliver: "deliver", EffectDeadLetter: "dead-letter", EffectRejectPublish: "reject-publish",
	EffectConsumerActive: "consumer-active", EffectConsumerInactive: "consumer-inactive",
	EffectCreditDrained: "credit-drained", EffectTimer: "timer", EffectQueueExpired: "queue-expired",
	EffectReleaseCursor: "release-cursor",
}

func (k EffectKind) String() string {
	if k == 0 || int(k) >= len(effectNames) {
		return fmt.Sprintf("effect(%d)", uint8(k))
	}
	return effectNames[k]
}

// Reason is why a message was dead-lettered (x-death's reason).
type Reason uint8

const (
	ReasonRejected      Reason = iota + 1 // discarded by its consumer (reject/nack without requeue)
	ReasonExpired                         // its TTL passed at the head of the queue
	ReasonMaxLen                          // dropped by x-overflow drop-head, or refused with reject-publish-dlx
	ReasonDeliveryLimit                   // returned more than x-delivery-limit times
)

func (r Reason) String() string {
	switch r {
	case ReasonRejected:
		return "rejected"
	case ReasonExpired:
		return "expired"
	case ReasonMaxLen:
		return "maxlen"
	case ReasonDeliveryLimit:
		return "delivery_limit"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Message is a message as it leaves the queue: to a consumer, to basic.get, to dead-lettering.
type Message struct {
	ID            uint64 // the log index of its enqueue
	DeliveryCount uint32 // times it came back to the queue (x-delivery-count)
	Size          uint64
	Body          []byte // nil for a message restored from a checkpoint (see MarshalCheckpoint)
}

// Redelivered is AMQP's redelivered flag: the message was handed out before.
func (m *Message) Redelivered() bool { return m.DeliveryCount > 0 }

// Effect is something the host does because a command was applied. It is a union: Kind says which
// fields mean something.
type Effect struct {
	Kind        EffectKind
	Consumer    ConsumerKey // Deliver, ConsumerActive, ConsumerInactive, CreditDrained
	Msg         Message     // Deliver, DeadLetter
	Reason      Reason      // DeadLetter
	AtLeastOnce bool        // DeadLetter: confirm with KindDeadLetterSettled
	Producer    uint64      // RejectPublish
	Seq         uint64      // RejectPublish
	Credit      uint32      // CreditDrained
	At          int64       // Timer: milliseconds since the epoch
	Index       uint64      // ReleaseCursor
}

// Status is the outcome of a command.
type Status uint8

const (
	StatusOK Status = iota
	// StatusDuplicate: an enqueue whose Seq was applied before (a re-proposal): not applied
	// again; the first application's outcome stands.
	StatusDuplicate
	// StatusOutOfSequence: an enqueue whose Seq is past the producer's next one (an earlier
	// proposal was lost): not applied; the host re-proposes the producer's pending enqueues
	// in order.
	StatusOutOfSequence
	// StatusRejected: an enqueue refused by x-overflow reject-publish.
	StatusRejected
	// StatusRefused: a checkout refused (exclusive consumer).
	StatusRefused
	// StatusEmpty: a dequeue found no ready message.
	StatusEmpty
	// StatusUnknownConsumer: the command names a consumer the queue does not have.
	StatusUnknownConsumer
	// StatusStale: the index was not above the last applied one: nothing was applied.
	StatusStale
	// StatusInvalid: the command's kind is unknown.
	StatusInvalid
)

var statusNames = [...]string{"ok", "duplicate", "out-of-sequence", "rejected", "refused", "empty",
	"unknown-consumer", "stale", "invalid"}

func (s Status) String() string {
	if int(s) >= len(statusNames) {
		return fmt.Sprintf("status(%d)", uint8(s))
	}
	return statusNames[s]
}

// Reply is what a command returns to its proposer.
type Reply struct {
	Status Status
	Msg    Message // Dequeue: the message got
	Count  uint64  // Dequeue: ready messages left; Purge: messages purged
}
