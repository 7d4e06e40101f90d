// Package storage is Warren's durable state: the only package that imports Pebble. It stores
// opaque bytes under ordered keys and knows nothing of AMQP or sockets.
//
// # Contract
//
//   - Apply writes a Batch atomically: after a crash either all of it or none of it is visible.
//   - Apply with sync=true returns nil only once the batch, and every batch applied before it, is
//     durable (fsynced); a nil error from a synced Apply is what allows the broker to confirm a
//     message. An unsynced Apply is durable once a later synced Apply (or Close) returns nil: it
//     may be lost in a crash before that, but never in part. An empty batch applied with sync is
//     a barrier: it syncs what was applied before it.
//   - Scan visits keys in byte order; keys.go builds keys so that a vhost's exchanges, queues,
//     bindings and a queue's messages (by sequence) are each one contiguous, ordered range, and a
//     queue's messages can be dropped with one DeleteRange. A scan callback must not keep key or
//     value after it returns; it may call Apply, and the scan does not see what that writes.
//   - Records carry a version byte first so their encoding can change: RecordVersion for the
//     broker's metadata; message records have their own versions (server/msgstore.go: version 2
//     adds the arrival time), and a reader keeps accepting every version it ever wrote.
//
// MemStore implements Store in memory (state survives a broker restart within one process, as
// tests use it; sync is a no-op). Pebble implements it on disk, as described below.
//
// # The Pebble store
//
// OpenPebble opens a github.com/cockroachdb/pebble/v2 database in a data directory. Each Apply is
// one Pebble batch, committed with pebble.Sync or pebble.NoSync; the write-ahead log (WAL) is
// always on and nothing is synced except by a synced Apply (and by Close). Pebble's commit
// pipeline lets concurrent synced commits share one WAL fsync: each waits for a sync that covers
// its record, and while one fsync runs the next commits queue up for the following one. Stats
// counts Apply calls and real WAL fsyncs (by wrapping the file system), so the sharing is
// visible: measured with 10 concurrent appliers on a real disk, about 5 commits share each fsync
// and throughput is about 4x that of one applier (see BenchmarkPebbleApplySync).
//
// Opening:
//   - An empty or missing directory becomes a new, empty store. A directory that holds any file
//     (other than a LOCK) but no Pebble store is refused (ErrCorrupt, "has files (...) but no
//     Pebble store (no MANIFEST marker): refusing to start empty"): a store is never silently
//     replaced by an empty one.
//   - One store per directory: Pebble locks the LOCK file (fcntl), which excludes other
//     processes, and the package registers the resolved directory so that a second open in the
//     same process (through another path or a symlink) fails too. Either way the error wraps
//     ErrLocked and reads "storage: data directory DIR is locked by another broker (LOCK): ...".
//   - A store that cannot be read is refused with an error that wraps ErrCorrupt and names the
//     file: a damaged or missing MANIFEST or sstable, an unparsable OPTIONS file, or a WAL damaged
//     before its last 32 KiB block. A torn WAL tail (the last records of a crash, partly written)
//     is not corruption: Pebble replays the log up to the last whole record. Pebble cannot tell
//     damage inside the WAL's last 32 KiB block from a torn tail, and treats it the same way. An
//     sstable whose blocks are damaged is found when read: the Scan fails with ErrCorrupt naming
//     the file, Stats.Corruptions counts it, and the process goes on.
//
// Failure: Pebble treats any error writing or syncing its WAL as fatal: it calls its logger's
// Fatalf ("pebble: fatal commit error: ..."), whose default exits the process, and if Fatalf
// returns it reports success. The store's logger instead marks the store failed and panics; Apply
// recovers the panic and returns an error wrapping ErrFailed. A failed fsync may have lost the
// write, or may have left it in the memtable where reads would see it, so from then on every
// Apply and Scan returns that error: nothing more is acknowledged, and the broker must stop and be
// restarted, when Pebble recovers the WAL up to its last successful fsync. Err reports the
// failure. Close still closes Pebble and releases the directory (returning the I/O error).
// Pebble also calls Fatalf on its own goroutines, notably when a background flush or compaction
// cannot write the MANIFEST; such a panic cannot be recovered and ends the process with
// "panic: storage: pebble fatal error: ...", which is what Pebble intends (continuing could
// lose data) and is safe for the same reason: what was acknowledged is in the synced WAL.
//
// # What the broker keeps here, and what it promises
//
// The server package writes through one committer (server/commit.go): every change, from every
// connection, is appended in the order the broker made it to the current group, and one goroutine
// applies the groups one after another, so one fsync covers everything written while the previous
// one ran (group commit) and a message's record is always applied before the delete of its ack.
//
//   - Metadata: durable exchanges, durable non-exclusive queues (with their arguments and a store
//     id) and bindings whose two ends are durable are written, synced, before the declaring
//     method is answered; deletes likewise. Transient and exclusive entities are never written.
//   - Messages: a persistent message (delivery-mode 2) routed to a durable queue is written under
//     (queue id, seq) and synced before it is confirmed (basic.ack to a confirm-mode publisher,
//     tx.commit-ok); if the write or the sync fails it is nacked, never acked. Records keep the
//     raw property bytes and the body as received.
//   - Acks (and autoack deliveries, basic.get no-ack, nack/reject without requeue) delete the
//     record, unsynced, so an ack costs no fsync of its own. Unsynced writes are bounded in time:
//     the committer syncs the log at most server.Options.SyncInterval (200 ms by default,
//     store_sync_interval) after an unsynced write, with the next group or, if none is pending,
//     with an empty synced batch (one WAL sync); a synced write meanwhile does it instead, and
//     nothing is synced while nothing is written. So after a crash (even kill -9) only a message
//     acked within that interval before it may come back, with redelivered=true; the same bound
//     holds for transient messages paged out. Shutdown syncs what is left.
//     Purge deletes the records of the ready messages (and the paged range with one DeleteRange);
//     queue delete is one DeleteRange over the queue's id.
//   - Bounded memory: a queue keeps a window of messages in memory (server.Options.QueueWindow);
//     newer messages wait only in the store, transient ones too (written unsynced, deleted at the
//     next start as RabbitMQ drops transient messages on restart), and are read back in order.
//   - Recovery: metadata first, then each durable queue's messages in seq order. After a clean
//     shutdown (a state record says so) messages delivered before the stop carry a delivered
//     mark and come back redelivered=true; after a crash every recovered message comes back
//     redelivered=true, since the broker cannot know which were delivered.
//
// Close waits for calls in flight (it must not be called from a Scan callback); a second Close
// returns nil, and any other call after Close returns ErrClosed. Pebble's own goroutines all end
// in Close.
package storage
