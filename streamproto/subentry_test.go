package streamproto

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

func subEntryData(records ...string) []byte {
	var b []byte
	for _, r := range records {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A publish with sub-entry batches (none and gzip) round-trips, and its records come out.
func TestSubEntryPublish(t *testing.T) {
	plain := subEntryData("a", "bb", "")
	big := subEntryData(strings.Repeat("x", 1000), "y")
	pub := &Publish{V: 1, PublisherID: 2, Messages: []PublishedMessage{
		{PublishingID: 7, SubEntry: true, Compression: CompressionNone, Records: 3, UncompressedSize: uint32(len(plain)), Message: plain},
		{PublishingID: 8, Message: []byte("single")},
		{PublishingID: 9, SubEntry: true, Compression: CompressionGzip, Records: 2, UncompressedSize: uint32(len(big)), Message: gzipped(t, big)},
	}}
	fr, err := Append(nil, pub)
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := ReadFrame(fr, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	got := cmd.(*Publish)
	if len(got.Messages) != 3 || !got.Messages[0].SubEntry || got.Messages[1].SubEntry || got.Messages[2].Compression != CompressionGzip || got.Messages[2].Records != 2 {
		t.Fatalf("decoded %+v", got.Messages)
	}
	want := [][]string{{"a", "bb", ""}, {"single"}, {strings.Repeat("x", 1000), "y"}}
	for i := range got.Messages {
		recs, err := SubEntryRecords(&got.Messages[i])
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var s []string
		for _, r := range recs {
			s = append(s, string(r))
		}
		if !slices.Equal(s, want[i]) {
			t.Errorf("message %d: records %q, want %q", i, s, want[i])
		}
	}
}

// Bad sub-entry batches are errors, never a panic or a huge allocation.
func TestSubEntryRecordsRefused(t *testing.T) {
	plain := subEntryData("a", "bb")
	for name, m := range map[string]PublishedMessage{
		"too few records":   {SubEntry: true, Records: 3, UncompressedSize: uint32(len(plain)), Message: plain},
		"too many records":  {SubEntry: true, Records: 1, UncompressedSize: uint32(len(plain)), Message: plain},
		"size mismatch":     {SubEntry: true, Records: 2, UncompressedSize: uint32(len(plain)) + 1, Message: plain},
		"truncated record":  {SubEntry: true, Records: 2, UncompressedSize: uint32(len(plain)) - 1, Message: plain[:len(plain)-1]},
		"snappy":            {SubEntry: true, Compression: CompressionSnappy, Records: 2, UncompressedSize: uint32(len(plain)), Message: plain},
		"not gzip":          {SubEntry: true, Compression: CompressionGzip, Records: 2, UncompressedSize: uint32(len(plain)), Message: plain},
		"inflates past":     {SubEntry: true, Compression: CompressionGzip, Records: 2, UncompressedSize: uint32(len(plain)) - 2, Message: gzipped(t, plain)},
		"announces too big": {SubEntry: true, Compression: CompressionGzip, Records: 2, UncompressedSize: MaxSubEntryUncompressed + 1, Message: gzipped(t, plain)},
	} {
		if recs, err := SubEntryRecords(&m); err == nil {
			t.Errorf("%s: records %q, want an error", name, recs)
		}
	}
}
