package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
)

// BenchmarkStreamCompaction appends b.N messages of 1 KiB, each with a key drawn from a set of
// 1 000 or 100 000, to a stream with 4 MiB segments on Pebble (fsync on), with compaction none
// (the baseline) or key; it waits for every sealed segment to be compacted and reports what
// compaction cost per roll: the bytes it wrote (deletes of the removed entries, index records,
// metadata) against the bytes of the segment it compacted, and the entries it removed.
//
//	go test -run '^$' -bench StreamCompaction -benchtime 100000x ./server
func BenchmarkStreamCompaction(b *testing.B) {
	for _, c := range []struct {
		mode string
		keys int
	}{{"none", 1000}, {"key", 1000}, {"key", 100000}} {
		keys := c.keys
		b.Run(fmt.Sprintf("%s/keys=%d", c.mode, keys), func(b *testing.B) {
			q := newCompactBenchStream(b, c.mode)
			sq := q.queueImpl.(*streamQueue)
			body := make([]byte, 1024)
			props := make([][]byte, keys)
			for i := range props {
				raw, err := (&amqp.Properties{Headers: amqp.Table{"x-key": fmt.Sprintf("key-%d", i)}}).Append(nil)
				if err != nil {
					b.Fatal(err)
				}
				props[i] = raw
			}
			b.ReportAllocs()
			b.ResetTimer()
			var last *commitGroup
			for i := range b.N {
				_, g := q.publish(&message{routingKey: "bench", props: props[(i*7919)%keys], body: body, persistent: true, arrived: nowMillis()})
				last = g
				if i%streamBenchWindow == streamBenchWindow-1 {
					<-g.done
				}
			}
			<-last.done
			wait.For(b, 5*time.Minute, "compaction", func() bool {
				sq.mu.Lock()
				defer sq.mu.Unlock()
				_, more := sq.nextCompactLocked()
				return !more && !sq.compaction.running
			})
			b.StopTimer()
			segs := sq.compaction.segments.Load()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if segs == 0 {
				return // no compaction, or no segment sealed at this b.N
			}
			segBytes := float64(sq.compaction.scanned.Load()) / float64(segs)
			b.ReportMetric(float64(segs), "rolls")
			b.ReportMetric(float64(sq.compaction.written.Load())/float64(segs), "written-B/roll")
			b.ReportMetric(float64(sq.compaction.written.Load())/float64(segs)/segBytes*100, "written-%-of-segment")
			b.ReportMetric(float64(sq.compaction.removed.Load())/float64(segs), "removed/roll")
			b.ReportMetric(segBytes, "segment-B")
		})
	}
}

func newCompactBenchStream(b *testing.B, mode string) *queue {
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
	q, err := s.vhost("/").declareQueue(nil, &amqp.QueueDeclare{Queue: "bench", Durable: true, Arguments: amqp.Table{
		"x-queue-type": "stream", "x-stream-max-segment-size-bytes": int32(4 << 20), "x-stream-compaction": mode}})
	if err != nil {
		b.Fatal(err)
	}
	return q
}
