package server

import (
	"slices"
	"testing"

	"github.com/warrenmq/warren/cluster"
)

var testMembers = []ClusterNode{{Name: "a"}, {Name: "b"}, {Name: "c"}}

func modelKeys(m *metaModel) (live, gone []string) {
	for k := range m.Items {
		live = append(live, k)
	}
	for k := range m.Gone {
		gone = append(gone, k)
	}
	slices.Sort(live)
	slices.Sort(gone)
	return live, gone
}

// The model keeps each definition's put, deletes what refers to a deleted key (with tombstones),
// keeps the first declare of an exchange, queue or binding, and gives quorum queues ids from
// quorumGroupBase and deterministic members.
func TestMetaModel(t *testing.T) {
	m := newMetaModel()
	apply := func(c *metaCmd) { m.apply(c, testMembers) }
	apply(&metaCmd{Op: "v.put", Name: "v1"})
	apply(&metaCmd{Op: "u.put", Name: "al"})
	apply(&metaCmd{Op: "p.put", Vhost: "v1", Name: "al"})
	apply(&metaCmd{Op: "x.put", Vhost: "v1", Name: "x", Type: "topic"})
	apply(&metaCmd{Op: "x.put", Vhost: "v1", Name: "x", Type: "fanout"}) // a redeclare: the first stays
	apply(&metaCmd{Op: "q.put", Vhost: "v1", Name: "q"})
	apply(&metaCmd{Op: "b.put", Vhost: "v1", Source: "x", DestKind: "queue", Dest: "q", Key: "k"})
	qq := &metaCmd{Op: "q.put", Vhost: "v1", Name: "qq", Quorum: true, From: "b"}
	apply(qq)
	if m.Items[(&metaCmd{Op: "x.put", Vhost: "v1", Name: "x"}).metaKey()].Cmd.Type != "topic" {
		t.Fatal("a redeclare replaced the exchange's first declare")
	}
	if qq.Group != quorumGroupBase || !slices.Equal(qq.Voters, []uint64{NodeID("b"), NodeID("c"), NodeID("a")}) {
		t.Fatalf("quorum queue: group %d voters %v", qq.Group, qq.Voters)
	}
	bal := &metaCmd{Op: "q.put", Vhost: "v1", Name: "qq2", Quorum: true, From: "a", GroupSize: 2, Locator: "balanced"}
	apply(bal)
	if bal.Group != quorumGroupBase+1 || len(bal.Voters) != 2 || bal.Voters[0] != NodeID(testMembers[(quorumGroupBase+1)%3].Name) {
		t.Fatalf("balanced quorum queue: group %d voters %v", bal.Group, bal.Voters)
	}

	apply(&metaCmd{Op: "q.del", Vhost: "v1", Name: "q"}) // takes the binding with it
	if _, ok := m.Gone[(&metaCmd{Op: "b.put", Vhost: "v1", Source: "x", DestKind: "queue", Dest: "q", Key: "k"}).metaKey()]; !ok {
		t.Fatal("the queue's binding has no tombstone")
	}
	apply(&metaCmd{Op: "u.del", Name: "al"}) // takes the permission
	live, gone := modelKeys(m)
	want := []string{"q\x00v1\x00qq", "q\x00v1\x00qq2", "v\x00v1", "x\x00v1\x00x"}
	if !slices.Equal(live, want) {
		t.Fatalf("live keys %q, want %q", live, want)
	}
	if len(gone) != 4 { // q, its binding, the user, its permission
		t.Fatalf("tombstones %q", gone)
	}
	apply(&metaCmd{Op: "v.del", Name: "v1"})
	live, _ = modelKeys(m)
	if len(live) != 0 {
		t.Fatalf("after the vhost's delete: %q", live)
	}
	// Re-creating a deleted key drops its tombstone; the replay is in application order.
	apply(&metaCmd{Op: "v.put", Name: "v1"})
	r := m.replay()
	if last := r[len(r)-1]; last.Op != "v.put" {
		t.Fatalf("replay ends with %s", last.Op)
	}
	if _, ok := m.Gone["v\x00v1"]; ok {
		t.Fatal("a re-created vhost kept its tombstone")
	}
}

// A snapshot restores the same model, and a retried proposal (same id) is applied once.
func TestMetaSMSnapshotAndDedup(t *testing.T) {
	s := &Server{}
	s.meta = newMetaApplier(s, 0)
	sm := newMetaSM(s, testMembers)
	enc := func(c *metaCmd) []byte {
		data, err := gobEncode(c)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	id := cluster.ProposalID{Node: 1, Seq: 7}
	ents := []cluster.Entry{
		{Index: 1, ID: id, Data: enc(&metaCmd{Op: "v.put", Name: "v1"})},
		{Index: 2, ID: id, Data: enc(&metaCmd{Op: "v.put", Name: "v1"})},
		{Index: 3, ID: cluster.ProposalID{Node: 1, Seq: 8}, Data: enc(&metaCmd{Op: "q.put", Vhost: "v1", Name: "qq", Quorum: true, From: "a"})},
	}
	res, err := sm.Apply(ents)
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != res[1] {
		t.Fatal("a retried proposal got a new application")
	}
	if sm.m.Seq != 2 {
		t.Fatalf("applied %d commands, want 2", sm.m.Seq)
	}
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	other := newMetaSM(s, testMembers)
	if err := other.Restore(snap); err != nil {
		t.Fatal(err)
	}
	a, _ := modelKeys(sm.m)
	b, _ := modelKeys(other.m)
	if !slices.Equal(a, b) || other.m.NextGroup != quorumGroupBase+1 || !slices.Equal(other.m.Seen, sm.m.Seen) {
		t.Fatalf("restored model differs: %q vs %q, next group %d", a, b, other.m.NextGroup)
	}
	// After a restore, a retry of an id applied before it is still dropped.
	res, err = other.Apply([]cluster.Entry{{Index: 4, ID: id, Data: enc(&metaCmd{Op: "v.put", Name: "v2"})}})
	if err != nil {
		t.Fatal(err)
	}
	if op := res[0].(*metaOp); op.cmd != nil || other.m.Seq != 2 {
		t.Fatal("a retry of a proposal applied before the snapshot was applied again")
	}
	s.meta.stop(false)
}
