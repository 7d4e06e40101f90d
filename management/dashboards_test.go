package management

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
)

// The queries of RabbitMQ's stock Grafana dashboards (testdata/grafana-dashboards.txt: every panel
// of RabbitMQ-Overview, grafana.com 10991, and RabbitMQ-Quorum-Queues-Raft, 11340, with the
// metrics its expression uses) must each return a series from Warren's /metrics.

// dashboardPanel is one panel: its title, the metrics its expression uses, whether it applies
// rate() to them, and the labels it reads from them.
type dashboardPanel struct {
	dashboard, title string
	metrics          []string
	rate             bool
	labels           []string
}

var metricName = regexp.MustCompile(`rabbitmq_[a-z_]+`)

// dashboardLabels are the label names in the expressions that look like metric names.
var dashboardLabels = map[string]bool{"rabbitmq_node": true, "rabbitmq_cluster": true, "rabbitmq_version": true}

func loadDashboards(t *testing.T) []dashboardPanel {
	t.Helper()
	f, err := os.Open("testdata/grafana-dashboards.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dashboardPanel
	dashboard := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			dashboard, _, _ = strings.Cut(strings.TrimPrefix(line, "## "), " ")
		case dashboard == "" || strings.HasPrefix(line, "#") || !strings.Contains(line, "|"):
		default:
			parts := strings.Split(line, "|")
			p := dashboardPanel{dashboard: dashboard, title: strings.TrimSpace(parts[0])}
			expr := strings.Join(parts[1:], "|")
			for _, m := range metricName.FindAllString(expr, -1) {
				if !dashboardLabels[m] {
					p.metrics = append(p.metrics, m)
				}
			}
			p.rate = strings.Contains(expr, "rate")
			if strings.Contains(expr, "table columns use labels") {
				_, cols, _ := strings.Cut(expr, "table columns use labels")
				for _, l := range strings.Split(cols, ",") {
					if l = strings.TrimSpace(l); l != "instance" && l != "rabbitmq_node" { // from Prometheus and the join
						p.labels = append(p.labels, l)
					}
				}
			}
			out = append(out, p)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rateOfGauge are the metrics a panel rates although RabbitMQ exports them as gauges (the
// Overview's "Messages unconfirmed to publishers / s" rates rabbitmq_channel_messages_unconfirmed,
// a gauge in rabbitmq_prometheus too): they must exist, as gauges.
var rateOfGauge = map[string]bool{"rabbitmq_channel_messages_unconfirmed": true, "rabbitmq_raft_log_commit_index": true}

// raftMoved are the Raft metrics a confirmed publish to a quorum queue moves.
var raftMoved = map[string]bool{"rabbitmq_raft_term_total": true, "rabbitmq_raft_log_commit_index": true,
	"rabbitmq_raft_log_last_written_index": true, "rabbitmq_raft_entry_commit_latency_seconds": true}

// dashboardTraffic exercises every counter the Overview dashboard rates: publishes with and
// without confirms, routed, returned and dropped; consumes with automatic and manual
// acknowledgement, a requeue (redelivery), gets with and without ack and an empty get; queue
// declares, creations and deletions; channels and connections opened and closed.
func dashboardTraffic(t *testing.T, e *env) {
	conn := e.dial(nil)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"dash.manual", "dash.auto", "dash.get", "dash.gone"} {
		for range 2 { // the second declare counts as declared, not created
			if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A quorum queue: a Raft group, for the Raft dashboard (published to with a confirm below).
	if _, err := ch.QueueDeclare("dash.quorum", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete("dash.gone", false, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 16))
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	publish := func(key string, mandatory bool) {
		if err := ch.Publish("", key, mandatory, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"dash.manual", "dash.manual", "dash.auto", "dash.get", "dash.get", "dash.quorum"} {
		publish(q, false)
	}
	publish("dash.nowhere", true)  // returned
	publish("dash.nowhere", false) // dropped
	for range 8 {
		if c := <-confirms; !c.Ack {
			t.Fatalf("publish %d nacked", c.DeliveryTag)
		}
	}
	<-returns

	// Gets: with ack, without, and on the empty queue.
	if _, ok, err := ch.Get("dash.get", true); err != nil || !ok {
		t.Fatalf("get (auto ack): %v %v", ok, err)
	}
	d, ok, err := ch.Get("dash.get", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ch.Get("dash.get", false); err != nil || ok {
		t.Fatalf("get on an empty queue: %v %v", ok, err)
	}

	// Consumes: automatic acknowledgement, and manual with a requeue then acks.
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	auto, err := cch.Consume("dash.auto", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-auto
	manual, err := cch.Consume("dash.manual", "dash-manual", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := <-manual
	if err := first.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	for acked := 0; acked < 2; {
		d := <-manual
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
		acked++
	}

	// A channel and a connection that close.
	extra, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	extra.Close()
	other := e.dial(nil)
	other.Close()
	wait.For(t, waitTimeout, "the traffic to be counted", func() bool {
		fams := scrapeMetrics(t, e)
		for _, name := range []string{"rabbitmq_channel_messages_acked_total", "rabbitmq_connections_closed_total", "rabbitmq_channels_closed_total"} {
			f := fams[name]
			if f == nil || sumValues(f) < 1 {
				return false
			}
		}
		return sumValues(fams["rabbitmq_channel_messages_acked_total"]) == 3
	})
}

func scrapeMetrics(t *testing.T, e *env) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapePath(t, e, "/metrics")
}

func scrapePath(t *testing.T, e *env, path string) map[string]*dto.MetricFamily {
	t.Helper()
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

func sumValues(f *dto.MetricFamily) float64 {
	var s float64
	for _, m := range f.Metric {
		switch {
		case m.Gauge != nil:
			s += m.Gauge.GetValue()
		case m.Counter != nil:
			s += m.Counter.GetValue()
		case m.Untyped != nil:
			s += m.Untyped.GetValue()
		}
	}
	return s
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestGrafanaDashboardQueries(t *testing.T) {
	e := startEnv(t, nil)
	dashboardTraffic(t, e)
	fams := scrapeMetrics(t, e)
	panels := loadDashboards(t)

	// The join every query makes: rabbitmq_identity_info, one series per node, labelled with the
	// node and cluster the panels group by.
	id := fams["rabbitmq_identity_info"]
	if id == nil || len(id.Metric) != 1 {
		t.Fatalf("rabbitmq_identity_info: %v", id)
	}
	idl := labelsOf(id.Metric[0])
	if idl["rabbitmq_node"] != e.srv.NodeName() || idl["rabbitmq_cluster"] == "" {
		t.Errorf("rabbitmq_identity_info labels %v", idl)
	}

	// Counters the traffic must have moved (rate() of them shows something). The others are
	// checked for existence only: they may rightly be 0 here.
	moved := map[string]bool{}
	for _, n := range []string{"rabbitmq_channel_messages_published_total", "rabbitmq_channel_messages_confirmed_total",
		"rabbitmq_channel_messages_delivered_total", "rabbitmq_channel_messages_delivered_ack_total",
		"rabbitmq_channel_messages_redelivered_total", "rabbitmq_channel_messages_acked_total", "rabbitmq_channel_get_total",
		"rabbitmq_channel_get_ack_total", "rabbitmq_channel_get_empty_total", "rabbitmq_channel_messages_unroutable_dropped_total",
		"rabbitmq_channel_messages_unroutable_returned_total", "rabbitmq_queue_messages_published_total",
		"rabbitmq_queues_declared_total", "rabbitmq_queues_created_total", "rabbitmq_queues_deleted_total",
		"rabbitmq_channels_opened_total", "rabbitmq_channels_closed_total", "rabbitmq_connections_opened_total",
		"rabbitmq_connections_closed_total", "rabbitmq_channel_consumers", "rabbitmq_channels", "rabbitmq_connections",
		"rabbitmq_queues", "rabbitmq_build_info", "rabbitmq_resident_memory_limit_bytes", "rabbitmq_process_max_tcp_sockets",
		"rabbitmq_process_max_fds", "rabbitmq_process_resident_memory_bytes"} {
		moved[n] = true
	}

	overview, raft := 0, 0
	for _, p := range panels {
		switch p.dashboard {
		case "RabbitMQ-Overview":
			overview++
			for _, m := range p.metrics {
				f := fams[m]
				if f == nil || len(f.Metric) == 0 {
					t.Errorf("Overview %q: %s has no series", p.title, m)
					continue
				}
				if p.rate && !rateOfGauge[m] && f.GetType() != dto.MetricType_COUNTER {
					t.Errorf("Overview %q: rate() of %s, which is a %v, not a counter", p.title, m, f.GetType())
				}
				if rateOfGauge[m] && f.GetType() != dto.MetricType_GAUGE {
					t.Errorf("Overview %q: %s is a %v; rabbitmq_prometheus exports a gauge", p.title, m, f.GetType())
				}
				if moved[m] && sumValues(f) <= 0 {
					t.Errorf("Overview %q: %s is %v after the traffic", p.title, m, sumValues(f))
				}
				for _, l := range p.labels {
					for _, s := range f.Metric {
						if labelsOf(s)[l] == "" {
							t.Errorf("Overview %q: %s has no label %s (the table shows it)", p.title, m, l)
						}
					}
				}
			}
		case "RabbitMQ-Quorum-Queues-Raft":
			raft++
			// The quorum queue of the traffic is a Raft group: every metric the panels read
			// has a series, the counters moved, and rate() is only applied to counters or to
			// the gauges rabbitmq_prometheus exports as gauges.
			for _, m := range p.metrics {
				f := fams[m]
				if f == nil || len(f.Metric) == 0 {
					t.Errorf("Raft %q: %s has no series", p.title, m)
					continue
				}
				if p.rate && !rateOfGauge[m] && f.GetType() != dto.MetricType_COUNTER {
					t.Errorf("Raft %q: rate() of %s, which is a %v, not a counter", p.title, m, f.GetType())
				}
				if raftMoved[m] && sumValues(f) <= 0 {
					t.Errorf("Raft %q: %s is %v after the traffic", p.title, m, sumValues(f))
				}
			}
		default:
			t.Errorf("panel of an unknown dashboard %q", p.dashboard)
		}
	}
	// Per object, the Raft series carry the quorum queue's vhost and name (the Raft dashboard's
	// "members with >5k entries" table groups by queue).
	per := scrapePath(t, e, "/metrics/per-object")
	for m := range raftMoved {
		found := false
		for _, s := range per[m].GetMetric() {
			l := labelsOf(s)
			found = found || (l["vhost"] == "/" && l["queue"] == "dash.quorum")
		}
		if !found {
			t.Errorf("/metrics/per-object: no %s series for the quorum queue dash.quorum", m)
		}
	}
	if overview != 41 || raft != 5 {
		t.Errorf("read %d Overview and %d Raft panels from the dashboards' list, want 41 and 5", overview, raft)
	}
}
