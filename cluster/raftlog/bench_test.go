package raftlog

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/warrenmq/warren/storage"
	pb "go.etcd.io/raft/v3/raftpb"
)

// BenchmarkWriteReady measures Ready cycles on Pebble on disk: each op appends entries (128-byte
// payloads) to every one of groups groups, sets their HardState and applied index, in one Write
// (one synced batch). It reports entries/s and the WAL fsyncs per cycle that Pebble counted.
func BenchmarkWriteReady(b *testing.B) {
	for _, groups := range []int{1, 100, 1000} {
		for _, perGroup := range []int{1, 16} {
			b.Run(fmt.Sprintf("groups=%d/entries=%d", groups, perGroup), func(b *testing.B) {
				p, err := storage.OpenPebble(b.TempDir(), storage.PebbleOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = p.Close() }()
				l, err := Open(p)
				if err != nil {
					b.Fatal(err)
				}
				payload := make([]byte, 128)
				next := make([]uint64, groups)
				for i := range next {
					next[i] = 1
				}
				updates := make([]Update, groups)
				before := p.Stats().WALSyncs
				b.ResetTimer()
				for range b.N {
					for g := range groups {
						ents := make([]*pb.Entry, perGroup)
						for i := range ents {
							ents[i] = &pb.Entry{Index: new(next[g]), Term: new(uint64(1)), Data: payload}
							next[g]++
						}
						last := next[g] - 1
						updates[g] = Update{Group: uint64(g + 1), Entries: ents, Applied: last,
							HardState: &pb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(last)}}
					}
					if err := l.Write(updates); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				total := float64(b.N * groups * perGroup)
				b.ReportMetric(total/b.Elapsed().Seconds(), "entries/s")
				b.ReportMetric(float64(p.Stats().WALSyncs-before)/float64(b.N), "fsyncs/op")
				b.ReportMetric(float64(l.Syncs())/float64(b.N), "batches/op")
			})
		}
	}
}
