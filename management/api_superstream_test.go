package management

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestSuperStreamAPI: PUT /api/stream/super-streams/{vhost}/{name} makes the exchange, the
// partitions and the ordered bindings from a partition count or from binding keys, with the
// partitions' stream arguments; the refusals are 400s.
func TestSuperStreamAPI(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/stream/super-streams/%2F/orders", map[string]any{"partitions": 3, "arguments": map[string]any{"max-age": "1h", "max-length-bytes": 1000000}})
	x := e.must(200, "GET", "/api/exchanges/%2F/orders", nil).obj(t)
	if x["type"] != "direct" || x["durable"] != true {
		t.Fatalf("exchange %v", x)
	}
	if args, _ := x["arguments"].(map[string]any); args["x-super-stream"] != true {
		t.Fatalf("exchange arguments %v", x["arguments"])
	}
	var got []string
	for _, b := range e.must(200, "GET", "/api/exchanges/%2F/orders/bindings/source", nil).list(t) {
		m := b.(map[string]any)
		args := m["arguments"].(map[string]any)
		got = append(got, m["routing_key"].(string)+"->"+m["destination"].(string)+"#"+string(args["x-stream-partition-order"].(json.Number)))
	}
	if slices.Sort(got); !slices.Equal(got, []string{"0->orders-0#0", "1->orders-1#1", "2->orders-2#2"}) {
		t.Fatalf("bindings %v", got)
	}
	q := e.must(200, "GET", "/api/queues/%2F/orders-2", nil).obj(t)
	args, _ := q["arguments"].(map[string]any)
	if q["type"] != "stream" || args["x-max-age"] != "1h" || args["x-max-length-bytes"] != json.Number("1000000") {
		t.Fatalf("partition %v %v", q["type"], q["arguments"])
	}

	e.must(201, "PUT", "/api/stream/super-streams/%2F/regions", map[string]any{"binding_keys": "emea, amer,apac"})
	for _, p := range []string{"regions-emea", "regions-amer", "regions-apac"} {
		e.must(200, "GET", "/api/queues/%2F/"+p, nil)
	}

	for _, c := range []struct {
		what string
		path string
		body map[string]any
		want int
	}{
		{"exists", "/api/stream/super-streams/%2F/orders", map[string]any{"partitions": 1}, 400},
		{"neither", "/api/stream/super-streams/%2F/x", map[string]any{}, 400},
		{"both", "/api/stream/super-streams/%2F/x", map[string]any{"partitions": 1, "binding_keys": "a"}, 400},
		{"zero partitions", "/api/stream/super-streams/%2F/x", map[string]any{"partitions": 0}, 400},
		{"not a number", "/api/stream/super-streams/%2F/x", map[string]any{"partitions": "many"}, 400},
		{"amq. name", "/api/stream/super-streams/%2F/amq.x", map[string]any{"partitions": 1}, 400},
		{"bad argument", "/api/stream/super-streams/%2F/x", map[string]any{"partitions": 1, "arguments": map[string]any{"max-length-bytes": "lots"}}, 400},
		{"no vhost", "/api/stream/super-streams/nope/x", map[string]any{"partitions": 1}, 404},
	} {
		if r := e.do("PUT", c.path, guest, c.body); r.status != c.want {
			t.Errorf("%s: %d %s, want %d", c.what, r.status, r.body, c.want)
		}
	}
	if r := e.do("GET", "/api/exchanges/%2F/x", guest, nil); r.status != 404 {
		t.Errorf("a refused super stream left its exchange: %d", r.status)
	}
}
