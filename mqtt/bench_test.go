package mqtt

import (
	"bytes"
	"testing"
)

func benchPublish(v Version) *Publish {
	p := &Publish{QoS: 1, PacketID: 1, Topic: "sensors/building-1/floor-2/temperature", Payload: bytes.Repeat([]byte("x"), 128)}
	if v == V5 {
		p.Properties = Properties{Present: propSet(PropPayloadFormat, PropMessageExpiry), PayloadFormat: 1, MessageExpiry: 60}
	}
	return p
}

// BenchmarkDecodePublish decodes a QoS 1 PUBLISH with a 128-byte payload with a connection's
// Decoder, the buffer kept by the caller (the payload aliases it).
func BenchmarkDecodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(v.String(), func(b *testing.B) {
			enc, err := Append(nil, benchPublish(v), v)
			if err != nil {
				b.Fatal(err)
			}
			d := &Decoder{Version: v}
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				p, n, err := d.Decode(enc)
				if err != nil || n != len(enc) || p.(*Publish).PacketID != 1 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodePublish appends the same PUBLISH into a reused buffer.
func BenchmarkEncodePublish(b *testing.B) {
	for _, v := range []Version{V311, V5} {
		b.Run(v.String(), func(b *testing.B) {
			p := benchPublish(v)
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendPublish(buf[:0], p, v); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// TestDecodePublishAllocs pins the zero-allocation decode of a PUBLISH (topic unchanged).
func TestDecodePublishAllocs(t *testing.T) {
	for _, v := range []Version{V311, V5} {
		enc, _ := Append(nil, benchPublish(v), v)
		d := &Decoder{Version: v}
		if _, _, err := d.Decode(enc); err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(100, func() { d.Decode(enc) }); a != 0 {
			t.Errorf("%s: %v allocs per decode", v, a)
		}
		p := benchPublish(v)
		buf := make([]byte, 0, 512)
		if a := testing.AllocsPerRun(100, func() { buf, _ = AppendPublish(buf[:0], p, v) }); a != 0 {
			t.Errorf("%s: %v allocs per encode", v, a)
		}
	}
}
