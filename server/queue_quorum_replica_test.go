package server

import (
	"testing"

	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/cluster/fifo"
)

// A proposal retried with its id after an unknown outcome is applied once: the retry of this
// node's proposal gets the first application's replies, another node's retry is skipped, and
// the state holds each message once.
func TestQuorumSMAppliesARetriedProposalOnce(t *testing.T) {
	q := &quorumQueue{queueMeta: &queueMeta{name: "q"}, qh: &quorumHost{self: 7}, wake: make(chan struct{}, 1)}
	q.mu.st = fifo.New()
	q.mu.held = map[uint64]fifo.ConsumerKey{}
	q.mu.returns = map[fifo.ConsumerKey][]uint64{}
	sm := &quorumSM{q: q}
	batch := func(producer uint64, seqs ...uint64) []byte {
		var cs []fifo.Command
		for _, s := range seqs {
			cs = append(cs, fifo.Command{Kind: fifo.KindEnqueue, Producer: producer, Seq: s, Size: 1, TTL: -1, Body: []byte("m")})
		}
		return encodeBatch(cs)
	}
	mine, theirs := cluster.ProposalID{Node: 7, Seq: 1}, cluster.ProposalID{Node: 8, Seq: 1}
	ents := []cluster.Entry{
		{Index: 1, ID: mine, Data: batch(70, 1, 2)},
		{Index: 2, ID: theirs, Data: batch(80, 1)},
		{Index: 3, ID: mine, Data: batch(70, 1, 2)}, // the retry of this node's proposal
		{Index: 4, ID: theirs, Data: batch(80, 1)},  // the retry of another node's
		{Index: 5, ID: cluster.ProposalID{Node: 7, Seq: 2}, Data: batch(70, 3)},
	}
	out, err := sm.Apply(ents)
	if err != nil {
		t.Fatal(err)
	}
	first, ok := out[0].([]fifo.Reply)
	if !ok || len(first) != 2 || first[0].Status != fifo.StatusOK || first[1].Status != fifo.StatusOK {
		t.Fatalf("first application: %#v", out[0])
	}
	if retry, ok := out[2].([]fifo.Reply); !ok || len(retry) != 2 || &retry[0] != &first[0] {
		t.Fatalf("retry of this node's proposal: %#v, want the first replies themselves %#v", out[2], first)
	}
	if out[3] != nil {
		t.Fatalf("retry of another node's proposal: %#v, want nothing", out[3])
	}
	if c := q.mu.st.Counts(); c.Ready != 4 {
		t.Fatalf("%d messages, want 4 (each once)", c.Ready)
	}
}
