package fifo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// The model test: random command sequences applied to a State and checked against a ledger of
// every message (where it is: ready, returned, checked out to a consumer, pending at-least-once
// dead-lettering, or gone, and why), driven by the commands and the effects. It checks:
//   - no message is lost or duplicated: a delivery takes a message that is ready (never one that
//     is out), and at the end every accepted enqueue is settled, dead-lettered, purged or still
//     held, each exactly once;
//   - FIFO: a delivery, a basic.get, an expiry or a drop takes the head: a returned message if
//     any, else the oldest ready one;
//   - the replies: deduplication as the producer's sequence numbers predict, Purge's count;
//   - the counts (ready, unacked, pending dead letters, bytes) after every command, and prefetch;
//   - determinism and snapshots: a twin applies the same log, replacing itself at random with
//     Restore(Marshal()); its replies and effects and its final Marshal must be identical;
//   - checkpoints: a MarshalCheckpoint at index C, once the release cursor passed C, plus the log
//     after C rebuilds a state whose Marshal is identical to the live one's.
func TestModel(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 40
	}
	seen := map[string]int{}
	for seed := range uint64(n) {
		if !t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, 400).addTo(seen) }) {
			return
		}
	}
	// The generator must reach every path the checks are about.
	for _, k := range []string{"deliver", "redeliver", "get", "dl:rejected", "dl:expired", "dl:maxlen",
		"dl:delivery_limit", "dl+", "duplicate", "out-of-sequence", "rejected", "purge", "down",
		"checkpoint", "restore", "active", "drained", "queue-expired", "noack", "suspected"} {
		if seen[k] == 0 {
			t.Errorf("no %s in %d runs: %v", k, n, seen)
		}
	}
	t.Logf("%v", seen)
}

// FuzzModel runs the model test with fuzzed seeds and lengths.
func FuzzModel(f *testing.F) {
	f.Add(uint64(1), uint16(200))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint16) {
		runModel(t, seed, int(steps%2000))
	})
}

type where uint8

const (
	wReady where = iota + 1
	wReturned
	wOut
	wDLX
	wSettled
	wDead
	wPurged
)

type mmsg struct {
	where where
	out   ConsumerKey
	count uint32
	size  uint64
}

type model struct {
	t       *testing.T
	rng     *rand.Rand
	s, twin *State
	log     [][]byte // log[i] is the entry at index i+1
	msgs    map[uint64]*mmsg
	ready   []uint64 // never-delivered messages in order
	next    map[uint64]uint64
	sent    map[uint64][]Command // producer -> its enqueues, for re-proposals
	cfg     Config
	now     int64
	keys    []ConsumerKey
	prefch  map[ConsumerKey]uint32 // attached prefetch consumers' limits
	noAck   map[ConsumerKey]bool
	// attached consumers; suspected: those of a disconnected owner
	attached, suspected map[ConsumerKey]bool

	ckpt      []byte
	ckptIndex uint64

	seen map[string]int // what happened, for TestModel's coverage check
}

func runModel(t *testing.T, seed uint64, steps int) *model {
	m := &model{
		t: t, rng: rand.New(rand.NewPCG(seed, 99)), s: New(), twin: New(),
		msgs: map[uint64]*mmsg{}, next: map[uint64]uint64{}, sent: map[uint64][]Command{},
		cfg: DefaultConfig(), prefch: map[ConsumerKey]uint32{}, noAck: map[ConsumerKey]bool{},
		attached: map[ConsumerKey]bool{}, suspected: map[ConsumerKey]bool{}, seen: map[string]int{},
	}
	for o := uint64(1); o <= 3; o++ {
		for _, tag := range []string{"x", "y"} {
			m.keys = append(m.keys, ConsumerKey{Owner: o, Tag: tag})
		}
	}
	for i := 0; i < steps && !t.Failed(); i++ {
		m.step()
	}
	if t.Failed() {
		return m
	}
	// Conservation: every accepted message is in exactly one place.
	held := 0
	for _, mm := range m.msgs {
		switch mm.where {
		case wReady, wReturned, wOut, wDLX:
			held++
		}
	}
	c := m.s.Counts()
	if uint64(held) != c.Ready+c.Unacked+c.DeadLetterPending {
		t.Errorf("seed %d: model holds %d, the queue %+v", seed, held, c)
	}
	if a, b := m.s.Marshal(), m.twin.Marshal(); !bytes.Equal(a, b) {
		t.Errorf("seed %d: the twin's snapshot differs", seed)
	}
	return m
}

func (m *model) addTo(seen map[string]int) {
	for k, v := range m.seen {
		seen[k] += v
	}
}

func (m *model) commands() Command {
	r := m.rng
	c := Command{}
	key := m.keys[r.IntN(len(m.keys))]
	outOf := func(k ConsumerKey) []uint64 {
		var ids []uint64
		for id, mm := range m.msgs {
			if mm.where == wOut && mm.out == k {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		ids = ids[:r.IntN(len(ids)+1)]
		if r.IntN(10) == 0 {
			ids = append(ids, uint64(r.IntN(len(m.log)+2))) // an id it does not hold
		}
		return ids
	}
	if r.IntN(4) == 0 { // a basic.get owner's messages are settled with the empty tag
		key.Tag = ""
	}
	switch x := r.IntN(100); {
	case x < 30:
		c.Kind = KindEnqueue
		c.Producer = uint64(r.IntN(4)) // 0: not deduplicated
		c.Body = fmt.Appendf(nil, "m%d", len(m.log)+1)
		c.Size = uint64(r.IntN(5))
		c.TTL = -1
		if r.IntN(8) == 0 {
			c.TTL = int64(r.IntN(50))
		}
		if c.Producer != 0 {
			next := m.next[c.Producer]
			if next == 0 {
				next = 1
			}
			c.Seq = next
			switch y := r.IntN(10); {
			case y == 0 && len(m.sent[c.Producer]) > 0: // a re-proposal of an earlier one
				old := m.sent[c.Producer]
				return old[r.IntN(len(old))]
			case y == 1:
				c.Seq = next + 1 + uint64(r.IntN(3)) // one was lost
			}
		}
	case x < 40:
		c.Kind = KindCheckout
		if key.Tag == "" {
			key.Tag = "x"
		}
		c.Consumer = key
		c.Credit = uint32(r.IntN(4))
		if r.IntN(5) == 0 {
			c.Mode = Credited
		}
		c.Priority = int32(r.IntN(3))
		c.Exclusive = r.IntN(20) == 0
		c.NoAck = r.IntN(8) == 0
	case x < 44:
		c.Kind = KindCancel
		c.Consumer = key
	case x < 60:
		c.Kind = KindSettle
		c.Consumer, c.IDs = key, outOf(key)
	case x < 68:
		c.Kind = KindReturn
		c.Consumer, c.IDs = key, outOf(key)
	case x < 72:
		c.Kind = KindDiscard
		c.Consumer, c.IDs = key, outOf(key)
	case x < 75:
		c.Kind = KindCredit
		c.Consumer = key
		c.Credit = uint32(r.IntN(4))
		c.Drain = r.IntN(2) == 0
	case x < 81:
		c.Kind = KindDequeue
		c.Owner = key.Owner
		c.Settled = r.IntN(2) == 0
	case x < 82:
		c.Kind = KindPurge
	case x < 83:
		c.Kind = KindDown
		c.Owner = key.Owner
	case x < 84:
		c.Kind = KindDisconnected
		c.Owner = key.Owner
	case x < 85:
		c.Kind = KindReconnected
		c.Owner = key.Owner
	case x < 90:
		c.Kind = KindTick
	case x < 93:
		c.Kind = KindConfig
		cfg := DefaultConfig()
		if r.IntN(2) == 0 {
			cfg.DeliveryLimit = int64(r.IntN(3))
		}
		if r.IntN(2) == 0 {
			cfg.MaxLength = int64(r.IntN(6))
		}
		if r.IntN(4) == 0 {
			cfg.MaxLengthBytes = int64(r.IntN(12))
		}
		cfg.Overflow = Overflow(r.IntN(3))
		cfg.DeadLetter = Strategy(r.IntN(2))
		cfg.SingleActive = r.IntN(3) == 0
		if r.IntN(3) == 0 {
			cfg.MessageTTL = int64(r.IntN(40))
		}
		if r.IntN(4) == 0 {
			cfg.Expires = int64(r.IntN(100))
		}
		c.Config = cfg
	default:
		c.Kind = KindDeadLetterSettled
		var pending []uint64
		for id, mm := range m.msgs {
			if mm.where == wDLX {
				pending = append(pending, id)
			}
		}
		slices.Sort(pending)
		for _, id := range pending {
			if r.IntN(2) == 0 {
				c.IDs = append(c.IDs, id)
			}
		}
	}
	return c
}

func (m *model) step() {
	t, r := m.t, m.rng
	if r.IntN(3) == 0 {
		m.now += int64(r.IntN(20))
	}
	cmd := m.commands()
	cmd.Time = m.now
	if r.IntN(20) == 0 {
		cmd.Time = m.now - 5 // a proposer with a slower clock: time does not go back
	}
	enc := cmd.Append(nil)
	m.log = append(m.log, enc)
	index := uint64(len(m.log))
	var c Command
	if err := Decode(enc, &c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	before := m.s.Counts()
	rep, effs := m.s.Apply(index, &c)
	effs = slices.Clone(effs)

	// The twin: same log, restored from its own snapshot now and then.
	if r.IntN(25) == 0 {
		tw, err := Restore(m.twin.Marshal())
		if err != nil {
			t.Fatalf("index %d: restore: %v", index, err)
		}
		m.twin = tw
		m.seen["restore"]++
	}
	trep, teffs := m.twin.Apply(index, &c)
	if !reflect.DeepEqual(rep, trep) || !sameEffects(effs, teffs) {
		t.Fatalf("index %d %v: the twin differs:\n%+v %+v\n%+v %+v", index, c.Kind, rep, effs, trep, teffs)
	}

	m.check(index, &c, rep, effs, before)
	m.count(&c, rep, effs)
	m.checkpoint(index)
}

// head reports whether id is at the head of the model's queue.
func (m *model) isHead(id uint64) bool {
	mm := m.msgs[id]
	if mm == nil {
		return false
	}
	for _, x := range m.msgs {
		if x.where == wReturned {
			return mm.where == wReturned // any returned one (their order is the scripts' business)
		}
	}
	return len(m.ready) > 0 && m.ready[0] == id
}

func (m *model) takeHead(id uint64, what string) {
	t := m.t
	if !m.isHead(id) {
		t.Fatalf("%s of %d: not the head (ready %v, where %v)", what, id, m.ready[:min(5, len(m.ready))], m.msgs[id])
	}
	if m.msgs[id].where == wReady {
		m.ready = m.ready[1:]
	}
}

func (m *model) check(index uint64, c *Command, rep Reply, effs []Effect, before Counts) {
	t := m.t
	// The command's own part.
	switch c.Kind {
	case KindEnqueue:
		want := StatusOK
		if c.Producer != 0 {
			next := max(m.next[c.Producer], 1)
			switch {
			case c.Seq < next:
				want = StatusDuplicate
			case c.Seq > next:
				want = StatusOutOfSequence
			default:
				m.next[c.Producer] = next + 1
				m.sent[c.Producer] = append(m.sent[c.Producer], *c)
			}
		}
		if rep.Status == StatusRejected && want == StatusOK {
			if m.cfg.Overflow == DropHead {
				t.Fatalf("index %d: rejected with drop-head", index)
			}
			break
		}
		if rep.Status != want {
			t.Fatalf("index %d: enqueue p=%d s=%d: %v, want %v", index, c.Producer, c.Seq, rep.Status, want)
		}
		if want == StatusOK {
			m.msgs[index] = &mmsg{where: wReady, size: c.Size}
			m.ready = append(m.ready, index)
		}
	case KindSettle, KindReturn, KindDiscard:
		for _, id := range c.IDs {
			mm := m.msgs[id]
			if mm == nil || mm.where != wOut || mm.out != c.Consumer {
				continue
			}
			switch c.Kind {
			case KindSettle:
				mm.where = wSettled
			case KindReturn:
				mm.count++
				mm.where = wReturned
			case KindDiscard:
				mm.where = wReturned // until its dead-letter effect
			}
		}
	case KindDown, KindDisconnected:
		for _, mm := range m.msgs {
			if mm.where == wOut && mm.out.Owner == c.Owner {
				mm.count++
				mm.where = wReturned
			}
		}
		for k := range m.attached {
			if k.Owner != c.Owner {
				continue
			}
			if c.Kind == KindDown {
				delete(m.prefch, k)
				delete(m.attached, k)
				delete(m.suspected, k)
			} else {
				m.suspected[k] = true
			}
		}
		if c.Kind == KindDown {
			delete(m.next, c.Owner)
			delete(m.sent, c.Owner)
		}
	case KindReconnected:
		for k := range m.suspected {
			if k.Owner == c.Owner {
				delete(m.suspected, k)
			}
		}
	case KindPurge:
		n := 0
		for _, mm := range m.msgs {
			if mm.where == wReady || mm.where == wReturned {
				mm.where = wPurged
				n++
			}
		}
		m.ready = nil
		if rep.Count != uint64(n) {
			t.Fatalf("index %d: purged %d, model %d", index, rep.Count, n)
		}
	case KindDequeue:
		if rep.Status == StatusEmpty {
			break
		}
		// Expiries at the head come first (as effects); the reply is checked after them.
	case KindConfig:
		m.cfg = c.Config
	case KindCheckout:
		if rep.Status == StatusOK && c.Mode == Prefetch && !c.NoAck {
			m.prefch[c.Consumer] = c.Credit
		} else if rep.Status == StatusOK {
			delete(m.prefch, c.Consumer)
		}
		if rep.Status == StatusOK {
			m.noAck[c.Consumer] = c.NoAck
			if !m.attached[c.Consumer] {
				delete(m.suspected, c.Consumer) // a new attachment
			}
			m.attached[c.Consumer] = true
		}
	case KindCancel:
		delete(m.prefch, c.Consumer)
		delete(m.attached, c.Consumer)
		delete(m.suspected, c.Consumer)
	case KindCredit:
		if _, ok := m.prefch[c.Consumer]; ok && rep.Status == StatusOK {
			m.prefch[c.Consumer] = c.Credit
		}
	}
	// basic.get's message leaves the head after the expiries before it and before those after it.
	gotTaken := false
	takeGot := func() {
		gotTaken = true
		mm := m.msgs[rep.Msg.ID]
		m.takeHead(rep.Msg.ID, "basic.get")
		if mm.count != rep.Msg.DeliveryCount {
			t.Fatalf("index %d: get of %d with count %d, model %d", index, rep.Msg.ID, rep.Msg.DeliveryCount, mm.count)
		}
		if c.Settled {
			mm.where = wSettled
		} else {
			mm.where, mm.out = wOut, ConsumerKey{Owner: c.Owner}
		}
	}
	// The effects, in order.
	for _, e := range effs {
		if c.Kind == KindDequeue && rep.Status == StatusOK && !gotTaken && !m.isHead(e.Msg.ID) && m.isHead(rep.Msg.ID) {
			takeGot()
		}
		switch e.Kind {
		case EffectDeliver:
			mm := m.msgs[e.Msg.ID]
			if m.suspected[e.Consumer] {
				t.Fatalf("index %d: delivery to %v, suspected", index, e.Consumer)
			}
			m.takeHead(e.Msg.ID, "delivery")
			if mm.count != e.Msg.DeliveryCount {
				t.Fatalf("index %d: delivery of %d with count %d, model %d", index, e.Msg.ID, e.Msg.DeliveryCount, mm.count)
			}
			if want := fmt.Sprintf("m%d", e.Msg.ID); string(e.Msg.Body) != want {
				t.Fatalf("index %d: delivery of %d carries %q", index, e.Msg.ID, e.Msg.Body)
			}
			if limit := m.prefch[e.Consumer]; limit > 0 {
				held := uint32(0)
				for _, x := range m.msgs {
					if x.where == wOut && x.out == e.Consumer {
						held++
					}
				}
				if held >= limit {
					t.Fatalf("index %d: delivery to %v holding %d, prefetch %d", index, e.Consumer, held, limit)
				}
			}
			mm.where, mm.out = wOut, e.Consumer
			if m.noAck[e.Consumer] {
				mm.where = wSettled
				m.seen["noack"]++
			}
		case EffectDeadLetter:
			mm := m.msgs[e.Msg.ID]
			if mm != nil && mm.where == wDLX {
				if e.AtLeastOnce {
					t.Fatalf("index %d: %d dead-lettered twice", index, e.Msg.ID)
				}
				mm.where = wDead // the strategy changed: the pending ones go at most once
				continue
			}
			switch e.Reason {
			case ReasonExpired:
				m.takeHead(e.Msg.ID, "expiry")
			case ReasonMaxLen:
				if e.Msg.ID == index && c.Kind == KindEnqueue && rep.Status == StatusRejected {
					mm = &mmsg{where: wReturned}
					m.msgs[index] = mm // reject-publish-dlx: the refused one
				} else {
					m.takeHead(e.Msg.ID, "drop")
				}
			case ReasonRejected, ReasonDeliveryLimit:
				if mm == nil || mm.where != wReturned && mm.where != wDLX {
					t.Fatalf("index %d: dead letter %d (%v) was %+v", index, e.Msg.ID, e.Reason, mm)
				}
			}
			if e.AtLeastOnce {
				mm.where = wDLX
			} else {
				mm.where = wDead
			}
		case EffectRejectPublish:
			if c.Kind != KindEnqueue || rep.Status != StatusRejected {
				t.Fatalf("index %d: reject effect for %v %v", index, c.Kind, rep.Status)
			}
		}
	}
	if c.Kind == KindDequeue && rep.Status == StatusOK && !gotTaken {
		takeGot()
	}
	if c.Kind == KindDeadLetterSettled {
		for _, id := range c.IDs {
			if mm := m.msgs[id]; mm != nil && mm.where == wDLX {
				mm.where = wDead
			}
		}
	}
	// Single active consumer: one active consumer, the one every delivery went to.
	if m.cfg.SingleActive {
		var active []ConsumerKey
		live := 0
		for _, ci := range m.s.Consumers() {
			if ci.Active {
				active = append(active, ci.Key)
			}
			if !ci.Suspected {
				live++
			}
			if ci.Suspected != m.suspected[ci.Key] {
				t.Fatalf("index %d: %v suspected %v, model %v", index, ci.Key, ci.Suspected, m.suspected[ci.Key])
			}
		}
		if live > 0 && len(active) != 1 || live == 0 && len(active) != 0 {
			t.Fatalf("index %d: single active consumer with %d active: %+v", index, len(active), m.s.Consumers())
		}
		for _, e := range effs {
			if e.Kind == EffectDeliver && e.Consumer != active[0] {
				t.Fatalf("index %d: delivery to %v, the active consumer is %v", index, e.Consumer, active[0])
			}
		}
	}
	// Counts.
	var want Counts
	for _, mm := range m.msgs {
		switch mm.where {
		case wReady, wReturned:
			want.Ready++
			want.ReadyBytes += mm.size
		case wOut:
			want.Unacked++
			want.UnackedBytes += mm.size
		case wDLX:
			want.DeadLetterPending++
			want.DeadLetterBytes += mm.size
		}
	}
	got := m.s.Counts()
	got.Consumers, got.Producers = 0, 0
	if got != want {
		t.Fatalf("index %d %v: counts %+v, model %+v (before %+v)", index, c.Kind, got, want, before)
	}
}

// checkpoint takes a checkpoint now and then, and once the release cursor passed it, rebuilds the
// state from it and the log after it.
func (m *model) checkpoint(index uint64) {
	t := m.t
	if m.ckpt == nil {
		if m.rng.IntN(30) == 0 {
			m.ckpt, m.ckptIndex = m.s.MarshalCheckpoint(), index
		}
		return
	}
	if m.s.ReleaseCursor() < m.ckptIndex {
		return
	}
	s, err := Restore(m.ckpt)
	if err != nil {
		t.Fatalf("restoring the checkpoint at %d: %v", m.ckptIndex, err)
	}
	for i := m.ckptIndex + 1; i <= index; i++ {
		var c Command
		if err := Decode(m.log[i-1], &c); err != nil {
			t.Fatal(err)
		}
		s.Apply(i, &c)
	}
	if !bytes.Equal(s.Marshal(), m.s.Marshal()) {
		t.Fatalf("the checkpoint at %d replayed to %d differs from the live state", m.ckptIndex, index)
	}
	m.ckpt = nil
	m.seen["checkpoint"]++
}

func sameEffects(a, b []Effect) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

func (m *model) count(c *Command, rep Reply, effs []Effect) {
	if rep.Status != StatusOK {
		m.seen[rep.Status.String()]++
	}
	switch {
	case c.Kind == KindDequeue && rep.Status == StatusOK:
		m.seen["get"]++
	case c.Kind == KindPurge && rep.Count > 0:
		m.seen["purge"]++
	case c.Kind == KindDown:
		m.seen["down"]++
	case c.Kind == KindDisconnected:
		for _, ci := range m.s.Consumers() {
			if ci.Suspected {
				m.seen["suspected"]++
			}
		}
	}
	for _, e := range effs {
		switch e.Kind {
		case EffectDeliver:
			if e.Msg.Redelivered() {
				m.seen["redeliver"]++
			} else {
				m.seen["deliver"]++
			}
		case EffectDeadLetter:
			if e.AtLeastOnce {
				m.seen["dl+"]++
			} else {
				m.seen["dl:"+e.Reason.String()]++
			}
		case EffectConsumerActive:
			m.seen["active"]++
		case EffectCreditDrained:
			m.seen["drained"]++
		case EffectQueueExpired:
			m.seen["queue-expired"]++
		}
	}
}
