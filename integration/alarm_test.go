package integration

import (
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// Below the free-disk limit, a publishing connection gets connection.blocked and its publishes wait;
// consumers go on; once space is back it gets connection.unblocked and the publish goes through.
func TestDiskAlarmBlocksPublishers(t *testing.T) {
	persistSkipExternal(t)
	var free atomic.Int64
	free.Store(1 << 40)
	b := startBroker(t, func(o *server.Options) {
		o.DiskFree = func() (uint64, error) { return uint64(free.Load()), nil }
		o.DiskFreeLimit = 1 << 30
		o.DiskCheckInterval = 2 * time.Millisecond
	})
	pub := persistDial(t, b.URL, true)
	blocked := pub.conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	if _, err := pub.ch.QueueDeclare("alarm.q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if n := pub.publish("alarm.q", amqp.Persistent, "before"); n != 1 {
		t.Fatal("publish before the alarm was not acked")
	}
	cons := persistDial(t, b.URL, false)

	free.Store(1 << 20)
	wait.For(t, 5*time.Second, "the disk alarm to be raised", func() bool { return len(b.Srv.Alarms()) > 0 })
	if err := pub.ch.Publish("", "alarm.q", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("during")}); err != nil {
		t.Fatal(err)
	}
	select {
	case bl := <-blocked:
		if !bl.Active || bl.Reason != "low on disk" {
			t.Fatalf("blocking = %+v", bl)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.blocked")
	}
	// A consumer still works while publishers are blocked; the blocked publish has not arrived.
	d, ok, err := cons.ch.Get("alarm.q", true)
	if err != nil || !ok || string(d.Body) != "before" {
		t.Fatalf("get during the alarm: %q ok=%v err=%v", d.Body, ok, err)
	}
	if _, ok, _ := cons.ch.Get("alarm.q", true); ok {
		t.Fatal("a publish went through while the connection was blocked")
	}
	select {
	case cf := <-pub.acks:
		t.Fatalf("confirm %+v while blocked", cf)
	default:
	}

	free.Store(1 << 40)
	select {
	case bl := <-blocked:
		if bl.Active {
			t.Fatalf("blocking = %+v, want unblocked", bl)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.unblocked")
	}
	select {
	case cf := <-pub.acks:
		if !cf.Ack {
			t.Fatal("the publish held by the alarm was nacked")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no confirm after the alarm cleared")
	}
	d, ok, err = cons.ch.Get("alarm.q", true)
	if err != nil || !ok || string(d.Body) != "during" {
		t.Fatalf("get after the alarm: %q ok=%v err=%v", d.Body, ok, err)
	}
}

// Shutdown does not wait for the disk alarm: a blocked publisher is closed with 320 at once.
func TestDiskAlarmShutdownWhileBlocked(t *testing.T) {
	persistSkipExternal(t)
	b := startBroker(t, func(o *server.Options) {
		o.DiskFree = func() (uint64, error) { return 0, nil }
		o.DiskCheckInterval = time.Millisecond
	})
	pub := persistDial(t, b.URL, false)
	blocked := pub.conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	closed := pub.conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := pub.ch.Publish("", "nowhere", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.blocked")
	}
	shutdown(t, b.Srv) // fails if the blocked connection held it past its deadline
	if e := <-closed; e == nil || e.Code != amqp.ConnectionForced {
		t.Fatalf("close = %v, want 320", e)
	}
}
