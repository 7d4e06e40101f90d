package server

import (
	"crypto/tls"
	"net"
	"sort"
)

// RabbitMQ's names for the protocols of a node's listeners, as /api/overview lists them and the
// protocol-listener health check takes them.
const (
	ProtocolAMQP  = "amqp"
	ProtocolAMQPS = "amqp/ssl"
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"
	ProtocolMQTT  = "mqtt"
	ProtocolMQTTS = "mqtt/ssl"
)

// Listener is one of the node's listeners: its protocol (ProtocolAMQP, ...), its address and,
// for a TLS listener, the files its certificates come from (the certificate-expiration health
// check reads them, as RabbitMQ reads a listener's certfile and cacertfile).
type Listener struct {
	Protocol string
	Addr     net.Addr
	Files    TLSFiles // empty for a plain listener, or a TLS one configured without files
}

// ServeTLS is Serve for AMQPS: it accepts TLS connections on ln with cfg and lists the listener as
// RabbitMQ's "amqp/ssl", with files (the certificate files behind cfg, if any) for the
// certificate-expiration health check. The TLS handshake runs on the connection's goroutine,
// within the handshake timeout; failures are counted (TLSHandshakeFailures).
func (s *Server) ServeTLS(ln net.Listener, cfg *tls.Config, files TLSFiles) error {
	return s.serve(tls.NewListener(ln, cfg), Listener{Protocol: ProtocolAMQPS, Files: files})
}

// AddListener lists a listener the broker does not serve itself (the management HTTP and HTTPS
// listeners, which the process serves next to it) with the broker's own; the returned function
// takes it off the list again.
func (s *Server) AddListener(l Listener) (remove func()) {
	p := &l
	s.mu.Lock()
	s.mu.added[p] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.mu.added, p)
		s.mu.Unlock()
	}
}

// AllListeners returns every listener of the node: the AMQP and AMQPS ones it serves and the ones
// added with AddListener, ordered by protocol, then address.
func (s *Server) AllListeners() []Listener {
	s.mu.Lock()
	out := make([]Listener, 0, len(s.mu.listeners)+len(s.mu.added))
	for _, l := range s.mu.listeners {
		out = append(out, l)
	}
	for l := range s.mu.added {
		out = append(out, *l)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Protocol != out[j].Protocol {
			return protocolRank(out[i].Protocol) < protocolRank(out[j].Protocol)
		}
		return out[i].Addr.String() < out[j].Addr.String()
	})
	return out
}

// protocolRank orders listeners as RabbitMQ's overview does: AMQP first, then the HTTP ones, then
// the plugins' (Web MQTT, Web STOMP, MQTT, STOMP), as RabbitMQ lists them.
func protocolRank(p string) int {
	switch p {
	case ProtocolAMQP:
		return 0
	case ProtocolAMQPS:
		return 1
	case ProtocolHTTP:
		return 2
	case ProtocolHTTPS:
		return 3
	case ProtocolWebMQTT:
		return 4
	case ProtocolWebMQTTS:
		return 5
	case ProtocolWebSTOMP:
		return 6
	case ProtocolWebSTOMPS:
		return 7
	case ProtocolMQTT:
		return 8
	case ProtocolMQTTS:
		return 9
	case ProtocolSTOMP:
		return 10
	case ProtocolSTOMPS:
		return 11
	}
	return 12
}
