package management

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warrenmq/warren/server"
)

// Prometheus metrics with rabbitmq_prometheus's names, so RabbitMQ's Grafana dashboards show
// Warren. /metrics aggregates (queue figures are summed, without labels); /metrics/per-object has a
// series per queue labelled vhost and queue. Each handler has its own registry with one collector
// that reads a broker snapshot at scrape time, and Go's process and runtime collectors.

func (a *api) metricsHandler(perObject bool) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{b: a.b, perObject: perObject})
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPromLogger{a}, ErrorHandling: promhttp.ContinueOnError})
}

type slogPromLogger struct{ a *api }

func (l slogPromLogger) Println(v ...any) { l.a.log.Warn("prometheus", "msg", v) }

type collector struct {
	b         Broker
	perObject bool
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	mIdentity = desc("rabbitmq_identity_info", "RabbitMQ node & cluster identity info", "rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id")
	mBuild    = desc("rabbitmq_build_info", "RabbitMQ & Erlang/OTP version info", "rabbitmq_version", "prometheus_plugin_version", "prometheus_client_version", "erlang_version", "product", "product_version")

	mConnections = desc("rabbitmq_connections", "Connections currently open")
	mChannels    = desc("rabbitmq_channels", "Channels currently open")
	mConsumers   = desc("rabbitmq_consumers", "Consumers currently connected")
	mQueues      = desc("rabbitmq_queues", "Queues available")

	mConnOpened  = desc("rabbitmq_connections_opened_total", "Total number of connections opened")
	mConnClosed  = desc("rabbitmq_connections_closed_total", "Total number of connections closed or terminated")
	mChanOpened  = desc("rabbitmq_channels_opened_total", "Total number of channels opened")
	mChanClosed  = desc("rabbitmq_channels_closed_total", "Total number of channels closed")
	mQDeclared   = desc("rabbitmq_queues_declared_total", "Total number of queues declared")
	mQCreated    = desc("rabbitmq_queues_created_total", "Total number of queues created")
	mQDeleted    = desc("rabbitmq_queues_deleted_total", "Total number of queues deleted")
	mOpenFDs     = desc("rabbitmq_process_open_fds", "Open file descriptors")
	mMaxFDs      = desc("rabbitmq_process_max_fds", "Open file descriptors limit")
	mOpenSockets = desc("rabbitmq_process_open_tcp_sockets", "Open TCP sockets")
	mRSS         = desc("rabbitmq_process_resident_memory_bytes", "Memory used in bytes")
	mDiskFree    = desc("rabbitmq_disk_space_available_bytes", "Disk space available in bytes")
	mUptime      = desc("rabbitmq_erlang_uptime_seconds", "Node uptime")
	mDiskLimit   = desc("rabbitmq_disk_space_available_limit_bytes", "Free disk space low watermark in bytes")

	mMaxSockets = desc("rabbitmq_process_max_tcp_sockets", "Open TCP sockets limit")

	mChanConsumers   = desc("rabbitmq_channel_consumers", "Consumers on a channel")
	mChanUnconfirmed = desc("rabbitmq_channel_messages_unconfirmed", "Published but not yet confirmed messages")
	mChanUnacked     = desc("rabbitmq_channel_messages_unacked", "Delivered but not yet acknowledged messages")

	mAuthAttempts  = desc("rabbitmq_auth_attempts_total", "Total number of authorization attempts", "protocol")
	mAuthSucceeded = desc("rabbitmq_auth_attempts_succeeded_total", "Total number of successful authentication attempts", "protocol")
	mAuthFailed    = desc("rabbitmq_auth_attempts_failed_total", "Total number of failed authentication attempts", "protocol")

	// Not a RabbitMQ metric: rabbitmq_prometheus 3.10 has none for TLS handshakes, hence Warren's
	// own prefix.
	mTLSFailures = desc("warren_tls_handshake_failures_total", "Total number of TLS handshakes that failed on the AMQPS listeners")

	// Not a RabbitMQ metric either: rabbitmq_prometheus 3.10 counts connections of every protocol
	// together (rabbitmq_connections).
	mConnsByProto = desc("warren_connections", "Connections currently open, by protocol as /api/connections names it (AMQP 0-9-1, MQTT 3.1.1, Web MQTT 3.1.1, STOMP 1.2, Web STOMP 1.2, ...)", "protocol")

	mAlarmFD   = desc("rabbitmq_alarms_file_descriptor_limit", "is 1 if file descriptor limit alarm is in effect")
	mAlarmDisk = desc("rabbitmq_alarms_free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect")
	mAlarmMem  = desc("rabbitmq_alarms_memory_used_watermark", "is 1 if VM memory watermark alarm is in effect")
	mMemLimit  = desc("rabbitmq_resident_memory_limit_bytes", "Memory high watermark in bytes")

	mQReady         = "rabbitmq_queue_messages_ready"
	mQUnacked       = "rabbitmq_queue_messages_unacked"
	mQMessages      = "rabbitmq_queue_messages"
	mQConsumers     = "rabbitmq_queue_consumers"
	mQBytes         = "rabbitmq_queue_messages_bytes"
	mQReadyBytes    = "rabbitmq_queue_messages_ready_bytes"
	mQUnackedBytes  = "rabbitmq_queue_messages_unacked_bytes"
	mQPersistent    = "rabbitmq_queue_messages_persistent"
	mQRAM           = "rabbitmq_queue_messages_ram"
	mQMemory        = "rabbitmq_queue_process_memory_bytes"
	mQPublished     = "rabbitmq_queue_messages_published_total"
	queueMetricHelp = map[string]string{
		mQReady: "Messages ready to be delivered to consumers", mQUnacked: "Messages delivered to consumers but not yet acknowledged",
		mQMessages: "Sum of ready and unacknowledged messages - total queue depth", mQConsumers: "Consumers on a queue",
		mQBytes: "Size in bytes of ready and unacknowledged messages", mQReadyBytes: "Size in bytes of ready messages",
		mQUnackedBytes: "Size in bytes of all unacknowledged messages", mQPersistent: "Persistent messages",
		mQRAM: "Ready and unacknowledged messages stored in memory", mQMemory: "Memory in bytes used by the Erlang queue process",
		mQPublished: "Total number of messages published to queues",
	}

	// The channel counters of rabbitmq_prometheus's aggregated endpoint, which its Overview
	// dashboard rates. RabbitMQ sums the counters of the channels open at scrape time (so its
	// totals fall when a channel closes); Warren reports the node's counters since start, which
	// only grow, as rate() expects of a counter.
	mChannelCounters = []struct {
		name, help string
		value      func(g server.GlobalCounters) int64
	}{
		{"rabbitmq_channel_messages_published_total", "Total number of messages published into an exchange on a channel", func(g server.GlobalCounters) int64 { return g.Received }},
		{"rabbitmq_channel_messages_confirmed_total", "Total number of messages published into an exchange and confirmed on the channel", func(g server.GlobalCounters) int64 { return g.Confirmed }},
		{"rabbitmq_channel_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", func(g server.GlobalCounters) int64 { return g.UnroutableReturned }},
		{"rabbitmq_channel_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", func(g server.GlobalCounters) int64 { return g.UnroutableDropped }},
		{"rabbitmq_channel_messages_delivered_total", "Total number of messages delivered to consumers in automatic acknowledgement mode", func(g server.GlobalCounters) int64 { return g.DeliveredConsumeAutoAck }},
		{"rabbitmq_channel_messages_delivered_ack_total", "Total number of messages delivered to consumers in manual acknowledgement mode", func(g server.GlobalCounters) int64 { return g.DeliveredConsumeManualAck }},
		{"rabbitmq_channel_messages_redelivered_total", "Total number of messages redelivered to consumers", func(g server.GlobalCounters) int64 { return g.Redelivered }},
		{"rabbitmq_channel_messages_acked_total", "Total number of messages acknowledged by consumers", func(g server.GlobalCounters) int64 { return g.Acknowledged }},
		{"rabbitmq_channel_get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", func(g server.GlobalCounters) int64 { return g.DeliveredGetAutoAck }},
		{"rabbitmq_channel_get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", func(g server.GlobalCounters) int64 { return g.DeliveredGetManualAck }},
		{"rabbitmq_channel_get_empty_total", "Total number of times basic.get operations fetched no message", func(g server.GlobalCounters) int64 { return g.GetEmpty }},
	}

	mGlobal = []struct {
		name, help string
		queueType  bool // has the queue_type label
		value      func(g server.GlobalCounters) float64
		gauge      bool
	}{
		{"rabbitmq_global_messages_received_total", "Total number of messages received from publishers", false, func(g server.GlobalCounters) float64 { return float64(g.Received) }, false},
		{"rabbitmq_global_messages_received_confirm_total", "Total number of messages received from publishers expecting confirmations", false, func(g server.GlobalCounters) float64 { return float64(g.ReceivedConfirm) }, false},
		{"rabbitmq_global_messages_confirmed_total", "Total number of messages confirmed to publishers", false, func(g server.GlobalCounters) float64 { return float64(g.Confirmed) }, false},
		{"rabbitmq_global_messages_routed_total", "Total number of messages routed to queues or streams", false, func(g server.GlobalCounters) float64 { return float64(g.Routed) }, false},
		{"rabbitmq_global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", false, func(g server.GlobalCounters) float64 { return float64(g.UnroutableDropped) }, false},
		{"rabbitmq_global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", false, func(g server.GlobalCounters) float64 { return float64(g.UnroutableReturned) }, false},
		{"rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers", true, func(g server.GlobalCounters) float64 {
			return float64(g.DeliveredConsumeAutoAck + g.DeliveredConsumeManualAck + g.DeliveredGetAutoAck + g.DeliveredGetManualAck)
		}, false},
		{"rabbitmq_global_messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", true, func(g server.GlobalCounters) float64 { return float64(g.DeliveredConsumeAutoAck) }, false},
		{"rabbitmq_global_messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", true, func(g server.GlobalCounters) float64 { return float64(g.DeliveredConsumeManualAck) }, false},
		{"rabbitmq_global_messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", true, func(g server.GlobalCounters) float64 { return float64(g.DeliveredGetAutoAck) }, false},
		{"rabbitmq_global_messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", true, func(g server.GlobalCounters) float64 { return float64(g.DeliveredGetManualAck) }, false},
		{"rabbitmq_global_messages_redelivered_total", "Total number of messages redelivered to consumers", true, func(g server.GlobalCounters) float64 { return float64(g.Redelivered) }, false},
		{"rabbitmq_global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", true, func(g server.GlobalCounters) float64 { return float64(g.Acknowledged) }, false},
		{"rabbitmq_global_messages_get_empty_total", "Total number of times basic.get operations fetched no message", true, func(g server.GlobalCounters) float64 { return float64(g.GetEmpty) }, false},
		{"rabbitmq_global_publishers", "Current number of publishers", false, func(g server.GlobalCounters) float64 { return float64(g.Publishers) }, true},
		{"rabbitmq_global_consumers", "Current number of consumers", false, func(g server.GlobalCounters) float64 { return float64(g.Consumers) }, true},
	}
)

// Describe sends no descriptors: the collector is unchecked, since its per-object series depend on
// what exists at scrape time.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	node := c.b.NodeName()
	// rabbitmq_cluster_permanent_id is the internal_cluster_id global parameter, as RabbitMQ's.
	var clusterID string
	if g, err := c.b.GlobalParameter(server.GlobalInternalClusterID); err == nil {
		_ = json.Unmarshal(g.Value, &clusterID)
	}
	gauge(mIdentity, 1, node, c.b.ClusterName(), clusterID)
	gauge(mBuild, 1, server.RabbitMQVersion, server.RabbitMQVersion, "client_golang", "go", "Warren", server.Version)

	o := c.b.Overview()
	gauge(mConnections, float64(o.Connections))
	for p, n := range c.b.ConnectionsByProtocol() {
		gauge(mConnsByProto, float64(n), p)
	}
	gauge(mChannels, float64(o.Channels))
	gauge(mConsumers, float64(o.Consumers))
	gauge(mQueues, float64(o.Queues))
	counter(mConnOpened, float64(o.Churn.ConnectionCreated.Count))
	counter(mConnClosed, float64(o.Churn.ConnectionClosed.Count))
	counter(mChanOpened, float64(o.Churn.ChannelCreated.Count))
	counter(mChanClosed, float64(o.Churn.ChannelClosed.Count))
	counter(mQDeclared, float64(o.Churn.QueueDeclared.Count))
	counter(mQCreated, float64(o.Churn.QueueCreated.Count))
	counter(mQDeleted, float64(o.Churn.QueueDeleted.Count))

	n := c.b.Node()
	for _, x := range []struct {
		d *prometheus.Desc
		v int64
	}{{mOpenFDs, n.FDUsed}, {mMaxFDs, n.FDTotal}, {mOpenSockets, n.SocketsUsed}, {mRSS, n.MemUsed}, {mDiskFree, n.DiskFree}} {
		if x.v >= 0 {
			gauge(x.d, float64(x.v))
		}
	}
	// Warren has no socket limit of its own: a connection takes a file descriptor, so the
	// descriptor limit is the socket limit (as /api/nodes' sockets_total).
	if n.FDTotal >= 0 {
		gauge(mMaxSockets, float64(n.FDTotal))
	}
	gauge(mUptime, n.Uptime.Seconds())
	if n.DiskFreeLimit > 0 {
		gauge(mDiskLimit, float64(n.DiskFreeLimit))
	}
	untyped := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.UntypedValue, v)
	}
	untyped(mAlarmFD, 0)
	memAlarm := 0.0
	if n.MemAlarm {
		memAlarm = 1
	}
	untyped(mAlarmMem, memAlarm)
	if n.MemLimit > 0 {
		gauge(mMemLimit, float64(n.MemLimit))
	}
	diskAlarm := 0.0
	if n.DiskAlarm {
		diskAlarm = 1
	}
	untyped(mAlarmDisk, diskAlarm)

	g := c.b.GlobalCounters()
	for _, m := range mGlobal {
		labels, values := []string{"protocol"}, []string{"amqp091"}
		if m.queueType {
			labels, values = append(labels, "queue_type"), append(values, "rabbit_classic_queue")
		}
		d := prometheus.NewDesc(m.name, m.help, labels, nil)
		if m.gauge {
			gauge(d, m.value(g), values...)
		} else {
			counter(d, m.value(g), values...)
		}
	}

	for _, m := range mChannelCounters {
		counter(desc(m.name, m.help), float64(m.value(g)))
	}
	var consumers, unconfirmed, unacked int
	if chans, err := c.b.Channels(""); err == nil {
		for _, ci := range chans {
			consumers += ci.Consumers
			unconfirmed += ci.Unconfirmed
			unacked += ci.Unacked
		}
	}
	gauge(mChanConsumers, float64(consumers))
	gauge(mChanUnconfirmed, float64(unconfirmed))
	gauge(mChanUnacked, float64(unacked))
	counter(mTLSFailures, float64(c.b.TLSHandshakeFailures()))
	for _, a := range c.b.AuthAttempts() {
		counter(mAuthAttempts, float64(a.Succeeded+a.Failed), a.Protocol)
		counter(mAuthSucceeded, float64(a.Succeeded), a.Protocol)
		counter(mAuthFailed, float64(a.Failed), a.Protocol)
	}

	c.collectQueues(ch)
	c.collectRaft(ch)
}

// collectRaft exports the Raft metrics of the node's groups as rabbitmq_prometheus 3.10.8 does:
// aggregated, the sum over every group (the meta group included, as RabbitMQ's sums include its
// internal Raft clusters) except the commit latency, their mean (checked on 3.10.8: 0.0005 over
// groups at 0, 0, 0.002 and 0); per object, a series per quorum queue (vhost, queue). RabbitMQ
// adds unlabeled series for its internal clusters there; Prometheus' client refuses one family
// with and without labels, so the meta group is only in the aggregate. Nothing when the node runs
// no group. Commit latency is a gauge in seconds, as RabbitMQ's.
func (c *collector) collectRaft(ch chan<- prometheus.Metric) {
	gs := c.b.RaftGroups()
	if len(gs) == 0 {
		return
	}
	series := []struct {
		name, help string
		kind       prometheus.ValueType
		value      func(g server.RaftGroupInfo) float64
	}{
		{"rabbitmq_raft_term_total", "Current Raft term number", prometheus.CounterValue, func(g server.RaftGroupInfo) float64 { return float64(g.Term) }},
		{"rabbitmq_raft_log_snapshot_index", "Raft log snapshot index", prometheus.GaugeValue, func(g server.RaftGroupInfo) float64 { return float64(g.Snapshot) }},
		{"rabbitmq_raft_log_last_applied_index", "Raft log last applied index", prometheus.GaugeValue, func(g server.RaftGroupInfo) float64 { return float64(g.Applied) }},
		{"rabbitmq_raft_log_commit_index", "Raft log commit index", prometheus.GaugeValue, func(g server.RaftGroupInfo) float64 { return float64(g.Commit) }},
		{"rabbitmq_raft_log_last_written_index", "Raft log last written index", prometheus.GaugeValue, func(g server.RaftGroupInfo) float64 { return float64(g.LastWritten) }},
		{"rabbitmq_raft_entry_commit_latency_seconds", "Time taken for a log entry to be committed", prometheus.GaugeValue, func(g server.RaftGroupInfo) float64 { return g.CommitLatency.Seconds() }},
	}
	for _, s := range series {
		if !c.perObject {
			var sum float64
			for _, g := range gs {
				sum += s.value(g)
			}
			if s.name == "rabbitmq_raft_entry_commit_latency_seconds" {
				sum /= float64(len(gs))
			}
			ch <- prometheus.MustNewConstMetric(desc(s.name, s.help), s.kind, sum)
			continue
		}
		d := desc(s.name, s.help, "vhost", "queue")
		for _, g := range gs {
			if g.Queue != "" {
				ch <- prometheus.MustNewConstMetric(d, s.kind, s.value(g), g.Vhost, g.Queue)
			}
		}
	}
}

func (c *collector) collectQueues(ch chan<- prometheus.Metric) {
	qs := c.b.Queues(nil)
	type qv struct {
		name  string
		value func(q server.QueueInfo) float64
		kind  prometheus.ValueType
	}
	series := []qv{
		{mQReady, func(q server.QueueInfo) float64 { return float64(q.Ready) }, prometheus.GaugeValue},
		{mQUnacked, func(q server.QueueInfo) float64 { return float64(q.Unacked) }, prometheus.GaugeValue},
		{mQMessages, func(q server.QueueInfo) float64 { return float64(q.Ready + q.Unacked) }, prometheus.GaugeValue},
		{mQConsumers, func(q server.QueueInfo) float64 { return float64(q.Consumers) }, prometheus.GaugeValue},
		{mQBytes, func(q server.QueueInfo) float64 { return float64(q.ReadyBytes + q.UnackedBytes) }, prometheus.GaugeValue},
		{mQReadyBytes, func(q server.QueueInfo) float64 { return float64(q.ReadyBytes) }, prometheus.GaugeValue},
		{mQUnackedBytes, func(q server.QueueInfo) float64 { return float64(q.UnackedBytes) }, prometheus.GaugeValue},
		{mQPersistent, func(q server.QueueInfo) float64 { return float64(q.Persistent) }, prometheus.GaugeValue},
		{mQRAM, func(q server.QueueInfo) float64 { return float64(q.Ready - q.PagedOut + q.Unacked) }, prometheus.GaugeValue},
		{mQMemory, func(q server.QueueInfo) float64 { return float64(q.Memory) }, prometheus.GaugeValue},
		{mQPublished, func(q server.QueueInfo) float64 { return float64(q.Stats.Publish.Count) }, prometheus.CounterValue},
	}
	for _, s := range series {
		if c.perObject {
			d := desc(s.name, queueMetricHelp[s.name], "vhost", "queue")
			for _, q := range qs {
				ch <- prometheus.MustNewConstMetric(d, s.kind, s.value(q), q.Vhost, q.Name)
			}
			continue
		}
		var sum float64
		for _, q := range qs {
			sum += s.value(q)
		}
		ch <- prometheus.MustNewConstMetric(desc(s.name, queueMetricHelp[s.name]), s.kind, sum)
	}
}
