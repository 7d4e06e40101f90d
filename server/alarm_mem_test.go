package server

import (
	"os"
	"path/filepath"
	"testing"
)

// The cgroup memory limit is read for cgroup v2 (memory.max) and v1 (memory.limit_in_bytes), at
// the process's cgroup path or at the root of a cgroup namespace; "max" and v1's page-rounded
// maximum are no limit.
func TestCgroupMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2", map[string]string{"proc/self/cgroup": "0::/system.slice/warren.service\n",
			"sys/fs/cgroup/system.slice/warren.service/memory.max": "536870912\n"}, 512 << 20},
		{"v2 namespace", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "268435456\n"}, 256 << 20},
		{"v2 max", map[string]string{"proc/self/cgroup": "0::/a\n", "sys/fs/cgroup/a/memory.max": "max\n"}, -1},
		{"v1", map[string]string{"proc/self/cgroup": "12:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n"}, 1 << 30},
		{"v1 unlimited", map[string]string{"proc/self/cgroup": "4:memory:/\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, -1},
		{"none", map[string]string{}, -1},
	} {
		root := t.TempDir()
		for name, data := range c.files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := cgroupMemoryLimit(root); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// ResidentMemory reads this process's resident set, which is more than nothing and less than the
// machine's memory.
func TestResidentMemory(t *testing.T) {
	rss, err := ResidentMemory()
	if err != nil {
		t.Fatal(err)
	}
	if total := TotalMemory(); rss == 0 || total > 0 && rss > uint64(total) {
		t.Fatalf("resident %d bytes, total %d", rss, total)
	}
}
