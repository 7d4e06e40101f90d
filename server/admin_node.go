package server

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warrenmq/warren/storage"
)

// NodeInfo is the node's resource use, for /api/nodes and Prometheus. Figures the platform does not
// provide are -1.
type NodeInfo struct {
	Name             string
	Uptime           time.Duration
	OSPid            int
	Processors       int
	MemUsed          int64 // resident set size
	MemLimit         int64 // the memory alarm's high watermark (without the alarm: TotalMemory)
	MemAlarm         bool  // the memory alarm is raised
	FDUsed, FDTotal  int64
	SocketsUsed      int64 // open AMQP connections
	Goroutines       int
	GCNum            int64
	GCBytesReclaimed int64 // bytes freed by the garbage collector since start
	ContextSwitches  int64
	IOReadBytes      int64
	IOWriteBytes     int64
	DiskFree         int64 // of the store's disk (Options.DiskFree), else of the working directory's
	DiskFreeLimit    int64 // below it the disk alarm is raised (0: no disk alarm)
	DiskAlarm        bool
	HeapAlloc        int64
	// The store's directory ("" for an in-memory store) and its disk operations since start:
	// reads (scans: recovery, paging messages back in), writes (committed batches) and WAL
	// fsyncs; 0 for a store without counters (the in-memory one, which does no disk I/O).
	StoreDir                            string
	StoreReads, StoreWrites, StoreSyncs int64
	// The Go runtime's memory (runtime.MemStats) for the ?memory=true breakdown: heap and
	// goroutine stacks in use, heap held but unused (idle, not returned to the OS), the runtime's
	// own structures (GC metadata, spans, caches, profiling buckets, other), and the program's
	// code (the text segment of /proc/self/statm; -1 where unknown).
	HeapInuse, StackInuse, HeapUnused, RuntimeSys, CodeBytes int64
}

// storeStats is what a store that counts its operations offers (storage.Pebble).
type storeStats interface {
	Stats() storage.PebbleStats
	Dir() string
}

// Node returns the node's resource figures.
func (s *Server) Node() NodeInfo {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := NodeInfo{
		Name: s.NodeName(), Uptime: s.Uptime(), OSPid: os.Getpid(), Processors: runtime.NumCPU(),
		Goroutines: runtime.NumGoroutine(), GCNum: int64(ms.NumGC), GCBytesReclaimed: int64(ms.TotalAlloc - ms.HeapAlloc),
		HeapAlloc: int64(ms.HeapAlloc), MemUsed: int64(ms.Sys), MemLimit: -1,
		HeapInuse: int64(ms.HeapInuse), StackInuse: int64(ms.StackInuse), HeapUnused: int64(ms.HeapIdle - ms.HeapReleased),
		RuntimeSys: int64(ms.GCSys + ms.OtherSys + ms.MSpanSys + ms.MCacheSys + ms.BuckHashSys), CodeBytes: procCodeBytes(),
		FDUsed: -1, FDTotal: -1, ContextSwitches: -1, IOReadBytes: -1, IOWriteBytes: -1, DiskFree: -1,
		SocketsUsed: int64(len(s.openConns())),
	}
	if st, ok := s.store.(storeStats); ok {
		ps := st.Stats()
		n.StoreDir = st.Dir()
		n.StoreReads, n.StoreWrites, n.StoreSyncs = int64(ps.Scans), int64(ps.Commits), int64(ps.WALSyncs)
	}
	if rss := procStatusField("VmRSS:"); rss >= 0 {
		n.MemUsed = rss * 1024
	}
	if s.opts.MemoryUsed != nil {
		n.MemLimit = s.opts.MemoryLimit
	} else if total := TotalMemory(); total > 0 {
		n.MemLimit = total
	}
	n.MemAlarm = s.memoryAlarm()
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		n.FDUsed = int64(len(ents))
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		n.FDTotal = int64(rl.Cur)
	}
	if v, nv := procStatusField("voluntary_ctxt_switches:"), procStatusField("nonvoluntary_ctxt_switches:"); v >= 0 && nv >= 0 {
		n.ContextSwitches = v + nv
	}
	if r, w, ok := procIO(); ok {
		n.IOReadBytes, n.IOWriteBytes = r, w
	}
	if s.opts.DiskFree != nil {
		if free, err := s.opts.DiskFree(); err == nil {
			n.DiskFree = int64(free)
		}
		n.DiskFreeLimit = s.opts.DiskFreeLimit
	} else if wd, err := os.Getwd(); err == nil {
		var st syscall.Statfs_t
		if err := syscall.Statfs(wd, &st); err == nil {
			n.DiskFree = int64(st.Bavail) * int64(st.Bsize)
		}
	}
	n.DiskAlarm = slices.Contains(s.Alarms(), alarmDisk)
	return n
}

// procCodeBytes is the size of the program's code (the text field of /proc/self/statm, in
// pages), or -1.
func procCodeBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return -1
	}
	pages, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

// procStatusField returns a numeric field of /proc/self/status (kB for sizes), or -1.
func procStatusField(name string) int64 {
	return procField("/proc/self/status", name)
}

func procMeminfoTotal() int64 {
	if kb := procField("/proc/meminfo", "MemTotal:"); kb > 0 {
		return kb * 1024
	}
	return -1
}

func procIO() (read, write int64, ok bool) {
	r, w := procField("/proc/self/io", "read_bytes:"), procField("/proc/self/io", "write_bytes:")
	return r, w, r >= 0 && w >= 0
}

func procField(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		f := strings.Fields(line[len(name):])
		if len(f) == 0 {
			return -1
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return -1
		}
		return v
	}
	return -1
}
