package integration

import (
	"slices"
	"strconv"
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

// The memory alarm (issue 15), with the broker's memory figure set by the test: above the limit,
// queues page out the messages they hold in memory that were never delivered (the newest ones,
// behind any redelivered one) and a publisher is blocked with "low on memory", or with RabbitMQ's
// "low on disk & memory" when both alarms are on; it is unblocked only once both clear.
// Consumers go on during the alarm, reading paged messages back in small pages. Afterwards every
// message comes back in order, once, the requeued and unacknowledged ones included.
func TestMemoryAlarmPagesOutAndBlocks(t *testing.T) {
	persistSkipExternal(t)
	var used, free atomic.Int64
	free.Store(1 << 40)
	b := startBroker(t, func(o *server.Options) {
		o.MemoryUsed = func() (uint64, error) { return uint64(used.Load()), nil }
		o.MemoryLimit = 1 << 30
		o.MemoryCheckInterval = 2 * time.Millisecond
		o.DiskFree = func() (uint64, error) { return uint64(free.Load()), nil }
		o.DiskFreeLimit = 1 << 30
		o.DiskCheckInterval = 2 * time.Millisecond
	})
	pub := persistDial(t, b.URL, true)
	blocked := pub.conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	if _, err := pub.ch.QueueDeclare("mem.t", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.ch.QueueDeclare("mem.d", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for i := range 300 {
		bodies = append(bodies, strconv.Itoa(i))
	}
	if n := pub.publish("mem.t", amqp.Transient, bodies...); n != 300 {
		t.Fatalf("%d of 300 confirmed", n)
	}
	for i, body := range bodies[:200] {
		mode := amqp.Persistent
		if i%2 == 1 {
			mode = amqp.Transient
		}
		if n := pub.publish("mem.d", mode, body); n != 1 {
			t.Fatal("publish to mem.d not confirmed")
		}
	}
	// mem.t: 0-4 delivered and requeued, 5-9 delivered and held unacked.
	cons := persistDial(t, b.URL, false)
	var gotten []amqp.Delivery
	for range 10 {
		d, ok, err := cons.ch.Get("mem.t", false)
		if err != nil || !ok {
			t.Fatalf("get: ok=%v err=%v", ok, err)
		}
		gotten = append(gotten, d)
	}
	for _, d := range gotten[:5] {
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
	}
	paged := func(q string) int64 {
		qi, err := b.Srv.Queue("/", q)
		if err != nil {
			t.Fatal(err)
		}
		return qi.PagedOut
	}
	if paged("mem.t") != 0 || paged("mem.d") != 0 {
		t.Fatal("messages paged out before the alarm")
	}

	used.Store(2 << 30)
	free.Store(1 << 20)
	wait.For(t, 5*time.Second, "both alarms", func() bool { return len(b.Srv.Alarms()) == 2 })
	if a := b.Srv.Alarms(); a[0] != "disk" || a[1] != "memory" {
		t.Fatalf("alarms %v", a)
	}
	// Everything but the redelivered head (0-4) is paged out; mem.d's persistent messages were in
	// the store already, its transient ones are written there.
	wait.For(t, 5*time.Second, "the queues to page out", func() bool { return paged("mem.t") == 290 && paged("mem.d") == 200 })
	if err := pub.ch.Publish("", "mem.t", false, false, amqp.Publishing{Body: []byte("300")}); err != nil {
		t.Fatal(err)
	}
	select {
	case bl := <-blocked:
		if !bl.Active || bl.Reason != "low on disk & memory" {
			t.Fatalf("blocking = %+v", bl)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no connection.blocked")
	}
	// A consumer goes on: the redelivered head, then paged messages read back.
	var order []string
	for range 8 {
		d, ok, err := cons.ch.Get("mem.t", true)
		if err != nil || !ok {
			t.Fatalf("get during the alarm: ok=%v err=%v", ok, err)
		}
		order = append(order, string(d.Body))
	}
	if qi, _ := b.Srv.Queue("/", "mem.t"); qi.Ready-qi.PagedOut > 64 {
		t.Errorf("%d messages read back into memory during the alarm, more than the page of 64", qi.Ready-qi.PagedOut)
	}

	used.Store(1 << 20)
	wait.For(t, 5*time.Second, "the memory alarm to clear", func() bool { return len(b.Srv.Alarms()) == 1 })
	select {
	case bl := <-blocked:
		t.Fatalf("%+v while the disk alarm is still on", bl)
	case cf := <-pub.acks:
		t.Fatalf("confirm %+v while the disk alarm is still on", cf)
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
	if cf := <-pub.acks; !cf.Ack {
		t.Fatal("the publish held by the alarms was nacked")
	}
	for _, d := range gotten[5:] {
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
	}
	drain := func(q string) []string {
		var out []string
		for {
			d, ok, err := cons.ch.Get(q, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return out
			}
			out = append(out, string(d.Body))
		}
	}
	order = append(order, drain("mem.t")...)
	// 0-7 in the alarm; 5-9 came back to their places when requeued after it.
	want := []string{"0", "1", "2", "3", "4", "10", "11", "12", "5", "6", "7", "8", "9"}
	for i := 13; i <= 300; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if !slices.Equal(order, want) {
		t.Errorf("mem.t delivered\n %v\nwant\n %v", order, want)
	}
	if got := drain("mem.d"); !slices.Equal(got, bodies[:200]) {
		t.Errorf("mem.d delivered %v", got)
	}
}
