// Package streamclient drives the stream protocol front end with RabbitMQ's Go stream client
// (github.com/rabbitmq/rabbitmq-stream-go-client, a test-only dependency). With WARREN_TEST_URL
// set (amqp://guest:guest@127.0.0.1:5672/) the same tests run against that RabbitMQ, its stream
// port being WARREN_TEST_STREAM_URL (default rabbitmq-stream://guest:guest@HOST:5552/).
package streamclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/message"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var externalURL = os.Getenv("WARREN_TEST_URL")

// target is a broker under test: its stream URI (for the Go client) and AMQP URL.
type target struct {
	streamURI string
	amqpURL   string
	srv       *server.Server
}

// startStream starts Warren with a stream listener on 127.0.0.1:0 (store: nil for in memory),
// or returns the external broker.
func startStream(t testing.TB, store storage.Store) target {
	t.Helper()
	if externalURL != "" {
		if store != nil {
			t.Skip("needs an in-process broker")
		}
		u, err := url.Parse(externalURL)
		if err != nil {
			t.Fatal(err)
		}
		su := os.Getenv("WARREN_TEST_STREAM_URL")
		if su == "" {
			su = "rabbitmq-stream://guest:guest@" + u.Hostname() + ":5552/"
		}
		return target{streamURI: su, amqpURL: externalURL}
	}
	tb, err := testbroker.New(server.Options{Logger: testbroker.Logger(t), Store: store}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tb.Srv.ServeStream(ln) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if err := tb.Stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("ServeStream: %v", err)
		}
	}
	t.Cleanup(stop)
	return target{streamURI: "rabbitmq-stream://guest:guest@" + ln.Addr().String() + "/", amqpURL: tb.URL, srv: tb.Srv}
}

// env is a Go client environment for uri, closed at the end of the test.
//
// The socket buffers are the kernel's (SetReadBuffer(0), SetWriteBuffer(0)): the client's
// default sets SO_RCVBUF and SO_SNDBUF to 8 KiB after connecting, and on loopback, whose MSS is
// about 64 KiB, a receive buffer smaller than one segment stalls the connection on delayed ACKs
// (RabbitMQ and Warren alike deliver 1 KiB messages at about 75 msgs/s to such a client).
func env(t testing.TB, uri string) *stream.Environment {
	t.Helper()
	e, err := stream.NewEnvironment(envOptions(uri))
	if err != nil {
		t.Fatalf("NewEnvironment(%s): %v", uri, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// envOptions are env's options for uri: kernel socket buffers, 5 producers and consumers per
// connection.
func envOptions(uri string) *stream.EnvironmentOptions {
	return stream.NewEnvironmentOptions().SetUri(uri).SetMaxProducersPerClient(5).SetMaxConsumersPerClient(5).
		SetReadBuffer(0).SetWriteBuffer(0)
}

func streamName(t testing.TB) string {
	return fmt.Sprintf("warren-sfe-%s-%d", t.Name(), rand.Uint32())
}

// publishConfirmed publishes bodies with producer p and waits for every confirm.
func publishConfirmed(t testing.TB, p *stream.Producer, bodies []string) {
	t.Helper()
	ch := p.NotifyPublishConfirmation()
	msgs := make([]message.StreamMessage, 0, len(bodies))
	for _, b := range bodies {
		msgs = append(msgs, amqp.NewMessage([]byte(b)))
	}
	if err := p.BatchSend(msgs); err != nil {
		t.Fatalf("BatchSend: %v", err)
	}
	got := 0
	timeout := time.After(20 * time.Second)
	for got < len(bodies) {
		select {
		case cs := <-ch:
			for _, c := range cs {
				if !c.IsConfirmed() {
					t.Fatalf("message %d not confirmed", c.GetPublishingId())
				}
				got++
			}
		case <-timeout:
			t.Fatalf("%d of %d confirms", got, len(bodies))
		}
	}
}

type got struct {
	offset int64
	body   string
	msg    *amqp.Message
}

// consume subscribes from spec and collects n messages.
func consume(t testing.TB, e *stream.Environment, name string, spec stream.OffsetSpecification, n int, opts ...func(*stream.ConsumerOptions)) []got {
	t.Helper()
	var mu sync.Mutex
	var out []got
	done := make(chan struct{})
	o := stream.NewConsumerOptions().SetOffset(spec)
	for _, f := range opts {
		f(o)
	}
	c, err := e.NewConsumer(name, func(cc stream.ConsumerContext, m *amqp.Message) {
		mu.Lock()
		defer mu.Unlock()
		if len(out) < n {
			out = append(out, got{offset: cc.Consumer.GetOffset(), body: string(m.GetData()), msg: m})
			if len(out) == n {
				close(done)
			}
		}
	}, o)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer c.Close()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mu.Lock()
		t.Fatalf("consumed %d of %d", len(out), n)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]got(nil), out...)
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func TestStreamPublishConsume(t *testing.T) {
	b := startStream(t, nil)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareStream(name, stream.NewStreamOptions().SetMaxLengthBytes(stream.ByteCapacity{}.MB(100))); err != nil {
		t.Fatalf("DeclareStream: %v", err)
	}
	t.Cleanup(func() { e.DeleteStream(name) })
	p, err := e.NewProducer(name, nil)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	publishConfirmed(t, p, bodies("m", 100))
	p.Close()

	all := consume(t, e, name, stream.OffsetSpecification{}.First(), 100)
	for i, g := range all {
		if g.body != fmt.Sprintf("m-%d", i) || g.offset != int64(i) {
			t.Fatalf("message %d: offset %d body %q", i, g.offset, g.body)
		}
	}
	from := consume(t, e, name, stream.OffsetSpecification{}.Offset(40), 10)
	if from[0].offset != 40 || from[0].body != "m-40" || from[9].body != "m-49" {
		t.Fatalf("from offset 40: first %d %q, last %q", from[0].offset, from[0].body, from[9].body)
	}
	// next: only what is published after the subscription.
	var mu sync.Mutex
	var nextBodies []string
	arrived := make(chan struct{}, 10)
	c, err := e.NewConsumer(name, func(_ stream.ConsumerContext, m *amqp.Message) {
		mu.Lock()
		nextBodies = append(nextBodies, string(m.GetData()))
		mu.Unlock()
		arrived <- struct{}{}
	}, stream.NewConsumerOptions().SetOffset(stream.OffsetSpecification{}.Next()))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := e.NewProducer(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, p2, []string{"after"})
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no message from next")
	}
	c.Close()
	p2.Close()
	mu.Lock()
	if len(nextBodies) != 1 || nextBodies[0] != "after" {
		t.Fatalf("next consumer got %q", nextBodies)
	}
	mu.Unlock()
	last := consume(t, e, name, stream.OffsetSpecification{}.Last(), 1)
	if last[0].offset != 100 || last[0].body != "after" {
		t.Fatalf("last: %d %q", last[0].offset, last[0].body)
	}
	ts := consume(t, e, name, stream.OffsetSpecification{}.Timestamp(time.Now().Add(-time.Hour).UnixMilli()), 1)
	if ts[0].offset != 0 {
		t.Fatalf("timestamp an hour ago starts at %d", ts[0].offset)
	}
}

func TestStreamDeduplication(t *testing.T) {
	b := startStream(t, nil)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DeleteStream(name) })
	send := func(ids []int64) {
		p, err := e.NewProducer(name, stream.NewProducerOptions().SetProducerName("prod"))
		if err != nil {
			t.Fatal(err)
		}
		ch := p.NotifyPublishConfirmation()
		for _, id := range ids {
			m := amqp.NewMessage([]byte(fmt.Sprintf("id-%d", id)))
			m.SetPublishingId(id)
			if err := p.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		for n < len(ids) {
			select {
			case cs := <-ch:
				n += len(cs)
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d confirms", n, len(ids))
			}
		}
		p.Close()
	}
	send([]int64{1, 2, 3})
	send([]int64{2, 3, 4, 5}) // 2 and 3 are duplicates: confirmed, dropped
	seq, err := e.QuerySequence("prod", name)
	if err != nil || seq != 5 {
		t.Fatalf("QuerySequence = %d, %v; want 5", seq, err)
	}
	all := consume(t, e, name, stream.OffsetSpecification{}.First(), 5)
	for i, g := range all {
		if want := fmt.Sprintf("id-%d", i+1); g.body != want {
			t.Fatalf("message %d is %q, want %q", i, g.body, want)
		}
	}
	stats, err := e.StreamStats(name)
	if externalURL == "" || err == nil { // 3.10.8 has no stream stats
		if err != nil {
			t.Fatal(err)
		}
		if first, err := stats.FirstOffset(); err != nil || first != 0 {
			t.Fatalf("FirstOffset %d %v", first, err)
		}
	}
}

func TestStreamStoredOffset(t *testing.T) {
	b := startStream(t, nil)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DeleteStream(name) })
	p, err := e.NewProducer(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, p, bodies("o", 10))
	p.Close()
	c, err := e.NewConsumer(name, func(stream.ConsumerContext, *amqp.Message) {},
		stream.NewConsumerOptions().SetConsumerName("tracker").SetOffset(stream.OffsetSpecification{}.First()).
			SetManualCommit())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.QueryOffset(); err == nil {
		t.Fatal("QueryOffset before any store succeeded")
	}
	if err := c.StoreCustomOffset(7); err != nil {
		t.Fatal(err)
	}
	var off int64
	deadline := time.Now().Add(10 * time.Second)
	for { // StoreOffset has no response: the broker applies it in its own time
		off, err = c.QueryOffset()
		if err == nil && off == 7 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || off != 7 {
		t.Fatalf("QueryOffset = %d, %v", off, err)
	}
	c.Close()
	resumed := consume(t, e, name, stream.OffsetSpecification{}.Offset(off+1), 2)
	if resumed[0].body != "o-8" {
		t.Fatalf("resumed at %q", resumed[0].body)
	}
}

// TestStreamInterop publishes over the stream protocol and consumes over AMQP 0-9-1, and the
// reverse, checking the body and the common properties.
func TestStreamInterop(t *testing.T) {
	b := startStream(t, nil)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DeleteStream(name) })
	p, err := e.NewProducer(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := amqp.NewMessage([]byte("from-stream"))
	m.Properties = &amqp.MessageProperties{MessageID: "mid-1", CorrelationID: "cid-1", ContentType: "text/plain", ReplyTo: "rq"}
	m.ApplicationProperties = map[string]interface{}{"color": "blue", "n": int64(7)}
	ch := p.NotifyPublishConfirmation()
	if err := p.Send(m); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no confirm")
	}
	p.Close()

	conn, err := amqp091.Dial(b.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	achan, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := achan.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	dels, err := achan.Consume(name, "", false, false, false, false, amqp091.Table{"x-stream-offset": "first"})
	if err != nil {
		t.Fatal(err)
	}
	var d amqp091.Delivery
	select {
	case d = <-dels:
	case <-time.After(10 * time.Second):
		t.Fatal("no AMQP delivery")
	}
	if string(d.Body) != "from-stream" || d.MessageId != "mid-1" || d.CorrelationId != "cid-1" || d.ContentType != "text/plain" || d.ReplyTo != "rq" {
		t.Fatalf("AMQP 0-9-1 delivery: body %q message-id %q correlation-id %q content-type %q reply-to %q",
			d.Body, d.MessageId, d.CorrelationId, d.ContentType, d.ReplyTo)
	}
	if d.Headers["color"] != "blue" || d.Headers["n"] != int64(7) {
		t.Fatalf("headers %#v", d.Headers)
	}
	d.Ack(false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := achan.PublishWithContext(ctx, "", name, false, false, amqp091.Publishing{
		Body: []byte("from-amqp"), MessageId: "mid-2", CorrelationId: "cid-2", ContentType: "application/json",
		DeliveryMode: 2, Headers: amqp091.Table{"k": "v"},
	}); err != nil {
		t.Fatal(err)
	}
	gotMsgs := consume(t, e, name, stream.OffsetSpecification{}.First(), 2)
	g := gotMsgs[1].msg
	if string(g.GetData()) != "from-amqp" || g.Properties == nil || g.Properties.MessageID != "mid-2" ||
		g.Properties.CorrelationID != "cid-2" || g.Properties.ContentType != "application/json" || g.ApplicationProperties["k"] != "v" {
		t.Fatalf("stream delivery of an AMQP 0-9-1 message: body %q properties %+v application properties %v",
			g.GetData(), g.Properties, g.ApplicationProperties)
	}
}

func TestStreamErrors(t *testing.T) {
	b := startStream(t, nil)
	u, _ := url.Parse(b.streamURI)
	bad := *u
	bad.User = url.UserPassword("guest", "wrong")
	_, err := stream.NewEnvironment(stream.NewEnvironmentOptions().SetUri(bad.String()))
	if !errors.Is(err, stream.AuthenticationFailure) {
		t.Fatalf("bad password: %v", err)
	}
	novh := *u
	novh.Path = "/no-such-vhost"
	_, err = stream.NewEnvironment(stream.NewEnvironmentOptions().SetUri(novh.String()))
	if !errors.Is(err, stream.VirtualHostAccessFailure) {
		t.Fatalf("unknown vhost: %v", err)
	}
	e := env(t, b.streamURI)
	missing := streamName(t)
	if _, err := e.NewProducer(missing, nil); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("producer on a missing stream: %v", err)
	}
	if _, err := e.NewConsumer(missing, func(stream.ConsumerContext, *amqp.Message) {}, nil); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("consumer on a missing stream: %v", err)
	}
	if err := e.DeleteStream(missing); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("delete of a missing stream: %v", err)
	}
	name := streamName(t)
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DeleteStream(name) })
	// The client takes STREAM_ALREADY_EXISTS as success: the code itself is checked in the
	// server package's raw protocol tests.
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatalf("second declare: %v", err)
	}
}

// TestStreamNoAccess: a user without permissions on the stream gets access refused.
func TestStreamNoAccess(t *testing.T) {
	b := startStream(t, nil)
	if b.srv == nil {
		t.Skip("creates a user in-process")
	}
	pw := "pw"
	if _, err := b.srv.PutUser(server.UserSpec{Name: "limited", Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.srv.PutPermission(server.Permission{User: "limited", Vhost: "/", Configure: "^$", Write: "^$", Read: "^$"}); err != nil {
		t.Fatal(err)
	}
	admin := env(t, b.streamURI)
	name := streamName(t)
	if err := admin.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(b.streamURI)
	u.User = url.UserPassword("limited", "pw")
	e := env(t, u.String())
	if err := e.DeclareStream(streamName(t), nil); !errors.Is(err, stream.CodeAccessRefused) {
		t.Fatalf("declare without configure: %v", err)
	}
	if _, err := e.NewProducer(name, nil); !errors.Is(err, stream.CodeAccessRefused) {
		t.Fatalf("producer without write: %v", err)
	}
	if _, err := e.NewConsumer(name, func(stream.ConsumerContext, *amqp.Message) {}, nil); !errors.Is(err, stream.CodeAccessRefused) {
		t.Fatalf("consumer without read: %v", err)
	}
}

// TestStreamRestart: what was confirmed, the publisher sequence and the stored offset survive a
// restart on a disk store.
func TestStreamRestart(t *testing.T) {
	if externalURL != "" {
		t.Skip("restarts an in-process broker")
	}
	dir := t.TempDir()
	name := streamName(t)
	func() {
		st, err := storage.OpenPebble(dir, storage.PebbleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		runOnce(t, st, func(e *stream.Environment) {
			if err := e.DeclareStream(name, nil); err != nil {
				t.Fatal(err)
			}
			p, err := e.NewProducer(name, stream.NewProducerOptions().SetProducerName("rp"))
			if err != nil {
				t.Fatal(err)
			}
			publishConfirmed(t, p, bodies("r", 20))
			p.Close()
		})
	}()
	st, err := storage.OpenPebble(dir, storage.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runOnce(t, st, func(e *stream.Environment) {
		all := consume(t, e, name, stream.OffsetSpecification{}.First(), 20)
		if all[19].body != "r-19" || all[19].offset != 19 {
			t.Fatalf("after restart: %d %q", all[19].offset, all[19].body)
		}
		if seq, err := e.QuerySequence("rp", name); err != nil || seq != 20 {
			t.Fatalf("sequence after restart %d %v", seq, err)
		}
	})
}

// runOnce runs f against a broker on st, then stops it.
func runOnce(t *testing.T, st storage.Store, f func(e *stream.Environment)) {
	t.Helper()
	tb, err := testbroker.New(server.Options{Logger: testbroker.Logger(t), Store: st}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tb.Srv.ServeStream(ln) }()
	e, err := stream.NewEnvironment(stream.NewEnvironmentOptions().SetUri("rabbitmq-stream://guest:guest@" + ln.Addr().String() + "/"))
	if err != nil {
		t.Fatal(err)
	}
	f(e)
	e.Close()
	if err := tb.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, server.ErrServerClosed) {
		t.Fatal(err)
	}
}
