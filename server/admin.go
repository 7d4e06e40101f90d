package server

import (
	"crypto/tls"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/exchange"
)

// Introspection for the management API and Prometheus. Every method returns a snapshot: plain
// values copied under the locks (each taken briefly, in the order of doc.go) and released before
// the caller encodes anything.

// RabbitMQVersion is the RabbitMQ release whose management API and behaviour Warren follows.
const RabbitMQVersion = "3.10.8"

var startTime = time.Now()

// NodeName is the name this node reports (Options.NodeName), RabbitMQ-style: "warren@<host>".
func (s *Server) NodeName() string { return s.opts.NodeName }

// DefaultNodeName is a node's name unless Options.NodeName says otherwise: "warren@" and the
// machine's host name up to its first dot (RabbitMQ's short names), "warren@localhost" without one.
func DefaultNodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	return "warren@" + host
}

// Uptime is the time since the process started.
func (s *Server) Uptime() time.Duration { return time.Since(startTime) }

// MaxMessageSize is the largest message body the broker accepts.
func (s *Server) MaxMessageSize() int { return s.opts.MaxMessageSize }

// Listeners returns the addresses the broker accepts AMQP connections on.
func (s *Server) Listeners() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.mu.listeners))
	for ln, l := range s.mu.listeners {
		if l.Protocol == ProtocolAMQP || l.Protocol == ProtocolAMQPS {
			out = append(out, ln.Addr())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// openConns returns the connections that finished their handshake.
func (s *Server) openConns() []*conn {
	s.mu.Lock()
	out := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		if c.open.Load() {
			out = append(out, c)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// lists returns v's queues and exchanges, each sorted by name.
func (v *vhost) lists() ([]*queue, []*exchangeEntity) {
	v.mu.RLock()
	qs := make([]*queue, 0, len(v.mu.queues))
	for _, q := range v.mu.queues {
		qs = append(qs, q)
	}
	xs := make([]*exchangeEntity, 0, len(v.mu.exchanges))
	for _, x := range v.mu.exchanges {
		xs = append(xs, x)
	}
	v.mu.RUnlock()
	sort.Slice(qs, func(i, j int) bool { return qs[i].name < qs[j].name })
	sort.Slice(xs, func(i, j int) bool { return xs[i].name < xs[j].name })
	return qs, xs
}

// --- overview ---

// Totals are message counts with their rates of change.
type Totals struct {
	Messages, Ready, Unacked Stat
}

func (s *statSet) totals() Totals {
	return Totals{Messages: s.stat(gMessages), Ready: s.stat(gReady), Unacked: s.stat(gUnacked)}
}

// Churn counts objects created and closed since the start, with rates.
type Churn struct {
	ConnectionCreated, ConnectionClosed, ChannelCreated, ChannelClosed Stat
	QueueCreated, QueueDeclared, QueueDeleted                          Stat
}

// Overview is the broker-wide picture of /api/overview.
type Overview struct {
	Node, ClusterName                                   string
	Connections, Channels, Exchanges, Queues, Consumers int
	QueueTotals                                         Totals // sampled (rates need the sampler)
	Stats                                               MessageStats
	Churn                                               Churn
	Listeners                                           []net.Addr
}

// Overview returns broker-wide totals.
func (s *Server) Overview() Overview {
	o := Overview{Node: s.NodeName(), ClusterName: s.ClusterName(), Listeners: s.Listeners()}
	conns := s.openConns()
	o.Connections = len(conns) + len(s.openMQTTConns()) + len(s.openSTOMPConns()) // as RabbitMQ counts them
	for _, c := range conns {
		o.Channels += len(c.channelList())
	}
	for _, v := range s.vhostList() {
		qs, xs := v.lists()
		o.Queues += len(qs)
		o.Exchanges += len(xs)
		for _, q := range qs {
			_, n := q.counts()
			o.Consumers += int(n)
		}
	}
	g := &s.adm.stats
	o.Stats = g.messageStats()
	o.QueueTotals = g.totals()
	o.Churn = Churn{
		ConnectionCreated: g.stat(sConnCreated), ConnectionClosed: g.stat(sConnClosed),
		ChannelCreated: g.stat(sChanCreated), ChannelClosed: g.stat(sChanClosed),
		QueueCreated: g.stat(sQueueCreated), QueueDeclared: g.stat(sQueueDeclared), QueueDeleted: g.stat(sQueueDeleted),
	}
	return o
}

// VhostStats are a vhost's message counters, totals and traffic.
type VhostStats struct {
	Stats            MessageStats
	Totals           Totals
	RecvOct, SendOct Stat
}

// VhostStats returns the named vhost's statistics.
func (s *Server) VhostStats(name string) (VhostStats, error) {
	v := s.vhost(name)
	if v == nil {
		return VhostStats{}, ErrNotFound
	}
	return VhostStats{Stats: v.stats.messageStats(), Totals: v.stats.totals(),
		RecvOct: v.stats.stat(sRecvOct), SendOct: v.stats.stat(sSendOct)}, nil
}

// GlobalCounters are the server-wide counters rabbitmq_prometheus exports as rabbitmq_global_*.
type GlobalCounters struct {
	Received, ReceivedConfirm, Confirmed, Routed, UnroutableDropped, UnroutableReturned int64
	DeliveredConsumeAutoAck, DeliveredConsumeManualAck, DeliveredGetAutoAck             int64
	DeliveredGetManualAck, Redelivered, Acknowledged, GetEmpty                          int64
	Publishers, Consumers                                                               int
}

// GlobalCounters returns the server-wide message counters.
func (s *Server) GlobalCounters() GlobalCounters {
	g := &s.adm.stats
	gc := GlobalCounters{
		Received: g.get(sPublish), ReceivedConfirm: g.get(sReceivedConfirm), Confirmed: g.get(sConfirm),
		Routed: g.get(sRouted), UnroutableDropped: g.get(sDropUnroutable), UnroutableReturned: g.get(sReturnUnroutable),
		DeliveredConsumeAutoAck: g.get(sDeliverNoAck), DeliveredConsumeManualAck: g.get(sDeliver),
		DeliveredGetAutoAck: g.get(sGetNoAck), DeliveredGetManualAck: g.get(sGet),
		Redelivered: g.get(sRedeliver), Acknowledged: g.get(sAck), GetEmpty: g.get(sGetEmpty),
	}
	for _, c := range s.openConns() {
		for _, ch := range c.channelList() {
			if ch.stats.get(sPublish) > 0 {
				gc.Publishers++
			}
			ch.mu.Lock()
			gc.Consumers += len(ch.mu.consumers)
			ch.mu.Unlock()
		}
	}
	return gc
}

// --- queues ---

// QueueInfo is a queue's snapshot.
type QueueInfo struct {
	Vhost, Name                    string
	Durable, AutoDelete, Exclusive bool
	Owner                          string // the exclusive owner's connection name
	Arguments                      amqp.Table
	Ready, Unacked                 int64
	ReadyBytes, UnackedBytes       int64
	Persistent, PersistentBytes    int64 // of the messages in memory (paged-out ones are not read back to count)
	PagedOut, PagedOutBytes        int64 // ready messages only in the store
	Consumers                      int
	Memory                         int64 // estimate: message bytes and per-message bookkeeping
	Totals                         Totals
	Stats                          MessageStats
	ConsumerDetails                []ConsumerInfo // only from Queue
	Policy                         string         // the applied policy's name; "": none
	OperatorPolicy                 string         // the applied operator policy's name; "": none
	PolicyDefinition               map[string]any // the two merged (effectiveDefinition; do not modify)
	// A quorum queue's members (node names): its leader as this node knows it ("" while none is
	// known), every member, and those this node reaches (itself included).
	Leader          string
	Members, Online []string
	// A quorum queue's at-least-once dead letters not yet confirmed by their target.
	DeadLetterPending, DeadLetterBytes int64
}

// perMessageOverhead estimates the memory a queued message costs besides its body and properties.
const perMessageOverhead = 160

// unackedSums are a queue's unacknowledged deliveries, summed over every channel.
type unackedSums struct {
	bytes, persistent, persistentBytes, memory int64
}

func (s *Server) unackedByQueue() map[*queue]*unackedSums {
	out := map[*queue]*unackedSums{}
	for _, c := range s.openConns() {
		for _, ch := range c.channelList() {
			ch.mu.Lock()
			for _, d := range ch.mu.unacked {
				u := out[d.q]
				if u == nil {
					u = &unackedSums{}
					out[d.q] = u
				}
				m := d.e.msg
				u.bytes += int64(len(m.body))
				u.memory += int64(len(m.body)+len(m.props)) + perMessageOverhead
				if m.persistent {
					u.persistent++
					u.persistentBytes += int64(len(m.body))
				}
			}
			ch.mu.Unlock()
		}
	}
	return out
}

// Queues returns the queues of the vhosts match accepts (nil: all), sorted by vhost and name.
func (s *Server) Queues(match func(vhost string) bool) []QueueInfo {
	un := s.unackedByQueue()
	var out []QueueInfo
	for _, v := range s.vhostList() {
		if match != nil && !match(v.name) {
			continue
		}
		qs, _ := v.lists()
		for _, q := range qs {
			out = append(out, q.info(un[q]))
		}
	}
	return out
}

// Queue returns one queue with its consumers.
func (s *Server) Queue(vhost, name string) (QueueInfo, error) {
	v := s.vhost(vhost)
	if v == nil {
		return QueueInfo{}, ErrNotFound
	}
	v.mu.RLock()
	q := v.mu.queues[name]
	v.mu.RUnlock()
	if q == nil {
		return QueueInfo{}, ErrNotFound
	}
	qi := q.info(s.unackedByQueue()[q])
	qi.ConsumerDetails = q.consumerInfos()
	return qi, nil
}

// --- consumers ---

// ChannelRef names a channel and its connection.
type ChannelRef struct {
	Name, ConnectionName, User string
	Number                     int
	PeerHost                   string
	PeerPort                   int
}

// ConsumerInfo is a consumer's snapshot.
type ConsumerInfo struct {
	Vhost, Queue, Tag      string
	AckRequired, Exclusive bool
	Prefetch               int
	Arguments              amqp.Table
	Channel                ChannelRef
}

func (ch *channel) ref() ChannelRef {
	c := ch.conn
	host, port := splitAddr(c.nc.RemoteAddr())
	return ChannelRef{Name: ch.name(), ConnectionName: c.name, User: c.user.name, Number: int(ch.id), PeerHost: host, PeerPort: port}
}

func (ch *channel) name() string { return ch.conn.name + " (" + strconv.Itoa(int(ch.id)) + ")" }

// Consumers returns the consumers in the vhosts match accepts (nil: all).
func (s *Server) Consumers(match func(vhost string) bool) []ConsumerInfo {
	var out []ConsumerInfo
	for _, v := range s.vhostList() {
		if match != nil && !match(v.name) {
			continue
		}
		qs, _ := v.lists()
		for _, q := range qs {
			out = append(out, q.consumerInfos()...)
		}
	}
	return out
}

// --- exchanges and bindings ---

// ExchangeInfo is an exchange's snapshot.
type ExchangeInfo struct {
	Vhost, Name, Type             string
	Durable, AutoDelete, Internal bool
	Arguments                     amqp.Table
	Stats                         MessageStats
	Policy                        string // the applied policy's name; "": none
}

func (x *exchangeEntity) info(vhost string) ExchangeInfo {
	return ExchangeInfo{Vhost: vhost, Name: x.name, Type: x.kind.String(), Durable: x.durable, AutoDelete: x.autoDelete,
		Internal: x.internal, Arguments: x.args, Stats: x.stats.messageStats(), Policy: policyName(x.pol.Load())}
}

// Exchanges returns the exchanges of the vhosts match accepts (nil: all).
func (s *Server) Exchanges(match func(vhost string) bool) []ExchangeInfo {
	var out []ExchangeInfo
	for _, v := range s.vhostList() {
		if match != nil && !match(v.name) {
			continue
		}
		_, xs := v.lists()
		for _, x := range xs {
			out = append(out, x.info(v.name))
		}
	}
	return out
}

// Exchange returns one exchange ("" is the default exchange).
func (s *Server) Exchange(vhost, name string) (ExchangeInfo, error) {
	v := s.vhost(vhost)
	if v == nil {
		return ExchangeInfo{}, ErrNotFound
	}
	x := v.exchange(name)
	if x == nil {
		return ExchangeInfo{}, ErrNotFound
	}
	return x.info(vhost), nil
}

// BindingInfo is one binding. The default exchange's implicit bindings (to every queue, keyed by
// its name) are listed too, as RabbitMQ lists them.
type BindingInfo struct {
	Vhost, Source, Destination, DestinationType, RoutingKey string
	Arguments                                               amqp.Table
}

// Bindings returns the bindings of the vhosts match accepts (nil: all), sorted.
func (s *Server) Bindings(match func(vhost string) bool) []BindingInfo {
	var out []BindingInfo
	for _, v := range s.vhostList() {
		if match != nil && !match(v.name) {
			continue
		}
		out = append(out, v.bindings()...)
	}
	return out
}

// VhostBindings returns the bindings of one vhost.
func (s *Server) VhostBindings(vhost string) ([]BindingInfo, error) {
	v := s.vhost(vhost)
	if v == nil {
		return nil, ErrNotFound
	}
	return v.bindings(), nil
}

func (v *vhost) bindings() []BindingInfo {
	qs, xs := v.lists()
	var out []BindingInfo
	for _, q := range qs {
		out = append(out, BindingInfo{Vhost: v.name, Destination: q.name, DestinationType: "queue", RoutingKey: q.name, Arguments: amqp.Table{}})
	}
	var rest []BindingInfo
	for _, x := range xs {
		if x.name == "" {
			continue
		}
		x.mu.Lock()
		bs := x.mu.router.Bindings()
		x.mu.Unlock()
		for _, b := range bs {
			rest = append(rest, BindingInfo{Vhost: v.name, Source: x.name, Destination: b.Dest.destName(),
				DestinationType: b.Dest.destKind(), RoutingKey: b.Key, Arguments: tableOrEmpty(b.Args)})
		}
	}
	sort.SliceStable(rest, func(i, j int) bool {
		a, b := rest[i], rest[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.DestinationType != b.DestinationType {
			return a.DestinationType > b.DestinationType // queues before exchanges
		}
		if a.Destination != b.Destination {
			return a.Destination < b.Destination
		}
		return a.RoutingKey < b.RoutingKey
	})
	return append(out, rest...)
}

// --- connections and channels ---

// ConnectionInfo is a connection's snapshot.
type ConnectionInfo struct {
	Name, Vhost, User, AuthMechanism string
	Host, PeerHost                   string
	Port, PeerPort                   int
	ConnectedAt                      time.Time
	Channels                         int
	FrameMax, ChannelMax, Heartbeat  int // Heartbeat in seconds
	ClientProperties                 amqp.Table
	RecvOct, SendOct                 Stat
	RecvCnt, SendCnt                 int64
	// TLS is set for an AMQPS (or MQTT over TLS) connection.
	TLS *ConnTLS
	// Protocol is RabbitMQ's name for the connection's protocol: "AMQP 0-9-1", "MQTT 3.1.1", ...
	Protocol string
}

// ConnTLS describes an AMQPS connection's TLS session, with RabbitMQ's ssl_* and peer_cert_*
// values where they map (the cipher suite in Go's names).
type ConnTLS struct {
	Protocol                                          string // "tlsv1.2", "tlsv1.3"
	Cipher                                            string
	PeerCertSubject, PeerCertIssuer, PeerCertValidity string // "" without a client certificate
}

func (c *conn) info(s *Server) ConnectionInfo {
	ci := ConnectionInfo{
		Name: c.name, Vhost: c.vhost.name, User: c.user.name, AuthMechanism: c.adm.mechanism,
		Channels: len(c.channelList()), FrameMax: int(c.frameMax), ChannelMax: int(c.channelMax),
		Heartbeat: int(c.heartbeat / time.Second), ClientProperties: c.clientProps, Protocol: "AMQP 0-9-1",
	}
	ci.Host, ci.Port = splitAddr(c.nc.LocalAddr())
	ci.PeerHost, ci.PeerPort = splitAddr(c.nc.RemoteAddr())
	if m := c.metered(); m != nil {
		ci.ConnectedAt = m.at
		rr, sr := s.adm.connRates.rates(c)
		ci.RecvOct = Stat{Count: m.recvOct.Load(), Rate: rr}
		ci.SendOct = Stat{Count: m.sendOct.Load(), Rate: sr}
		ci.RecvCnt, ci.SendCnt = m.recvCnt.Load(), m.sendCnt.Load()
	}
	if st := c.tls; st != nil {
		ci.TLS = &ConnTLS{Protocol: tlsVersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite)}
		if len(st.PeerCertificates) > 0 {
			pc := st.PeerCertificates[0]
			ci.TLS.PeerCertSubject, _ = certLoginName(pc, CertLoginDistinguishedName)
			ci.TLS.PeerCertIssuer = issuerDN(pc)
			ci.TLS.PeerCertValidity = pc.NotBefore.UTC().Format("2006-01-02T15:04:05Z") + " - " + pc.NotAfter.UTC().Format("2006-01-02T15:04:05Z")
		}
	}
	return ci
}

// Connections returns the open connections, oldest first.
func (s *Server) Connections() []ConnectionInfo {
	conns := s.openConns()
	out := make([]ConnectionInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.info(s))
	}
	for _, c := range s.openMQTTConns() {
		out = append(out, c.info())
	}
	for _, sc := range s.openSTOMPConns() {
		out = append(out, sc.info())
	}
	return out
}

func (s *Server) findConn(name string) *conn {
	for _, c := range s.openConns() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Connection returns the named connection.
func (s *Server) Connection(name string) (ConnectionInfo, error) {
	c := s.findConn(name)
	if c == nil {
		if mc := s.findMQTTConn(name); mc != nil {
			return mc.info(), nil
		}
		if sc := s.findSTOMPConn(name); sc != nil {
			return sc.info(), nil
		}
		return ConnectionInfo{}, ErrNotFound
	}
	return c.info(s), nil
}

// ChannelInfo is a channel's snapshot.
type ChannelInfo struct {
	ChannelRef
	Vhost                    string
	Confirm, Transactional   bool
	Consumers, Unacked       int
	Unconfirmed              int // publishes awaiting their confirm (confirm mode)
	Prefetch, GlobalPrefetch int
	Stats                    MessageStats
	ConsumerDetails          []ConsumerInfo // only from Channel
}

func (ch *channel) info() ChannelInfo {
	ci := ChannelInfo{
		ChannelRef: ch.ref(), Vhost: ch.conn.vhost.name, Confirm: ch.stats.confirm.Load(),
		Transactional: ch.stats.tx.Load(), Prefetch: int(ch.stats.prefetch.Load()), Stats: ch.stats.messageStats(),
	}
	ch.mu.Lock()
	ci.Consumers = len(ch.mu.consumers)
	ci.Unacked = len(ch.mu.unacked)
	ci.GlobalPrefetch = int(ch.mu.prefetchGlobal)
	ch.mu.Unlock()
	ci.Unconfirmed = ch.confirms.unconfirmed()
	return ci
}

// Channels returns the open channels; connection "" means every connection's.
func (s *Server) Channels(connection string) ([]ChannelInfo, error) {
	var conns []*conn
	if connection == "" {
		conns = s.openConns()
	} else if c := s.findConn(connection); c != nil {
		conns = []*conn{c}
	} else {
		return nil, ErrNotFound
	}
	var out []ChannelInfo
	for _, c := range conns {
		chs := c.channelList()
		sort.Slice(chs, func(i, j int) bool { return chs[i].id < chs[j].id })
		for _, ch := range chs {
			out = append(out, ch.info())
		}
	}
	return out, nil
}

// Channel returns one channel by its name ("<connection name> (<number>)") with its consumers.
func (s *Server) Channel(name string) (ChannelInfo, error) {
	for _, c := range s.openConns() {
		if !strings.HasPrefix(name, c.name+" (") {
			continue
		}
		for _, ch := range c.channelList() {
			if ch.name() != name {
				continue
			}
			ci := ch.info()
			ch.mu.Lock()
			cs := make([]*consumer, 0, len(ch.mu.consumers))
			for _, cons := range ch.mu.consumers {
				cs = append(cs, cons)
			}
			ch.mu.Unlock()
			sort.Slice(cs, func(i, j int) bool { return cs[i].tag < cs[j].tag })
			for _, cons := range cs {
				ci.ConsumerDetails = append(ci.ConsumerDetails, ConsumerInfo{
					Vhost: ci.Vhost, Queue: cons.q.name, Tag: cons.tag, AckRequired: !cons.noAck, Exclusive: cons.exclusive,
					Prefetch: int(cons.prefetch), Arguments: cons.args, Channel: ci.ChannelRef,
				})
			}
			return ci, nil
		}
	}
	return ChannelInfo{}, ErrNotFound
}

// ExchangeTypes lists the exchange types the broker implements.
func ExchangeTypes() []string {
	return []string{exchange.Direct.String(), exchange.Fanout.String(), exchange.Headers.String(), exchange.Topic.String(),
		exchange.FederationUpstream.String()}
}

func splitAddr(a net.Addr) (string, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	if a == nil {
		return "", 0
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), 0
	}
	n, _ := strconv.Atoi(port)
	return host, n
}
