package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/warrenmq/warren/amqp"
)

// BenchmarkQueuePublishGet enqueues a transient message on a queue without consumers and takes it
// back with basic.get semantics (no ack): the queue's own cost per message, without the wire.
// batch=1 alternates publish and get; batch=1000 builds a 1000-message backlog and drains it.
//
//	go test -run '^$' -bench QueuePublishGet -benchmem ./server
func BenchmarkQueuePublishGet(b *testing.B) {
	for _, batch := range []int{1, 1000} {
		b.Run(map[int]string{1: "batch=1", 1000: "batch=1000"}[batch], func(b *testing.B) {
			s, err := New(Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Shutdown(context.Background())
			q, err := s.vhost("/").declareQueue(nil, &amqp.QueueDeclare{Queue: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 16)
			b.ReportAllocs()
			for b.Loop() {
				for range batch {
					if r, _ := q.publish(&message{body: body}); r != published {
						b.Fatal("not published")
					}
				}
				for range batch {
					if e, _ := q.get(false); e == nil {
						b.Fatal("queue empty")
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
		})
	}
}

// BenchmarkConnReaderFrames reads basic.publish frame sets (method, header, 1 KiB body) through
// the connection's reader (connReader, which starts at 4 KiB and grows) and, for comparison,
// through the 64 KiB bufio.Reader it replaced. The source hands out up to 64 KiB per read, as a
// busy socket does.
//
//	go test -run '^$' -bench ConnReaderFrames -benchmem ./server
func BenchmarkConnReaderFrames(b *testing.B) {
	var stream []byte
	body := make([]byte, 1024)
	for range 1000 {
		var err error
		stream, err = amqp.AppendMethodFrame(stream, 1, &amqp.BasicPublish{RoutingKey: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		stream = amqp.AppendContentHeaderFrame(stream, 1, amqp.ClassBasic, uint64(len(body)), nil)
		stream = amqp.AppendBodyFrames(stream, 1, body, 131072)
	}
	for _, impl := range []string{"connReader", "bufio64K"} {
		b.Run(impl, func(b *testing.B) {
			src := &chunkedSource{max: 64 << 10}
			var r io.Reader
			if impl == "connReader" {
				r = newConnReader(src)
			} else {
				r = bufio.NewReaderSize(src, 64<<10)
			}
			fr := amqp.NewFrameReader(r)
			fr.SetFrameMax(131072)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(stream)
				for range 3000 {
					if _, err := fr.ReadFrame(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// chunkedSource returns at most max bytes per Read.
type chunkedSource struct {
	bytes.Reader
	max int
}

func (c *chunkedSource) Read(p []byte) (int, error) {
	return c.Reader.Read(p[:min(len(p), c.max)])
}

// countingTarget is a delivery target that takes everything and keeps nothing.
type countingTarget struct {
	sub subscription
	n   int
}

func (c *countingTarget) deliver(*qentry, *dispatchRun) bool { c.n++; return true }
func (c *countingTarget) queueDeleted() bool                 { return false }
func (c *countingTarget) cancelled()                         {}
func (c *countingTarget) deliversOn() any                    { return c }
func (c *countingTarget) describe(*ConsumerInfo)             {}

// BenchmarkQueuePublishDeliver publishes a transient message through the core publish path
// (vhost.publish) to a queue whose no-ack consumer takes it at once through the delivery-target
// interface: the queue's cost per delivered message, without the wire or AMQP encoding. The
// message and its entry are one allocation made by the benchmark, as the channel makes it, so
// allocs/op is 1: routing, enqueueing and dispatch through the interfaces add none.
//
//	go test -run '^$' -bench QueuePublishDeliver -benchmem ./server
func BenchmarkQueuePublishDeliver(b *testing.B) {
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	v := s.vhost("/")
	q, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ct := &countingTarget{}
	ct.sub = subscription{tag: "c", target: ct, noAck: true}
	if err := q.addConsumer(&ct.sub, func() {}); err != nil {
		b.Fatal(err)
	}
	ex := v.exchange("")
	src := &fakeSource{}
	body := make([]byte, 16)
	type msgEntry struct {
		m message
		e qentry
	}
	var buf [8]*queue
	b.ReportAllocs()
	for b.Loop() {
		me := &msgEntry{m: message{routingKey: "bench", body: body}}
		if qs, _ := v.publish(src, ex, &me.m, nil, &me.e, buf[:0]); len(qs) != 1 {
			b.Fatal("not routed")
		}
	}
	if ct.n != b.N {
		b.Fatalf("delivered %d of %d", ct.n, b.N)
	}
}
