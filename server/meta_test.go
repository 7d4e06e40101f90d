package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// gatedStore is a MemStore whose synced writes can be held (an fsync that takes as long as the
// test wants) or failed, and counted.
type gatedStore struct {
	*storage.MemStore
	synced atomic.Int64 // synced Applies that reached the store

	mu      sync.Mutex
	hold    chan struct{} // non-nil: a synced Apply signals entered, then waits for hold to close
	entered chan struct{}
	fail    error
}

func (s *gatedStore) Apply(b *storage.Batch, sync bool) error {
	if sync {
		s.synced.Add(1)
		s.mu.Lock()
		hold, entered, fail := s.hold, s.entered, s.fail
		s.mu.Unlock()
		if hold != nil {
			entered <- struct{}{}
			<-hold
		}
		if fail != nil {
			return fail
		}
	}
	return s.MemStore.Apply(b, sync)
}

// holdSyncs makes the next synced Applies wait; it returns the channel each signals on entering
// and the function (idempotent) that lets them, and later ones, through.
func (s *gatedStore) holdSyncs() (entered <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold, s.entered = make(chan struct{}), make(chan struct{}, 16)
	hold := s.hold
	var once sync.Once
	return s.entered, func() {
		once.Do(func() {
			s.mu.Lock()
			s.hold = nil
			s.mu.Unlock()
			close(hold)
		})
	}
}

func newMetaServer(t *testing.T) (*Server, *vhost, *gatedStore) {
	t.Helper()
	st := &gatedStore{MemStore: storage.NewMemStore()}
	s, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	v := s.vhost("/")
	if v == nil {
		t.Fatal("no default vhost")
	}
	return s, v, st
}

// within fails the test if fn has not returned after d: fn is expected to return at once (on the
// code before vhost.meta it blocked behind a metadata fsync). On failure it lets the held fsync
// through first, so that the broker can stop.
func within(t *testing.T, d time.Duration, what string, release func(), fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		release()
		<-done
		t.Fatalf("%s waited for a metadata fsync", what)
	}
}

// A durable declare, bind or delete waiting for its fsync holds no routing lock: publishes route
// (and lookups answer) meanwhile.
func TestMetaFsyncHoldsNoRoutingLock(t *testing.T) {
	_, v, st := newMetaServer(t)
	target, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "target"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.declareExchange(&amqp.ExchangeDeclare{Exchange: "dx", Type: "direct", Durable: true}); err != nil {
		t.Fatal(err)
	}
	dq, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "dq", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func() error
	}{
		{"declare exchange", func() error {
			return v.declareExchange(&amqp.ExchangeDeclare{Exchange: "dx2", Type: "fanout", Durable: true})
		}},
		{"declare queue", func() error {
			_, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "dq2", Durable: true})
			return err
		}},
		{"bind", func() error { return v.bind("dx", dq, "k", nil, nil) }},
		{"unbind", func() error { return v.unbind("dx", dq, "k", nil, nil) }},
		{"delete queue", func() error { _, err := v.deleteQueue(dq, false, false); return err }},
		{"delete exchange", func() error { return v.deleteExchange("dx", false) }},
	} {
		entered, release := st.holdSyncs()
		errc := make(chan error, 1)
		go func() { errc <- c.change() }()
		<-entered // the change is in its fsync
		within(t, 10*time.Second, c.name+": route", release, func() {
			got := v.route(v.exchange(""), "target", nil, &message{}, nil)
			if len(got) != 1 || got[0] != target {
				t.Errorf("%s: route = %v, want the target queue", c.name, got)
			}
		})
		within(t, 10*time.Second, c.name+": lookup", release, func() {
			if _, err := v.lookupQueue(nil, "target"); err != nil {
				t.Errorf("%s: lookup: %v", c.name, err)
			}
		})
		release()
		if err := <-errc; err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
}

// Declaring again with equal arguments and binding again write nothing.
func TestMetaIdempotentChangesWriteNothing(t *testing.T) {
	_, v, st := newMetaServer(t)
	topology := func() {
		t.Helper()
		if err := v.declareExchange(&amqp.ExchangeDeclare{Exchange: "work", Type: "topic", Durable: true}); err != nil {
			t.Fatal(err)
		}
		q, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "jobs", Durable: true, Arguments: amqp.Table{"x-max-length": int32(5)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.bind("work", q, "jobs.#", nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := v.bind("work", q, "x", amqp.Table{"a": "b"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	start := st.synced.Load()
	topology()
	first := st.synced.Load()
	if first-start != 4 {
		t.Fatalf("the first declaration made %d synced writes, want 4", first-start)
	}
	for range 3 {
		topology()
	}
	if n := st.synced.Load(); n != first {
		t.Fatalf("re-declaring the same topology made %d synced writes, want none", n-first)
	}
	// A different binding is a change.
	q, _ := v.lookupQueue(nil, "jobs")
	if err := v.bind("work", q, "x", amqp.Table{"a": "c"}, nil); err != nil {
		t.Fatal(err)
	}
	if n := st.synced.Load(); n != first+1 {
		t.Fatalf("a new binding made %d synced writes, want 1", n-first)
	}
}

// A failed store write leaves memory as it was and answers INTERNAL_ERROR.
func TestMetaFailedWriteChangesNothing(t *testing.T) {
	_, v, st := newMetaServer(t)
	if err := v.declareExchange(&amqp.ExchangeDeclare{Exchange: "dx", Type: "direct", Durable: true}); err != nil {
		t.Fatal(err)
	}
	q, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "dq", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.fail = errors.New("injected")
	st.mu.Unlock()
	internal := func(what string, err error) {
		t.Helper()
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.InternalError {
			t.Fatalf("%s: err = %v, want INTERNAL_ERROR", what, err)
		}
	}
	internal("declare exchange", v.declareExchange(&amqp.ExchangeDeclare{Exchange: "dx2", Type: "direct", Durable: true}))
	if v.exchange("dx2") != nil {
		t.Fatal("an exchange whose write failed is declared")
	}
	_, err = v.declareQueue(nil, &amqp.QueueDeclare{Queue: "dq2", Durable: true})
	internal("declare queue", err)
	if _, err := v.lookupQueue(nil, "dq2"); err == nil {
		t.Fatal("a queue whose write failed is declared")
	}
	internal("bind", v.bind("dx", q, "k", nil, nil))
	if got := v.route(v.exchange("dx"), "k", nil, &message{}, nil); len(got) != 0 {
		t.Fatalf("a binding whose write failed routes: %v", got)
	}
	// Transient entities need no write and still work.
	if _, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "tq"}); err != nil {
		t.Fatal(err)
	}
}

// Connections declaring, binding, unbinding and deleting the same durable names at once end with
// memory and the store agreeing.
func TestMetaConcurrentChangesAgreeWithStore(t *testing.T) {
	s, v, st := newMetaServer(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 300 {
				qn := fmt.Sprintf("q%d", r.IntN(3))
				xn := fmt.Sprintf("x%d", r.IntN(2))
				switch r.IntN(6) {
				case 0:
					v.declareExchange(&amqp.ExchangeDeclare{Exchange: xn, Type: "direct", Durable: true, AutoDelete: r.IntN(2) == 0})
				case 1:
					v.declareQueue(nil, &amqp.QueueDeclare{Queue: qn, Durable: true})
				case 2, 3:
					if q, err := v.lookupQueue(nil, qn); err == nil {
						if r.IntN(2) == 0 {
							v.bind(xn, q, "k", nil, nil)
						} else {
							v.unbind(xn, q, "k", nil, nil)
						}
					}
				case 4:
					if q, err := v.lookupQueue(nil, qn); err == nil {
						v.deleteQueue(q, false, false)
					}
				case 5:
					v.deleteExchange(xn, false)
				}
				v.route(v.exchange(""), qn, nil, &message{}, nil)
			}
		}()
	}
	wg.Wait()

	inMemory := map[string]bool{}
	qs, xs := v.lists()
	for _, q := range qs {
		inMemory["queue "+q.name] = true
	}
	for _, x := range xs {
		if x.durable && x.name != "" && !isAMQ(x.name) {
			inMemory["exchange "+x.name] = true
		}
		for _, b := range x.mu.router.Bindings() {
			inMemory[fmt.Sprintf("binding %s->%s %s", x.name, b.Dest.destName(), b.Key)] = true
		}
	}
	inStore := map[string]bool{}
	s.scanEntities(storage.QueuePrefix(), func(_ []byte, _, name string, _ amqp.Table) error {
		inStore["queue "+name] = true
		return nil
	})
	s.scanEntities(storage.ExchangePrefix(), func(_ []byte, _, name string, _ amqp.Table) error {
		inStore["exchange "+name] = true
		return nil
	})
	st.Scan(storage.BindingPrefix(), func(k, _ []byte) error {
		_, rest, _ := storage.ParseName(k[1:])
		src, rest, _ := storage.ParseName(rest)
		dst, rest, _ := storage.ParseName(rest[1:])
		key, _, _ := storage.ParseName(rest)
		inStore[fmt.Sprintf("binding %s->%s %s", src, dst, key)] = true
		return nil
	})
	for k := range inMemory {
		if !inStore[k] {
			t.Errorf("%s is in memory, not in the store", k)
		}
	}
	for k := range inStore {
		if !inMemory[k] {
			t.Errorf("%s is in the store, not in memory", k)
		}
	}
}

func isAMQ(name string) bool { return len(name) >= 4 && name[:4] == "amq." }
