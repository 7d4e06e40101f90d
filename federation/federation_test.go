package federation_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/federation"
	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeLocal is a downstream broker: bindings set by the test, publishes recorded.
type fakeLocal struct {
	mu        sync.Mutex
	bindings  []federation.Binding
	published []published
	demand    bool
}

type published struct {
	vhost, exchange, key string
	props                amqp.Properties
	body                 string
}

func (f *fakeLocal) ClusterName() string { return "downstream" }

func (f *fakeLocal) Publish(vhost, exchange, key string, props amqp.Properties, body []byte) (func() error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, published{vhost, exchange, key, props, string(body)})
	return func() error { return nil }, nil
}

func (f *fakeLocal) ExchangeBindings(string, string) ([]federation.Binding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]federation.Binding(nil), f.bindings...), nil
}

func (f *fakeLocal) QueueDemand(string, string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.demand, nil
}

func (f *fakeLocal) DialDirect() (net.Conn, error) { return nil, errors.New("no direct connection") }

func (f *fakeLocal) got() []published {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]published(nil), f.published...)
}

func (f *fakeLocal) set(fn func(*fakeLocal)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// manager runs a manager whose desired links are *specs (read under mu).
type manager struct {
	*federation.Manager
	mu    sync.Mutex
	specs []federation.LinkSpec
}

func startManager(t *testing.T, local federation.Local, specs ...federation.LinkSpec) *manager {
	m := &manager{specs: specs}
	m.Manager = federation.NewManager(federation.Config{Local: local, Logger: testbroker.Logger(t), Desired: func() []federation.LinkSpec {
		m.mu.Lock()
		defer m.mu.Unlock()
		return append([]federation.LinkSpec(nil), m.specs...)
	}})
	t.Cleanup(m.Close)
	return m
}

func (m *manager) setSpecs(specs ...federation.LinkSpec) {
	m.mu.Lock()
	m.specs = specs
	m.mu.Unlock()
	m.Kick()
}

func upstream(url string) federation.Upstream {
	return federation.ResolveUpstream("up1", map[string]any{"uri": url}, nil)
}

func hasBinding(t *testing.T, b *testbroker.Broker, source, dest, key string) bool {
	t.Helper()
	bs, err := b.Srv.VhostBindings("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range bs {
		if x.Source == source && x.Destination == dest && x.RoutingKey == key {
			return true
		}
	}
	return false
}

func hasQueue(b *testbroker.Broker, name string) bool {
	_, err := b.Srv.Queue("/", name)
	return err == nil
}

// An exchange link declares RabbitMQ's upstream queue, binds it with the downstream exchange's
// binding keys, keeps the bindings in step, forwards what the upstream exchange routes to it with
// an x-received-from hop, and deletes the upstream queue once it is no longer wanted.
func TestExchangeLink(t *testing.T) {
	up := testbroker.Start(t)
	if _, err := up.Srv.DeclareExchange("/", "x", server.ExchangeSpec{Type: "topic", Durable: true}); err != nil {
		t.Fatal(err)
	}
	local := &fakeLocal{bindings: []federation.Binding{{Key: "a.*"}, {Key: "a.*"}}}
	spec := federation.LinkSpec{Type: federation.TypeExchange, Vhost: "/", Name: "x", Upstream: upstream(up.URL)}
	m := startManager(t, local, spec)
	qname := "federation: x -> downstream"
	xA, xB := qname+" A", qname+" B"
	wait.For(t, 5*time.Second, "the upstream binding", func() bool { return hasBinding(t, up, "x", xA, "a.*") })
	if !hasBinding(t, up, xA, qname, "") {
		t.Error("the upstream exchange is not bound to the upstream queue")
	}
	wait.For(t, 5*time.Second, "the link running", func() bool {
		st := m.Status("/")
		return len(st) == 1 && st[0].Status == federation.StatusRunning
	})
	st := m.Status("/")[0]
	if st.Type != "exchange" || st.Name != "x" || st.UpstreamName != "x" || st.Upstream != "up1" || strings.Contains(st.URI, "guest") {
		t.Errorf("status %+v", st)
	}
	q, err := up.Srv.Queue("/", qname)
	if err != nil || !q.Durable || q.Arguments["x-internal-purpose"] != "federation" {
		t.Fatalf("upstream queue %+v, %v", q, err)
	}

	if _, err := up.Srv.Publish("/", "x", "a.b", amqp.Properties{Headers: amqp.Table{"h": "v"}, UserID: "guest"}, []byte("one"), "guest"); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Srv.Publish("/", "x", "b.b", amqp.Properties{}, []byte("unbound"), ""); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the message downstream", func() bool { return len(local.got()) == 1 })
	p := local.got()[0]
	if p.exchange != "x" || p.key != "a.b" || p.body != "one" || p.props.Headers["h"] != "v" || p.props.UserID != "" {
		t.Errorf("published %+v", p)
	}
	hops, _ := p.props.Headers["x-received-from"].([]any)
	if len(hops) != 1 {
		t.Fatalf("x-received-from %#v", p.props.Headers["x-received-from"])
	}
	hop := hops[0].(amqp.Table)
	if hop["exchange"] != "x" || hop["vhost"] != "/" || hop["cluster-name"] != up.Srv.ClusterName() || hop["redelivered"] != false || strings.Contains(hop["uri"].(string), "guest") {
		t.Errorf("hop %#v", hop)
	}

	// Bindings follow the downstream exchange's.
	local.set(func(f *fakeLocal) { f.bindings = []federation.Binding{{Key: "b.#"}} })
	m.BindingsChanged("/", "x")
	wait.For(t, 5*time.Second, "the new binding", func() bool {
		return hasBinding(t, up, "x", xA, "b.#") && !hasBinding(t, up, "x", xA, "a.*")
	})

	// A message that went max-hops (1) hops already is dropped, and acked upstream.
	if _, err := up.Srv.Publish("/", "x", "b.c", amqp.Properties{Headers: amqp.Table{"x-received-from": []any{amqp.Table{"cluster-name": "elsewhere"}}}}, []byte("far"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Srv.Publish("/", "x", "b.c", amqp.Properties{}, []byte("two"), ""); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the second message", func() bool { return len(local.got()) == 2 })
	if p := local.got()[1]; p.body != "two" {
		t.Errorf("second message %+v", p)
	}
	wait.For(t, 5*time.Second, "the upstream queue drained", func() bool {
		q, err := up.Srv.Queue("/", qname)
		return err == nil && q.Ready == 0 && q.Unacked == 0
	})

	// Stopped (as at a shutdown) the link leaves its queue; bindings dropped downstream meanwhile
	// are gone upstream once it starts again, with the other intermediate exchange.
	m.Close()
	if !hasQueue(up, qname) || !hasBinding(t, up, "x", xA, "b.#") {
		t.Fatal("a shutdown removed the upstream queue or its bindings")
	}
	local.set(func(f *fakeLocal) { f.bindings = []federation.Binding{{Key: "c.#"}} })
	m = startManager(t, local, spec)
	wait.For(t, 5*time.Second, "fresh bindings upstream", func() bool {
		return hasBinding(t, up, "x", xB, "c.#") && hasBinding(t, up, xB, qname, "")
	})
	// The link deletes the previous intermediate exchange after it has bound the new one.
	wait.For(t, 5*time.Second, "the previous intermediate exchange and its stale binding gone", func() bool {
		_, err := up.Srv.Exchange("/", xA)
		return err != nil && !hasBinding(t, up, "x", xA, "b.#")
	})

	// No longer wanted: the link stops and deletes its upstream queue and exchange.
	m.setSpecs()
	wait.For(t, 5*time.Second, "the upstream queue deleted", func() bool { return !hasQueue(up, qname) })
	if _, err := up.Srv.Exchange("/", xB); err == nil {
		t.Error("the upstream exchange outlived the link")
	}
	if st := m.Status(""); len(st) != 0 {
		t.Errorf("links left: %+v", st)
	}
}

// A link whose upstream cannot be reached reports the error and retries after reconnect-delay;
// once the upstream is there it runs.
func TestLinkRetries(t *testing.T) {
	up := testbroker.Start(t)
	local := &fakeLocal{}
	u := federation.ResolveUpstream("up1", map[string]any{"uri": []any{"amqp://guest:guest@127.0.0.1:1/", up.URL}, "reconnect-delay": 0.05}, nil)
	m := startManager(t, local, federation.LinkSpec{Type: federation.TypeExchange, Vhost: "/", Name: "amq.topic", Upstream: u})
	var sawError bool
	wait.For(t, 5*time.Second, "the link running on the second URI", func() bool {
		st := m.Status("")
		if len(st) == 1 && st[0].Status == federation.StatusError && st[0].Error != "" {
			sawError = true
		}
		return sawError && len(st) == 1 && st[0].Status == federation.StatusRunning && st[0].URI == federation.RedactURI(up.URL)
	})
}

// A queue link fetches from the upstream queue only while the downstream queue has demand.
func TestQueueLink(t *testing.T) {
	up := testbroker.Start(t)
	if _, err := up.Srv.DeclareQueue("/", "q", server.QueueSpec{Durable: true}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"1", "2", "3"} {
		if _, err := up.Srv.Publish("/", "", "q", amqp.Properties{}, []byte(b), ""); err != nil {
			t.Fatal(err)
		}
	}
	local := &fakeLocal{}
	m := startManager(t, local, federation.LinkSpec{Type: federation.TypeQueue, Vhost: "/", Name: "q", Upstream: upstream(up.URL)})
	wait.For(t, 5*time.Second, "the link running", func() bool {
		st := m.Status("")
		return len(st) == 1 && st[0].Status == federation.StatusRunning && st[0].ConsumerTag == "federation-link-up1"
	})
	if q, err := up.Srv.Queue("/", "q"); err != nil || q.Ready != 3 || len(local.got()) != 0 {
		t.Fatalf("without demand: upstream %+v %v, downstream got %d", q, err, len(local.got()))
	}
	local.set(func(f *fakeLocal) { f.demand = true })
	wait.For(t, 5*time.Second, "the messages downstream", func() bool { return len(local.got()) == 3 })
	for i, p := range local.got() {
		if p.exchange != "" || p.key != "q" || p.body != string(rune('1'+i)) {
			t.Errorf("message %d: %+v", i, p)
		}
		// As RabbitMQ 3.10.8 sends them (seen with its own queue federation).
		hops, _ := p.props.Headers["x-received-from"].([]any)
		if len(hops) != 1 || p.props.Headers["x-original-exchange"] != "" || p.props.Headers["x-original-routing-key"] != "q" {
			t.Errorf("message %d headers %#v", i, p.props.Headers)
			continue
		}
		if h := hops[0].(amqp.Table); h["queue"] != "q" || h["visit-count"] != int64(1) || h["redelivered"] != false || h["uri"] != federation.RedactURI(up.URL) {
			t.Errorf("message %d hop %#v", i, h)
		}
	}
	wait.For(t, 5*time.Second, "the upstream queue drained", func() bool {
		q, err := up.Srv.Queue("/", "q")
		return err == nil && q.Ready == 0 && q.Unacked == 0
	})

	// Demand gone: the message the link fetched goes back upstream and its consumer is cancelled.
	local.set(func(f *fakeLocal) { f.demand = false })
	if _, err := up.Srv.Publish("/", "", "q", amqp.Properties{}, []byte("4"), ""); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the message back upstream, no consumer", func() bool {
		q, err := up.Srv.Queue("/", "q")
		return err == nil && q.Ready == 1 && q.Unacked == 0 && q.Consumers == 0
	})
	if n := len(local.got()); n != 3 {
		t.Fatalf("%d messages downstream without demand, want 3", n)
	}
	local.set(func(f *fakeLocal) { f.demand = true })
	wait.For(t, 5*time.Second, "the fourth message downstream", func() bool { return len(local.got()) == 4 })
}

// The x-federation-upstream exchange a RabbitMQ downstream declares on its upstream: its
// arguments are checked as RabbitMQ 3.10.8 checks them, and it routes as a fanout only the
// messages that made fewer than x-max-hops hops and did not come through the downstream already.
func TestFederationUpstreamExchange(t *testing.T) {
	b := testbroker.Start(t)
	conn, err := amqp091.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		args amqp091.Table
		want string
	}{
		{nil, "Exception (406) Reason: \"PRECONDITION_FAILED - Argument x-max-hops missing\""},
		{amqp091.Table{"x-max-hops": int32(1)}, "Exception (406) Reason: \"PRECONDITION_FAILED - Argument x-max-hops must be of type long\""},
		{amqp091.Table{"x-max-hops": int64(1)}, "Exception (406) Reason: \"PRECONDITION_FAILED - Argument x-downstream-name missing\""},
		{amqp091.Table{"x-max-hops": int64(1), "x-downstream-name": "d"}, "Exception (406) Reason: \"PRECONDITION_FAILED - Argument x-downstream-vhost missing\""},
	} {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		err = ch.ExchangeDeclare("fu", "x-federation-upstream", true, true, true, false, tc.args)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %s", tc.args, err, tc.want)
		}
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	args := amqp091.Table{"x-max-hops": int64(2), "x-downstream-name": "down", "x-downstream-vhost": "/"}
	if err := ch.ExchangeDeclare("fu", "x-federation-upstream", true, true, true, false, args); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("fuq", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("fuq", "", "fu", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeBind("fu", "k", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	hop := func(cluster, vhost string) amqp091.Table {
		return amqp091.Table{"cluster-name": cluster, "vhost": vhost}
	}
	for _, m := range []struct {
		body string
		hops []any
	}{
		{"none", nil},
		{"one", []any{hop("other", "/")}},
		{"two", []any{hop("other", "/"), hop("third", "/")}}, // max-hops reached
		{"looped", []any{hop("down", "/")}},                  // came through the downstream
		{"other-vhost", []any{hop("down", "v2")}},
	} {
		var h amqp091.Table
		if m.hops != nil {
			h = amqp091.Table{"x-received-from": m.hops}
		}
		if err := ch.Publish("amq.direct", "k", false, false, amqp091.Publishing{Headers: h, Body: []byte(m.body)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	wait.For(t, 5*time.Second, "three messages", func() bool {
		for {
			d, ok, err := ch.Get("fuq", true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return len(got) >= 3
			}
			got = append(got, string(d.Body))
		}
	})
	if strings.Join(got, ",") != "none,one,other-vhost" {
		t.Errorf("routed %v, want none, one, other-vhost", got)
	}
}

// Upstream parameters are validated with RabbitMQ 3.10.8's texts (captured from it).
func TestValidateUpstream(t *testing.T) {
	for _, tc := range []struct {
		value any
		want  string
	}{
		{map[string]any{"uri": "amqp://x"}, ""},
		{map[string]any{"uri": []any{"amqp://x", "amqps://y"}, "prefetch-count": -1, "max-hops": 0, "reconnect-delay": 1.5, "resource-cleanup-mode": "never"}, ""},
		{map[string]any{"uri": "amqp://x", "ack-mode": "bogus"}, `ack-mode should be one of [&lt;&lt;"no-ack"&gt;&gt;,&lt;&lt;"on-publish"&gt;&gt;,&lt;&lt;"on-confirm"&gt;&gt;], actually was &lt;&lt;"bogus"&gt;&gt;`},
		{map[string]any{"uri": 5}, "uri should be list, actually was 5"},
		{map[string]any{"uri": []any{"amqp://x", 5}}, "uri should be list, actually was 5"},
		{map[string]any{}, `Key "uri" not found in bad`},
		{map[string]any{"uri": "amqp://x", "foo": 1}, `Unrecognised terms [{&lt;&lt;"foo"&gt;&gt;,1}] in bad`},
		{map[string]any{"uri": "amqp://x", "prefetch-count": "a"}, `prefetch-count should be a number, actually was &lt;&lt;"a"&gt;&gt;`},
		{map[string]any{"uri": "amqp://x", "trust-user-id": 1}, "trust-user-id should be boolean, actually was 1"},
		{map[string]any{"uri": "amqp://x", "exchange": 1}, "exchange should be binary, actually was 1"},
		{map[string]any{"uri": "amqp://x", "queue-type": "classic"}, `Unrecognised terms [{&lt;&lt;"queue-type"&gt;&gt;,&lt;&lt;"classic"&gt;&gt;}] in bad`},
		{map[string]any{"uri": "http://x"}, `"http://x" not a valid URI: {{unexpected_uri_scheme,"http"},"http://x"}`},
		{map[string]any{"uri": "amqp://h:99999"}, `"amqp://h:99999" not a valid URI: {{port_out_of_range,99999},"amqp://h:99999"}`},
		{map[string]any{"uri": ""}, `"" not a valid URI: {{unable_to_parse_uri,no_scheme},""}`},
	} {
		err := federation.ValidateUpstream("bad", tc.value)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.value, got, tc.want)
		}
	}
	for _, tc := range []struct {
		value any
		want  string
	}{
		{[]any{map[string]any{"upstream": "a"}, map[string]any{"upstream": "x", "exchange": "y"}}, ""},
		{[]any{}, ""},
		{[]any{map[string]any{"exchange": "y"}}, `Key "upstream" not found in s`},
		{[]any{map[string]any{"upstream": "x", "foo": 1}}, `Unrecognised terms [{&lt;&lt;"foo"&gt;&gt;,1}] in s`},
		{[]any{map[string]any{"upstream": 5}}, "upstream should be binary, actually was 5"},
		{[]any{map[string]any{"upstream": "x", "uri": "amqp://y", "prefetch-count": "a"}}, "Unrecognised terms [{&lt;&lt;\"uri\"&gt;&gt;,&lt;&lt;\"amqp://y\"&gt;&gt;}] in s\nprefetch-count should be a number, actually was &lt;&lt;\"a\"&gt;&gt;"},
	} {
		err := federation.ValidateUpstreamSet("s", tc.value)
		got := ""
		var ve *federation.ValidationError
		if err != nil && !errors.As(err, &ve) {
			t.Errorf("%v: %T", tc.value, err)
		}
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.value, got, tc.want)
		}
	}
}

// An upstream-set member's keys override the upstream's; defaults fill the rest.
func TestResolveUpstream(t *testing.T) {
	u := federation.ResolveUpstream("u", map[string]any{"uri": "amqp://a", "prefetch-count": 10, "exchange": "e1"},
		map[string]any{"upstream": "u", "exchange": "e2", "ack-mode": "no-ack", "max-hops": 3})
	if u.PrefetchCount != 10 || u.Exchange != "e2" || u.AckMode != "no-ack" || u.MaxHops != 3 ||
		u.ReconnectDelay != federation.DefaultReconnectDelay || len(u.URIs) != 1 {
		t.Errorf("%+v", u)
	}
}

// trust-user-id keeps the user-id property; ack-mode no-ack consumes with auto-ack; an upstream-set
// member's exchange key names the upstream exchange.
func TestExchangeLinkModes(t *testing.T) {
	up := testbroker.Start(t)
	if _, err := up.Srv.DeclareExchange("/", "upx", server.ExchangeSpec{Type: "direct", Durable: true}); err != nil {
		t.Fatal(err)
	}
	local := &fakeLocal{bindings: []federation.Binding{{Key: "k"}}}
	u := federation.ResolveUpstream("up1", map[string]any{"uri": up.URL, "trust-user-id": true, "ack-mode": "no-ack"},
		map[string]any{"upstream": "up1", "exchange": "upx"})
	m := startManager(t, local, federation.LinkSpec{Type: federation.TypeExchange, Vhost: "/", Name: "down", Upstream: u})
	qname := "federation: upx -> downstream:down"
	wait.For(t, 5*time.Second, "the upstream binding", func() bool { return hasBinding(t, up, "upx", qname+" A", "k") })
	if st := m.Status("/"); len(st) != 1 || st[0].UpstreamName != "upx" {
		t.Fatalf("status %+v", st)
	}
	if _, err := up.Srv.Publish("/", "upx", "k", amqp.Properties{UserID: "guest"}, []byte("mine"), "guest"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the message downstream", func() bool { return len(local.got()) == 1 })
	if p := local.got()[0]; p.props.UserID != "guest" || p.exchange != "down" {
		t.Errorf("published %+v", p)
	}
	q, err := up.Srv.Queue("/", qname)
	if err != nil || q.Ready != 0 || q.Unacked != 0 {
		t.Errorf("upstream queue with no-ack: %+v %v", q, err)
	}
}
