package amqp

import (
	"reflect"
	"testing"
)

// MethodDecoder agrees with DecodeMethod on every input: the methods it reuses, the others, and
// malformed payloads (including trailing bytes, which DecodeMethod refuses).
func TestMethodDecoderMatchesDecodeMethod(t *testing.T) {
	var d MethodDecoder
	inputs := [][]byte{
		mustPayload(t, &BasicPublish{Exchange: "orders", RoutingKey: "a.b", Mandatory: true}),
		mustPayload(t, &BasicPublish{Exchange: "orders", RoutingKey: "a.b"}),
		mustPayload(t, &BasicPublish{Exchange: "", RoutingKey: "q", Immediate: true, Ticket: 3}),
		mustPayload(t, &BasicAck{DeliveryTag: 42, Multiple: true}),
		mustPayload(t, &BasicAck{DeliveryTag: 7}),
		mustPayload(t, &BasicNack{DeliveryTag: 9, Requeue: true}),
		mustPayload(t, &ChannelOpen{}),
		append(mustPayload(t, &BasicPublish{Exchange: "x"}), 0),
		append(mustPayload(t, &BasicAck{DeliveryTag: 1}), 0),
		mustPayload(t, &BasicPublish{Exchange: "x", RoutingKey: "k"})[:8],
		mustPayload(t, &BasicAck{DeliveryTag: 1})[:6],
		{0, 60},
	}
	for i, in := range inputs {
		want, wantErr := DecodeMethod(in)
		got, err := d.Decode(in)
		if !reflect.DeepEqual(err, wantErr) {
			t.Errorf("input %d: error %v, want %v", i, err, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("input %d: got %#v, want %#v", i, got, want)
		}
	}
}

// Decoding a stream of publishes to one exchange and routing key, and acks, allocates nothing.
func TestMethodDecoderPublishAllocatesNothing(t *testing.T) {
	pub := mustPayload(t, &BasicPublish{Exchange: "orders", RoutingKey: "orders.created.eu", Mandatory: true})
	ack := mustPayload(t, &BasicAck{DeliveryTag: 100, Multiple: true})
	var d MethodDecoder
	if _, err := d.Decode(pub); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.Decode(pub); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Decode(ack); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per publish and ack; want 0", allocs)
	}
}

func BenchmarkMethodDecoderPublish(b *testing.B) {
	payload := mustPayload(b, &BasicPublish{Exchange: "orders", RoutingKey: "orders.created.eu", Mandatory: true})
	var d MethodDecoder
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendDeliverFrameMatchesAppendMethodFrame(t *testing.T) {
	m := &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1 << 40, Redelivered: true, Exchange: "x", RoutingKey: "k.1"}
	want, err := AppendMethodFrame([]byte("prefix"), 7, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := AppendDeliverFrame([]byte("prefix"), 7, m)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %x, want %x", got, want)
	}
	long := &BasicDeliver{ConsumerTag: string(make([]byte, 256))}
	if got, err := AppendDeliverFrame([]byte("p"), 1, long); err == nil || string(got) != "p" {
		t.Errorf("a 256-byte consumer tag: got %q, %v; want the input back and an error", got, err)
	}
}
