package management

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/warrenmq/warren/internal/wait"
)

// fixture builds the objects RabbitMQ's samples were captured with (see the samples' README): vhost
// research, user research-user (monitoring), exchanges rx.topic and rx.fanout (with an
// alternate-exchange), an e2e binding, queues rq.classic (with arguments) and rq.consumed (one
// consumer, prefetch 10, 10 unacked), and two named connections, one publishing in confirm mode.
type fixture struct {
	pubConn, consConn *amqp.Connection
	pubName           string // the publisher's connection name as the API shows it
}

func buildFixture(t *testing.T, e *env) *fixture {
	t.Helper()
	e.must(201, "PUT", "/api/vhosts/research", map[string]any{"description": "research vhost", "tags": "test,research"})
	e.must(201, "PUT", "/api/users/research-user", map[string]any{"password": "s3cret", "tags": "monitoring"})
	e.must(201, "PUT", "/api/permissions/research/research-user", map[string]any{"configure": `^rq\.`, "write": ".*", "read": ".*"})
	e.must(201, "PUT", "/api/exchanges/research/rx.topic", map[string]any{"type": "topic", "durable": true})
	e.must(201, "PUT", "/api/exchanges/research/rx.fanout", map[string]any{"type": "fanout", "durable": true, "arguments": map[string]any{"alternate-exchange": "amq.fanout"}})
	e.must(201, "POST", "/api/bindings/research/e/rx.topic/e/rx.fanout", map[string]any{"routing_key": "orders.#"})
	e.must(201, "PUT", "/api/policies/research/ttl-policy", map[string]any{"pattern": `^rq\.classic$`, "apply-to": "queues", "priority": 1, "definition": map[string]any{"max-length-bytes": 10485760}})
	e.must(201, "PUT", "/api/queues/research/rq.classic", map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 100000, "x-message-ttl": 3600000}})
	e.must(201, "PUT", "/api/queues/research/rq.consumed", map[string]any{"durable": true})
	e.must(201, "POST", "/api/bindings/research/e/rx.topic/q/rq.classic", map[string]any{"routing_key": "orders.*"})
	e.must(201, "POST", "/api/bindings/research/e/amq.headers/q/rq.classic", map[string]any{"routing_key": "", "arguments": map[string]any{"x-match": "any", "k": "v"}})

	f := &fixture{}
	var err error
	f.pubConn, err = amqp.DialConfig("amqp://guest:guest@"+e.addr+"/research", amqp.Config{Properties: amqp.Table{"connection_name": "research-publisher"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.pubConn.Close() })
	f.consConn, err = amqp.DialConfig("amqp://guest:guest@"+e.addr+"/research", amqp.Config{Properties: amqp.Table{"connection_name": "research-consumer"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.consConn.Close() })

	pub, err := f.pubConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pub.NotifyPublish(make(chan amqp.Confirmation, 64))
	for i := 0; i < 30; i++ {
		key := "rq.consumed"
		ex := ""
		if i%2 == 1 {
			ex, key = "rx.topic", "orders.created"
		}
		err := pub.Publish(ex, key, false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: 2, MessageId: fmt.Sprint(i),
			Headers: amqp.Table{"x-trace": "abc"}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i)),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 30; i++ {
		if c := <-confirms; !c.Ack {
			t.Fatalf("publish %d nacked", c.DeliveryTag)
		}
	}

	cons, err := f.consConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cons.Consume("rq.consumed", "research-ctag", false, false, false, false, amqp.Table{"x-priority": int32(5)})
	if err != nil {
		t.Fatal(err)
	}
	// 15 messages, prefetch 10: ack the first 5, and the other 10 stay unacknowledged.
	var got []amqp.Delivery
	for i := 0; i < 10; i++ {
		got = append(got, <-deliveries)
	}
	for _, d := range got[:5] {
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		<-deliveries
	}
	wait.For(t, waitTimeout, "10 unacked deliveries", func() bool {
		q := e.must(200, "GET", "/api/queues/research/rq.consumed", nil).obj(t)
		return q["messages_unacknowledged"] == json.Number("10") && q["message_stats"].(map[string]any)["ack"] == json.Number("5")
	})
	for _, c := range e.must(200, "GET", "/api/connections", nil).list(t) {
		c := c.(map[string]any)
		if c["user_provided_name"] == "research-publisher" {
			f.pubName = c["name"].(string)
		}
	}
	if f.pubName == "" {
		t.Fatal("the publisher's connection is not listed")
	}
	// Statistics appear once the sampler has seen the traffic.
	wait.For(t, waitTimeout, "vhost statistics", func() bool {
		v := e.must(200, "GET", "/api/vhosts/research", nil).obj(t)
		ms, _ := v["message_stats"].(map[string]any)
		return ms != nil && ms["publish"] == json.Number("30")
	})
	return f
}

// Every endpoint's response has the fields RabbitMQ 3.10.8's has, with the same JSON types, except
// the figures only an Erlang VM has (see erlangOnly).
func TestFieldsMatchRabbitMQ(t *testing.T) {
	e := startEnv(t, nil)
	fields := loadSampleFields(t)
	f := buildFixture(t, e)
	node := e.srv.NodeName()
	pubCh := f.pubName + " (1)"
	esc := url.PathEscape

	cases := []struct {
		sample, path string
		skip         func(string) bool
	}{
		// Warren has no clustering listener (RabbitMQ's has socket_opts []), no log files (it logs to
		// the logger it is given) and no policies.
		{"overview.json", "/api/overview", skipPrefixes("listeners[].socket_opts[]")},
		{"cluster-name.json", "/api/cluster-name", nil},
		{"nodes.json", "/api/nodes", skipPrefixes("[].log_files")},
		{"node.json", "/api/nodes/" + esc(node), skipPrefixes("log_files")},
		{"node-memory.json", "/api/nodes/" + esc(node) + "?memory=true", skipPrefixes("log_files")},
		{"whoami.json", "/api/whoami", nil},
		{"definitions.json", "/api/definitions", skipPrefixes("parameters[]", "topic_permissions[]")},
		{"definitions-vhost.json", "/api/definitions/research", skipPrefixes("parameters[]")},
		{"connections.json", "/api/connections", nil},
		{"connections-vhost.json", "/api/vhosts/research/connections", nil},
		{"connection.json", "/api/connections/" + esc(f.pubName), nil},
		{"connection-channels.json", "/api/connections/" + esc(f.pubName) + "/channels", nil},
		{"channels.json", "/api/channels", nil},
		{"channels-vhost.json", "/api/vhosts/research/channels", nil},
		{"channel.json", "/api/channels/" + esc(pubCh), nil},
		{"consumers.json", "/api/consumers", nil},
		{"consumers-vhost.json", "/api/consumers/research", nil},
		{"exchanges.json", "/api/exchanges", nil},
		{"exchanges-vhost.json", "/api/exchanges/research", nil},
		{"exchange.json", "/api/exchanges/research/rx.topic", nil},
		{"exchange-default.json", "/api/exchanges/research/amq.default", nil},
		{"exchange-bindings-source.json", "/api/exchanges/research/rx.topic/bindings/source", nil},
		{"exchange-bindings-destination.json", "/api/exchanges/research/rx.fanout/bindings/destination", nil},
		{"queues.json", "/api/queues", nil},
		{"queues-vhost.json", "/api/queues/research", nil},
		{"queue-classic.json", "/api/queues/research/rq.classic", nil},
		{"policies.json", "/api/policies", nil},
		{"policies-vhost.json", "/api/policies/research", nil},
		{"policy.json", "/api/policies/research/ttl-policy", nil},
		{"queue-consumed.json", "/api/queues/research/rq.consumed", nil},
		{"queue-bindings.json", "/api/queues/research/rq.classic/bindings", nil},
		{"queues-paged.json", "/api/queues?page=1&page_size=2&name=rq&use_regex=false&pagination=true", nil},
		{"queues-columns.json", "/api/queues?columns=name,vhost,messages,messages_ready,messages_unacknowledged,consumers,message_stats.publish_details.rate&sort=messages&sort_reverse=true", nil},
		{"bindings.json", "/api/bindings", nil},
		{"bindings-vhost.json", "/api/bindings/research", nil},
		{"bindings-e-q.json", "/api/bindings/research/e/rx.topic/q/rq.classic", nil},
		{"bindings-e-q-props.json", "/api/bindings/research/e/rx.topic/q/rq.classic/orders.%252A", nil},
		{"bindings-e-e.json", "/api/bindings/research/e/rx.topic/e/rx.fanout", nil},
		{"vhosts.json", "/api/vhosts", nil},
		{"vhost.json", "/api/vhosts/research", nil},
		{"vhost-permissions.json", "/api/vhosts/research/permissions", nil},
		{"users.json", "/api/users", nil},
		{"user.json", "/api/users/research-user", nil},
		{"users-without-permissions.json", "/api/users/without-permissions", nil},
		{"user-permissions.json", "/api/users/research-user/permissions", nil},
		{"permissions.json", "/api/permissions", nil},
		{"permission.json", "/api/permissions/research/research-user", nil},
		{"aliveness-test.json", "/api/aliveness-test/research", nil},
		{"aliveness-test-default.json", "/api/aliveness-test/%2F", nil},
		{"health-alarms.json", "/api/health/checks/alarms", nil},
		{"health-local-alarms.json", "/api/health/checks/local-alarms", nil},
		{"health-virtual-hosts.json", "/api/health/checks/virtual-hosts", nil},
	}
	for _, c := range cases {
		t.Run(c.sample, func(t *testing.T) {
			r := e.must(200, "GET", c.path, nil)
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			skip := erlangOnly
			if c.skip != nil {
				skip = func(p string) bool { return erlangOnly(p) || c.skip(p) }
			}
			checkFields(t, fields, c.sample, r.json(t), skip)
		})
	}

	// Requests that change things: answers compared field by field, and exactly where the text
	// can be the same as RabbitMQ's.
	t.Run("exchange-publish.json", func(t *testing.T) {
		r := e.must(200, "POST", "/api/exchanges/research/rx.topic/publish", map[string]any{
			"properties":  map[string]any{"delivery_mode": 2, "headers": map[string]any{"h": "1"}, "content_type": "text/plain"},
			"routing_key": "orders.api", "payload": "hello from api", "payload_encoding": "string"})
		checkFields(t, fields, "exchange-publish.json", r.json(t), nil)
		sameJSON(t, r.body, "exchange-publish.json")
		r = e.must(200, "POST", "/api/exchanges/research/rx.topic/publish", map[string]any{
			"properties": map[string]any{}, "routing_key": "nobody.here", "payload": "x", "payload_encoding": "string"})
		sameJSON(t, r.body, "exchange-publish-unroutable.json")
	})
	t.Run("policy.json", func(t *testing.T) {
		sameJSON(t, e.must(200, "GET", "/api/policies/research/ttl-policy", nil).body, "policy.json")
	})
	t.Run("queue-get.json", func(t *testing.T) {
		r := e.must(200, "POST", "/api/queues/research/rq.classic/get", map[string]any{"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000})
		checkFields(t, fields, "queue-get.json", r.json(t), erlangOnly)
	})
	t.Run("errors", func(t *testing.T) {
		e.must(201, "PUT", "/api/queues/research/rq.api", map[string]any{"auto_delete": false, "durable": true, "arguments": map[string]any{"x-queue-type": "classic"}})
		for _, x := range []struct {
			sample, method, path string
			status               int
			body                 any
			user                 string
		}{
			{"put-queue-mismatch.json", "PUT", "/api/queues/research/rq.api", 400, map[string]any{"auto_delete": false, "durable": false, "arguments": map[string]any{}}, guest},
			{"put-exchange-badtype.json", "PUT", "/api/exchanges/research/rx.bad", 400, map[string]any{"type": "nonexistent", "durable": true}, guest},
			{"put-vhost-bad-json.json", "PUT", "/api/vhosts/research2", 400, "{bad json", guest},
			{"queue-get-bad.json", "POST", "/api/queues/research/rq.classic/get", 400, map[string]any{"count": 1}, guest},
			{"error-404-queue.json", "GET", "/api/queues/research/does-not-exist", 404, nil, guest},
			{"error-404-vhost.json", "GET", "/api/queues/nope", 404, nil, guest},
			{"error-401.json", "GET", "/api/overview", 401, nil, "guest:wrong"},
			{"error-403-monitoring-user-put.json", "PUT", "/api/vhosts/x", 401, nil, "research-user:s3cret"},
		} {
			r := e.do(x.method, x.path, x.user, x.body)
			if r.status != x.status {
				t.Errorf("%s: status %d, want %d: %s", x.sample, r.status, x.status, r.body)
				continue
			}
			sameJSON(t, r.body, x.sample)
		}
	})
}

func skipPrefixes(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, x := range prefixes {
			if strings.HasPrefix(p, x) {
				return true
			}
		}
		return false
	}
}

// sameJSON checks that got equals a sample's body as JSON.
func sameJSON(t *testing.T, got []byte, sample string) {
	t.Helper()
	want, err := os.ReadFile("testdata/samples/" + sample)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: not JSON: %s", sample, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	if string(gj) != string(wj) {
		t.Errorf("%s:\n got  %s\n want %s", sample, gj, wj)
	}
}
