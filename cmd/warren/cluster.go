package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// The cluster settings (issue 16). Unset, the broker is one node exactly as before: no listener,
// no Raft. Set, the node starts a cluster.Host on --cluster-addr with one group, the meta group
// over every member, whose state machine does nothing yet: NOTHING of the broker is replicated
// (vhosts, users, queues, messages all stay local to each node). What runs is the Raft layer
// itself: the connections between the nodes, elections, the group's log in the node's store.

// ClusterNode is one member of --cluster-nodes.
type ClusterNode struct {
	Name string // the node's --node-name
	Addr string // its --cluster-addr, as the other nodes dial it (host:port)
}

// metaGroup is the meta group's Raft group id.
const metaGroup = 1

func init() {
	// Appended here rather than listed in config.go's settings, so that the cluster's settings
	// stay in this file.
	settings = append(settings,
		setting{flag: "node-name", env: "WARREN_NODE_NAME", usage: "this node's `name` (RabbitMQ's node name), as the API shows it and --cluster-nodes lists it",
			set:  func(c *Config, v string) error { return parseNodeName(&c.NodeName, v) },
			show: func(c *Config) string { return server.DefaultNodeName() }},
		setting{flag: "cluster-addr", env: "WARREN_CLUSTER_ADDR", usage: "inter-node listen address `host:port` (outgoing inter-node connections leave from its host); empty: a single node",
			set: func(c *Config, v string) (err error) { c.ClusterAddr, err = parseClusterAddr(v); return }},
		setting{flag: "cluster-nodes", env: "WARREN_CLUSTER_NODES", usage: "the cluster's members, the same on every node: `NAME=HOST:PORT,...`, this node among them",
			set: func(c *Config, v string) (err error) { c.ClusterNodes, err = parseClusterNodes(v); return }},
	)
	fileKeys["cluster.node_name"] = byEnv("WARREN_NODE_NAME")
	fileKeys["cluster.listen"] = byEnv("WARREN_CLUSTER_ADDR")
	fileKeys["cluster.nodes"] = byEnv("WARREN_CLUSTER_NODES")
}

func parseNodeName(dst *string, v string) error {
	if v == "" || strings.ContainsAny(v, "=, \t\n") {
		return fmt.Errorf("%q is not a node name (not empty, no '=', ',' or blanks)", v)
	}
	*dst = v
	return nil
}

// parseClusterAddr reads --cluster-addr: host:port with a fixed port (the others dial it); "" is
// unset.
func parseClusterAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	a, err := parseListenAddr(v)
	if err != nil {
		return "", err
	}
	if _, port, _ := net.SplitHostPort(a); port == "0" {
		return "", fmt.Errorf("%q: the cluster address needs a fixed port (the other nodes dial it)", v)
	}
	return a, nil
}

// parseClusterNodes reads NAME=HOST:PORT,NAME=HOST:PORT,... ("" is unset).
func parseClusterNodes(v string) ([]ClusterNode, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []ClusterNode
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		name, addr, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q: expected NAME=HOST:PORT", item)
		}
		if err := parseNodeName(&name, name); err != nil {
			return nil, err
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || strings.ContainsAny(host, " \t/") {
			return nil, fmt.Errorf("%q: %q is not HOST:PORT", item, addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: %q is not a port number", item, port)
		}
		for _, o := range out {
			switch {
			case o.Name == name:
				return nil, fmt.Errorf("node %s is listed twice", name)
			case o.Addr == net.JoinHostPort(host, port):
				return nil, fmt.Errorf("nodes %s and %s have the same address %s", o.Name, name, addr)
			}
		}
		out = append(out, ClusterNode{Name: name, Addr: net.JoinHostPort(host, port)})
	}
	return out, nil
}

// nodeName is the node's name: --node-name, else the default.
func (c *Config) nodeName() string {
	if c.NodeName != "" {
		return c.NodeName
	}
	return server.DefaultNodeName()
}

// validateCluster checks the cluster settings together: both or neither of --cluster-addr and
// --cluster-nodes, this node in the list at the port it listens on, distinct Raft ids.
func (c *Config) validateCluster() error {
	if c.ClusterAddr == "" && len(c.ClusterNodes) == 0 {
		return nil
	}
	if c.ClusterAddr == "" {
		return errors.New("cluster: --cluster-nodes needs --cluster-addr (this node's inter-node listener)")
	}
	if len(c.ClusterNodes) == 0 {
		return errors.New("cluster: --cluster-addr needs --cluster-nodes (the members, this node among them)")
	}
	name := c.nodeName()
	i := slices.IndexFunc(c.ClusterNodes, func(n ClusterNode) bool { return n.Name == name })
	if i < 0 {
		var names []string
		for _, n := range c.ClusterNodes {
			names = append(names, n.Name)
		}
		return fmt.Errorf("cluster: this node, %s, is not among --cluster-nodes (%s): give --node-name", name, strings.Join(names, ", "))
	}
	_, listenPort, _ := net.SplitHostPort(c.ClusterAddr)
	if _, port, _ := net.SplitHostPort(c.ClusterNodes[i].Addr); port != listenPort {
		return fmt.Errorf("cluster: --cluster-nodes lists %s at %s, but --cluster-addr %s listens on port %s", name, c.ClusterNodes[i].Addr, c.ClusterAddr, listenPort)
	}
	ids := map[uint64]string{}
	for _, n := range c.ClusterNodes {
		id := nodeID(n.Name)
		if other, dup := ids[id]; dup {
			return fmt.Errorf("cluster: node names %s and %s have the same Raft id: rename one", other, n.Name)
		}
		ids[id] = n.Name
	}
	return nil
}

// nodeID is a node's Raft id: FNV-1a of its name (never 0), so every node derives the same ids
// from the same list, whatever its order.
func nodeID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// clusterName is the transport handshake's cluster name: a hash of the member list, so that
// nodes started with different lists refuse each other.
func clusterName(nodes []ClusterNode) string {
	var items []string
	for _, n := range nodes {
		items = append(items, n.Name+"="+n.Addr)
	}
	slices.Sort(items)
	h := fnv.New64a()
	h.Write([]byte(strings.Join(items, ",")))
	return fmt.Sprintf("warren-%016x", h.Sum64())
}

// metaSM is the meta group's state machine: nothing is replicated through it yet, it counts the
// entries it is given.
type metaSM struct{ applied uint64 }

func (m *metaSM) Apply(ents []cluster.Entry) ([]any, error) {
	m.applied += uint64(len(ents))
	return make([]any, len(ents)), nil
}
func (m *metaSM) Snapshot() ([]byte, error) { return nil, nil }
func (m *metaSM) Restore([]byte) error      { return nil }

// startCluster starts the node's cluster host when the cluster settings are set (nil, nil when
// not: a single node). ln is the inter-node listener (nil: listen on cfg.ClusterAddr). The host
// keeps its Raft logs in store, beside the broker's records (the 'F' keys); the caller closes the
// host before the store.
func startCluster(cfg *Config, store storage.Store, log *slog.Logger, ln net.Listener) (*cluster.Host, error) {
	if cfg.ClusterAddr == "" {
		return nil, nil
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.ClusterAddr); err != nil {
			return nil, fmt.Errorf("cluster listener: %w", err)
		}
	}
	name := cfg.nodeName()
	peers := map[uint64]string{}
	var voters []uint64
	for _, n := range cfg.ClusterNodes {
		voters = append(voters, nodeID(n.Name))
		if n.Name != name {
			peers[nodeID(n.Name)] = n.Addr
		}
	}
	h, err := cluster.NewHost(cluster.HostOptions{ID: nodeID(name), Cluster: clusterName(cfg.ClusterNodes), Store: store,
		Listener: ln, Peers: peers, Logger: log.With("component", "cluster")})
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.CreateGroups(ctx, cluster.GroupSpec{ID: metaGroup, Voters: voters, SM: &metaSM{}}); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("cluster: meta group: %w", err)
	}
	log.Info("cluster host started (nothing is replicated yet: the meta group runs with a no-op state machine)",
		"node", name, "raft_id", nodeID(name), "cluster_addr", ln.Addr().String(), "members", len(cfg.ClusterNodes))
	return h, nil
}
