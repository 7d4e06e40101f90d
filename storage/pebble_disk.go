//go:build linux || darwin

package storage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// DiskFree returns the bytes available to an unprivileged user on the file system holding dir
// (statfs's f_bavail × f_bsize: root's reserved blocks are not counted).
func DiskFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("storage: statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
