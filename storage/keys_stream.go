package storage

import (
	"encoding/binary"
	"fmt"
)

// Stream keys (server/stream*.go). A stream is an append-only log of messages, each with an
// offset; its messages are grouped in segments, and retention drops whole segments.
//
//   - 'Y' | stream id | segment | offset -> entry (the message record with a flags byte).
//     Ids, segments and offsets are big-endian uint64s, the segment before the offset, so a
//     segment is one contiguous key range (StreamSegmentRange) and dropping the oldest segments is
//     one DeleteRange. Segments and offsets both only grow, so the stream's entries also sort by
//     offset across segments: a reader seeks to (segment of its offset, offset) and iterates.
//   - 'Z' | stream id | 's' | segment -> segment metadata (first offset and timestamp; once
//     sealed, also the end offset, bytes and last timestamp; once compacted, also the number of
//     entries compaction removed): the index from timestamp to offset and what retention reads
//     without scanning entries.
//   - 'Z' | stream id | 'k' | compaction key -> segment, offset and size (big-endian uint64s) of
//     the latest entry with that key in the segments compacted so far (server/stream_compact.go).
//
// StreamRange and StreamMetaRange cover everything of one stream (a queue delete drops both).
const (
	prefixStreamEntry = 'Y'
	prefixStreamMeta  = 'Z'
	streamMetaSegment = 's'
	streamMetaKey     = 'k'
)

// StreamKeyIndexKey is the key of compaction key key's index record in stream id.
func StreamKeyIndexKey(id uint64, key string) []byte { return streamRefKey(id, streamMetaKey, key) }

// StreamEntryKey is the key of the entry at offset in segment seg of stream id.
func StreamEntryKey(id, seg, offset uint64) []byte {
	k := make([]byte, 0, 25)
	k = append(k, prefixStreamEntry)
	k = binary.BigEndian.AppendUint64(k, id)
	k = binary.BigEndian.AppendUint64(k, seg)
	return binary.BigEndian.AppendUint64(k, offset)
}

// ParseStreamEntryKey splits an entry key into stream id, segment and offset.
func ParseStreamEntryKey(key []byte) (id, seg, offset uint64, err error) {
	if len(key) != 25 || key[0] != prefixStreamEntry {
		return 0, 0, 0, fmt.Errorf("storage: malformed stream entry key %x", key)
	}
	return binary.BigEndian.Uint64(key[1:]), binary.BigEndian.Uint64(key[9:]), binary.BigEndian.Uint64(key[17:]), nil
}

func streamSegmentStart(id, seg uint64) []byte {
	k := make([]byte, 0, 17)
	k = append(k, prefixStreamEntry)
	k = binary.BigEndian.AppendUint64(k, id)
	return binary.BigEndian.AppendUint64(k, seg)
}

// StreamSegmentRange is [start, end) over the entries of segments from..to-1 of stream id (one
// segment: StreamSegmentRange(id, seg, seg+1)).
func StreamSegmentRange(id, from, to uint64) (start, end []byte) {
	return streamSegmentStart(id, from), streamSegmentStart(id, to)
}

// StreamRange is [start, end) over every entry of stream id.
func StreamRange(id uint64) (start, end []byte) {
	return binary.BigEndian.AppendUint64([]byte{prefixStreamEntry}, id), streamIDEnd(prefixStreamEntry, id)
}

// streamIDEnd is the first key past every key of stream id under prefix.
func streamIDEnd(prefix byte, id uint64) []byte {
	if id == ^uint64(0) {
		return []byte{prefix + 1}
	}
	return binary.BigEndian.AppendUint64([]byte{prefix}, id+1)
}

// StreamSegmentKey is the key of segment seg's metadata in stream id.
func StreamSegmentKey(id, seg uint64) []byte {
	k := make([]byte, 0, 18)
	k = append(k, prefixStreamMeta)
	k = binary.BigEndian.AppendUint64(k, id)
	k = append(k, streamMetaSegment)
	return binary.BigEndian.AppendUint64(k, seg)
}

// StreamSegmentMetaRange is [start, end) over the metadata of segments from..to-1 of stream id.
func StreamSegmentMetaRange(id, from, to uint64) (start, end []byte) {
	return StreamSegmentKey(id, from), StreamSegmentKey(id, to)
}

// ParseStreamSegmentKey returns the segment of a segment metadata key of stream id.
func ParseStreamSegmentKey(id uint64, key []byte) (seg uint64, err error) {
	if len(key) != 18 || key[0] != prefixStreamMeta || binary.BigEndian.Uint64(key[1:]) != id || key[9] != streamMetaSegment {
		return 0, fmt.Errorf("storage: malformed stream segment key %x", key)
	}
	return binary.BigEndian.Uint64(key[10:]), nil
}

// StreamMetaRange is [start, end) over every metadata record of stream id.
func StreamMetaRange(id uint64) (start, end []byte) {
	return binary.BigEndian.AppendUint64([]byte{prefixStreamMeta}, id), streamIDEnd(prefixStreamMeta, id)
}
