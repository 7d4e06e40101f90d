package cluster

// A simulation of three hosts in one process over an in-memory network that drops, delays (and so
// reorders) messages and partitions nodes, with crashes that keep only what each node's Pebble
// synced (vfs.NewCrashableMem's CrashClone), driven by a seed; invariants are checked after every
// step of the fault schedule and at the end:
//
//   - election safety: no two nodes are ever seen leading one group in the same term;
//   - state machine safety: no two nodes (nor one node before and after a crash) ever applied
//     different entries at the same index of a group;
//   - durability: every proposal whose Propose returned is, once the faults stop, applied on
//     every node (retries keep their proposal id; the state machine drops the duplicates).
//
// The fault decisions (which message is lost, its delay, which node is cut off or crashed when)
// come from the seed; the hosts run on real goroutines and timers, so a failing seed replays the
// same fault pattern, not the same interleaving. WARREN_SIM_SEEDS=N runs seeds 1..N (default 3;
// 1 with -short); WARREN_SIM_SEED=S runs only seed S.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// simNet is the in-memory network. Every fault decision takes the seeded rng under mu.
type simNet struct {
	mu       sync.Mutex
	rng      *rand.Rand
	hosts    map[uint64]Handler // the nodes up now, by id
	cut      map[uint64]bool    // partitioned off: nothing to or from them
	drop     float64            // probability that a message is lost
	maxDelay time.Duration      // messages are delayed uniformly in [0, maxDelay)
	closed   bool
	wg       sync.WaitGroup // deliveries in flight
	sent     uint64
	lost     uint64
}

func newSimNet(seed uint64) *simNet {
	return &simNet{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), hosts: map[uint64]Handler{}, cut: map[uint64]bool{}}
}

// endpoint is HostOptions.Network for node id.
func (n *simNet) endpoint(id uint64) func(Handler) Network {
	return func(h Handler) Network {
		n.mu.Lock()
		n.hosts[id] = h
		n.mu.Unlock()
		return &simEndpoint{n: n, id: id, h: h}
	}
}

type simEndpoint struct {
	n  *simNet
	id uint64
	h  Handler
}

func (e *simEndpoint) Send(to, group uint64, m *pb.Message) bool {
	n := e.n
	data, err := proto.Marshal(m) // the host may reuse m: send a copy, as the transport's frame is
	if err != nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.hosts[e.id] != e.h {
		return false // this endpoint's host is gone
	}
	n.sent++
	lost := n.cut[e.id] || n.cut[to] || n.rng.Float64() < n.drop
	delay := time.Duration(0)
	if n.maxDelay > 0 {
		delay = time.Duration(n.rng.Int64N(int64(n.maxDelay)))
	}
	snap := m.GetType() == pb.MessageType_MsgSnap
	if lost {
		n.lost++
		if snap {
			// The TCP transport reports a snapshot it could not write; raft waits for that.
			e.h.SnapshotStatus(to, group, false)
		}
		return true // lost on the way, as a message a broken connection had queued
	}
	n.wg.Add(1)
	time.AfterFunc(delay, func() {
		defer n.wg.Done()
		var msg pb.Message
		if err := proto.Unmarshal(data, &msg); err != nil {
			panic(err)
		}
		n.mu.Lock()
		dst := n.hosts[to]
		arrives := dst != nil && !n.closed && !n.cut[e.id] && !n.cut[to]
		n.mu.Unlock()
		if arrives {
			dst.Receive(e.id, []Envelope{{Group: group, Msg: &msg}})
		}
		if snap {
			e.h.SnapshotStatus(to, group, arrives)
		}
	})
	return true
}

// Close unregisters the node (its host has stopped: Receive returns at once from now on).
func (e *simEndpoint) Close() error {
	e.n.mu.Lock()
	if e.n.hosts[e.id] == e.h {
		delete(e.n.hosts, e.id)
	}
	e.n.mu.Unlock()
	return nil
}

func (n *simNet) set(f func()) {
	n.mu.Lock()
	f()
	n.mu.Unlock()
}

// stop ends the network and waits for the deliveries in flight.
func (n *simNet) stop() {
	n.set(func() { n.closed = true })
	n.wg.Wait()
}

// simKV is the kv state machine recording, for the invariants, which proposal it applied at each
// index. The record outlives the node's crashes (the node's own history must not change either).
type simKV struct {
	*kv
	node, group uint64
	hist        *simHistory
}

func (s *simKV) Apply(ents []Entry) ([]any, error) {
	for _, e := range ents {
		s.hist.applied(s.node, s.group, e.Index, e.ID)
	}
	return s.kv.Apply(ents)
}

type simHistory struct {
	mu   sync.Mutex
	at   map[[2]uint64]ProposalID // (group, index) → the proposal applied there
	by   map[[2]uint64]uint64     // (group, index) → the first node that applied it
	errs []string
	// leaders: (group, term) → the node seen leading it.
	leaders map[[2]uint64]uint64
}

func (h *simHistory) applied(node, group, index uint64, id ProposalID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]uint64{group, index}
	if prev, ok := h.at[k]; ok {
		if prev != id && len(h.errs) < 20 {
			h.errs = append(h.errs, fmt.Sprintf("group %d index %d: node %d applied %v, node %d applied %v", group, index, node, id, h.by[k], prev))
		}
		return
	}
	h.at[k], h.by[k] = id, node
}

func (h *simHistory) leader(group, term, node uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]uint64{group, term}
	if prev, ok := h.leaders[k]; ok && prev != node && len(h.errs) < 20 {
		h.errs = append(h.errs, fmt.Sprintf("group %d term %d: nodes %d and %d both lead", group, term, prev, node))
	}
	h.leaders[k] = node
}

func (h *simHistory) failures() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.errs...)
}

type simNode struct {
	id    uint64
	fs    *vfs.MemFS
	store *storage.Pebble
	host  *Host
	kvs   map[uint64]*simKV
}

type sim struct {
	t      *testing.T
	rng    *rand.Rand // the schedule's own stream (the network has its own)
	net    *simNet
	hist   *simHistory
	nodes  []*simNode
	groups uint64
	opts   HostOptions

	mu    sync.Mutex
	acked map[string]uint64 // key → group, for every proposal whose Propose returned nil
}

func (s *sim) start(n *simNode) {
	s.t.Helper()
	var err error
	if n.store, err = storage.OpenPebble("data", storage.PebbleOptions{FS: n.fs, Logger: quiet}); err != nil {
		s.t.Fatal(err)
	}
	o := s.opts
	o.ID, o.Store, o.Network = n.id, n.store, s.net.endpoint(n.id)
	if n.host, err = NewHost(o); err != nil {
		s.t.Fatal(err)
	}
	n.kvs = map[uint64]*simKV{}
	var specs []GroupSpec
	for g := uint64(1); g <= s.groups; g++ {
		n.kvs[g] = &simKV{kv: newKV(), node: n.id, group: g, hist: s.hist}
		specs = append(specs, GroupSpec{ID: g, Voters: []uint64{1, 2, 3}, SM: n.kvs[g]})
	}
	if err := n.host.CreateGroups(context.Background(), specs...); err != nil {
		s.t.Fatal(err)
	}
}

// crash stops n as a power loss would: cut off first (a dead process sends nothing more), its
// file system then keeps only what was synced.
func (s *sim) crash(n *simNode) {
	s.net.set(func() { s.net.cut[n.id] = true })
	clone := n.fs.CrashClone(vfs.CrashCloneCfg{})
	s.stopNode(n)
	n.fs = clone
	s.net.set(func() { delete(s.net.cut, n.id) })
}

func (s *sim) stopNode(n *simNode) {
	if n.host != nil {
		if err := n.host.Close(); err != nil {
			s.t.Errorf("node %d: close: %v", n.id, err)
		}
		n.host = nil
	}
	if n.store != nil {
		_ = n.store.Close()
		n.store = nil
	}
}

// observe records who leads which group in which term, on every live node.
func (s *sim) observe() {
	for _, n := range s.nodes {
		if n.host == nil {
			continue
		}
		for g := uint64(1); g <= s.groups; g++ {
			if st, ok := n.host.Status(g); ok && st.State == "StateLeader" {
				s.hist.leader(g, st.Term, n.id)
			}
		}
	}
}

// proposer proposes unique keys through random live nodes until ctx ends, retrying each with its
// proposal id while its outcome is unknown; a key is acked when Propose returned nil.
func (s *sim) proposer(ctx context.Context, w int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	for i := 0; ctx.Err() == nil; i++ {
		g := 1 + rng.Uint64N(s.groups)
		key := fmt.Sprintf("w%d-%d", w, i)
		var id ProposalID
		var have bool
		for ctx.Err() == nil {
			s.mu.Lock()
			var up []*Host
			for _, n := range s.nodes {
				if n.host != nil {
					up = append(up, n.host)
				}
			}
			s.mu.Unlock()
			if len(up) == 0 {
				break
			}
			h := up[rng.IntN(len(up))]
			if !have {
				id, have = h.NewProposalID(), true
			}
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := h.ProposeID(pctx, g, id, []byte(key+"=v"))
			cancel()
			if err == nil {
				s.mu.Lock()
				s.acked[key] = g
				s.mu.Unlock()
				break
			}
			if !errors.Is(err, ErrProposalDropped) && !errors.Is(err, ErrUnknownOutcome) {
				s.t.Errorf("propose %s: %v", key, err)
				return
			}
		}
	}
}

func simSeeds(t *testing.T) []uint64 {
	if v := os.Getenv("WARREN_SIM_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("WARREN_SIM_SEED=%q: %v", v, err)
		}
		return []uint64{s}
	}
	n := 3
	if testing.Short() {
		n = 1
	}
	if v := os.Getenv("WARREN_SIM_SEEDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("WARREN_SIM_SEEDS=%q: want a count", v)
		}
	}
	var out []uint64
	for i := 1; i <= n; i++ {
		out = append(out, uint64(i))
	}
	return out
}

func TestSimFaults(t *testing.T) {
	for _, seed := range simSeeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runSim(t, seed) })
	}
}

func runSim(t *testing.T, seed uint64) {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, 7)), net: newSimNet(seed), groups: 3, acked: map[string]uint64{},
		hist: &simHistory{at: map[[2]uint64]ProposalID{}, by: map[[2]uint64]uint64{}, leaders: map[[2]uint64]uint64{}},
		opts: HostOptions{Cluster: "sim", TickInterval: 10 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1,
			SnapshotEntries: 64, CompactKeep: 8, Logger: quiet}}
	for i := range 3 {
		s.nodes = append(s.nodes, &simNode{id: uint64(i + 1), fs: vfs.NewCrashableMem()})
	}
	defer func() {
		for _, n := range s.nodes {
			s.stopNode(n)
		}
		s.net.stop()
	}()
	for _, n := range s.nodes {
		s.start(n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // before the nodes stop (deferred above)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.proposer(ctx, w, seed)
		}()
	}

	// The fault schedule: 30 steps of 100 ms, each a seeded action, invariants checked after each.
	crashed := map[uint64]int{} // node → steps until its restart
	for step := range 30 {
		switch a := s.rng.IntN(6); {
		case a == 0: // partition one node off (or heal)
			id := 1 + s.rng.Uint64N(3)
			s.net.set(func() {
				if s.net.cut[id] {
					delete(s.net.cut, id)
				} else if len(s.net.cut) == 0 {
					s.net.cut[id] = true
				}
			})
		case a == 1: // lossy and slow, or clean
			s.net.set(func() {
				s.net.drop = []float64{0, 0.05, 0.2}[s.rng.IntN(3)]
				s.net.maxDelay = time.Duration(s.rng.IntN(3)) * 10 * time.Millisecond
			})
		case a == 2 && len(crashed) == 0: // crash a node; it restarts a few steps later
			n := s.nodes[s.rng.IntN(3)]
			s.mu.Lock()
			s.crash(n)
			s.mu.Unlock()
			crashed[n.id] = 1 + s.rng.IntN(4)
		}
		for id, left := range crashed {
			if left--; left > 0 {
				crashed[id] = left
				continue
			}
			delete(crashed, id)
			s.mu.Lock()
			s.start(s.nodes[id-1])
			s.mu.Unlock()
		}
		// The step runs 100 ms, the leaders sampled every 5 ms meanwhile.
		tick := time.NewTicker(5 * time.Millisecond)
		for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
			<-tick.C
			s.observe()
		}
		tick.Stop()
		if errs := s.hist.failures(); len(errs) > 0 {
			t.Fatalf("seed %d step %d: invariants broken:\n%v", seed, step, errs)
		}
	}
	cancel()
	wg.Wait()

	// Heal: every node up, no loss, no partition; then every acked key is on every node, once.
	s.net.set(func() { s.net.cut, s.net.drop, s.net.maxDelay = map[uint64]bool{}, 0, 0 })
	for id := range crashed {
		s.start(s.nodes[id-1])
	}
	s.mu.Lock()
	acked := len(s.acked)
	s.mu.Unlock()
	if acked == 0 {
		t.Fatalf("seed %d: no proposal was acknowledged in the whole run", seed)
	}
	wait.For(t, 30*time.Second, "every acknowledged proposal applied on every node", func() bool {
		s.observe()
		for k, g := range s.acked {
			for _, n := range s.nodes {
				if v, ok := n.kvs[g].get(k); !ok || v != "v" {
					return false
				}
			}
		}
		return true
	})
	if errs := s.hist.failures(); len(errs) > 0 {
		t.Fatalf("seed %d: invariants broken:\n%v", seed, errs)
	}
	s.net.mu.Lock()
	t.Logf("seed %d: %d proposals acknowledged, %d messages sent, %d lost", seed, acked, s.net.sent, s.net.lost)
	s.net.mu.Unlock()
}
