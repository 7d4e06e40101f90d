package storage

import "encoding/binary"

// Stream protocol front end keys (server/stream_front*.go), in a stream's metadata range so a
// stream's delete drops them with it (StreamMetaRange):
//
//   - 'Z' | stream id | 'p' | publisher reference -> the highest publishing id stored for that
//     named publisher (uint64; deduplication, query_publisher_sequence).
//   - 'Z' | stream id | 'o' | consumer reference -> the offset stored for that reference
//     (uint64; store_offset / query_offset, server-side offset tracking).
const (
	streamMetaPublisher = 'p'
	streamMetaOffset    = 'o'
)

func streamRefKey(id uint64, kind byte, ref string) []byte {
	k := make([]byte, 0, 10+len(ref))
	k = append(k, prefixStreamMeta)
	k = binary.BigEndian.AppendUint64(k, id)
	k = append(k, kind)
	return append(k, ref...)
}

// StreamPublisherKey is the key of the publisher sequence of reference ref on stream id.
func StreamPublisherKey(id uint64, ref string) []byte {
	return streamRefKey(id, streamMetaPublisher, ref)
}

// StreamOffsetKey is the key of the offset stored for reference ref on stream id.
func StreamOffsetKey(id uint64, ref string) []byte { return streamRefKey(id, streamMetaOffset, ref) }

// StreamSegmentMetaAll is [start, end) over every segment metadata record of stream id (and
// nothing else of its metadata range).
func StreamSegmentMetaAll(id uint64) (start, end []byte) {
	start = binary.BigEndian.AppendUint64([]byte{prefixStreamMeta}, id)
	end = append(append([]byte(nil), start...), streamMetaSegment+1)
	return append(start, streamMetaSegment), end
}
