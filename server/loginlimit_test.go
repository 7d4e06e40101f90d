package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// Up to the limit, failures are logged one by one and not delayed; past it, they are delayed and
// counted, the limit logged once; the next window logs the count held back and starts afresh.
// Addresses are counted apart (an IPv6 address by its /64); loopback is no exception.
func TestLoginLimiterWindows(t *testing.T) {
	var logs bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	o := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), LoginFailureLimit: 3,
		LoginFailureWindow: time.Minute, LoginFailureDelay: time.Second}
	l := newLoginLimiter(&o)
	l.now = func() time.Time { return now }
	a := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1000}
	b := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1000}

	for i := 1; i <= 10; i++ {
		d := l.failed(&net.TCPAddr{IP: a.IP, Port: 1000 + i}, "bob", "PLAIN", "invalid credentials")
		if want := map[bool]time.Duration{true: 0, false: time.Second}[i <= 3]; d != want {
			t.Fatalf("failure %d: delay %v, want %v", i, d, want)
		}
	}
	if d := l.failed(b, "bob", "PLAIN", "x"); d != 0 {
		t.Fatalf("another address was delayed: %v", d)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="login failed"`); n != 4 {
		t.Fatalf("%d failures logged, want 4 (3 from a, 1 from b):\n%s", n, out)
	}
	if n := strings.Count(out, "too many failed logins"); n != 1 {
		t.Fatalf("limit logged %d times, want 1:\n%s", n, out)
	}

	now = now.Add(time.Minute)
	logs.Reset()
	if d := l.failed(a, "bob", "PLAIN", "x"); d != 0 {
		t.Fatalf("first failure of a new window delayed %v", d)
	}
	if out := logs.String(); !strings.Contains(out, "held back") || !strings.Contains(out, "count=7") || !strings.Contains(out, "remote=10.0.0.1") {
		t.Fatalf("the new window did not log the 7 held back:\n%s", out)
	}

	// IPv6: one /64 is one source.
	for i := 0; i < 4; i++ {
		ip := net.ParseIP("2001:db8::1")
		ip[15] = byte(i)
		l.failed(&net.TCPAddr{IP: ip}, "bob", "PLAIN", "x")
	}
	if d := l.failed(&net.TCPAddr{IP: net.ParseIP("2001:db8::ff")}, "bob", "PLAIN", "x"); d != time.Second {
		t.Fatalf("a fifth failure from one /64 was not delayed: %v", d)
	}

	// A negative limit turns limiting off.
	off := newLoginLimiter(&Options{Logger: o.Logger, LoginFailureLimit: -1})
	for i := 0; i < 10; i++ {
		if d := off.failed(a, "bob", "PLAIN", "x"); d != 0 {
			t.Fatalf("limiter off: delay %v", d)
		}
	}
}

// The management API's logins (Server.Authenticate) are logged and limited like AMQP's, without
// the password.
func TestAuthenticateLogsFailures(t *testing.T) {
	var logs bytes.Buffer
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), LoginFailureLimit: 1, LoginFailureDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	remote := &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 5555}
	for i := 0; i < 3; i++ {
		if _, err := s.Authenticate("guest", "s3cret-pw", remote); err == nil {
			t.Fatal("a wrong password was accepted")
		}
	}
	if _, err := s.Authenticate("guest", "guest", remote); err == nil {
		t.Fatal("guest was accepted from a remote address")
	}
	if _, err := s.Authenticate("guest", "guest", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatalf("guest from loopback: %v", err)
	}
	out := logs.String()
	if strings.Contains(out, "s3cret-pw") {
		t.Fatalf("password logged:\n%s", out)
	}
	if !strings.Contains(out, "user=guest") || !strings.Contains(out, "remote=10.9.8.7:5555") || !strings.Contains(out, "too many failed logins") {
		t.Fatalf("failures not logged as expected:\n%s", out)
	}
}
