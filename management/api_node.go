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
	a.objectRoutes(r)
	a.accessRoutes(r)
	a.policyRoutes(r)
	a.connRoutes(r)
}

var exchangeTypeDescriptions = map[string]string{
	"direct":  "AMQP direct exchange, as per the AMQP specification",
	"fanout":  "AMQP fanout exchange, as per the AMQP specification",
	"headers": "AMQP headers exchange, as per the AMQP specification",
	"topic":   "AMQP topic exchange, as per the AMQP specification",
}

func exchangeTypesJSON() []any {
	var out []any
	for _, t := range server.ExchangeTypes() {
		out = append(out, map[string]any{"name": t, "description": exchangeTypeDescriptions[t], "enabled": true})
	}
	return out
}

// contextsJSON describes the HTTP listener the request came in on.
func (c *call) contextsJSON(node bool) []any {
	port := ""
	if la, ok := c.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		_, port, _ = net.SplitHostPort(la.String())
	}
	ctx := map[string]any{"description": "RabbitMQ Management", "path": "/", "port": port, "cowboy_opts": "[]"}
	if node {
		ctx["node"] = c.a.b.NodeName()
		ctx["ssl_opts"] = []any{}
	}
	return []any{ctx}
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
	var listeners []any
	for _, addr := range listenerAddrs(o.Listeners) {
		listeners = append(listeners, map[string]any{"node": node, "protocol": "amqp", "ip_address": addr.ip, "port": addr.port,
			"socket_opts": map[string]any{"backlog": 128, "nodelay": true, "exit_on_close": false, "linger": []any{true, 0}}})
	}
	if la, ok := c.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		for _, addr := range listenerAddrs([]net.Addr{la}) {
			listeners = append(listeners, map[string]any{"node": node, "protocol": "http", "ip_address": addr.ip, "port": addr.port,
				"socket_opts": map[string]any{"port": addr.port, "cowboy_opts": map[string]any{"sendfile": false}}})
		}
	}
	if listeners == nil {
		listeners = []any{}
	}
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

type listenAddr struct {
	ip   string
	port int
}

func listenerAddrs(addrs []net.Addr) []listenAddr {
	var out []listenAddr
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a.String())
		if err != nil {
			continue
		}
		p, _ := strconv.Atoi(port)
		if host == "" || host == "0.0.0.0" {
			host = "::"
		}
		out = append(out, listenAddr{ip: host, port: p})
	}
	return out
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
	if c.r.URL.Query().Get("memory") == "true" {
		m["memory"] = map[string]any{
			"strategy": "rss",
			"total":    map[string]any{"rss": n.MemUsed, "allocated": n.MemUsed, "erlang": n.HeapAlloc},
		}
	}
	return m
}

func listNodes(c *call) error { return c.ok([]any{c.nodeJSON()}) }

func getNode(c *call) error {
	if c.vars["node"] != c.a.b.NodeName() {
		return server.ErrNotFound
	}
	return c.ok(c.nodeJSON())
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
