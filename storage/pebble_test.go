package storage

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every store is closed by its test: Pebble must leave no goroutine behind.
	goleak.VerifyTestMain(m)
}

// testLogger logs to t.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// openPebble opens a store that the test closes when it ends.
func openPebble(t testing.TB, dir string, o PebbleOptions) *Pebble {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s, err := OpenPebble(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustApply(t testing.TB, s Store, sync bool, kv ...string) {
	t.Helper()
	var b Batch
	for i := 0; i+1 < len(kv); i += 2 {
		b.Set([]byte(kv[i]), []byte(kv[i+1]))
	}
	if err := s.Apply(&b, sync); err != nil {
		t.Fatal(err)
	}
}

// fsCases are the file systems the Pebble-only tests run on.
var fsCases = []struct {
	name string
	fs   func() vfs.FS
	dir  func(t *testing.T) string
}{
	{"memfs", func() vfs.FS { return vfs.NewMem() }, func(t *testing.T) string { return "/data" }},
	{"disk", func() vfs.FS { return nil }, func(t *testing.T) string { return t.TempDir() }},
}

func TestPebbleReopenKeepsContents(t *testing.T) {
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			fs, dir := c.fs(), c.dir(t)
			s := openPebble(t, dir, PebbleOptions{FS: fs})
			mustApply(t, s, true, "a", "1", "b", "2")
			mustApply(t, s, false, "c", "3")
			var d Batch
			d.Delete([]byte("b"))
			if err := s.Apply(&d, true); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			r := openPebble(t, dir, PebbleOptions{FS: fs})
			if got := scanAll(t, r, nil); !equal(got, "a=1", "c=3") {
				t.Fatalf("reopened: %q", got)
			}
		})
	}
}

// A synced Apply survives a crash; an unsynced one may or may not, but never in part.
func TestPebbleCrashKeepsSyncedBatches(t *testing.T) {
	for seed := int64(1); seed <= 8; seed++ {
		fs := vfs.NewCrashableMem()
		s := openPebble(t, "/data", PebbleOptions{FS: fs})
		var synced, unsynced []string
		for i := range 20 {
			synced = append(synced, fmt.Sprintf("s%02d", i), "v")
			unsynced = append(unsynced, fmt.Sprintf("u%02d", i), strings.Repeat("x", 100))
		}
		mustApply(t, s, false, "early", "1") // made durable by the synced Apply after it
		mustApply(t, s, true, synced...)
		mustApply(t, s, false, unsynced...)
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(uint64(seed), 0))})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		r := openPebble(t, "/data", PebbleOptions{FS: crashed})
		if got := scanAll(t, r, []byte("s")); len(got) != 20 {
			t.Fatalf("seed %d: %d synced keys after crash, want 20", seed, len(got))
		}
		if got := scanAll(t, r, []byte("early")); len(got) != 1 {
			t.Fatalf("seed %d: the unsynced write before a synced one was lost", seed)
		}
		if got := scanAll(t, r, []byte("u")); len(got) != 0 && len(got) != 20 {
			t.Fatalf("seed %d: %d of 20 keys of one batch after crash: batches must be atomic", seed, len(got))
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPebbleCloseTwiceAndAfterClose(t *testing.T) {
	s := openPebble(t, "/data", PebbleOptions{FS: vfs.NewMem()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := s.ScanRange(nil, nil, func(k, v []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("scan range after close: %v", err)
	}
}

// Close waits for scans in flight, and a scan callback may write.
func TestPebbleCloseWaitsForScan(t *testing.T) {
	s := openPebble(t, "/data", PebbleOptions{FS: vfs.NewMem()})
	mustApply(t, s, true, "a", "1", "b", "2")
	inScan, closed := make(chan struct{}), make(chan error)
	var seen []string
	go func() {
		err := s.Scan(nil, func(k, v []byte) error {
			if len(seen) == 0 {
				var b Batch
				b.Set([]byte("c"), []byte("3")) // not seen by this scan
				if err := s.Apply(&b, false); err != nil {
					return err
				}
				close(inScan)
				time.Sleep(50 * time.Millisecond) // Close waits meanwhile
			}
			seen = append(seen, string(k))
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-inScan
	go func() { closed <- s.Close() }()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !equal(seen, "a", "b") {
		t.Fatalf("scan saw %q", seen)
	}
}

func TestPebbleStatsCountCommitsAndSyncs(t *testing.T) {
	s := openPebble(t, t.TempDir(), PebbleOptions{})
	before := s.Stats().WALSyncs
	mustApply(t, s, true, "a", "1")
	mustApply(t, s, false, "b", "2")
	if err := s.Apply(&Batch{}, true); err != nil { // empty synced batch: a sync barrier
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Commits != 3 || st.SyncedCommits != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st.WALSyncs-before != 2 {
		t.Fatalf("%d WAL syncs for two synced applies, want 2 (stats %+v)", st.WALSyncs-before, st)
	}
}

// An empty batch applied with sync is the barrier the broker's committer uses to bound unsynced
// writes (acks' deletes): after a crash, an unsynced write is lost until the barrier, and kept
// after it. A crash clone of the in-memory file system keeps only what was fsynced.
func TestPebbleEmptySyncedBatchMakesEarlierWritesDurable(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openPebble(t, "/data", PebbleOptions{FS: fs})
	mustApply(t, s, true, "a", "1")
	var b Batch
	b.Delete([]byte("a"))
	b.Set([]byte("b"), []byte("2"))
	if err := s.Apply(&b, false); err != nil {
		t.Fatal(err)
	}
	afterCrash := func() []string {
		t.Helper()
		c := openPebble(t, "/data", PebbleOptions{FS: fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})})
		defer c.Close()
		return scanAll(t, c, nil)
	}
	if got := afterCrash(); !equal(got, "a=1") {
		t.Fatalf("crash before the barrier: %q, want the synced write only", got)
	}
	if err := s.Apply(&Batch{}, true); err != nil {
		t.Fatal(err)
	}
	if got := afterCrash(); !equal(got, "b=2") {
		t.Fatalf("crash after the barrier: %q, want the unsynced batch kept", got)
	}
}

// slowSyncFS makes every WAL fsync take a while, as on a real disk, so that commits queue up.
type slowSyncFS struct{ vfs.FS }

func (fs slowSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return slowSyncFile{f}, nil
}

func (fs slowSyncFS) Unwrap() vfs.FS { return fs.FS }

type slowSyncFile struct{ vfs.File }

func (f slowSyncFile) SyncData() error { time.Sleep(2 * time.Millisecond); return f.File.SyncData() }
func (f slowSyncFile) Sync() error     { time.Sleep(2 * time.Millisecond); return f.File.Sync() }

// Pebble's commit pipeline makes concurrent synced commits share one WAL fsync.
func TestPebbleConcurrentSyncedAppliesShareFsyncs(t *testing.T) {
	s := openPebble(t, "/data", PebbleOptions{FS: slowSyncFS{vfs.NewMem()}})
	before := s.Stats()
	const writers, each = 16, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var b Batch
				b.Set(MessageKey(uint64(w), uint64(i)), []byte("payload"))
				if err := s.Apply(&b, true); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	commits, syncs := st.SyncedCommits-before.SyncedCommits, st.WALSyncs-before.WALSyncs
	t.Logf("%d synced commits, %d WAL fsyncs: %.1f commits per fsync", commits, syncs, float64(commits)/float64(syncs))
	if commits != writers*each || syncs == 0 || syncs > commits/2 {
		t.Fatalf("%d synced commits took %d WAL fsyncs: expected them to be shared", commits, syncs)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{nil, nil},
		{[]byte("a"), []byte("b")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := prefixEnd(c.in); !bytes.Equal(got, c.want) {
			t.Fatalf("prefixEnd(%x) = %x, want %x", c.in, got, c.want)
		}
	}
}

// A panic in a scan callback is the caller's: it reaches the caller, and the store stays usable.
func TestPebbleScanCallbackPanicPropagates(t *testing.T) {
	s := openPebble(t, "/data", PebbleOptions{FS: vfs.NewMem()})
	mustApply(t, s, true, "a", "1")
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the callback's panic", r)
			}
		}()
		s.Scan(nil, func(k, v []byte) error { panic("boom") })
	}()
	if s.Err() != nil {
		t.Fatalf("store failed by a callback's panic: %v", s.Err())
	}
	if got := scanAll(t, s, nil); !equal(got, "a=1") {
		t.Fatalf("scan after: %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
