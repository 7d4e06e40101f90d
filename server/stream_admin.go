package server

import (
	"cmp"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// What management shows of the stream protocol front end (/api/stream/connections, publishers,
// consumers): each connection keeps a snapshot of what its read loop negotiated (streamConn.adm),
// its publishers (under adm too, with atomic counters) and subscriptions (streamSub.mu).

// streamConnAdm is a stream connection's state as management reads it; set by the read loop.
type streamConnAdm struct {
	sync.Mutex
	open        bool // open succeeded: the connection is listed
	vhost, user string
	mechanism   string
	props       amqp.Table // the client's peer properties
	pubs        []*streamPub
}

// streamPubStats counts a publisher's messages, as RabbitMQ's published, confirmed and errored.
type streamPubStats struct {
	published, confirmed, errored atomic.Int64
}

// StreamConnRef names a stream connection in a publisher's or consumer's connection_details.
type StreamConnRef struct {
	Name, PeerHost, User string
	PeerPort             int
}

// StreamPublisherInfo is a stream protocol publisher's snapshot.
type StreamPublisherInfo struct {
	Conn                          StreamConnRef
	Vhost, Stream, Reference      string
	ID                            uint8
	Published, Confirmed, Errored int64
}

// StreamConsumerInfo is a stream protocol subscription's snapshot.
type StreamConsumerInfo struct {
	Conn              StreamConnRef
	Vhost, Stream     string
	ID                uint8
	Credits           int
	Consumed          int64
	Offset, OffsetLag int64
	Properties        map[string]string
}

// streamConnName is RabbitMQ's name of a stream connection: "peer -> local".
func streamConnName(nc net.Conn) string {
	return nc.RemoteAddr().String() + " -> " + nc.LocalAddr().String()
}

// openStreamConns returns the stream connections past open, oldest first.
func (s *Server) openStreamConns() []*streamConn {
	s.mu.Lock()
	all := make([]*streamConn, 0, len(s.mu.sconns))
	for c := range s.mu.sconns {
		all = append(all, c)
	}
	s.mu.Unlock()
	out := all[:0]
	for _, c := range all { // Server.mu stays a leaf: adm is taken after it
		c.adm.Lock()
		open := c.adm.open
		c.adm.Unlock()
		if open {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *streamConn) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.name, b.name))
	})
	return out
}

func (c *streamConn) ref() StreamConnRef {
	c.adm.Lock()
	defer c.adm.Unlock()
	r := StreamConnRef{Name: c.name, User: c.adm.user}
	r.PeerHost, r.PeerPort = splitAddr(c.nc.RemoteAddr())
	return r
}

func (c *streamConn) info() ConnectionInfo {
	c.adm.Lock()
	ci := ConnectionInfo{Name: c.name, Vhost: c.adm.vhost, User: c.adm.user, AuthMechanism: c.adm.mechanism,
		ClientProperties: c.adm.props, Protocol: ProtocolStream, FrameMax: int(c.frameMaxAdm.Load()),
		Heartbeat: int(time.Duration(c.heartbeat.Load()) / time.Second)}
	c.adm.Unlock()
	ci.Host, ci.Port = splitAddr(c.nc.LocalAddr())
	ci.PeerHost, ci.PeerPort = splitAddr(c.nc.RemoteAddr())
	if m, ok := c.nc.(*meteredConn); ok {
		ci.ConnectedAt = m.at
		ci.RecvOct = Stat{Count: m.recvOct.Load()}
		ci.SendOct = Stat{Count: m.sendOct.Load()}
		ci.RecvCnt, ci.SendCnt = m.recvCnt.Load(), m.sendCnt.Load()
		if tc, ok := m.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			ci.TLS = &ConnTLS{Protocol: tlsVersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite)}
		}
	}
	return ci
}

// StreamConnections returns the open stream protocol connections, oldest first.
func (s *Server) StreamConnections() []ConnectionInfo {
	conns := s.openStreamConns()
	out := make([]ConnectionInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.info())
	}
	return out
}

func (s *Server) findStreamConn(vhost, name string) *streamConn {
	for _, c := range s.openStreamConns() {
		c.adm.Lock()
		vh := c.adm.vhost
		c.adm.Unlock()
		if c.name == name && vh == vhost {
			return c
		}
	}
	return nil
}

// StreamConnection returns the stream connection called name in vhost.
func (s *Server) StreamConnection(vhost, name string) (ConnectionInfo, error) {
	c := s.findStreamConn(vhost, name)
	if c == nil {
		return ConnectionInfo{}, ErrNotFound
	}
	return c.info(), nil
}

// streamConnsFor is every open stream connection (name "") or the one called name in vhost.
func (s *Server) streamConnsFor(vhost, name string) ([]*streamConn, error) {
	if name == "" {
		return s.openStreamConns(), nil
	}
	c := s.findStreamConn(vhost, name)
	if c == nil {
		return nil, ErrNotFound
	}
	return []*streamConn{c}, nil
}

// StreamPublishers returns the publishers of every stream connection (name "") or of the one
// called name in vhost, by connection then publisher id.
func (s *Server) StreamPublishers(vhost, name string) ([]StreamPublisherInfo, error) {
	conns, err := s.streamConnsFor(vhost, name)
	if err != nil {
		return nil, err
	}
	var out []StreamPublisherInfo
	for _, c := range conns {
		ref := c.ref()
		c.adm.Lock()
		pubs := slices.Clone(c.adm.pubs)
		vh := c.adm.vhost
		c.adm.Unlock()
		slices.SortFunc(pubs, func(a, b *streamPub) int { return cmp.Compare(a.id, b.id) })
		for _, p := range pubs {
			out = append(out, StreamPublisherInfo{Conn: ref, Vhost: vh, Stream: p.stream, Reference: p.ref, ID: p.id,
				Published: p.stats.published.Load(), Confirmed: p.stats.confirmed.Load(), Errored: p.stats.errored.Load()})
		}
	}
	return out, nil
}

// StreamConsumers returns the subscriptions of every stream connection (name "") or of the one
// called name in vhost, by connection then subscription id.
func (s *Server) StreamConsumers(vhost, name string) ([]StreamConsumerInfo, error) {
	conns, err := s.streamConnsFor(vhost, name)
	if err != nil {
		return nil, err
	}
	var out []StreamConsumerInfo
	for _, c := range conns {
		ref := c.ref()
		c.adm.Lock()
		vh := c.adm.vhost
		c.adm.Unlock()
		c.subs.Lock()
		subs := make([]*streamSub, 0, len(c.subs.m))
		for _, b := range c.subs.m {
			subs = append(subs, b)
		}
		c.subs.Unlock()
		slices.SortFunc(subs, func(a, b *streamSub) int { return cmp.Compare(a.id, b.id) })
		for _, b := range subs {
			ci := StreamConsumerInfo{Conn: ref, Vhost: vh, Stream: b.stream, ID: b.id, Properties: map[string]string{}}
			for _, kv := range b.props {
				ci.Properties[kv.Key] = kv.Value
			}
			b.mu.Lock()
			ci.Credits, ci.Consumed, ci.Offset = max(b.credit, 0), b.consumed, b.lastOffset
			b.mu.Unlock()
			if sq, ok := b.q.queueImpl.(*streamQueue); ok {
				sq.mu.Lock()
				if sq.mu.committed > 0 {
					ci.OffsetLag = max(int64(sq.mu.committed)-1-ci.Offset, 0)
				}
				sq.mu.Unlock()
			}
			out = append(out, ci)
		}
	}
	return out, nil
}
