package storage

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrFailed is wrapped by every error a Pebble store returns after a write to its log failed.
// Such a failure may have lost a write, so nothing more may be acknowledged: the store refuses
// every later Apply and Scan, and the broker must stop and be restarted, when Pebble replays the
// log up to the last successful fsync.
var ErrFailed = errors.New("storage: store failed")

// ErrCorrupt is wrapped by OpenPebble's error when the data directory holds a store that cannot
// be read (a corrupt or missing file), and by a Scan's error when it meets a corrupt block.
var ErrCorrupt = errors.New("storage: store is corrupt")

// ErrLocked is wrapped by OpenPebble's error when another store (in this process or another) has
// the data directory open.
var ErrLocked = errors.New("storage: data directory is locked")

// Defaults for PebbleOptions' zero values.
const (
	DefaultPebbleCacheSize    = 32 << 20
	DefaultPebbleMemTableSize = 16 << 20
)

// SlowDiskThreshold is how long a write or sync may take before the store logs it as slow.
const SlowDiskThreshold = 5 * time.Second

// PebbleOptions configures OpenPebble. The zero value is usable.
type PebbleOptions struct {
	// FS is the file system the store lives on; nil means the operating system's (vfs.Default).
	// Tests pass vfs.NewMem() or a fault-injecting wrapper.
	FS vfs.FS
	// Logger receives Pebble's own log lines (its informational ones at Debug, its errors at Error)
	// and the store's; nil discards.
	Logger *slog.Logger
	// CacheSize is the block cache in bytes; 0 means DefaultPebbleCacheSize.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes; 0 means DefaultPebbleMemTableSize. Up to
	// two memtables (the one being written and the one being flushed) are in memory at once.
	MemTableSize uint64
}

// PebbleStats are counters since OpenPebble.
type PebbleStats struct {
	// Commits is the number of Apply calls that reached Pebble; SyncedCommits those with sync.
	Commits, SyncedCommits uint64
	// WALSyncs is the number of successful fsyncs of write-ahead log files (*.log). Concurrent
	// synced Applies share one: SyncedCommits/WALSyncs is the group-commit factor.
	WALSyncs uint64
	// Corruptions is the number of corrupt blocks or files Pebble has reported.
	Corruptions uint64
	// Scans is the number of Scan and ScanRange calls (the store's reads: recovery, paging in).
	Scans uint64
}

// Pebble is a Store on Pebble (github.com/cockroachdb/pebble/v2), an LSM key-value store with a
// write-ahead log. See the package documentation for its durability contract.
type Pebble struct {
	db      *pebble.DB
	lock    *pebble.Lock
	dir     string
	release func() // drops the in-process registration of dir
	// healthCloser stops the disk health checker's goroutine.
	healthCloser io.Closer
	log          *slog.Logger

	mu       sync.Mutex
	idle     sync.Cond // signalled when inflight drops to 0 after closed is set
	closed   bool
	inflight int

	failed atomic.Pointer[error]

	commits, syncedCommits, corruptions atomic.Uint64
	scans                               atomic.Uint64
	walSyncs                            *atomic.Uint64
}

// OpenPebble opens the store in dir, creating dir and an empty store if dir is missing or empty.
// A dir that holds files but no Pebble store is an error, never a silent fresh start; so is a
// dir that another store has open (ErrLocked) and a store that cannot be read (ErrCorrupt).
func OpenPebble(dir string, o PebbleOptions) (_ *Pebble, err error) {
	if dir == "" {
		return nil, errors.New("storage: OpenPebble: empty directory name")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "pebble", "dir", dir)
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	p := &Pebble{dir: dir, log: logger, walSyncs: new(atomic.Uint64)}
	p.idle.L = &p.mu
	fs = &countingFS{FS: fs, walSyncs: p.walSyncs}

	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: creating data directory %s: %w", dir, err)
	}

	// Pebble's own lock (a LOCK file under fcntl) excludes other processes, but within one
	// process it only refuses the same path string: register the resolved directory too.
	p.release, err = registerDir(dir, fs)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.release()
		}
	}()
	p.lock, err = pebble.LockDirectory(dir, fs)
	if err != nil {
		// Creating the LOCK file fails with a PathError; a lock held elsewhere does not.
		if pe := (*iofs.PathError)(nil); errors.As(err, &pe) {
			return nil, fmt.Errorf("storage: creating LOCK in data directory %s: %w", dir, err)
		}
		return nil, marked(ErrLocked, err, "storage: data directory %s is locked by another broker (LOCK)", dir)
	}
	defer func() {
		if err != nil {
			_ = p.lock.Close()
		}
	}()

	// Files but no store must not become an empty store: open with ErrorIfNotExists then.
	files, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: listing data directory %s: %w", dir, err)
	}
	files = slices.DeleteFunc(files, func(name string) bool { return name == "LOCK" })

	opts := &pebble.Options{
		FS:                 fs,
		Lock:               p.lock,
		CacheSize:          o.CacheSize,
		MemTableSize:       o.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		ErrorIfNotExists:   len(files) > 0,
		Logger:             &pebbleLogger{log: logger, fail: p.fail},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				logger.Error("pebble background error", "err", err.Error())
			},
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				// Pebble's default calls Logger.Fatalf. The read that met the corrupt block
				// returns an error (Scan's wraps ErrCorrupt): count and log it here.
				p.corruptions.Add(1)
				logger.Error("pebble data corruption", "path", info.Path, "err", info.Details.Error())
			},
		},
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultPebbleCacheSize
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultPebbleMemTableSize
	}
	// Disk health checks: Pebble times every write and sync and logs one that takes longer than
	// SlowDiskThreshold. Their goroutine is ours to stop, after the DB is closed.
	opts.FS, p.healthCloser = vfs.WithDiskHealthChecks(fs, SlowDiskThreshold, nil, func(info vfs.DiskSlowInfo) {
		logger.Warn("slow disk operation", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
	})
	defer func() {
		if err != nil {
			_ = p.healthCloser.Close()
		}
	}()

	p.db, err = openDB(dir, opts)
	if err != nil {
		return nil, describeOpenError(dir, fs, files, opts, err)
	}
	if len(files) == 0 {
		// A new store is created at Pebble's oldest format and then upgraded, so its first WAL
		// lacks the sync offsets that let recovery tell corruption from a torn tail. Start
		// a new WAL (and an empty memtable) now that the format is the newest.
		if err = p.db.Flush(); err != nil {
			_ = p.db.Close()
			return nil, fmt.Errorf("storage: starting the first WAL in %s: %w", dir, err)
		}
	}
	return p, nil
}

// openDB is pebble.Open with a Fatalf during Open turned into an error.
func openDB(dir string, opts *pebble.Options) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, panicError(r)
		}
	}()
	return pebble.Open(dir, opts)
}

// describeOpenError names what is wrong with dir when Pebble refused to open it.
func describeOpenError(dir string, fs vfs.FS, files []string, opts *pebble.Options, err error) error {
	if errors.Is(err, pebble.ErrDBDoesNotExist) {
		return marked(ErrCorrupt, err, "storage: data directory %s has files (%s) but no Pebble store (no MANIFEST marker): refusing to start empty",
			dir, summarize(files))
	}
	// Pebble's error for an unparsable OPTIONS file does not name the file: check it here.
	if desc, perr := pebble.Peek(dir, fs); perr == nil && desc.OptionsFilename != "" {
		o := opts.Clone()
		o.EnsureDefaults()
		if data, rerr := readFile(fs, desc.OptionsFilename); rerr != nil {
			return fmt.Errorf("storage: data directory %s: reading %s: %w", dir, desc.OptionsFilename, rerr)
		} else if cerr := o.CheckCompatibility(dir, data); cerr != nil {
			return marked(ErrCorrupt, cerr, "storage: data directory %s is corrupt: %s is unreadable or incompatible", dir, desc.OptionsFilename)
		}
	}
	if pebble.IsCorruptionError(err) && strings.Contains(err.Error(), "replaying WAL") {
		// Pebble does not say which WAL: name the ones there are.
		wals := slices.DeleteFunc(slices.Clone(files), func(name string) bool { return !strings.HasSuffix(name, ".log") })
		slices.Sort(wals)
		return marked(ErrCorrupt, err, "storage: data directory %s is corrupt: a write-ahead log (one of %s) is damaged", dir, summarize(wals))
	}
	if pebble.IsCorruptionError(err) || errors.Is(err, iofs.ErrNotExist) {
		// A file the MANIFEST (or its marker) names is damaged or missing.
		return marked(ErrCorrupt, err, "storage: data directory %s is corrupt", dir)
	}
	return fmt.Errorf("storage: opening Pebble store in %s: %w", dir, err)
}

func readFile(fs vfs.FS, name string) (string, error) {
	f, err := fs.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func summarize(files []string) string {
	if len(files) > 5 {
		return strings.Join(files[:5], ", ") + fmt.Sprintf(" and %d more", len(files)-5)
	}
	return strings.Join(files, ", ")
}

// enter registers a call in flight; Close waits for those. It fails once Close has begun.
func (p *Pebble) enter() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.inflight++
	return nil
}

func (p *Pebble) exit() {
	p.mu.Lock()
	p.inflight--
	if p.inflight == 0 && p.closed {
		p.idle.Broadcast()
	}
	p.mu.Unlock()
}

// Err returns nil while the store is healthy and, after a failed log write or sync (or any
// fatal error inside Pebble), the error that failed it; it wraps ErrFailed.
func (p *Pebble) Err() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// fail marks the store failed with err (the first failure wins) and returns the store's error.
func (p *Pebble) fail(err error) error {
	err = marked(ErrFailed, err, "storage: store failed (nothing more is acknowledged until restart)")
	if p.failed.CompareAndSwap(nil, &err) {
		p.log.Error("store failed: refusing every later call until restart", "err", err)
	}
	return p.Err()
}

// Apply implements Store. The batch becomes one Pebble batch, committed with pebble.Sync when
// sync is set. An empty batch with sync makes every earlier unsynced Apply durable.
func (p *Pebble) Apply(b *Batch, sync bool) error {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	if err := p.Err(); err != nil {
		return err
	}
	pb, err := p.build(b, sync)
	if err != nil {
		return err
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
		p.syncedCommits.Add(1)
	}
	p.commits.Add(1)
	return p.commit(pb, wo)
}

// build translates b into a Pebble batch. (Pebble panics on a batch of 4 GiB or more.)
func (p *Pebble) build(b *Batch, sync bool) (pb *pebble.Batch, err error) {
	defer func() {
		if r := recover(); r != nil {
			pb, err = nil, fmt.Errorf("storage: building batch: %w", panicError(r))
		}
	}()
	pb = p.db.NewBatch()
	for _, o := range b.ops {
		switch o.kind {
		case opSet:
			err = pb.Set(o.key, o.value, nil)
		case opDelete:
			err = pb.Delete(o.key, nil)
		case opDeleteRange:
			err = pb.DeleteRange(o.key, o.value, nil)
		}
		if err != nil {
			_ = pb.Close()
			return nil, fmt.Errorf("storage: building batch: %w", err)
		}
	}
	if sync && pb.Empty() {
		// A log record with no keys: committing it syncs the log up to here.
		if err := pb.LogData(nil, nil); err != nil {
			_ = pb.Close()
			return nil, fmt.Errorf("storage: building batch: %w", err)
		}
	}
	return pb, nil
}

// commit commits pb. Pebble treats any error writing or syncing its log as fatal: it reports it
// through Logger.Fatalf, which panics here, and the panic fails the store. The errors Pebble
// returns instead come from checks made before the batch reaches the log, and fail only this
// Apply.
func (p *Pebble) commit(pb *pebble.Batch, wo *pebble.WriteOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// pb may still be referenced by Pebble's commit queue: do not Close it.
			err = p.fail(fmt.Errorf("commit: %w", panicError(r)))
		}
	}()
	if err := pb.Commit(wo); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	if err := pb.Close(); err != nil {
		return fmt.Errorf("storage: releasing batch: %w", err)
	}
	return nil
}

// Scan implements Store.
func (p *Pebble) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return p.ScanRange(prefix, prefixEnd(prefix), fn)
}

// prefixEnd is the smallest key greater than every key with prefix (nil when there is none).
func prefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := append([]byte(nil), prefix[:i+1]...)
			end[i]++
			return end
		}
	}
	return nil
}

// ScanRange implements Store. It reads one consistent view: fn may call Apply, and the scan
// does not see what that writes.
func (p *Pebble) ScanRange(start, end []byte, fn func(key, value []byte) error) (err error) {
	if err := p.enter(); err != nil {
		return err
	}
	defer p.exit()
	if err := p.Err(); err != nil {
		return err
	}
	p.scans.Add(1)
	var it *pebble.Iterator
	inFn := false // a panic in fn is the caller's: it goes on up
	defer func() {
		if r := recover(); r != nil {
			if it != nil {
				closeAfterPanic(it)
			}
			if inFn {
				panic(r)
			}
			err = p.fail(fmt.Errorf("scan: %w", panicError(r)))
			return
		}
		if it != nil {
			if cerr := it.Close(); cerr != nil && err == nil {
				err = scanError(cerr)
			}
		}
	}()
	it, err = p.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return scanError(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			return scanError(verr)
		}
		inFn = true
		ferr := fn(it.Key(), v)
		inFn = false
		if ferr != nil {
			if errors.Is(ferr, ErrStop) {
				return nil
			}
			return ferr
		}
	}
	if err := it.Error(); err != nil {
		return scanError(err)
	}
	return nil
}

// closeAfterPanic closes an iterator whose state a panic interrupted, so that it is not reported
// as leaked; its own panic or error no longer matters.
func closeAfterPanic(it *pebble.Iterator) {
	defer func() { _ = recover() }()
	_ = it.Close()
}

func scanError(err error) error {
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil {
		return marked(ErrCorrupt, info.Details, "storage: scan: corrupt file %s", info.Path)
	}
	if pebble.IsCorruptionError(err) {
		return marked(ErrCorrupt, err, "storage: scan: corrupt store")
	}
	return fmt.Errorf("storage: scan: %w", err)
}

// Close implements Store. It waits for calls in flight (so it must not be called from a Scan
// callback), closes Pebble and releases the directory. A second Close returns nil; every other
// call after Close returns ErrClosed.
func (p *Pebble) Close() (err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for p.inflight > 0 {
		p.idle.Wait()
	}
	p.mu.Unlock()
	defer p.release()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("storage: closing Pebble store in %s: %w", p.dir, panicError(r))
		}
		if lerr := p.lock.Close(); lerr != nil && err == nil {
			err = fmt.Errorf("storage: releasing LOCK in %s: %w", p.dir, lerr)
		}
		_ = p.healthCloser.Close()
	}()
	if err := p.db.Close(); err != nil {
		return fmt.Errorf("storage: closing Pebble store in %s: %w", p.dir, err)
	}
	return nil
}

// Stats returns the store's counters.
func (p *Pebble) Stats() PebbleStats {
	return PebbleStats{
		Commits:       p.commits.Load(),
		SyncedCommits: p.syncedCommits.Load(),
		WALSyncs:      p.walSyncs.Load(),
		Corruptions:   p.corruptions.Load(),
		Scans:         p.scans.Load(),
	}
}

// Dir is the data directory the store was opened on.
func (p *Pebble) Dir() string { return p.dir }

// pebbleFatal is the panic value of pebbleLogger.Fatalf. The runtime prints its Error text if
// nothing recovers it.
type pebbleFatal struct{ msg string }

func (f pebbleFatal) Error() string { return "storage: pebble fatal error: " + f.msg }

// panicError turns a recovered panic into an error.
func panicError(r any) error {
	if f, ok := r.(pebbleFatal); ok {
		return fmt.Errorf("pebble fatal error: %s", f.msg)
	}
	if e, ok := r.(error); ok {
		return fmt.Errorf("pebble panicked: %w", e)
	}
	return fmt.Errorf("pebble panicked: %v", r)
}

// markedError is an error that reads msg: err and matches mark with errors.Is.
type markedError struct {
	mark, err error
	msg       string
}

func marked(mark, err error, format string, args ...any) error {
	return &markedError{mark: mark, err: err, msg: fmt.Sprintf(format, args...)}
}

func (e *markedError) Error() string   { return e.msg + ": " + e.err.Error() }
func (e *markedError) Unwrap() []error { return []error{e.mark, e.err} }

// pebbleLogger routes Pebble's logger to slog. Pebble calls Fatalf when it cannot go on (for the
// store: a failed write or sync of its log or MANIFEST); its default logger then exits the
// process. Here Fatalf fails the store and panics: Apply, Scan and Close recover that panic into
// an error. A Fatalf on one of Pebble's own goroutines (a MANIFEST failure in a background flush
// or compaction) cannot be recovered and ends the process with the panic's message.
type pebbleLogger struct {
	log  *slog.Logger
	fail func(error) error
}

// Infof logs Pebble's informational lines (start-up: "Found 0 WALs", WAL and manifest
// creation, compactions) at debug level: they describe Pebble's internals, not the broker's.
func (l *pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (l *pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	l.log.Error("pebble fatal error", "err", msg, "stack", string(debug.Stack()))
	// Fail the store before panicking, in case the panic is recovered inside Pebble.
	l.fail(fmt.Errorf("pebble fatal error: %s", msg))
	panic(pebbleFatal{msg: msg})
}

// countingFS counts successful syncs of write-ahead log files. Pebble v2 names them
// NNNNNN.log (and NNNNNN-III.log for a failover log), recycling old ones through ReuseForWrite.
type countingFS struct {
	vfs.FS
	walSyncs *atomic.Uint64
}

func (fs *countingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &countingFile{File: f, n: fs.walSyncs}, nil
}

func (fs *countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *countingFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs *countingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs *countingFS) Unwrap() vfs.FS { return fs.FS }

type countingFile struct {
	vfs.File
	n *atomic.Uint64
}

func (f *countingFile) Sync() error {
	err := f.File.Sync()
	if err == nil {
		f.n.Add(1)
	}
	return err
}

func (f *countingFile) SyncData() error {
	err := f.File.SyncData()
	if err == nil {
		f.n.Add(1)
	}
	return err
}

// SyncTo counts only when it made the file durable (fullSync): a range sync is not an fsync.
func (f *countingFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	if err == nil && full {
		f.n.Add(1)
	}
	return full, err
}
