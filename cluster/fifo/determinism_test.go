package fifo

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// TestTwoMembersSameLog: two members applying the same log (random, from the model test's
// generator) give the same replies and effects and byte-identical snapshots and checkpoints after
// every entry, whatever the order their maps iterate in.
func TestTwoMembersSameLog(t *testing.T) {
	for seed := range uint64(20) {
		m := runModel(t, 1000+seed, 300)
		a, b := New(), New()
		for i, enc := range m.log {
			var c Command
			if err := Decode(enc, &c); err != nil {
				t.Fatal(err)
			}
			ra, ea := a.Apply(uint64(i+1), &c)
			ea = append([]Effect(nil), ea...)
			rb, eb := b.Apply(uint64(i+1), &c)
			if !reflect.DeepEqual(ra, rb) || !sameEffects(ea, eb) {
				t.Fatalf("seed %d entry %d: the members differ: %+v %+v / %+v %+v", seed, i+1, ra, ea, rb, eb)
			}
			if !bytes.Equal(a.Marshal(), b.Marshal()) || !bytes.Equal(a.MarshalCheckpoint(), b.MarshalCheckpoint()) {
				t.Fatalf("seed %d entry %d: the snapshots differ", seed, i+1)
			}
		}
		if !bytes.Equal(a.Marshal(), m.s.Marshal()) {
			t.Fatalf("seed %d: a replay of the log differs from the model's state", seed)
		}
	}
}

// TestReproposal: a re-proposed enqueue (the same producer and sequence number at a later log
// index, as after a leader change whose proposal was in fact committed) is not applied twice,
// also after a snapshot in between; a gap is refused until the missing one comes.
func TestReproposal(t *testing.T) {
	s := New()
	enq := func(seq uint64, body string) Command {
		return Command{Kind: KindEnqueue, Producer: 5, Seq: seq, TTL: -1, Size: 1, Body: []byte(body)}
	}
	apply := func(i uint64, c Command) Status {
		r, _ := s.Apply(i, &c)
		return r.Status
	}
	steps := []struct {
		c    Command
		want Status
	}{
		{enq(1, "a"), StatusOK},
		{enq(2, "b"), StatusOK},
		{enq(2, "b"), StatusDuplicate}, // the re-proposal of a committed one
		{enq(4, "d"), StatusOutOfSequence},
		{enq(3, "c"), StatusOK},
		{enq(4, "d"), StatusOK},
		{enq(1, "a"), StatusDuplicate},
	}
	for i, st := range steps {
		if i == 4 {
			var err error
			if s, err = Restore(s.Marshal()); err != nil {
				t.Fatal(err)
			}
		}
		if got := apply(uint64(i+1), st.c); got != st.want {
			t.Fatalf("step %d (seq %d): %v, want %v", i, st.c.Seq, got, st.want)
		}
	}
	if n := s.Counts().Ready; n != 4 {
		t.Fatalf("%d messages, want 4 (a b c d once each)", n)
	}
	var got []string
	k := ConsumerKey{Owner: 1, Tag: "c"}
	_, effs := s.Apply(100, &Command{Kind: KindCheckout, Consumer: k})
	for _, e := range effs {
		got = append(got, string(e.Msg.Body))
	}
	if want := "a b c d"; strings.Join(got, " ") != want {
		t.Fatalf("delivered %q, want %q", strings.Join(got, " "), want)
	}
	// A stale index changes nothing.
	if r, effs := s.Apply(100, &Command{Kind: KindPurge}); r.Status != StatusStale || len(effs) != 0 || s.Counts().Unacked != 4 {
		t.Fatalf("stale index: %+v %v", r, effs)
	}
}
