// Package raftlog is the Raft log storage of a Warren node: the log entries, HardState,
// ConfState, snapshot and applied index of many Raft groups (go.etcd.io/raft/v3) in the node's one
// storage.Store, with one synced batch for every group's writes of a Ready cycle.
//
// A Group implements raft.Storage for one group from an in-memory cache of the log's unapplied
// tail and the store (older entries). Log.Write persists the writes of one Ready cycle for any
// number of groups in ONE storage.Batch applied with sync, and only after that batch is durable
// does any group's in-memory state change: what raft reads is always on disk, so the node may send
// the cycle's messages after Write returns (etcd-io/raft's "persist before send" contract).
//
// Concurrency: each Group's memory is guarded by its own mutex, so its methods are safe to call
// from any goroutine. A group's entries that are older than its cache are read from the store; a
// Write that compacts or truncates those entries must not run concurrently with raft reading the
// same group, which holds when, as intended, the node's Ready loop is the one goroutine that both
// steps the groups' RawNodes and calls Write.
package raftlog

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/storage"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Log is the Raft log storage of every group on one node.
type Log struct {
	store storage.Store

	mu     sync.Mutex
	groups map[uint64]*Group

	syncs atomic.Uint64
}

// Group is one Raft group's log; it implements raft.Storage.
type Group struct {
	id  uint64
	log *Log

	mu sync.Mutex
	st state
}

var _ raft.Storage = (*Group)(nil)

// state is a group's durable state, as raft sees it.
type state struct {
	hs   *pb.HardState // nil: none saved
	cs   *pb.ConfState
	snap *pb.Snapshot
	// truncIndex and truncTerm are the last entry removed from the log (by a compaction or a
	// snapshot): the log holds the entries (truncIndex, last].
	truncIndex, truncTerm uint64
	last                  uint64
	applied               uint64
	// cache holds the entries (last-len(cache), last]: at least those after applied.
	cache []*pb.Entry
}

func (s *state) cacheFirst() uint64 { return s.last + 1 - uint64(len(s.cache)) }

// Open loads every group's state from store (a node's restart). The Log does not own store: the
// caller closes it after the last Write.
func Open(store storage.Store) (*Log, error) {
	l := &Log{store: store, groups: map[uint64]*Group{}}
	type recovering struct {
		st      state
		entries []*pb.Entry // entries after applied, in index order
		maxIdx  uint64
	}
	rec := map[uint64]*recovering{}
	err := store.Scan(storage.RaftPrefix(), func(key, value []byte) error {
		group, kind, index, err := storage.ParseRaftKey(key)
		if err != nil {
			return err
		}
		r := rec[group]
		if r == nil {
			r = &recovering{st: state{cs: &pb.ConfState{}, snap: pb.EnsureSnapshot(nil)}}
			rec[group] = r
		}
		switch kind {
		case storage.RaftKindApplied:
			r.st.applied, _, err = decodeIndexTerm(value, false)
		case storage.RaftKindConfState:
			r.st.cs = &pb.ConfState{}
			err = decode(value, r.st.cs)
		case storage.RaftKindHardState:
			r.st.hs = &pb.HardState{}
			err = decode(value, r.st.hs)
		case storage.RaftKindSnapshot:
			r.st.snap = &pb.Snapshot{}
			err = decode(value, r.st.snap)
		case storage.RaftKindTruncated:
			r.st.truncIndex, r.st.truncTerm, err = decodeIndexTerm(value, true)
		case storage.RaftKindEntry:
			r.maxIdx = index
			if index > r.st.applied {
				e := &pb.Entry{}
				if err = decode(value, e); err == nil && e.GetIndex() != index {
					err = fmt.Errorf("entry at index %d says index %d", index, e.GetIndex())
				}
				r.entries = append(r.entries, e)
			}
		default:
			err = fmt.Errorf("unknown kind %q", kind)
		}
		if err != nil {
			return fmt.Errorf("raftlog: group %d: key %x: %w", group, key, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("raftlog: recover: %w", err)
	}
	for id, r := range rec {
		st := r.st
		st.last = max(st.truncIndex, r.maxIdx)
		// The cache is the contiguous run of entries ending at last.
		for i, e := range r.entries {
			if want := st.last - uint64(len(r.entries)-1-i); e.GetIndex() != want {
				return nil, fmt.Errorf("raftlog: recover group %d: log has a gap before index %d", id, want)
			}
		}
		st.cache = r.entries
		if st.cacheFirst() <= st.truncIndex {
			return nil, fmt.Errorf("raftlog: recover group %d: entry %d at or before the truncation point %d", id, st.cacheFirst(), st.truncIndex)
		}
		l.groups[id] = &Group{id: id, log: l, st: st}
	}
	return l, nil
}

// Group returns group id's log, creating an empty one (nothing is written until a Write) if the
// node has none.
func (l *Log) Group(id uint64) *Group {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.groups[id]
	if g == nil {
		g = &Group{id: id, log: l, st: state{cs: &pb.ConfState{}, snap: pb.EnsureSnapshot(nil)}}
		l.groups[id] = g
	}
	return g
}

// Groups returns the ids of the groups the log holds (recovered or created), in no order.
func (l *Log) Groups() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]uint64, 0, len(l.groups))
	for id := range l.groups {
		ids = append(ids, id)
	}
	return ids
}

// Remove deletes every record of group id (a group leaving this node) in one synced batch and
// forgets it. The caller must no longer use the group's Group (its RawNode is gone).
func (l *Log) Remove(id uint64) error {
	b := &storage.Batch{}
	start, end := storage.RaftGroupRange(id)
	b.DeleteRange(start, end)
	if err := l.store.Apply(b, true); err != nil {
		return fmt.Errorf("raftlog: remove group %d: %w", id, err)
	}
	l.syncs.Add(1)
	l.mu.Lock()
	delete(l.groups, id)
	l.mu.Unlock()
	return nil
}

// Syncs is the number of synced batches Write, WriteSync and Remove have applied.
func (l *Log) Syncs() uint64 { return l.syncs.Load() }

// SnapshotRequest asks Write to record a snapshot of the group's state machine at Index.
type SnapshotRequest struct {
	Index     uint64
	ConfState *pb.ConfState // nil: keep the current one
	Data      []byte
}

// Update is one group's writes in a Ready cycle. Write performs them in the order of the fields.
type Update struct {
	Group uint64
	// Snapshot is Ready.Snapshot: it replaces the log (nil or empty: none).
	Snapshot *pb.Snapshot
	// Entries is Ready.Entries: appended, replacing any conflicting suffix of the log.
	Entries []*pb.Entry
	// HardState is Ready.HardState (nil or empty: unchanged).
	HardState *pb.HardState
	// ConfState is the result of applying a configuration change (nil: unchanged).
	ConfState *pb.ConfState
	// Applied is the new applied index (0: unchanged). Entries at or before it leave the cache.
	Applied uint64
	// CreateSnapshot records a snapshot the state machine made (nil: none).
	CreateSnapshot *SnapshotRequest
	// Compact removes the entries up to and including this index (0: none); the caller compacts
	// only up to what is applied and snapshotted.
	Compact uint64
}

type staged struct {
	g  *Group
	st state
}

// Write persists updates (any number of groups, a group may appear more than once) in one
// storage batch applied with sync; only when it is durable do the groups' states change. On an
// error nothing changed in memory (and, the batch being atomic, nothing on disk unless the store
// failed after writing, which storage reports as fatal).
func (l *Log) Write(updates []Update) error { return l.WriteSync(updates, true) }

// WriteSync is Write with the choice of a sync. Without one the batch is in the store's log but
// not yet on disk: the next synced batch (or the store's close) carries it there, and a crash
// before that loses it. Raft allows that for a Ready whose MustSync is false (only the commit index
// or the applied index moved); the caller must not send messages that promise it is durable.
func (l *Log) WriteSync(updates []Update, sync bool) error {
	b := &storage.Batch{}
	var order []*staged
	byID := map[uint64]*staged{}
	for i := range updates {
		u := &updates[i]
		s := byID[u.Group]
		if s == nil {
			g := l.Group(u.Group)
			g.mu.Lock()
			s = &staged{g: g, st: g.st}
			g.mu.Unlock()
			byID[u.Group] = s
			order = append(order, s)
		}
		if err := s.g.stage(&s.st, u, b); err != nil {
			return fmt.Errorf("raftlog: group %d: %w", u.Group, err)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := l.store.Apply(b, sync); err != nil {
		return fmt.Errorf("raftlog: write %d groups: %w", len(order), err)
	}
	if sync {
		l.syncs.Add(1)
	}
	for _, s := range order {
		st := s.st
		// Applied entries leave the cache: the store has them.
		if first := st.cacheFirst(); st.applied >= first {
			n := min(st.applied, st.last) + 1 - first
			st.cache = st.cache[n:]
		}
		s.g.mu.Lock()
		s.g.st = st
		s.g.mu.Unlock()
	}
	return nil
}

// ErrOutOfBounds is wrapped by Write's error for an append with a gap after the log, or a compaction
// or snapshot past the log's last index.
var ErrOutOfBounds = errors.New("index out of bounds")

// ErrReplacesApplied is wrapped by Write's error for an append that would replace an applied entry.
var ErrReplacesApplied = errors.New("append replaces an applied entry")

func (g *Group) stage(st *state, u *Update, b *storage.Batch) error {
	// A snapshot at index 0 with a ConfState is a bootstrap (it names the first members).
	if u.Snapshot != nil && (!raft.IsEmptySnap(u.Snapshot) || u.Snapshot.GetMetadata().GetConfState() != nil) {
		if err := g.stageSnapshot(st, u.Snapshot, b); err != nil {
			return err
		}
	}
	if len(u.Entries) > 0 {
		if err := g.stageAppend(st, u.Entries, b); err != nil {
			return err
		}
	}
	if u.HardState != nil && !raft.IsEmptyHardState(u.HardState) {
		st.hs = proto.Clone(u.HardState).(*pb.HardState)
		if err := setRecord(b, storage.RaftKey(g.id, storage.RaftKindHardState), st.hs); err != nil {
			return err
		}
	}
	if u.ConfState != nil {
		st.cs = proto.Clone(u.ConfState).(*pb.ConfState)
		if err := setRecord(b, storage.RaftKey(g.id, storage.RaftKindConfState), st.cs); err != nil {
			return err
		}
	}
	if u.Applied != 0 && u.Applied != st.applied {
		if u.Applied < st.applied || u.Applied > st.last {
			return fmt.Errorf("applied index %d outside [%d, %d]: %w", u.Applied, st.applied, st.last, ErrOutOfBounds)
		}
		st.applied = u.Applied
		b.Set(storage.RaftKey(g.id, storage.RaftKindApplied), encodeIndexTerm(st.applied, 0, false))
	}
	if r := u.CreateSnapshot; r != nil {
		if r.Index <= st.snap.GetMetadata().GetIndex() {
			return raft.ErrSnapOutOfDate
		}
		if r.Index > st.last {
			return fmt.Errorf("snapshot at %d after last index %d: %w", r.Index, st.last, ErrOutOfBounds)
		}
		term, err := g.term(st, r.Index)
		if err != nil {
			return err
		}
		cs := st.snap.GetMetadata().GetConfState()
		if r.ConfState != nil {
			cs = r.ConfState
		}
		if cs == nil {
			cs = &pb.ConfState{}
		}
		st.snap = &pb.Snapshot{Data: r.Data, Metadata: &pb.SnapshotMetadata{
			Index: new(r.Index), Term: new(term), ConfState: proto.Clone(cs).(*pb.ConfState),
		}}
		if err := setRecord(b, storage.RaftKey(g.id, storage.RaftKindSnapshot), st.snap); err != nil {
			return err
		}
	}
	if u.Compact != 0 {
		if err := g.stageCompact(st, u.Compact, b); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) stageSnapshot(st *state, snap *pb.Snapshot, b *storage.Batch) error {
	idx, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	if cur := st.snap.GetMetadata().GetIndex(); cur != 0 && cur >= idx {
		return raft.ErrSnapOutOfDate
	}
	st.snap = proto.Clone(snap).(*pb.Snapshot)
	st.cs = &pb.ConfState{}
	if cs := snap.GetMetadata().GetConfState(); cs != nil {
		st.cs = proto.Clone(cs).(*pb.ConfState)
	}
	st.truncIndex, st.truncTerm, st.last, st.cache = idx, term, idx, nil
	st.applied = min(st.applied, idx)
	start, end := storage.RaftEntriesAll(g.id)
	b.DeleteRange(start, end)
	if err := setRecord(b, storage.RaftKey(g.id, storage.RaftKindSnapshot), st.snap); err != nil {
		return err
	}
	if err := setRecord(b, storage.RaftKey(g.id, storage.RaftKindConfState), st.cs); err != nil {
		return err
	}
	b.Set(storage.RaftKey(g.id, storage.RaftKindTruncated), encodeIndexTerm(idx, term, true))
	if st.applied != 0 {
		b.Set(storage.RaftKey(g.id, storage.RaftKindApplied), encodeIndexTerm(st.applied, 0, false))
	}
	return nil
}

func (g *Group) stageAppend(st *state, ents []*pb.Entry, b *storage.Batch) error {
	first := st.truncIndex + 1
	for i := 1; i < len(ents); i++ {
		if ents[i].GetIndex() != ents[i-1].GetIndex()+1 {
			return fmt.Errorf("entries not contiguous at index %d", ents[i].GetIndex())
		}
	}
	if ents[len(ents)-1].GetIndex() < first {
		return nil // all compacted
	}
	if ents[0].GetIndex() < first {
		ents = ents[first-ents[0].GetIndex():]
	}
	at := ents[0].GetIndex()
	if at > st.last+1 {
		return fmt.Errorf("append at %d after last index %d: %w", at, st.last, ErrOutOfBounds)
	}
	if at <= st.applied {
		// Raft never replaces an applied (committed) entry; a caller that does is broken.
		return fmt.Errorf("append at %d replaces applied entry %d: %w", at, st.applied, ErrReplacesApplied)
	}
	newLast := ents[len(ents)-1].GetIndex()
	if cf := st.cacheFirst(); at >= cf {
		// The full slice expression makes append copy rather than overwrite entries the
		// current state (and raft's readers) may still hold, when it replaces a suffix.
		n := at - cf
		st.cache = append(st.cache[:n:n], ents...)
	} else {
		st.cache = append([]*pb.Entry(nil), ents...)
	}
	if newLast < st.last {
		start, end := storage.RaftEntryRange(g.id, newLast+1, st.last+1)
		b.DeleteRange(start, end)
	}
	st.last = newLast
	for _, e := range ents {
		if err := setRecord(b, storage.RaftEntryKey(g.id, e.GetIndex()), e); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) stageCompact(st *state, idx uint64, b *storage.Batch) error {
	if idx <= st.truncIndex {
		return raft.ErrCompacted
	}
	if idx > st.last {
		return fmt.Errorf("compact %d after last index %d: %w", idx, st.last, ErrOutOfBounds)
	}
	term, err := g.term(st, idx)
	if err != nil {
		return err
	}
	if cf := st.cacheFirst(); idx >= cf {
		st.cache = st.cache[idx+1-cf:]
	}
	st.truncIndex, st.truncTerm = idx, term
	start, end := storage.RaftEntryRange(g.id, 0, idx+1)
	b.DeleteRange(start, end)
	b.Set(storage.RaftKey(g.id, storage.RaftKindTruncated), encodeIndexTerm(idx, term, true))
	return nil
}

// term is the term of entry i of st, read from the cache or the store.
func (g *Group) term(st *state, i uint64) (uint64, error) {
	switch {
	case i < st.truncIndex:
		return 0, raft.ErrCompacted
	case i == st.truncIndex:
		return st.truncTerm, nil
	case i > st.last:
		return 0, raft.ErrUnavailable
	}
	if cf := st.cacheFirst(); i >= cf {
		return st.cache[i-cf].GetTerm(), nil
	}
	ents, err := g.read(i, i+1, 0)
	if err != nil {
		return 0, err
	}
	return ents[0].GetTerm(), nil
}

// read returns the stored entries [lo, hi) (at least one, then up to maxSize bytes; maxSize 0:
// one entry). Every one of them must be in the store.
func (g *Group) read(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	var out []*pb.Entry
	var size uint64
	start, end := storage.RaftEntryRange(g.id, lo, hi)
	err := g.log.store.ScanRange(start, end, func(key, value []byte) error {
		e := &pb.Entry{}
		if err := decode(value, e); err != nil {
			return fmt.Errorf("raftlog: group %d: entry key %x: %w", g.id, key, err)
		}
		if e.GetIndex() != lo+uint64(len(out)) {
			return fmt.Errorf("raftlog: group %d: entry %d missing from the store: %w", g.id, lo+uint64(len(out)), raft.ErrUnavailable)
		}
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			return storage.ErrStop
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || (size <= maxSize && uint64(len(out)) < hi-lo) {
		return nil, fmt.Errorf("raftlog: group %d: entries [%d, %d) missing from the store: %w", g.id, lo, hi, raft.ErrUnavailable)
	}
	return out, nil
}

// ID is the group's id.
func (g *Group) ID() uint64 { return g.id }

// InitialState implements raft.Storage.
func (g *Group) InitialState() (*pb.HardState, *pb.ConfState, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var hs *pb.HardState
	if g.st.hs != nil {
		hs = proto.Clone(g.st.hs).(*pb.HardState)
	}
	return hs, proto.Clone(g.st.cs).(*pb.ConfState), nil
}

// Applied is the applied index last written (raft.Config.Applied on a restart).
func (g *Group) Applied() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st.applied
}

// Entries implements raft.Storage.
func (g *Group) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := &g.st
	if lo <= st.truncIndex {
		return nil, raft.ErrCompacted
	}
	if hi > st.last+1 {
		return nil, fmt.Errorf("raftlog: group %d: entries hi %d after last index %d: %w", g.id, hi, st.last, raft.ErrUnavailable)
	}
	if st.last == st.truncIndex {
		return nil, raft.ErrUnavailable // an empty log (MemoryStorage's "only the dummy entry")
	}
	if lo >= hi {
		if lo > hi {
			return nil, fmt.Errorf("raftlog: group %d: entries [%d, %d): %w", g.id, lo, hi, raft.ErrUnavailable)
		}
		return nil, nil
	}
	var out []*pb.Entry
	var size uint64
	cf := st.cacheFirst()
	if lo < cf {
		ents, err := g.read(lo, min(hi, cf), maxSize)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			size += uint64(proto.Size(e))
		}
		out = ents
		if uint64(len(ents)) < min(hi, cf)-lo || size > maxSize {
			return out, nil
		}
	}
	for i := max(lo, cf); i < hi; i++ {
		e := st.cache[i-cf]
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out[:len(out):len(out)], nil
}

// Term implements raft.Storage.
func (g *Group) Term(i uint64) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.term(&g.st, i)
}

// LastIndex implements raft.Storage.
func (g *Group) LastIndex() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st.last, nil
}

// FirstIndex implements raft.Storage.
func (g *Group) FirstIndex() (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st.truncIndex + 1, nil
}

// Snapshot implements raft.Storage. When the log has been compacted past the latest snapshot,
// that snapshot cannot bring a follower up to the log, and Snapshot returns
// raft.ErrSnapshotTemporarilyUnavailable until the state machine records a newer one.
func (g *Group) Snapshot() (*pb.Snapshot, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.st.snap.GetMetadata().GetIndex() < g.st.truncIndex {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return proto.Clone(g.st.snap).(*pb.Snapshot), nil
}

// Records are storage.RecordVersion and then the protobuf encoding (or two big-endian uint64s).
func setRecord(b *storage.Batch, key []byte, m proto.Message) error {
	v, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend([]byte{storage.RecordVersion}, m)
	if err != nil {
		return fmt.Errorf("encode %T: %w", m, err)
	}
	b.Set(key, v)
	return nil
}

func decode(v []byte, m proto.Message) error {
	if len(v) == 0 || v[0] != storage.RecordVersion {
		return fmt.Errorf("unknown record version")
	}
	return proto.Unmarshal(v[1:], m)
}

func encodeIndexTerm(index, term uint64, withTerm bool) []byte {
	v := make([]byte, 0, 17)
	v = append(v, storage.RecordVersion)
	v = appendUint64(v, index)
	if withTerm {
		v = appendUint64(v, term)
	}
	return v
}

func decodeIndexTerm(v []byte, withTerm bool) (index, term uint64, err error) {
	n := 9
	if withTerm {
		n = 17
	}
	if len(v) != n || v[0] != storage.RecordVersion {
		return 0, 0, fmt.Errorf("malformed index record %x", v)
	}
	index = readUint64(v[1:])
	if withTerm {
		term = readUint64(v[9:])
	}
	return index, term, nil
}
