package server

import (
	"net"
	"testing"

	"github.com/warrenmq/warren/amqp"
)

// addrConn is a net.Conn with chosen addresses; only RemoteAddr and LocalAddr are used here.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }
func (c addrConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5672} }

// guest may log in only from loopback, as RabbitMQ's loopback_users; other users from anywhere;
// PLAIN and AMQPLAIN both carry the credentials.
func TestAuthenticateLoopbackAndMechanisms(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.adm.mu.users["alice"] = newUser("alice", "secret")
	amqplain := func(user, pass string) string {
		b, err := amqp.AppendTable(nil, amqp.Table{"LOGIN": user, "PASSWORD": pass})
		if err != nil {
			t.Fatal(err)
		}
		return string(b[4:]) // AMQPLAIN sends the table without its length
	}
	remote := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 40000}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	cases := []struct {
		name     string
		from     net.Addr
		mech     string
		response string
		want     uint16 // 0 = accepted
	}{
		{"guest from loopback", local, "PLAIN", "\x00guest\x00guest", 0},
		{"guest from remote", remote, "PLAIN", "\x00guest\x00guest", amqp.AccessRefused},
		{"alice from remote", remote, "PLAIN", "\x00alice\x00secret", 0},
		{"alice amqplain", remote, "AMQPLAIN", amqplain("alice", "secret"), 0},
		{"wrong password", local, "PLAIN", "\x00guest\x00nope", amqp.AccessRefused},
		{"unknown user", local, "AMQPLAIN", amqplain("bob", "x"), amqp.AccessRefused},
		{"malformed plain", local, "PLAIN", "guest", amqp.AccessRefused},
		{"unknown mechanism", local, "EXTERNAL", "", amqp.CommandInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cn := newConn(s, addrConn{remote: c.from})
			err := cn.authenticate(&amqp.ConnectionStartOk{Mechanism: c.mech, Response: c.response})
			switch {
			case c.want == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != 0 && (err == nil || asAMQPError(err).Code != c.want):
				t.Fatalf("got %v, want code %d", err, c.want)
			}
		})
	}
}
