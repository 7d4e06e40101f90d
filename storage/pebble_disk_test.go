package storage

import (
	"path/filepath"
	"testing"
)

func TestDiskFree(t *testing.T) {
	n, err := DiskFree(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("DiskFree = %d, %v", n, err)
	}
	if _, err := DiskFree(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("DiskFree of a missing directory succeeded")
	}
}
