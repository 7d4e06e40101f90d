package storage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkPebbleApplySync measures synced Applies of one message on a real directory, from 1 and
// from 10 concurrent appliers. ns/op is wall time per Apply (so with 10 appliers it is the
// throughput, not the latency). syncs/op is WAL fsyncs per Apply and commits/sync its inverse:
// the group-commit factor.
//
//	go test -run '^$' -bench BenchmarkPebbleApplySync -benchtime 2000x ./storage
func BenchmarkPebbleApplySync(b *testing.B) {
	for _, appliers := range []int{1, 10} {
		for _, size := range []int{16, 1024} {
			b.Run(fmt.Sprintf("appliers=%d/value=%dB", appliers, size), func(b *testing.B) {
				benchApplySync(b, appliers, size)
			})
		}
	}
}

func benchApplySync(b *testing.B, appliers, size int) {
	s, err := OpenPebble(b.TempDir(), PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	value := make([]byte, size)
	var next atomic.Uint64
	before := s.Stats()
	b.SetBytes(int64(size))
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range appliers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > uint64(b.N) {
					return
				}
				var batch Batch
				batch.Set(MessageKey(uint64(w), i), value)
				if err := s.Apply(&batch, true); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	st := s.Stats()
	commits := float64(st.SyncedCommits - before.SyncedCommits)
	syncs := float64(st.WALSyncs - before.WALSyncs)
	if commits > 0 && syncs > 0 {
		b.ReportMetric(syncs/commits, "syncs/op")
		b.ReportMetric(commits/syncs, "commits/sync")
	}
}
