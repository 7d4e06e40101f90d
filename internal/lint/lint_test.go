package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/go/packages"
)

// The house rules, checked over the whole module. Each allow-list entry is "path:Func" (the file,
// relative to the module root, and the top-level function or method the code is in) with the
// reason it is allowed. An entry that no longer matches anything fails the test: delete it.

// sleepAllowed are the tests that may call time.Sleep: each sleeps for a span of time that is
// itself what the test is about, never to wait for something to happen.
var sleepAllowed = map[string]string{
	"integration/wire_limits_test.go:TestWireOversizedBodyNotBuffered":       "paces the sender so the broker's heap is sampled between chunks",
	"integration/wire_limits_test.go:TestWireHandshakeTimeout":               "stays idle past the handshake timeout: an opened connection is not dropped",
	"integration/amqp091_ttl_test.go:TestAMQPTTLAfterRestart":                "lets the messages' TTL run out while the broker is stopped",
	"integration/crash_test.go:crashKill9":                                   "kills the broker at a random moment of a load",
	"integration/crash_vfs_test.go:TestCrashPowerLossKeepsConfirmedMessages": "cuts the power at a random moment of a load",
	"integration/persist_fault_test.go:testDiskFault":                        "publishes for a while before and after the disk fault is switched on",
	"integration/churn_test.go:TestIdleConnections":                          "holds the connections open for the measured span",
	"storage/pebble_fault_test.go:TestPebbleManifestChild":                   "the child process gives Pebble's flush goroutine a second to end it",
	"storage/pebble_test.go:TestPebbleCloseWaitsForScan":                     "keeps a scan running while Close waits for it",
	"storage/pebble_test.go:slowSyncFile.SyncData":                           "a slow disk: every fsync takes 2 ms",
	"storage/pebble_test.go:slowSyncFile.Sync":                               "a slow disk: every fsync takes 2 ms",
	"integration/bench_meta_test.go:slowSyncStore":                           "a slow disk: every fsync of the write-ahead log takes slowSyncDelay",
	"integration/crash_ack_test.go:ackCrashRun":                              "waits out the sync interval, the time bound under test, before the kill -9",
	"server/commit_test.go:TestCommitterSyncsUnsyncedWritesWithinInterval":   "advances synctest's fake clock to the edges of the sync interval",
	"server/commit_test.go:TestCommitterTimedSyncJoinsPendingGroup":          "advances synctest's fake clock to the sync interval",
}

// unlockAllowed are the places outside server/queue*.go allowed to release a queue's lock with a
// bare q.mu.Unlock(). None: queue.unlock (server/queue.go) is the only release (issue 14), and
// server's TestQueueUnlockOnly holds the queue files to it too.
var unlockAllowed = map[string]string{}

// staticcheckAllowed are staticcheck findings tolerated for now, as "path:CHECK" with the reason.
var staticcheckAllowed = map[string]string{}

func TestGofmt(t *testing.T) {
	root := moduleRoot(t)
	var bad []string
	for _, path := range goFiles(t, root) {
		src, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := gofmted(src); err != nil {
			t.Errorf("%s: %v", path, err)
		} else if !ok {
			bad = append(bad, path)
		}
	}
	if len(bad) > 0 {
		t.Errorf("not gofmt-ed (run gofmt -w):\n\t%s", strings.Join(bad, "\n\t"))
	}
}

// gofmted reports whether src is as gofmt prints it.
func gofmted(src []byte) (bool, error) {
	out, err := format.Source(src)
	if err != nil {
		return false, err
	}
	return bytes.Equal(out, src), nil
}

func TestNoSleepInTests(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	var found []Finding
	for _, path := range goFiles(t, root) {
		if !strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(root, path), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range SleepCalls(fset, f) {
			v.Pos.Filename = path
			found = append(found, v)
		}
	}
	checkAllowed(t, found, sleepAllowed, "time.Sleep in a test: wait for the condition (internal/wait.For) instead, or add the site to sleepAllowed with the reason the sleep itself is what is tested")
}

func TestQueueUnlockOnlyInQueueFiles(t *testing.T) {
	root := moduleRoot(t)
	cfg := &packages.Config{
		Mode:  packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Dir:   root,
		Tests: true,
	}
	pkgs, err := packages.Load(cfg, "./server")
	if err != nil {
		t.Fatal(err)
	}
	if packages.PrintErrors(pkgs) > 0 {
		t.Fatal("the server package does not type-check")
	}
	const pkgPath = "github.com/warrenmq/warren/server"
	seen := map[string]bool{}
	var found []Finding
	for _, p := range pkgs {
		if p.PkgPath != pkgPath {
			continue // the test binary's main package
		}
		for _, f := range p.Syntax {
			for _, v := range QueueUnlocks(p.Fset, f, p.TypesInfo, pkgPath, "classicQueue") {
				rel, err := filepath.Rel(root, v.Pos.Filename)
				if err != nil {
					t.Fatal(err)
				}
				v.Pos.Filename = filepath.ToSlash(rel)
				if inQueueFiles(v.Pos.Filename) || seen[v.Pos.String()] {
					continue // the package and its test variant share files
				}
				seen[v.Pos.String()] = true
				found = append(found, v)
			}
		}
	}
	checkAllowed(t, found, unlockAllowed, "a bare unlock of a queue's lock outside server/queue*.go: call the queue's unlock method")
}

// inQueueFiles reports whether path (slash-separated, from the module root) is one of the queue's
// files, server/queue*.go.
func inQueueFiles(path string) bool {
	dir, file := filepath.Split(filepath.FromSlash(path))
	return filepath.Clean(dir) == "server" && strings.HasPrefix(file, "queue") && strings.HasSuffix(file, ".go")
}

// TestStaticcheck runs staticcheck (the tool dependency in go.mod) over the module with its
// default checks and U1000 (unused code). It takes 30-60 s on a 2-core machine with a cold
// analysis cache and is skipped with -short.
func TestStaticcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("staticcheck takes tens of seconds; skipped with -short")
	}
	root := moduleRoot(t)
	start := time.Now()
	found, err := staticcheck(t, root, "./...")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("staticcheck ./... took %v", time.Since(start).Round(time.Millisecond))
	checkStaticcheck(t, root, found)
}

// checkStaticcheck fails t for every finding not in staticcheckAllowed, and for every entry there
// that matched nothing.
func checkStaticcheck(t *testing.T, root string, found []scFinding) {
	t.Helper()
	used := map[string]bool{}
	for _, f := range found {
		rel, err := filepath.Rel(root, f.Location.File)
		if err != nil {
			rel = f.Location.File
		}
		key := filepath.ToSlash(rel) + ":" + f.Code
		if _, ok := staticcheckAllowed[key]; ok {
			used[key] = true
			continue
		}
		t.Errorf("%s:%d:%d: %s (%s)", filepath.ToSlash(rel), f.Location.Line, f.Location.Column, f.Message, f.Code)
	}
	for key := range staticcheckAllowed {
		if !used[key] {
			t.Errorf("staticcheckAllowed[%q] matches nothing any more: delete it", key)
		}
	}
}

// scFinding is one line of staticcheck's -f json output.
type scFinding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Location struct {
		File   string `json:"file"`
		Line   int    `json:"line"`
		Column int    `json:"column"`
	} `json:"location"`
	Message string `json:"message"`
}

// staticcheck runs `go tool staticcheck` in dir on patterns and returns its findings.
func staticcheck(t *testing.T, dir string, patterns ...string) ([]scFinding, error) {
	t.Helper()
	args := append([]string{"tool", "staticcheck", "-checks", "inherit,U1000", "-f", "json"}, patterns...)
	cmd := exec.Command(goCommand(), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1 && stdout.Len() > 0) {
		// Exit status 1 with findings on stdout is staticcheck reporting; anything else is a failure to run.
		return nil, fmt.Errorf("go %s: %v\n%s%s", strings.Join(args, " "), err, stderr.Bytes(), stdout.Bytes())
	}
	var out []scFinding
	dec := json.NewDecoder(&stdout)
	for {
		var f scFinding
		if err := dec.Decode(&f); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("staticcheck's output: %w", err)
		}
		out = append(out, f)
	}
	return out, nil
}

// goCommand is the go command of the toolchain running the test, or "go" on PATH.
func goCommand() string {
	if p, err := exec.LookPath(filepath.Join(os.Getenv("GOROOT"), "bin", "go")); err == nil && os.Getenv("GOROOT") != "" {
		return p
	}
	return "go"
}

// --- the checkers catch what they are meant to ---

func TestSleepCallsFindsViolations(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "testdata/sleep/sleep_test.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	got := describe(SleepCalls(fset, f))
	want := []string{"9:TestSleeps", "10:TestSleeps", "12:TestSleeps"}
	if !slices.Equal(got, want) {
		t.Errorf("SleepCalls found %v, want %v (line:function)", got, want)
	}
}

func TestQueueUnlocksFindsViolations(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "testdata/queue/queue.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}, Defs: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	if _, err := conf.Check("example.com/queue", fset, []*ast.File{f}, info); err != nil {
		t.Fatal(err)
	}
	got := describe(QueueUnlocks(fset, f, info, "example.com/queue", "queue"))
	want := []string{"14:queue.unlock", "16:byValue", "19:deferred"}
	if !slices.Equal(got, want) {
		t.Errorf("QueueUnlocks found %v, want %v (line:function)", got, want)
	}
	if got := QueueUnlocks(fset, f, info, "example.com/other", "queue"); len(got) > 0 {
		t.Errorf("QueueUnlocks matched a type of another package: %v", got)
	}
}

func TestInQueueFiles(t *testing.T) {
	for path, want := range map[string]bool{
		"server/queue.go": true, "server/queue_consumers.go": true, "server/queue_test.go": true,
		"server/deadletter.go": false, "server/x/queue.go": false, "management/queue.go": false,
	} {
		if got := inQueueFiles(path); got != want {
			t.Errorf("inQueueFiles(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestGofmtedFindsUnformatted(t *testing.T) {
	for src, want := range map[string]bool{
		"package p\n\nfunc f() {}\n":     true,
		"package p\nfunc f()  {  }\n":    false,
		"package p\n\nvar x  = 1\n":      false,
		"package p\n\nvar x = []int{}\n": true,
	} {
		if got, err := gofmted([]byte(src)); err != nil || got != want {
			t.Errorf("gofmted(%q) = %v, %v; want %v", src, got, err, want)
		}
	}
}

func TestCheckAllowed(t *testing.T) {
	found := []Finding{{Pos: token.Position{Filename: "a.go", Line: 1}, Func: "F"}, {Pos: token.Position{Filename: "b.go", Line: 2}, Func: "G"}}
	rec := &recorder{}
	checkAllowedIn(rec, found, map[string]string{"a.go:F": "reason", "c.go:H": "stale"}, "banned")
	want := []string{"b.go:2: banned (G)", `allow-list entry "c.go:H" matches nothing any more: delete it`}
	if !slices.Equal(rec.errs, want) {
		t.Errorf("checkAllowed reported %q, want %q", rec.errs, want)
	}
}

// staticcheck reports unused code (U1000) in a package made for it.
func TestStaticcheckFindsUnused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs staticcheck; skipped with -short")
	}
	found, err := staticcheck(t, ".", "./testdata/unused")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Code != "U1000" || !strings.Contains(found[0].Message, "neverCalled") {
		t.Errorf("staticcheck on testdata/unused found %+v, want one U1000 for neverCalled", found)
	}
}

// --- helpers ---

// describe is "line:function" for each finding.
func describe(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%d:%s", f.Pos.Line, f.Func))
	}
	return out
}

type errorer interface {
	Errorf(format string, args ...any)
}

type recorder struct{ errs []string }

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// checkAllowed fails t for each finding whose "path:Func" is not in allowed, and for each entry
// of allowed that matched nothing.
func checkAllowed(t *testing.T, found []Finding, allowed map[string]string, rule string) {
	t.Helper()
	checkAllowedIn(t, found, allowed, rule)
}

func checkAllowedIn(t errorer, found []Finding, allowed map[string]string, rule string) {
	used := map[string]bool{}
	for _, f := range found {
		key := f.Pos.Filename + ":" + f.Func
		if _, ok := allowed[key]; ok {
			used[key] = true
			continue
		}
		t.Errorf("%s: %s (%s)", f.Pos, rule, f.Func)
	}
	keys := make([]string, 0, len(allowed))
	for k := range allowed {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !used[k] {
			t.Errorf("allow-list entry %q matches nothing any more: delete it", k)
		}
	}
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// goFiles lists the module's .go files, slash-separated and relative to root, leaving out
// testdata, hidden directories and node_modules (as gofmt -l ./... over the packages would).
func goFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
