// Package federation is Warren's built-in rabbitmq_federation: links that move messages from an
// upstream broker (RabbitMQ or Warren, reached with amqp091-go) into this broker's federated
// exchanges and queues.
//
// A Manager owns the links. Its owner (the server) tells it which links should exist (Desired)
// and nudges it when that may have changed (Kick); the manager's goroutine starts the links that
// are missing, restarts those whose upstream changed and stops the rest. Each link is a goroutine
// that the manager waits for: it connects, sets up the upstream side, forwards messages until the
// connection fails or the link is stopped, and after a failure waits the upstream's
// reconnect-delay and tries again (status "error" meanwhile).
//
// The broker side is the Local interface: the link never holds a broker lock, and the broker
// calls the manager only to signal (Kick, BindingsChanged), which never blocks.
package federation

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"log/slog"
	"maps"
	"net"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// Link types.
const (
	TypeExchange = "exchange"
	TypeQueue    = "queue"
)

// Link statuses, as RabbitMQ reports them.
const (
	StatusStarting = "starting"
	StatusRunning  = "running"
	StatusError    = "error"
)

// Binding is one binding whose source is a federated exchange downstream.
type Binding struct {
	Key  string
	Args amqp.Table
}

// Local is the downstream broker, as the links use it.
type Local interface {
	// ClusterName names this broker in x-received-from headers and upstream queue names.
	ClusterName() string
	// Publish publishes a message to exchange in vhost as the broker itself, returning once it is
	// enqueued; confirmed then waits until it is on disk in every durable queue it reached (if
	// persistent), as a confirm would, and reports a failure to store it.
	Publish(vhost, exchange, key string, props amqp.Properties, body []byte) (confirmed func() error, err error)
	// ExchangeBindings lists the bindings whose source is exchange.
	ExchangeBindings(vhost, exchange string) ([]Binding, error)
	// QueueDemand reports whether queue has consumers and no ready messages: a federated queue
	// link fetches from its upstream only then.
	QueueDemand(vhost, queue string) (bool, error)
	// DialDirect connects to this broker in process (an upstream URI without a host, "amqp://"
	// or "amqp:///vhost", as RabbitMQ's direct connection), logging in with EXTERNAL.
	DialDirect() (net.Conn, error)
}

// LinkSpec is a link that should exist: the downstream exchange or queue and its upstream.
type LinkSpec struct {
	Type     string // TypeExchange or TypeQueue
	Vhost    string
	Name     string // the downstream exchange or queue
	Policy   string // the policy that federates it (names the upstream connection)
	Upstream Upstream
}

type linkKey struct{ typ, vhost, name, upstream string }

func (s LinkSpec) key() linkKey { return linkKey{s.Type, s.Vhost, s.Name, s.Upstream.Name} }

// LinkStatus is one link's state, for /api/federation-links.
type LinkStatus struct {
	ID               string
	Type             string
	Vhost            string
	Name             string // the downstream exchange or queue
	UpstreamName     string // the upstream exchange or queue
	Upstream         string // the upstream's parameter name
	Status           string
	Error            string // why the link failed (status error)
	URI              string // the upstream URI in use, without its password
	LocalConnection  string
	Timestamp        time.Time // when the status last changed
	ConsumerTag      string
	UpstreamInternal string // the upstream queue an exchange link consumes from
}

// Config configures a Manager.
type Config struct {
	Local  Local
	Logger *slog.Logger
	// Desired returns the links that should exist now. The manager calls it on its own goroutine,
	// after each Kick, holding no lock of its own.
	Desired func() []LinkSpec
}

// Manager owns the federation links of one broker.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	kick     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu    sync.Mutex // leaf; guards links
	links map[linkKey]*link
}

// NewManager starts a manager; Close stops it and its links.
func NewManager(cfg Config) *Manager {
	m := &Manager{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{}), links: map[linkKey]*link{}}
	go m.run()
	m.Kick()
	return m
}

// Kick asks the manager to compare the running links with Desired. It never blocks.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// BindingsChanged tells the links of the federated exchange vhost/exchange, if any, that its
// bindings changed. It never blocks.
func (m *Manager) BindingsChanged(vhost, exchange string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, l := range m.links {
		if k.typ == TypeExchange && k.vhost == vhost && k.name == exchange {
			l.signal()
		}
	}
}

// Close stops every link (leaving their upstream queues in place, as a broker shutdown does) and
// the manager's goroutine, and waits for them.
func (m *Manager) Close() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
}

func (m *Manager) run() {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			m.mu.Lock()
			links := slices.Collect(maps.Values(m.links))
			m.links = map[linkKey]*link{}
			m.mu.Unlock()
			for _, l := range links {
				l.halt(false)
			}
			return
		case <-m.kick:
			m.reconcile()
		}
	}
}

func (m *Manager) reconcile() {
	want := map[linkKey]LinkSpec{}
	for _, s := range m.cfg.Desired() {
		want[s.key()] = s
	}
	m.mu.Lock()
	var stop []*link
	var cleanup []bool
	for k, l := range m.links {
		if s, ok := want[k]; !ok || !reflect.DeepEqual(s, l.spec) {
			stop = append(stop, l)
			cleanup = append(cleanup, !ok)
			delete(m.links, k)
		}
	}
	m.mu.Unlock()
	for i, l := range stop {
		l.halt(cleanup[i])
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range want {
		if m.links[k] == nil {
			m.links[k] = startLink(m, s)
		}
	}
}

// Status lists the links of vhost ("": all vhosts), ordered by vhost, type, name and upstream.
func (m *Manager) Status(vhost string) []LinkStatus {
	m.mu.Lock()
	links := slices.Collect(maps.Values(m.links))
	m.mu.Unlock()
	var out []LinkStatus
	for _, l := range links {
		if vhost == "" || l.spec.Vhost == vhost {
			out = append(out, l.status())
		}
	}
	slices.SortFunc(out, func(a, b LinkStatus) int {
		for _, c := range [][2]string{{a.Vhost, b.Vhost}, {a.Type, b.Type}, {a.Name, b.Name}, {a.Upstream, b.Upstream}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	return out
}

// link is one running link: a goroutine that runs the link until halted.
type link struct {
	m      *Manager
	spec   LinkSpec
	id     string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // bindings changed (exchange links)

	cleanup chan bool // set by halt before cancel: delete the upstream queue on the way out

	mu sync.Mutex // leaf; guards st
	st LinkStatus
}

func startLink(m *Manager, s LinkSpec) *link {
	ctx, cancel := context.WithCancel(context.Background())
	sum := sha1.Sum([]byte(s.Type + "\x00" + s.Vhost + "\x00" + s.Name + "\x00" + s.Upstream.Name))
	l := &link{m: m, spec: s, id: hex.EncodeToString(sum[:4]), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), wake: make(chan struct{}, 1), cleanup: make(chan bool, 1)}
	l.st = LinkStatus{ID: l.id, Type: s.Type, Vhost: s.Vhost, Name: s.Name, Upstream: s.Upstream.Name,
		UpstreamName: l.upstreamName(), Status: StatusStarting, Timestamp: time.Now()}
	if len(s.Upstream.URIs) > 0 {
		l.st.URI = RedactURI(s.Upstream.URIs[0])
	}
	go l.run()
	return l
}

func (l *link) upstreamName() string {
	u := l.spec.Upstream
	if l.spec.Type == TypeExchange && u.Exchange != "" {
		return u.Exchange
	}
	if l.spec.Type == TypeQueue && u.Queue != "" {
		return u.Queue
	}
	return l.spec.Name
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// halt stops the link and waits for it; cleanup: it goes for good (its policy no longer
// applies), so it deletes what it declared upstream unless resource-cleanup-mode is never.
func (l *link) halt(cleanup bool) {
	l.cleanup <- cleanup
	l.cancel()
	<-l.done
}

func (l *link) status() LinkStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

func (l *link) setStatus(f func(*LinkStatus)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.st)
	l.st.Timestamp = time.Now()
}

func (l *link) run() {
	defer close(l.done)
	log := l.m.log.With("federation", l.spec.Type, "vhost", l.spec.Vhost, "name", l.spec.Name, "upstream", l.spec.Upstream.Name)
	for attempt := 0; ; attempt++ {
		uri := ""
		if n := len(l.spec.Upstream.URIs); n > 0 {
			uri = l.spec.Upstream.URIs[attempt%n]
		}
		l.setStatus(func(s *LinkStatus) {
			s.Status, s.Error, s.URI, s.LocalConnection = StatusStarting, "", RedactURI(uri), ""
		})
		err := l.runOnce(uri, log)
		if l.ctx.Err() != nil {
			return
		}
		log.Warn("federation link failed", "error", err)
		l.setStatus(func(s *LinkStatus) { s.Status, s.Error, s.LocalConnection = StatusError, err.Error(), "" })
		t := time.NewTimer(l.spec.Upstream.ReconnectDelay)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
