package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// Shutdown closes every connection with 320 CONNECTION_FORCED, after which Serve returns
// ErrServerClosed and new connections are refused.
func TestShutdownClosesConnectionsWith320(t *testing.T) {
	b := startBroker(t, func(*server.Options) {}) // in-process only: we stop it ourselves
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced || !e.Server {
			t.Fatalf("connection closed with %v, want 320 CONNECTION_FORCED from the server", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed by shutdown")
	}
	if c, err := amqp.Dial(b.URL); err == nil {
		c.Close()
		t.Fatal("dial succeeded after shutdown")
	}
	// Shutdown is idempotent: the harness calls it again at cleanup.
	if err := b.Srv.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("second shutdown: %v", err)
	}
}
