package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// The cluster settings from the file, the environment and flags, and their errors.
func TestConfigCluster(t *testing.T) {
	file := writeFile(t, "w.conf", "cluster.node_name = warren@b\ncluster.listen = 127.0.0.12:7000\n"+
		"cluster.nodes = warren@a=127.0.0.11:7000, warren@b=127.0.0.12:7000 ,warren@c=host-c:7000\n")
	c := mustLoad(t, []string{"--config", file}, env())
	if c.nodeName() != "warren@b" || c.ClusterAddr != "127.0.0.12:7000" || len(c.ClusterNodes) != 3 ||
		c.ClusterNodes[2] != (ClusterNode{Name: "warren@c", Addr: "host-c:7000"}) || c.serverOptions().NodeName != "warren@b" {
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
	if id := server.NodeID("warren@a"); id == 0 || id == server.NodeID("warren@b") {
		t.Fatalf("node ids %d %d", id, server.NodeID("warren@b"))
	}
	// The handshake's cluster name depends on the list, not its order.
	a := []ClusterNode{{Name: "x", Addr: "h:1"}, {Name: "y", Addr: "h:2"}}
	if server.ClusterHandshakeName(a) != server.ClusterHandshakeName([]ClusterNode{a[1], a[0]}) || server.ClusterHandshakeName(a) == server.ClusterHandshakeName(a[:1]) {
		t.Fatal("clusterName depends on the order, or not on the members")
	}
}

// Three nodes started as one cluster, on their own loopback addresses: the meta group elects one
// leader they all agree on. No settings: no cluster.
func TestStartCluster(t *testing.T) {
	if co, err := clusterOptions(&Config{}); co != nil || err != nil {
		t.Fatalf("no cluster settings: %v, %v", co, err)
	}
	bs := testbroker.StartCluster(t, 3)
	wait.For(t, 20*time.Second, "the meta group to elect a leader all three agree on", func() bool {
		lead := bs[0].Srv.MetaLeader()
		for _, b := range bs[1:] {
			if b.Srv.MetaLeader() != lead {
				return false
			}
		}
		return lead != ""
	})
	// A node that is not in the member list is refused.
	lns, nodes := testbroker.ClusterListeners(t, 1)
	_, err := server.New(server.Options{NodeName: "warren@other", Cluster: &server.ClusterOptions{Listener: lns[0], Nodes: nodes}})
	if err == nil || !strings.Contains(err.Error(), "not in the member list") {
		t.Fatalf("a node outside the member list: %v", err)
	}
}
