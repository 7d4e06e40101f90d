// Package exchange routes messages to the destinations bound to one exchange.
//
// It is routing only: pure data structures, deterministic, no locks, no I/O,
// no goroutines. The broker keeps one Router per exchange and serialises every
// call on it with its own lock.
//
// # Kinds
//
// Four exchange kinds are implemented with RabbitMQ's semantics:
//
//   - Direct: a binding matches when its key equals the routing key exactly.
//     Every such binding matches; routing never stops at the first one.
//   - Fanout: every binding matches; the routing key is ignored.
//   - Topic: keys are '.'-separated words; in a binding key the whole word '*'
//     matches exactly one word and the whole word '#' matches zero or more
//     words. Matching runs on a word trie (no regular expressions).
//   - Headers: the binding arguments are matched against the message headers
//     according to x-match; the routing key is ignored.
//
// # Topic words
//
// A key is split on every '.', keeping empty words, except that the empty key
// has zero words (RabbitMQ's rabbit_db_topic_exchange:split_topic_key/1 maps
// <<>> to [] and otherwise keeps empty words). So "a..b" has three words
// ("a", "", "b"), "a." has two ("a", ""), "." has two empty words, and ""
// has none. Consequently the routing key "" matches the binding keys "",
// "#", "#.#" but not "*" or "*.#" (RabbitMQ's routing_SUITE asserts exactly
// this), and the routing key "." matches "*.*" but not "*". '*' and '#' are
// wildcards only as whole words: "a*" and "#a" are literal words. A literal
// '*' or '#' word in a routing key is just a word.
//
// # Headers matching
//
// The rules follow rabbit_exchange_type_headers as of RabbitMQ 3.13/4.x:
//
//   - x-match is read only when its value is a string: "any", "any-with-x" and
//     "all-with-x" select those modes; anything else, including no x-match, a
//     non-string value or an unknown string, means "all" (CheckBindArgs
//     rejects the invalid ones at bind time, as RabbitMQ does).
//   - The x-match argument itself never takes part in matching. Other
//     arguments whose key starts with "x-" take part only in the *-with-x
//     modes.
//   - A binding argument whose value is void (nil) matches when the message
//     has a header with that key, whatever its value (even void).
//   - Any other argument matches when the message has the header and the
//     values are equal as defined below.
//   - "all" (and "all-with-x") matches when every considered argument
//     matches, so a binding with no considered arguments matches every
//     message. "any" (and "any-with-x") matches when at least one does, so
//     with no considered arguments it matches nothing.
//
// Value equality for headers is the type-erased equality RabbitMQ gets by
// comparing decoded Erlang terms with =:= (mc_amqpl:routing_headers/2 drops
// the AMQP field type before matching):
//
//   - all integer types compare by numeric value: int8(5), uint16(5),
//     int32(5), int64(5), int(5), uint64(5) are all equal;
//   - float32 and float64 compare by value after widening to float64, so
//     float32(1.5) equals float64(1.5) but float32(0.1) does not equal
//     float64(0.1), exactly as Erlang decodes them;
//   - an integer never equals a float (5 =:= 5.0 is false in Erlang);
//   - string and []byte (AMQP 'S' and 'x') compare by bytes: both are Erlang
//     binaries;
//   - bool equals only bool, Decimal only Decimal (scale and value),
//     time.Time only time.Time (same instant);
//   - tables and arrays compare element by element with these same rules.
//
// Two deliberate divergences, both about values RabbitMQ itself cannot match
// sensibly: RabbitMQ 3.13+ scales a timestamp header to milliseconds before
// comparing it with the binding's timestamp in seconds (mc_amqpl
// routing_value/2), so a timestamp never matches there; here timestamps match
// timestamps of the same instant and never integers. And RabbitMQ compares
// nested tables as ordered, typed lists; here nested tables are compared as
// maps and nested integers type-erased, like top-level values.
//
// # Allocation
//
// Route appends to a caller-supplied slice and does not allocate when that
// slice has capacity; the scratch space it needs (a generation stamp per
// destination for de-duplication, two state lists for the topic matcher) is
// kept in the Router and grows only when the binding set does.
package exchange
