package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHostPropose measures committed and applied proposals per second on three hosts in one
// process over TCP on loopback, each with its Pebble on disk: groups groups, 8 proposers per group
// (at least 64 in all) proposing 100-byte entries on the group's leader, so that many proposals
// and many groups share each Ready cycle's one fsync. It reports proposals/s and the synced writes
// (fsyncs) per proposal over the three nodes.
//
// The store=mem cases put Pebble on a memory file system, where an fsync costs nothing: what is
// left is the CPU cost of the loops, the transport and raft.
func BenchmarkHostPropose(b *testing.B) {
	for _, tc := range []struct {
		groups int
		disk   bool
	}{{1, true}, {10, true}, {100, true}, {1, false}, {100, false}} {
		groups := tc.groups
		store := "disk"
		if !tc.disk {
			store = "mem"
		}
		b.Run(fmt.Sprintf("store=%s/groups=%d", store, groups), func(b *testing.B) {
			o := testOptions()
			o.TickInterval = 100 * time.Millisecond
			c := newCluster(b, groups, o, tc.disk)
			c.waitLeaders(30*time.Second, c.nodes)
			leaders := make([]*testNode, groups+1)
			for g := 1; g <= groups; g++ {
				leaders[g] = c.node(c.leader(uint64(g), c.nodes))
			}
			payload := make([]byte, 100)
			for i := range payload {
				payload[i] = 'x'
			}
			copy(payload, "key=")
			workers := max(64, 8*groups)
			var next atomic.Int64
			var failed atomic.Int64
			writesBefore := uint64(0)
			for _, n := range c.nodes {
				writesBefore += n.host.Stats().Writes
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					g := uint64(w%groups + 1)
					n := leaders[g]
					for next.Add(1) <= int64(b.N) {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						if _, err := n.host.Propose(ctx, g, payload); err != nil {
							failed.Add(1)
						}
						cancel()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if f := failed.Load(); f > int64(b.N)/100 {
				b.Fatalf("%d of %d proposals failed", f, b.N)
			}
			writes := uint64(0)
			for _, n := range c.nodes {
				writes += n.host.Stats().Writes
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proposals/s")
			b.ReportMetric(float64(writes-writesBefore)/float64(b.N), "fsyncs/proposal")
		})
	}
}
