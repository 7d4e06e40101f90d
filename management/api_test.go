package management

import (
	"encoding/json"
	"errors"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// Authentication and authorisation as RabbitMQ's: 401 with WWW-Authenticate and no body without
// credentials, "Login failed" for bad ones, refusals by tag, and vhost scoping for management users.
func TestAuth(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/users/none", map[string]any{"password": "p", "tags": ""})
	e.must(201, "PUT", "/api/users/mon", map[string]any{"password": "p", "tags": "monitoring"})
	e.must(201, "PUT", "/api/users/mgmt", map[string]any{"password": "p", "tags": []string{"management"}})
	e.must(201, "PUT", "/api/vhosts/v.1%20x", nil)
	e.must(201, "PUT", "/api/permissions/v.1%20x/mgmt", map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	e.must(204, "DELETE", "/api/permissions/v.1%20x/guest", nil) // granted to guest as the vhost's creator

	r := e.do("GET", "/api/overview", "", nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Basic realm="RabbitMQ Management"` || len(r.body) != 0 {
		t.Fatalf("no credentials: %d %v %q", r.status, r.header, r.body)
	}
	for _, x := range []struct {
		method, path, user string
		body               any
		status             int
		reason             string
	}{
		{"GET", "/api/overview", "guest:nope", nil, 401, "Login failed"},
		{"GET", "/api/overview", "nobody:x", nil, 401, "Login failed"},
		{"GET", "/api/whoami", "none:p", nil, 401, "Not management user"},
		{"GET", "/api/users", "mgmt:p", nil, 401, "Not administrator user"},
		{"GET", "/api/users", "mon:p", nil, 401, "Not administrator user"},
		{"GET", "/api/nodes", "mgmt:p", nil, 401, "Not monitor user"},
		{"PUT", "/api/vhosts/x", "mon:p", nil, 401, "Not administrator user"},
		{"GET", "/api/queues/%2F", "mgmt:p", nil, 401, "User not authorised to access virtual host"},
		{"GET", "/api/queues/%2F", "mon:p", nil, 401, "User not authorised to access virtual host"},
		{"PUT", "/api/queues/%2F/q", "mon:p", map[string]any{}, 401, "User not authorised to access virtual host"},
		{"PUT", "/api/queues/v.1%20x/q", "guest:guest", map[string]any{}, 401, "Access refused."},
		{"GET", "/api/definitions", "mon:p", nil, 401, "Not administrator user"},
	} {
		r := e.do(x.method, x.path, x.user, x.body)
		if r.status != x.status {
			t.Errorf("%s %s as %s: status %d, want %d: %s", x.method, x.path, x.user, r.status, x.status, r.body)
			continue
		}
		if got := r.obj(t)["reason"]; got != x.reason {
			t.Errorf("%s %s as %s: reason %v, want %q", x.method, x.path, x.user, got, x.reason)
		}
	}
	// What each may see.
	if w := e.do("GET", "/api/whoami", "mgmt:p", nil).obj(t); w["name"] != "mgmt" {
		t.Errorf("whoami %v", w)
	}
	names := func(user, path string) []string {
		r := e.do("GET", path, user, nil)
		if r.status != 200 {
			t.Fatalf("%s as %s: %d %s", path, user, r.status, r.body)
		}
		var out []string
		for _, x := range r.list(t) {
			out = append(out, x.(map[string]any)["name"].(string))
		}
		return out
	}
	if got := names("mgmt:p", "/api/vhosts"); strings.Join(got, ",") != "v.1 x" {
		t.Errorf("management user's vhosts: %v", got)
	}
	if got := names("mon:p", "/api/vhosts"); strings.Join(got, ",") != "/,v.1 x" {
		t.Errorf("monitoring user's vhosts: %v", got)
	}
	if got := names("mgmt:p", "/api/exchanges"); len(got) != 6 {
		t.Errorf("management user sees %d exchanges (want the 6 of its vhost): %v", len(got), got)
	}
	e.do("PUT", "/api/queues/v.1%20x/mine", "mgmt:p", map[string]any{})
	if got := names("mgmt:p", "/api/queues/v.1%20x"); strings.Join(got, ",") != "mine" {
		t.Errorf("management user's queues: %v", got)
	}

	// 405 comes before authentication, with Allow; an unknown API path is RabbitMQ's 404.
	r = e.do("POST", "/api/overview", "", nil)
	if r.status != 405 || r.header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("POST /api/overview: %d Allow %q", r.status, r.header.Get("Allow"))
	}
	r = e.do("GET", "/api/queues/%2F/q/contents", guest, nil)
	if r.status != 405 || r.header.Get("Allow") != "DELETE, OPTIONS" {
		t.Errorf("GET contents: %d Allow %q", r.status, r.header.Get("Allow"))
	}
	r = e.do("GET", "/api/nonexistent", "", nil)
	if r.status != 404 || r.obj(t)["error"] != "Object Not Found" {
		t.Errorf("unknown path: %d %s", r.status, r.body)
	}
	// /metrics needs no credentials.
	if r := e.do("GET", "/metrics", "", nil); r.status != 200 {
		t.Errorf("/metrics: %d", r.status)
	}
}

// Names with dots, spaces, slashes and non-ASCII letters, in the vhost "/" (%2F) and in others.
func TestQueueLifecycleAndNames(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/vhosts/"+url.PathEscape("v.1 x/y"), nil)
	for _, vh := range []string{"/", "v.1 x/y"} {
		for _, name := range []string{"q", "a.b c", "with/slash", "ünï.cödé", "amq-ish.x"} {
			path := "/api/queues/" + url.PathEscape(vh) + "/" + url.PathEscape(name)
			e.must(201, "PUT", path, map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 10}})
			e.must(204, "PUT", path, map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 10}})
			q := e.must(200, "GET", path, nil).obj(t)
			if q["name"] != name || q["vhost"] != vh || q["durable"] != true || q["arguments"].(map[string]any)["x-max-length"] != json.Number("10") {
				t.Errorf("GET %s: %v", path, q)
			}
			r := e.must(400, "PUT", path, map[string]any{"durable": false, "arguments": map[string]any{"x-max-length": 10}})
			want := "inequivalent arg 'durable' for queue '" + name + "' in vhost '" + vh + "': received 'false' but current is 'true'"
			if got := r.obj(t)["reason"]; got != want {
				t.Errorf("mismatch reason %v, want %q", got, want)
			}
			e.must(204, "DELETE", path, nil)
			e.must(404, "DELETE", path, nil)
			e.must(404, "GET", path, nil)
		}
	}
	// Bad requests.
	for _, x := range []struct {
		body   any
		reason any
	}{
		{"{bad", "not_json"},
		{"[1]", "not_json"},
		{map[string]any{"durable": "yes"}, []any{"not_boolean", "yes"}},
		{map[string]any{"arguments": map[string]any{"x-max-length": "ten"}}, `invalid arg 'x-max-length' for queue 'q2' in vhost '/': "expected integer, got longstr"`},
	} {
		r := e.must(400, "PUT", "/api/queues/%2F/q2", x.body)
		got, _ := json.Marshal(r.obj(t)["reason"])
		want, _ := json.Marshal(x.reason)
		if string(got) != string(want) {
			t.Errorf("body %v: reason %s, want %s", x.body, got, want)
		}
	}
	r := e.do("PUT", "/api/queues/%2F/amq.foo", guest, map[string]any{})
	if r.status != 401 || r.obj(t)["reason"] != "Access refused." {
		t.Errorf("amq. queue: %d %s", r.status, r.body)
	}
	r = e.do("PUT", "/api/queues/nope/q", guest, map[string]any{})
	if r.status != 404 {
		t.Errorf("queue in a missing vhost: %d %s", r.status, r.body)
	}
	// Oversized bodies are refused before they are read whole.
	big := `{"arguments":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`
	if r := e.do("PUT", "/api/queues/%2F/big", guest, big); r.status != 413 {
		t.Errorf("2 MiB body: %d %s", r.status, r.body)
	}
	// if-empty / if-unused.
	e.must(201, "PUT", "/api/queues/%2F/full", nil)
	e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{}, "routing_key": "full", "payload": "x", "payload_encoding": "string"})
	if r := e.do("DELETE", "/api/queues/%2F/full?if-empty=true", guest, nil); r.status != 400 {
		t.Errorf("if-empty on a non-empty queue: %d %s", r.status, r.body)
	}
	e.must(204, "DELETE", "/api/queues/%2F/full/contents", nil)
	e.must(204, "DELETE", "/api/queues/%2F/full?if-empty=true", nil)
	e.must(404, "DELETE", "/api/queues/%2F/full/contents", nil)
	// A trailing slash is accepted, and %2F at the end is a vhost, not a slash.
	e.must(201, "PUT", "/api/queues/%2F/slashy/", nil)
	if qs := e.must(200, "GET", "/api/queues/%2F/", nil).list(t); len(qs) != 1 {
		t.Errorf("GET /api/queues/%%2F/: %v", qs)
	}
	if qs := e.must(200, "GET", "/api/queues/%2F", nil).list(t); len(qs) != 1 {
		t.Errorf("GET /api/queues/%%2F: %v", qs)
	}
	e.must(200, "GET", "/api/bindings/", nil)
}

// A queue declared over HTTP is there for AMQP clients, and one declared over AMQP is in the API.
func TestHTTPAndAMQPSeeTheSameQueues(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/from.http", map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 5}})
	conn := e.dial(nil)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive("from.http", true, false, false, false, nil); err != nil {
		t.Fatalf("passive declare of the HTTP queue: %v", err)
	}
	// Same arguments are equivalent: the API's integers are AMQP longs, like RabbitMQ's.
	if _, err := ch.QueueDeclare("from.http", true, false, false, false, amqp.Table{"x-max-length": int64(5)}); err != nil {
		t.Fatalf("equivalent redeclare: %v", err)
	}
	if _, err := ch.QueueDeclare("from amqp", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q := e.must(200, "GET", "/api/queues/%2F/from%20amqp", nil).obj(t)
	if q["auto_delete"] != true || q["durable"] != false {
		t.Errorf("queue from AMQP: %v", q)
	}
	if err := ch.Publish("", "from.http", false, false, amqp.Publishing{Body: []byte("hi"), DeliveryMode: 2}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, waitTimeout, "the message in the HTTP view", func() bool {
		q := e.must(200, "GET", "/api/queues/%2F/from.http", nil).obj(t)
		return q["messages"] == json.Number("1") && q["messages_persistent"] == json.Number("1") && q["message_bytes"] == json.Number("2")
	})
	e.must(204, "DELETE", "/api/queues/%2F/from.http", nil)
	if _, err := ch.QueueDeclarePassive("from.http", true, false, false, false, nil); err == nil {
		t.Fatal("the queue deleted over HTTP is still there for AMQP")
	}
}

// Publish over HTTP and get over HTTP with every ack mode and encoding.
func TestPublishAndGet(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/pg", nil)
	pub := func(body map[string]any) map[string]any {
		return e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", body).obj(t)
	}
	if r := pub(map[string]any{"properties": map[string]any{
		"delivery_mode": 2, "priority": 3, "content_type": "text/plain", "message_id": "m1", "timestamp": 1700000000,
		"headers": map[string]any{"n": 1, "f": 1.5, "b": true, "l": []any{1, "a"}, "t": map[string]any{"x": "y"}},
	}, "routing_key": "pg", "payload": "hello", "payload_encoding": "string"}); r["routed"] != true {
		t.Fatalf("publish: %v", r)
	}
	pub(map[string]any{"properties": map[string]any{}, "routing_key": "pg", "payload": "//4AAQ==", "payload_encoding": "base64"})
	if r := pub(map[string]any{"properties": map[string]any{}, "routing_key": "nowhere", "payload": "x", "payload_encoding": "string"}); r["routed"] != false {
		t.Fatalf("unroutable publish: %v", r)
	}
	get := func(body map[string]any) []any {
		return e.must(200, "POST", "/api/queues/%2F/pg/get", body).list(t)
	}
	msgs := get(map[string]any{"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 3})
	if len(msgs) != 2 {
		t.Fatalf("got %d messages: %v", len(msgs), msgs)
	}
	m0, m1 := msgs[0].(map[string]any), msgs[1].(map[string]any)
	props := m0["properties"].(map[string]any)
	hdrs := props["headers"].(map[string]any)
	if m0["payload"] != "hel" || m0["payload_bytes"] != json.Number("5") || m0["payload_encoding"] != "string" ||
		m0["message_count"] != json.Number("1") || m0["redelivered"] != false || m0["routing_key"] != "pg" || m0["exchange"] != "" ||
		props["delivery_mode"] != json.Number("2") || props["priority"] != json.Number("3") || props["timestamp"] != json.Number("1700000000") ||
		hdrs["n"] != json.Number("1") || hdrs["f"] != json.Number("1.5") || hdrs["b"] != true || hdrs["t"].(map[string]any)["x"] != "y" {
		t.Errorf("first message: %v", m0)
	}
	// Not UTF-8: auto encoding falls back to base64; no properties are RabbitMQ's [].
	if m1["payload"] != "//4A" || m1["payload_encoding"] != "base64" || m1["payload_bytes"] != json.Number("4") {
		t.Errorf("binary message: %v", m1)
	}
	if p, ok := m1["properties"].([]any); !ok || len(p) != 0 {
		t.Errorf("empty properties: %#v", m1["properties"])
	}
	// Requeued: redelivered now; base64 on request; reject_requeue_false drops them.
	msgs = get(map[string]any{"count": 1, "ackmode": "reject_requeue_true", "encoding": "base64"})
	if len(msgs) != 1 || msgs[0].(map[string]any)["redelivered"] != true || msgs[0].(map[string]any)["payload"] != "aGVsbG8=" {
		t.Errorf("second get: %v", msgs)
	}
	msgs = get(map[string]any{"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"})
	if len(msgs) != 2 {
		t.Errorf("third get: %v", msgs)
	}
	if msgs := get(map[string]any{"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}); len(msgs) != 0 {
		t.Errorf("empty queue gave %v", msgs)
	}
	// Bad requests, with RabbitMQ's reasons.
	for _, x := range []struct {
		path   string
		body   map[string]any
		status int
		reason any
	}{
		{"/api/queues/%2F/pg/get", map[string]any{"count": 1}, 400, "[{key_missing,ackmode},{key_missing,encoding}]"},
		{"/api/queues/%2F/pg/get", map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "zzz"}, 400, "Unsupported encoding. Please use auto or base64."},
		{"/api/queues/%2F/nope/get", map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, 404, "NOT_FOUND - no queue 'nope' in vhost '/'"},
		{"/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{}, "routing_key": "pg", "payload": "x"}, 400, "[{key_missing,payload_encoding}]"},
		{"/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{}, "routing_key": "pg", "payload": "!!!", "payload_encoding": "base64"}, 400, []any{"not_base64", "!!!"}},
		{"/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{"delivery_mode": "x"}, "routing_key": "pg", "payload": "x", "payload_encoding": "string"}, 400, []any{"not_int", "delivery_mode"}},
		{"/api/exchanges/%2F/nope/publish", map[string]any{"properties": map[string]any{}, "routing_key": "pg", "payload": "x", "payload_encoding": "string"}, 400, "404 NOT_FOUND - no exchange 'nope' in vhost '/'"},
		{"/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{"user_id": "mallory"}, "routing_key": "pg", "payload": "x", "payload_encoding": "string"}, 400, "406 PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"},
	} {
		r := e.do("POST", x.path, guest, x.body)
		got, _ := json.Marshal(r.obj(t)["reason"])
		want, _ := json.Marshal(x.reason)
		if r.status != x.status || string(got) != string(want) {
			t.Errorf("POST %s %v: %d %s, want %d %s", x.path, x.body, r.status, got, x.status, want)
		}
	}
}

func TestExchangesAndBindings(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/exchanges/%2F/x.src", map[string]any{"type": "topic"})
	e.must(204, "PUT", "/api/exchanges/%2F/x.src", map[string]any{"type": "topic"})
	e.must(201, "PUT", "/api/exchanges/%2F/x%20dst", map[string]any{"type": "fanout", "durable": false})
	if r := e.do("PUT", "/api/exchanges/%2F/x.src", guest, map[string]any{"type": "direct"}); r.status != 400 ||
		r.obj(t)["reason"] != "inequivalent arg 'type' for exchange 'x.src' in vhost '/': received 'direct' but current is 'topic'" {
		t.Errorf("inequivalent exchange: %d %s", r.status, r.body)
	}
	// The API's default is durable=false: a standard exchange is durable, so only an explicit
	// durable=true is equivalent (as RabbitMQ answers).
	e.must(204, "PUT", "/api/exchanges/%2F/amq.direct", map[string]any{"type": "direct", "durable": true})
	e.must(400, "PUT", "/api/exchanges/%2F/amq.direct", map[string]any{"type": "direct"})
	for _, p := range []string{"/api/exchanges/%2F/amq.default", "/api/exchanges/%2F/amq.new"} {
		if r := e.do("PUT", p, guest, map[string]any{"type": "direct"}); r.status != 401 || r.obj(t)["reason"] != "Access refused." {
			t.Errorf("PUT %s: %d %s", p, r.status, r.body)
		}
	}
	if r := e.do("DELETE", "/api/exchanges/%2F/amq.direct", guest, nil); r.status != 401 {
		t.Errorf("DELETE amq.direct: %d %s", r.status, r.body)
	}
	if x := e.must(200, "GET", "/api/exchanges/%2F/amq.default", nil).obj(t); x["name"] != "" || x["type"] != "direct" {
		t.Errorf("default exchange: %v", x)
	}
	e.must(201, "PUT", "/api/queues/%2F/b.q", nil)

	// Bindings to a queue and to an exchange; Location names the new binding.
	r := e.must(201, "POST", "/api/bindings/%2F/e/x.src/q/b.q", map[string]any{"routing_key": "a.#", "arguments": map[string]any{"x": 1}})
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, "b.q/a.%2523~") {
		t.Errorf("Location %q", loc)
	}
	r = e.must(201, "POST", "/api/bindings/%2F/e/x.src/q/b.q", map[string]any{"routing_key": "a.*"})
	if loc := r.header.Get("Location"); loc != "b.q/a.%252A" {
		t.Errorf("Location %q", loc)
	}
	r = e.must(201, "POST", "/api/bindings/%2F/e/x.src/q/b.q", map[string]any{})
	if loc := r.header.Get("Location"); loc != "b.q/~" {
		t.Errorf("Location %q", loc)
	}
	e.must(201, "POST", "/api/bindings/%2F/e/x.src/e/x%20dst", map[string]any{"routing_key": "e2e"})
	if r := e.do("POST", "/api/bindings/%2F/e/nope/q/b.q", guest, map[string]any{}); r.status != 404 || r.obj(t)["reason"] != "no exchange 'nope' in vhost '/'" {
		t.Errorf("binding from a missing exchange: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/bindings/%2F/e/x.src/q/nope", guest, map[string]any{}); r.status != 404 || r.obj(t)["reason"] != "no queue 'nope' in vhost '/'" {
		t.Errorf("binding to a missing queue: %d %s", r.status, r.body)
	}
	bs := e.must(200, "GET", "/api/bindings/%2F/e/x.src/q/b.q", nil).list(t)
	var keys []string
	for _, b := range bs {
		keys = append(keys, b.(map[string]any)["properties_key"].(string))
	}
	sort.Strings(keys)
	if len(keys) != 3 || keys[0] != "a.%23~"+keys[0][len("a.%23~"):] || keys[1] != "a.%2A" || keys[2] != "~" {
		t.Errorf("properties keys %v", keys)
	}
	if qb := e.must(200, "GET", "/api/queues/%2F/b.q/bindings", nil).list(t); len(qb) != 4 { // + the default exchange's
		t.Errorf("queue bindings: %v", qb)
	}
	if src := e.must(200, "GET", "/api/exchanges/%2F/x.src/bindings/source", nil).list(t); len(src) != 4 {
		t.Errorf("source bindings: %v", src)
	}
	if dst := e.must(200, "GET", "/api/exchanges/%2F/x%20dst/bindings/destination", nil).list(t); len(dst) != 1 {
		t.Errorf("destination bindings: %v", dst)
	}
	// Each binding by its properties key, then deleted by it. The key travels percent-encoded.
	for _, k := range keys {
		p := "/api/bindings/%2F/e/x.src/q/b.q/" + url.PathEscape(k)
		b := e.must(200, "GET", p, nil).obj(t)
		if propertiesKey(b["routing_key"].(string), nil) == "" {
			t.Errorf("binding %v", b)
		}
		e.must(204, "DELETE", p, nil)
		e.must(404, "GET", p, nil)
	}
	e.must(204, "DELETE", "/api/bindings/%2F/e/x.src/e/x%20dst/e2e", nil)
	if bs := e.must(200, "GET", "/api/bindings/%2F/e/x.src/e/x%20dst", nil).list(t); len(bs) != 0 {
		t.Errorf("left: %v", bs)
	}
	e.must(204, "DELETE", "/api/exchanges/%2F/x.src?if-unused=true", nil)
	e.must(404, "DELETE", "/api/exchanges/%2F/x.src", nil)
}

func TestPropertiesKey(t *testing.T) {
	for _, x := range []struct {
		key  string
		args map[string]any
		want string
	}{
		{"", nil, "~"},
		{"orders.*", nil, "orders.%2A"},
		{"a.#", nil, "a.%23"},
		{"a b~c/d", nil, "a+b%7Ec%2Fd"},
		{"rq.classic", nil, "rq.classic"},
	} {
		if got := propertiesKey(x.key, nil); got != x.want {
			t.Errorf("propertiesKey(%q) = %q, want %q", x.key, got, x.want)
		}
	}
	// With arguments: key "~" hash; equal tables give equal keys whatever their order.
	a := propertiesKey("k", map[string]any{"x": int64(1), "y": "z"})
	b := propertiesKey("k", map[string]any{"y": "z", "x": int64(1)})
	if a != b || !strings.HasPrefix(a, "k~") || len(a) != len("k~")+6 {
		t.Errorf("keys with arguments: %q %q", a, b)
	}
	if propertiesKey("k", map[string]any{"x": int64(2)}) == a {
		t.Error("different arguments, same key")
	}
}

// Connections, channels and consumers are listed with their settings; DELETE closes a connection
// with 320 CONNECTION_FORCED and the X-Reason text.
func TestConnectionsChannelsConsumers(t *testing.T) {
	e := startEnv(t, nil)
	conn := e.dial(amqp.Table{"connection_name": "my app"})
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(7, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("cq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("cq", "tag-1", false, true, false, false, amqp.Table{"x-priority": int32(5)}); err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	cs := e.must(200, "GET", "/api/connections", nil).list(t)
	if len(cs) != 1 {
		t.Fatalf("connections: %v", cs)
	}
	c := cs[0].(map[string]any)
	name := c["name"].(string)
	if c["user_provided_name"] != "my app" || c["vhost"] != "/" || c["user"] != "guest" || c["channels"] != json.Number("1") ||
		c["auth_mechanism"] != "PLAIN" || c["protocol"] != "AMQP 0-9-1" || c["peer_host"] != "127.0.0.1" {
		t.Errorf("connection: %v", c)
	}
	e.must(200, "GET", "/api/connections/"+url.PathEscape(name), nil)
	e.must(200, "GET", "/api/vhosts/%2F/connections", nil)
	chs := e.must(200, "GET", "/api/connections/"+url.PathEscape(name)+"/channels", nil).list(t)
	if len(chs) != 1 {
		t.Fatalf("channels: %v", chs)
	}
	chm := chs[0].(map[string]any)
	if chm["name"] != name+" (1)" || chm["confirm"] != true || chm["prefetch_count"] != json.Number("7") || chm["consumer_count"] != json.Number("1") {
		t.Errorf("channel: %v", chm)
	}
	one := e.must(200, "GET", "/api/channels/"+url.PathEscape(name+" (1)"), nil).obj(t)
	if cd := one["consumer_details"].([]any); len(cd) != 1 {
		t.Errorf("channel consumers: %v", one)
	}
	cons := e.must(200, "GET", "/api/consumers/%2F", nil).list(t)
	if len(cons) != 1 {
		t.Fatalf("consumers: %v", cons)
	}
	cm := cons[0].(map[string]any)
	if cm["consumer_tag"] != "tag-1" || cm["exclusive"] != true || cm["prefetch_count"] != json.Number("7") ||
		cm["queue"].(map[string]any)["name"] != "cq" || cm["arguments"].(map[string]any)["x-priority"] != json.Number("5") ||
		cm["channel_details"].(map[string]any)["connection_name"] != name {
		t.Errorf("consumer: %v", cm)
	}
	q := e.must(200, "GET", "/api/queues/%2F/cq", nil).obj(t)
	if q["exclusive_consumer_tag"] != "tag-1" || len(q["consumer_details"].([]any)) != 1 {
		t.Errorf("queue with an exclusive consumer: %v", q)
	}

	e.must(404, "DELETE", "/api/connections/nope", nil)
	r := e.do("DELETE", "/api/connections/"+url.PathEscape(name), guest, nil, "X-Reason", "maintenance")
	if r.status != 204 {
		t.Fatalf("DELETE connection: %d %s", r.status, r.body)
	}
	ae := <-closed
	var amqpErr *amqp.Error
	if ae == nil || !errors.As(ae, &amqpErr) || amqpErr.Code != 320 || amqpErr.Reason != "CONNECTION_FORCED - maintenance" {
		t.Fatalf("close: %v", ae)
	}
	wait.For(t, waitTimeout, "the connection to go", func() bool {
		return len(e.must(200, "GET", "/api/connections", nil).list(t)) == 0
	})
}

// Users, vhosts and permissions: created, read, changed, deleted, and kept across a restart on the
// same store; a user created over HTTP logs in over AMQP.
func TestUsersVhostsPermissionsPersist(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/vhosts/prod", map[string]any{"description": "production", "tags": "a,b"})
	e.must(204, "PUT", "/api/vhosts/prod", map[string]any{"tracing": false})
	v := e.must(200, "GET", "/api/vhosts/prod", nil).obj(t)
	if v["description"] != "production" || len(v["tags"].([]any)) != 2 {
		t.Errorf("vhost: %v", v)
	}
	// The creator gets full permissions on a new vhost, as with RabbitMQ.
	if p := e.must(200, "GET", "/api/permissions/prod/guest", nil).obj(t); p["configure"] != ".*" {
		t.Errorf("creator's permission: %v", p)
	}
	e.must(201, "PUT", "/api/users/alice", map[string]any{"password": "wonder land", "tags": "management,monitoring"})
	e.must(204, "PUT", "/api/users/alice", map[string]any{"password": "wonder land", "tags": "management"})
	u := e.must(200, "GET", "/api/users/alice", nil).obj(t)
	if u["hashing_algorithm"] != server.HashSHA256 || len(u["tags"].([]any)) != 1 || u["password_hash"] == "" {
		t.Errorf("user: %v", u)
	}
	// A user from a RabbitMQ export: "guest"'s hash from the samples logs in with "guest".
	e.must(201, "PUT", "/api/users/imported", map[string]any{"password_hash": "Y4uvMYDhdhzbH1cNSd1q7VzrcB+HCH4xQfmBBMTU3/ayUJ/b", "tags": ""})
	if _, err := e.srv.Authenticate("imported", "guest", nil); err != nil {
		t.Errorf("imported RabbitMQ hash: %v", err)
	}
	if r := e.do("PUT", "/api/users/bad", guest, map[string]any{"password_hash": "abc!"}); r.status != 400 {
		t.Errorf("bad hash: %d %s", r.status, r.body)
	}
	e.must(201, "PUT", "/api/permissions/prod/alice", map[string]any{"configure": "^a", "write": ".*", "read": ".*"})
	e.must(204, "PUT", "/api/permissions/prod/alice", map[string]any{"configure": "^al", "write": ".*", "read": ".*"})
	for _, x := range []struct {
		path string
		body map[string]any
	}{
		{"/api/permissions/prod/alice", map[string]any{"configure": "(", "write": ".*", "read": ".*"}},
		{"/api/permissions/prod/alice", map[string]any{"configure": ".*", "write": ".*"}},
		{"/api/permissions/nope/alice", map[string]any{"configure": ".*", "write": ".*", "read": ".*"}},
		{"/api/permissions/prod/nobody", map[string]any{"configure": ".*", "write": ".*", "read": ".*"}},
	} {
		if r := e.do("PUT", x.path, guest, x.body); r.status != 400 {
			t.Errorf("PUT %s %v: %d %s", x.path, x.body, r.status, r.body)
		}
	}
	if ps := e.must(200, "GET", "/api/users/alice/permissions", nil).list(t); len(ps) != 1 {
		t.Errorf("alice's permissions: %v", ps)
	}
	if ps := e.must(200, "GET", "/api/vhosts/prod/permissions", nil).list(t); len(ps) != 2 {
		t.Errorf("prod's permissions: %v", ps)
	}
	if w := e.must(200, "GET", "/api/users/without-permissions", nil).list(t); len(w) != 1 || w[0].(map[string]any)["name"] != "imported" {
		t.Errorf("users without permissions: %v", w)
	}
	c, err := amqp.Dial("amqp://alice:wonder%20land@" + e.addr + "/prod")
	if err != nil {
		t.Fatalf("alice over AMQP: %v", err)
	}
	c.Close()
	e.must(201, "PUT", "/api/queues/prod/kept", map[string]any{"durable": true})

	// Restart on the same store.
	e.stop()
	e2 := startEnv(t, e.store.Reopen())
	if v := e2.must(200, "GET", "/api/vhosts/prod", nil).obj(t); v["description"] != "production" {
		t.Errorf("vhost after restart: %v", v)
	}
	if p := e2.must(200, "GET", "/api/permissions/prod/alice", nil).obj(t); p["configure"] != "^al" {
		t.Errorf("permission after restart: %v", p)
	}
	e2.must(200, "GET", "/api/queues/prod/kept", nil)
	if _, err := e2.srv.Authenticate("alice", "wonder land", nil); err != nil {
		t.Errorf("alice after restart: %v", err)
	}
	// Deleting a vhost deletes what is in it, and its permissions; deleting a user its permissions.
	e2.must(204, "DELETE", "/api/vhosts/prod", nil)
	e2.must(404, "DELETE", "/api/vhosts/prod", nil)
	e2.must(404, "GET", "/api/queues/prod/kept", nil)
	e2.must(404, "GET", "/api/permissions/prod/alice", nil)
	e2.must(204, "DELETE", "/api/users/alice", nil)
	e2.must(404, "DELETE", "/api/users/alice", nil)
	e2.must(404, "GET", "/api/users/alice/permissions", nil)
	e2.stop()
	e3 := startEnv(t, e2.store.Reopen())
	e3.must(404, "GET", "/api/vhosts/prod", nil)
	e3.must(404, "GET", "/api/users/alice", nil)
	if vs := e3.must(200, "GET", "/api/vhosts", nil).list(t); len(vs) != 1 {
		t.Errorf("vhosts after deleting prod and restarting: %v", vs)
	}
}

// Deleting a vhost closes its connections with 320 CONNECTION_FORCED.
func TestDeleteVhostClosesConnections(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/vhosts/gone", nil)
	conn, err := amqp.Dial("amqp://guest:guest@" + e.addr + "/gone")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	e.must(204, "DELETE", "/api/vhosts/gone", nil)
	var ae *amqp.Error
	select {
	case ae = <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection to the deleted vhost was not closed")
	}
	if ae == nil || ae.Code != 320 || ae.Reason != "CONNECTION_FORCED - vhost 'gone' is deleted" {
		t.Fatalf("close: %v", ae)
	}
	if _, err := amqp.Dial("amqp://guest:guest@" + e.addr + "/gone"); err == nil {
		t.Fatal("connected to a deleted vhost")
	}
}
