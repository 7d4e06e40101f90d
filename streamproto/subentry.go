package streamproto

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
)

// Sub-entry compressions (the entry type byte's bits 4-6), as the clients number them.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

// MaxSubEntryUncompressed bounds a sub-entry batch's uncompressed size: a batch that claims or
// inflates to more is refused (no decompression bomb is expanded past it).
const MaxSubEntryUncompressed = 64 << 20

// SubEntryRecords returns the records (AMQP 1.0 messages) of a sub-entry batch m: its data
// uncompressed (none and gzip are supported), split into exactly m.Records int32-sized records
// that fill UncompressedSize bytes. The records alias the uncompressed data (m.Message itself
// without compression).
func SubEntryRecords(m *PublishedMessage) ([][]byte, error) {
	if !m.SubEntry {
		return [][]byte{m.Message}, nil
	}
	if m.UncompressedSize > MaxSubEntryUncompressed {
		return nil, fmt.Errorf("sub-entry batch of %d bytes uncompressed, over %d", m.UncompressedSize, MaxSubEntryUncompressed)
	}
	var data []byte
	switch m.Compression {
	case CompressionNone:
		data = m.Message
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(m.Message))
		if err != nil {
			return nil, fmt.Errorf("sub-entry batch: gzip: %w", err)
		}
		// The announced size is the client's word: preallocate no more than the compressed
		// data could plausibly inflate to, and let the buffer grow past that if it really does.
		data = make([]byte, 0, min(int(m.UncompressedSize), 64*len(m.Message)+512))
		buf := bytes.NewBuffer(data)
		// One byte more than announced shows a batch that inflates past its size.
		if _, err := io.Copy(buf, io.LimitReader(zr, int64(m.UncompressedSize)+1)); err != nil {
			return nil, fmt.Errorf("sub-entry batch: gzip: %w", err)
		}
		data = buf.Bytes()
	default:
		return nil, fmt.Errorf("sub-entry compression %d is not supported", m.Compression)
	}
	if len(data) != int(m.UncompressedSize) {
		return nil, fmt.Errorf("sub-entry batch of %d bytes uncompressed, %d announced", len(data), m.UncompressedSize)
	}
	out := make([][]byte, 0, m.Records)
	for len(data) > 0 {
		if len(out) == int(m.Records) {
			return nil, fmt.Errorf("sub-entry batch: %d bytes after its %d records", len(data), m.Records)
		}
		if len(data) < 4 {
			return nil, fmt.Errorf("sub-entry batch: record size truncated")
		}
		n := binary.BigEndian.Uint32(data)
		if uint64(n) > uint64(len(data)-4) {
			return nil, fmt.Errorf("sub-entry batch: record of %d bytes but %d follow", n, len(data)-4)
		}
		out = append(out, data[4:4+n:4+n])
		data = data[4+n:]
	}
	if len(out) != int(m.Records) {
		return nil, fmt.Errorf("sub-entry batch: %d records, %d announced", len(out), m.Records)
	}
	return out, nil
}
