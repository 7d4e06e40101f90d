package integration

// TestFuzzTargets runs every fuzz target in the module for a short time, so that the plain
// `go test ./...` CI runs fuzzing too. It finds the targets itself (every func FuzzX in a _test.go
// file), runs the targets of one package one after another (go test -fuzz takes one target per
// invocation) and fails with the fuzzer's output when a target fails; the failing input is then in
// that package's testdata/fuzz/FuzzX/ directory, where it stays as a regression seed.
//
// WARREN_FUZZTIME sets the time per target (default 2s); WARREN_SKIP_FUZZ=1 or -short skips it.
// The first run builds instrumented test binaries (minutes on a cold build cache); later runs reuse
// them from the cache.

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// fuzzTargets maps each package directory (relative to the module root, "./amqp") to its targets.
func fuzzTargets(t *testing.T, root string) map[string][]string {
	t.Helper()
	decl := regexp.MustCompile(`^func (Fuzz\w+)\(\w+ \*testing\.F\)`)
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if m := decl.FindStringSubmatch(sc.Text()); m != nil {
				rel, err := filepath.Rel(root, filepath.Dir(path))
				if err != nil {
					return err
				}
				pkg := "./" + filepath.ToSlash(rel)
				out[pkg] = append(out[pkg], m[1])
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatalf("finding fuzz targets: %v", err)
	}
	return out
}

// goBinary is the go command of the toolchain running the tests, or "go" on PATH.
func goBinary() string {
	//lint:ignore SA1019 the test runs where it was built, so the build's GOROOT holds the go command that built it
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

func TestFuzzTargets(t *testing.T) {
	if testing.Short() || os.Getenv("WARREN_SKIP_FUZZ") == "1" {
		t.Skip("-short or WARREN_SKIP_FUZZ=1")
	}
	if externalURL != "" {
		t.Skip("fuzzes Warren's own code")
	}
	fuzztime := "2s"
	if s := os.Getenv("WARREN_FUZZTIME"); s != "" {
		fuzztime = s
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	targets := fuzzTargets(t, root)
	var pkgs []string
	n := 0
	for p, ts := range targets {
		pkgs = append(pkgs, p)
		n += len(ts)
	}
	sort.Strings(pkgs)
	if n < 8 {
		t.Fatalf("found %d fuzz targets (%v), want at least 8", n, targets)
	}
	t.Logf("%d fuzz targets in %d packages, %s each", n, len(pkgs), fuzztime)
	goBin := goBinary()
	for _, pkg := range pkgs {
		t.Run(strings.TrimPrefix(pkg, "./"), func(t *testing.T) {
			for _, target := range targets[pkg] {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
				cmd := exec.CommandContext(ctx, goBin, "test", "-run", "^$", "-fuzz", "^"+target+"$",
					"-fuzztime", fuzztime, "-parallel", "2", pkg)
				cmd.Dir = root
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil && fuzzDeadlineRace(out) {
					t.Logf("%s %s: ended with Go's fuzztime deadline race (golang/go#75804, fixed in Go 1.27), no failing input: %s",
						pkg, target, lastLine(out))
					continue
				}
				if err != nil {
					t.Errorf("%s %s: %v\n%s", pkg, target, err, out)
					continue
				}
				execs := ""
				if m := regexp.MustCompile(`execs: (\d+)`).FindAllSubmatch(out, -1); len(m) > 0 {
					execs = string(m[len(m)-1][1]) + " execs"
				}
				t.Logf("%s %s: ok in %v, %s", pkg, target, time.Since(start).Round(100*time.Millisecond), execs)
			}
		})
	}
}

// fuzzDeadlineRace reports whether a failed go test -fuzz run failed only through Go 1.26's
// coordinator race at the end of -fuzztime (golang/go#75804): the target reports a bare "context
// deadline exceeded" with no failing input written and no panic. A real finding writes its input
// ("Failing input written to testdata/fuzz/...") and still fails the test.
func fuzzDeadlineRace(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "context deadline exceeded") && !strings.Contains(s, "Failing input written") &&
		!strings.Contains(s, "panic:") && !strings.Contains(s, "fuzz_test.go")
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func TestFuzzDeadlineRace(t *testing.T) {
	race := "fuzz: elapsed: 3s, execs: 111 (0/sec), new interesting: 0 (total: 43)\n--- FAIL: FuzzAPIBodies (3.02s)\n    context deadline exceeded\nFAIL\nexit status 1\n"
	found := "--- FAIL: FuzzConn (0.50s)\n    --- FAIL: FuzzConn (0.00s)\n        fuzz_test.go:80: panic: boom\n\n    Failing input written to testdata/fuzz/FuzzConn/abc\n    To re-run:\n    go test -run=FuzzConn/abc\nFAIL\n"
	if !fuzzDeadlineRace([]byte(race)) {
		t.Error("the deadline race is not recognised")
	}
	if fuzzDeadlineRace([]byte(found)) || fuzzDeadlineRace([]byte(found+"context deadline exceeded\n")) {
		t.Error("a real finding is taken for the deadline race")
	}
}
