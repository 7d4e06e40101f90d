package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// makeStore writes n keys to a store in a new directory, flushed to an sstable or left in the
// WAL, and returns the directory.
func makeStore(t *testing.T, n int, flush bool) string {
	t.Helper()
	dir := t.TempDir()
	s := openPebble(t, dir, PebbleOptions{})
	for i := range n {
		mustApply(t, s, true, fmt.Sprintf("k%05d", i), strings.Repeat("v", 100))
	}
	if flush {
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// files returns the names in dir that match the glob pattern.
func files(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) == 0 {
		t.Fatalf("no %s in %s (%v)", pattern, dir, err)
	}
	return m
}

func garble(t *testing.T, path string, from, to int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if to > len(b) {
		to = len(b)
	}
	for i := from; i < to; i++ {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPebbleOpenRefusesCorruptOrForeignDirectory(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T) string
		mention string // the error names this
	}{
		{"garbage MANIFEST", func(t *testing.T) string {
			dir := makeStore(t, 10, true)
			garble(t, files(t, dir, "MANIFEST-*")[0], 0, 1<<20)
			return dir
		}, "MANIFEST-"},
		{"garbage OPTIONS", func(t *testing.T) string {
			dir := makeStore(t, 10, false)
			for _, f := range files(t, dir, "OPTIONS-*") {
				if err := os.WriteFile(f, []byte("not an options file\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}, "OPTIONS-"},
		{"missing sstable", func(t *testing.T) string {
			dir := makeStore(t, 10, true)
			for _, f := range files(t, dir, "*.sst") {
				os.Remove(f)
			}
			return dir
		}, "(type sstable)"},
		{"missing MANIFEST", func(t *testing.T) string {
			dir := makeStore(t, 10, true)
			os.Remove(files(t, dir, "MANIFEST-*")[0])
			return dir
		}, "MANIFEST-"},
		{"store files without markers", func(t *testing.T) string {
			dir := makeStore(t, 10, true)
			for _, f := range files(t, dir, "marker.*") {
				os.Remove(f)
			}
			return dir
		}, "no Pebble store"},
		{"foreign files", func(t *testing.T) string {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o644)
			return dir
		}, "has files (notes.txt) but no Pebble store"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.setup(t)
			s, err := OpenPebble(dir, PebbleOptions{Logger: testLogger(t)})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error should wrap ErrCorrupt and name %q and the directory: %v", c.mention, err)
			}
			// The refused directory is not left locked.
			if _, err := OpenPebble(dir, PebbleOptions{}); errors.Is(err, ErrLocked) {
				t.Fatalf("directory still locked after a failed open: %v", err)
			}
		})
	}
}

// A corrupt sstable is found when read: the scan fails naming the file, and the process goes on.
func TestPebbleCorruptSSTableFailsScan(t *testing.T) {
	dir := makeStore(t, 1000, true)
	for _, f := range files(t, dir, "*.sst") {
		garble(t, f, 100, 2000)
	}
	s := openPebble(t, dir, PebbleOptions{})
	err := s.Scan(nil, func(k, v []byte) error { return nil })
	t.Logf("scan: %v", err)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ".sst") {
		t.Fatalf("scan of a corrupt sstable: %v", err)
	}
	if s.Stats().Corruptions == 0 {
		t.Fatal("corruption not counted")
	}
	mustApply(t, s, true, "new", "1") // writes still work
}

// A WAL whose tail was torn by a crash is not corruption: Pebble replays it up to the tear.
func TestPebbleTornWALTail(t *testing.T) {
	dir := makeStore(t, 100, false)
	var walSize int64
	for _, f := range files(t, dir, "*.log") {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1000 {
			if err := os.Truncate(f, st.Size()-50); err != nil {
				t.Fatal(err)
			}
			walSize = st.Size()
		}
	}
	if walSize == 0 {
		t.Fatal("no WAL with data")
	}
	s := openPebble(t, dir, PebbleOptions{})
	n := len(scanAll(t, s, nil))
	if n != 99 {
		t.Fatalf("%d keys after tearing the last record, want 99", n)
	}
}

// A WAL damaged before its last 32 KiB block is corruption: Pebble finds a later record that
// promises the log was synced past the damage, and refuses to open.
func TestPebbleWALCorruptInTheMiddle(t *testing.T) {
	dir := makeStore(t, 1000, false) // ~130 KiB of WAL: several 32 KiB blocks
	for _, f := range files(t, dir, "*.log") {
		if st, _ := os.Stat(f); st.Size() > 100<<10 {
			garble(t, f, 5000, 5100)
		}
	}
	s, err := OpenPebble(dir, PebbleOptions{Logger: testLogger(t)})
	if err == nil {
		n := len(scanAll(t, s, nil))
		s.Close()
		t.Fatalf("opened with %d of 1000 keys", n)
	}
	t.Logf("open: %v", err)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ".log") {
		t.Fatalf("open error should wrap ErrCorrupt and name the WAL: %v", err)
	}
}

// Damage inside the WAL's last 32 KiB block cannot be told from a torn tail: Pebble replays up to
// it and drops the rest (the documented limit of its WAL recovery).
func TestPebbleWALCorruptInTheLastBlockIsATornTail(t *testing.T) {
	dir := makeStore(t, 100, false) // ~13 KiB: one block
	for _, f := range files(t, dir, "*.log") {
		if st, _ := os.Stat(f); st.Size() > 8000 {
			garble(t, f, 5000, 5100)
		}
	}
	s := openPebble(t, dir, PebbleOptions{})
	n := len(scanAll(t, s, nil))
	t.Logf("%d of 100 keys after damage in the last block", n)
	if n == 0 || n >= 100 {
		t.Fatalf("%d keys: expected the records before the damage", n)
	}
}
