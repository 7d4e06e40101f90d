//go:build !linux && !darwin

package storage

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// DiskFree returns the bytes available to an unprivileged user on the file system holding dir.
func DiskFree(dir string) (uint64, error) {
	u, err := vfs.Default.GetDiskUsage(dir)
	if err != nil {
		return 0, fmt.Errorf("storage: disk usage of %s: %w", dir, err)
	}
	return u.AvailBytes, nil
}
