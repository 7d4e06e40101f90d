package main

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
)

// The cluster settings from the file, the environment and flags, and their errors.
func TestConfigCluster(t *testing.T) {
	file := writeFile(t, "w.conf", "cluster.node_name = warren@b\ncluster.listen = 127.0.0.12:7000\n"+
		"cluster.nodes = warren@a=127.0.0.11:7000, warren@b=127.0.0.12:7000 ,warren@c=host-c:7000\n")
	c := mustLoad(t, []string{"--config", file}, env())
	if c.nodeName() != "warren@b" || c.ClusterAddr != "127.0.0.12:7000" || len(c.ClusterNodes) != 3 ||
		c.ClusterNodes[2] != (ClusterNode{"warren@c", "host-c:7000"}) || c.serverOptions().NodeName != "warren@b" {
		t.Fatalf("from the file: %+v", c)
	}
	// Unset: a single node, named after the host.
	if c := mustLoad(t, nil, env()); c.ClusterAddr != "" || c.ClusterNodes != nil || !strings.HasPrefix(c.nodeName(), "warren@") {
		t.Fatalf("defaults: %+v", c)
	}
	// The node name alone is fine (no cluster).
	if c := mustLoad(t, []string{"--node-name", "warren@solo"}, env()); c.serverOptions().NodeName != "warren@solo" {
		t.Fatalf("--node-name: %+v", c)
	}
	nodes := "warren@a=127.0.0.11:7000,warren@b=127.0.0.12:7000"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-addr", "127.0.0.11:7000"}, "--cluster-addr needs --cluster-nodes"},
		{[]string{"--cluster-nodes", nodes, "--node-name", "warren@a"}, "--cluster-nodes needs --cluster-addr"},
		{[]string{"--cluster-addr", "127.0.0.13:7000", "--cluster-nodes", nodes, "--node-name", "warren@c"}, "this node, warren@c, is not among --cluster-nodes (warren@a, warren@b)"},
		{[]string{"--cluster-addr", "127.0.0.11:7001", "--cluster-nodes", nodes, "--node-name", "warren@a"}, "lists warren@a at 127.0.0.11:7000, but --cluster-addr 127.0.0.11:7001 listens on port 7001"},
		{[]string{"--cluster-addr", "127.0.0.11:0"}, "needs a fixed port"},
		{[]string{"--cluster-addr", "nowhere"}, "is not a port"},
		{[]string{"--cluster-nodes", "warren@a=127.0.0.11:7000,warren@a=127.0.0.12:7000"}, "node warren@a is listed twice"},
		{[]string{"--cluster-nodes", "warren@a=127.0.0.11:7000,warren@b=127.0.0.11:7000"}, "nodes warren@a and warren@b have the same address"},
		{[]string{"--cluster-nodes", "warren@a"}, "expected NAME=HOST:PORT"},
		{[]string{"--cluster-nodes", "warren@a=127.0.0.11"}, "is not HOST:PORT"},
		{[]string{"--cluster-nodes", "warren@a=:7000"}, "is not HOST:PORT"},
		{[]string{"--cluster-nodes", "warren@a=h:70000"}, "is not a port number"},
		{[]string{"--cluster-nodes", "=h:7000"}, "is not a node name"},
		{[]string{"--node-name", "a b"}, "is not a node name"},
	} {
		_, _, err := loadConfig(tc.args, env(), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want ...%s", tc.args, err, tc.want)
		}
	}
	if _, _, err := loadConfig(nil, env("WARREN_CLUSTER_NODES", "x"), io.Discard); err == nil || !strings.Contains(err.Error(), "WARREN_CLUSTER_NODES") {
		t.Errorf("bad WARREN_CLUSTER_NODES: %v", err)
	}
	if id := nodeID("warren@a"); id == 0 || id == nodeID("warren@b") {
		t.Fatalf("node ids %d %d", id, nodeID("warren@b"))
	}
	// The handshake's cluster name depends on the list, not its order.
	a := []ClusterNode{{"x", "h:1"}, {"y", "h:2"}}
	if clusterName(a) != clusterName([]ClusterNode{a[1], a[0]}) || clusterName(a) == clusterName(a[:1]) {
		t.Fatal("clusterName depends on the order, or not on the members")
	}
}

// Three nodes started from their settings, on their own loopback addresses: the meta group elects
// one leader they all agree on. No settings: no host.
func TestStartCluster(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if h, err := startCluster(&Config{}, storage.NewMemStore(), log, nil); h != nil || err != nil {
		t.Fatalf("no cluster settings: host %v, %v", h, err)
	}
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	var lns []net.Listener
	var nodes []ClusterNode
	for i, ip := range ips {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Logf("cannot bind %s (%v): all nodes on 127.0.0.1", ip, err)
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
		}
		lns = append(lns, ln)
		nodes = append(nodes, ClusterNode{Name: "warren@n" + string(rune('1'+i)), Addr: ln.Addr().String()})
	}
	var hosts []*cluster.Host
	defer func() {
		for _, h := range hosts {
			if err := h.Close(); err != nil {
				t.Error(err)
			}
		}
	}()
	for i, n := range nodes {
		cfg := Config{NodeName: n.Name, ClusterAddr: n.Addr, ClusterNodes: nodes}
		if err := cfg.validateCluster(); err != nil {
			t.Fatal(err)
		}
		h, err := startCluster(&cfg, storage.NewMemStore(), log, lns[i])
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	wait.For(t, 20*time.Second, "the meta group to elect a leader all three agree on", func() bool {
		var lead uint64
		for _, h := range hosts {
			l := h.Leader(metaGroup)
			if l == 0 || (lead != 0 && l != lead) {
				return false
			}
			lead = l
		}
		for i, n := range nodes {
			if nodeID(n.Name) == lead {
				s, _ := hosts[i].Status(metaGroup)
				return s.State == "StateLeader"
			}
		}
		return false
	})
}
