package management

import (
	"net"
	"net/http"
	"runtime"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// Overview, nodes, health checks and the small fixed resources.

func (a *api) routes(r *mux.Router) {
	a.handle(r, "/api/overview", resource{http.MethodGet: {fn: overview}})
	a.handle(r, "/api/cluster-name", resource{
		http.MethodGet: {fn: clusterName},
		http.MethodPut: {level: lvlAdmin, fn: putClusterName},
	})
	a.handle(r, "/api/nodes", resource{http.MethodGet: {level: lvlMonitoring, fn: listNodes}})
	a.handle(r, "/api/nodes/{node}", resource{http.MethodGet: {level: lvlMonitoring, fn: getNode}})
	a.handle(r, "/api/extensions", resource{http.MethodGet: {fn: extensions}})
	a.handle(r, "/api/health/checks/alarms", resource{http.MethodGet: {fn: healthAlarms("There are alarms in effect in the cluster")}})
	a.handle(r, "/api/health/checks/local-alarms", resource{http.MethodGet: {fn: healthAlarms("There are alarms in effect on the node")}})
	a.handle(r, "/api/health/checks/virtual-hosts", resource{http.MethodGet: {fn: healthOK}})
	a.handle(r, "/api/aliveness-test/{vhost}", resource{http.MethodGet: {vhost: true, write: true, fn: aliveness}})
	a.handle(r, "/api/definitions", resource{
		http.MethodGet:  {level: lvlAdmin, fn: exportDefinitions},
		http.MethodPost: {level: lvlAdmin, fn: importDefinitions},
	})
	a.handle(r, "/api/definitions/{vhost}", resource{
		http.MethodGet:  {level: lvlAdmin, fn: exportDefinitions},
		http.MethodPost: {level: lvlAdmin, fn: importDefinitions},
	})
	a.healthRoutes(r)
	a.miscRoutes(r) // first: /api/users/bulk-delete before /api/users/{user}
	a.objectRoutes(r)
	a.accessRoutes(r)
	a.policyRoutes(r)
	a.userLimitRoutes(r)
	a.parameterRoutes(r)
	a.federationRoutes(r)
	a.shovelRoutes(r)
	a.connRoutes(r)
	a.superStreamRoutes(r)
	a.streamRoutes(r)
}

var exchangeTypeDescriptions = map[string]string{
	"direct":  "AMQP direct exchange, as per the AMQP specification",
	"fanout":  "AMQP fanout exchange, as per the AMQP specification",
	"headers": "AMQP headers exchange, as per the AMQP specification",
	"topic":   "AMQP topic exchange, as per the AMQP specification",

	"x-federation-upstream": "Federation upstream helper exchange",
}

func exchangeTypesJSON() []any {
	var out []any
	for _, t := range server.ExchangeTypes() {
		m := map[string]any{"name": t, "description": exchangeTypeDescriptions[t], "enabled": true}
		if t == "x-federation-upstream" {
			m["internal_purpose"] = "federation"
		}
		out = append(out, m)
	}
	return out
}

// contextsJSON describes the management's HTTP and HTTPS listeners as RabbitMQ's contexts: the
// port as a string; an HTTPS one has "ssl": "true" and its certificate files in ssl_opts.
func (c *call) contextsJSON(node bool) []any {
	var out []any
	for _, l := range c.listeners() {
		if l.Protocol != server.ProtocolHTTP && l.Protocol != server.ProtocolHTTPS {
			continue
		}
		ctx := map[string]any{"description": "RabbitMQ Management", "path": "/", "port": strconv.Itoa(listenerPort(l)),
			"cowboy_opts": "[{sendfile,false}]"}
		sslOpts := tlsFilesJSON(l.Files)
		if l.Protocol == server.ProtocolHTTPS {
			ctx["ssl"] = "true"
		}
		if node {
			ctx["node"] = c.a.b.NodeName()
			if len(sslOpts) > 0 {
				ctx["ssl_opts"] = sslOpts
			} else {
				ctx["ssl_opts"] = []any{}
			}
		}
		out = append(out, ctx)
	}
	if out == nil {
		out = []any{}
	}
	return out
}

// tlsFilesJSON is a TLS listener's certificate files as RabbitMQ shows its ssl_options (the key
// file's name, never its contents).
func tlsFilesJSON(f server.TLSFiles) map[string]any {
	m := map[string]any{}
	for k, v := range map[string]string{"certfile": f.CertFile, "keyfile": f.KeyFile, "cacertfile": f.CAFile} {
		if v != "" {
			m[k] = v
		}
	}
	if f.CertFile != "" {
		verify := "verify_none"
		if f.VerifyPeer {
			verify = "verify_peer"
		}
		m["verify"], m["fail_if_no_peer_cert"] = verify, f.FailIfNoPeerCert
	}
	return m
}

// listenersJSON is /api/overview's listeners: RabbitMQ's protocol names ("amqp", "amqp/ssl",
// "http", "https") with their socket options; a TLS listener's include its certificate files.
func (c *call) listenersJSON() []any {
	node := c.a.b.NodeName()
	listeners := []any{}
	for _, l := range c.listeners() {
		ip := "::"
		if host, _, err := net.SplitHostPort(l.Addr.String()); err == nil && host != "" && host != "0.0.0.0" {
			ip = host
		}
		port := listenerPort(l)
		var opts map[string]any
		switch l.Protocol {
		case server.ProtocolHTTP, server.ProtocolHTTPS:
			opts = map[string]any{"port": port, "cowboy_opts": map[string]any{"sendfile": false}}
		default:
			opts = map[string]any{"backlog": 128, "nodelay": true, "exit_on_close": false, "linger": []any{true, 0}}
		}
		for k, v := range tlsFilesJSON(l.Files) {
			opts[k] = v
		}
		listeners = append(listeners, map[string]any{"node": node, "protocol": l.Protocol, "ip_address": ip, "port": port, "socket_opts": opts})
	}
	return listeners
}

func overview(c *call) error {
	o := c.a.b.Overview()
	node := c.a.b.NodeName()
	m := map[string]any{
		"management_version": server.RabbitMQVersion, "rabbitmq_version": server.RabbitMQVersion,
		"product_name": "Warren", "product_version": server.Version,
		"rates_mode": "basic", "disable_stats": false, "enable_queue_totals": false,
		"sample_retention_policies":     map[string]any{"global": []int{600, 3600, 28800, 86400}, "basic": []int{600, 3600}, "detailed": []int{600}},
		"exchange_types":                exchangeTypesJSON(),
		"cluster_name":                  o.ClusterName,
		"node":                          node,
		"erlang_version":                runtime.Version(),
		"erlang_full_version":           "Go " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		"release_series_support_status": "supported",
		"statistics_db_event_queue":     0,
		"contexts":                      c.contextsJSON(true),
	}
	listeners := c.listenersJSON()
	m["listeners"] = listeners
	churn := map[string]any{}
	putChurn(churn, o.Churn)
	m["churn_rates"] = churn

	totals := map[string]any{}
	if c.seesAll() {
		stats := messageStats(o.Stats, vhostStatKeys)
		// Warren does not store messages on disk yet.
		putStat(stats, "disk_reads", server.Stat{})
		putStat(stats, "disk_writes", server.Stat{})
		m["message_stats"] = stats
		putStat(totals, "messages", o.QueueTotals.Messages)
		putStat(totals, "messages_ready", o.QueueTotals.Ready)
		putStat(totals, "messages_unacknowledged", o.QueueTotals.Unacked)
		m["object_totals"] = map[string]any{"connections": o.Connections, "channels": o.Channels, "exchanges": o.Exchanges,
			"queues": o.Queues, "consumers": o.Consumers}
	} else {
		m["message_stats"], m["object_totals"] = c.ownOverview(totals)
	}
	m["queue_totals"] = totals
	return c.ok(m)
}

// ownOverview sums the statistics of the vhosts and connections a management user can see.
func (c *call) ownOverview(totals map[string]any) (stats, objects map[string]any) {
	var ms server.MessageStats
	var t server.Totals
	add := func(a *server.Stat, b server.Stat) { a.Count += b.Count; a.Rate += b.Rate }
	vhosts := c.userVhosts()
	for _, vh := range vhosts {
		st, err := c.a.b.VhostStats(vh)
		if err != nil {
			continue
		}
		for _, p := range []struct {
			dst *server.Stat
			src server.Stat
		}{
			{&ms.Publish, st.Stats.Publish}, {&ms.Confirm, st.Stats.Confirm}, {&ms.ReturnUnroutable, st.Stats.ReturnUnroutable},
			{&ms.DropUnroutable, st.Stats.DropUnroutable}, {&ms.Deliver, st.Stats.Deliver}, {&ms.DeliverNoAck, st.Stats.DeliverNoAck},
			{&ms.Get, st.Stats.Get}, {&ms.GetNoAck, st.Stats.GetNoAck}, {&ms.GetEmpty, st.Stats.GetEmpty},
			{&ms.Ack, st.Stats.Ack}, {&ms.Redeliver, st.Stats.Redeliver},
			{&t.Messages, st.Totals.Messages}, {&t.Ready, st.Totals.Ready}, {&t.Unacked, st.Totals.Unacked},
		} {
			add(p.dst, p.src)
		}
	}
	putStat(totals, "messages", t.Messages)
	putStat(totals, "messages_ready", t.Ready)
	putStat(totals, "messages_unacknowledged", t.Unacked)
	visible := c.visible()
	var conns, chans int
	for _, ci := range c.a.b.Connections() {
		if ci.User == c.user.Name {
			conns++
			chans += ci.Channels
		}
	}
	return messageStats(ms, vhostStatKeys), map[string]any{
		"connections": conns, "channels": chans,
		"exchanges": len(c.a.b.Exchanges(visible)), "queues": len(c.a.b.Queues(visible)), "consumers": len(c.a.b.Consumers(visible)),
	}
}

func clusterName(c *call) error { return c.ok(map[string]any{"name": c.a.b.ClusterName()}) }

func putClusterName(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	if err := f.require("name"); err != nil {
		return err
	}
	name, err := f.string("name", "")
	if err != nil {
		return err
	}
	if err := c.a.b.SetClusterName(name); err != nil {
		return err
	}
	return c.noContent()
}

func (c *call) nodeJSON() map[string]any {
	n := c.a.b.Node()
	o := c.a.b.Overview()
	m := map[string]any{
		"name": n.Name, "type": "disc", "running": true, "os_pid": strconv.Itoa(n.OSPid), "processors": n.Processors,
		"uptime": n.Uptime.Milliseconds(), "rates_mode": "basic", "run_queue": 0, "net_ticktime": 60,
		"mem_limit": n.MemLimit, "mem_alarm": n.MemAlarm, "mem_calculation_strategy": "rss",
		"disk_free_limit": n.DiskFreeLimit, "disk_free_alarm": n.DiskAlarm,
		"fd_total": n.FDTotal, "sockets_total": n.FDTotal, "partitions": []any{}, "cluster_links": []any{},
		"exchange_types": exchangeTypesJSON(),
		"auth_mechanisms": []any{
			map[string]any{"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
			map[string]any{"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
		},
		"applications":    []any{map[string]any{"name": "warren", "description": "Warren AMQP 0-9-1 broker", "version": server.Version}},
		"enabled_plugins": []string{"rabbitmq_management", "rabbitmq_prometheus"},
		"log_files":       []string{}, "config_files": []string{},
		"contexts": c.contextsJSON(false),
	}
	putStat(m, "mem_used", server.Stat{Count: n.MemUsed})
	putStat(m, "disk_free", server.Stat{Count: n.DiskFree})
	putStat(m, "fd_used", server.Stat{Count: n.FDUsed})
	putStat(m, "sockets_used", server.Stat{Count: n.SocketsUsed})
	putStat(m, "proc_used", server.Stat{Count: int64(n.Goroutines)})
	putStat(m, "gc_num", server.Stat{Count: n.GCNum})
	putStat(m, "gc_bytes_reclaimed", server.Stat{Count: n.GCBytesReclaimed})
	putStat(m, "context_switches", server.Stat{Count: n.ContextSwitches})
	putStat(m, "io_read_bytes", server.Stat{Count: n.IOReadBytes})
	putStat(m, "io_write_bytes", server.Stat{Count: n.IOWriteBytes})
	putChurn(m, o.Churn)
	putErlangOnlyNodeFields(m, n)
	if c.r.URL.Query().Get("memory") == "true" {
		m["memory"] = c.memoryBreakdown(n)
	}
	return m
}

// memoryBreakdown is ?memory=true's "memory": RabbitMQ's categories of an Erlang node's memory,
// filled from the Go runtime's figures where Warren has the thing a category measures.
func (c *call) memoryBreakdown(n server.NodeInfo) map[string]any {
	var queues int64
	for _, q := range c.a.b.Queues(nil) {
		queues += q.Memory
	}
	pos := func(v int64) int64 { return max(v, 0) }
	m := map[string]any{
		"strategy": "rss",
		"total":    map[string]any{"rss": n.MemUsed, "allocated": n.MemUsed, "erlang": n.HeapAlloc},
		// The queues' own estimate of what they hold (messages and their bookkeeping).
		"queue_procs": queues,
		// Processes are goroutines: their stacks, and the heap not held by queues (connections,
		// channels, routing, the management API), which Warren does not attribute further.
		"other_proc": n.StackInuse + pos(n.HeapInuse-queues),
		// The Go runtime's own structures: GC metadata, spans, caches, profiling buckets.
		"other_system": n.RuntimeSys,
		// Heap the runtime holds but does not use (idle, not yet returned to the OS).
		"allocated_unused": n.HeapUnused,
		"code":             pos(n.CodeBytes),
	}
	// Components of an Erlang node Warren does not have, or whose memory Warren counts in
	// other_proc (per-connection processes), or has no separate store for (atoms, ETS tables,
	// binaries, Mnesia, the stats database, plugins, mirrors, quorum and stream replicas): 0.
	for _, k := range []string{"connection_readers", "connection_writers", "connection_channels", "connection_other",
		"queue_slave_procs", "quorum_queue_procs", "quorum_queue_dlx_procs", "stream_queue_procs",
		"stream_queue_replica_reader_procs", "stream_queue_coordinator_procs", "plugins", "metrics", "mgmt_db", "mnesia",
		"quorum_ets", "other_ets", "binary", "msg_index", "atom"} {
		m[k] = 0
	}
	// What the OS counts (RSS) beyond what the runtime has allocated from it.
	m["reserved_unallocated"] = pos(n.MemUsed - (n.HeapInuse + n.StackInuse + n.RuntimeSys + n.HeapUnused + pos(n.CodeBytes)))
	return m
}

// minGoroutineStack is the smallest stack a goroutine starts with (Go's runtime: 2 KiB).
const minGoroutineStack = 2048

// putErlangOnlyNodeFields adds the fields of RabbitMQ 3.10's node object that describe parts of
// an Erlang node, each with what it means for Warren.
func putErlangOnlyNodeFields(m map[string]any, n server.NodeInfo) {
	// proc_total is Erlang's process limit, next to proc_used (processes in use: for Warren,
	// goroutines). Go has no goroutine limit: memory bounds them, so Warren reports how many
	// goroutines of the smallest stack the node's memory limit holds (-1 if it is unknown).
	procTotal := int64(-1)
	if n.MemLimit > 0 {
		procTotal = n.MemLimit / minGoroutineStack
	}
	m["proc_total"] = procTotal
	// db_dir is where the node keeps its data: Warren's Pebble store directory ("" in memory).
	m["db_dir"] = n.StoreDir
	// RabbitMQ's file I/O counters. Warren's disk I/O is its store's: reads are store scans
	// (recovery, paging messages back in), writes committed batches, syncs WAL fsyncs (0 for the
	// in-memory store, which does no disk I/O). Warren does not time store operations, so the average
	// times are 0.0 (RabbitMQ's value before any timed operation); it has no file handle cache,
	// so nothing is sought or reopened through one (0).
	putStat(m, "io_read_count", server.Stat{Count: n.StoreReads})
	putStat(m, "io_write_count", server.Stat{Count: n.StoreWrites})
	putStat(m, "io_sync_count", server.Stat{Count: n.StoreSyncs})
	putStat(m, "io_seek_count", server.Stat{})
	putStat(m, "io_reopen_count", server.Stat{})
	for _, k := range []string{"io_read_avg_time", "io_write_avg_time", "io_sync_avg_time", "io_seek_avg_time"} {
		m[k] = rate(0)
		m[k+"_details"] = map[string]any{"rate": rate(0)}
	}
	// Mnesia transactions, the classic message store and the queue index are RabbitMQ components
	// Warren does not have (its metadata and messages are store batches, counted above): none of
	// them did any operation.
	for _, k := range []string{"mnesia_disk_tx_count", "mnesia_ram_tx_count", "msg_store_read_count", "msg_store_write_count",
		"queue_index_read_count", "queue_index_write_count"} {
		putStat(m, k, server.Stat{})
	}
	// The management database's queue of closed objects whose statistics await deletion: Warren
	// drops an object's statistics when it closes, so every queue is empty.
	m["metrics_gc_queue_length"] = map[string]any{"connection_closed": 0, "channel_closed": 0, "consumer_deleted": 0,
		"exchange_deleted": 0, "queue_deleted": 0, "vhost_deleted": 0, "node_node_deleted": 0, "channel_consumer_deleted": 0}
	// Files open by Ra (the Raft library of quorum queues and streams): Warren has no Ra.
	m["ra_open_file_metrics"] = map[string]any{"ra_log_wal": 0, "ra_log_segment_writer": 0}
}

// clusterMembers is the cluster's member list, if the broker is in one (server.Server is).
type clusterMembers interface{ ClusterMembers() []server.ClusterMember }

// memberJSON is a member of the cluster: this node in full, another one by name and running
// (whether this node's transport is connected to it); its figures are that node's API's.
func (c *call) memberJSON(m server.ClusterMember) map[string]any {
	if m.Name == c.a.b.NodeName() {
		return c.nodeJSON()
	}
	return map[string]any{"name": m.Name, "type": "disc", "running": m.Running}
}

func listNodes(c *call) error {
	cm, ok := c.a.b.(clusterMembers)
	if !ok {
		return c.ok([]any{c.nodeJSON()})
	}
	var out []any
	for _, m := range cm.ClusterMembers() {
		out = append(out, c.memberJSON(m))
	}
	return c.ok(out)
}

func getNode(c *call) error {
	if c.vars["node"] == c.a.b.NodeName() {
		return c.ok(c.nodeJSON())
	}
	if cm, ok := c.a.b.(clusterMembers); ok {
		for _, m := range cm.ClusterMembers() {
			if m.Name == c.vars["node"] {
				return c.ok(c.memberJSON(m))
			}
		}
	}
	return server.ErrNotFound
}

func extensions(c *call) error { return c.ok([]any{}) }

func healthOK(c *call) error { return c.ok(map[string]any{"status": "ok"}) }

// alarmResources are RabbitMQ's names for the resources of its alarms.
var alarmResources = map[string]string{"disk": "disk space", "memory": "memory"}

// healthAlarms answers 503 with the alarms in effect, as RabbitMQ does; Warren is one node, so the
// cluster's alarms are the node's.
func healthAlarms(reason string) func(c *call) error {
	return func(c *call) error {
		alarms := c.a.b.Alarms()
		if len(alarms) == 0 {
			return healthOK(c)
		}
		var list []any
		for _, a := range alarms {
			res := alarmResources[a]
			if res == "" {
				res = a
			}
			list = append(list, map[string]any{"node": c.a.b.NodeName(), "resource": res})
		}
		writeJSON(c.w, http.StatusServiceUnavailable, map[string]any{"status": "failed", "reason": reason, "alarms": list})
		return nil
	}
}

func aliveness(c *call) error {
	if err := c.a.b.AlivenessTest(c.vars["vhost"]); err != nil {
		writeJSON(c.w, http.StatusServiceUnavailable, map[string]any{"status": "failed", "reason": err.Error()})
		return nil
	}
	return c.ok(map[string]any{"status": "ok"})
}

// putChurn adds the connection, channel and queue churn counters with their rates.
func putChurn(m map[string]any, c server.Churn) {
	putStat(m, "connection_created", c.ConnectionCreated)
	putStat(m, "connection_closed", c.ConnectionClosed)
	putStat(m, "channel_created", c.ChannelCreated)
	putStat(m, "channel_closed", c.ChannelClosed)
	putStat(m, "queue_created", c.QueueCreated)
	putStat(m, "queue_declared", c.QueueDeclared)
	putStat(m, "queue_deleted", c.QueueDeleted)
}
