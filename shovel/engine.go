// Package shovel is Warren's rabbitmq_shovel: dynamic shovels, defined as runtime parameters of
// the component "shovel" (PUT /api/parameters/shovel/{vhost}/{name} with RabbitMQ's JSON), each
// one a worker that consumes from a source broker and republishes to a destination broker.
//
// Both ends speak AMQP 0-9-1 through github.com/rabbitmq/amqp091-go. A URI without a host
// ("amqp://", "amqp:///vhost") is this broker, reached through the broker's direct connection
// (server.DialDirect: an in-process pipe, logged in as the user "none"), as RabbitMQ's shovel
// uses Erlang's direct connection: no listener, port or password is needed, and the same client
// code serves the local broker and a remote one.
//
// A worker is owned by the Engine: started when its parameter is set (and, for stored ones, when
// the Engine registers the component at broker start), stopped and waited for when it is cleared
// (its vhost deleted) or the Engine closes; on failure it restarts after reconnect-delay (0: it
// stays terminated). With ack-mode on-confirm a message is acked at the source only once the
// destination confirmed it, so a crash on either side loses nothing (it may duplicate).
package shovel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/warrenmq/warren/server"
)

// Component is the runtime parameter component of dynamic shovels.
const Component = "shovel"

// Broker is what the shovels need from the broker; *server.Server implements it.
type Broker interface {
	RegisterParameterComponent(name string, c server.ParameterComponent)
	DeleteParameter(component, vhost, name string) error
	DialDirect() (net.Conn, error)
	NodeName() string
	UserVhosts(user string) []string
}

var _ Broker = (*server.Server)(nil)

// Options configure an Engine.
type Options struct {
	// Logger receives the shovels' logs; nil discards them.
	Logger *slog.Logger
}

// ErrNotFound is a shovel that does not exist.
var ErrNotFound = errors.New("shovel: not found")

// Engine runs the dynamic shovels of one broker.
type Engine struct {
	b   Broker
	log *slog.Logger

	wg sync.WaitGroup // every worker and every completion (parameter deletion) goroutine

	// change serializes starting and stopping workers (taken after the broker's parameter lock
	// when a hook calls; never held by a worker, nor while Close waits).
	change sync.Mutex

	mu      sync.Mutex // guards the fields below; never held while waiting for a worker
	closed  bool
	workers map[key]*worker
}

type key struct{ vhost, name string }

// New registers the component "shovel" with b and starts the shovels stored in it. Close stops
// them; call it before shutting the broker down.
func New(b Broker, opts Options) *Engine {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{b: b, log: log, workers: map[key]*worker{}}
	b.RegisterParameterComponent(Component, server.ParameterComponent{
		ValidateAs: func(user, _, name string, v any) error { return validate(name, v, e.mayConnect(user)) },
		Set:        e.set,
		Clear:      e.clear,
	})
	return e
}

// mayConnect is the check RabbitMQ makes of a direct URI: the user setting the shovel must have
// a permission in its vhost (else the shovel, connected as "none", would reach a vhost the user
// cannot). No user (definitions import): not checked.
func (e *Engine) mayConnect(user string) func(vhost string) error {
	if user == "" {
		return nil
	}
	return func(vhost string) error {
		if slices.Contains(e.b.UserVhosts(user), vhost) {
			return nil
		}
		return fmt.Errorf("user \"%s\" may not connect to vhost \"%s\"", user, vhost)
	}
}

// set (the component's hook, serialized by the broker) replaces the shovel's worker.
func (e *Engine) set(p server.Parameter) {
	cfg, err := parse(p.Value)
	if err != nil { // a stored definition that no longer parses: keep it, run nothing
		e.log.Error("shovel definition not usable", "vhost", p.Vhost, "name", p.Name, "err", err)
		e.stop(key{p.Vhost, p.Name})
		return
	}
	e.start(key{p.Vhost, p.Name}, cfg)
}

func (e *Engine) clear(vhost, name string) { e.stop(key{vhost, name}) }

// start starts a worker for k, stopping the one it replaces first.
func (e *Engine) start(k key, cfg *config) {
	e.change.Lock()
	defer e.change.Unlock()
	e.startLocked(k, cfg)
}

func (e *Engine) startLocked(k key, cfg *config) {
	e.stopLocked(k)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	w := newWorker(e, k, cfg)
	e.workers[k] = w
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		w.run()
	}()
}

// stop stops k's worker, if any, and waits for it (stopLocked: under change).
func (e *Engine) stop(k key) {
	e.change.Lock()
	defer e.change.Unlock()
	e.stopLocked(k)
}

func (e *Engine) stopLocked(k key) {
	e.mu.Lock()
	w := e.workers[k]
	delete(e.workers, k)
	e.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

// completed removes a shovel whose delete-after was reached, as RabbitMQ does: its parameter is
// deleted (which stops the worker through clear). It runs on its own goroutine, since clear
// waits for the worker calling it.
func (e *Engine) completed(k key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.b.DeleteParameter(Component, k.vhost, k.name); err != nil && !errors.Is(err, server.ErrNotFound) {
			e.log.Error("deleting a completed shovel", "vhost", k.vhost, "name", k.name, "err", err)
		}
	}()
}

// Restart restarts a shovel's worker (DELETE /api/shovels/vhost/{vhost}/{name}/restart).
func (e *Engine) Restart(vhost, name string) error {
	k := key{vhost, name}
	e.change.Lock()
	defer e.change.Unlock()
	e.mu.Lock()
	w := e.workers[k]
	e.mu.Unlock()
	if w == nil {
		return ErrNotFound
	}
	e.startLocked(k, w.cfg)
	return nil
}

// Close stops every shovel and waits for them.
func (e *Engine) Close() {
	e.change.Lock()
	e.mu.Lock()
	e.closed = true
	ws := make([]*worker, 0, len(e.workers))
	for _, w := range e.workers {
		ws = append(ws, w)
	}
	clear(e.workers)
	e.mu.Unlock()
	e.change.Unlock()
	for _, w := range ws {
		w.cancel()
	}
	e.wg.Wait()
}

// States of a shovel, as RabbitMQ reports them.
const (
	StateStarting   = "starting"
	StateRunning    = "running"
	StateTerminated = "terminated"
)

// Status is one shovel's state, as /api/shovels shows it. The URIs (without credentials) and the
// ends are known while it runs.
type Status struct {
	Name, Vhost, State string
	Timestamp          time.Time // the last change of state
	Reason             string    // why it terminated

	SrcURI, DestURI                             string
	SrcQueue, SrcExchange, SrcExchangeKey       string
	DestQueue, DestExchange, DestExchangeKey    string
	HasSrcExchangeKey, HasDestExchangeKey, Runs bool
}

// Statuses returns every shovel's status, by vhost and name.
func (e *Engine) Statuses() []Status {
	e.mu.Lock()
	out := make([]Status, 0, len(e.workers))
	for _, w := range e.workers {
		out = append(out, w.status())
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Vhost != out[j].Vhost {
			return out[i].Vhost < out[j].Vhost
		}
		return out[i].Name < out[j].Name
	})
	return out
}
