package server

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

func TestParseStreamDuration(t *testing.T) {
	for _, c := range []struct {
		in           string
		ms           int64
		valid, crash bool
	}{
		{"1s", 1000, true, false}, {"30m", 30 * 60 * 1000, true, false}, {"1h", 3600 * 1000, true, false},
		{"7D", 7 * 86400 * 1000, true, false}, {"2M", 60 * 86400 * 1000, true, false}, {"1Y", 365 * 86400 * 1000, true, false},
		{"0s", 0, false, false}, {"1H", 0, false, false}, {"1d", 0, false, false}, {"1ms", 0, false, false},
		{"10", 0, false, false}, {"1h1m", 0, false, false}, {"1.5h", 0, false, false},
		{"", 0, false, true}, {"h", 0, false, true}, {"-1h", 0, false, true}, {" 1h", 0, false, true}, {"bad", 0, false, true},
		{"99999999999999999999999Y", 1<<63 - 1, true, false},
	} {
		ms, valid, crash := parseStreamDuration(c.in)
		if ms != c.ms || valid != c.valid || crash != c.crash {
			t.Errorf("%q: got %d %v %v, want %d %v %v", c.in, ms, valid, crash, c.ms, c.valid, c.crash)
		}
	}
}

// Retention drops the oldest segments, whole, while over max-length-bytes or older than
// max-age, and never the one being appended to.
func TestStreamRetainSegments(t *testing.T) {
	seg := func(bytes, lastTs int64) streamSegment { return streamSegment{bytes: bytes, lastTs: lastTs} }
	segs := []streamSegment{seg(1000, 10), seg(1000, 20), seg(1000, 30), seg(10, 40)}
	for _, c := range []struct {
		name          string
		maxBytes, age int64
		now           int64
		drop          int
	}{
		{"no limits", -1, 0, 100, 0},
		{"under max bytes", 3010, 0, 100, 0},
		{"one byte over", 3009, 0, 100, 1},
		{"max bytes 0 keeps the active segment", 0, 0, 100, 3},
		{"age drops segments whose newest entry is older", -1, 75, 100, 2},
		{"age never drops the active segment", -1, 1, 1000, 3},
		{"either limit", 1500, 85, 100, 2},
	} {
		lim := &streamLimits{maxBytes: c.maxBytes, maxAge: c.age}
		if got := retainSegments(segs, lim, c.now); got != c.drop {
			t.Errorf("%s: drops %d, want %d", c.name, got, c.drop)
		}
	}
}

// x-stream-offset goes at the end of the headers table, which is created if absent; every other
// property stays as it was.
func TestAppendStreamOffsetProps(t *testing.T) {
	for _, p := range []amqp.Properties{
		{},
		{ContentType: "text/plain"},
		{ContentType: "a", ContentEncoding: "b", DeliveryMode: 2, Priority: 3, CorrelationID: "c", Timestamp: time.Unix(12345, 0)},
		{Headers: amqp.Table{"h": int32(7), "s": "v"}, MessageID: "m", AppID: "app"},
		{ContentEncoding: "gzip", Headers: amqp.Table{}, UserID: "guest"},
	} {
		raw, err := p.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := appendStreamOffsetProps(nil, raw, 1<<40+5)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		got, err := amqp.DecodeProperties(out)
		if err != nil {
			t.Fatalf("%+v: decoding %x: %v", p, out, err)
		}
		if got.Headers["x-stream-offset"] != int64(1<<40+5) || len(got.Headers) != len(p.Headers)+1 {
			t.Errorf("%+v: headers %v", p, got.Headers)
		}
		for k, v := range p.Headers {
			if got.Headers[k] != v {
				t.Errorf("header %s: %v, want %v", k, got.Headers[k], v)
			}
		}
		got.Headers, p.Headers = nil, nil
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", p) {
			t.Errorf("properties changed:\n got %+v\nwant %+v", got, p)
		}
	}
	if _, err := appendStreamOffsetProps(nil, []byte{0x20, 0, 0, 0}, 1); err == nil {
		t.Error("a truncated headers table was accepted")
	}
}

// newStreamServer starts a server on st and declares stream name with extra arguments.
func newStreamServer(t *testing.T, st storage.Store, name string, extra amqp.Table) (*Server, *queue) {
	t.Helper()
	s, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	args := amqp.Table{"x-queue-type": "stream"}
	for k, v := range extra {
		args[k] = v
	}
	q, err := s.vhost("/").declareQueue(nil, &amqp.QueueDeclare{Queue: name, Durable: true, Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	return s, q
}

// streamAppend publishes n messages of size bytes to q one at a time, each waiting for its group
// (one chunk each), and returns the last group.
func streamAppend(t testing.TB, q *queue, n, size int) {
	t.Helper()
	body := bytes.Repeat([]byte("x"), size)
	for range n {
		res, g := q.publish(&message{routingKey: q.name, body: body, persistent: true, arrived: nowMillis()})
		if res != published || g == nil {
			t.Fatalf("publish: %v %v", res, g)
		}
		<-g.done
		if g.err != nil {
			t.Fatal(g.err)
		}
	}
}

// streamKeys returns the stored entries of stream id by segment (offsets in order) and the
// segments with metadata.
func streamKeys(t *testing.T, st storage.Store, id uint64) (bySeg map[uint64][]uint64, order []uint64, meta []uint64) {
	t.Helper()
	bySeg = map[uint64][]uint64{}
	start, end := storage.StreamRange(id)
	if err := st.ScanRange(start, end, func(k, v []byte) error {
		_, seg, off, err := storage.ParseStreamEntryKey(k)
		if _, ok := bySeg[seg]; !ok {
			order = append(order, seg)
		}
		bySeg[seg] = append(bySeg[seg], off)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	start, end = storage.StreamMetaRange(id)
	if err := st.ScanRange(start, end, func(k, v []byte) error {
		seg, err := storage.ParseStreamSegmentKey(id, k)
		meta = append(meta, seg)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return bySeg, order, meta
}

// With small segments, the store holds whole segments with contiguous offsets; retention dropped
// the oldest ones whole (their keys and metadata); a restart recovers the same segments and
// offsets go on; delete leaves no key.
func TestStreamSegmentsInStore(t *testing.T) {
	st := storage.NewMemStore()
	defer st.Close()
	s, q := newStreamServer(t, st, "segs", amqp.Table{"x-stream-max-segment-size-bytes": int32(600), "x-max-length-bytes": int32(2000)})
	streamAppend(t, q, 100, 100)
	sq := q.queueImpl.(*streamQueue)
	bySeg, order, meta := streamKeys(t, st, q.id)
	sq.mu.Lock()
	segs := append([]streamSegment(nil), sq.mu.segs...)
	sq.mu.Unlock()
	if len(order) != len(segs) || len(meta) != len(segs) || len(segs) < 2 {
		t.Fatalf("store has segments %v with metadata %v; memory has %d", order, meta, len(segs))
	}
	next := segs[0].first
	if next == 0 {
		t.Fatal("retention dropped nothing")
	}
	var total int64
	for i, sg := range segs {
		offs := bySeg[sg.num]
		if order[i] != sg.num || meta[i] != sg.num || offs[0] != sg.first || offs[0] != next || uint64(len(offs)) != sg.end-sg.first {
			t.Fatalf("segment %d: offsets %v, memory %+v", sg.num, offs, sg)
		}
		for j, o := range offs {
			if o != sg.first+uint64(j) {
				t.Fatalf("segment %d: offsets not contiguous: %v", sg.num, offs)
			}
		}
		next = sg.end
		total += sg.bytes
		if i < len(segs)-1 && sg.bytes < 600 {
			t.Errorf("sealed segment %d holds %d bytes, under the segment size", sg.num, sg.bytes)
		}
	}
	if next != 100 {
		t.Fatalf("the newest entry is %d, want 99", next-1)
	}
	// At the last roll the stream was within max-length-bytes (the newest segment has grown since).
	if total-segs[len(segs)-1].bytes > 2000 {
		t.Fatalf("sealed segments hold %d bytes, over max-length-bytes", total)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	st2 := st.Reopen()
	s2, err := New(Options{Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown(context.Background())
	q2, err := s2.vhost("/").lookupQueue(nil, "segs")
	if err != nil {
		t.Fatal(err)
	}
	sq2 := q2.queueImpl.(*streamQueue)
	sq2.mu.Lock()
	got := append([]streamSegment(nil), sq2.mu.segs...)
	next2, committed, lastChunk := sq2.mu.next, sq2.mu.committed, sq2.mu.lastChunk
	sq2.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(segs) || next2 != 100 || committed != 100 || lastChunk != 99 {
		t.Fatalf("recovered %v next %d committed %d last chunk %d\nwant %v", got, next2, committed, lastChunk, segs)
	}
	streamAppend(t, q2, 1, 100)
	bySeg, order, _ = streamKeys(t, st2, q2.id)
	newest := bySeg[order[len(order)-1]]
	if order[len(order)-1] < got[len(got)-1].num || newest[len(newest)-1] != 100 {
		t.Fatalf("after the restart the newest entry is %d in segment %d", newest[len(newest)-1], order[len(order)-1])
	}
	if _, err := s2.vhost("/").deleteQueue(q2, false, false); err != nil {
		t.Fatal(err)
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bySeg, _, meta := streamKeys(t, st2, q2.id); len(bySeg) != 0 || len(meta) != 0 {
		t.Fatalf("after delete: entries in %d segments, metadata %v", len(bySeg), meta)
	}
}
