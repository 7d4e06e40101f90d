package server

import (
	"fmt"
	"net"
)

// Direct connections: RabbitMQ's plugins (shovel, federation) reach their own node through
// Erlang's direct connection, as the user "none" that has access to everything, without a socket
// or a password. DialDirect is Warren's: an AMQP 0-9-1 connection over an in-memory pipe, served
// like an accepted socket (listed, closed by Shutdown and by its vhost's deletion), that offers
// only the EXTERNAL mechanism and logs in as "none" with access to every vhost and resource.
// Nothing outside the process can open one. The client speaks AMQP over it like over TCP, so the
// plugins use the same client code for the local broker and a remote one.

const directUser = "none"

// DialDirect opens a direct connection to the broker and returns the client's end. The client
// must log in with the EXTERNAL mechanism (any response).
func (s *Server) DialDirect() (net.Conn, error) {
	client, server := net.Pipe()
	c := newConn(s, s.meter(server))
	c.direct = true
	c.name = fmt.Sprintf("<%s.direct.%d>", s.NodeName(), c.id)
	c.log = s.log.With("conn", c.name)
	if !s.serveConn(c) {
		client.Close()
		server.Close()
		return nil, ErrServerClosed
	}
	return client, nil
}
