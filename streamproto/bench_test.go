package streamproto

import "testing"

// BenchmarkDecodePublish splits and decodes a Publish of 100 messages of
// 64 bytes (the Go client's default batch size).
func BenchmarkDecodePublish(b *testing.B) {
	p := &Publish{V: 1, PublisherID: 1}
	for i := range 100 {
		p.Messages = append(p.Messages, PublishedMessage{PublishingID: uint64(i), Message: make([]byte, 64)})
	}
	frame, err := Append(nil, p)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		f, _, err := ReadFrame(frame, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPublishConfirm encodes a confirm of 100 ids into a reused buffer.
func BenchmarkAppendPublishConfirm(b *testing.B) {
	c := &PublishConfirm{PublisherID: 1, PublishingIDs: make([]uint64, 100)}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], c); err != nil {
			b.Fatal(err)
		}
	}
}
