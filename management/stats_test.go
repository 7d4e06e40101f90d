package management

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// Definitions exported from one broker and imported into a fresh one export the same (password
// hashes included, so the users log in with the same passwords).
func TestDefinitionsRoundTrip(t *testing.T) {
	a := startEnv(t, nil)
	a.must(201, "PUT", "/api/vhosts/v%20one", map[string]any{"description": "first", "tags": []string{"x"}})
	a.must(201, "PUT", "/api/users/bob", map[string]any{"password": "pw", "tags": "monitoring"})
	a.must(201, "PUT", "/api/permissions/v%20one/bob", map[string]any{"configure": "^b", "write": ".*", "read": ""})
	a.must(201, "PUT", "/api/exchanges/v%20one/ex.t", map[string]any{"type": "topic", "durable": true, "arguments": map[string]any{"alternate-exchange": "amq.fanout"}})
	a.must(201, "PUT", "/api/exchanges/v%20one/ex.h", map[string]any{"type": "headers", "durable": true, "internal": true})
	a.must(201, "PUT", "/api/queues/v%20one/q.1", map[string]any{"durable": true, "arguments": map[string]any{"x-max-length": 10, "x-overflow": "reject-publish"}})
	a.must(201, "PUT", "/api/queues/%2F/q.2", map[string]any{"durable": false, "auto_delete": true})
	a.must(201, "PUT", "/api/policies/v%20one/p.1", map[string]any{"pattern": `^q\.`, "apply-to": "queues", "priority": 3,
		"definition": map[string]any{"max-length": 5, "dead-letter-exchange": "ex.t"}})
	a.must(201, "PUT", "/api/policies/%2F/p.2", map[string]any{"pattern": ".*", "definition": map[string]any{"expires": 60000}})
	a.must(201, "POST", "/api/bindings/v%20one/e/ex.t/q/q.1", map[string]any{"routing_key": "a.*", "arguments": map[string]any{"k": "v"}})
	a.must(201, "POST", "/api/bindings/v%20one/e/ex.t/e/ex.h", map[string]any{"routing_key": "#"})

	exported := a.must(200, "GET", "/api/definitions", nil)
	defs := exported.obj(t)
	if len(defs["users"].([]any)) != 2 || len(defs["queues"].([]any)) != 2 || len(defs["exchanges"].([]any)) != 2 || len(defs["bindings"].([]any)) != 2 ||
		len(defs["policies"].([]any)) != 2 {
		t.Fatalf("export: %s", exported.body)
	}
	vhostDefs := a.must(200, "GET", "/api/definitions/v%20one", nil).obj(t)
	if len(vhostDefs["queues"].([]any)) != 1 || vhostDefs["queues"].([]any)[0].(map[string]any)["vhost"] != nil ||
		len(vhostDefs["policies"].([]any)) != 1 || vhostDefs["policies"].([]any)[0].(map[string]any)["vhost"] != "v one" {
		t.Errorf("vhost export: %v", vhostDefs)
	}

	b := startEnv(t, nil)
	b.must(204, "POST", "/api/definitions", exported.body)
	again := b.must(200, "GET", "/api/definitions", nil).obj(t)
	for _, k := range []string{"users", "vhosts", "permissions", "queues", "exchanges", "bindings", "policies"} {
		if !reflect.DeepEqual(sortedJSON(t, defs[k]), sortedJSON(t, again[k])) {
			t.Errorf("%s differ after the round trip:\n %v\n %v", k, defs[k], again[k])
		}
	}
	if _, err := b.srv.Authenticate("bob", "pw", nil); err != nil {
		t.Errorf("bob's password after import: %v", err)
	}
	// Importing again changes nothing; an inequivalent queue is kept as it is (and logged).
	b.must(204, "POST", "/api/definitions", exported.body)
	b.must(204, "POST", "/api/definitions/v%20one", `{"queues":[{"name":"q.1","durable":false,"auto_delete":false,"arguments":{}}]}`)
	if q := b.must(200, "GET", "/api/queues/v%20one/q.1", nil).obj(t); q["durable"] != true {
		t.Errorf("inequivalent import replaced the queue: %v", q)
	}
	// Errors.
	for _, x := range []struct {
		path, body string
		reason     any
	}{
		{"/api/definitions", "{bad", "failed_to_parse_json"},
		{"/api/definitions", `{"queues":[{"name":"q","vhost":"nope","durable":true,"auto_delete":false,"arguments":{}}]}`, []any{"no_such_vhost", "nope"}},
		{"/api/definitions/nope", `{}`, "vhost_not_found"},
	} {
		r := b.do("POST", x.path, guest, x.body)
		got, _ := json.Marshal(r.obj(t)["reason"])
		want, _ := json.Marshal(x.reason)
		if r.status != 400 || string(got) != string(want) {
			t.Errorf("POST %s %s: %d %s, want 400 %s", x.path, x.body, r.status, got, want)
		}
	}
}

// sortedJSON orders a JSON array by each element's encoding, for comparing sets.
func sortedJSON(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, x := range v.([]any) {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slicesSort(out)
	return out
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Message statistics count AMQP and HTTP traffic in every object that reports them, and rates
// appear once the sampler has seen the traffic.
func TestMessageStats(t *testing.T) {
	e := startEnv(t, nil)
	conn := e.dial(nil)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 16))
	if _, err := ch.QueueDeclare("st", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 11; i++ {
		if err := ch.Publish("", "st", false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Publish("amq.direct", "nowhere", true, false, amqp.Publishing{Body: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("amq.direct", "nowhere", false, false, amqp.Publishing{Body: []byte("d")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 13; i++ {
		<-confirms
	}
	if err := ch.Qos(5, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("st", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var first []amqp.Delivery
	for i := 0; i < 5; i++ {
		first = append(first, <-deliveries)
	}
	if err := first[4].Nack(false, true); err != nil { // requeued: delivered again at once
		t.Fatal(err)
	}
	redelivered := <-deliveries
	if !redelivered.Redelivered {
		t.Fatalf("expected the requeued message")
	}
	for _, d := range append(first[:4], redelivered) {
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	// Then 6..10 (the prefetch of 5 left unacknowledged): 11 deliveries in all, one ready message.
	for i := 0; i < 5; i++ {
		<-deliveries
	}
	e.must(200, "POST", "/api/queues/%2F/st/get", map[string]any{"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})

	num := func(m map[string]any, path string) int64 {
		v := lookup(m, strings.Split(path, "."))
		n, _ := v.(json.Number).Int64()
		return n
	}
	var ov, q, vh, chn, x map[string]any
	wait.For(t, waitTimeout, "statistics", func() bool {
		ov = e.must(200, "GET", "/api/overview", nil).obj(t)
		q = e.must(200, "GET", "/api/queues/%2F/st", nil).obj(t)
		vh = e.must(200, "GET", "/api/vhosts/%2F", nil).obj(t)
		x = e.must(200, "GET", "/api/exchanges/%2F/amq.direct", nil).obj(t)
		chs := e.must(200, "GET", "/api/channels", nil).list(t)
		if len(chs) != 1 {
			return false
		}
		chn = chs[0].(map[string]any)
		return num(ov, "message_stats.publish") == 13 && num(q, "message_stats.deliver") == 11 &&
			num(ov, "queue_totals.messages_unacknowledged") == 5
	})
	for _, c := range []struct {
		m    map[string]any
		path string
		want int64
	}{
		{ov, "message_stats.publish", 13}, {ov, "message_stats.confirm", 13}, {ov, "message_stats.return_unroutable", 1},
		{ov, "message_stats.drop_unroutable", 1}, {ov, "message_stats.deliver", 11}, {ov, "message_stats.redeliver", 1},
		{ov, "message_stats.ack", 5 + 1}, {ov, "message_stats.get", 1}, {ov, "message_stats.deliver_get", 12},
		{ov, "object_totals.connections", 1}, {ov, "object_totals.channels", 1}, {ov, "object_totals.consumers", 1}, {ov, "object_totals.queues", 1},
		{ov, "churn_rates.connection_created", 1}, {ov, "churn_rates.queue_created", 1},
		{ov, "queue_totals.messages_unacknowledged", 5},
		{q, "message_stats.publish", 11}, {q, "message_stats.deliver", 11}, {q, "message_stats.get", 1}, {q, "message_stats.ack", 6},
		{q, "message_stats.redeliver", 1}, {q, "messages", 5}, {q, "messages_unacknowledged", 5}, {q, "messages_ready", 0},
		{q, "message_bytes_unacknowledged", 5},
		{vh, "message_stats.publish", 13}, {vh, "message_stats.ack", 6},
		{chn, "message_stats.publish", 13}, {chn, "message_stats.confirm", 13}, {chn, "message_stats.deliver", 11},
		{chn, "message_stats.ack", 5}, {chn, "messages_unacknowledged", 5},
		{x, "message_stats.publish_in", 2}, {x, "message_stats.publish_out", 0},
	} {
		if got := num(c.m, c.path); got != c.want {
			t.Errorf("%s = %d, want %d", c.path, got, c.want)
		}
	}
}

// Rates are per second over the last sampling interval: they show while traffic flows.
func TestRates(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/rt", nil)
	conn := e.dial(nil)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("rt", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	rateOf := func(m map[string]any, path string) float64 {
		f, _ := lookup(m, strings.Split(path, ".")).(json.Number).Float64()
		return f
	}
	wait.For(t, waitTimeout, "non-zero rates while messages flow", func() bool {
		e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{}, "routing_key": "rt", "payload": "x", "payload_encoding": "string"})
		<-deliveries
		ov := e.must(200, "GET", "/api/overview", nil).obj(t)
		q := e.must(200, "GET", "/api/queues/%2F/rt", nil).obj(t)
		vh := e.must(200, "GET", "/api/vhosts/%2F", nil).obj(t)
		return rateOf(ov, "message_stats.publish_details.rate") > 0 && rateOf(q, "message_stats.deliver_no_ack_details.rate") > 0 &&
			rateOf(vh, "send_oct_details.rate") > 0 && rateOf(ov, "message_stats.deliver_get_details.rate") > 0
	})
}

// /metrics has rabbitmq_prometheus's names with the broker's figures; /metrics/per-object has a
// series per queue labelled vhost and queue.
func TestPrometheus(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/p.one", nil)
	e.must(201, "PUT", "/api/vhosts/v2", nil)
	e.must(201, "PUT", "/api/queues/v2/p.two", nil)
	for i := 0; i < 3; i++ {
		e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{}, "routing_key": "p.one", "payload": "abc", "payload_encoding": "string"})
	}
	e.must(200, "POST", "/api/exchanges/v2/amq.default/publish", map[string]any{"properties": map[string]any{}, "routing_key": "p.two", "payload": "x", "payload_encoding": "string"})
	e.dial(nil)
	// The client has connection.open-ok slightly before the broker lists the connection.
	wait.For(t, waitTimeout, "the connection to be listed", func() bool { return len(e.must(200, "GET", "/api/connections", nil).list(t)) == 1 })

	scrape := func(path string) map[string]*dto.MetricFamily {
		r := e.do("GET", path, "", nil)
		if r.status != 200 {
			t.Fatalf("%s: %d", path, r.status)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return fams
	}
	value := func(m *dto.Metric) float64 {
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
		return -1
	}
	fams := scrape("/metrics")
	for name, want := range map[string]float64{
		"rabbitmq_identity_info": 1, "rabbitmq_build_info": 1, "rabbitmq_connections": 1, "rabbitmq_channels": 0,
		"rabbitmq_queues": 2, "rabbitmq_consumers": 0, "rabbitmq_queue_messages_ready": 4, "rabbitmq_queue_messages_unacked": 0,
		"rabbitmq_queue_messages": 4, "rabbitmq_queue_messages_bytes": 10, "rabbitmq_global_messages_received_total": 4,
		"rabbitmq_global_messages_routed_total": 4, "rabbitmq_global_messages_confirmed_total": 0,
		"rabbitmq_global_messages_delivered_total": 0, "rabbitmq_global_messages_acknowledged_total": 0,
		"rabbitmq_global_messages_unroutable_dropped_total": 0, "rabbitmq_global_publishers": 0, "rabbitmq_global_consumers": 0,
		"rabbitmq_queues_created_total": 2, "rabbitmq_connections_opened_total": 1,
	} {
		f, ok := fams[name]
		if !ok || len(f.Metric) != 1 {
			t.Errorf("%s: missing or not one series: %v", name, f)
			continue
		}
		if got := value(f.Metric[0]); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	id := fams["rabbitmq_identity_info"].Metric[0]
	labels := map[string]string{}
	for _, l := range id.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["rabbitmq_node"] != e.srv.NodeName() || labels["rabbitmq_cluster"] == "" {
		t.Errorf("identity labels %v", labels)
	}
	if f := fams["rabbitmq_global_messages_received_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("received_total is a %v", f.GetType())
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}

	per := scrape("/metrics/per-object")
	got := map[string]float64{}
	for _, m := range per["rabbitmq_queue_messages_ready"].GetMetric() {
		l := map[string]string{}
		for _, x := range m.Label {
			l[x.GetName()] = x.GetValue()
		}
		got[l["vhost"]+"|"+l["queue"]] = value(m)
	}
	if !reflect.DeepEqual(got, map[string]float64{"/|p.one": 3, "v2|p.two": 1}) {
		t.Errorf("per-object messages_ready: %v", got)
	}
}

// The disk alarm shows in the health checks (503 with RabbitMQ's body), the node and Prometheus.
func TestAlarms(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 40)
	e := startEnv(t, nil, func(o *server.Options) {
		o.DiskFree = func() (uint64, error) { return uint64(free.Load()), nil }
		o.DiskCheckInterval = 5 * time.Millisecond
	})
	e.must(200, "GET", "/api/health/checks/alarms", nil)
	free.Store(1)
	var body map[string]any
	wait.For(t, waitTimeout, "the disk alarm", func() bool {
		r := e.do("GET", "/api/health/checks/alarms", guest, nil)
		body = r.obj(t)
		return r.status == 503
	})
	want := `{"alarms":[{"node":"` + e.srv.NodeName() + `","resource":"disk space"}],"reason":"There are alarms in effect in the cluster","status":"failed"}`
	if got, _ := json.Marshal(body); string(got) != want {
		t.Errorf("alarms body %s, want %s", got, want)
	}
	if r := e.do("GET", "/api/health/checks/local-alarms", guest, nil); r.status != 503 {
		t.Errorf("local alarms: %d", r.status)
	}
	n := e.must(200, "GET", "/api/nodes/"+url.PathEscape(e.srv.NodeName()), nil).obj(t)
	if n["disk_free_alarm"] != true || n["disk_free"] != json.Number("1") || n["disk_free_limit"] != json.Number(fmt.Sprint(server.DefaultDiskFreeLimit)) {
		t.Errorf("node: alarm %v free %v limit %v", n["disk_free_alarm"], n["disk_free"], n["disk_free_limit"])
	}
	if m := e.do("GET", "/metrics", "", nil); !strings.Contains(string(m.body), "\nrabbitmq_alarms_free_disk_space_watermark 1\n") {
		t.Errorf("no raised disk alarm in /metrics")
	}
	free.Store(1 << 40)
	wait.For(t, waitTimeout, "the alarm to clear", func() bool { return e.do("GET", "/api/health/checks/alarms", guest, nil).status == 200 })
}

// A persistent message published over HTTP is on disk when the API answers; a queue past its
// memory window reports its paged-out messages and gives them back in order.
func TestPersistentPublishAndPaging(t *testing.T) {
	e := startEnv(t, nil, func(o *server.Options) { o.QueueWindow = 2 })
	e.must(201, "PUT", "/api/queues/%2F/dur", map[string]any{"durable": true})
	for i := 0; i < 5; i++ {
		e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{
			"properties": map[string]any{"delivery_mode": 2}, "routing_key": "dur", "payload": fmt.Sprint("m", i), "payload_encoding": "string"})
	}
	q := e.must(200, "GET", "/api/queues/%2F/dur", nil).obj(t)
	if q["messages"] != json.Number("5") || q["messages_paged_out"] != json.Number("3") || q["messages_ram"] != json.Number("2") {
		t.Errorf("paged queue: messages %v paged_out %v ram %v", q["messages"], q["messages_paged_out"], q["messages_ram"])
	}
	e.stop()
	e2 := startEnv(t, e.store.Reopen(), func(o *server.Options) { o.QueueWindow = 2 })
	msgs := e2.must(200, "POST", "/api/queues/%2F/dur/get", map[string]any{"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"}).list(t)
	if len(msgs) != 5 {
		t.Fatalf("after restart: %d messages", len(msgs))
	}
	for i, m := range msgs {
		if p := m.(map[string]any)["payload"]; p != fmt.Sprint("m", i) {
			t.Errorf("message %d is %v", i, p)
		}
	}
}
