package storage

import (
	"bytes"
	"testing"
)

// A segment is one contiguous key range: every entry of segment s, whatever its offset, sorts
// after every entry of segment s-1 and before every one of s+1, inside StreamSegmentRange; and
// the stream's ranges do not reach another stream's keys or the metadata keys.
func TestStreamKeyLayout(t *testing.T) {
	id := uint64(7)
	in := func(k, start, end []byte) bool { return bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0 }
	s1, e1 := StreamSegmentRange(id, 1, 2)
	for _, off := range []uint64{0, 1, 255, 256, 1 << 40, ^uint64(0)} {
		k := StreamEntryKey(id, 1, off)
		if !in(k, s1, e1) {
			t.Errorf("entry (seg 1, offset %d) outside its segment's range", off)
		}
		if in(StreamEntryKey(id, 0, off), s1, e1) || in(StreamEntryKey(id, 2, off), s1, e1) {
			t.Errorf("an entry of segment 0 or 2 (offset %d) inside segment 1's range", off)
		}
		gid, seg, o, err := ParseStreamEntryKey(k)
		if err != nil || gid != id || seg != 1 || o != off {
			t.Errorf("parse: %d %d %d %v", gid, seg, o, err)
		}
	}
	// Increasing (segment, offset) pairs sort in offset order.
	if bytes.Compare(StreamEntryKey(id, 1, 1000), StreamEntryKey(id, 2, 1001)) >= 0 ||
		bytes.Compare(StreamEntryKey(id, 2, 1001), StreamEntryKey(id, 2, 1002)) >= 0 {
		t.Error("entries do not sort by segment then offset")
	}
	// A multi-segment range covers exactly its segments.
	s, e := StreamSegmentRange(id, 3, 6)
	for seg := uint64(0); seg < 9; seg++ {
		if got, want := in(StreamEntryKey(id, seg, 5), s, e), seg >= 3 && seg < 6; got != want {
			t.Errorf("segment %d in [3,6): %v", seg, got)
		}
	}
	// The whole stream, and nothing of streams 6 or 8.
	s, e = StreamRange(id)
	for _, other := range []uint64{6, 8} {
		if in(StreamEntryKey(other, 0, 0), s, e) || in(StreamEntryKey(other, ^uint64(0), ^uint64(0)), s, e) {
			t.Errorf("stream %d's entry inside stream %d's range", other, id)
		}
	}
	if !in(StreamEntryKey(id, ^uint64(0), ^uint64(0)), s, e) || !in(StreamEntryKey(id, 0, 0), s, e) {
		t.Error("stream range misses its own entries")
	}
	ms, me := StreamMetaRange(id)
	if !in(StreamSegmentKey(id, 4), ms, me) || in(StreamSegmentKey(id+1, 0), ms, me) || in(StreamEntryKey(id, 0, 0), ms, me) {
		t.Error("metadata range wrong")
	}
	ss, se := StreamSegmentMetaRange(id, 2, 4)
	if !in(StreamSegmentKey(id, 3), ss, se) || in(StreamSegmentKey(id, 4), ss, se) {
		t.Error("segment metadata range wrong")
	}
	if seg, err := ParseStreamSegmentKey(id, StreamSegmentKey(id, 42)); err != nil || seg != 42 {
		t.Errorf("segment key parse: %d %v", seg, err)
	}
	if _, err := ParseStreamSegmentKey(id+1, StreamSegmentKey(id, 42)); err == nil {
		t.Error("parsed another stream's segment key")
	}
	// The last id's ranges end past all of its keys.
	last := ^uint64(0)
	s, e = StreamRange(last)
	if !in(StreamEntryKey(last, last, last), s, e) {
		t.Error("the last stream id's range misses its keys")
	}
}

// Retention's DeleteRange over a segment removes exactly that segment's entries from a store.
func TestStreamSegmentDeleteRange(t *testing.T) {
	st := NewMemStore()
	defer st.Close()
	var b Batch
	for seg := uint64(0); seg < 3; seg++ {
		for off := seg * 10; off < seg*10+10; off++ {
			b.Set(StreamEntryKey(1, seg, off), []byte{1})
			b.Set(StreamEntryKey(2, seg, off), []byte{2})
		}
	}
	if err := st.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	var d Batch
	s, e := StreamSegmentRange(1, 0, 2)
	d.DeleteRange(s, e)
	if err := st.Apply(&d, true); err != nil {
		t.Fatal(err)
	}
	var offs []uint64
	n2 := 0
	if err := st.Scan([]byte{prefixStreamEntry}, func(k, v []byte) error {
		id, _, off, err := ParseStreamEntryKey(k)
		if id == 1 {
			offs = append(offs, off)
		} else {
			n2++
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(offs) != 10 || offs[0] != 20 || offs[9] != 29 || n2 != 30 {
		t.Fatalf("after dropping segments 0-1 of stream 1: its offsets %v, stream 2 has %d entries", offs, n2)
	}
}
