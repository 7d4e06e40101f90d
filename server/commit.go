package server

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/storage"
)

// committer is the broker's only writer to the store. Every store write — metadata, message
// records, acks, purges — is appended under mu to the current commit group, in the order the
// broker made the change, and one goroutine (run) applies groups one after another. While a
// group is being fsynced the next one fills up, so any number of publishers, channels and queues
// share one fsync (group commit), and the store sees every change in the order it happened: a
// message's record is always written before the delete of its ack, whichever connections they
// came from.
//
// add is called with queue and vhost locks held; it only appends to memory. Callbacks registered
// with onCommit run on the committer goroutine after the group is durable (or failed), before
// the group's done channel closes.
//
// Unsynced writes (acks' deletes, transient messages paged out) are bounded in time: when run
// applies a group without sync and its timer is not armed, it arms it for syncEvery. When the
// timer fires, if a group was applied without sync since the last synced one, the pending group
// is applied with sync, or, if there is none, an empty synced batch (the store's barrier: one WAL
// sync) is; if a synced group came in between, nothing is written. So an unsynced write reaches
// the disk within syncEvery (plus the fsync's own time), acks never cost an fsync each, the timer
// is armed at most once per interval (never per group), and an idle committer does no I/O and
// has no timer armed. The timer's function only sets syncDue and wakes run, which does the rest.
type committer struct {
	store     storage.Store
	log       *slog.Logger
	syncEvery time.Duration // Options.SyncInterval
	wake      chan struct{} // 1-buffered: "cur has work" or "stop"
	done      chan struct{} // closed when run returns

	groups, syncs atomic.Uint64 // applied groups, and those applied with sync
	timedSyncs    atomic.Uint64 // syncs made because the timer fired (a group or a barrier)

	// syncDue is set by the sync timer's function (which then wakes run) and cleared by run.
	syncDue atomic.Bool
	// timerFuncs counts the sync timer's armings whose function may still run; run waits for it
	// before it returns, so the timer's goroutine never outlives the committer.
	timerFuncs sync.WaitGroup

	// over is set by add when the current group passes maxPending and cleared when run takes
	// it: throttle's lock-free fast path (every publish asks).
	over atomic.Bool

	mu struct {
		sync.Mutex
		cur     *commitGroup
		stopped bool
		relief  chan struct{} // closed when a group over maxPending is taken for writing
	}
}

// DefaultSyncInterval is Options.SyncInterval's default: RabbitMQ's queue process likewise syncs
// its index (where acks are recorded) 200 ms after a change.
const DefaultSyncInterval = 200 * time.Millisecond

// maxPending bounds the bytes waiting in the current group: past it, publishers wait (throttle)
// until the committer takes the group, so a store slower than the publishers slows them down
// instead of filling memory. Synced writes are bounded anyway by the confirms that wait for them;
// this is for the unsynced ones (transient messages paged out, acks).
const maxPending = 8 << 20

// commitGroup is a set of writes applied as one atomic store batch.
type commitGroup struct {
	b    storage.Batch
	sync bool
	done chan struct{} // closed once applied (err set, callbacks run)
	err  error

	// Guarded by committer.mu.
	committed bool
	callbacks []func(error)

	// external: not the committer's (a quorum queue's Raft commit, queue_quorum_host.go); it
	// completes with finishExternal, in no order with the committer's groups.
	external bool
}

func newCommitter(store storage.Store, log *slog.Logger, syncEvery time.Duration) *committer {
	c := &committer{store: store, log: log, syncEvery: syncEvery, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.mu.cur = &commitGroup{done: make(chan struct{})}
	return c
}

// add lets fn append writes to the current group and returns the group. sync asks for the group
// to be fsynced. After stop, the writes are refused: the returned group is already failed.
func (c *committer) add(sync bool, fn func(b *storage.Batch)) *commitGroup {
	c.mu.Lock()
	if c.mu.stopped {
		c.mu.Unlock()
		return failedGroup
	}
	g := c.mu.cur
	fn(&g.b)
	g.sync = g.sync || sync
	if g.b.Size() >= maxPending {
		c.over.Store(true)
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return g
}

// failedGroup is returned for writes after the committer stopped.
var failedGroup = func() *commitGroup {
	g := &commitGroup{done: make(chan struct{}), committed: true, err: storage.ErrClosed}
	close(g.done)
	return g
}()

// apply writes b synchronously through the group log and waits for it to be durable.
func (c *committer) apply(b *storage.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	g := c.add(true, func(gb *storage.Batch) { gb.Append(b) })
	<-g.done
	return g.err
}

// throttle returns a channel to wait on before adding more writes when the current group is over
// maxPending, or nil if writes may go on.
func (c *committer) throttle() <-chan struct{} {
	if !c.over.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.stopped || c.mu.cur == nil || c.mu.cur.b.Size() < maxPending {
		return nil
	}
	if c.mu.relief == nil {
		c.mu.relief = make(chan struct{})
	}
	return c.mu.relief
}

// onCommit runs fn(err) once g is applied: at once (on this goroutine) if it already is.
func (c *committer) onCommit(g *commitGroup, fn func(error)) {
	c.mu.Lock()
	if g.committed {
		c.mu.Unlock()
		fn(g.err)
		return
	}
	g.callbacks = append(g.callbacks, fn)
	c.mu.Unlock()
}

// run applies groups until stop; after stop it applies what was already added, syncs what is
// still unsynced, then returns. It owns the sync timer: it stops it, and waits for its function,
// before it returns.
func (c *committer) run() {
	defer close(c.done)
	timer := time.AfterFunc(time.Hour, func() {
		defer c.timerFuncs.Done()
		c.syncDue.Store(true)
		select {
		case c.wake <- struct{}{}:
		default:
		}
	})
	timer.Stop()
	armed := false    // the timer is set and its function has not been seen by run
	unsynced := false // a group was applied without sync since the last synced one
	defer func() {
		if armed && timer.Stop() {
			c.timerFuncs.Done() // it will not run
		}
		c.timerFuncs.Wait()
	}()
	// settle notes that g was applied, and arms the timer for an unsynced write.
	settle := func(g *commitGroup) {
		switch {
		case g.b.Len() == 0:
		case g.sync:
			if g.err == nil {
				unsynced = false
			}
		default:
			unsynced = true
			if !armed {
				armed = true
				c.timerFuncs.Add(1)
				timer.Reset(c.syncEvery)
			}
		}
	}
	for {
		<-c.wake
		syncNow := false
		if c.syncDue.Load() {
			c.syncDue.Store(false)
			armed = false
			syncNow = unsynced
		}
		c.mu.Lock()
		g := c.mu.cur
		stopped := c.mu.stopped
		if g.b.Len() > 0 || len(g.callbacks) > 0 {
			c.mu.cur = &commitGroup{done: make(chan struct{})}
			c.over.Store(false)
		} else {
			g = nil
		}
		if c.mu.relief != nil {
			close(c.mu.relief)
			c.mu.relief = nil
		}
		c.mu.Unlock()
		if syncNow {
			c.timedSyncs.Add(1)
			if g != nil && g.b.Len() > 0 {
				g.sync = true // g is out of cur: no add touches it any more
			}
		}
		if g != nil {
			c.commit(g)
			settle(g)
		}
		if syncNow && (g == nil || g.b.Len() == 0 || g.err != nil) {
			c.barrier()
			unsynced = false
		}
		if stopped {
			c.mu.Lock()
			rest := c.mu.cur
			c.mu.cur = nil
			c.mu.Unlock()
			if rest != nil && (rest.b.Len() > 0 || len(rest.callbacks) > 0) {
				c.commit(rest)
				settle(rest)
			}
			if unsynced {
				c.barrier()
			}
			return
		}
	}
}

// barrier makes every group applied so far durable: an empty batch applied with sync, which the
// store turns into one WAL sync. A failure is logged and not retried: an empty batch fails only
// on a failed or closed store, where a retry cannot succeed, and later writes fail anyway.
func (c *committer) barrier() {
	if err := c.store.Apply(&storage.Batch{}, true); err != nil {
		c.log.Error("syncing unsynced store writes failed; acks and paged transient messages since the last sync may come back after a crash", "err", err)
	}
}

func (c *committer) commit(g *commitGroup) {
	var err error
	if g.b.Len() > 0 {
		err = c.store.Apply(&g.b, g.sync)
		g.b.Release() // a group is held after it is applied (queue.mu.lastWrite, confirms): not its records
		c.groups.Add(1)
		if g.sync {
			c.syncs.Add(1)
		}
		if err != nil {
			c.log.Error("storage write failed; the affected publishes are nacked", "writes", g.b.Len(), "err", err)
		}
	}
	c.mu.Lock()
	g.err = err
	g.committed = true
	cbs := g.callbacks
	g.callbacks = nil
	c.mu.Unlock()
	for _, fn := range cbs {
		fn(err)
	}
	close(g.done)
}

// stop makes run apply what is pending and return, and waits for it. Later adds fail.
func (c *committer) stop() {
	c.mu.Lock()
	already := c.mu.stopped
	c.mu.stopped = true
	c.mu.Unlock()
	if !already {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	<-c.done
}

// StoreStats counts the broker's store commits.
type StoreStats struct {
	Commits       uint64 // groups applied
	SyncedCommits uint64 // groups applied with an fsync
	// TimedSyncs counts the syncs made Options.SyncInterval after an unsynced group: a group
	// applied with sync for that reason (also counted above) or an empty synced batch.
	TimedSyncs uint64
}

// StoreStats returns the commit counters since New.
func (s *Server) StoreStats() StoreStats {
	return StoreStats{Commits: s.commit.groups.Load(), SyncedCommits: s.commit.syncs.Load(), TimedSyncs: s.commit.timedSyncs.Load()}
}
