package integration

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// TestCrashPowerLossKeepsConfirmedMessages simulates power loss, which kill -9 does not: the
// broker runs on Pebble over Pebble's crashable in-memory file system, and at a random moment
// during confirmed publishing and acking the test takes a crash clone of it, which keeps what was
// fsynced and a random part of what was not. A broker started on the clone must have every message
// that was confirmed before the crash and not acked. This is what shows a confirm waits for the
// fsync: kill -9 leaves unsynced writes in the operating system's page cache.
func TestCrashPowerLossKeepsConfirmedMessages(t *testing.T) {
	persistSkipExternal(t)
	const queue, dir = "power.q", "/data"
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	t.Logf("seed %d", seed)

	fs := vfs.NewCrashableMem()
	l := &crashLedger{published: map[string]bool{}, confirmed: map[string]bool{}, acked: map[string]bool{}}
	drained := 0
	const cycles = 5
	for c := 0; c < cycles; c++ {
		store, err := storage.OpenPebble(dir, storage.PebbleOptions{FS: fs})
		if err != nil {
			t.Fatalf("cycle %d: opening the crashed store: %v", c, err)
		}
		b := startOwnedBroker(t, store)
		drained += l.drain(t, b.URL, queue)
		if t.Failed() {
			b.stop()
			break
		}

		ctx, cancel := context.WithCancel(context.Background())
		loadDone := make(chan struct{})
		go func() { l.load(ctx, b.URL, queue, fmt.Sprintf("p%d-", c)); close(loadDone) }()
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond) // a random moment to lose power

		// What must survive is what was confirmed before the crash (snapshot before the clone);
		// what may come back is anything published or acked up to the crash (after the clone).
		l.mu.Lock()
		confirmed := maps.Clone(l.confirmed)
		l.mu.Unlock()
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		l.mu.Lock()
		next := &crashLedger{published: maps.Clone(l.published), confirmed: confirmed, acked: maps.Clone(l.acked)}
		l.mu.Unlock()

		cancel()
		<-loadDone
		b.stop()
		fs, l = crashed, next
	}
	store, err := storage.OpenPebble(dir, storage.PebbleOptions{FS: fs})
	if err != nil {
		t.Fatalf("opening the crashed store: %v", err)
	}
	b := startOwnedBroker(t, store)
	drained += l.drain(t, b.URL, queue)
	b.stop()
	t.Logf("power-loss cycles=%d published=%d confirmed=%d drained=%d lost=%d unexpected=%d duplicated=%d acked-without-redelivered=%d",
		cycles, len(l.published), len(l.confirmed), drained, l.lost, l.unexpected, l.duplicated, l.ackedNotRedelivered)
	if len(l.confirmed) == 0 {
		t.Fatal("no publish was confirmed: the test measured nothing")
	}
}

// ownedBroker is an in-process broker that closes its store when stopped.
type ownedBroker struct {
	broker
	stop func()
}

func startOwnedBroker(t *testing.T, store storage.Store) ownedBroker {
	t.Helper()
	stopped := false
	var b broker
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		shutdown(t, b.Srv)
		if err := store.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	}
	t.Cleanup(stop) // runs after startBroker's own cleanup (a second Shutdown is a no-op)
	b = startBroker(t, func(o *server.Options) { o.Store = store })
	return ownedBroker{broker: b, stop: stop}
}
