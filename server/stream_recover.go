package server

import (
	"fmt"

	"github.com/warrenmq/warren/storage"
)

// recoverLog rebuilds a stream's state from its keys: the segments from their metadata ('Z'),
// and the newest segment, which is not sealed, by scanning its entries (its end, bytes, last
// timestamp and last chunk). A new stream has no keys: it costs two seeks.
func (s *streamQueue) recoverLog() error {
	st := s.v.srv.store
	start, end := storage.StreamSegmentMetaAll(s.id) // the stream front end keeps other records there
	var segs []streamSegment
	err := st.ScanRange(start, end, func(k, v []byte) error {
		num, err := storage.ParseStreamSegmentKey(s.id, k)
		if err != nil {
			return err
		}
		sg, _, err := decodeStreamSegment(num, v)
		if err != nil {
			return err
		}
		segs = append(segs, sg)
		return nil
	})
	if err != nil {
		return fmt.Errorf("segment metadata: %w", err)
	}
	if len(segs) == 0 {
		return nil
	}
	// The newest segment: its metadata holds only where it starts.
	last := &segs[len(segs)-1]
	last.end, last.bytes = last.first, 0
	var lastChunk uint64
	hasChunk := false
	start, end = storage.StreamSegmentRange(s.id, last.num, last.num+1)
	err = st.ScanRange(start, end, func(k, v []byte) error {
		_, _, off, err := storage.ParseStreamEntryKey(k)
		if err != nil {
			return err
		}
		last.end = off + 1
		last.bytes += int64(len(k) + len(v))
		if ts, ok := streamEntryTime(v); ok {
			last.lastTs = ts
		}
		if len(v) > 0 && v[0]&streamChunkStart != 0 {
			lastChunk, hasChunk = off, true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("segment %d: %w", last.num, err)
	}
	s.mu.segs = segs
	s.mu.next, s.mu.committed = last.end, last.end
	s.mu.lastChunk, s.mu.hasChunk = lastChunk, hasChunk
	return nil
}
