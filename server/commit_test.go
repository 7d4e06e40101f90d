package server

import (
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/warrenmq/warren/storage"
)

// countingStore records every Apply the committer makes: how many writes and whether synced.
type countingStore struct {
	storage.Store
	mu      sync.Mutex
	applies []countedApply
}

type countedApply struct {
	writes int
	sync   bool
	at     time.Time
}

func (s *countingStore) Apply(b *storage.Batch, sync bool) error {
	s.mu.Lock()
	s.applies = append(s.applies, countedApply{writes: b.Len(), sync: sync, at: time.Now()})
	s.mu.Unlock()
	return s.Store.Apply(b, sync)
}

func (s *countingStore) list() []countedApply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]countedApply(nil), s.applies...)
}

// An unsynced write is synced SyncInterval after it is applied, by one empty synced batch (one
// WAL sync), and an idle committer applies nothing, however long it waits. Time is synctest's
// fake clock: time.Sleep advances it once every goroutine of the bubble is blocked, so the
// intervals are exact and the test takes no real time.
func TestCommitterSyncsUnsyncedWritesWithinInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 200 * time.Millisecond
		st := &countingStore{Store: storage.NewMemStore()}
		c := newCommitter(st, slog.New(slog.DiscardHandler), every)
		go c.run()
		defer st.Close()
		defer c.stop()

		expect := func(when string, want ...countedApply) {
			t.Helper()
			synctest.Wait()
			got := st.list()
			if len(got) != len(want) {
				t.Fatalf("%s: %d applies %+v, want %d %+v", when, len(got), got, len(want), want)
			}
			for i := range want {
				if got[i].writes != want[i].writes || got[i].sync != want[i].sync || !got[i].at.Equal(want[i].at) {
					t.Fatalf("%s: apply %d is %+v, want %+v", when, i, got[i], want[i])
				}
			}
		}

		time.Sleep(time.Hour)
		expect("idle for an hour after start")

		// An unsynced write (an ack's delete): applied at once, unsynced; synced exactly one
		// interval later by an empty batch, and nothing more after that.
		t0 := time.Now()
		<-c.add(false, func(b *storage.Batch) { b.Delete([]byte("k1")) }).done
		expect("after an unsynced write", countedApply{1, false, t0})
		time.Sleep(every - time.Millisecond)
		expect("just before the interval", countedApply{1, false, t0})
		time.Sleep(time.Millisecond)
		barrier1 := countedApply{0, true, t0.Add(every)}
		expect("at the interval", countedApply{1, false, t0}, barrier1)
		if n := c.timedSyncs.Load(); n != 1 {
			t.Fatalf("timedSyncs = %d, want 1", n)
		}
		time.Sleep(time.Hour)
		expect("idle for an hour after the sync", countedApply{1, false, t0}, barrier1)

		// Many unsynced writes within one interval share one sync, timed from the first.
		t1 := time.Now()
		<-c.add(false, func(b *storage.Batch) { b.Delete([]byte("k2")) }).done
		time.Sleep(every / 2)
		<-c.add(false, func(b *storage.Batch) { b.Delete([]byte("k3")) }).done
		time.Sleep(every)
		expect("two writes, one sync", countedApply{1, false, t0}, barrier1,
			countedApply{1, false, t1}, countedApply{1, false, t1.Add(every / 2)}, countedApply{0, true, t1.Add(every)})

		// A synced write before the interval (a confirmed publish) covers the unsynced one: no
		// extra sync.
		st.mu.Lock()
		st.applies = nil
		st.mu.Unlock()
		t2 := time.Now()
		<-c.add(false, func(b *storage.Batch) { b.Delete([]byte("k4")) }).done
		time.Sleep(every / 4)
		<-c.add(true, func(b *storage.Batch) { b.Set([]byte("k5"), []byte("v")) }).done
		time.Sleep(time.Hour)
		expect("a synced write in the interval", countedApply{1, false, t2}, countedApply{1, true, t2.Add(every / 4)})
		if n := c.timedSyncs.Load(); n != 2 {
			t.Fatalf("timedSyncs = %d, want 2", n)
		}

		// An unsynced write after that synced one, while the timer (armed by the first) still
		// runs, is synced when it fires: sooner than an interval after it, never later.
		st.mu.Lock()
		st.applies = nil
		st.mu.Unlock()
		t3 := time.Now()
		<-c.add(false, func(b *storage.Batch) { b.Delete([]byte("k6")) }).done
		time.Sleep(every / 4)
		<-c.add(true, func(b *storage.Batch) { b.Set([]byte("k7"), []byte("v")) }).done
		time.Sleep(every / 4)
		<-c.add(false, func(b *storage.Batch) { b.Delete([]byte("k8")) }).done
		time.Sleep(time.Hour)
		expect("unsynced, synced, unsynced", countedApply{1, false, t3}, countedApply{1, true, t3.Add(every / 4)},
			countedApply{1, false, t3.Add(every / 2)}, countedApply{0, true, t3.Add(every)})
	})
}

// When the interval ends while writes wait in the current group, that group is applied with
// sync instead of an extra empty batch.
func TestCommitterTimedSyncJoinsPendingGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const every = 200 * time.Millisecond
		st := &countingStore{Store: storage.NewMemStore()}
		c := newCommitter(st, slog.New(slog.DiscardHandler), every)
		defer st.Close()
		// run is not started yet: the first group waits in cur.
		c.add(false, func(b *storage.Batch) { b.Delete([]byte("a")) })
		go c.run()
		defer c.stop()
		synctest.Wait()
		// Hold the committer's lock so the next add's group is still pending when the
		// timer fires: take it just before the interval ends and release it after.
		time.Sleep(every - time.Millisecond)
		c.mu.Lock()
		c.mu.cur.b.Delete([]byte("b"))
		c.mu.Unlock()
		// No wake: only the timer makes run take the group.
		time.Sleep(time.Millisecond)
		synctest.Wait()
		got := st.list()
		if len(got) != 2 || got[0].sync || got[0].writes != 1 || !got[1].sync || got[1].writes != 1 {
			t.Fatalf("applies %+v, want one unsynced write then the pending group synced", got)
		}
	})
}

// Stop syncs what is still unsynced before it returns, and the timer goes with run.
func TestCommitterStopSyncsUnsynced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &countingStore{Store: storage.NewMemStore()}
		c := newCommitter(st, slog.New(slog.DiscardHandler), time.Hour)
		defer st.Close()
		go c.run()
		<-c.add(false, func(b *storage.Batch) { b.Delete([]byte("a")) }).done
		c.stop()
		got := st.list()
		if len(got) != 2 || got[0].sync || !got[1].sync || got[1].writes != 0 {
			t.Fatalf("applies %+v, want the unsynced write then a barrier at stop", got)
		}
	})
}

// BenchmarkCommitterUnsyncedGroups applies one unsynced delete per group (an ack at a time, the
// worst case for the sync timer's bookkeeping, which runs once per group) on a MemStore: the
// committer's own cost per group.
//
//	go test -run '^$' -bench CommitterUnsyncedGroups -benchmem ./server
func BenchmarkCommitterUnsyncedGroups(b *testing.B) {
	st := storage.NewMemStore()
	defer st.Close()
	c := newCommitter(st, slog.New(slog.DiscardHandler), DefaultSyncInterval)
	go c.run()
	defer c.stop()
	key := []byte("k")
	b.ReportAllocs()
	for b.Loop() {
		<-c.add(false, func(b *storage.Batch) { b.Delete(key) }).done
	}
}
