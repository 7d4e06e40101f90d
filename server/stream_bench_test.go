package server

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
	"github.com/warrenmq/warren/streamproto"
)

// Stream benchmarks on a Pebble store in a temporary directory (fsync included): appends through
// the queue-type seam with the group commit, and a consumer replaying the stream from first
// through its reader. msgs/s is reported; BenchmarkStreamRead also reports the peak heap in use
// while it replays (flat: one read batch, whatever b.N).
//
//	go test -run '^$' -bench 'Stream(Append|Read)' -benchmem -benchtime 1000000x ./server

// streamBenchWindow is how many appends a benchmark publisher has outstanding before it waits for
// the newest one's group (a confirm window).
const streamBenchWindow = 4096

func newBenchStream(b *testing.B) (*Server, *queue) {
	b.Helper()
	st, err := storage.OpenPebble(b.TempDir(), storage.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Shutdown(context.Background())
		st.Close()
	})
	q, err := s.vhost("/").declareQueue(nil, &amqp.QueueDeclare{Queue: "bench", Durable: true,
		Arguments: amqp.Table{"x-queue-type": "stream", "x-stream-max-segment-size-bytes": int32(64 << 20)}})
	if err != nil {
		b.Fatal(err)
	}
	return s, q
}

// benchAppend appends n messages of body to q with a window of outstanding groups.
func benchAppend(b *testing.B, q *queue, n int, body []byte) {
	var last *commitGroup
	for i := range n {
		_, g := q.publish(&message{routingKey: "bench", body: body, persistent: true, arrived: nowMillis()})
		if g == nil {
			b.Fatal("no commit group")
		}
		last = g
		if i%streamBenchWindow == streamBenchWindow-1 {
			<-g.done
		}
	}
	if last != nil {
		<-last.done
		if last.err != nil {
			b.Fatal(last.err)
		}
	}
}

func BenchmarkStreamAppend(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			_, q := newBenchStream(b)
			body := make([]byte, size)
			b.ReportAllocs()
			b.ResetTimer()
			benchAppend(b, q, b.N, body)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// readTarget takes every delivery and signals when it has had want.
type readTarget struct {
	sub      subscription
	n, want  int64
	done     chan struct{}
	peakHeap atomic.Uint64
}

func (r *readTarget) deliver(*qentry, *dispatchRun) bool {
	r.n++
	if r.n%(1<<16) == 0 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > r.peakHeap.Load() {
			r.peakHeap.Store(ms.HeapInuse)
		}
	}
	if r.n == r.want {
		close(r.done)
	}
	return true
}
func (r *readTarget) queueDeleted() bool     { return false }
func (r *readTarget) cancelled()             {}
func (r *readTarget) deliversOn() any        { return r }
func (r *readTarget) describe(*ConsumerInfo) {}

func BenchmarkStreamRead(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			_, q := newBenchStream(b)
			benchAppend(b, q, b.N, make([]byte, size))
			runtime.GC()
			rt := &readTarget{want: int64(b.N), done: make(chan struct{})}
			rt.sub = subscription{tag: "r", target: rt, prefetch: 1000, args: amqp.Table{"x-stream-offset": "first"}}
			b.ReportAllocs()
			b.ResetTimer()
			if err := q.addConsumer(&rt.sub, func() {}); err != nil {
				b.Fatal(err)
			}
			<-rt.done
			b.StopTimer()
			q.removeConsumer(&rt.sub)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(rt.peakHeap.Load())/(1<<20), "peak-heap-MB")
		})
	}
}

// BenchmarkStreamAppendWhileReading is BenchmarkStreamAppend/16B while a consumer replays the
// stream from first (200000 older entries, then the new ones): readers read the store with no
// stream lock held, so the appends' rate should stay near BenchmarkStreamAppend's.
func BenchmarkStreamAppendWhileReading(b *testing.B) {
	const older = 200000
	_, q := newBenchStream(b)
	body := make([]byte, 16)
	benchAppend(b, q, older, body)
	rt := &readTarget{want: int64(older + b.N), done: make(chan struct{})}
	rt.sub = subscription{tag: "r", target: rt, prefetch: 1000, args: amqp.Table{"x-stream-offset": "first"}}
	b.ReportAllocs()
	b.ResetTimer()
	if err := q.addConsumer(&rt.sub, func() {}); err != nil {
		b.Fatal(err)
	}
	benchAppend(b, q, b.N, body)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	<-rt.done
	q.removeConsumer(&rt.sub)
}

// BenchmarkStreamSubDeliver measures a stream protocol subscription encoding delivered entries
// into its pending chunk (streamSub.deliver: each message as AMQP 1.0), for messages as the Go
// stream client publishes them, all with the same properties. One op is one message.
//
//	go test -run '^$' -bench StreamSubDeliver -benchmem ./server
func BenchmarkStreamSubDeliver(b *testing.B) {
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			raw := streamproto.AppendMessage(nil, &streamproto.Message{HasHeader: true, Durable: true, Data: [][]byte{make([]byte, size)}})
			msg := streamMessageIn(raw, "s", "", 1)
			sub := &streamSub{c: &streamConn{wake: make(chan struct{}, 1)}, credit: 1 << 30}
			e := &qentry{msg: msg}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				e.seq = uint64(i)
				if !sub.deliver(e, nil) { // the chunk is full: cut it, as the writer does
					sub.n, sub.data, sub.ready = 0, sub.data[:0], false
					sub.deliver(e, nil)
				}
			}
		})
	}
}
