package shovel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The validation texts are RabbitMQ 3.10.8's, captured from PUT /api/parameters/shovel/ptest/v
// with rabbitmq_shovel enabled (src-protocol amqp10 excepted: Warren builds amqp091 only).
func TestValidate(t *testing.T) {
	const base = `"src-uri":"amqp://","dest-uri":"amqp://"`
	for _, x := range []struct{ value, reason string }{
		{`{` + base + `,"src-queue":"a","src-exchange":"x"}`, "Cannot specify 'src-exchange' and 'src-queue'\n"},
		{`{` + base + `,"src-queue":"a","dest-queue":"b","dest-exchange":"x"}`, "Cannot specify 'dest-exchange' and 'dest-queue'\n"},
		{`{` + base + `,"src-queue":"a","ack-mode":"foo"}`, `ack-mode should be one of [&lt;&lt;"no-ack"&gt;&gt;,&lt;&lt;"on-publish"&gt;&gt;,&lt;&lt;"on-confirm"&gt;&gt;], actually was &lt;&lt;"foo"&gt;&gt;` + "\n"},
		{`{` + base + `,"src-queue":"a","ack-mode":5}`, "ack-mode should be binary, actually was 5\n"},
		{`{` + base + `,"src-queue":"a","src-delete-after":"x"}`, `src-delete-after should be a number greater than or equal to 0, "never" or "queue-length", actually was &lt;&lt;"x"&gt;&gt;` + "\n"},
		{`{` + base + `,"src-queue":"a","src-delete-after":5,"ack-mode":"no-ack"}`, "Cannot specify 'no-ack' and numerical 'delete-after'\n"},
		{`{` + base + `,"src-queue":"a","reconnect-delay":"x"}`, `reconnect-delay should be a number, actually was &lt;&lt;"x"&gt;&gt;` + "\n"},
		{`{` + base + `,"src-queue":"a","prefetch-count":"x","src-prefetch-count":true}`, "src-prefetch-count should be a number, actually was true\nprefetch-count should be a number, actually was &lt;&lt;\"x\"&gt;&gt;\n"},
		{`{` + base + `,"src-queue":5,"dest-queue":6}`, "dest-queue should be binary, actually was 6\nsrc-queue should be binary, actually was 5\n"},
		{`{` + base + `,"src-queue":"a","add-forward-headers":"x","dest-add-timestamp-header":1}`, "dest-add-timestamp-header should be boolean, actually was 1\nadd-forward-headers should be boolean, actually was &lt;&lt;\"x\"&gt;&gt;\n"},
		{`{"src-uri":"foo://x","dest-uri":["amqp://",5],"src-queue":"a"}`, "dest-uri should be list, actually was 5\n\"foo://x\" not a valid URI: {{unexpected_uri_scheme,\"foo\"},\"foo://x\"}\n"},
		{`{"src-uri":5,"dest-uri":[],"src-queue":"a"}`, "src-uri should be list, actually was 5\n"},
		{`{` + base + `,"src-queue":"a","src-consumer-args":{"x-priority":"a","zz":1}}`, "Unrecognised terms [{&lt;&lt;\"zz\"&gt;&gt;,1}] in src-consumer-args\n"},
		{`{` + base + `,"src-queue":"a","dest-publish-properties":{"delivery_mode":"x","foo":1}}`, "Unrecognised terms [{&lt;&lt;\"foo\"&gt;&gt;,1}] in dest-publish-properties\ndelivery_mode should be a number, actually was &lt;&lt;\"x\"&gt;&gt;\n"},
		{`{` + base + `,"src-queue":"a","dest-publish-properties":5}`, "dest-publish-properties not a list 5\n"},
		{`{` + base + `,"src-exchange":"a","src-exchange-key":5,"dest-exchange-key":null}`, "dest-exchange-key should be binary, actually was null\nsrc-exchange-key should be binary, actually was 5\n"},
		{`[1,2]`, "Must specify 'src-exchange' or 'src-queue'\nUnrecognised terms [1,2] in v\nKey \"dest-uri\" not found in v\nKey \"src-uri\" not found in v\n"},
		{`{}`, "Must specify 'src-exchange' or 'src-queue'\nKey \"dest-uri\" not found in v\nKey \"src-uri\" not found in v\n"},
		{`{"max-queues":3}`, "Must specify 'src-exchange' or 'src-queue'\nUnrecognised terms [{&lt;&lt;\"max-queues\"&gt;&gt;,3}] in v\nKey \"dest-uri\" not found in v\nKey \"src-uri\" not found in v\n"},
		// Warren's one difference: amqp091 only.
		{`{` + base + `,"src-protocol":"amqp10","src-queue":"a"}`, "src-protocol should be one of [&lt;&lt;\"amqp091\"&gt;&gt;], actually was &lt;&lt;\"amqp10\"&gt;&gt;\n"},
	} {
		err := validate("v", decode(t, x.value), nil)
		var bre *server.BadRequestError
		if !errors.As(err, &bre) || bre.Reason != "Validation failed\n\n"+x.reason {
			t.Errorf("%s:\n got  %v\n want %q", x.value, err, x.reason)
		}
	}
	for _, ok := range []string{
		`{` + base + `,"src-queue":"a","dest-queue":"b"}`,
		`{"src-uri":["amqp://u:p@h:5672/v?heartbeat=5","amqps://h"],"dest-uri":"amqp:///v","src-exchange":"x","src-exchange-key":"k","dest-exchange":"y","ack-mode":"on-publish","src-delete-after":"queue-length","src-prefetch-count":10,"reconnect-delay":2.5,"add-forward-headers":true,"dest-add-timestamp-header":true,"dest-publish-properties":{"delivery_mode":2},"src-consumer-args":{"x-priority":1}}`,
	} {
		if err := validate("v", decode(t, ok), nil); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:secret@localhost:5672/ptest?heartbeat=5": "amqp://localhost:5672/ptest",
		"amqp:///ptest": "amqp:///ptest",
		"amqp://":       "amqp://",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// broker is a test broker with its shovel engine (closed before the broker stops).
type broker struct {
	*testbroker.Broker
	eng *Engine
}

func startBroker(t *testing.T, store storage.Store) *broker {
	t.Helper()
	b := testbroker.Start(t, func(o *server.Options) {
		if store != nil {
			o.Store = store
		}
	})
	e := New(b.Srv, Options{Logger: testbroker.Logger(t)})
	t.Cleanup(e.Close) // runs before the broker's cleanup
	return &broker{Broker: b, eng: e}
}

func (b *broker) stop(t *testing.T) {
	t.Helper()
	b.eng.Close()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
}

func (b *broker) putShovel(t *testing.T, vhost, name, def string) {
	t.Helper()
	if _, err := b.Srv.PutParameter(server.Parameter{Component: Component, Vhost: vhost, Name: name, Value: decode(t, def)}); err != nil {
		t.Fatal(err)
	}
}

func (b *broker) state(name string) Status {
	for _, s := range b.eng.Statuses() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

func dial(t *testing.T, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return c, ch
}

func publishConfirmed(t *testing.T, ch *amqp.Channel, queue string, from, n int, headers amqp.Table) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Headers: headers, Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatalf("publish %d nacked", i)
		}
	}
}

func queueLen(t *testing.T, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// A shovel from a queue on one broker to a queue on another (the source remote, the destination
// this broker's direct connection) moves every message in order with its properties, reports
// running with RabbitMQ's redacted URIs, adds the forward headers, and stops when deleted.
func TestShovelMovesBetweenBrokers(t *testing.T) {
	a := startBroker(t, nil)
	b := startBroker(t, nil)
	_, cha := dial(t, a.URL)
	if _, err := cha.QueueDeclare("src", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, cha, "src", 0, 500, amqp.Table{"h": "v"})
	b.putShovel(t, "/", "mv", fmt.Sprintf(`{"src-uri":%q,"src-queue":"src","dest-uri":"amqp://","dest-queue":"dst","add-forward-headers":true,"src-prefetch-count":50}`, a.URL+"?heartbeat=5"))
	_, chb := dial(t, b.URL)
	if !wait.Until(10*time.Second, 5*time.Millisecond, func() bool {
		q, err := b.Srv.Queue("/", "dst")
		return err == nil && q.Ready == 500
	}) {
		sq, _ := a.Srv.Queue("/", "src")
		dq, _ := b.Srv.Queue("/", "dst")
		t.Fatalf("500 messages not at the destination after 10s: source ready %d unacked %d consumers %d; destination ready %d; status %+v",
			sq.Ready, sq.Unacked, sq.Consumers, dq.Ready, b.eng.Statuses())
	}
	st := b.state("mv")
	if st.State != StateRunning || st.SrcURI != "amqp://"+a.Addr+"/" || st.DestURI != "amqp://" || st.SrcQueue != "src" || st.DestQueue != "dst" {
		t.Errorf("status %+v", st)
	}
	if n := queueLen(t, cha, "src"); n != 0 {
		t.Errorf("%d messages left at the source", n)
	}
	for i := range 500 {
		d, ok, err := chb.Get("dst", true)
		if err != nil || !ok {
			t.Fatalf("get %d: %v %v", i, ok, err)
		}
		if string(d.Body) != strconv.Itoa(i) || d.Headers["h"] != "v" || d.DeliveryMode != amqp.Persistent {
			t.Fatalf("message %d: %q %v mode %d", i, d.Body, d.Headers, d.DeliveryMode)
		}
		fw, _ := d.Headers["x-shovelled"].([]any)
		if len(fw) != 1 || fw[0].(amqp.Table)["shovel-name"] != "mv" || fw[0].(amqp.Table)["src-queue"] != "src" {
			t.Fatalf("forward headers %v", d.Headers["x-shovelled"])
		}
	}
	if err := b.Srv.DeleteParameter(Component, "/", "mv"); err != nil {
		t.Fatal(err)
	}
	if len(b.eng.Statuses()) != 0 {
		t.Errorf("statuses after delete: %v", b.eng.Statuses())
	}
	// Its connections are closed (the source requeues what it had delivered, asynchronously):
	// a message published now stays at the source.
	publishConfirmed(t, cha, "src", 500, 1, nil)
	wait.For(t, 10*time.Second, "the message published after the delete left at the source", func() bool {
		q, err := a.Srv.Queue("/", "src")
		return err == nil && q.Ready == 1 && q.Consumers == 0
	})
	if q, _ := b.Srv.Queue("/", "dst"); q.Ready != 0 {
		t.Errorf("%d messages reached the destination after the delete", q.Ready)
	}
}

// src-delete-after queue-length moves the messages present at start, then the shovel deletes
// itself, as RabbitMQ's does; an exchange source with a key and an exchange destination route
// as asked.
func TestShovelDeleteAfterAndExchanges(t *testing.T) {
	a := startBroker(t, nil)
	_, ch := dial(t, a.URL)
	if _, err := ch.QueueDeclare("da.src", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, ch, "da.src", 0, 30, nil)
	a.putShovel(t, "/", "once", `{"src-uri":"amqp://","src-queue":"da.src","dest-uri":"amqp://","dest-queue":"da.dst","src-delete-after":"queue-length","src-prefetch-count":7}`)
	wait.For(t, 10*time.Second, "the completed shovel deleted", func() bool {
		_, err := a.Srv.Parameter(Component, "/", "once")
		return errors.Is(err, server.ErrNotFound) && len(a.eng.Statuses()) == 0
	})
	if n, m := queueLen(t, ch, "da.src"), queueLen(t, ch, "da.dst"); n != 0 || m != 30 {
		t.Errorf("after queue-length: %d at the source, %d at the destination; want 0, 30", n, m)
	}

	// Numeric delete-after: exactly 5 of 30 move.
	a.putShovel(t, "/", "five", `{"src-uri":"amqp://","src-queue":"da.dst","dest-uri":"amqp://","dest-queue":"da.five","src-delete-after":5}`)
	wait.For(t, 10*time.Second, "the 5-message shovel deleted", func() bool { return len(a.eng.Statuses()) == 0 })
	if n, m := queueLen(t, ch, "da.dst"), queueLen(t, ch, "da.five"); n != 25 || m != 5 {
		t.Errorf("after delete-after 5: %d left, %d moved; want 25, 5", n, m)
	}

	// Exchange to exchange: amq.direct key k -> amq.topic key out.k, bound to a queue.
	if _, err := ch.QueueDeclare("ex.dst", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("ex.dst", "out.k", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	a.putShovel(t, "/", "ex", `{"src-uri":"amqp://","src-exchange":"amq.direct","src-exchange-key":"k","dest-uri":"amqp://","dest-exchange":"amq.topic","dest-exchange-key":"out.k","ack-mode":"on-publish"}`)
	wait.For(t, 10*time.Second, "the exchange shovel running", func() bool { return a.state("ex").State == StateRunning })
	for _, k := range []string{"k", "other", "k"} {
		if err := ch.Publish("amq.direct", k, false, false, amqp.Publishing{Body: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, 10*time.Second, "2 messages through the exchanges", func() bool { return queueLen(t, ch, "ex.dst") == 2 })
	if st := a.state("ex"); st.SrcExchange != "amq.direct" || st.SrcExchangeKey != "k" || st.DestExchange != "amq.topic" || st.DestExchangeKey != "out.k" {
		t.Errorf("status %+v", st)
	}
}

// A shovel is a definition: after a restart of its broker it runs again (c in issue 15).
func TestShovelSurvivesRestart(t *testing.T) {
	store := storage.NewMemStore()
	a := startBroker(t, store)
	a.putShovel(t, "/", "keep", `{"src-uri":"amqp://","src-queue":"rs.src","dest-uri":"amqp://","dest-queue":"rs.dst"}`)
	wait.For(t, 10*time.Second, "the shovel running", func() bool { return a.state("keep").State == StateRunning })
	a.stop(t)

	a2 := startBroker(t, store.Reopen())
	wait.For(t, 10*time.Second, "the shovel running after the restart", func() bool { return a2.state("keep").State == StateRunning })
	_, ch := dial(t, a2.URL)
	publishConfirmed(t, ch, "rs.src", 0, 20, nil)
	wait.For(t, 10*time.Second, "20 messages moved after the restart", func() bool { return queueLen(t, ch, "rs.dst") == 20 })
}

// A shovel whose destination is down keeps restarting (state starting) and runs once it is
// back; reconnect-delay 0 leaves a failed shovel terminated with its reason; restart starts it
// again.
func TestShovelRestarts(t *testing.T) {
	a := startBroker(t, nil)
	a.putShovel(t, "/", "nodest", `{"src-uri":"amqp://","src-queue":"r.src","dest-uri":"amqp:///nope","dest-queue":"r.dst","reconnect-delay":0.05}`)
	wait.For(t, 10*time.Second, "a few failed attempts", func() bool { return a.state("nodest").State == StateStarting })
	if _, err := a.Srv.PutVhost(server.VhostInfo{Name: "nope"}, ""); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the shovel running once its vhost exists", func() bool { return a.state("nodest").State == StateRunning })

	a.putShovel(t, "/", "once", `{"src-uri":"amqp://","src-queue":"r.src2","dest-uri":"amqp:///absent","dest-queue":"r.dst","reconnect-delay":0}`)
	wait.For(t, 10*time.Second, "terminated", func() bool { return a.state("once").State == StateTerminated })
	if r := a.state("once").Reason; r == "" {
		t.Error("no reason for the terminated shovel")
	}
	if _, err := a.Srv.PutVhost(server.VhostInfo{Name: "absent"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := a.eng.Restart("/", "once"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "running after restart", func() bool { return a.state("once").State == StateRunning })
	if err := a.eng.Restart("/", "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("restart of a missing shovel: %v", err)
	}
	// Deleting the vhost stops and removes its shovels.
	if _, err := a.Srv.PutVhost(server.VhostInfo{Name: "sv"}, ""); err != nil {
		t.Fatal(err)
	}
	a.putShovel(t, "sv", "inv", `{"src-uri":"amqp:///sv","src-queue":"q1","dest-uri":"amqp:///sv","dest-queue":"q2"}`)
	wait.For(t, 10*time.Second, "running in sv", func() bool { return a.state("inv").State == StateRunning })
	if err := a.Srv.DeleteVhost("sv"); err != nil {
		t.Fatal(err)
	}
	if st := a.state("inv"); st.Name != "" {
		t.Errorf("shovel of a deleted vhost still there: %+v", st)
	}
}

// ack-mode on-confirm acks at the source only what the destination confirmed: a destination
// that refuses messages (x-overflow reject-publish nacks them) leaves them at the source, where
// on-publish, the control, loses them.
func TestShovelOnConfirmKeepsRefusedMessages(t *testing.T) {
	for _, x := range []struct {
		mode      string
		leftAtSrc int
	}{{"on-confirm", 15}, {"on-publish", 0}} {
		t.Run(x.mode, func(t *testing.T) {
			a := startBroker(t, nil)
			_, ch := dial(t, a.URL)
			if _, err := ch.QueueDeclare("oc.src", true, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := ch.QueueDeclare("oc.full", true, false, false, false, amqp.Table{"x-max-length": int64(5), "x-overflow": "reject-publish"}); err != nil {
				t.Fatal(err)
			}
			publishConfirmed(t, ch, "oc.src", 0, 20, nil)
			a.putShovel(t, "/", "oc", `{"src-uri":"amqp://","src-queue":"oc.src","dest-uri":"amqp://","dest-queue":"oc.full","ack-mode":"`+x.mode+`","src-prefetch-count":4}`)
			wait.For(t, 10*time.Second, "5 messages at the destination and the rest handled", func() bool {
				d, _ := a.Srv.Queue("/", "oc.full")
				s, _ := a.Srv.Queue("/", "oc.src")
				return d.Ready == 5 && s.Ready+s.Unacked == int64(x.leftAtSrc)
			})
			if err := a.Srv.DeleteParameter(Component, "/", "oc"); err != nil {
				t.Fatal(err)
			}
			wait.For(t, 10*time.Second, "the source settled", func() bool {
				s, _ := a.Srv.Queue("/", "oc.src")
				return s.Consumers == 0 && s.Unacked == 0
			})
			if s, _ := a.Srv.Queue("/", "oc.src"); s.Ready != int64(x.leftAtSrc) {
				t.Errorf("%s: %d left at the source, want %d", x.mode, s.Ready, x.leftAtSrc)
			}
		})
	}
}
