package raftlog

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/warrenmq/warren/storage"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The cases of go.etcd.io/raft/v3's storage_test.go (MemoryStorage), run on a Group in three
// shapes: every entry in the cache, every entry only in the store (applied up to the last), and
// after reopening the store.

type entries []*pb.Entry

func index(i uint64) entries { return entries{{Index: new(i)}} }

func (e entries) terms(terms ...uint64) []*pb.Entry {
	i := e[0].GetIndex()
	out := make([]*pb.Entry, 0, len(terms))
	for _, t := range terms {
		out = append(out, &pb.Entry{Index: new(i), Term: new(t)})
		i++
	}
	return out
}

var shapes = []string{"cached", "stored", "reopened"}

// newGroup returns group 7 of a log over a fresh MemStore holding ents (ents[0] is the
// truncation point, as MemoryStorage's dummy entry), in shape.
func newGroup(t *testing.T, shape string, ents []*pb.Entry) (*Log, *Group) {
	t.Helper()
	ms := storage.NewMemStore()
	l, err := Open(ms)
	if err != nil {
		t.Fatal(err)
	}
	u := Update{Group: 7, Entries: ents[1:], Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(ents[0].GetIndex()), Term: new(ents[0].GetTerm()), ConfState: &pb.ConfState{}}}}
	if shape != "cached" {
		u.Applied = ents[len(ents)-1].GetIndex()
	}
	if err := l.Write([]Update{u}); err != nil {
		t.Fatal(err)
	}
	if shape == "stored" && len(l.Group(7).st.cache) != 0 {
		t.Fatalf("cache holds %d entries after applying all", len(l.Group(7).st.cache))
	}
	if shape == "reopened" {
		if l, err = Open(ms.Reopen()); err != nil {
			t.Fatal(err)
		}
	}
	return l, l.Group(7)
}

func equalEntries(t *testing.T, want, got []*pb.Entry) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("got %d entries %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if !proto.Equal(want[i], got[i]) {
			t.Fatalf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// logEntries is every entry of g's log, read through raft.Storage, with the truncation point first.
func logEntries(t *testing.T, g *Group) []*pb.Entry {
	t.Helper()
	first, _ := g.FirstIndex()
	last, _ := g.LastIndex()
	term, err := g.Term(first - 1)
	if err != nil {
		t.Fatal(err)
	}
	out := []*pb.Entry{{Index: new(first - 1), Term: new(term)}}
	if last >= first {
		ents, err := g.Entries(first, last+1, math.MaxUint64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ents...)
	}
	return out
}

func TestStorageTerm(t *testing.T) {
	ents := index(3).terms(3, 4, 5)
	tests := []struct {
		i     uint64
		werr  error
		wterm uint64
	}{
		{2, raft.ErrCompacted, 0},
		{3, nil, 3},
		{4, nil, 4},
		{5, nil, 5},
		{6, raft.ErrUnavailable, 0},
	}
	for _, shape := range shapes {
		for _, tt := range tests {
			_, g := newGroup(t, shape, ents)
			term, err := g.Term(tt.i)
			if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) || term != tt.wterm {
				t.Errorf("%s: Term(%d) = %d, %v; want %d, %v", shape, tt.i, term, err, tt.wterm, tt.werr)
			}
		}
	}
}

func TestStorageEntries(t *testing.T) {
	ents := index(3).terms(3, 4, 5, 6)
	sz := func(i int) uint64 { return uint64(proto.Size(ents[i])) }
	tests := []struct {
		lo, hi, maxsize uint64
		werr            error
		wentries        []*pb.Entry
	}{
		{2, 6, math.MaxUint64, raft.ErrCompacted, nil},
		{3, 4, math.MaxUint64, raft.ErrCompacted, nil},
		{4, 5, math.MaxUint64, nil, index(4).terms(4)},
		{4, 6, math.MaxUint64, nil, index(4).terms(4, 5)},
		{4, 7, math.MaxUint64, nil, index(4).terms(4, 5, 6)},
		// even if maxsize is zero, the first entry should be returned
		{4, 7, 0, nil, index(4).terms(4)},
		{4, 7, sz(1) + sz(2), nil, index(4).terms(4, 5)},
		{4, 7, sz(1) + sz(2) + sz(3)/2, nil, index(4).terms(4, 5)},
		{4, 7, sz(1) + sz(2) + sz(3) - 1, nil, index(4).terms(4, 5)},
		{4, 7, sz(1) + sz(2) + sz(3), nil, index(4).terms(4, 5, 6)},
		// beyond the log (MemoryStorage panics; raft never asks)
		{4, 8, math.MaxUint64, raft.ErrUnavailable, nil},
	}
	for _, shape := range shapes {
		for _, tt := range tests {
			_, g := newGroup(t, shape, ents)
			got, err := g.Entries(tt.lo, tt.hi, tt.maxsize)
			if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) {
				t.Fatalf("%s: Entries(%d, %d, %d) error %v, want %v", shape, tt.lo, tt.hi, tt.maxsize, err, tt.werr)
			}
			equalEntries(t, tt.wentries, got)
		}
	}
	// Half in the store, half in the cache: a read spanning both, and a size limit that stops in
	// the store part.
	l, g := newGroup(t, "cached", ents)
	if err := l.Write([]Update{{Group: 7, Applied: 5}}); err != nil {
		t.Fatal(err)
	}
	if len(g.st.cache) != 1 {
		t.Fatalf("cache holds %d entries, want 1 (after applied 5)", len(g.st.cache))
	}
	got, err := g.Entries(4, 7, math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, index(4).terms(4, 5, 6), got)
	got, err = g.Entries(4, 7, sz(1))
	if err != nil {
		t.Fatal(err)
	}
	equalEntries(t, index(4).terms(4), got)
	// The caller may append to the returned slice without touching the log.
	got, _ = g.Entries(4, 6, math.MaxUint64)
	_ = append(got, &pb.Entry{Index: new(uint64(99))})
	equalEntries(t, index(3).terms(3, 4, 5, 6), logEntries(t, g))
}

func TestStorageLastIndex(t *testing.T) {
	for _, shape := range shapes {
		l, g := newGroup(t, shape, index(3).terms(3, 4, 5))
		if last, _ := g.LastIndex(); last != 5 {
			t.Fatalf("%s: last %d, want 5", shape, last)
		}
		if err := l.Write([]Update{{Group: 7, Entries: index(6).terms(5)}}); err != nil {
			t.Fatal(err)
		}
		if last, _ := g.LastIndex(); last != 6 {
			t.Fatalf("%s: last %d, want 6", shape, last)
		}
	}
}

func TestStorageFirstIndex(t *testing.T) {
	for _, shape := range shapes {
		l, g := newGroup(t, shape, index(3).terms(3, 4, 5))
		if first, _ := g.FirstIndex(); first != 4 {
			t.Fatalf("%s: first %d, want 4", shape, first)
		}
		if err := l.Write([]Update{{Group: 7, Compact: 4}}); err != nil {
			t.Fatal(err)
		}
		if first, _ := g.FirstIndex(); first != 5 {
			t.Fatalf("%s: first %d, want 5", shape, first)
		}
	}
}

func TestStorageCompact(t *testing.T) {
	tests := []struct {
		i             uint64
		werr          error
		windex, wterm uint64
		wlen          int
	}{
		{2, raft.ErrCompacted, 3, 3, 3},
		{3, raft.ErrCompacted, 3, 3, 3},
		{4, nil, 4, 4, 2},
		{5, nil, 5, 5, 1},
		{6, ErrOutOfBounds, 3, 3, 3}, // MemoryStorage panics
	}
	for _, shape := range shapes {
		for _, tt := range tests {
			l, g := newGroup(t, shape, index(3).terms(3, 4, 5))
			err := l.Write([]Update{{Group: 7, Compact: tt.i}})
			if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) {
				t.Fatalf("%s: Compact(%d) = %v, want %v", shape, tt.i, err, tt.werr)
			}
			for _, g := range []*Group{g, reopen(t, l).Group(7)} {
				got := logEntries(t, g)
				if got[0].GetIndex() != tt.windex || got[0].GetTerm() != tt.wterm || len(got) != tt.wlen {
					t.Fatalf("%s: Compact(%d): log %v, want first %d/%d and %d entries", shape, tt.i, got, tt.windex, tt.wterm, tt.wlen)
				}
			}
		}
	}
}

// reopen opens l's store again (a MemStore: its contents as a restart sees them).
func reopen(t *testing.T, l *Log) *Log {
	t.Helper()
	n, err := Open(l.store.(*storage.MemStore).Reopen())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStorageCreateSnapshot(t *testing.T) {
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	data := []byte("data")
	tests := []struct {
		i     uint64
		werr  error
		wsnap *pb.Snapshot
	}{
		{4, nil, &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{Index: new(uint64(4)), Term: new(uint64(4)), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}},
		{5, nil, &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{Index: new(uint64(5)), Term: new(uint64(5)), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}},
		{3, raft.ErrSnapOutOfDate, nil},
		{6, ErrOutOfBounds, nil},
	}
	for _, shape := range shapes {
		for _, tt := range tests {
			l, g := newGroup(t, shape, index(3).terms(3, 4, 5))
			err := l.Write([]Update{{Group: 7, CreateSnapshot: &SnapshotRequest{Index: tt.i, ConfState: cs, Data: data}}})
			if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) {
				t.Fatalf("%s: CreateSnapshot(%d) = %v, want %v", shape, tt.i, err, tt.werr)
			}
			if tt.wsnap == nil {
				continue
			}
			for _, g := range []*Group{g, reopen(t, l).Group(7)} {
				snap, err := g.Snapshot()
				if err != nil || !proto.Equal(snap, tt.wsnap) {
					t.Fatalf("%s: Snapshot() = %v, %v; want %v", shape, snap, err, tt.wsnap)
				}
			}
		}
	}
}

func TestStorageAppend(t *testing.T) {
	tests := []struct {
		entries  []*pb.Entry
		werr     error
		wentries []*pb.Entry
	}{
		{index(1).terms(1, 2), nil, index(3).terms(3, 4, 5)},
		{index(3).terms(3, 4, 5), nil, index(3).terms(3, 4, 5)},
		{index(3).terms(3, 6, 6), nil, index(3).terms(3, 6, 6)},
		{index(3).terms(3, 4, 5, 5), nil, index(3).terms(3, 4, 5, 5)},
		// Truncate incoming entries, truncate the existing entries and append.
		{index(2).terms(3, 3, 5), nil, index(3).terms(3, 5)},
		// Truncate the existing entries and append.
		{index(4).terms(5), nil, index(3).terms(3, 5)},
		// Direct append.
		{index(6).terms(5), nil, index(3).terms(3, 4, 5, 5)},
		// A gap (MemoryStorage panics).
		{index(7).terms(5), ErrOutOfBounds, index(3).terms(3, 4, 5)},
	}
	// "stored" applies every entry, and raft never replaces an applied entry: the cases that
	// truncate run on the cached shape and after a reopen with nothing applied.
	for _, shape := range []string{"cached", "reopened-unapplied"} {
		for _, tt := range tests {
			l, g := newGroup(t, "cached", index(3).terms(3, 4, 5))
			if shape == "reopened-unapplied" {
				l = reopen(t, l)
				g = l.Group(7)
			}
			err := l.Write([]Update{{Group: 7, Entries: tt.entries}})
			if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) {
				t.Fatalf("%s: Append(%v) = %v, want %v", shape, tt.entries, err, tt.werr)
			}
			equalEntries(t, tt.wentries, logEntries(t, g))
			equalEntries(t, tt.wentries, logEntries(t, reopen(t, l).Group(7)))
		}
	}
	// Replacing an applied entry is refused, and changes nothing.
	l, g := newGroup(t, "stored", index(3).terms(3, 4, 5))
	if err := l.Write([]Update{{Group: 7, Entries: index(4).terms(5, 5)}}); !errors.Is(err, ErrReplacesApplied) {
		t.Fatalf("replacing applied entries 4 and 5: %v, want ErrReplacesApplied", err)
	}
	equalEntries(t, index(3).terms(3, 4, 5), logEntries(t, g))
}

func TestStorageApplySnapshot(t *testing.T) {
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	data := []byte("data")
	tests := []struct {
		name      string
		snapshots []*pb.Snapshot
		werr      error
	}{
		{"normal case", []*pb.Snapshot{
			{Data: data, Metadata: &pb.SnapshotMetadata{Index: new(uint64(4)), Term: new(uint64(4)), ConfState: cs}},
		}, nil},
		{"snapshot out of date", []*pb.Snapshot{
			{Data: data, Metadata: &pb.SnapshotMetadata{Index: new(uint64(4)), Term: new(uint64(4)), ConfState: cs}},
			{Data: data, Metadata: &pb.SnapshotMetadata{Index: new(uint64(3)), Term: new(uint64(3)), ConfState: cs}},
		}, raft.ErrSnapOutOfDate},
		{"bootstrap with confState", []*pb.Snapshot{
			{Data: data, Metadata: &pb.SnapshotMetadata{ConfState: cs}},
		}, nil},
	}
	for _, tt := range tests {
		l, err := Open(storage.NewMemStore())
		if err != nil {
			t.Fatal(err)
		}
		for _, sn := range tt.snapshots {
			err = l.Write([]Update{{Group: 1, Snapshot: sn}})
		}
		if !errors.Is(err, tt.werr) || (tt.werr == nil && err != nil) {
			t.Fatalf("%s: %v, want %v", tt.name, err, tt.werr)
		}
		last := tt.snapshots[0]
		for _, g := range []*Group{l.Group(1), reopen(t, l).Group(1)} {
			_, gotCS, _ := g.InitialState()
			if !proto.Equal(gotCS, cs) {
				t.Fatalf("%s: ConfState %v, want %v", tt.name, gotCS, cs)
			}
			if first, _ := g.FirstIndex(); first != last.GetMetadata().GetIndex()+1 {
				t.Fatalf("%s: first index %d after snapshot at %d", tt.name, first, last.GetMetadata().GetIndex())
			}
		}
	}
}

// A snapshot replaces a log that has entries; compacting past the snapshot makes Snapshot
// temporarily unavailable until a newer one is created.
func TestStorageSnapshotReplacesLog(t *testing.T) {
	l, g := newGroup(t, "cached", index(3).terms(3, 4, 5, 6))
	snap := &pb.Snapshot{Data: []byte("s"), Metadata: &pb.SnapshotMetadata{Index: new(uint64(10)), Term: new(uint64(7)), ConfState: &pb.ConfState{Voters: []uint64{1}}}}
	if err := l.Write([]Update{{Group: 7, Snapshot: snap, Entries: index(11).terms(7, 8)}}); err != nil {
		t.Fatal(err)
	}
	equalEntries(t, index(10).terms(7, 7, 8), logEntries(t, g))
	equalEntries(t, index(10).terms(7, 7, 8), logEntries(t, reopen(t, l).Group(7)))
	if _, err := g.Entries(10, 12, math.MaxUint64); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries below the snapshot: %v, want ErrCompacted", err)
	}
	if err := l.Write([]Update{{Group: 7, Applied: 11, Compact: 11}}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Snapshot(); !errors.Is(err, raft.ErrSnapshotTemporarilyUnavailable) {
		t.Fatalf("Snapshot after compacting past it: %v, want ErrSnapshotTemporarilyUnavailable", err)
	}
	if err := l.Write([]Update{{Group: 7, CreateSnapshot: &SnapshotRequest{Index: 12, Data: []byte("t")}}}); err != nil {
		t.Fatal(err)
	}
	if s, err := g.Snapshot(); err != nil || s.GetMetadata().GetIndex() != 12 || s.GetMetadata().GetTerm() != 8 ||
		!proto.Equal(s.GetMetadata().GetConfState(), &pb.ConfState{Voters: []uint64{1}}) {
		t.Fatalf("Snapshot = %v, %v", s, err)
	}
}

// Many groups in one Write: one synced batch, and a failing update leaves every group as it was.
func TestWriteManyGroupsOneBatch(t *testing.T) {
	l, err := Open(storage.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	var us []Update
	for g := uint64(1); g <= 50; g++ {
		us = append(us, Update{Group: g, Entries: index(1).terms(1, 1, 2), HardState: &pb.HardState{Term: new(uint64(2)), Vote: new(g), Commit: new(uint64(2))}})
	}
	if err := l.Write(us); err != nil {
		t.Fatal(err)
	}
	if l.Syncs() != 1 {
		t.Fatalf("%d synced batches for one Write, want 1", l.Syncs())
	}
	bad := []Update{{Group: 1, Entries: index(4).terms(2)}, {Group: 2, Entries: index(9).terms(2)}}
	if err := l.Write(bad); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("Write with a gap: %v, want ErrOutOfBounds", err)
	}
	r := reopen(t, l)
	for _, lg := range []*Log{l, r} {
		if n := len(lg.Groups()); n != 50 {
			t.Fatalf("%d groups, want 50", n)
		}
		for g := uint64(1); g <= 50; g++ {
			equalEntries(t, index(0).terms(0, 1, 1, 2), logEntries(t, lg.Group(g)))
			hs, _, _ := lg.Group(g).InitialState()
			if hs.GetVote() != g || hs.GetTerm() != 2 || hs.GetCommit() != 2 {
				t.Fatalf("group %d: HardState %v", g, hs)
			}
		}
	}
}

// observingStore runs during before each Apply, and fails Applies while failing is set.
type observingStore struct {
	*storage.MemStore
	during  func()
	failing bool
}

var errDisk = errors.New("disk on fire")

func (s *observingStore) Apply(b *storage.Batch, sync bool) error {
	if !sync {
		return errors.New("raftlog wrote without sync")
	}
	if s.during != nil {
		s.during()
	}
	if s.failing {
		return errDisk
	}
	return s.MemStore.Apply(b, sync)
}

// Nothing a Write changes is visible to raft before the batch is durable, nor after it failed.
func TestWriteInvisibleUntilDurable(t *testing.T) {
	st := &observingStore{MemStore: storage.NewMemStore()}
	l, err := Open(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write([]Update{{Group: 1, Entries: index(1).terms(1, 1), HardState: &pb.HardState{Term: new(uint64(1)), Commit: new(uint64(1))}}}); err != nil {
		t.Fatal(err)
	}
	g := l.Group(1)
	unchanged := func() {
		t.Helper()
		equalEntries(t, index(0).terms(0, 1, 1), logEntries(t, g))
		if hs, _, _ := g.InitialState(); hs.GetTerm() != 1 || hs.GetCommit() != 1 {
			t.Fatalf("HardState %v visible", hs)
		}
		if g.Applied() != 0 {
			t.Fatalf("applied %d visible", g.Applied())
		}
	}
	st.during = unchanged
	u := Update{Group: 1, Entries: index(2).terms(2, 2), HardState: &pb.HardState{Term: new(uint64(2)), Commit: new(uint64(3))}, Applied: 1}
	st.failing = true
	if err := l.Write([]Update{u}); !errors.Is(err, errDisk) {
		t.Fatalf("Write on a failing store: %v", err)
	}
	unchanged()
	st.failing = false
	if err := l.Write([]Update{u}); err != nil {
		t.Fatal(err)
	}
	st.during = nil
	equalEntries(t, index(0).terms(0, 1, 2, 2), logEntries(t, g))
	if hs, _, _ := g.InitialState(); hs.GetTerm() != 2 || hs.GetCommit() != 3 || g.Applied() != 1 {
		t.Fatalf("after the durable Write: HardState %v, applied %d", hs, g.Applied())
	}
}

// Remove deletes one group's records and leaves its neighbours' (ids either side) alone.
func TestRemoveGroup(t *testing.T) {
	ms := storage.NewMemStore()
	l, err := Open(ms)
	if err != nil {
		t.Fatal(err)
	}
	var us []Update
	for _, g := range []uint64{6, 7, 8} {
		us = append(us, Update{Group: g, Entries: index(1).terms(1, 1),
			HardState: &pb.HardState{Term: new(uint64(1)), Commit: new(uint64(2))}, Applied: 1})
	}
	if err := l.Write(us); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(7); err != nil {
		t.Fatal(err)
	}
	for _, reopened := range []bool{false, true} {
		if reopened {
			if l, err = Open(ms.Reopen()); err != nil {
				t.Fatal(err)
			}
		}
		ids := l.Groups()
		slices.Sort(ids)
		if !slices.Equal(ids, []uint64{6, 8}) {
			t.Fatalf("reopened %v: groups %v after removing 7, want [6 8]", reopened, ids)
		}
		for _, g := range []uint64{6, 8} {
			if last, _ := l.Group(g).LastIndex(); last != 2 {
				t.Fatalf("reopened %v: group %d last index %d, want 2", reopened, g, last)
			}
		}
	}
}
