package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// kv is the tests' replicated state machine: "key=value" entries set keys; a proposal id seen
// before is not applied again (its first result is returned).
type kv struct {
	mu       sync.Mutex
	m        map[string]string
	seen     map[ProposalID]string
	applies  int // entries applied (not duplicates)
	restores int // Restore calls with a snapshot
}

func newKV() *kv { return &kv{m: map[string]string{}, seen: map[ProposalID]string{}} }

func (s *kv) Apply(ents []Entry) ([]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]any, len(ents))
	for i, e := range ents {
		if prev, ok := s.seen[e.ID]; ok {
			out[i] = prev
			continue
		}
		k, v, ok := strings.Cut(string(e.Data), "=")
		if !ok {
			return nil, fmt.Errorf("entry %d: %q is not key=value", e.Index, e.Data)
		}
		prev := s.m[k]
		s.m[k] = v
		s.seen[e.ID] = prev
		s.applies++
		out[i] = prev
	}
	return out, nil
}

type kvSnap struct {
	M    map[string]string
	Seen []ProposalID
	Prev []string
}

func (s *kv) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := kvSnap{M: s.m}
	for id, p := range s.seen {
		sn.Seen = append(sn.Seen, id)
		sn.Prev = append(sn.Prev, p)
	}
	return json.Marshal(sn)
}

func (s *kv) Restore(data []byte) error {
	var sn kvSnap
	if err := json.Unmarshal(data, &sn); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m, s.seen = sn.M, map[ProposalID]string{}
	if s.m == nil {
		s.m = map[string]string{}
	}
	for i, id := range sn.Seen {
		s.seen[id] = sn.Prev[i]
	}
	s.restores++
	return nil
}

func (s *kv) get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}

// A three-node test cluster in one process: each node its own loopback address (127.0.0.11-13;
// 127.0.0.1 with distinct ports where those cannot be bound), its own Pebble on a crashable memory
// file system, groups 1..groups over all three.
type testNode struct {
	id    uint64
	addr  string
	dir   string // on disk (benchmarks) when set, else on fs
	fs    *vfs.MemFS
	store *storage.Pebble
	host  *Host
	kvs   map[uint64]*kv
}

type testCluster struct {
	t      testing.TB
	nodes  []*testNode
	groups int
	opts   HostOptions // template: ID, Store, Listener, Peers are filled per node
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// loopbackIPs are the nodes' addresses: 127.0.0.11-13 when they can be bound (Linux has all of
// 127/8 on lo), else 127.0.0.1 for all three.
func loopbackIPs(t testing.TB) []string {
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	for _, ip := range ips {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Logf("cannot bind %s (%v): the nodes share 127.0.0.1", ip, err)
			return []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"}
		}
		_ = ln.Close()
	}
	return ips
}

func testOptions() HostOptions {
	return HostOptions{Cluster: "test", TickInterval: 50 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: quiet}
}

func newTestCluster(t testing.TB, groups int, opts HostOptions) *testCluster {
	return newCluster(t, groups, opts, false)
}

// newCluster is newTestCluster with the stores on disk (in t.TempDir) when disk is set.
func newCluster(t testing.TB, groups int, opts HostOptions, disk bool) *testCluster {
	c := &testCluster{t: t, groups: groups, opts: opts}
	lns := make([]net.Listener, 3)
	for i, ip := range loopbackIPs(t) {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		n := &testNode{id: uint64(i + 1), addr: ln.Addr().String(), fs: vfs.NewCrashableMem()}
		if disk {
			n.dir = t.TempDir()
		}
		c.nodes = append(c.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
	})
	for i, n := range c.nodes {
		c.start(n, lns[i])
	}
	return c
}

func (c *testCluster) start(n *testNode, ln net.Listener) {
	t := c.t
	var err error
	if ln == nil {
		// A restart: the same address and port.
		if ln, err = net.Listen("tcp", n.addr); err != nil {
			t.Fatal(err)
		}
	}
	if n.dir != "" {
		n.store, err = storage.OpenPebble(n.dir, storage.PebbleOptions{Logger: quiet})
	} else {
		n.store, err = storage.OpenPebble("data", storage.PebbleOptions{FS: n.fs, Logger: quiet})
	}
	if err != nil {
		t.Fatal(err)
	}
	o := c.opts
	o.ID, o.Store, o.Listener, o.Peers = n.id, n.store, ln, map[uint64]string{}
	for _, p := range c.nodes {
		if p != n {
			o.Peers[p.id] = p.addr
		}
	}
	if n.host, err = NewHost(o); err != nil {
		t.Fatal(err)
	}
	n.kvs = map[uint64]*kv{}
	var specs []GroupSpec
	for g := uint64(1); g <= uint64(c.groups); g++ {
		n.kvs[g] = newKV()
		specs = append(specs, GroupSpec{ID: g, Voters: []uint64{1, 2, 3}, SM: n.kvs[g]})
	}
	if err := n.host.CreateGroups(context.Background(), specs...); err != nil {
		t.Fatal(err)
	}
}

func (c *testCluster) stop(n *testNode) {
	if n.host != nil {
		if err := n.host.Close(); err != nil {
			c.t.Errorf("node %d: close: %v", n.id, err)
		}
		n.host = nil
	}
	if n.store != nil {
		_ = n.store.Close()
		n.store = nil
	}
}

// kill stops n as a power loss would: its file system keeps only what was synced. The node is
// cut off first: a process that dies sends nothing after its last sync, while this one runs on
// until Close and might acknowledge writes the clone does not have.
func (c *testCluster) kill(n *testNode) {
	n.host.Transport().SetIsolated(true)
	clone := n.fs.CrashClone(vfs.CrashCloneCfg{})
	c.stop(n)
	n.fs = clone
}

func (c *testCluster) node(id uint64) *testNode { return c.nodes[id-1] }

func (c *testCluster) up() []*testNode {
	var out []*testNode
	for _, n := range c.nodes {
		if n.host != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader is group g's leader when every live node agrees on it and it says it leads (0: none).
func (c *testCluster) leader(g uint64, among []*testNode) uint64 {
	var lead uint64
	for _, n := range among {
		s, _ := n.host.Status(g)
		if s.Leader == 0 || (lead != 0 && s.Leader != lead) {
			return 0
		}
		lead = s.Leader
	}
	for _, n := range among {
		if n.id == lead {
			if s, _ := n.host.Status(g); s.State != "StateLeader" {
				return 0
			}
			return lead
		}
	}
	return 0
}

func (c *testCluster) waitLeaders(d time.Duration, among []*testNode) {
	c.t.Helper()
	wait.For(c.t, d, "every group to have one leader all live nodes agree on", func() bool {
		for g := uint64(1); g <= uint64(c.groups); g++ {
			if c.leader(g, among) == 0 {
				return false
			}
		}
		return true
	})
}

// propose sets key=val in group g through node n, retrying (with the same proposal id) while the
// proposal is dropped or its outcome unknown.
func (c *testCluster) propose(n *testNode, g uint64, key, val string) {
	c.t.Helper()
	id := n.host.NewProposalID()
	var last error
	if !wait.Until(20*time.Second, wait.Interval, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, last = n.host.ProposeID(ctx, g, id, []byte(key+"="+val))
		return last == nil || !(errors.Is(last, ErrProposalDropped) || errors.Is(last, ErrUnknownOutcome))
	}) || last != nil {
		c.t.Fatalf("node %d group %d: propose %s=%s: %v", n.id, g, key, val, last)
	}
}

// waitValue waits until every node in among has key=val in group g.
func (c *testCluster) waitValue(d time.Duration, among []*testNode, g uint64, key, val string) {
	c.t.Helper()
	wait.For(c.t, d, fmt.Sprintf("group %d key %s=%s on every live node", g, key, val), func() bool {
		for _, n := range among {
			if v, _ := n.kvs[g].get(key); v != val {
				return false
			}
		}
		return true
	})
}
