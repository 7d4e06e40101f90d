package server

import (
	"fmt"

	"github.com/warrenmq/warren/amqp"
)

// intArg returns an integer-typed field value as int64 (RabbitMQ's integer argument types).
func intArg(x any) (int64, bool) {
	switch v := x.(type) {
	case int8:
		return int64(v), true
	case uint8:
		return int64(v), true
	case int16:
		return int64(v), true
	case uint16:
		return int64(v), true
	case int32:
		return int64(v), true
	case uint32:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}

// queueLimits are the length limits a queue's arguments set.
type queueLimits struct {
	maxLen   int64 // -1: none
	maxBytes int64 // -1: none
	overflow string
	msgTTL   int64 // x-message-ttl in ms; -1: none
	expires  int64 // x-expires in ms; -1: none
	hasDLX   bool  // x-dead-letter-exchange is set (dlx may be "", the default exchange)
	dlx      string
	hasDLRK  bool // x-dead-letter-routing-key is set
	dlrk     string
	// dlxAtLeastOnce: a quorum queue's x-dead-letter-strategy is at-least-once
	dlxAtLeastOnce bool
	// x-max-priority; 0: not a priority queue
	maxPriority uint8
	single      bool // x-single-active-consumer
	// countDeliveries: x-queue-type quorum or x-delivery-limit set; deliveryLimit -1: none
	countDeliveries bool
	deliveryLimit   int64
	// policy is the policy these settings include (policy.go); nil: none (or the arguments alone)
	policy *policy
	// opPolicy is the operator policy they include; nil: none
	opPolicy *policy
}

// queueArgOrder is the order in which RabbitMQ 3.10.8 validates the declare arguments
// (rabbit_amqqueue:declare_args, as observed): the first invalid one in this order is reported.
var queueArgOrder = []string{"x-queue-type", "x-expires", "x-message-ttl", "x-dead-letter-exchange",
	"x-dead-letter-routing-key", "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow",
	"x-queue-mode", "x-single-active-consumer", "x-delivery-limit", "x-dead-letter-strategy"}

// queueArgs validates a queue's declare arguments as RabbitMQ does and returns its limits.
// Arguments Warren does not know are accepted and ignored, as RabbitMQ ignores them.
func (v *vhost) queueArgs(name string, args amqp.Table) (queueLimits, error) {
	lim := queueLimits{maxLen: -1, maxBytes: -1, overflow: "drop-head", msgTTL: -1, expires: -1, deliveryLimit: -1}
	bad := func(k string, why string) error {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '%s': %s", k, name, v.name, why)
	}
	for _, k := range queueArgOrder {
		x, ok := args[k]
		if !ok {
			continue
		}
		switch k {
		case "x-max-length", "x-max-length-bytes", "x-message-ttl", "x-max-priority", "x-expires", "x-delivery-limit":
			n, ok := intArg(x)
			if !ok {
				// RabbitMQ 3.10 prints this reason as an Erlang string, quotes included.
				return lim, bad(k, fmt.Sprintf("\"expected integer, got %s\"", amqp.FieldTypeName(x)))
			}
			switch {
			case n < 0:
				return lim, bad(k, fmt.Sprintf("{value_negative,%d}", n))
			case n == 0 && k == "x-expires":
				return lim, bad(k, "{value_zero,0}")
			case k == "x-max-priority" && n > 255:
				return lim, bad(k, fmt.Sprintf("{max_value_exceeded,%d}", n))
			}
			switch k {
			case "x-max-length":
				lim.maxLen = n
			case "x-max-length-bytes":
				lim.maxBytes = n
			case "x-message-ttl":
				lim.msgTTL = n
			case "x-expires":
				lim.expires = n
			case "x-max-priority":
				lim.maxPriority = uint8(n)
			case "x-delivery-limit":
				lim.deliveryLimit, lim.countDeliveries = n, true
			}
		case "x-dead-letter-strategy":
			if queueType(args) != "quorum" {
				continue // other types ignore it here
			}
			s, ok := x.(string)
			if !ok {
				return lim, bad(k, fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
			}
			switch s {
			case "at-most-once", "at-least-once":
				lim.dlxAtLeastOnce = s == "at-least-once"
			default:
				return lim, bad(k, "invalid_dlx_strategy") // RabbitMQ 3.10.8's text
			}
		case "x-overflow":
			s, ok := x.(string)
			if !ok {
				return lim, bad(k, fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
			}
			switch s {
			case "drop-head", "reject-publish", "reject-publish-dlx":
				lim.overflow = s
			default:
				return lim, bad(k, "invalid_overflow") // RabbitMQ 3.10.8's text, without the value
			}
		case "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-queue-mode", "x-queue-type":
			s, ok := x.(string)
			if !ok {
				return lim, bad(k, fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
			}
			switch k {
			case "x-dead-letter-exchange":
				lim.hasDLX, lim.dlx = true, s
			case "x-dead-letter-routing-key":
				lim.hasDLRK, lim.dlrk = true, s
			case "x-queue-type":
				if t := queueTypes[s]; t != nil && t.countDeliveries {
					lim.countDeliveries = true
				}
			}
		case "x-single-active-consumer":
			b, ok := x.(bool)
			if !ok {
				return lim, bad(k, fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
			}
			lim.single = b
		}
	}
	return lim, nil
}
