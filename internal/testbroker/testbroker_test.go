package testbroker

import (
	"net"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A started broker takes an AMQP client at its URL, and its cleanup stops it.
func TestStartServesAMQP(t *testing.T) {
	b := Start(t)
	if !strings.HasPrefix(b.URL, "amqp://guest:guest@127.0.0.1:") || !strings.HasSuffix(b.URL, b.Addr+"/") {
		t.Fatalf("URL %q, Addr %q", b.URL, b.Addr)
	}
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("tb.q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Srv.Queue("/", "tb.q"); err != nil {
		t.Fatalf("the queue is not in b.Srv: %v", err)
	}
}

// Options apply in order, and the URL carries the default user they set.
func TestStartOptions(t *testing.T) {
	b := Start(t, func(o *server.Options) { o.DefaultUser, o.DefaultPass = "admin", "x" }, func(o *server.Options) { o.DefaultPass = "pw" })
	if !strings.HasPrefix(b.URL, "amqp://admin:pw@") {
		t.Fatalf("URL %q, want the default user admin:pw", b.URL)
	}
}

// Stop closes the listener, waits for Serve, and only the first call does anything.
func TestStopOnce(t *testing.T) {
	b, err := New(server.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if c, err := net.Dial("tcp", b.Addr); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Stop")
	}
}
