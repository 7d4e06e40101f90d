package server

import (
	"context"
	"sync"
	"testing"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// recordingQueue is a second queue type, as a new one is added: it implements queueImpl (here
// by wrapping the classic implementation) and counts the calls that reach it through the seam.
type recordingQueue struct {
	queueImpl
	mu    sync.Mutex
	calls map[string]int
}

func (r *recordingQueue) count(op string) {
	r.mu.Lock()
	r.calls[op]++
	r.mu.Unlock()
}

func (r *recordingQueue) called(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[op]
}

func (r *recordingQueue) publishFrom(msg *message, from publishSource, spare *qentry) (publishResult, *commitGroup, <-chan struct{}) {
	r.count("publishFrom")
	return r.queueImpl.publishFrom(msg, from, spare)
}

func (r *recordingQueue) addConsumer(s *subscription, onAdded func()) error {
	r.count("addConsumer")
	return r.queueImpl.addConsumer(s, onAdded)
}

func (r *recordingQueue) get(ackRequired bool) (*qentry, uint32) {
	r.count("get")
	return r.queueImpl.get(ackRequired)
}

func (r *recordingQueue) settle(es []*qentry) {
	r.count("settle")
	r.queueImpl.settle(es)
}

func (r *recordingQueue) info(un *unackedSums) QueueInfo {
	r.count("info")
	return r.queueImpl.info(un)
}

func (r *recordingQueue) markDeleted(ifUnused, ifEmpty bool) (uint32, []deliveryTarget, error) {
	r.count("markDeleted")
	return r.queueImpl.markDeleted(ifUnused, ifEmpty)
}

func (r *recordingQueue) recoverMessage(seq uint64, rec []byte, size int64, redelivered bool) error {
	r.count("recoverMessage")
	return r.queueImpl.recoverMessage(seq, rec, size, redelivered)
}

// A queue type is added by implementing queueImpl and adding a registry entry: declare, routing,
// publish, consume, get, settle, management, recovery and delete reach it through *queue, with
// nothing else changed.
func TestQueueTypeSeam(t *testing.T) {
	var made []*recordingQueue
	queueTypes["test-recording"] = &queueTypeDef{
		name: "test-recording", module: "rabbit_test_queue",
		check: func(*vhost, string, *amqp.QueueDeclare) error { return nil },
		make: func(m *queueMeta, lim queueLimits) queueImpl {
			r := &recordingQueue{queueImpl: newClassicQueue(m, lim), calls: map[string]int{}}
			made = append(made, r)
			return r
		},
	}
	t.Cleanup(func() { delete(queueTypes, "test-recording") })

	st := storage.NewMemStore()
	t.Cleanup(func() { st.Close() })
	s, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	v := s.vhost("/")
	args := amqp.Table{"x-queue-type": "test-recording"}
	q, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "rq", Durable: true, Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := q.queueImpl.(*recordingQueue)
	if !ok || len(made) != 1 || q.typ.name != "test-recording" {
		t.Fatalf("declared %T (type %q), made %d", q.queueImpl, q.typ.name, len(made))
	}

	ex := v.exchange("")
	var buf [8]*queue
	publish := func(persistent bool) {
		t.Helper()
		if qs, refused := v.publish(&fakeSource{}, ex, &message{routingKey: "rq", body: []byte("m"), persistent: persistent}, nil, nil, buf[:0]); len(qs) != 1 || qs[0] != q || refused {
			t.Fatalf("routed to %v (refused %v), want rq", qs, refused)
		}
	}
	publish(false)
	ct := &countingTarget{}
	ct.sub = subscription{tag: "c", target: ct, noAck: true}
	if err := q.addConsumer(&ct.sub, func() {}); err != nil {
		t.Fatal(err)
	}
	if ct.n != 1 {
		t.Fatalf("the consumer got %d messages, want 1", ct.n)
	}
	q.removeConsumer(&ct.sub)
	publish(false)
	e, _ := q.get(true)
	if e == nil {
		t.Fatal("get found nothing")
	}
	q.settle([]*qentry{e})
	if _, err := s.Queue("/", "rq"); err != nil {
		t.Fatal(err)
	}
	publish(true) // recovered below
	for op, want := range map[string]int{"publishFrom": 3, "addConsumer": 1, "get": 1, "settle": 1, "info": 1} {
		if got := r.called(op); got != want {
			t.Errorf("%s reached the type %d times, want %d", op, got, want)
		}
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Recovery makes the queue through the registry and hands it its stored message.
	s, err = New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	v = s.vhost("/")
	q, err = v.lookupQueue(nil, "rq")
	if err != nil {
		t.Fatal(err)
	}
	r, ok = q.queueImpl.(*recordingQueue)
	if !ok || len(made) != 2 {
		t.Fatalf("recovered %T, made %d", q.queueImpl, len(made))
	}
	if got := r.called("recoverMessage"); got != 1 {
		t.Errorf("recoverMessage reached the type %d times, want 1", got)
	}
	if e, _ := q.get(false); e == nil || string(e.msg.body) != "m" || e.redelivered {
		t.Fatalf("recovered entry %+v, want the persistent message, not redelivered", e)
	}
	if _, err := v.deleteQueue(q, false, false); err != nil {
		t.Fatal(err)
	}
	if got := r.called("markDeleted"); got != 1 {
		t.Errorf("markDeleted reached the type %d times, want 1", got)
	}
}
