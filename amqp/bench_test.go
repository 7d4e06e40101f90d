package amqp

import (
	"bytes"
	"testing"
)

func BenchmarkReadFramePublish(b *testing.B) {
	stream := publishStream(b, make([]byte, 1024))
	r := bytes.NewReader(stream)
	fr := NewFrameReader(r)
	fr.SetFrameMax(131072)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		for i := 0; i < 3; i++ {
			if _, err := fr.ReadFrame(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkDecodeMethodPublish(b *testing.B) {
	payload := mustPayload(b, &BasicPublish{Exchange: "orders", RoutingKey: "orders.created.eu", Mandatory: true})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMethod(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendDeliverFrame appends what a delivery puts on the wire:
// basic.deliver, the content header (raw properties reused) and the body.
func BenchmarkAppendDeliverFrame(b *testing.B) {
	props := Properties{ContentType: "application/json", DeliveryMode: 2, Headers: Table{"x-trace": "abc"}}
	raw, err := props.Append(nil)
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 1024)
	deliver := &BasicDeliver{ConsumerTag: "amq.ctag-abc", Exchange: "orders", RoutingKey: "orders.created.eu"}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		deliver.DeliveryTag++
		out, err := AppendMethodFrame(dst[:0], 1, deliver)
		if err != nil {
			b.Fatal(err)
		}
		out = AppendContentHeaderFrame(out, 1, ClassBasic, uint64(len(body)), raw)
		dst = AppendBodyFrames(out, 1, body, 131072)
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkDecodeTable(b *testing.B) {
	enc, err := AppendTable(nil, clientProperties())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeTable(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawDeliveryMode(b *testing.B) {
	raw, _ := (&Properties{ContentType: "application/json", Headers: clientProperties(), DeliveryMode: 2}).Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		if m, err := RawDeliveryMode(raw); err != nil || m != 2 {
			b.Fatal(m, err)
		}
	}
}
