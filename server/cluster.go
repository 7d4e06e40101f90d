package server

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/warrenmq/warren/cluster"
)

// The cluster (issue 16): with Options.Cluster set, the server runs ONE cluster.Host for every Raft
// group of the node — the meta group (metaGroupID, over every member) and the quorum queues'
// groups — with a transport on the cluster listener to the other members. Without it the node is a
// single broker exactly as before: the quorum queues' host is made on first use with no transport
// and node id quorumNodeID (queue_quorum_host.go).

// ClusterNode is one member of a cluster: its node name (Options.NodeName on that node) and its
// inter-node address as the others dial it (host:port).
type ClusterNode struct {
	Name string
	Addr string
}

// ClusterOptions makes the server a member of a cluster.
type ClusterOptions struct {
	// Listener is this node's inter-node listener (its --cluster-addr); the server closes it.
	// Outgoing inter-node connections leave from its IP.
	Listener net.Listener
	// Nodes lists every member, this node (Options.NodeName) among them: the same list on every
	// node (RabbitMQ's classic_config peer discovery).
	Nodes []ClusterNode
	// TickInterval is the Raft tick (0: the cluster package's default). Tests shorten it.
	TickInterval time.Duration
	// ProposeTimeout bounds a definition change's wait for the meta group (0: 10 s); past it the
	// change fails with ErrClusterUnavailable.
	ProposeTimeout time.Duration
	// SnapshotEntries: a group's state is snapshotted, and its log compacted, after this many
	// entries (0: the default, 8192). Tests lower it.
	SnapshotEntries uint64
}

// metaGroupID is the meta group's Raft group id: the largest, as the quorum queues' groups are
// their queues' store ids, which count up from 1.
const metaGroupID = ^uint64(0)

// NodeID is a node's Raft id: FNV-1a of its name (never 0), so every node derives the same ids
// from the same member list, whatever its order.
func NodeID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// ClusterHandshakeName is the transport handshake's cluster name: a hash of the member list, so
// that nodes started with different lists refuse each other.
func ClusterHandshakeName(nodes []ClusterNode) string {
	var items []string
	for _, n := range nodes {
		items = append(items, n.Name+"="+n.Addr)
	}
	slices.Sort(items)
	h := fnv.New64a()
	h.Write([]byte(strings.Join(items, ",")))
	return fmt.Sprintf("warren-%016x", h.Sum64())
}

// validate checks the member list against this node's name.
func (o *ClusterOptions) validate(self string) error {
	if o.Listener == nil {
		return fmt.Errorf("cluster: no inter-node listener")
	}
	seen := map[uint64]string{}
	found := false
	for _, n := range o.Nodes {
		id := NodeID(n.Name)
		if other, dup := seen[id]; dup {
			return fmt.Errorf("cluster: nodes %q and %q have the same raft id", other, n.Name)
		}
		seen[id] = n.Name
		found = found || n.Name == self
	}
	if !found {
		return fmt.Errorf("cluster: this node %q is not in the member list", self)
	}
	return nil
}

// startCluster starts the node's cluster host and its meta group (New calls it before recovery
// when Options.Cluster is set). The host is closed by quorumHost.close.
func (s *Server) startCluster() error {
	co := s.opts.Cluster
	if err := co.validate(s.opts.NodeName); err != nil {
		_ = co.Listener.Close()
		return err
	}
	self := NodeID(s.opts.NodeName)
	peers := map[uint64]string{}
	var voters []uint64
	for _, n := range co.Nodes {
		voters = append(voters, NodeID(n.Name))
		if n.Name != s.opts.NodeName {
			peers[NodeID(n.Name)] = n.Addr
		}
	}
	h, err := cluster.NewHost(cluster.HostOptions{ID: self, Cluster: ClusterHandshakeName(co.Nodes), Store: s.store,
		Listener: co.Listener, Peers: peers, TickInterval: co.TickInterval,
		SnapshotEntries: cmp.Or(co.SnapshotEntries, quorumSnapshotEntries), Logger: s.log.With("component", "cluster")})
	if err != nil {
		_ = co.Listener.Close()
		return fmt.Errorf("cluster host: %w", err)
	}
	s.meta = newMetaApplier(s, co.ProposeTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.CreateGroups(ctx, cluster.GroupSpec{ID: metaGroupID, Voters: voters, SM: newMetaSM(s, co.Nodes)}); err != nil {
		_ = h.Close()
		return fmt.Errorf("cluster: meta group: %w", err)
	}
	s.qq.useHost(h, self)
	s.log.Info("cluster host started",
		"node", s.opts.NodeName, "raft_id", self, "cluster_addr", co.Listener.Addr().String(), "members", len(co.Nodes))
	return nil
}

// MetaLeader returns the name of the meta group's leader as this node knows it ("" on a single
// node, or while no leader is known).
func (s *Server) MetaLeader() string {
	if s.opts.Cluster == nil {
		return ""
	}
	h, err := s.qq.host()
	if err != nil {
		return ""
	}
	lead := h.Leader(metaGroupID)
	for _, n := range s.opts.Cluster.Nodes {
		if NodeID(n.Name) == lead {
			return n.Name
		}
	}
	return ""
}

// ClusterMember is a member of the cluster as this node sees it.
type ClusterMember struct {
	Name string
	// Running: this node, or a member the transport is connected to.
	Running bool
}

// ClusterMembers lists the cluster's members in the configured order (this node alone on a
// single node).
func (s *Server) ClusterMembers() []ClusterMember {
	if s.opts.Cluster == nil {
		return []ClusterMember{{Name: s.opts.NodeName, Running: true}}
	}
	var tr *cluster.Transport
	if h, err := s.qq.host(); err == nil {
		tr = h.Transport()
	}
	out := make([]ClusterMember, 0, len(s.opts.Cluster.Nodes))
	for _, n := range s.opts.Cluster.Nodes {
		up := n.Name == s.opts.NodeName || tr != nil && tr.Connected(NodeID(n.Name))
		out = append(out, ClusterMember{Name: n.Name, Running: up})
	}
	return out
}

// MetaStatus is the meta group's Raft status on this node.
type MetaStatus = cluster.GroupStatus

// MetaStatus returns the meta group's status on this node (false on a single node).
func (s *Server) MetaStatus() (MetaStatus, bool) {
	if s.opts.Cluster == nil {
		return MetaStatus{}, false
	}
	h, err := s.qq.host()
	if err != nil {
		return MetaStatus{}, false
	}
	return h.Status(metaGroupID)
}
