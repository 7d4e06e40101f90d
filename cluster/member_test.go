package cluster

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/wait"
)

// members is group 1's voters on n, failing the test on an error.
func members(t *testing.T, n *testNode) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := n.host.Members(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func changeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// Membership changes of a group: remove a member, add a fresh one that catches up by snapshot,
// replace a dead node (remove it while it is down), and the configuration survives a restart.
func TestHostMembership(t *testing.T) {
	o := testOptions()
	o.SnapshotEntries = 16
	c := newTestCluster(t, 1, o)
	c.waitLeaders(20*time.Second, c.nodes)
	n1, n2, n3 := c.node(1), c.node(2), c.node(3)
	for i := range 40 {
		c.propose(c.nodes[i%3], 1, fmt.Sprintf("k%d", i), "v")
	}

	// Remove node 3 (through a follower or the leader: raft forwards), then drop its group.
	ctx, cancel := changeCtx()
	if err := n2.host.RemoveMember(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	cancel()
	wait.For(t, 5*time.Second, "nodes 1 and 2 to see voters [1 2]", func() bool {
		return slices.Equal(members(t, n1), []uint64{1, 2}) && slices.Equal(members(t, n2), []uint64{1, 2})
	})
	ctx, cancel = changeCtx()
	if err := n3.host.RemoveGroup(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	c.waitLeaders(10*time.Second, []*testNode{n1, n2})
	for i := 40; i < 80; i++ {
		c.propose(c.nodes[i%2], 1, fmt.Sprintf("k%d", i), "v")
	}

	// Add node 3 back as a new member with an empty log: created with the whole new membership,
	// then added; it catches up by the leader's snapshot (the log is compacted past its start).
	n3.kvs[1] = newKV()
	ctx, cancel = changeCtx()
	if err := n3.host.CreateGroups(ctx, GroupSpec{ID: 1, Voters: []uint64{1, 2, 3}, SM: n3.kvs[1]}); err != nil {
		t.Fatal(err)
	}
	if err := n1.host.AddMember(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	cancel()
	for i := range 80 {
		c.waitValue(20*time.Second, c.nodes, 1, fmt.Sprintf("k%d", i), "v")
	}
	n3.kvs[1].mu.Lock()
	restores := n3.kvs[1].restores
	n3.kvs[1].mu.Unlock()
	if restores == 0 {
		t.Error("the new member caught up without a snapshot")
	}
	c.propose(n3, 1, "from", "n3")
	c.waitValue(10*time.Second, c.nodes, 1, "from", "n3")

	// Replace a dead node: node 2 crashes; the other two remove it and go on with two voters.
	c.kill(n2)
	c.waitLeaders(10*time.Second, []*testNode{n1, n3})
	ctx, cancel = changeCtx()
	if err := n3.host.RemoveMember(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	cancel()
	c.propose(n1, 1, "after", "removal")
	c.waitValue(10*time.Second, []*testNode{n1, n3}, 1, "after", "removal")

	// The configuration is durable: nodes 1 and 3 restart with voters [1 3] and elect a leader.
	c.stop(n1)
	c.stop(n3)
	c.start(n1, nil)
	c.start(n3, nil)
	for _, n := range []*testNode{n1, n3} {
		if m := members(t, n); !slices.Equal(m, []uint64{1, 3}) {
			t.Fatalf("node %d after a restart: voters %v, want [1 3]", n.id, m)
		}
	}
	c.waitLeaders(10*time.Second, []*testNode{n1, n3})
	c.waitValue(10*time.Second, []*testNode{n1, n3}, 1, "after", "removal")

	// A bad request: node id 0.
	ctx, cancel = changeCtx()
	if err := n1.host.AddMember(ctx, 1, 0); err == nil {
		t.Error("adding node 0 was accepted")
	}
	cancel()
}
