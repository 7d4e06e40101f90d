package fifo

import "testing"

// BenchmarkEnqueueSettle is one message through a quorum queue's state machine: an Enqueue
// (deduplicated, delivered at once to the consumer attached) and its Settle, each encoded and
// decoded as the log carries it. go test -run X -bench EnqueueSettle -benchmem ./cluster/fifo
//
// The encoded entry is one reused buffer: each message is settled before the next is encoded, so
// no message still refers to it (the host hands Apply the log entry's own bytes).
func BenchmarkEnqueueSettle(b *testing.B) {
	for _, bc := range []struct {
		name     string
		prefetch uint32
		backlog  int
	}{
		{"empty", 10, 0},
		{"backlog1000", 10, 1000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := New()
			k := ConsumerKey{Owner: 1, Tag: "amq.ctag-1"}
			index := uint64(1)
			body := make([]byte, 100)
			var buf []byte
			var cmd Command
			var dec Decoder
			var held ring[uint64] // delivered, oldest first
			apply := func(c *Command) Reply {
				buf = c.Append(buf[:0])
				if err := dec.Decode(buf, &cmd); err != nil {
					b.Fatal(err)
				}
				index++
				r, effs := s.Apply(index, &cmd)
				for _, e := range effs {
					if e.Kind == EffectDeliver {
						held.push(e.Msg.ID)
					}
				}
				return r
			}
			seq := uint64(0)
			enq := Command{Kind: KindEnqueue, Producer: 7, TTL: -1, Size: uint64(len(body)), Body: body}
			for range bc.backlog {
				seq++
				enq.Seq = seq
				enq.Body = append([]byte(nil), body...) // the backlog keeps its own bytes
				apply(&enq)
			}
			enq.Body = body
			// The consumer holds prefetch messages of the backlog and settles the oldest each time.
			apply(&Command{Kind: KindCheckout, Consumer: k, Credit: bc.prefetch})
			settle := Command{Kind: KindSettle, Consumer: k, IDs: make([]uint64, 1)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				seq++
				enq.Seq, enq.Time = seq, int64(i)
				if r := apply(&enq); r.Status != StatusOK {
					b.Fatalf("enqueue: %v", r.Status)
				}
				settle.IDs[0] = held.pop()
				settle.Time = int64(i)
				apply(&settle)
			}
			b.StopTimer()
			if c := s.Counts(); c.Ready+c.Unacked != uint64(bc.backlog) {
				b.Fatalf("counts %+v, want %d held", c, bc.backlog)
			}
		})
	}
}

// BenchmarkSnapshot: Marshal (with bodies), MarshalCheckpoint and Restore of a queue holding
// 10000 messages of 100 bytes, 1000 of them unacked; bytes/msg is the checkpoint's size per
// message. go test -run X -bench Snapshot -benchmem ./cluster/fifo
func BenchmarkSnapshot(b *testing.B) {
	s := New()
	index := uint64(0)
	apply := func(c Command) {
		index++
		s.Apply(index, &c)
	}
	for i := range 10000 {
		apply(Command{Kind: KindEnqueue, Producer: 1, Seq: uint64(i + 1), TTL: -1, Size: 100, Body: make([]byte, 100)})
	}
	apply(Command{Kind: KindCheckout, Consumer: ConsumerKey{Owner: 1, Tag: "c"}, Credit: 1000})
	b.Run("Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Marshal()
		}
	})
	b.Run("MarshalCheckpoint", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			n = len(s.MarshalCheckpoint())
		}
		b.ReportMetric(float64(n)/10000, "bytes/msg")
	})
	b.Run("Restore", func(b *testing.B) {
		snap := s.Marshal()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Restore(snap); err != nil {
				b.Fatal(err)
			}
		}
	})
}
