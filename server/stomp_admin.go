package server

import (
	"crypto/tls"
	"sort"

	"github.com/warrenmq/warren/amqp"
)

// STOMP connections in the management API (/api/connections, DELETE /api/connections/{name}) and
// in the connection limits, as RabbitMQ 3.10.8's rabbitmq_stomp and rabbitmq_web_stomp list them.

// openSTOMPConns returns the STOMP connections past their CONNECT, oldest first.
func (s *Server) openSTOMPConns() []*stompConn {
	s.mu.Lock()
	out := make([]*stompConn, 0, len(s.mu.stomp))
	for sc := range s.mu.stomp {
		// openVhost is stored after the user, vhost and version are set (connect), and never
		// changes after: what info reads is settled for a connection with it set.
		if sc.openVhost.Load() != nil {
			out = append(out, sc)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// findSTOMPConn returns the open STOMP connection called name, or nil.
func (s *Server) findSTOMPConn(name string) *stompConn {
	for _, sc := range s.openSTOMPConns() {
		if sc.name == name {
			return sc
		}
	}
	return nil
}

// info is the connection's snapshot for the management API, as RabbitMQ shows a STOMP connection:
// protocol "STOMP 1.2" ("Web STOMP 1.2" over a WebSocket), one channel, client properties
// {"product": "STOMP client"}.
func (sc *stompConn) info() ConnectionInfo {
	ci := ConnectionInfo{
		Name: sc.name, Vhost: sc.vhost.name, User: sc.user.name, Protocol: "STOMP " + sc.v.String(),
		Channels: 1, ChannelMax: 1, ClientProperties: amqp.Table{"product": "STOMP client"},
	}
	web, tc := webConn(sc.nc)
	if web {
		ci.Protocol = "Web " + ci.Protocol
	} else {
		nc := sc.nc
		if m, ok := nc.(*meteredConn); ok {
			nc = m.Conn
		}
		tc, _ = nc.(*tls.Conn)
	}
	ci.Host, ci.Port = splitAddr(sc.nc.LocalAddr())
	ci.PeerHost, ci.PeerPort = splitAddr(sc.nc.RemoteAddr())
	if m, ok := sc.nc.(*meteredConn); ok {
		ci.ConnectedAt = m.at
		ci.RecvOct = Stat{Count: m.recvOct.Load()}
		ci.SendOct = Stat{Count: m.sendOct.Load()}
		ci.RecvCnt, ci.SendCnt = m.recvCnt.Load(), m.sendCnt.Load()
	}
	if tc != nil {
		// The handshake is done: CONNECT was read over it (STOMPS), or the HTTP server did it
		// before the upgrade (wss://).
		st := tc.ConnectionState()
		ci.TLS = &ConnTLS{Protocol: tlsVersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite)}
	}
	return ci
}

// ConnectionsByProtocol counts the open connections of /api/connections by their protocol, as
// listed there ("AMQP 0-9-1", "MQTT 3.1.1", "Web MQTT 3.1.1", "STOMP 1.2", "Web STOMP 1.2", ...),
// without building their snapshots (Prometheus' warren_connections).
func (s *Server) ConnectionsByProtocol() map[string]int {
	out := map[string]int{}
	if n := len(s.openConns()); n > 0 {
		out["AMQP 0-9-1"] = n
	}
	for _, c := range s.openMQTTConns() {
		p := mqttProtocolName(c.version)
		if web, _ := webConn(c.nc); web {
			p = "Web " + p
		}
		out[p]++
	}
	for _, sc := range s.openSTOMPConns() {
		p := "STOMP " + sc.v.String()
		if web, _ := webConn(sc.nc); web {
			p = "Web " + p
		}
		out[p]++
	}
	return out
}
