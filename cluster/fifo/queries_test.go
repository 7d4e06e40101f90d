package fifo

import (
	"reflect"
	"slices"
	"testing"
)

// TestQueries: what management and a new leader's host read.
func TestQueries(t *testing.T) {
	s := busyState()
	// busyState: a (single active, prefetch 2) got 4 and 5, returned 4 (redelivered to it),
	// discarded 5 (pending at least once), got 6; owner 3 got 7; a cancelled (holding 4 and 6);
	// b took over and got 8 and 9.
	c := s.Counts()
	want := Counts{Ready: 0, ReadyBytes: 0, Unacked: 5, UnackedBytes: 15, DeadLetterPending: 1, DeadLetterBytes: 3, Consumers: 1, Producers: 1}
	if c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	cs := s.Consumers()
	if len(cs) != 1 || cs[0].Key != (ConsumerKey{Owner: 2, Tag: "b"}) || !cs[0].Active || cs[0].Unacked != 2 || cs[0].Credit != 2 {
		t.Errorf("consumers %+v", cs)
	}
	p := s.PendingDeadLetters()
	if len(p) != 1 || p[0].Kind != EffectDeadLetter || p[0].Msg.ID != 5 || p[0].Reason != ReasonRejected || !p[0].AtLeastOnce || string(p[0].Msg.Body) != "abc" {
		t.Errorf("pending dead letters %+v", p)
	}
	var ids []uint64
	for _, m := range s.CheckedOut(ConsumerKey{Owner: 1, Tag: "a"}) {
		ids = append(ids, m.ID)
		if string(m.Body) != "abc" {
			t.Errorf("checked out %d: body %q", m.ID, m.Body)
		}
	}
	if !reflect.DeepEqual(ids, []uint64{4, 6}) || s.CheckedOut(ConsumerKey{Owner: 1, Tag: "zz"}) != nil {
		t.Errorf("checked out by a: %v", ids)
	}
	// They survive a snapshot.
	r, err := Restore(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts() != c || !reflect.DeepEqual(r.Consumers(), cs) || !reflect.DeepEqual(r.PendingDeadLetters(), p) || r.Config() != s.Config() || r.Index() != s.Index() {
		t.Error("the restored state answers differently")
	}
	// A checkpoint has no bodies.
	r, err = Restore(s.MarshalCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	if p := r.PendingDeadLetters(); len(p) != 1 || p[0].Msg.Body != nil || p[0].Msg.Size != 3 {
		t.Errorf("checkpoint's pending dead letters %+v", p)
	}
}

func TestNewWithConfigAndOwners(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxLength = 1
	cfg.Overflow = RejectPublish
	s := NewWithConfig(cfg)
	if s.Config() != cfg {
		t.Fatalf("config %+v, want %+v", s.Config(), cfg)
	}
	s.Apply(1, &Command{Kind: KindEnqueue, Size: 1, TTL: -1, Body: []byte("a")})
	s.Apply(2, &Command{Kind: KindEnqueue, Size: 1, TTL: -1, Body: []byte("b")})
	if r, _ := s.Apply(3, &Command{Kind: KindEnqueue, Size: 1, TTL: -1, Body: []byte("c")}); r.Status != StatusRejected {
		t.Fatalf("third enqueue over x-max-length 1 with reject-publish: %v, want rejected", r.Status)
	}
	s.Apply(4, &Command{Kind: KindCheckout, Consumer: ConsumerKey{Owner: 9, Tag: "c"}, Credit: 1})
	s.Apply(5, &Command{Kind: KindDequeue, Owner: 7})
	s.Apply(6, &Command{Kind: KindCheckout, Consumer: ConsumerKey{Owner: 9, Tag: "d"}, Credit: 1})
	if got := s.Owners(); !slices.Equal(got, []uint64{7, 9}) {
		t.Fatalf("owners %v, want [7 9]", got)
	}
}
