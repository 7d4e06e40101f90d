package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Key-based compaction of streams (Warren's; nobody else offers it): with x-stream-compaction
// "key" (or the policy key stream-compaction), when a segment is sealed the stream removes the
// older messages whose key (the value of the header x-stream-compaction-key-header names,
// default "x-key") has a newer value at a later position, keeping the latest message per key.
// Messages without the key are kept. Survivors keep their offsets: entries are deleted one by
// one, never rewritten or renumbered, so consumers skip the gaps and x-stream-offset headers stay
// what they were.
//
// How. A compaction goroutine (one at a time per stream, counted in s.readers so stop and
// delete wait for it) takes the oldest sealed segment not yet compacted, once the batch that
// sealed it is applied: it scans the segment's entries once, keeping the latest offset per key in
// a map (its memory is the segment's distinct keys) and noting the earlier ones for removal; then,
// per distinct key, it reads the key index ('Z' | stream id | 'k' | key -> segment, offset and
// size of the latest entry with that key in the segments compacted so far) and, if that entry is
// in an older segment, removes it too. One batch, under s.mu (so it orders with retention's
// deletes), deletes the superseded entries, points the index at the segment's survivors,
// rewrites the metadata of every segment it removed from (its bytes less the removed ones, and
// the count of removed entries, which the stream's message count subtracts) and marks the segment
// compacted. The batch is not synced: after a crash that lost it, recovery finds the segment not
// compacted and compacts it again. Segments are compacted strictly in order, so the index always
// names the latest entry of each key in the compacted segments.
//
// Cost per roll: one sequential read of the sealed segment, one point read of the index per
// distinct key in it, and a write of a delete per removed entry, an index record per distinct key
// and a metadata record per segment touched. Nothing is rewritten: the bytes written per roll do
// not depend on the size of the messages kept (BenchmarkStreamCompaction).

const defaultStreamCompactionKeyHeader = "x-key"

// streamCompaction is a stream's compaction state, guarded by s.mu except stopping.
type streamCompaction struct {
	running bool   // a compaction goroutine is on
	upto    uint64 // segments numbered below it are sealed in the store: compaction may take them
	// stopping is set by stop: a running compaction gives up between entries.
	stopping atomic.Bool
	// What compaction did (BenchmarkStreamCompaction reports them): segments compacted, their
	// bytes as sealed, entries removed, bytes of keys and values it wrote (deletes, index records,
	// metadata).
	segments, scanned, removed, written atomic.Int64
}

// parseStreamCompaction reads x-stream-compaction and x-stream-compaction-key-header into lim.
func parseStreamCompaction(lim *streamLimits, args amqp.Table, bad func(k, why string) error) error {
	lim.keyHeader = defaultStreamCompactionKeyHeader
	if x, ok := args["x-stream-compaction"]; ok {
		s, isStr := x.(string)
		switch {
		case !isStr:
			return bad("x-stream-compaction", fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
		case s == "key":
			lim.compact = true
		case s == "none":
		default:
			return bad("x-stream-compaction", fmt.Sprintf("{invalid_value,\"%s\"} (expected \"key\" or \"none\")", s))
		}
	}
	if x, ok := args["x-stream-compaction-key-header"]; ok {
		s, isStr := x.(string)
		switch {
		case !isStr:
			return bad("x-stream-compaction-key-header", fmt.Sprintf("{unacceptable_type,%s}", amqp.FieldTypeName(x)))
		case s == "" || len(s) > 255:
			return bad("x-stream-compaction-key-header", "a header name is 1 to 255 bytes")
		}
		lim.keyHeader = s
	}
	return nil
}

// applyCompactionPolicy takes stream-compaction and stream-compaction-key-header from policy p
// where the arguments do not set them (an argument wins, as for the other stream keys).
func applyCompactionPolicy(lim *streamLimits, args amqp.Table, p *policy) {
	if p == nil {
		return
	}
	if s, ok := p.Definition["stream-compaction"].(string); ok {
		if _, set := args["x-stream-compaction"]; !set {
			lim.compact = s == "key"
		}
	}
	if s, ok := p.Definition["stream-compaction-key-header"].(string); ok && s != "" && len(s) <= 255 {
		if _, set := args["x-stream-compaction-key-header"]; !set {
			lim.keyHeader = s
		}
	}
}

// compactionKeyHeader checks the policy key stream-compaction-key-header.
func compactionKeyHeader(x any) error {
	if s, ok := x.(string); !ok || s == "" || len(s) > 255 {
		return policyInvalid("%s is not a valid stream compaction key header", amqp.ErlangTermHTML(x))
	}
	return nil
}

// streamEntryKey is the compaction key of the entry with value v: the string (or byte array)
// value of header h; ok false if it has none.
func streamEntryKey(v []byte, h string) (key string, ok bool, err error) {
	_, _, rec, err := parseStreamEntry(v)
	if err != nil {
		return "", false, err
	}
	hdr, propsLen, err := messageHeader(rec)
	if err != nil {
		return "", false, err
	}
	if propsLen <= 2 {
		return "", false, nil
	}
	props, err := amqp.DecodeProperties(rec[hdr : hdr+propsLen])
	if err != nil {
		return "", false, fmt.Errorf("%w: properties: %v", errBadRecord, err)
	}
	switch k := props.Headers[h].(type) {
	case string:
		return k, true, nil
	case []byte:
		return string(k), true, nil
	}
	return "", false, nil
}

// sealed notes that the segments numbered below upto are sealed in the store (the batch that
// sealed them is applied) and starts compacting them if the stream compacts.
func (s *streamQueue) sealed(upto uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if upto > s.compaction.upto {
		s.compaction.upto = upto
	}
	s.compactLocked()
}

// compactLocked starts the compaction goroutine if there is a segment to compact.
func (s *streamQueue) compactLocked() {
	if s.compaction.running || s.mu.deleted || !s.lim().compact || s.compaction.stopping.Load() {
		return
	}
	if _, ok := s.nextCompactLocked(); !ok {
		return
	}
	s.compaction.running = true
	s.readers.Add(1)
	go s.compactLoop()
}

// nextCompactLocked is the oldest sealed segment not compacted yet.
func (s *streamQueue) nextCompactLocked() (streamSegment, bool) {
	for i, sg := range s.mu.segs {
		if i == len(s.mu.segs)-1 || sg.num >= s.compaction.upto {
			break
		}
		if !sg.compacted {
			return sg, true
		}
	}
	return streamSegment{}, false
}

// compactLoop compacts sealed segments, oldest first, until none is left.
func (s *streamQueue) compactLoop() {
	defer s.readers.Done()
	for {
		s.mu.Lock()
		sg, ok := s.nextCompactLocked()
		if !ok || s.mu.deleted || !s.lim().compact || s.compaction.stopping.Load() {
			s.compaction.running = false
			s.mu.Unlock()
			return
		}
		header := s.lim().keyHeader
		s.mu.Unlock()
		if err := s.compactSegment(sg, header); err != nil {
			if !errors.Is(err, errCompactionStopped) {
				s.v.srv.log.Error("compacting stream segment", "vhost", s.v.name, "queue", s.name, "segment", sg.num, "err", err)
			}
			s.mu.Lock()
			s.compaction.running = false
			s.mu.Unlock()
			return
		}
	}
}

var errCompactionStopped = errors.New("compaction stopped")

// compactRemoval is an entry compaction removes.
type compactRemoval struct {
	seg, off uint64
	size     int64
}

// compactSegment compacts sealed segment sg against itself and the segments compacted before it.
func (s *streamQueue) compactSegment(sg streamSegment, header string) error {
	st := s.v.srv.store
	type latest struct {
		off  uint64
		size int64
	}
	keys := map[string]latest{}
	var removed []compactRemoval
	n := 0
	start, end := storage.StreamSegmentRange(s.id, sg.num, sg.num+1)
	err := st.ScanRange(start, end, func(k, v []byte) error {
		if n++; n%4096 == 0 && s.compaction.stopping.Load() {
			return errCompactionStopped
		}
		_, _, off, err := storage.ParseStreamEntryKey(k)
		if err != nil {
			return err
		}
		key, ok, err := streamEntryKey(v, header)
		if err != nil {
			return fmt.Errorf("entry %d: %w", off, err)
		}
		if !ok {
			return nil
		}
		if prev, seen := keys[key]; seen {
			removed = append(removed, compactRemoval{seg: sg.num, off: prev.off, size: prev.size})
		}
		keys[key] = latest{off: off, size: int64(len(k) + len(v))}
		return nil
	})
	if err != nil {
		return err
	}
	// The latest entry of each key in the segments compacted before: removed if the key is here.
	index := make(map[string][]byte, len(keys))
	for key, l := range keys {
		ik := storage.StreamKeyIndexKey(s.id, key)
		var old []byte
		err := st.ScanRange(ik, append(append([]byte(nil), ik...), 0), func(_, v []byte) error {
			old = append([]byte(nil), v...)
			return storage.ErrStop
		})
		if err != nil && !errors.Is(err, storage.ErrStop) {
			return fmt.Errorf("key index: %w", err)
		}
		if len(old) == 24 {
			if seg := binary.BigEndian.Uint64(old); seg < sg.num {
				removed = append(removed, compactRemoval{seg: seg, off: binary.BigEndian.Uint64(old[8:]), size: int64(binary.BigEndian.Uint64(old[16:]))})
			}
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 24), sg.num)
		v = binary.BigEndian.AppendUint64(v, l.off)
		index[string(ik)] = binary.BigEndian.AppendUint64(v, uint64(l.size))
	}

	s.mu.Lock()
	if s.mu.deleted {
		s.mu.Unlock()
		return errCompactionStopped
	}
	if s.segIndexLocked(sg.num) < 0 {
		s.mu.Unlock() // retention dropped it meanwhile: nothing to write (an empty group is never applied)
		return nil
	}
	touched := map[uint64]bool{sg.num: true}
	var dels [][]byte
	for _, r := range removed {
		i := s.segIndexLocked(r.seg)
		if i < 0 {
			continue // retention dropped it meanwhile
		}
		s.mu.segs[i].removed++
		s.mu.segs[i].bytes -= r.size
		touched[r.seg] = true
		dels = append(dels, storage.StreamEntryKey(s.id, r.seg, r.off))
	}
	metas := map[string][]byte{}
	for num := range touched {
		i := s.segIndexLocked(num)
		if i < 0 {
			continue
		}
		if num == sg.num {
			s.mu.segs[i].compacted = true
		}
		metas[string(storage.StreamSegmentKey(s.id, num))] = s.mu.segs[i].encode(true)
	}
	written := 0
	for _, k := range dels {
		written += len(k)
	}
	for k, v := range index {
		written += len(k) + len(v)
	}
	for k, v := range metas {
		written += len(k) + len(v)
	}
	s.compaction.segments.Add(1)
	s.compaction.scanned.Add(sg.bytes)
	s.compaction.removed.Add(int64(len(dels)))
	s.compaction.written.Add(int64(written))
	g := s.v.srv.commit.add(false, func(b *storage.Batch) {
		for _, k := range dels {
			b.Delete(k)
		}
		for k, v := range index {
			b.Set([]byte(k), v)
		}
		for k, v := range metas {
			b.Set([]byte(k), v)
		}
	})
	s.mu.Unlock()
	<-g.done // the next compaction reads the index this one wrote
	if g.err != nil {
		return fmt.Errorf("writing segment %d's compaction: %w", sg.num, g.err)
	}
	return nil
}

// segIndexLocked is the index in s.mu.segs of segment num, or -1.
func (s *streamQueue) segIndexLocked(num uint64) int {
	for i := range s.mu.segs {
		if s.mu.segs[i].num == num {
			return i
		}
	}
	return -1
}

// compactRecovered starts compacting, after recovery, the sealed segments a crash or a policy
// change left uncompacted: every segment but the newest is sealed in the store.
func (s *streamQueue) compactRecovered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.mu.segs); n > 0 {
		s.compaction.upto = max(s.compaction.upto, s.mu.segs[n-1].num)
	}
	s.compactLocked()
}
