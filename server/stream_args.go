package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// Stream arguments, as RabbitMQ 3.10.8 checks them (observed against it): x-max-length-bytes,
// x-max-age, x-stream-max-segment-size-bytes, x-initial-cluster-size and x-queue-leader-locator
// are the arguments a stream takes; the classic and quorum arguments it does not take are
// refused; x-stream-offset on basic.consume picks where a consumer starts.

// defaultStreamSegmentBytes is RabbitMQ's default x-stream-max-segment-size-bytes.
const defaultStreamSegmentBytes = 500_000_000

// streamLimits are a stream's retention settings: its arguments', or, for the keys a policy may
// set (max-length-bytes, max-age, stream-max-segment-size-bytes), the policy's where the argument
// is not given (RabbitMQ: an argument wins over a policy for streams).
type streamLimits struct {
	maxBytes int64 // x-max-length-bytes; -1: none
	maxAge   int64 // x-max-age in milliseconds; 0: none
	segBytes int64 // x-stream-max-segment-size-bytes
	policy   *policy
	opPolicy *policy

	compact   bool   // x-stream-compaction "key" (stream_compact.go)
	keyHeader string // x-stream-compaction-key-header
}

// streamUnsupportedArgs are the declare arguments a stream refuses, in the order Warren checks
// them (RabbitMQ reports the first in the client's table order, which a Go map does not keep).
var streamUnsupportedArgs = []string{"x-max-priority", "x-message-ttl", "x-expires", "x-dead-letter-exchange",
	"x-dead-letter-routing-key", "x-max-length", "x-overflow", "x-single-active-consumer", "x-queue-mode",
	"x-delivery-limit", "x-max-in-memory-length", "x-max-in-memory-bytes", "x-queue-master-locator",
	"x-quorum-initial-group-size"}

// errStreamInternal is RabbitMQ 3.10.8's answer where its argument parser crashes (an x-max-age or
// x-stream-offset string that does not start with digits): 541 with the bare text, closing the
// connection.
func errStreamInternal() error { return amqp.Errorf(amqp.InternalError, "INTERNAL_ERROR") }

// parseStreamDuration parses RabbitMQ's retention and offset intervals: digits, then one unit
// of Y (365 days), M (30 days), D, h, m or s. crash reports RabbitMQ's crash case (no leading
// digits); ok false with crash false is a well-formed but invalid value (no or unknown unit, 0).
func parseStreamDuration(s string) (ms int64, ok, crash bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false, true
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		n = 1<<63 - 1 // more digits than an int64 holds: as long as can be
	}
	if n == 0 {
		return 0, false, false
	}
	var unit int64
	switch s[i:] {
	case "Y":
		unit = 365 * 24 * 3600 * 1000
	case "M":
		unit = 30 * 24 * 3600 * 1000
	case "D":
		unit = 24 * 3600 * 1000
	case "h":
		unit = 3600 * 1000
	case "m":
		unit = 60 * 1000
	case "s":
		unit = 1000
	default:
		return 0, false, false
	}
	if n > (1<<63-1)/unit {
		return 1<<63 - 1, true, false
	}
	return n * unit, true, false
}

// checkStreamDeclare is the stream type's declare check, in RabbitMQ 3.10.8's order: the values
// of the arguments a stream takes, then the arguments it refuses, then auto-delete, exclusive and
// non-durable.
func checkStreamDeclare(v *vhost, name string, d *amqp.QueueDeclare) error {
	if _, err := streamArgLimits(v, name, d.Arguments); err != nil {
		return err
	}
	for _, k := range streamUnsupportedArgs {
		if _, ok := d.Arguments[k]; ok {
			return amqp.Errorf(amqp.PreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '%s' of queue type rabbit_stream_queue", k, name, v.name)
		}
	}
	invalidProp := func(p string) error {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid property '%s' for queue '%s' in vhost '%s'", p, name, v.name)
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

// streamArgLimits validates the arguments a stream takes, in RabbitMQ's order, and returns the
// limits they set.
func streamArgLimits(v *vhost, name string, args amqp.Table) (streamLimits, error) {
	lim := streamLimits{maxBytes: -1, segBytes: defaultStreamSegmentBytes}
	bad := func(k string, why string) error {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '%s': %s", k, name, v.name, why)
	}
	nonNeg := func(k string, x any, zeroBad bool) (int64, error) {
		n, ok := intArg(x)
		switch {
		case !ok:
			return 0, bad(k, fmt.Sprintf("\"expected integer, got %s\"", amqp.FieldTypeName(x)))
		case n < 0:
			return 0, bad(k, fmt.Sprintf("{value_negative,%d}", n))
		case n == 0 && zeroBad:
			return 0, bad(k, "{value_zero,0}")
		}
		return n, nil
	}
	if x, ok := args["x-max-length-bytes"]; ok {
		n, err := nonNeg("x-max-length-bytes", x, false)
		if err != nil {
			return lim, err
		}
		lim.maxBytes = n
	}
	if x, ok := args["x-max-age"]; ok {
		s, isStr := x.(string)
		if !isStr {
			return lim, bad("x-max-age", fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
		}
		ms, valid, crash := parseStreamDuration(s)
		switch {
		case crash:
			return lim, errStreamInternal()
		case !valid:
			return lim, bad("x-max-age", "invalid_max_age")
		}
		lim.maxAge = ms
	}
	if x, ok := args["x-stream-max-segment-size-bytes"]; ok {
		n, err := nonNeg("x-stream-max-segment-size-bytes", x, false)
		if err != nil {
			return lim, err
		}
		lim.segBytes = n
	}
	if x, ok := args["x-initial-cluster-size"]; ok {
		if _, err := nonNeg("x-initial-cluster-size", x, true); err != nil {
			return lim, err
		}
	}
	if x, ok := args["x-queue-leader-locator"]; ok {
		s, isStr := x.(string)
		if !isStr {
			return lim, bad("x-queue-leader-locator", fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
		}
		switch s {
		case "client-local", "balanced", "random", "least-leaders":
		default:
			return lim, bad("x-queue-leader-locator", "invalid_queue_locator_arg")
		}
	}
	err := parseStreamCompaction(&lim, args, bad)
	return lim, err
}

// streamStart is where a consumer starts reading (x-stream-offset).
type streamStart struct {
	kind   byte  // 'f' first, 'l' last, 'n' next, 'o' offset, 't' timestamp
	offset int64 // for 'o' (negative: first)
	ts     int64 // for 't': Unix milliseconds
}

// parseStreamOffset reads basic.consume's x-stream-offset argument as RabbitMQ 3.10.8 does: first,
// last, next, an integer offset, an AMQP timestamp, or an interval back from now ("1h", "7D");
// RabbitMQ's default is next. A string without leading digits that is not one of the three
// words closes the connection with 541, as RabbitMQ's parser crashes on it; other bad values
// are 406.
func parseStreamOffset(v *vhost, queue string, args amqp.Table, now time.Time) (streamStart, error) {
	x, ok := args["x-stream-offset"]
	if !ok {
		return streamStart{kind: 'n'}, nil
	}
	switch t := x.(type) {
	case string:
		switch t {
		case "first":
			return streamStart{kind: 'f'}, nil
		case "last":
			return streamStart{kind: 'l'}, nil
		case "next":
			return streamStart{kind: 'n'}, nil
		}
		ms, valid, crash := parseStreamDuration(t)
		switch {
		case crash:
			return streamStart{}, errStreamInternal()
		case !valid:
			return streamStart{}, amqp.Errorf(amqp.PreconditionFailed,
				"invalid arg 'x-stream-offset' for queue '%s' in vhost '%s': {invalid_stream_offset_arg,{longstr,<<\"%s\">>}}", queue, v.name, t)
		}
		return streamStart{kind: 't', ts: now.UnixMilli() - ms}, nil
	case time.Time:
		return streamStart{kind: 't', ts: t.UnixMilli()}, nil
	}
	if n, ok := intArg(x); ok {
		return streamStart{kind: 'o', offset: n}, nil
	}
	return streamStart{}, errStreamInternal()
}

// streamRefuses is the stream type's answer to the AMQP operations it does not support, as
// RabbitMQ 3.10.8 answers them: 540 (the connection closes) for basic.get, queue.purge, nack
// and reject; 541 for basic.recover of stream deliveries.
func streamRefuses(m *queueMeta, op queueOp) error {
	q := fmt.Sprintf("queue '%s' in vhost '%s'", m.name, m.v.name)
	switch op {
	case opGet:
		return amqp.Errorf(amqp.NotImplemented, "basic.get not supported by stream queues %s", q)
	case opPurge:
		return amqp.Errorf(amqp.NotImplemented, "queue.purge not supported by stream queues %s", q)
	case opReject:
		return amqp.Errorf(amqp.NotImplemented, "basic.nack and basic.reject not supported by stream queues %s", q)
	case opRecover:
		return errStreamInternal()
	}
	return nil
}

// parseStreamFilter reads basic.consume's x-stream-filter (a string or an array of strings) and
// x-stream-match-unfiltered (a bool), as RabbitMQ 3.13 takes them; filters is nil without a
// filter. Other types are refused with 406 (RabbitMQ 3.10.8 ignores both arguments).
func parseStreamFilter(v *vhost, queue string, args amqp.Table) (filters []string, matchUnfiltered bool, err error) {
	bad := func(k string, x any) error {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '%s': {unacceptable_type,%s}",
			k, queue, v.name, amqp.FieldTypeName(x))
	}
	if x, ok := args["x-stream-filter"]; ok {
		switch t := x.(type) {
		case string:
			filters = []string{t}
		case []any:
			filters = make([]string, 0, len(t))
			for _, e := range t {
				s, ok := e.(string)
				if !ok {
					return nil, false, bad("x-stream-filter", e)
				}
				filters = append(filters, s)
			}
		default:
			return nil, false, bad("x-stream-filter", x)
		}
	}
	if x, ok := args["x-stream-match-unfiltered"]; ok {
		b, isBool := x.(bool)
		if !isBool {
			return nil, false, bad("x-stream-match-unfiltered", x)
		}
		matchUnfiltered = b
	}
	return filters, matchUnfiltered, nil
}
