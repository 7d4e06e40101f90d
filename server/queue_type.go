package server

import (
	"github.com/warrenmq/warren/amqp"
)

// Queue types as clients declare them (x-queue-type): classic is Warren's queue; quorum is accepted
// with RabbitMQ's restrictions (durable, not exclusive, not auto-delete, named by the client) and
// behaves as a classic queue on this single node; any other type, stream included, is refused with
// RabbitMQ's text for an unsupported type. x-queue-mode and x-queue-version are accepted and ignored.

// queueType returns the declared type of a queue with args ("classic" when none is given).
func queueType(args amqp.Table) string {
	if t, ok := args["x-queue-type"].(string); ok {
		return t
	}
	return "classic"
}

// checkServerNamedType refuses a server-named queue of a type that does not allow it.
func checkServerNamedType(args amqp.Table) error {
	if queueType(args) == "quorum" {
		return amqp.Errorf(amqp.PreconditionFailed, "Cannot declare a server-named queue for type rabbit_quorum_queue")
	}
	return nil
}

// checkNewQueueType checks the type of a queue being created, with RabbitMQ's texts and in its order.
func (v *vhost) checkNewQueueType(name string, d *amqp.QueueDeclare) error {
	switch t := queueType(d.Arguments); t {
	case "classic":
		return nil
	case "quorum":
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
	default:
		return amqp.Errorf(amqp.PreconditionFailed, "invalid arg 'x-queue-type' for queue '%s' in vhost '%s': \"unsupported queue type '%s'\"", name, v.name, t)
	}
}
