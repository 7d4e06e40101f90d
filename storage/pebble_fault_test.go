package storage

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// walFault fails the chosen operations on WAL files once turned On.
func walFault(kinds ...errorfs.OpKind) *errorfs.Toggle {
	return &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		for _, k := range kinds {
			if op.Kind == k {
				return errorfs.ErrInjected
			}
		}
		return nil
	})}
}

func TestPebbleWALFailureFailsTheStore(t *testing.T) {
	for _, c := range []struct {
		name  string
		kinds []errorfs.OpKind
	}{
		{"sync", []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}},
		{"write", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}},
	} {
		t.Run(c.name, func(t *testing.T) {
			on := walFault(c.kinds...)
			fs := errorfs.Wrap(vfs.NewMem(), on)
			s := openPebble(t, "/data", PebbleOptions{FS: fs})
			mustApply(t, s, true, "before", "1")

			on.On()
			var b Batch
			b.Set([]byte("lost"), []byte("1"))
			err := s.Apply(&b, true)
			t.Logf("apply: %v", err)
			if err == nil || !errors.Is(err, ErrFailed) {
				t.Fatalf("synced apply with a failing WAL returned %v", err)
			}
			on.Off() // even once the disk is back, the store stays failed
			for _, sync := range []bool{true, false} {
				if err := s.Apply(&b, sync); !errors.Is(err, ErrFailed) {
					t.Fatalf("apply(sync=%v) after the failure: %v", sync, err)
				}
			}
			if err := s.Scan(nil, func(k, v []byte) error { return nil }); !errors.Is(err, ErrFailed) {
				t.Fatalf("scan after the failure: %v", err)
			}
			if s.Err() == nil {
				t.Fatal("Err() is nil")
			}
			t.Logf("close: %v", s.Close())

			// Restarted, the store has what was acknowledged.
			r := openPebble(t, "/data", PebbleOptions{FS: fs})
			if got := scanAll(t, r, []byte("before")); !equal(got, "before=1") {
				t.Fatalf("after restart: %q", got)
			}
		})
	}
}

// Many synced writers when the WAL fails: each gets an error or nil from before the failure,
// none hangs, and the process stays up.
func TestPebbleWALFailureUnderConcurrentWriters(t *testing.T) {
	on := walFault(errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo)
	fs := errorfs.Wrap(vfs.NewMem(), on)
	s := openPebble(t, "/data", PebbleOptions{FS: fs})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				var b Batch
				b.Set(MessageKey(uint64(w), uint64(i)), []byte("x"))
				if err := s.Apply(&b, true); err != nil {
					errs <- err
					return
				}
				if i == 20 && w == 0 {
					on.On()
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writers hang after a WAL failure")
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrFailed) {
			t.Fatalf("writer error: %v", err)
		}
	}
	t.Logf("close: %v", s.Close())
}

// manifestChildEnv makes TestPebbleManifestChild run: it is the child process of
// TestPebbleManifestFailureInBackgroundEndsTheProcess.
const manifestChildEnv = "WARREN_STORAGE_MANIFEST_CHILD"

// TestPebbleManifestChild fails the MANIFEST's writes during a background flush.
func TestPebbleManifestChild(t *testing.T) {
	if os.Getenv(manifestChildEnv) == "" {
		t.Skip("runs in the child process of TestPebbleManifestFailureInBackgroundEndsTheProcess")
	}
	on := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.Contains(op.Path, "MANIFEST") && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileWrite) {
			return errorfs.ErrInjected
		}
		return nil
	})}
	s, err := OpenPebble("/data", PebbleOptions{FS: errorfs.Wrap(vfs.NewMem(), on), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, true, "k", "v")
	on.On()
	// The flush runs on a goroutine of Pebble's, which writes the MANIFEST and fails.
	t.Logf("flush: %v", s.db.Flush())
	time.Sleep(time.Second)
	t.Logf("child: apply after: %v", s.Apply(&Batch{}, true))
	t.Logf("child: close: %v", s.Close())
}

// A MANIFEST that cannot be written during a background flush is fatal to Pebble, on a goroutine
// of its own: nothing can turn that into an error, and the process ends with the panic's message.
func TestPebbleManifestFailureInBackgroundEndsTheProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebbleManifestChild$", "-test.v")
	cmd.Env = append(os.Environ(), manifestChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "panic: storage: pebble fatal error: MANIFEST") ||
		strings.Contains(string(out), "child: apply after") {
		t.Fatalf("child should have ended in a panic naming the MANIFEST failure: %v\n%s", err, out)
	}
}
