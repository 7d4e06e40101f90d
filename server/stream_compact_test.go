package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
)

// compactPublish appends one message (its own chunk) whose body is "offset:key" (key "" is a
// message without the key header) and returns the offset it got.
func compactPublish(t testing.TB, q *queue, header, key string, pad int) {
	t.Helper()
	sq := q.queueImpl.(*streamQueue)
	sq.mu.Lock()
	off := sq.mu.next
	sq.mu.Unlock()
	p := amqp.Properties{ContentType: "text/plain"}
	if key != "" {
		p.Headers = amqp.Table{header: key, "other": int32(1)}
	}
	raw, err := p.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("%d:%s:%s", off, key, strings.Repeat("p", pad))
	res, g := q.publish(&message{routingKey: q.name, props: raw, headers: p.Headers, body: []byte(body), persistent: true, arrived: nowMillis()})
	if res != published || g == nil {
		t.Fatalf("publish: %v", res)
	}
	<-g.done
	if g.err != nil {
		t.Fatal(g.err)
	}
}

// waitCompacted waits until every sealed segment of q is compacted and no compaction runs.
func waitCompacted(t testing.TB, q *queue) {
	t.Helper()
	sq := q.queueImpl.(*streamQueue)
	wait.For(t, 10*time.Second, "compaction of every sealed segment", func() bool {
		sq.mu.Lock()
		defer sq.mu.Unlock()
		_, more := sq.nextCompactLocked()
		return !more && !sq.compaction.running
	})
}

// compactSurvivors reads the stream's entries from the store: offset -> body.
func compactSurvivors(t testing.TB, st storage.Store, id uint64) (map[uint64]string, []uint64) {
	t.Helper()
	got := map[uint64]string{}
	var order []uint64
	start, end := storage.StreamRange(id)
	if err := st.ScanRange(start, end, func(k, v []byte) error {
		_, _, off, err := storage.ParseStreamEntryKey(k)
		if err != nil {
			return err
		}
		_, _, rec, err := parseStreamEntry(v)
		if err != nil {
			return err
		}
		m, err := decodeMessage(rec)
		if err != nil {
			return err
		}
		got[off] = string(m.body)
		order = append(order, off)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got, order
}

// checkCompaction compares the stream's entries with the model: every message published (keys
// by offset) is kept unless it has a key and a later message with that key is in a sealed
// segment; the newest segment is not compacted. Survivors keep their offsets and bodies.
func checkCompaction(t *testing.T, st storage.Store, q *queue, keys []string) {
	t.Helper()
	sq := q.queueImpl.(*streamQueue)
	sq.mu.Lock()
	segs := append([]streamSegment(nil), sq.mu.segs...)
	ready := sq.lenLocked()
	bytes := sq.bytesLocked()
	sq.mu.Unlock()
	active := segs[len(segs)-1].first
	first := segs[0].first
	latest := map[string]uint64{}
	for off := first; off < active; off++ {
		if k := keys[off]; k != "" {
			latest[k] = off
		}
	}
	want := map[uint64]bool{}
	for off := first; off < uint64(len(keys)); off++ {
		if k := keys[off]; off >= active || k == "" || latest[k] == off {
			want[off] = true
		}
	}
	got, order := compactSurvivors(t, st, q.id)
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("offsets out of order: %v", order)
		}
	}
	for off := range want {
		body, ok := got[off]
		if !ok {
			t.Fatalf("offset %d (key %q) was removed; the latest of its key in sealed segments is %d (active from %d)", off, keys[off], latest[keys[off]], active)
		}
		if !strings.HasPrefix(body, fmt.Sprintf("%d:%s:", off, keys[off])) {
			t.Fatalf("offset %d holds %q: a survivor moved", off, body)
		}
	}
	for off := range got {
		if !want[off] {
			t.Fatalf("offset %d (key %q) survived; %q's latest in sealed segments is %d", off, keys[off], keys[off], latest[keys[off]])
		}
	}
	if ready != int64(len(want)) {
		t.Fatalf("message count %d, want %d survivors", ready, len(want))
	}
	// The segments' bytes are what their surviving entries take.
	var stored int64
	start, end := storage.StreamRange(q.id)
	if err := st.ScanRange(start, end, func(k, v []byte) error { stored += int64(len(k) + len(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if stored != bytes {
		t.Fatalf("segments count %d bytes, the store holds %d", bytes, stored)
	}
}

// A model test: random keys (some messages without one), small segments, with and without
// retention by size; after every batch of
// publishes, what the store holds is exactly the model's survivors; a restart recovers the same
// state and compaction goes on across it (a key's older survivor in a segment compacted before
// the restart is removed when a newer one is sealed after it).
func TestStreamCompactionModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 17))
			st := storage.NewMemStore()
			defer st.Close()
			args := amqp.Table{"x-stream-max-segment-size-bytes": int32(400 + rng.IntN(800)), "x-stream-compaction": "key"}
			if seed >= 2 { // retention too: it drops compacted segments whole
				args["x-max-length-bytes"] = int32(2500)
			}
			header := "x-key"
			if seed%2 == 1 {
				header = "entity"
				args["x-stream-compaction-key-header"] = header
			}
			s, q := newStreamServer(t, st, "compact", args)
			nkeys := 1 + rng.IntN(12)
			var keys []string
			publish := func(n int) {
				for range n {
					k := ""
					if rng.IntN(5) > 0 {
						k = "k" + strconv.Itoa(rng.IntN(nkeys))
					}
					compactPublish(t, q, header, k, rng.IntN(60))
					keys = append(keys, k)
				}
				waitCompacted(t, q)
				checkCompaction(t, st, q, keys)
			}
			for range 5 {
				publish(40 + rng.IntN(80))
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			st = st.Reopen()
			s2, err := New(Options{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Shutdown(context.Background())
			q, err = s2.vhost("/").lookupQueue(nil, "compact")
			if err != nil {
				t.Fatal(err)
			}
			waitCompacted(t, q)
			checkCompaction(t, st, q, keys)
			for range 3 {
				publish(40 + rng.IntN(80))
			}
		})
	}
}

// A stream without compaction removes nothing; with compaction, the cross-segment case: a key
// written once in an early segment and again much later keeps only the later one, while a
// key never repeated stays; a consumer from first reads the survivors with their offsets.
func TestStreamCompactionRead(t *testing.T) {
	st := storage.NewMemStore()
	defer st.Close()
	s, q := newStreamServer(t, st, "compact", amqp.Table{"x-stream-max-segment-size-bytes": int32(300), "x-stream-compaction": "key"})
	defer s.Shutdown(context.Background())
	var keys []string
	for i := range 60 {
		k := ""
		switch {
		case i == 0:
			k = "once"
		case i == 1 || i == 50:
			k = "twice"
		case i%3 == 0:
			k = "hot"
		}
		compactPublish(t, q, "x-key", k, 20)
		keys = append(keys, k)
	}
	waitCompacted(t, q)
	checkCompaction(t, st, q, keys)
	got, _ := compactSurvivors(t, st, q.id)
	if _, ok := got[0]; !ok {
		t.Fatal("a key written once was removed")
	}
	if _, ok := got[1]; ok {
		t.Fatal("the older of two values of a key in different segments survived")
	}

	// A consumer from first gets the survivors, in order, with their own offsets.
	tgt := newCollectTarget(100)
	sub := &subscription{tag: "c", target: tgt, prefetch: 100, args: amqp.Table{"x-stream-offset": "first"}}
	if err := q.addConsumer(sub, func() {}); err != nil {
		t.Fatal(err)
	}
	defer q.removeConsumer(sub)
	wait.For(t, 10*time.Second, "every survivor delivered", func() bool { return tgt.count() == len(got) })
	for _, e := range tgt.entries() {
		if got[e.seq] != string(e.msg.body) {
			t.Fatalf("delivered offset %d body %q, stored %q", e.seq, e.msg.body, got[e.seq])
		}
	}
}

// Bad compaction arguments are refused with 406 at declare.
func TestStreamCompactionArgs(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	for _, c := range []struct {
		args amqp.Table
		want string
	}{
		{amqp.Table{"x-stream-compaction": "yes"}, "invalid arg 'x-stream-compaction'"},
		{amqp.Table{"x-stream-compaction": int32(1)}, "invalid arg 'x-stream-compaction'"},
		{amqp.Table{"x-stream-compaction": "key", "x-stream-compaction-key-header": ""}, "invalid arg 'x-stream-compaction-key-header'"},
		{amqp.Table{"x-stream-compaction": "key", "x-stream-compaction-key-header": true}, "invalid arg 'x-stream-compaction-key-header'"},
	} {
		args := amqp.Table{"x-queue-type": "stream"}
		for k, v := range c.args {
			args[k] = v
		}
		_, err := s.vhost("/").declareQueue(nil, &amqp.QueueDeclare{Queue: "bad", Durable: true, Arguments: args})
		var ae *amqp.Error
		if err == nil || !errorAs(err, &ae) || ae.Code != amqp.PreconditionFailed || !strings.Contains(ae.Text, c.want) {
			t.Errorf("%v: got %v, want 406 %s", c.args, err, c.want)
		}
	}
	for _, ok := range []amqp.Table{{"x-stream-compaction": "none"}, {"x-stream-compaction": "key", "x-stream-compaction-key-header": "k"}} {
		args := amqp.Table{"x-queue-type": "stream"}
		for k, v := range ok {
			args[k] = v
		}
		if _, err := s.vhost("/").declareQueue(nil, &amqp.QueueDeclare{Queue: "good" + fmt.Sprint(len(ok)), Durable: true, Arguments: args}); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

// collectTarget takes every delivery (up to its credit) and keeps it.
type collectTarget struct {
	mu     chan struct{} // 1-buffered: a lock usable from the reader and the test
	got    []*qentry
	credit int
}

func newCollectTarget(credit int) *collectTarget {
	return &collectTarget{mu: make(chan struct{}, 1), credit: credit}
}

func (c *collectTarget) deliver(e *qentry, _ *dispatchRun) bool {
	c.mu <- struct{}{}
	defer func() { <-c.mu }()
	if len(c.got) >= c.credit {
		return false
	}
	c.got = append(c.got, e)
	return true
}

func (c *collectTarget) count() int {
	c.mu <- struct{}{}
	defer func() { <-c.mu }()
	return len(c.got)
}

func (c *collectTarget) entries() []*qentry {
	c.mu <- struct{}{}
	defer func() { <-c.mu }()
	return append([]*qentry(nil), c.got...)
}

func (c *collectTarget) queueDeleted() bool     { return false }
func (c *collectTarget) cancelled()             {}
func (c *collectTarget) deliversOn() any        { return c }
func (c *collectTarget) describe(*ConsumerInfo) {}

func errorAs(err error, target **amqp.Error) bool { return errors.As(err, target) }
