package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/storage"
)

// ErrServerClosed is returned by Serve after Shutdown has been called.
var ErrServerClosed = errors.New("warren: server closed")

// Defaults, as RabbitMQ 3.10 has them.
const (
	DefaultHeartbeat      = 60 * time.Second
	DefaultFrameMax       = 131072
	DefaultChannelMax     = 2047
	DefaultMaxMessageSize = 128 << 20
	defaultHandshake      = 10 * time.Second
	closeOkTimeout        = 3 * time.Second
)

// Options configure a Server. The zero value is a usable broker with RabbitMQ's defaults.
type Options struct {
	// Logger receives the broker's logs; nil discards them.
	Logger *slog.Logger
	// StreamAdvertisedHost and StreamAdvertisedPort are what the stream protocol front end
	// advertises in open and metadata (RabbitMQ's stream.advertised_host and _port; empty or 0:
	// the listener's address, or the host name for a listener on every address).
	StreamAdvertisedHost string
	StreamAdvertisedPort int
	// Heartbeat is the interval offered in connection.tune: 0 means DefaultHeartbeat, a negative value
	// offers 0 (no heartbeats unless the client asks). Whole seconds are used.
	Heartbeat time.Duration
	// FrameMax is the largest frame offered in connection.tune (0: DefaultFrameMax; at least 4096).
	FrameMax uint32
	// ChannelMax is the highest channel number offered (0: DefaultChannelMax).
	ChannelMax uint16
	// MaxMessageSize bounds a message body (0: DefaultMaxMessageSize); larger gets 406 on the channel.
	MaxMessageSize int
	// DefaultUser and DefaultPass create the administrator user (default guest/guest).
	DefaultUser, DefaultPass string
	// DefaultVhost is the vhost a fresh store starts with, where DefaultUser gets full
	// permissions (default "/"), as RabbitMQ's default_vhost.
	DefaultVhost string
	// LoopbackUsers may only log in from a loopback address (nil: just DefaultUser when it is "guest",
	// as RabbitMQ's loopback_users; an empty non-nil slice allows every user from anywhere).
	LoopbackUsers []string
	// HandshakeTimeout bounds the time from accept to connection.open, a TLS handshake included
	// (0: 10s).
	HandshakeTimeout time.Duration
	// ConnectionMax bounds the open connections of each AMQP, MQTT, STOMP and stream listener
	// (TLS ones included; not Web MQTT and Web STOMP), as RabbitMQ's connection_max (its listeners'
	// ranch max_connections): at the bound the listener accepts nothing more until one of its
	// connections closes, and new clients wait in the socket's backlog. 0: no bound (infinity).
	ConnectionMax int
	// Store holds durable state. nil: a fresh in-memory store, owned and closed by the server. A
	// store passed in belongs to the caller, who closes it after Shutdown.
	Store storage.Store
	// QueueWindow and QueueWindowBytes bound the messages a queue keeps in memory (0: 4096
	// messages, 8 MiB); past them, messages wait in the store and are paged back in order.
	QueueWindow      int
	QueueWindowBytes int64
	// DiskFree reports the free bytes of the store's disk (nil: no disk alarm, as for an
	// in-memory store). Below DiskFreeLimit (0: DefaultDiskFreeLimit) publishers are blocked.
	// It is checked every DiskCheckInterval (0: 1s).
	DiskFree          func() (uint64, error)
	DiskFreeLimit     int64
	DiskCheckInterval time.Duration
	// MemoryUsed reports the broker's memory use in bytes: ResidentMemory for a broker that is its
	// own process (nil: no memory alarm, as for a broker embedded in a bigger process or a test).
	// Above MemoryLimit (0: DefaultMemoryHighWatermark of TotalMemory) the memory alarm is
	// raised: publishers are blocked and queues page their messages out (alarm_mem.go). It is
	// checked every MemoryCheckInterval (0: DefaultMemoryCheckInterval); a sample above the limit
	// is taken again after debug.FreeOSMemory, a GC of the whole process.
	MemoryUsed          func() (uint64, error)
	MemoryLimit         int64
	MemoryCheckInterval time.Duration
	// StatsInterval is how often message rates are sampled (0: DefaultStatsInterval).
	StatsInterval time.Duration
	// SyncInterval bounds how long a store write made without an fsync (an ack's delete, a
	// transient message paged out) waits for one: the committer syncs the store at most this
	// long after such a write, unless a synced write came first (0: DefaultSyncInterval).
	// Nothing is synced while nothing is written. See storage/doc.go for the contract.
	SyncInterval time.Duration
	// ConsumerTimeout closes a channel (406) holding a delivery unacknowledged for longer, as
	// RabbitMQ's consumer_timeout (0: DefaultConsumerTimeout, 30 minutes; negative: none).
	ConsumerTimeout time.Duration
	// SSLCertLoginFrom is where SASL EXTERNAL takes the user name from in a client certificate, as
	// RabbitMQ's ssl_cert_login_from: CertLoginDistinguishedName (the default; the subject in
	// RabbitMQ's RFC 4514 string form) or CertLoginCommonName.
	SSLCertLoginFrom string
	// LoginFailureLimit failed logins (AMQP or management API) from one address within
	// LoginFailureWindow are logged and answered at once; later ones in the window are answered
	// only after LoginFailureDelay (at most HandshakeTimeout) and counted instead of logged.
	// Defaults: 5, one minute, one second; a negative limit turns the limiter off.
	LoginFailureLimit  int
	LoginFailureWindow time.Duration
	LoginFailureDelay  time.Duration
	// STOMPDefaultUser and STOMPDefaultPass log in a STOMP CONNECT that has no login header, as
	// RabbitMQ's stomp.default_user and stomp.default_pass (empty: such a CONNECT is refused
	// unless the user "" exists). STOMPDefaultVhost is the vhost of a CONNECT without a host
	// header (stomp.default_vhost; empty: DefaultVhost).
	STOMPDefaultUser, STOMPDefaultPass string
	STOMPDefaultVhost                  string
	// NodeName is the node's name, as RabbitMQ's node name: in the management API, in
	// connection.start's cluster_name while no cluster_name is set, in a cluster's member list
	// ("": DefaultNodeName, warren@<short host name>).
	NodeName string
	// MQTT configures the MQTT front end (mqtt.go), with RabbitMQ's defaults.
	MQTT MQTTOptions
	// Cluster, when set, makes the node a member of a cluster (cluster.go); nil: a single node.
	Cluster *ClusterOptions
}

func (o *Options) setDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Heartbeat < 0 {
		o.Heartbeat = 0
	}
	if o.Heartbeat > 0xffff*time.Second {
		return fmt.Errorf("heartbeat %v is above 65535s", o.Heartbeat)
	}
	if o.FrameMax == 0 {
		o.FrameMax = DefaultFrameMax
	}
	if o.FrameMax < 4096 {
		return fmt.Errorf("frame max %d is below the minimum 4096", o.FrameMax)
	}
	if o.ChannelMax == 0 {
		o.ChannelMax = DefaultChannelMax
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxMessageSize < 0 {
		return fmt.Errorf("max message size %d is negative", o.MaxMessageSize)
	}
	if o.DefaultUser == "" {
		o.DefaultUser, o.DefaultPass = "guest", "guest"
	}
	if o.DefaultVhost == "" {
		o.DefaultVhost = "/"
	}
	if o.NodeName == "" {
		o.NodeName = DefaultNodeName()
	}
	if o.LoopbackUsers == nil && o.DefaultUser == "guest" {
		o.LoopbackUsers = []string{"guest"}
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaultHandshake
	}
	if o.ConsumerTimeout == 0 {
		o.ConsumerTimeout = DefaultConsumerTimeout
	}
	if o.StatsInterval <= 0 {
		o.StatsInterval = DefaultStatsInterval
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.QueueWindow <= 0 {
		o.QueueWindow = 4096
	}
	if o.QueueWindowBytes <= 0 {
		o.QueueWindowBytes = 8 << 20
	}
	if o.DiskFreeLimit <= 0 {
		o.DiskFreeLimit = DefaultDiskFreeLimit
	}
	if o.DiskCheckInterval <= 0 {
		o.DiskCheckInterval = time.Second
	}
	if o.MemoryCheckInterval <= 0 {
		o.MemoryCheckInterval = DefaultMemoryCheckInterval
	}
	if o.MemoryLimit < 0 {
		return fmt.Errorf("memory limit %d is negative", o.MemoryLimit)
	}
	if o.MemoryLimit == 0 && o.MemoryUsed != nil {
		total := TotalMemory()
		if total <= 0 {
			return errors.New("memory alarm: the total memory is unknown on this platform: give the limit in bytes")
		}
		o.MemoryLimit = int64(DefaultMemoryHighWatermark * float64(total))
	}
	switch o.SSLCertLoginFrom {
	case "":
		o.SSLCertLoginFrom = CertLoginDistinguishedName
	case CertLoginDistinguishedName, CertLoginCommonName:
	default:
		return fmt.Errorf("ssl_cert_login_from %q: want %s or %s", o.SSLCertLoginFrom, CertLoginDistinguishedName, CertLoginCommonName)
	}
	if o.LoginFailureLimit == 0 {
		o.LoginFailureLimit = DefaultLoginFailureLimit
	}
	if o.LoginFailureWindow <= 0 {
		o.LoginFailureWindow = DefaultLoginFailureWindow
	}
	if o.LoginFailureDelay <= 0 {
		o.LoginFailureDelay = DefaultLoginFailureDelay
	}
	o.LoginFailureDelay = min(o.LoginFailureDelay, o.HandshakeTimeout)
	o.MQTT.setDefaults()
	return nil
}

// Server is an AMQP 0-9-1 broker. Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	opts      Options
	log       *slog.Logger
	store     storage.Store
	ownsStore bool
	// meta applies the meta group's commands (meta.go); nil on a single node.
	meta *metaApplier

	loopback map[string]bool // users restricted to loopback; read-only after New

	sac sacCoordinator // the stream protocol's single active consumer groups (stream_sac.go)

	// vhosts is the vhost table: its lock (Server.vhosts in doc.go's table) is held only to read or
	// change the map, and while walking it (Shutdown's markClean and stopTimers).
	vhosts struct {
		sync.RWMutex
		m map[string]*vhost
	}

	adm    adminState  // users, permissions, vhost metadata, statistics (admin_users.go, stats.go)
	pol    policyState // policies (policy.go)
	params paramState  // runtime parameters (params.go)

	fed       fedState    // federation links (federation.go)
	fedActive atomic.Bool // some policy names a federation upstream

	replies replyRegistry // direct reply-to consumers (replyto.go)
	logins  *loginLimiter // failed logins per source address (loginlimit.go)

	tlsHandshakeFailures atomic.Uint64
	authAttempts         authAttempts // logins per protocol (authattempts.go)

	connSeq    atomic.Uint64
	queueIDs   atomic.Uint64 // the last queue id handed out
	closeStore sync.Once

	commit *committer  // every store write goes through it
	qq     *quorumHost // the Raft host of quorum queues (queue_quorum_host.go)
	pager  *pager
	alarm  *diskAlarm
	mem    *memAlarm
	alarms resourceAlarms // raised by alarm and mem (alarm.go)
	// storeDone ends the committer and pager once, after the last connection is gone.
	storeDone sync.Once

	timers timerSet // lets queue timers run until Shutdown (queue_ttl.go)

	flow flowCounters // publisher flow-control pauses (queue_flow.go)

	mqtt mqttState // MQTT client ids and retained messages (mqtt*.go)

	// wg counts every goroutine the server starts: accept loops, read loops and write loops.
	wg sync.WaitGroup

	// acceptStop is closed by Shutdown: it wakes accept loops waiting for a slot (ConnectionMax).
	acceptStop     chan struct{}
	acceptStopOnce sync.Once

	mu struct {
		sync.Mutex
		closed    bool
		listeners map[net.Listener]Listener // the listeners the Serve* methods accept on
		added     map[*Listener]struct{}    // listeners served elsewhere (AddListener)
		conns     map[*conn]struct{}
		stomp     map[*stompConn]struct{} // STOMP connections (stomp.go)
		mqttConns map[*mqttConn]struct{}
		sconns    map[*streamConn]struct{} // stream protocol connections (stream_front.go)
	}
}

// New returns a broker configured by opts, with the vhost opts.DefaultVhost ("/") and its standard
// exchanges.
func New(opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("warren: options: %w", err)
	}
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		loopback: map[string]bool{},
	}
	s.acceptStop = make(chan struct{})
	s.mu.listeners = map[net.Listener]Listener{}
	s.mu.added = map[*Listener]struct{}{}
	s.mu.conns = map[*conn]struct{}{}
	s.mu.stomp = map[*stompConn]struct{}{}
	s.mu.sconns = map[*streamConn]struct{}{}
	s.mu.mqttConns = map[*mqttConn]struct{}{}
	s.vhosts.m = map[string]*vhost{}
	s.logins = newLoginLimiter(&s.opts)
	s.initAdmin()
	s.adm.mu.users[opts.DefaultUser] = newUser(opts.DefaultUser, opts.DefaultPass, "administrator")
	for _, u := range opts.LoopbackUsers {
		s.loopback[u] = true
	}
	s.vhosts.m[opts.DefaultVhost] = newVhost(s, opts.DefaultVhost)
	s.store = opts.Store
	if s.store == nil {
		s.store, s.ownsStore = storage.NewMemStore(), true
	}
	s.commit = newCommitter(s.store, s.log, opts.SyncInterval)
	s.pager = newPager()
	s.alarm = newDiskAlarm(s)
	s.mem = newMemAlarm(s)
	go s.commit.run()
	go s.pager.run()
	go s.alarm.run()
	s.qq = newQuorumHost(s)
	var err error
	if opts.Cluster != nil {
		err = s.startCluster()
	}
	if err == nil {
		s.qq.recovering = true
		err = s.recover()
		s.qq.recovering = false
	}
	if err != nil {
		if s.meta != nil {
			s.meta.stop(false)
		}
		s.qq.close()
		s.alarm.shutdown()
		s.pager.shutdown()
		s.commit.stop()
		if s.ownsStore {
			s.store.Close()
		}
		return nil, fmt.Errorf("warren: %w", err)
	}
	if s.meta != nil {
		s.meta.start() // after recovery: the meta group's commands apply to the recovered broker
	}
	s.startFederation()
	go s.mem.run() // after recovery: it pages recovered queues out
	return s, nil
}

// Serve accepts AMQP connections on ln until Shutdown; it always returns a non-nil error, and
// ErrServerClosed after Shutdown. Temporary accept errors are retried with back-off.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, Listener{Protocol: ProtocolAMQP})
}

// serve is Serve for a listener described by l (its Addr is filled in from ln).
func (s *Server) serve(ln net.Listener, l Listener) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	l.Addr = ln.Addr()
	s.mu.listeners[ln] = l
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.mu.listeners, ln)
		s.mu.Unlock()
	}()

	attrs := []any{"protocol", l.Protocol, "addr", ln.Addr().String()}
	var advHost string // a stream listener's advertised address (metadata, open's properties)
	var advPort int
	if l.Protocol == ProtocolStream || l.Protocol == ProtocolStreamTLS {
		advHost, advPort = s.streamAdvertised(ln.Addr(), l.Protocol == ProtocolStreamTLS)
		attrs = append(attrs, "advertised_host", advHost, "advertised_port", advPort)
	}
	s.log.Info("listener started", attrs...)
	s.startSampler()
	var backoff time.Duration
	var slots chan struct{} // ConnectionMax: a slot is taken before Accept, given back on Close
	if s.opts.ConnectionMax > 0 {
		slots = make(chan struct{}, s.opts.ConnectionMax)
	}
	for {
		if slots != nil {
			select {
			case slots <- struct{}{}:
			default:
				s.log.Warn("connection_max reached: not accepting until a connection closes", "protocol", l.Protocol,
					"addr", ln.Addr().String(), "connection_max", s.opts.ConnectionMax)
				select {
				case slots <- struct{}{}:
				case <-s.acceptStop:
					return ErrServerClosed
				}
			}
		}
		nc, err := ln.Accept()
		if err != nil {
			if slots != nil {
				<-slots
			}
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("warren: accept: %w", err)
		}
		backoff = 0
		mc := s.meter(nc)
		if slots != nil {
			mc.(*meteredConn).release = func() { <-slots }
		}
		var served bool
		switch l.Protocol {
		case ProtocolMQTT, ProtocolMQTTS:
			served = s.serveMQTTConn(newMQTTConn(s, mc))
		case ProtocolSTOMP, ProtocolSTOMPS:
			served = s.serveSTOMPConn(newStompConn(s, mc))
		case ProtocolStream, ProtocolStreamTLS:
			served = serveTracked(s, s.mu.sconns, newStreamConn(s, mc, advHost, advPort))
		default:
			served = s.serveConn(newConn(s, mc))
		}
		if !served {
			nc.Close()
			return ErrServerClosed
		}
	}
}

// serveConn registers c and serves it on a goroutine the server's WaitGroup owns; false if the
// server is closed (c is not served).
func (s *Server) serveConn(c *conn) bool { return serveTracked(s, s.mu.conns, c) }

// trackedConn is a connection of any protocol the server tracks and serves on its own goroutine.
type trackedConn interface {
	comparable
	serve()
}

// serveTracked registers c in conns (one of s.mu's connection sets) and serves it on a goroutine
// the server's WaitGroup owns, taking it out again when it ends; false if the server is closed
// (c is not served). The set is read under s.mu only; the map itself is made once, in New.
func serveTracked[C trackedConn](s *Server, conns map[C]struct{}, c C) bool {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return false
	}
	conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(conns, c)
		s.mu.Unlock()
	}()
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// Shutdown stops accepting, closes every connection with 320 CONNECTION_FORCED, and waits for all
// of the server's goroutines. If ctx ends first, the remaining sockets are closed at once and
// Shutdown still waits for the goroutines (which then end promptly) before returning ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopFederation() // its links publish through the broker
	s.acceptStopOnce.Do(func() { close(s.acceptStop) })
	s.mu.Lock()
	s.mu.closed = true
	for ln := range s.mu.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		conns = append(conns, c)
	}
	stompConns := make([]*stompConn, 0, len(s.mu.stomp))
	for sc := range s.mu.stomp {
		stompConns = append(stompConns, sc)
	}
	mconns := make([]*mqttConn, 0, len(s.mu.mqttConns))
	for c := range s.mu.mqttConns {
		mconns = append(mconns, c)
	}
	s.mu.Unlock()

	for _, c := range conns {
		c.closeFromOutside(amqp.ConnectionForced, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
	}
	for _, sc := range stompConns {
		sc.closeFromOutside("Server shutdown", "The broker is shutting down\n")
	}
	for _, c := range mconns {
		c.closeFromOutside(mqtt.ServerShuttingDown)
	}
	s.closeStreamConns()
	s.stopSampler()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.mu.conns {
			c.nc.Close()
		}
		for sc := range s.mu.stomp {
			sc.nc.Close()
		}
		for c := range s.mu.mqttConns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		err = ctx.Err()
	}
	s.storeDone.Do(func() {
		s.stopTimers()
		s.mem.shutdown()
		s.alarm.shutdown()
		s.pager.shutdown()
		if merr := s.markClean(); merr != nil && err == nil {
			err = fmt.Errorf("warren: recording a clean shutdown: %w", merr)
		}
		if s.meta != nil {
			s.meta.stop(true)
		}
		if qerr := s.qq.close(); qerr != nil && err == nil {
			err = fmt.Errorf("warren: stopping quorum queues: %w", qerr)
		}
		s.commit.stop()
	})
	if s.ownsStore {
		s.closeStore.Do(func() {
			if cerr := s.store.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("warren: closing store: %w", cerr)
			}
		})
	}
	s.log.Info("broker stopped")
	return err
}

func (s *Server) vhost(name string) *vhost {
	s.vhosts.RLock()
	defer s.vhosts.RUnlock()
	return s.vhosts.m[name]
}
