//go:build unix

package cluster

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHostIdleGroups measures what idle groups cost: three hosts (Pebble on a memory file
// system) run groups groups with nothing proposed, so only ticks, heartbeats and their Ready
// cycles remain; each op is one tick interval (100 ms) of wall time. It reports the process's
// CPU time per second (cores used by all three nodes), and the messages per second the nodes sent.
func BenchmarkHostIdleGroups(b *testing.B) {
	for _, groups := range []int{100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			o := testOptions()
			o.TickInterval = 100 * time.Millisecond
			c := newCluster(b, groups, o, false)
			c.waitLeaders(60*time.Second, c.nodes)
			msgs := func() (n uint64) {
				for _, nd := range c.nodes {
					n += nd.host.Stats().Transport.MessagesSent
				}
				return n
			}
			cpu0, msgs0, start := cpuTime(b), msgs(), time.Now()
			b.ResetTimer()
			for range b.N {
				// The op is a span of wall time: idle cost is CPU per second, not per event.
				tm := time.NewTimer(o.TickInterval)
				<-tm.C
			}
			b.StopTimer()
			secs := time.Since(start).Seconds()
			b.ReportMetric((cpuTime(b)-cpu0).Seconds()/secs, "cpu-cores")
			b.ReportMetric(float64(msgs()-msgs0)/secs, "msgs/s")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
