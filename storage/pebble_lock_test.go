package storage

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestPebbleLockInProcess(t *testing.T) {
	t.Run("disk", func(t *testing.T) {
		dir := t.TempDir()
		s := openPebble(t, dir, PebbleOptions{})
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		rel, err := filepath.Rel(wd, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, dir + "/", link, rel} {
			_, err := OpenPebble(d, PebbleOptions{})
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "is locked by another broker (LOCK)") {
				t.Fatalf("second open of %s: %v", d, err)
			}
			t.Logf("second open of %s: %v", d, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		openPebble(t, link, PebbleOptions{}) // free again
	})
	t.Run("memfs", func(t *testing.T) {
		fs := vfs.NewMem()
		s := openPebble(t, "/data", PebbleOptions{FS: fs})
		_, err := OpenPebble("/data", PebbleOptions{FS: fs})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second open: %v", err)
		}
		t.Logf("second open: %v", err)
		s.Close()
		openPebble(t, "/data", PebbleOptions{FS: fs})
	})
}

func TestPebbleLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	openPebble(t, dir, PebbleOptions{})
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebbleLockChild$", "-test.v")
	cmd.Env = append(os.Environ(), lockChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("child: %s", out)
	if err != nil {
		t.Fatalf("child process: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestPebbleLockChild") ||
		!strings.Contains(string(out), "is locked by another broker (LOCK)") {
		t.Fatalf("child's error does not say the directory is locked: %s", out)
	}
}

// lockChildEnv names the directory that TestPebbleLockChild, run by TestPebbleLockOtherProcess in
// a child process, tries to open.
const lockChildEnv = "WARREN_STORAGE_LOCK_CHILD_DIR"

func TestPebbleLockChild(t *testing.T) {
	dir := os.Getenv(lockChildEnv)
	if dir == "" {
		t.Skip("runs in the child process of TestPebbleLockOtherProcess")
	}
	s, err := OpenPebble(dir, PebbleOptions{})
	if err == nil {
		s.Close()
		t.Fatal("child: opened a locked directory")
	}
	t.Logf("child: %v", err)
	if !errors.Is(err, ErrLocked) {
		t.Fatal("child: the error does not wrap ErrLocked")
	}
}
