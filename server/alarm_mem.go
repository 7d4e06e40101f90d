package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultMemoryHighWatermark is RabbitMQ's default vm_memory_high_watermark.relative: the memory
// alarm goes off above 40% of the total memory (TotalMemory).
const DefaultMemoryHighWatermark = 0.4

// DefaultMemoryCheckInterval is how often the memory alarm samples the broker's memory.
// RabbitMQ's memory_monitor_interval is 2.5s; Warren samples more often because it is cheap (one
// read of /proc/self/statm) and a flood on a fast link overshoots the watermark less.
const DefaultMemoryCheckInterval = 500 * time.Millisecond

// memoryPressureWindow is the page-in window of a queue while the memory alarm is raised: a
// paged queue reads this many messages back at a time instead of its whole window, so consumers
// drain it without refilling memory (pageWindow).
const memoryPressureWindow = 64

// memAlarm samples the broker's memory (Options.MemoryUsed) every interval. Above the limit it
// raises the memory alarm, as RabbitMQ's vm_memory_monitor does: publishers are blocked
// (resourceAlarms), and every queue pages the messages it holds in memory out to the store
// (pageOutAll) and reads back only small pages until the alarm clears. The alarm clears at the
// first sample at or below the limit: like RabbitMQ's, it has no hysteresis.
//
// The measure is the resident set size (RabbitMQ 3.10's default strategy, "rss"): it counts the
// store's memory (Pebble's cache and memtables are C memory with cgo) and is what the kernel's
// OOM killer sees. Go frees lazily: garbage counts until the next GC, and freed pages until the
// scavenger returns them. So a sample above the limit is taken again after debug.FreeOSMemory
// (a GC that returns free pages to the OS): the alarm goes off only for memory in use, and
// clears as soon as acks and page-outs free it. That costs one GC per sample while over the
// limit, never on the publish path.
type memAlarm struct {
	used     func() (uint64, error)
	limit    uint64
	interval time.Duration
	srv      *Server
	stop     chan struct{}
	done     chan struct{}

	// pressure is set while the memory alarm is raised; queues with paged messages read it
	// (pageWindow), never the publish path.
	pressure atomic.Bool
}

func newMemAlarm(s *Server) *memAlarm {
	return &memAlarm{used: s.opts.MemoryUsed, limit: uint64(s.opts.MemoryLimit), interval: s.opts.MemoryCheckInterval,
		srv: s, stop: make(chan struct{}), done: make(chan struct{})}
}

// run samples the memory every interval until shutdown.
func (m *memAlarm) run() {
	defer close(m.done)
	if m.used == nil {
		return
	}
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.check()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

func (m *memAlarm) check() {
	used, err := m.used()
	if err == nil && used > m.limit {
		debug.FreeOSMemory()
		used, err = m.used()
	}
	if err != nil {
		m.srv.log.Warn("measuring the broker's memory", "err", err)
		return
	}
	over := used > m.limit
	m.pressure.Store(over)
	if m.srv.alarms.set(alarmMemory, over) {
		if over {
			m.srv.log.Warn("memory above the high watermark: publishers are blocked and queues page messages out",
				"used_bytes", used, "limit_bytes", m.limit)
		} else {
			m.srv.log.Info("memory back below the high watermark", "used_bytes", used, "limit_bytes", m.limit)
		}
	}
	if over {
		if n, b := m.srv.pageOutAll(m.stop); n > 0 {
			m.srv.log.Info("memory alarm: messages paged out to the store", "messages", n, "bytes", b)
		}
	}
}

func (m *memAlarm) shutdown() {
	close(m.stop)
	<-m.done
}

// memoryAlarm reports whether the memory alarm is raised.
func (s *Server) memoryAlarm() bool { return s.mem.pressure.Load() }

// pageWindow is how many messages a queue keeps read back from the store: its window, or a small
// one while the memory alarm is raised.
func (s *Server) pageWindow() int {
	if s.mem.pressure.Load() {
		return min(memoryPressureWindow, s.opts.QueueWindow)
	}
	return s.opts.QueueWindow
}

// pageOutAll pages out the messages every queue holds in memory (queue.pageOut), one queue at a
// time, waiting for the store whenever the writes get ahead of it. It returns the messages and
// body bytes paged out.
func (s *Server) pageOutAll(stop <-chan struct{}) (n int, b int64) {
	for _, v := range s.vhostList() {
		qs, _ := v.lists()
		for _, q := range qs {
			// A chunk at a time, each written before the next is taken: the records are copies
			// of the messages, and paging must not need much more memory than it frees.
			for {
				qn, qb, g := q.pageOut()
				n, b = n+qn, b+qb
				if qn == 0 {
					break
				}
				if g != nil {
					select {
					case <-g.done:
					case <-stop:
						return n, b
					}
				}
			}
		}
	}
	return n, b
}

// ResidentMemory is the process's resident set size in bytes (RabbitMQ's "rss" memory strategy),
// read from /proc/self/statm; where there is none, the memory the Go runtime has from the OS
// and has not returned.
func ResidentMemory() (uint64, error) {
	if data, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := strings.Fields(string(data))
		if len(f) < 2 {
			return 0, fmt.Errorf("/proc/self/statm: unexpected %q", data)
		}
		pages, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/statm: %w", err)
		}
		return pages * uint64(os.Getpagesize()), nil
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0, errors.New("no resident memory figure on this platform")
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64(), nil
}

// TotalMemory is the memory the broker may use, in bytes: the machine's (MemTotal of
// /proc/meminfo), or the memory limit of the process's cgroup (v2 memory.max, v1
// memory.limit_in_bytes) if that is lower; -1 if unknown. RabbitMQ 3.10's vm_memory_monitor reads
// only the machine's total (or its total_memory_available_override_value); Warren honours the
// limit of the container it runs in, where the machine's total would let the OOM killer act first.
func TotalMemory() int64 {
	total := procMeminfoTotal()
	if lim := cgroupMemoryLimit("/"); lim > 0 && (total <= 0 || lim < total) {
		total = lim
	}
	return total
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup, under the file system root
// ("/" but in tests); -1 if there is none.
func cgroupMemoryLimit(root string) int64 {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return -1
	}
	limit := int64(-1)
	lower := func(path string) {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			return
		}
		v := string(bytes.TrimSpace(b))
		n, err := strconv.ParseInt(v, 10, 64)
		// "max" (v2) or a page-rounded maximum (v1's 9223372036854771712): no limit.
		if err != nil || n <= 0 || n >= 1<<62 {
			return
		}
		if limit < 0 || n < limit {
			limit = n
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		// hierarchy-ID:controllers:path
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			lower("/sys/fs/cgroup" + f[2] + "/memory.max")
			lower("/sys/fs/cgroup/memory.max") // a cgroup namespace: the container's own root
		case strings.Contains(","+f[1]+",", ",memory,"):
			lower("/sys/fs/cgroup/memory" + f[2] + "/memory.limit_in_bytes")
			lower("/sys/fs/cgroup/memory/memory.limit_in_bytes")
		}
	}
	return limit
}
