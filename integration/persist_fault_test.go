package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// TestPersistDiskFaultNeverConfirms runs the broker on Pebble over a file system that fails, at a
// chosen moment, every write or every sync of the write-ahead log (Pebble's errorfs). Publishers with
// confirms run throughout. No persistent message published after the fault may be confirmed (it is
// nacked, or its channel or connection closes), and after a restart on the healed file system every
// message confirmed before the fault is there.
func TestPersistDiskFaultNeverConfirms(t *testing.T) {
	persistSkipExternal(t)
	for _, c := range []struct {
		name  string
		kinds []errorfs.OpKind
	}{
		{"wal-sync", []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}},
		{"wal-write", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}},
	} {
		t.Run(c.name, func(t *testing.T) {
			testDiskFault(t, c.kinds)
		})
	}
}

// faultBroker is a broker on a store that is expected to fail: stop returns Shutdown's error.
type faultBroker struct {
	broker
	stop func() error
}

func startFaultBroker(t *testing.T, store storage.Store) faultBroker {
	t.Helper()
	// Not testbroker.Start: shutting this broker down is expected to fail, and the test checks how.
	tb, err := testbroker.New(server.Options{Store: store, Logger: testLogger(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Stop() })
	return faultBroker{broker: broker{URL: tb.URL, Addr: tb.Addr, Srv: tb.Srv}, stop: tb.Stop}
}

// noReuseFS creates a new file where Pebble would recycle an old write-ahead log. errorfs hands out
// a recycled file unwrapped (its ReuseForWrite returns the inner file system's file), so without
// this, faults stop reaching the log after its first recycling and publishes after the "fault"
// are, correctly, confirmed.
type noReuseFS struct{ vfs.FS }

func (fs noReuseFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.Remove(oldname); err != nil {
		return nil, err
	}
	return fs.Create(newname, category)
}

func testDiskFault(t *testing.T, kinds []errorfs.OpKind) {
	const queue, dir = "fault.q", "/data"
	mem := vfs.NewMem()
	fault := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		for _, k := range kinds {
			if op.Kind == k {
				return errorfs.ErrInjected
			}
		}
		return nil
	})}
	store, err := storage.OpenPebble(dir, storage.PebbleOptions{FS: noReuseFS{errorfs.Wrap(mem, fault)}})
	if err != nil {
		t.Fatal(err)
	}
	b := startFaultBroker(t, store)
	setup := persistDial(t, b.URL, false)
	if _, err := setup.ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	// faultAt is set (under mu) when the fault is switched on; a confirm for a message published
	// after it is a failure.
	var mu sync.Mutex
	faulted := false
	confirmedBefore := map[string]bool{}
	var confirmedAfter, nackedAfter, closedAfter int
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := amqp.Dial(b.URL)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err == nil {
				err = ch.Confirm(false)
			}
			if err != nil {
				t.Errorf("channel: %v", err)
				return
			}
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf("p%d-%d", p, i)
				mu.Lock()
				after := faulted
				mu.Unlock()
				dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, false, false,
					amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
				if err != nil {
					mu.Lock()
					closedAfter++
					mu.Unlock()
					return
				}
				wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
				ok, err := dc.WaitContext(wctx)
				wcancel()
				mu.Lock()
				switch {
				case err != nil && !after:
					// The fault was switched on while this one waited: it may go either way.
				case err != nil:
					closedAfter++
				case ok && !after:
					confirmedBefore[body] = true
				case ok:
					confirmedAfter++
					t.Errorf("%s was published after the disk failed and was confirmed", body)
				case after:
					nackedAfter++
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	fault.On()
	faulted = true
	mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	mu.Lock()
	before := len(confirmedBefore)
	t.Logf("confirmed before the fault %d; after it: confirmed %d, nacked %d, connections closed %d",
		before, confirmedAfter, nackedAfter, closedAfter)
	mu.Unlock()
	t.Logf("store error: %v", store.Err())
	if before == 0 {
		t.Fatal("nothing was confirmed before the fault: the test measured nothing")
	}
	if nackedAfter+closedAfter == 0 {
		t.Fatal("no publish after the fault was refused: the fault did not bite")
	}
	// The store is failed: shutdown cannot record a clean shutdown, and closing reports the failure.
	if err := b.stop(); err == nil || !errors.Is(err, storage.ErrFailed) {
		t.Errorf("shutdown on a failed store: %v, want the store's failure", err)
	}
	if err := store.Close(); err == nil {
		t.Error("closing a failed store returned nil")
	}

	// Restart on the healed file system: every message confirmed before the fault is there.
	fault.Off()
	store2, err := storage.OpenPebble(dir, storage.PebbleOptions{FS: mem})
	if err != nil {
		t.Fatalf("reopening after the fault: %v", err)
	}
	b2 := startOwnedBroker(t, store2)
	c := persistDial(t, b2.URL, false)
	got, _ := c.getAll(queue)
	have := map[string]bool{}
	for _, g := range got {
		have[g] = true
	}
	lost := 0
	for body := range confirmedBefore {
		if !have[body] {
			lost++
		}
	}
	t.Logf("after restart: %d messages, lost %d of the %d confirmed", len(got), lost, before)
	if lost > 0 {
		t.Errorf("%d confirmed messages lost", lost)
	}
}
