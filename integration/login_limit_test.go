package integration

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Failed logins are logged with the user and the remote address, never the password. Past
// LoginFailureLimit failures from one address, further failures are tarpitted (answered only after
// LoginFailureDelay, here an hour) and logged once for the window, while a good login from the
// same address goes through at once.
func TestLoginFailuresTarpitted(t *testing.T) {
	var logs syncBuffer
	b := startBroker(t, func(o *server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.LoginFailureLimit = 2
		o.LoginFailureDelay = time.Hour
		o.HandshakeTimeout = time.Hour
	})
	const password = "hunter2-not-in-logs"
	bad := amqp.Config{SASL: []amqp.Authentication{&amqp.PlainAuth{Username: "guest", Password: password}}}
	for i := 0; i < 2; i++ {
		_, err := amqp.DialConfig(b.URL, bad)
		amqpWantError(t, err, amqp.AccessRefused, "")
	}
	results := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			c, err := amqp.DialConfig(b.URL, bad)
			if err == nil {
				c.Close()
			}
			results <- err
		}()
	}
	// The tarpitted attempts are past the login: the log says the address is limited.
	wait.For(t, amqpTimeout, "the limit to be logged", func() bool { return strings.Contains(logs.String(), "too many failed logins") })

	good := amqpDial(t, b) // same address, right password: not delayed
	amqpAssertAlive(t, good)
	select {
	case err := <-results:
		t.Fatalf("a failed login past the limit was answered before the delay: %v", err)
	default:
	}

	// Shutdown wakes the tarpitted connections; each ends with an error, none leaks.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := <-results; err == nil {
			t.Fatal("a bad login succeeded")
		}
	}

	out := logs.String()
	if strings.Contains(out, password) {
		t.Fatalf("the password is in the log:\n%s", out)
	}
	if n := strings.Count(out, `msg="login failed"`); n != 2 {
		t.Fatalf("%d failures logged one by one, want 2 (the limit):\n%s", n, out)
	}
	if n := strings.Count(out, "too many failed logins"); n != 1 {
		t.Fatalf("the limit was logged %d times, want once:\n%s", n, out)
	}
	for _, want := range []string{"user=guest", "remote=127.0.0.1:", "mechanism=PLAIN"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the failure log lacks %q:\n%s", want, out)
		}
	}
}

// A tarpitted failure is still answered with 403 once the delay is over.
func TestLoginFailureAnsweredAfterDelay(t *testing.T) {
	b := startBroker(t, func(o *server.Options) {
		o.LoginFailureLimit = 1
		o.LoginFailureDelay = 10 * time.Millisecond
	})
	bad := amqp.Config{SASL: []amqp.Authentication{&amqp.AMQPlainAuth{Username: "guest", Password: "wrong"}}}
	for i := 0; i < 3; i++ {
		_, err := amqp.DialConfig(b.URL, bad)
		amqpWantError(t, err, amqp.AccessRefused, "")
	}
	amqpAssertAlive(t, amqpDial(t, b))
}
