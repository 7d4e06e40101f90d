package exchange

import (
	"strconv"

	"github.com/warrenmq/warren/amqp"
)

// Kind is an exchange type. The zero Kind is invalid.
type Kind uint8

// The exchange kinds.
const (
	Direct Kind = iota + 1
	Fanout
	Topic
	Headers
	// FederationUpstream is rabbitmq_federation's x-federation-upstream: a fanout that a
	// downstream broker's federation link declares on its upstream; the broker filters what
	// reaches it by the message's federation hops (the server applies that filter).
	FederationUpstream
)

// ParseKind parses an exchange type name as sent in exchange.declare
// ("direct", "fanout", "topic", "headers" or "x-federation-upstream"; case-sensitive, as in
// RabbitMQ).
func ParseKind(s string) (Kind, bool) {
	switch s {
	case "direct":
		return Direct, true
	case "fanout":
		return Fanout, true
	case "topic":
		return Topic, true
	case "headers":
		return Headers, true
	case "x-federation-upstream":
		return FederationUpstream, true
	}
	return 0, false
}

// String returns the exchange type name, or "Kind(N)" for an invalid Kind.
func (k Kind) String() string {
	switch k {
	case Direct:
		return "direct"
	case Fanout:
		return "fanout"
	case Topic:
		return "topic"
	case Headers:
		return "headers"
	case FederationUpstream:
		return "x-federation-upstream"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Router holds one exchange's bindings to destinations of type D (the server
// uses pointers to its queue and exchange objects, so D is comparable).
//
// A Router is not safe for concurrent use, not even for concurrent Route
// calls: Route updates scratch state kept in the Router. The caller
// serialises every call with its own lock.
//
// A Router keeps the args tables it is given (and hands them back from
// Bindings); the caller must not modify a table after passing it to Bind.
type Router[D comparable] interface {
	// Bind adds a binding; it reports false if an identical binding (same
	// dest, key and args: args compared with amqp.Table.Equal) already
	// exists (that is not an error: bindings are idempotent).
	Bind(dest D, key string, args amqp.Table) bool
	// Unbind removes the identical binding; false if there was none.
	Unbind(dest D, key string, args amqp.Table) bool
	// Has reports whether the identical binding (same dest, key and args) exists, as Bind would
	// find it.
	Has(dest D, key string, args amqp.Table) bool
	// UnbindAll removes every binding to dest and returns how many it removed.
	UnbindAll(dest D) int
	// Route appends to out every destination whose binding matches, each
	// destination at most once per call, and returns the extended slice.
	// It does not allocate when out has capacity. The order of the
	// appended destinations is deterministic (a function of the sequence of
	// Bind and Unbind calls) but otherwise unspecified.
	Route(routingKey string, headers amqp.Table, out []D) []D
	// Bindings lists the bindings in insertion order (a binding removed and
	// added again goes to the end). The slice is new; the Args tables are
	// shared with the Router and must not be modified.
	Bindings() []Binding[D]
	// Len reports the number of bindings.
	Len() int
	// HasDest reports whether at least one binding leads to dest.
	HasDest(dest D) bool
}

// Binding is one binding of an exchange to a destination.
type Binding[D comparable] struct {
	Dest D
	Key  string
	Args amqp.Table
}

// New returns an empty Router for the given kind. It panics if kind is not
// one of Direct, Fanout, Topic or Headers: the server parses kinds with
// ParseKind, so an invalid one is a programming error.
func New[D comparable](kind Kind) Router[D] {
	switch kind {
	case Direct, Fanout, Topic, Headers, FederationUpstream:
	default:
		panic("exchange: New with invalid " + kind.String())
	}
	return newRouter[D](kind)
}
