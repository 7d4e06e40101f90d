package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
)

// Fifty groups on three hosts over TCP: all elect, proposals made on every node apply on every
// node, and each Ready cycle writes its groups in one synced batch.
func TestHostManyGroups(t *testing.T) {
	const groups = 50
	c := newTestCluster(t, groups, testOptions())
	for _, n := range c.nodes {
		// CreateGroups bootstrapped all 50 groups in one synced write.
		if got := n.host.log.Syncs(); got != 1 {
			t.Fatalf("node %d: %d synced writes to create %d groups, want 1", n.id, got, groups)
		}
	}
	c.waitLeaders(20*time.Second, c.nodes)

	// Every group gets 5 keys, each proposed through a different node than the last, all groups
	// at once.
	var wg sync.WaitGroup
	for g := uint64(1); g <= groups; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				n := c.nodes[(int(g)+i)%3]
				c.propose(n, g, fmt.Sprintf("k%d", i), fmt.Sprintf("g%d-v%d", g, i))
			}
		}()
	}
	wg.Wait()
	for g := uint64(1); g <= groups; g++ {
		for i := range 5 {
			c.waitValue(10*time.Second, c.nodes, g, fmt.Sprintf("k%d", i), fmt.Sprintf("g%d-v%d", g, i))
		}
	}
	for _, n := range c.nodes {
		st := n.host.Stats()
		// One synced batch per Ready cycle at most (the +1 is CreateGroups' bootstrap).
		if syncs := n.host.log.Syncs(); syncs != st.Writes+1 || st.Writes+st.Unsynced > st.Cycles {
			t.Fatalf("node %d: %d synced batches, %d synced and %d unsynced cycle writes, %d cycles", n.id, syncs, st.Writes, st.Unsynced, st.Cycles)
		}
		// Groups share fsyncs: more group updates than writes, and some write held many groups.
		if st.GroupWrites <= st.Writes || st.MaxGroupsPerWrite < 10 {
			t.Fatalf("node %d: %d group updates in %d writes (at most %d in one): groups do not share fsyncs",
				n.id, st.GroupWrites, st.Writes, st.MaxGroupsPerWrite)
		}
		t.Logf("node %d: %d cycles, %d synced writes (+%d unsynced), %.1f groups per synced write (max %d); transport %+v", n.id, st.Cycles, st.Writes, st.Unsynced,
			float64(st.GroupWrites)/float64(st.Writes), st.MaxGroupsPerWrite, st.Transport)
	}
	// The status is set at the end of a group's cycle, just after its state machine applied: it
	// may trail what the state machine shows by that much.
	for g := uint64(1); g <= groups; g++ {
		for _, n := range c.nodes {
			var s GroupStatus
			if !wait.Until(10*time.Second, wait.Interval, func() bool {
				s, _ = n.host.Status(g)
				return s.Applied >= 6 && s.Commit >= s.Applied && s.Term > 0 && s.Leader != 0 && s.Pending == 0
			}) {
				t.Fatalf("node %d group %d: status %+v", n.id, g, s)
			}
		}
	}
}

// The leader of a group is killed (power loss: its store keeps only what was synced): the others
// elect a new leader within seconds with every committed entry; more is committed, enough that
// the log is compacted past the killed node; restarted from its store, that node rejoins and
// catches up by itself, through the leader's snapshot.
func TestHostLeaderKillAndRestart(t *testing.T) {
	const groups = 5
	o := testOptions()
	o.SnapshotEntries = 20
	c := newTestCluster(t, groups, o)
	c.waitLeaders(20*time.Second, c.nodes)
	for g := uint64(1); g <= groups; g++ {
		for i := range 10 {
			c.propose(c.nodes[i%3], g, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
	}
	victim := c.node(c.leader(1, c.nodes))
	c.kill(victim)
	start := time.Now()
	rest := c.up()
	c.waitLeaders(10*time.Second, rest)
	t.Logf("a new leader for every group %v after killing node %d", time.Since(start), victim.id)
	if l := c.leader(1, rest); l == victim.id {
		t.Fatalf("group 1 still led by the killed node %d", l)
	}
	for g := uint64(1); g <= groups; g++ {
		for i := range 10 {
			c.waitValue(5*time.Second, rest, g, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
	}
	// 50 more entries per group: snapshots at every 20, the log compacted past the victim.
	for g := uint64(1); g <= groups; g++ {
		for i := 10; i < 60; i++ {
			c.propose(rest[i%2], g, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
	}
	for _, n := range rest {
		for g := uint64(1); g <= groups; g++ {
			if first, _ := n.host.log.Group(g).FirstIndex(); first < 40 {
				t.Fatalf("node %d group %d: log not compacted (first index %d)", n.id, g, first)
			}
		}
	}
	c.start(victim, nil)
	restoresAtStart := map[uint64]int{}
	for g, s := range victim.kvs {
		s.mu.Lock()
		restoresAtStart[g] = s.restores
		s.mu.Unlock()
	}
	for g := uint64(1); g <= groups; g++ {
		for i := range 60 {
			c.waitValue(20*time.Second, c.nodes, g, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
		s := victim.kvs[g]
		s.mu.Lock()
		restores := s.restores
		s.mu.Unlock()
		if restores <= restoresAtStart[g] {
			t.Fatalf("group %d: the restarted node caught up without a snapshot from the leader", g)
		}
	}
	// It takes part again: a proposal through it applies everywhere.
	c.propose(victim, 1, "after", "restart")
	c.waitValue(10*time.Second, c.nodes, 1, "after", "restart")
}

// A node cut off from the other two (its transport isolated): the groups it led step down
// (CheckQuorum) and the majority elects leaders and commits; a proposal made on the isolated
// leader fails (dropped or unknown outcome) and is never applied; healed, the node catches up.
func TestHostPartitionCheckQuorum(t *testing.T) {
	const groups = 10
	c := newTestCluster(t, groups, testOptions())
	c.waitLeaders(20*time.Second, c.nodes)
	cut := c.node(c.leader(1, c.nodes))
	var others []*testNode
	for _, n := range c.nodes {
		if n != cut {
			others = append(others, n)
		}
	}
	var led []uint64
	for g := uint64(1); g <= groups; g++ {
		if c.leader(g, c.nodes) == cut.id {
			led = append(led, g)
		}
	}
	cut.host.Transport().SetIsolated(true)
	// A proposal on the isolated node where it follows: it cannot reach the leader, so it is
	// dropped at once (or, if the node already forgot its leader, refused).
	for g := uint64(1); g <= groups; g++ {
		if c.leader(g, c.nodes) != cut.id {
			_, err := cut.host.Propose(context.Background(), g, []byte("fwd=x"))
			if !errors.Is(err, ErrProposalDropped) || !(errors.Is(err, ErrLeaderUnreachable) || errors.Is(err, ErrNoLeader)) {
				t.Fatalf("group %d: proposal forwarded from the isolated node: %v", g, err)
			}
			t.Logf("group %d: proposal forwarded from the isolated node: %v", g, err)
			break
		}
	}
	// A proposal on the isolated leader of group 1: never committed.
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := cut.host.Propose(ctx, 1, []byte("lost=yes"))
		errc <- err
	}()
	start := time.Now()
	wait.For(t, 10*time.Second, "the isolated node to step down in every group it led", func() bool {
		for _, g := range led {
			if s, _ := cut.host.Status(g); s.State == "StateLeader" {
				return false
			}
		}
		return true
	})
	t.Logf("isolated node %d stepped down in %d groups after %v", cut.id, len(led), time.Since(start))
	c.waitLeaders(10*time.Second, others)
	err := <-errc
	if !errors.Is(err, ErrUnknownOutcome) && !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal on the isolated leader: %v, want ErrUnknownOutcome or ErrProposalDropped", err)
	}
	t.Logf("proposal on the isolated leader: %v", err)
	for g := uint64(1); g <= groups; g++ {
		c.propose(others[int(g)%2], g, "during", "partition")
	}
	cut.host.Transport().SetIsolated(false)
	for g := uint64(1); g <= groups; g++ {
		c.waitValue(20*time.Second, c.nodes, g, "during", "partition")
	}
	c.waitLeaders(20*time.Second, c.nodes)
	for _, n := range c.nodes {
		if v, ok := n.kvs[1].get("lost"); ok {
			t.Fatalf("node %d applied the isolated leader's uncommitted proposal (lost=%s)", n.id, v)
		}
		for g := uint64(1); g <= groups; g++ {
			if _, ok := n.kvs[g].get("fwd"); ok {
				t.Fatalf("node %d group %d applied a dropped proposal", n.id, g)
			}
		}
	}
}

// Proposal errors and deduplication, runtime group creation and removal.
func TestHostProposalsAndGroups(t *testing.T) {
	o := testOptions()
	o.MaxFrame = 64 << 10
	c := newTestCluster(t, 1, o)
	c.waitLeaders(20*time.Second, c.nodes)
	n := c.nodes[0]
	ctx := context.Background()

	if _, err := n.host.Propose(ctx, 99, []byte("a=b")); !errors.Is(err, ErrProposalDropped) || !errors.Is(err, ErrNoGroup) {
		t.Fatalf("propose to an unknown group: %v", err)
	}
	if _, err := n.host.Propose(ctx, 1, make([]byte, 64<<10)); !errors.Is(err, ErrProposalDropped) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("propose an entry larger than a frame: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.host.Propose(cctx, 1, []byte("a=b")); !errors.Is(err, context.Canceled) ||
		!(errors.Is(err, ErrProposalDropped) || errors.Is(err, ErrUnknownOutcome)) {
		t.Fatalf("propose with a cancelled context: %v", err)
	}

	// The same proposal id twice: the state machine applies it once; the retry gets the first
	// result.
	id := n.host.NewProposalID()
	if _, err := n.host.ProposeID(ctx, 1, id, []byte("x=1")); err != nil {
		t.Fatal(err)
	}
	if _, err := n.host.ProposeID(ctx, 1, n.host.NewProposalID(), []byte("x=2")); err != nil {
		t.Fatal(err)
	}
	res, err := n.host.ProposeID(ctx, 1, id, []byte("x=3"))
	if err != nil {
		t.Fatal(err)
	}
	if res != "" {
		t.Fatalf("retried proposal's result %q, want the first's (\"\")", res)
	}
	c.waitValue(5*time.Second, c.nodes, 1, "x", "2")
	for _, m := range c.nodes {
		m.kvs[1].mu.Lock()
		applies := m.kvs[1].applies
		m.kvs[1].mu.Unlock()
		if applies != 2 {
			t.Fatalf("node %d applied %d entries, want 2 (the retry is a duplicate)", m.id, applies)
		}
	}

	// ReadIndex: a write acknowledged on one node is visible on another once its ReadIndex returns
	// (without it, the other node may not have applied it yet).
	for i := range 20 {
		val := fmt.Sprint(i)
		if _, err := c.nodes[0].host.Propose(ctx, 1, []byte("lin="+val)); err != nil {
			t.Fatal(err)
		}
		reader := c.nodes[1+i%2]
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := reader.host.ReadIndex(rctx, 1)
		cancel()
		if err != nil {
			t.Fatalf("read index on node %d: %v", reader.id, err)
		}
		if v, _ := reader.kvs[1].get("lin"); v != val {
			t.Fatalf("node %d after ReadIndex: lin=%q, want %q", reader.id, v, val)
		}
	}
	if err := n.host.ReadIndex(ctx, 99); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("read index of an unknown group: %v", err)
	}

	// A group made at runtime on all three, used, then removed.
	sms := map[uint64]*kv{}
	for _, m := range c.nodes {
		sms[m.id] = newKV()
		if err := m.host.CreateGroups(ctx, GroupSpec{ID: 7, Voters: []uint64{1, 2, 3}, SM: sms[m.id]}); err != nil {
			t.Fatal(err)
		}
		if err := m.host.CreateGroups(ctx, GroupSpec{ID: 7, Voters: []uint64{1, 2, 3}, SM: newKV()}); !errors.Is(err, ErrGroupExists) {
			t.Fatalf("creating group 7 twice: %v", err)
		}
	}
	wait.For(t, 20*time.Second, "group 7 to elect", func() bool { return c.leader(7, c.nodes) != 0 })
	var res7 any
	id7 := c.nodes[2].host.NewProposalID()
	wait.For(t, 20*time.Second, "a proposal to group 7", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var err error
		res7, err = c.nodes[2].host.ProposeID(cctx, 7, id7, []byte("seven=7"))
		return err == nil
	})
	if res7 != "" {
		t.Fatalf("first set's result %q, want \"\"", res7)
	}
	wait.For(t, 5*time.Second, "group 7's entry on every node", func() bool {
		for _, s := range sms {
			if v, _ := s.get("seven"); v != "7" {
				return false
			}
		}
		return true
	})
	for _, m := range c.nodes {
		if err := m.host.RemoveGroup(ctx, 7); err != nil {
			t.Fatal(err)
		}
		for _, g := range m.host.StoredGroups() {
			if g == 7 {
				t.Fatalf("node %d still stores group 7", m.id)
			}
		}
		if _, ok := m.host.Status(7); ok {
			t.Fatalf("node %d still reports group 7", m.id)
		}
		if _, err := m.host.Propose(ctx, 7, []byte("a=b")); !errors.Is(err, ErrNoGroup) {
			t.Fatalf("propose to a removed group: %v", err)
		}
	}
	if err := n.host.RemoveGroup(ctx, 7); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("removing group 7 twice: %v", err)
	}

	// A group whose other voters are not running has no leader: proposals are dropped at once.
	if err := n.host.CreateGroups(ctx, GroupSpec{ID: 8, Voters: []uint64{1, 2, 3}, SM: newKV()}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.host.Propose(ctx, 8, []byte("a=b")); !errors.Is(err, ErrProposalDropped) || !errors.Is(err, ErrNoLeader) {
		t.Fatalf("propose to a group without a leader: %v", err)
	}
	if err := n.host.ReadIndex(ctx, 8); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("read index of a group without a leader: %v", err)
	}
	if err := n.host.CreateGroups(ctx, GroupSpec{ID: 10, Voters: []uint64{1, 2, 3}, SM: newKV()},
		GroupSpec{ID: 9, Voters: []uint64{2, 3}, SM: newKV()}); err == nil {
		t.Fatal("created a group this node is not a voter of")
	}
	if _, ok := n.host.Status(10); ok {
		t.Fatal("a failed CreateGroups started some of its groups")
	}
}

// Every node killed at once (power loss) and restarted from its store: each restores its state
// machines from its own latest snapshot and replays its log after it; every acknowledged entry is
// there, and the groups elect and take proposals again.
func TestHostFullRestart(t *testing.T) {
	const groups = 3
	o := testOptions()
	o.SnapshotEntries = 7
	c := newTestCluster(t, groups, o)
	c.waitLeaders(20*time.Second, c.nodes)
	for g := uint64(1); g <= groups; g++ {
		for i := range 20 {
			c.propose(c.nodes[i%3], g, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
	}
	for _, n := range c.nodes {
		c.kill(n)
	}
	for _, n := range c.nodes {
		c.start(n, nil)
	}
	for _, n := range c.nodes {
		for g := uint64(1); g <= groups; g++ {
			n.kvs[g].mu.Lock()
			restores := n.kvs[g].restores
			n.kvs[g].mu.Unlock()
			if restores != 1 {
				t.Fatalf("node %d group %d: %d restores at start, want 1 (its own latest snapshot)", n.id, g, restores)
			}
		}
	}
	c.waitLeaders(20*time.Second, c.nodes)
	for g := uint64(1); g <= groups; g++ {
		for i := range 20 {
			c.waitValue(10*time.Second, c.nodes, g, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
		}
		c.propose(c.nodes[int(g)%3], g, "after", "restart")
		c.waitValue(10*time.Second, c.nodes, g, "after", "restart")
	}
}

// failingStore fails every Apply once fail is set.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

func (s *failingStore) Apply(b *storage.Batch, sync bool) error {
	if s.fail.Load() {
		return errors.New("disk on fire")
	}
	return s.Store.Apply(b, sync)
}

// A single-member group elects itself; when the store fails, the host stops: proposals fail, Err
// says why.
func TestHostStoreFailure(t *testing.T) {
	st := &failingStore{Store: storage.NewMemStore()}
	o := testOptions()
	o.ID, o.Store, o.Listener = 1, st, listen(t, "127.0.0.1")
	h, err := NewHost(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}()
	s := newKV()
	if err := h.CreateGroups(context.Background(), GroupSpec{ID: 1, Voters: []uint64{1}, SM: s}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the single member to lead", func() bool { return h.Leader(1) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Propose(ctx, 1, []byte("a=1")); err != nil {
		t.Fatal(err)
	}
	if h.Err() != nil {
		t.Fatalf("Err %v while running", h.Err())
	}
	st.fail.Store(true)
	_, err = h.Propose(ctx, 1, []byte("a=2"))
	if !errors.Is(err, ErrStopped) || !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("propose on a failed store: %v", err)
	}
	wait.For(t, 10*time.Second, "Err", func() bool { return h.Err() != nil })
	if !strings.Contains(h.Err().Error(), "disk on fire") {
		t.Fatalf("Err %v", h.Err())
	}
	if v, _ := s.get("a"); v != "1" {
		t.Fatalf("a=%q after the failed write, want 1", v)
	}
}

// A host given no listener and no peers has no transport: its one-member groups elect themselves,
// commit and apply (a single broker's quorum queues run so).
func TestHostWithoutTransport(t *testing.T) {
	store, err := storage.OpenPebble("data", storage.PebbleOptions{FS: vfs.NewMem(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	o := testOptions()
	o.ID, o.Store, o.ElectionTicks = 1, store, 2
	h, err := NewHost(o)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Transport() != nil {
		t.Fatal("a host without listener or peers has a transport")
	}
	sm := newKV()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.CreateGroups(ctx, GroupSpec{ID: 7, Voters: []uint64{1}, SM: sm}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the one-member group to elect itself", func() bool { return h.Leader(7) == 1 })
	if _, err := h.Propose(ctx, 7, []byte("a=1")); err != nil {
		t.Fatal(err)
	}
	if v, ok := sm.get("a"); !ok || v != "1" {
		t.Fatalf("a = %q, %v after the proposal returned", v, ok)
	}
	if st := h.Stats(); st.Writes == 0 {
		t.Fatalf("no store writes: %+v", st)
	}
}
