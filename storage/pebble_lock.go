package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// openDirs holds the resolved data directories that Pebble stores in this process have open on
// the operating system's file system. Pebble's LOCK file uses fcntl locks, which exclude other
// processes but not a second open in the same process, and Pebble's in-process check compares
// path strings: a relative path or a symlink to an open directory would get through it. (An
// in-memory vfs.MemFS refuses a second lock itself.)
var openDirs = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

var errAlreadyOpen = errors.New("already open in this process")

// registerDir claims dir for this process and returns the function that releases it.
func registerDir(dir string, fs vfs.FS) (release func(), err error) {
	if vfs.Root(fs) != vfs.Default {
		return func() {}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: data directory %s: %w", dir, err)
	}
	key, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("storage: data directory %s: %w", dir, err)
	}
	openDirs.Lock()
	defer openDirs.Unlock()
	if openDirs.m[key] {
		return nil, marked(ErrLocked, errAlreadyOpen, "storage: data directory %s is locked by another broker (LOCK)", dir)
	}
	openDirs.m[key] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			openDirs.Lock()
			delete(openDirs.m, key)
			openDirs.Unlock()
		})
	}, nil
}
