// Package testbroker starts an in-process Warren broker for this module's tests: the one place
// that creates a server.Server, listens on 127.0.0.1:0, serves on a goroutine it owns, and on
// cleanup shuts the broker down within ShutdownTimeout and checks what Serve returned.
//
// It depends on the server package only, so the management package's own tests can use it
// (warrentest imports management and could not be imported there). warrentest, the public
// package users start brokers with, is built on it.
package testbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// ShutdownTimeout bounds a broker's shutdown in Stop. Past it, the remaining connections are closed
// at once and Stop returns an error.
const ShutdownTimeout = 10 * time.Second

// Broker is a running in-process broker.
type Broker struct {
	URL  string         // amqp://USER:PASS@127.0.0.1:PORT/ for the default user (amqps:// on TLS)
	Addr string         // 127.0.0.1:PORT
	Srv  *server.Server // the broker
	// Members is the cluster's member list (StartCluster; nil for a single broker).
	Members []server.ClusterNode

	served chan error // what Serve returned

	mu    sync.Mutex
	extra []chan error // what the ServeMQTT calls of StartMQTT returned

	stopOnce sync.Once
	stopErr  error
}

// Start starts a broker on 127.0.0.1:0 with a fresh in-memory store (unless an option sets
// Options.Store) and logs to t when -v is given (unless an option sets Options.Logger). opts adjust
// server.Options in order. The broker stops when the test ends; a failed shutdown, or Serve
// failing for another reason than the shutdown, fails the test.
func Start(t testing.TB, opts ...func(*server.Options)) *Broker {
	t.Helper()
	return start(t, nil, opts)
}

// StartTLS is Start with a TLS listener: the URL is amqps://.
func StartTLS(t testing.TB, cfg *tls.Config, opts ...func(*server.Options)) *Broker {
	t.Helper()
	if cfg == nil {
		t.Fatal("testbroker: StartTLS without a TLS configuration")
	}
	return start(t, cfg, opts)
}

func start(t testing.TB, cfg *tls.Config, opts []func(*server.Options)) *Broker {
	t.Helper()
	o := server.Options{Logger: Logger(t)}
	for _, f := range opts {
		f(&o)
	}
	b, err := New(o, cfg)
	if err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("testbroker: %v", err)
		}
	})
	return b
}

// New starts a broker with o on 127.0.0.1:0 (with TLS if cfg is not nil) outside a test's
// cleanup: the caller must Stop it. On an error nothing is left running.
func New(o server.Options, cfg *tls.Config) (*Broker, error) {
	srv, err := server.New(o)
	if err != nil {
		return nil, fmt.Errorf("starting the broker: %w", err)
	}
	var ln net.Listener
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		return nil, errors.Join(fmt.Errorf("AMQP listener: %w", err), srv.Shutdown(ctx))
	}
	b := &Broker{Addr: ln.Addr().String(), Srv: srv, served: make(chan error, 1)}
	scheme := "amqp"
	serve := srv.Serve
	if cfg != nil {
		scheme = "amqps"
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, cfg, server.TLSFiles{}) }
	}
	user, pass := o.DefaultUser, o.DefaultPass
	if user == "" {
		user, pass = "guest", "guest"
	}
	b.URL = (&url.URL{Scheme: scheme, User: url.UserPassword(user, pass), Host: b.Addr, Path: "/"}).String()
	// The listener is bound before Serve runs, so the broker is ready once a dial succeeds.
	go func() { b.served <- serve(ln) }()
	return b, nil
}

// Stop shuts the broker down (within ShutdownTimeout) and waits for Serve to return. It returns
// Shutdown's error joined with Serve's if Serve failed for another reason than the shutdown. Only
// the first call does anything; later ones return its error.
func (b *Broker) Stop() error {
	b.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		var errs []error
		if err := b.Srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the broker: %w", err))
		}
		if err := <-b.served; err != nil && !errors.Is(err, server.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("serving: %w", err))
		}
		b.mu.Lock()
		extra := b.extra
		b.mu.Unlock()
		for _, ch := range extra {
			if err := <-ch; err != nil && !errors.Is(err, server.ErrServerClosed) {
				errs = append(errs, fmt.Errorf("serving MQTT: %w", err))
			}
		}
		b.stopErr = errors.Join(errs...)
	})
	return b.stopErr
}

// Logger logs through t.Log at debug level when the tests run with -v, and discards otherwise.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// StartMQTT starts an MQTT listener of the broker on 127.0.0.1:0 and returns its address
// (127.0.0.1:PORT). It ends with the broker (Stop).
func (b *Broker) StartMQTT(t testing.TB) string {
	t.Helper()
	return b.startMQTT(t, nil)
}

// StartMQTTTLS is StartMQTT over TLS with cfg (ServeMQTTTLS).
func (b *Broker) StartMQTTTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	return b.startMQTT(t, cfg)
}

func (b *Broker) startMQTT(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testbroker: MQTT listener: %v", err)
	}
	ch := make(chan error, 1)
	b.mu.Lock()
	b.extra = append(b.extra, ch)
	b.mu.Unlock()
	if cfg != nil {
		go func() { ch <- b.Srv.ServeMQTTTLS(ln, cfg, server.TLSFiles{}) }()
	} else {
		go func() { ch <- b.Srv.ServeMQTT(ln) }()
	}
	return ln.Addr().String()
}

// STOMP serves STOMP on another listener on 127.0.0.1:0 and returns its address. It stops with
// the broker: the test's cleanup stops the broker and checks what ServeSTOMP returned.
func (b *Broker) STOMP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testbroker: STOMP listener: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Srv.ServeSTOMP(ln) }()
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("testbroker: %v", err)
		}
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("testbroker: serving STOMP: %v", err)
		}
	})
	return ln.Addr().String()
}

// StartWebMQTT serves Web MQTT (ServeWebMQTT) on 127.0.0.1:0 and returns its address; the
// endpoint is ws://ADDR/ws. It ends with the broker (Stop).
func (b *Broker) StartWebMQTT(t testing.TB) string {
	t.Helper()
	return b.startExtra(t, b.Srv.ServeWebMQTT)
}

// StartWebSTOMP serves Web STOMP (ServeWebSTOMP) on 127.0.0.1:0 and returns its address; the
// endpoint is ws://ADDR/ws. It ends with the broker (Stop).
func (b *Broker) StartWebSTOMP(t testing.TB) string {
	t.Helper()
	return b.startExtra(t, b.Srv.ServeWebSTOMP)
}

// StartWebMQTTTLS serves Web MQTT over TLS (ServeWebMQTTTLS, wss://ADDR/ws) with cfg on
// 127.0.0.1:0 and returns its address. It ends with the broker (Stop).
func (b *Broker) StartWebMQTTTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	return b.startExtra(t, func(ln net.Listener) error { return b.Srv.ServeWebMQTTTLS(ln, cfg, server.TLSFiles{}) })
}

// StartWebSTOMPTLS serves Web STOMP over TLS (ServeWebSTOMPTLS, wss://ADDR/ws) with cfg on
// 127.0.0.1:0 and returns its address. It ends with the broker (Stop).
func (b *Broker) StartWebSTOMPTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	return b.startExtra(t, func(ln net.Listener) error { return b.Srv.ServeWebSTOMPTLS(ln, cfg, server.TLSFiles{}) })
}

func (b *Broker) startExtra(t testing.TB, serve func(net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testbroker: listener: %v", err)
	}
	ch := make(chan error, 1)
	b.mu.Lock()
	b.extra = append(b.extra, ch)
	b.mu.Unlock()
	go func() { ch <- serve(ln) }()
	return ln.Addr().String()
}

// ClusterTick is the Raft tick of the clusters StartCluster makes: short, so that elections and
// failovers in tests take a fraction of a second (raft's election timeout is 10 ticks).
const ClusterTick = 20 * time.Millisecond

// ClusterListeners binds n inter-node listeners, each on its own loopback address (127.0.0.11,
// .12, ...; port 0) so that a test can cut one node off by its address, or all on 127.0.0.1 where
// those cannot be bound; and names the members warren@n1, warren@n2, ...
func ClusterListeners(t testing.TB, n int) ([]net.Listener, []server.ClusterNode) {
	t.Helper()
	var lns []net.Listener
	var nodes []server.ClusterNode
	for i := range n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", 11+i))
		if err != nil {
			t.Logf("testbroker: cannot bind 127.0.0.%d (%v): this member on 127.0.0.1", 11+i, err)
			if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				for _, l := range lns {
					l.Close()
				}
				t.Fatalf("testbroker: cluster listener: %v", err)
			}
		}
		lns = append(lns, ln)
		nodes = append(nodes, server.ClusterNode{Name: fmt.Sprintf("warren@n%d", i+1), Addr: ln.Addr().String()})
	}
	return lns, nodes
}

// StartCluster starts n brokers as one cluster (server.Options.Cluster, ClusterTick), each with
// its own in-memory store unless an option sets one; opts adjust member i's options after the
// cluster settings are filled in. Every broker stops when the test ends, as Start's.
func StartCluster(t testing.TB, n int, opts ...func(i int, o *server.Options)) []*Broker {
	t.Helper()
	lns, nodes := ClusterListeners(t, n)
	var bs []*Broker
	for i := range n {
		b, err := startMember(t, lns[i], nodes, i, opts)
		if err != nil {
			for _, l := range lns[i+1:] {
				l.Close()
			}
			t.Fatalf("testbroker: %v", err)
		}
		bs = append(bs, b)
	}
	return bs
}

// RestartMember starts member i of the cluster of members (Broker.Members) again, after it was
// stopped: its inter-node listener on the same address, opts applied as StartCluster applies them
// (give it the same Options.Store to restart it from its data). It stops when the test ends.
func RestartMember(t testing.TB, members []server.ClusterNode, i int, opts ...func(i int, o *server.Options)) *Broker {
	t.Helper()
	ln, err := net.Listen("tcp", members[i].Addr)
	if err != nil {
		t.Fatalf("testbroker: re-listening on %s: %v", members[i].Addr, err)
	}
	b, err := startMember(t, ln, members, i, opts)
	if err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	return b
}

func startMember(t testing.TB, ln net.Listener, nodes []server.ClusterNode, i int, opts []func(i int, o *server.Options)) (*Broker, error) {
	o := server.Options{Logger: Logger(t).With("node", nodes[i].Name), NodeName: nodes[i].Name,
		Cluster: &server.ClusterOptions{Listener: ln, Nodes: nodes, TickInterval: ClusterTick}}
	for _, f := range opts {
		f(i, &o)
	}
	b, err := New(o, nil)
	if err != nil {
		return nil, fmt.Errorf("cluster member %s: %w", nodes[i].Name, err)
	}
	b.Members = nodes
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Errorf("testbroker: %s: %v", nodes[i].Name, err)
		}
	})
	return b, nil
}
