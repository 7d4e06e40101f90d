package warrentest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/warrentest"
)

// TestMain checks that the brokers the tests start leave no goroutine behind once their tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func dial(t *testing.T, url string) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func channel(t *testing.T, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// TestStart uses the broker as a user's test would: declare, publish with confirms, consume, ack.
func TestStart(t *testing.T) {
	url := warrentest.Start(t)
	if !strings.HasPrefix(url, "amqp://guest:guest@127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Fatalf("url = %q, want amqp://guest:guest@127.0.0.1:PORT/", url)
	}
	conn := dial(t, url)
	ch := channel(t, conn)
	if err := ch.ExchangeDeclare("orders", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("orders.eu", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "order.eu.*", "orders", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 10
	var confirms []*amqp.DeferredConfirmation
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "orders", "order.eu.created", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: fmt.Sprint(i), Body: []byte(fmt.Sprintf("order %d", i))})
		if err != nil {
			t.Fatal(err)
		}
		confirms = append(confirms, dc)
	}
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil || !ok {
			t.Fatalf("confirm %d: ack=%v err=%v", i, ok, err)
		}
	}
	msgs, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		select {
		case m := <-msgs:
			if want := fmt.Sprintf("order %d", i); string(m.Body) != want || m.RoutingKey != "order.eu.created" {
				t.Fatalf("message %d: body %q key %q, want %q", i, m.Body, m.RoutingKey, want)
			}
			if err := m.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("message %d not delivered", i)
		}
	}
}

// TestStartIsolated: every Start is a separate broker with its own state.
func TestStartIsolated(t *testing.T) {
	a, b := warrentest.Start(t), warrentest.Start(t)
	if a == b {
		t.Fatalf("two brokers share the URL %s", a)
	}
	cha := channel(t, dial(t, a))
	if _, err := cha.QueueDeclare("only-in-a", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	chb := channel(t, dial(t, b))
	_, err := chb.QueueDeclarePassive("only-in-a", false, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		t.Fatalf("passive declare on the other broker: %v, want 404", err)
	}
}

// TestStartCleanup: when the test that started a broker ends, its connections are closed with 320
// and the port no longer accepts connections.
func TestStartCleanup(t *testing.T) {
	var url string
	var closed chan *amqp.Error
	var conn *amqp.Connection
	t.Run("inner", func(t *testing.T) {
		url = warrentest.Start(t)
		var err error
		conn, err = amqp.Dial(url) // left open on purpose: the broker's shutdown closes it
		if err != nil {
			t.Fatal(err)
		}
		closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	})
	defer conn.Close()
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced {
			t.Fatalf("connection closed with %v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed when the broker's test ended")
	}
	if c, err := amqp.Dial(url); err == nil {
		c.Close()
		t.Fatalf("dial %s after the test ended: connected", url)
	}
}

const ordersDefs = `{
  "queues": [{"name": "incoming", "vhost": "orders", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 5}}],
  "exchanges": [{"name": "orders.in", "vhost": "orders", "type": "fanout", "durable": true}],
  "bindings": [{"source": "orders.in", "vhost": "orders", "destination": "incoming", "destination_type": "queue", "routing_key": ""}]
}`

// TestStartOptions: a user with a vhost and permissions logs in; definitions given at start
// created a queue; the management API answers.
func TestStartOptions(t *testing.T) {
	b := warrentest.StartBroker(t,
		warrentest.WithUser("app", "s3cret"),
		warrentest.WithUser("reader", "r"),
		warrentest.WithVhost("orders"),
		warrentest.WithDefinitions([]byte(ordersDefs)),
		warrentest.WithPermission("app", "orders", ".*", ".*", ".*"),
		warrentest.WithPermission("reader", "orders", "", "", ".*"),
		warrentest.WithManagement(),
	)
	appURL := b.URL("app", "s3cret", "orders")
	if want := "amqp://app:s3cret@" + b.Addr() + "/orders"; appURL != want {
		t.Fatalf("URL = %q, want %q", appURL, want)
	}
	ch := channel(t, dial(t, appURL))
	q, err := ch.QueueDeclarePassive("incoming", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("the queue of the definitions: %v", err)
	}
	if q.Messages != 0 {
		t.Fatalf("incoming has %d messages", q.Messages)
	}
	if err := ch.Publish("orders.in", "", false, false, amqp.Publishing{Body: []byte("o-1")}); err != nil {
		t.Fatal(err)
	}
	// The reader may read but not write.
	rch := channel(t, dial(t, b.URL("reader", "r", "orders")))
	var m amqp.Delivery
	for ok := false; !ok; {
		if m, ok, err = rch.Get("incoming", true); err != nil {
			t.Fatalf("get as reader: %v", err)
		}
	}
	if string(m.Body) != "o-1" {
		t.Fatalf("got %q, want o-1 (routed by the definitions' binding)", m.Body)
	}
	chClosed := rch.NotifyClose(make(chan *amqp.Error, 1))
	if err := rch.Publish("orders.in", "", false, false, amqp.Publishing{Body: []byte("no")}); err != nil {
		t.Fatal(err)
	}
	select { // the refusal closes the channel
	case e := <-chClosed:
		if e == nil || e.Code != amqp.AccessRefused {
			t.Fatalf("publish as reader: channel closed with %v, want 403", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("publish as reader: the channel stayed open")
	}
	// A wrong password and a vhost without permission are refused.
	if c, err := amqp.Dial(b.URL("app", "wrong", "orders")); err == nil {
		c.Close()
		t.Fatal("dial with a wrong password succeeded")
	}
	if c, err := amqp.Dial(b.URL("app", "s3cret", "/")); err == nil {
		c.Close()
		t.Fatal("dial into / without a permission succeeded")
	}
	// guest created the vhost, so it has every permission there, as in RabbitMQ.
	dial(t, b.URL("guest", "guest", "orders")).Close()

	// The management API.
	if !strings.HasPrefix(b.HTTPURL(), "http://127.0.0.1:") {
		t.Fatalf("HTTPURL = %q", b.HTTPURL())
	}
	req, _ := http.NewRequest(http.MethodGet, b.HTTPURL()+"/api/queues/orders/incoming", nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var qi struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&qi); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET queue: %d %v", resp.StatusCode, err)
	}
	if qi.Name != "incoming" || qi.Arguments["x-max-length"] != float64(5) {
		t.Fatalf("queue over HTTP: %+v", qi)
	}
	if b.Server() == nil {
		t.Fatal("Server() is nil")
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestWithServerOptions: server options reach the broker (here the frame_max it offers).
func TestWithServerOptions(t *testing.T) {
	url := warrentest.Start(t, warrentest.WithServerOptions(func(o *server.Options) { o.FrameMax = 8192 }))
	conn := dial(t, url)
	if conn.Config.FrameSize != 8192 {
		t.Fatalf("negotiated frame size %d, want 8192", conn.Config.FrameSize)
	}
}

// fakeTB records what Start does with a testing.TB: Fatal ends the calling goroutine as
// testing.T's does, and cleanups run when run returns.
type fakeTB struct {
	testing.TB // nil: a method Start should not call panics
	mu         sync.Mutex
	fatal      string
	errs       []string
	cleanups   []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// run calls body in a goroutine of its own (so Fatal can end it), then the cleanups, last first.
func (f *fakeTB) run(body func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
}

// TestStartFailsOnBadOptions: a bad option fails the test with a message that says what was wrong,
// and leaves nothing running (TestMain's goleak check covers the goroutines).
func TestStartFailsOnBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opts []warrentest.Option
		want string
	}{
		{"definitions not JSON", []warrentest.Option{warrentest.WithDefinitions([]byte(`{"queues": [`))}, "failed_to_parse_json"},
		{"definitions with a missing vhost", []warrentest.Option{warrentest.WithDefinitions([]byte(`{"queues": [{"name": "q", "vhost": "nope"}]}`))}, "no_such_vhost"},
		{"definitions with a bad queue argument", []warrentest.Option{warrentest.WithDefinitions([]byte(`{"queues": [{"name": "q", "vhost": "/", "arguments": {"x-max-length": "ten"}}]}`))}, "x-max-length"},
		{"permission of an unknown user", []warrentest.Option{warrentest.WithPermission("ghost", "/", ".*", ".*", ".*")}, `no user "ghost"`},
		{"permission in an unknown vhost", []warrentest.Option{warrentest.WithPermission("guest", "nope", ".*", ".*", ".*")}, `no vhost "nope"`},
		{"permission with a bad pattern", []warrentest.Option{warrentest.WithPermission("guest", "/", "(", ".*", ".*")}, `WithPermission("guest", "/")`},
		{"user without a name", []warrentest.Option{warrentest.WithUser("", "pw")}, `WithUser("")`},
		{"bad server option", []warrentest.Option{warrentest.WithServerOptions(func(o *server.Options) { o.FrameMax = 100 })}, "frame max 100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{}
			returned := false
			f.run(func(tb testing.TB) {
				warrentest.Start(tb, tc.opts...)
				returned = true
			})
			if returned {
				t.Fatal("Start returned instead of failing the test")
			}
			if !strings.Contains(f.fatal, tc.want) || !strings.HasPrefix(f.fatal, "warrentest: ") {
				t.Fatalf("Fatal(%q), want a message with %q", f.fatal, tc.want)
			}
			if len(f.errs) > 0 {
				t.Fatalf("Errorf during cleanup: %q", f.errs)
			}
			t.Logf("fails with: %s", f.fatal)
		})
	}
}

// TestStartGood: with a fake TB, a good start neither fails nor errors, and its cleanup stops the
// broker (the counterpart of TestStartFailsOnBadOptions, so that test's checks can fail).
func TestStartGood(t *testing.T) {
	f := &fakeTB{}
	var url string
	f.run(func(tb testing.TB) {
		url = warrentest.Start(tb, warrentest.WithVhost("v"), warrentest.WithManagement())
	})
	if f.fatal != "" || len(f.errs) > 0 || url == "" {
		t.Fatalf("fatal %q, errors %q, url %q", f.fatal, f.errs, url)
	}
	if c, err := amqp.Dial(url); err == nil {
		c.Close()
		t.Fatal("the broker still accepts connections after its cleanup")
	}
}

// BenchmarkStart measures starting a broker (Start's work until it returns the URL); the
// shutdown in the cleanup is not timed. BenchmarkStart/management adds the HTTP API.
func BenchmarkStart(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []warrentest.Option
	}{
		{"amqp", nil},
		{"management", []warrentest.Option{warrentest.WithManagement()}},
		{"definitions", []warrentest.Option{warrentest.WithVhost("orders"), warrentest.WithDefinitions([]byte(ordersDefs))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				f := &fakeTB{}
				done := make(chan struct{})
				go func() {
					defer close(done)
					warrentest.Start(f, bc.opts...)
				}()
				<-done
				b.StopTimer()
				f.run(func(testing.TB) {})
				if f.fatal != "" || len(f.errs) > 0 {
					b.Fatalf("fatal %q, errors %q", f.fatal, f.errs)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkStartStop measures a whole test's broker: start, then the cleanup's shutdown.
func BenchmarkStartStop(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		f := &fakeTB{}
		f.run(func(tb testing.TB) { warrentest.Start(tb) })
		if f.fatal != "" || len(f.errs) > 0 {
			b.Fatalf("fatal %q, errors %q", f.fatal, f.errs)
		}
	}
}

// TestNewClose: New starts a broker outside a test; Close stops it, and a second Close is a no-op.
func TestNewClose(t *testing.T) {
	b, err := warrentest.New(warrentest.WithManagement())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(b.AMQPURL())
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if e := <-closed; e == nil || e.Code != amqp.ConnectionForced {
		t.Fatalf("the client's connection closed with %v, want 320", e)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if resp, err := http.Get(b.HTTPURL() + "/api/overview"); err == nil {
		resp.Body.Close()
		t.Fatal("the management API still answers after Close")
	}
	if _, err := warrentest.New(warrentest.WithVhost("")); err == nil || !strings.Contains(err.Error(), `WithVhost("")`) {
		t.Fatalf("New with a bad option: %v", err)
	}
}

// A test broker runs shovels as cmd/warren does: one in the definitions moves messages, and
// the management API reports it.
func TestShovelInDefinitions(t *testing.T) {
	defs := `{"parameters":[{"component":"shovel","vhost":"/","name":"mv","value":{"src-uri":"amqp://","src-queue":"in","dest-uri":"amqp://","dest-queue":"out"}}]}`
	b := warrentest.StartBroker(t, warrentest.WithDefinitions([]byte(defs)), warrentest.WithManagement())
	wait.For(t, 10*time.Second, "the shovel's queues declared", func() bool {
		_, errIn := b.Server().Queue("/", "in")
		_, errOut := b.Server().Queue("/", "out")
		return errIn == nil && errOut == nil
	})
	ch := channel(t, dial(t, b.AMQPURL()))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirm("", "in", false, false, amqp.Publishing{Body: []byte("x")})
	if err != nil || !dc.Wait() {
		t.Fatalf("publish: %v", err)
	}
	wait.For(t, 10*time.Second, "the message at the shovel's destination", func() bool {
		q, err := b.Server().Queue("/", "out")
		return err == nil && q.Ready == 1
	})
	if m, ok, err := ch.Get("out", true); err != nil || !ok || string(m.Body) != "x" {
		t.Fatalf("moved %q %v %v", m.Body, ok, err)
	}
	req, _ := http.NewRequest(http.MethodGet, b.HTTPURL()+"/api/shovels", nil)
	req.SetBasicAuth("guest", "guest")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st []map[string]any
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil || len(st) != 1 || st[0]["name"] != "mv" || st[0]["state"] != "running" {
		t.Fatalf("/api/shovels: %v %v", st, err)
	}
}
