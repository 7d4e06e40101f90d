package management

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// jsonKinds maps every field path of v to its JSON kind ("a.b": "number"; arrays as "a[]").
func jsonKinds(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if prefix != "" {
			out[prefix] = "object"
		}
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			jsonKinds(p, e, out)
		}
	case []any:
		out[prefix] = "array"
		for _, e := range x {
			jsonKinds(prefix+"[]", e, out)
		}
	case string:
		out[prefix] = "string"
	case json.Number, float64:
		out[prefix] = "number"
	case bool:
		out[prefix] = "bool"
	case nil:
		out[prefix] = "null"
	}
}

// streamErlangOnly are RabbitMQ's fields about a stream connection's Erlang process, which
// Warren has no equivalent of.
var streamErlangOnly = []string{"garbage_collection", "reductions", "reductions_details"}

// sameShape reports the fields of want (RabbitMQ's) that got lacks or has with another kind,
// and the fields got has that want does not, ignoring streamErlangOnly.
func sameShape(t *testing.T, what string, want, got any) {
	t.Helper()
	w, g := map[string]string{}, map[string]string{}
	jsonKinds("", want, w)
	jsonKinds("", got, g)
	skip := func(p string) bool {
		for _, e := range streamErlangOnly {
			if p == e || strings.HasPrefix(p, e+".") {
				return true
			}
		}
		return false
	}
	var diffs []string
	for p, k := range w {
		if !skip(p) && g[p] != k {
			diffs = append(diffs, fmt.Sprintf("%s: RabbitMQ %s, Warren %q", p, k, g[p]))
		}
	}
	for p, k := range g {
		if _, ok := w[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: Warren %s, not in RabbitMQ's", p, k))
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Errorf("%s: %s", what, d)
	}
}

// /api/stream/connections, publishers and consumers (and their vhost and per-connection
// variants) answer with RabbitMQ 3.10.8's fields (testdata/samples/stream-api.json, captured from
// rabbitmq_stream_management with the same Go client: a producer "pref" that published one
// message and a consumer "cref" that consumed it), field by field.
func TestStreamConnectionsAPI(t *testing.T) {
	raw, err := os.ReadFile("testdata/samples/stream-api.json")
	if err != nil {
		t.Fatal(err)
	}
	var rabbit map[string]any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&rabbit); err != nil {
		t.Fatal(err)
	}

	e := startEnv(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeStream(ln) }()
	var senv *stream.Environment
	t.Cleanup(func() {
		if senv != nil {
			senv.Close()
		}
		e.stop()
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("ServeStream: %v", err)
		}
	})
	senv, err = stream.NewEnvironment(stream.NewEnvironmentOptions().SetUri("rabbitmq-stream://guest:guest@" + ln.Addr().String() + "/").
		SetMaxProducersPerClient(1).SetMaxConsumersPerClient(1).SetReadBuffer(0).SetWriteBuffer(0))
	if err != nil {
		t.Fatal(err)
	}
	const name = "capture-stream"
	if err := senv.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	p, err := senv.NewProducer(name, stream.NewProducerOptions().SetProducerName("pref"))
	if err != nil {
		t.Fatal(err)
	}
	confirms := p.NotifyPublishConfirmation()
	if err := p.Send(amqp.NewMessage([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-confirms:
	case <-time.After(10 * time.Second):
		t.Fatal("no confirm")
	}
	got := make(chan struct{}, 1)
	c, err := senv.NewConsumer(name, func(stream.ConsumerContext, *amqp.Message) {
		select {
		case got <- struct{}{}:
		default:
		}
	}, stream.NewConsumerOptions().SetOffset(stream.OffsetSpecification{}.First()).SetConsumerName("cref"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer p.Close()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing consumed")
	}

	// The locator, the producer's and the consumer's connections, all in vhost /.
	var conns []any
	wait.For(t, 5*time.Second, "three stream connections", func() bool {
		conns = e.must(200, "GET", "/api/stream/connections", nil).list(t)
		return len(conns) == 3
	})
	if n := len(e.must(200, "GET", "/api/stream/connections/%2F", nil).list(t)); n != 3 {
		t.Errorf("/api/stream/connections/%%2F: %d connections", n)
	}
	if n := len(e.must(200, "GET", "/api/connections", nil).list(t)); n != 0 {
		t.Errorf("/api/connections lists %d stream connections; Warren lists them under /api/stream only", n)
	}
	e.must(404, "GET", "/api/stream/connections/nosuchvhost", nil)
	byName := map[string]map[string]any{}
	for _, ci := range conns {
		m := ci.(map[string]any)
		byName[m["client_properties"].(map[string]any)["connection_name"].(string)] = m
	}
	prod, cons := byName["go-stream-producer"], byName["go-stream-consumer"]
	if prod == nil || cons == nil || byName["go-stream-locator"] == nil {
		t.Fatalf("connections %v", conns)
	}
	want := rabbit["connection"].(map[string]any)
	sameShape(t, "stream connection", want, prod)
	for _, k := range []string{"auth_mechanism", "channel_max", "channels", "client_properties", "frame_max", "host", "peer_host",
		"protocol", "send_pend", "ssl", "ssl_protocol", "ssl_cipher", "ssl_hash", "ssl_key_exchange", "peer_cert_subject",
		"peer_cert_issuer", "peer_cert_validity", "state", "timeout", "user", "user_provided_name", "user_who_performed_action", "vhost"} {
		if !reflect.DeepEqual(prod[k], want[k]) {
			t.Errorf("connection %s: %v, RabbitMQ %v", k, prod[k], want[k])
		}
	}
	connName := prod["name"].(string)
	if wantName := fmt.Sprintf("%s:%s -> %s:%s", prod["peer_host"], prod["peer_port"], prod["host"], prod["port"]); connName != wantName {
		t.Errorf("connection name %q, want %q", connName, wantName)
	}
	if prod["recv_oct"] == json.Number("0") || prod["send_oct"] == json.Number("0") {
		t.Errorf("byte counts: recv_oct %v send_oct %v", prod["recv_oct"], prod["send_oct"])
	}

	path := "/api/stream/connections/%2F/" + url.PathEscape(connName)
	single := e.must(200, "GET", path, nil).obj(t)
	wantSingle := rabbit["connection_single"].(map[string]any)
	sameShape(t, "one stream connection", wantSingle, single)
	for _, k := range []string{"ssl_protocol", "peer_cert_subject", "name", "client_properties"} {
		if k != "name" && !reflect.DeepEqual(single[k], wantSingle[k]) || k == "name" && single[k] != connName {
			t.Errorf("one connection %s: %v, RabbitMQ %v", k, single[k], wantSingle[k])
		}
	}
	e.must(404, "GET", "/api/stream/connections/%2F/nosuch", nil)
	e.must(404, "GET", "/api/stream/connections/%2F/nosuch/publishers", nil)

	checkPub := func(what string, list []any) {
		t.Helper()
		if len(list) != 1 {
			t.Fatalf("%s: %v", what, list)
		}
		pub, wp := list[0].(map[string]any), rabbit["publisher"].(map[string]any)
		sameShape(t, what, wp, pub)
		for _, k := range []string{"confirmed", "errored", "published", "publisher_id", "queue", "reference"} {
			if !reflect.DeepEqual(pub[k], wp[k]) {
				t.Errorf("%s %s: %v, RabbitMQ %v", what, k, pub[k], wp[k])
			}
		}
		cd := pub["connection_details"].(map[string]any)
		if cd["name"] != connName || cd["user"] != "guest" || cd["peer_host"] != "127.0.0.1" || cd["node"] != e.srv.NodeName() {
			t.Errorf("%s connection_details %v", what, cd)
		}
	}
	checkPub("/api/stream/publishers", e.must(200, "GET", "/api/stream/publishers", nil).list(t))
	checkPub("/api/stream/publishers/%2F", e.must(200, "GET", "/api/stream/publishers/%2F", nil).list(t))
	checkPub(path+"/publishers", e.must(200, "GET", path+"/publishers", nil).list(t))
	if n := len(e.must(200, "GET", path+"/consumers", nil).list(t)); n != 0 {
		t.Errorf("the producer's connection has %d consumers", n)
	}

	consName := cons["name"].(string)
	cpath := "/api/stream/connections/%2F/" + url.PathEscape(consName)
	checkCons := func(what string, list []any) {
		t.Helper()
		if len(list) != 1 {
			t.Fatalf("%s: %v", what, list)
		}
		sub, wc := list[0].(map[string]any), rabbit["consumer"].(map[string]any)
		sameShape(t, what, wc, sub)
		for _, k := range []string{"consumed", "offset", "offset_lag", "properties", "queue", "subscription_id"} {
			if !reflect.DeepEqual(sub[k], wc[k]) {
				t.Errorf("%s %s: %v, RabbitMQ %v", what, k, sub[k], wc[k])
			}
		}
		// RabbitMQ showed 10 (the client's initial credit): it had handed the one chunk to the
		// client and got its credit back. Warren counts the same way.
		if cr := sub["credits"]; cr != json.Number("10") && cr != json.Number("9") {
			t.Errorf("%s credits %v", what, cr)
		}
		if cd := sub["connection_details"].(map[string]any); cd["name"] != consName {
			t.Errorf("%s connection_details %v", what, cd)
		}
	}
	checkCons("/api/stream/consumers", e.must(200, "GET", "/api/stream/consumers", nil).list(t))
	checkCons("/api/stream/consumers/%2F", e.must(200, "GET", "/api/stream/consumers/%2F", nil).list(t))
	checkCons(cpath+"/consumers", e.must(200, "GET", cpath+"/consumers", nil).list(t))
	if n := len(e.must(200, "GET", cpath+"/publishers", nil).list(t)); n != 0 {
		t.Errorf("the consumer's connection has %d publishers", n)
	}
}
