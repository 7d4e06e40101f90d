package storage

import (
	"bytes"
	"testing"
)

func TestRaftKeysOrder(t *testing.T) {
	// A group's keys form one range, entries sort by index, and groups sort by id.
	keys := [][]byte{
		RaftKey(1, RaftKindApplied), RaftKey(1, RaftKindConfState),
		RaftEntryKey(1, 1), RaftEntryKey(1, 255), RaftEntryKey(1, 256), RaftEntryKey(1, 1<<40),
		RaftKey(1, RaftKindHardState), RaftKey(1, RaftKindSnapshot), RaftKey(1, RaftKindTruncated),
		RaftKey(256, RaftKindApplied), RaftEntryKey(256, 1),
	}
	for i := 1; i < len(keys); i++ {
		if bytes.Compare(keys[i-1], keys[i]) >= 0 {
			t.Fatalf("key %x does not sort before %x", keys[i-1], keys[i])
		}
	}
	start, end := RaftEntriesAll(1)
	for _, k := range keys {
		g, kind, _, err := ParseRaftKey(k)
		if err != nil {
			t.Fatal(err)
		}
		in := bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0
		if in != (g == 1 && kind == RaftKindEntry) {
			t.Fatalf("key %x in RaftEntriesAll(1): %v", k, in)
		}
		if !bytes.HasPrefix(k, RaftPrefix()) {
			t.Fatalf("key %x outside RaftPrefix", k)
		}
	}
	lo, hi := RaftEntryRange(1, 255, 256)
	if !bytes.Equal(lo, RaftEntryKey(1, 255)) || !bytes.Equal(hi, RaftEntryKey(1, 256)) {
		t.Fatalf("RaftEntryRange(1, 255, 256) = %x, %x", lo, hi)
	}
}

// FuzzParseRaftKey: any bytes parse without panicking, and an accepted key encodes back to itself.
func FuzzParseRaftKey(f *testing.F) {
	f.Add(RaftEntryKey(1, 2))
	f.Add(RaftKey(3, RaftKindHardState))
	f.Add([]byte{prefixRaft})
	f.Fuzz(func(t *testing.T, key []byte) {
		g, kind, index, err := ParseRaftKey(key)
		if err != nil {
			return
		}
		want := RaftKey(g, kind)
		if kind == RaftKindEntry {
			want = RaftEntryKey(g, index)
		}
		if !bytes.Equal(want, key) {
			t.Fatalf("raft key %x parsed as (%d, %q, %d)", key, g, kind, index)
		}
	})
}
