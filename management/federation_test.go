package management

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
)

// fedLinks returns B's /api/federation-links (of vhost, if given).
func (e *env) fedLinks(vhost string) []map[string]any {
	e.t.Helper()
	path := "/api/federation-links"
	if vhost != "" {
		path += "/" + url.PathEscape(vhost)
	}
	var out []map[string]any
	for _, x := range e.must(http.StatusOK, "GET", path, nil).list(e.t) {
		out = append(out, x.(map[string]any))
	}
	return out
}

// hasBinding reports whether e's vhost / has a binding from source to dest with key.
func (e *env) hasBinding(source, dest, key string) bool {
	e.t.Helper()
	for _, x := range e.must(http.StatusOK, "GET", "/api/bindings/%2F", nil).list(e.t) {
		b := x.(map[string]any)
		if b["source"] == source && b["destination"] == dest && b["routing_key"] == key {
			return true
		}
	}
	return false
}

func consume(t *testing.T, e *env, queue string) <-chan amqp.Delivery {
	t.Helper()
	conn := e.dial(nil)
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func next(t *testing.T, d <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case m := <-d:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return amqp.Delivery{}
}

func publishOn(t *testing.T, e *env, exchange, key, body string) {
	t.Helper()
	r := e.must(http.StatusOK, "POST", "/api/exchanges/%2F/"+url.PathEscape(exchange)+"/publish",
		map[string]any{"properties": map[string]any{}, "routing_key": key, "payload": body, "payload_encoding": "string"})
	if !strings.Contains(string(r.body), `"routed":true`) {
		t.Fatalf("publish %s to %s: %s", key, exchange, r.body)
	}
}

// A federated exchange across two Warrens: B federates fed.x from A through an upstream set and a
// policy; what is published to A's fed.x reaches the queue bound on B with a matching key, the
// bindings on B are kept in step on A, and the link shows in B's /api/federation-links.
func TestFederatedExchangeTwoWarrens(t *testing.T) {
	a, b := startEnv(t, nil), startEnv(t, nil)
	b.must(http.StatusNoContent, "PUT", "/api/cluster-name", map[string]any{"name": "warren-b"})
	a.must(http.StatusCreated, "PUT", "/api/exchanges/%2F/fed.x", map[string]any{"type": "topic", "durable": true})
	b.must(http.StatusCreated, "PUT", "/api/exchanges/%2F/fed.x", map[string]any{"type": "topic", "durable": true})
	b.must(http.StatusCreated, "PUT", "/api/queues/%2F/fed.q", map[string]any{"durable": true})
	b.must(http.StatusCreated, "POST", "/api/bindings/%2F/e/fed.x/q/fed.q", map[string]any{"routing_key": "k.a"})
	b.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream/%2F/upA", map[string]any{"value": map[string]any{"uri": a.amqpURL, "max-hops": 1}})
	b.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream-set/%2F/setA", map[string]any{"value": []any{map[string]any{"upstream": "upA"}}})
	b.must(http.StatusCreated, "PUT", "/api/policies/%2F/fed", map[string]any{"pattern": `^fed\.x$`, "definition": map[string]any{"federation-upstream-set": "setA"}, "apply-to": "exchanges"})

	upQ := "federation: fed.x -> warren-b"
	wait.For(t, 10*time.Second, "the link running", func() bool {
		ls := b.fedLinks("/")
		return len(ls) == 1 && ls[0]["status"] == "running"
	})
	l := b.fedLinks("")[0]
	for k, want := range map[string]any{"type": "exchange", "exchange": "fed.x", "upstream_exchange": "fed.x", "upstream": "upA", "vhost": "/", "node": b.srv.NodeName()} {
		if l[k] != want {
			t.Errorf("link %s = %v, want %v", k, l[k], want)
		}
	}
	if uri, _ := l["uri"].(string); uri == "" || strings.Contains(uri, "guest") {
		t.Errorf("link uri %q: want the upstream URI without credentials", uri)
	}
	if l["local_connection"] != "Federation link (upstream: upA, policy: fed)" {
		t.Errorf("local_connection %v", l["local_connection"])
	}
	for _, k := range []string{"id", "timestamp"} {
		if s, _ := l[k].(string); s == "" {
			t.Errorf("link %s missing: %v", k, l)
		}
	}
	wait.For(t, 10*time.Second, "the binding on A", func() bool { return a.hasBinding("fed.x", upQ+" A", "k.a") })
	named := false
	for _, x := range a.must(http.StatusOK, "GET", "/api/connections", nil).list(t) {
		cp, _ := x.(map[string]any)["client_properties"].(map[string]any)
		named = named || cp["connection_name"] == "Federation link (upstream: upA, policy: fed)"
	}
	if !named {
		t.Error("no connection on A named as RabbitMQ names a federation link's")
	}

	d := consume(t, b, "fed.q")
	publishOn(t, a, "fed.x", "k.a", "first")
	m := next(t, d)
	if string(m.Body) != "first" || m.RoutingKey != "k.a" || m.Exchange != "fed.x" {
		t.Fatalf("got %q key %q exchange %q", m.Body, m.RoutingKey, m.Exchange)
	}
	hops, _ := m.Headers["x-received-from"].([]any)
	if len(hops) != 1 || hops[0].(amqp.Table)["exchange"] != "fed.x" {
		t.Errorf("x-received-from %#v", m.Headers["x-received-from"])
	}

	// Binding changes on B are reflected on A.
	b.must(http.StatusCreated, "POST", "/api/bindings/%2F/e/fed.x/q/fed.q", map[string]any{"routing_key": "k.b"})
	b.must(http.StatusNoContent, "DELETE", "/api/bindings/%2F/e/fed.x/q/fed.q/k.a", nil)
	wait.For(t, 10*time.Second, "A's bindings following B's", func() bool {
		return a.hasBinding("fed.x", upQ+" A", "k.b") && !a.hasBinding("fed.x", upQ+" A", "k.a")
	})
	// k.a is no longer bound on A, so only k.b comes through (in order on the link's queue).
	r := a.must(http.StatusOK, "POST", "/api/exchanges/%2F/fed.x/publish",
		map[string]any{"properties": map[string]any{}, "routing_key": "k.a", "payload": "unbound", "payload_encoding": "string"})
	if !strings.Contains(string(r.body), `"routed":false`) {
		t.Errorf("k.a still routed on A: %s", r.body)
	}
	publishOn(t, a, "fed.x", "k.b", "second")
	if m := next(t, d); string(m.Body) != "second" {
		t.Fatalf("got %q, want second", m.Body)
	}

	// Without the policy the link goes, and with it the queue on A.
	b.must(http.StatusNoContent, "DELETE", "/api/policies/%2F/fed", nil)
	wait.For(t, 10*time.Second, "the link gone", func() bool { return len(b.fedLinks("")) == 0 })
	wait.For(t, 10*time.Second, "the upstream queue deleted", func() bool {
		return a.do("GET", "/api/queues/%2F/"+url.PathEscape(upQ), guest, nil).status == http.StatusNotFound
	})
}

// A federated queue across two Warrens: B's fed.q2 pulls from A's fed.q2 once it has a consumer.
func TestFederatedQueueTwoWarrens(t *testing.T) {
	a, b := startEnv(t, nil), startEnv(t, nil)
	a.must(http.StatusCreated, "PUT", "/api/queues/%2F/fed.q2", map[string]any{"durable": true})
	b.must(http.StatusCreated, "PUT", "/api/queues/%2F/fed.q2", map[string]any{"durable": true})
	for _, body := range []string{"m1", "m2", "m3"} {
		publishOn(t, a, "amq.default", "fed.q2", body)
	}
	b.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream/%2F/upA", map[string]any{"value": map[string]any{"uri": a.amqpURL}})
	b.must(http.StatusCreated, "PUT", "/api/policies/%2F/fedq", map[string]any{"pattern": `^fed\.q2$`, "definition": map[string]any{"federation-upstream": "upA"}, "apply-to": "queues"})
	wait.For(t, 10*time.Second, "the queue link running", func() bool {
		ls := b.fedLinks("/")
		return len(ls) == 1 && ls[0]["status"] == "running" && ls[0]["type"] == "queue" &&
			ls[0]["queue"] == "fed.q2" && ls[0]["upstream_queue"] == "fed.q2" && ls[0]["consumer_tag"] == "federation-link-upA"
	})
	// No consumer on B: nothing moves.
	if n := a.must(http.StatusOK, "GET", "/api/queues/%2F/fed.q2", nil).obj(t)["messages"]; n != json.Number("3") {
		t.Fatalf("A's queue holds %v messages before B has a consumer, want 3", n)
	}
	d := consume(t, b, "fed.q2")
	for _, want := range []string{"m1", "m2", "m3"} {
		if m := next(t, d); string(m.Body) != want {
			t.Fatalf("got %q, want %q", m.Body, want)
		}
	}
	wait.For(t, 10*time.Second, "A's queue empty", func() bool {
		q := a.must(http.StatusOK, "GET", "/api/queues/%2F/fed.q2", nil).obj(t)
		return q["messages"] == json.Number("0")
	})
}

// rabbit-hole's federation calls against Warren.
func TestRabbitHoleFederation(t *testing.T) {
	up, e := startEnv(t, nil), startEnv(t, nil)
	rmq, err := rabbithole.NewClient(e.api, "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	def := rabbithole.FederationDefinition{Uri: rabbithole.URISet{up.amqpURL}, Expires: 3600000, MaxHops: 2, PrefetchCount: 50,
		ReconnectDelay: 1, AckMode: "on-confirm", Exchange: "amq.topic"}
	res, err := rmq.PutFederationUpstream("/", "rh-up", def)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("PutFederationUpstream: %v %v", res, err)
	}
	ups, err := rmq.ListFederationUpstreams()
	if err != nil || len(ups) != 1 || ups[0].Name != "rh-up" || ups[0].Vhost != "/" || ups[0].Component != "federation-upstream" ||
		len(ups[0].Definition.Uri) != 1 || ups[0].Definition.Uri[0] != up.amqpURL || ups[0].Definition.PrefetchCount != 50 || ups[0].Definition.Exchange != "amq.topic" {
		t.Fatalf("ListFederationUpstreams: %+v %v", ups, err)
	}
	got, err := rmq.GetFederationUpstream("/", "rh-up")
	if err != nil || got.Definition.MaxHops != 2 || got.Definition.AckMode != "on-confirm" {
		t.Fatalf("GetFederationUpstream: %+v %v", got, err)
	}
	if _, err := rmq.PutPolicy("/", "rh-fed", rabbithole.Policy{Pattern: "^amq\\.topic$", ApplyTo: "exchanges",
		Definition: rabbithole.PolicyDefinition{"federation-upstream": "rh-up"}}); err != nil {
		t.Fatal(err)
	}
	// amq.* exchanges are not federated, as in RabbitMQ: no link.
	if links, err := rmq.ListFederationLinks(); err != nil || len(links) != 0 {
		t.Errorf("ListFederationLinks: %v %v", links, err)
	}
	if _, err := rmq.DeclareExchange("/", "rh.x", rabbithole.ExchangeSettings{Type: "topic", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := rmq.PutPolicy("/", "rh-fed", rabbithole.Policy{Pattern: "^rh\\.x$", ApplyTo: "exchanges",
		Definition: rabbithole.PolicyDefinition{"federation-upstream": "rh-up"}}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the link in ListFederationLinksIn", func() bool {
		links, err := rmq.ListFederationLinksIn("/")
		return err == nil && len(links) == 1 && links[0]["status"] == "running" && links[0]["upstream_exchange"] == "amq.topic"
	})
	res, err = rmq.DeleteFederationUpstream("/", "rh-up")
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("DeleteFederationUpstream: %v %v", res, err)
	}
	if ups, err := rmq.ListFederationUpstreams(); err != nil || len(ups) != 0 {
		t.Errorf("after delete: %+v %v", ups, err)
	}
	wait.For(t, 10*time.Second, "the link gone with its upstream", func() bool {
		links, err := rmq.ListFederationLinks()
		return err == nil && len(links) == 0
	})
}

// Federation parameters and policy keys are refused with RabbitMQ 3.10.8's reasons (taken from it).
func TestFederationValidation(t *testing.T) {
	e := startEnv(t, nil)
	for _, x := range []struct {
		path   string
		body   string
		reason string
	}{
		{"/api/parameters/federation-upstream/%2F/bad", `{"value":{"uri":5}}`, "Validation failed\n\nuri should be list, actually was 5\n"},
		{"/api/parameters/federation-upstream/%2F/bad", `{"value":{}}`, "Validation failed\n\nKey \"uri\" not found in bad\n"},
		{"/api/parameters/federation-upstream/%2F/bad", `{"value":{"uri":"amqp://x","ack-mode":"bogus"}}`,
			"Validation failed\n\nack-mode should be one of [&lt;&lt;\"no-ack\"&gt;&gt;,&lt;&lt;\"on-publish\"&gt;&gt;,&lt;&lt;\"on-confirm\"&gt;&gt;], actually was &lt;&lt;\"bogus\"&gt;&gt;\n"},
		{"/api/parameters/federation-upstream/%2F/bad", `{"value":{"uri":"amqp://x","max-hops":"x"}}`, "Validation failed\n\nmax-hops should be a number, actually was &lt;&lt;\"x\"&gt;&gt;\n"},
		{"/api/parameters/federation-upstream-set/%2F/s3", `{"value":[{"upstream":"x","uri":"amqp://y","prefetch-count":"a"}]}`,
			"Validation failed\n\nUnrecognised terms [{&lt;&lt;\"uri\"&gt;&gt;,&lt;&lt;\"amqp://y\"&gt;&gt;}] in s3\nprefetch-count should be a number, actually was &lt;&lt;\"a\"&gt;&gt;\n"},
		{"/api/parameters/federation/%2F/local-nodename", `{"value":"abc"}`, "Validation failed\n\nname not recognised: &lt;&lt;\"local-nodename\"&gt;&gt;\n"},
		{"/api/policies/%2F/fp", `{"pattern":"^zz$","definition":{"federation-upstream":5}}`, "Validation failed\n\n5 is not a valid federation upstream name\n"},
		{"/api/policies/%2F/fp", `{"pattern":"^zz$","definition":{"federation-upstream-set":5}}`, "Validation failed\n\n5 is not a valid federation upstream set name\n"},
		{"/api/policies/%2F/fp", `{"pattern":"^zz$","definition":{"federation-upstream-pattern":5}}`, "Validation failed\n\n5 is not a valid federation upstream pattern name\n"},
		{"/api/policies/%2F/fp", `{"pattern":"^zz$","definition":{"federation-upstream-set":"a","federation-upstream":"b"}}`,
			"Validation failed\n\ncannot specify federation-upstream, federation-upstream-set or federation-upstream-pattern together\n"},
	} {
		r := e.do("PUT", x.path, guest, x.body)
		if m := r.obj(t); r.status != 400 || m["error"] != "bad_request" || m["reason"] != x.reason {
			t.Errorf("%s %s: %d %s, want 400 reason %q", x.path, x.body, r.status, r.body, x.reason)
		}
	}
	e.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream/%2F/ok", `{"value":{"uri":["amqp://x","amqps://y"],"prefetch-count":-1,"reconnect-delay":1.5,"resource-cleanup-mode":"never"}}`)
	e.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream-set/%2F/all", `{"value":[]}`)
	e.must(http.StatusCreated, "PUT", "/api/policies/%2F/fp", `{"pattern":"^zz$","definition":{"federation-upstream-pattern":"^o"}}`)
	if l := e.must(http.StatusOK, "GET", "/api/federation-links", nil).list(t); len(l) != 0 {
		t.Errorf("links without a federated exchange: %v", l)
	}

	// As RabbitMQ 3.10.8 answers: monitoring is needed, and an unknown vhost is 404.
	e.must(http.StatusNotFound, "GET", "/api/federation-links/nonexist", nil)
	e.must(http.StatusCreated, "PUT", "/api/users/mg", map[string]any{"password": "mg", "tags": "management"})
	e.must(http.StatusCreated, "PUT", "/api/permissions/%2F/mg", map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	for _, path := range []string{"/api/federation-links", "/api/federation-links/%2F", "/api/federation-links/nonexist"} {
		if r := e.do("GET", path, "mg:mg", nil); r.status != 401 || r.obj(t)["reason"] != "Not monitor user" {
			t.Errorf("management user %s: %d %s", path, r.status, r.body)
		}
	}
}

// A link's life: an unreachable upstream shows as an error and is retried; a changed upstream
// restarts the link; the link comes back after a broker restart (parameters and policies are
// definitions); it stops when its vhost is deleted.
func TestFederationLinkLifecycle(t *testing.T) {
	a := startEnv(t, nil)
	a.must(http.StatusCreated, "PUT", "/api/vhosts/fv", nil)
	a.must(http.StatusNoContent, "PUT", "/api/permissions/fv/guest", map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	a.must(http.StatusCreated, "PUT", "/api/exchanges/fv/lx", map[string]any{"type": "fanout", "durable": true})
	store := storage.NewMemStore()
	b := startEnv(t, store)
	b.must(http.StatusCreated, "PUT", "/api/vhosts/fv", nil)
	b.must(http.StatusNoContent, "PUT", "/api/permissions/fv/guest", map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	b.must(http.StatusCreated, "PUT", "/api/exchanges/fv/lx", map[string]any{"type": "fanout", "durable": true})
	b.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream/fv/up", map[string]any{"value": map[string]any{"uri": "amqp://guest:guest@127.0.0.1:1/fv", "reconnect-delay": 0.1}})
	b.must(http.StatusCreated, "PUT", "/api/policies/fv/fed", map[string]any{"pattern": "^lx$", "definition": map[string]any{"federation-upstream": "up"}})
	wait.For(t, 10*time.Second, "the link in error", func() bool {
		ls := b.fedLinks("fv")
		return len(ls) == 1 && ls[0]["status"] == "error" && ls[0]["error"] != "" && ls[0]["local_connection"] == nil
	})
	upURI := strings.TrimSuffix(a.amqpURL, "/") + "/fv"
	b.must(http.StatusNoContent, "PUT", "/api/parameters/federation-upstream/fv/up", map[string]any{"value": map[string]any{"uri": upURI}})
	running := func() bool {
		ls := b.fedLinks("fv")
		return len(ls) == 1 && ls[0]["status"] == "running" && ls[0]["uri"] == strings.Replace(upURI, "guest:guest@", "", 1)
	}
	wait.For(t, 10*time.Second, "the link running on the new URI", running)
	upQ := "federation: lx -> " + b.srv.ClusterName()
	wait.For(t, 10*time.Second, "the upstream queue", func() bool {
		return a.do("GET", "/api/queues/fv/"+url.PathEscape(upQ), guest, nil).status == http.StatusOK
	})

	b.stop()
	b = startEnv(t, store.Reopen())
	wait.For(t, 10*time.Second, "the link running after a restart", running)

	b.must(http.StatusNoContent, "DELETE", "/api/vhosts/fv", nil)
	wait.For(t, 10*time.Second, "the link gone with its vhost", func() bool { return len(b.fedLinks("")) == 0 })
}

// Two Warrens federating the same exchange from each other: a message goes one hop (max-hops 1) and
// never comes back to where it was published.
func TestFederationCycleTwoWarrens(t *testing.T) {
	a, b := startEnv(t, nil), startEnv(t, nil)
	consumers := map[*env]<-chan amqp.Delivery{}
	for _, x := range []struct {
		e, other *env
		name     string
	}{{a, b, "warren-a"}, {b, a, "warren-b"}} {
		e := x.e
		e.must(http.StatusNoContent, "PUT", "/api/cluster-name", map[string]any{"name": x.name})
		e.must(http.StatusCreated, "PUT", "/api/exchanges/%2F/ring", map[string]any{"type": "fanout", "durable": true})
		e.must(http.StatusCreated, "PUT", "/api/queues/%2F/ring.q", map[string]any{"durable": true})
		e.must(http.StatusCreated, "POST", "/api/bindings/%2F/e/ring/q/ring.q", map[string]any{"routing_key": ""})
		e.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream/%2F/other", map[string]any{"value": map[string]any{"uri": x.other.amqpURL, "reconnect-delay": 0.1}})
		e.must(http.StatusCreated, "PUT", "/api/policies/%2F/ring", map[string]any{"pattern": "^ring$", "definition": map[string]any{"federation-upstream-set": "all"}})
	}
	for _, e := range []*env{a, b} {
		wait.For(t, 10*time.Second, "both links running", func() bool {
			ls := e.fedLinks("/")
			return len(ls) == 1 && ls[0]["status"] == "running"
		})
		consumers[e] = consume(t, e, "ring.q")
	}
	// Each broker's upstream exchange on the other is bound before anything is published (" A"
	// or " B": a link that started before the other broker had the exchange started again).
	bound := func(e *env, x string) bool {
		return e.hasBinding("ring", x+" A", "") || e.hasBinding("ring", x+" B", "")
	}
	wait.For(t, 10*time.Second, "the bindings", func() bool {
		return bound(a, "federation: ring -> warren-b") && bound(b, "federation: ring -> warren-a")
	})
	expect := func(e *env, bodies ...string) {
		t.Helper()
		for _, want := range bodies {
			if m := next(t, consumers[e]); string(m.Body) != want {
				t.Fatalf("got %q, want %q (a message came back round the ring?)", m.Body, want)
			}
		}
	}
	publishOn(t, a, "ring", "", "m1")
	expect(a, "m1")
	expect(b, "m1")
	publishOn(t, b, "ring", "", "m2") // after m1 on B: a copy of m1 coming back to A would come first
	expect(b, "m2")
	expect(a, "m2")
	publishOn(t, a, "ring", "", "m3") // the same for m2 going back to B
	expect(a, "m3")
	expect(b, "m3")
}

// An upstream URI without a host is this broker, reached through its direct connection (as
// RabbitMQ's "amqp://" is its own node): a vhost federates an exchange of another vhost.
func TestFederationDirectURI(t *testing.T) {
	e := startEnv(t, nil)
	e.must(http.StatusCreated, "PUT", "/api/vhosts/src", nil)
	e.must(http.StatusCreated, "PUT", "/api/exchanges/src/sx", map[string]any{"type": "direct", "durable": true})
	e.must(http.StatusCreated, "PUT", "/api/exchanges/%2F/dx", map[string]any{"type": "direct", "durable": true})
	e.must(http.StatusCreated, "PUT", "/api/queues/%2F/dq", map[string]any{"durable": true})
	e.must(http.StatusCreated, "POST", "/api/bindings/%2F/e/dx/q/dq", map[string]any{"routing_key": "k"})
	// The direct connection reaches every vhost: an upstream may name only vhosts its user can use
	// (as a shovel's URIs; without the check a policymaker could federate any vhost into its own).
	e.must(http.StatusCreated, "PUT", "/api/vhosts/other", nil)
	e.must(http.StatusNoContent, "DELETE", "/api/permissions/other/guest", nil)
	r := e.do("PUT", "/api/parameters/federation-upstream/%2F/self", guest, `{"value":{"uri":["amqp:///src","amqp:///other"]}}`)
	if m := r.obj(t); r.status != http.StatusBadRequest || m["reason"] != "Validation failed\n\nuser \"guest\" may not connect to vhost \"other\"\n" {
		t.Errorf("direct URI to a vhost without permission: %d %s", r.status, r.body)
	}
	e.must(http.StatusCreated, "PUT", "/api/parameters/federation-upstream/%2F/self", map[string]any{"value": map[string]any{"uri": "amqp:///src", "exchange": "sx"}})
	e.must(http.StatusCreated, "PUT", "/api/policies/%2F/fed", map[string]any{"pattern": "^dx$", "definition": map[string]any{"federation-upstream": "self"}})
	wait.For(t, 10*time.Second, "the link running", func() bool {
		ls := e.fedLinks("/")
		return len(ls) == 1 && ls[0]["status"] == "running" && ls[0]["uri"] == "amqp:///src"
	})
	upQ := "federation: sx -> " + e.srv.ClusterName() + ":/:dx"
	wait.For(t, 10*time.Second, "the upstream queue in vhost src", func() bool {
		return e.do("GET", "/api/queues/src/"+url.PathEscape(upQ), guest, nil).status == http.StatusOK
	})
	d := consume(t, e, "dq")
	r = e.must(http.StatusOK, "POST", "/api/exchanges/src/sx/publish",
		map[string]any{"properties": map[string]any{}, "routing_key": "k", "payload": "local", "payload_encoding": "string"})
	if !strings.Contains(string(r.body), `"routed":true`) {
		t.Fatalf("publish: %s", r.body)
	}
	if m := next(t, d); string(m.Body) != "local" || m.Exchange != "dx" {
		t.Fatalf("got %q from %q", m.Body, m.Exchange)
	}
}
