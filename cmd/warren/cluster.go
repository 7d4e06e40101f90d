package main

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/warrenmq/warren/server"
)

// The cluster settings (issue 16). Unset, the broker is one node exactly as before: no listener,
// no Raft. Set, the server is a cluster member (server.ClusterOptions; server/cluster.go runs the
// node's Raft host on the --cluster-addr listener).

// ClusterNode is one member of --cluster-nodes: the node's --node-name and its --cluster-addr as
// the other nodes dial it (host:port).
type ClusterNode = server.ClusterNode

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
		id := server.NodeID(n.Name)
		if other, dup := ids[id]; dup {
			return fmt.Errorf("cluster: node names %s and %s have the same Raft id: rename one", other, n.Name)
		}
		ids[id] = n.Name
	}
	return nil
}

// clusterOptions is the server's cluster settings when the cluster settings are set (nil, nil
// when not: a single node): the inter-node listener on cfg.ClusterAddr and the member list.
func clusterOptions(cfg *Config) (*server.ClusterOptions, error) {
	if cfg.ClusterAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.ClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster listener: %w", err)
	}
	return &server.ClusterOptions{Listener: ln, Nodes: cfg.ClusterNodes}, nil
}
