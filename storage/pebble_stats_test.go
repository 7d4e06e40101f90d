package storage

import "testing"

// TestPebbleStatsCountsScans checks the read counter /api/nodes reports as io_read_count.
func TestPebbleStatsCountsScans(t *testing.T) {
	s := openPebble(t, t.TempDir(), PebbleOptions{})
	mustApply(t, s, false, "a1", "x", "a2", "y")
	before := s.Stats().Scans
	for range 3 {
		if err := s.Scan([]byte("a"), func(k, v []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ScanRange([]byte("a1"), []byte("a2"), func(k, v []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Scans - before; got != 4 {
		t.Errorf("Scans grew by %d after 4 scans, want 4", got)
	}
}
