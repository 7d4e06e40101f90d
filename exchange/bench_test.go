package exchange

import (
	"strconv"
	"testing"

	"github.com/warrenmq/warren/amqp"
)

// BenchmarkTopicRoute routes over 10,000 bindings shaped like market data
// subscriptions: exact keys, '*' and '#' patterns over 100 symbols on 10
// venues, bound to 1,000 queues.
func BenchmarkTopicRoute(b *testing.B) {
	r := New[int](Topic)
	for i := range 10000 {
		sym, venue := "sym"+strconv.Itoa(i%100), "v"+strconv.Itoa(i/100%10)
		var key string
		switch i / 1000 % 5 {
		case 0:
			key = "stock." + sym + "." + venue
		case 1:
			key = "stock.*." + venue
		case 2:
			key = "stock." + sym + ".#"
		case 3:
			key = "#." + venue
		default:
			key = "stock." + sym + ".*.trade." + strconv.Itoa(i)
		}
		r.Bind(i%1000, key, nil)
	}
	keys := []string{"stock.sym7.v3", "stock.sym42.v0", "bond.x.v9", "stock.sym99.v5.trade.9999"}
	out := make([]int, 0, 1000)
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		out = r.Route(keys[i%len(keys)], nil, out[:0])
		n += len(out)
	}
	b.ReportMetric(float64(n)/float64(b.N), "dests/op")
}

// BenchmarkDirectRoute routes over 10,000 bindings on 5,000 keys, two
// queues per key.
func BenchmarkDirectRoute(b *testing.B) {
	r := New[int](Direct)
	for i := range 10000 {
		r.Bind(i, "key."+strconv.Itoa(i%5000), nil)
	}
	keys := []string{"key.1", "key.2500", "key.4999", "missing"}
	out := make([]int, 0, 16)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		out = r.Route(keys[i%len(keys)], nil, out[:0])
	}
}

// BenchmarkHeadersRoute routes over 1,000 headers bindings mixing all and
// any, typed values and void (presence) arguments. Headers routing visits
// every binding, so its cost is linear in the number of bindings.
func BenchmarkHeadersRoute(b *testing.B) {
	r := New[int](Headers)
	for i := range 1000 {
		args := amqp.Table{"format": []string{"pdf", "zip", "csv"}[i%3], "level": int32(i % 10)}
		switch i % 4 {
		case 0:
			args["x-match"] = "any"
		case 1:
			args["x-match"] = "all"
			args["region"] = nil
		case 2:
			args["x-match"] = "all-with-x"
			args["x-tenant"] = "t" + strconv.Itoa(i%7)
		}
		r.Bind(i%300, "", args)
	}
	headers := amqp.Table{"format": "pdf", "level": int64(3), "region": "eu", "x-tenant": "t3"}
	out := make([]int, 0, 300)
	b.ReportAllocs()
	for b.Loop() {
		out = r.Route("", headers, out[:0])
	}
}

// BenchmarkTopicBind measures building the 10,000-binding trie.
func BenchmarkTopicBind(b *testing.B) {
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = "stock.sym" + strconv.Itoa(i%100) + ".*.v" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := New[int](Topic)
		for i, k := range keys {
			r.Bind(i, k, nil)
		}
	}
}

// BenchmarkFanoutRoute routes over a fanout exchange bound to 10 and to 1,000 queues: every
// binding is a destination.
func BenchmarkFanoutRoute(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run("queues="+strconv.Itoa(n), func(b *testing.B) {
			r := New[int](Fanout)
			for i := range n {
				r.Bind(i, "", nil)
			}
			out := make([]int, 0, n)
			b.ReportAllocs()
			for b.Loop() {
				out = r.Route("ignored", nil, out[:0])
			}
			if len(out) != n {
				b.Fatalf("routed to %d, want %d", len(out), n)
			}
		})
	}
}
