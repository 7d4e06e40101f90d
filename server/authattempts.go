package server

import "sync/atomic"

// Authentication attempts per protocol, as RabbitMQ's core metrics count them
// (/api/auth/attempts/{node}, rabbitmq_auth_attempts_*_total): AMQP 0-9-1 logins at
// connection.start-ok and the management API's basic-auth logins.

// The protocols, with RabbitMQ's names.
const (
	AuthProtocolAMQP = "amqp091"
	AuthProtocolHTTP = "http"
	AuthProtocolMQTT = "mqtt"
)

type authCounter struct{ succeeded, failed atomic.Uint64 }

// authAttempts holds the counters; listed in RabbitMQ's order (http first).
type authAttempts struct{ http, amqp, mqtt authCounter }

func (c *authCounter) record(ok bool) {
	if ok {
		c.succeeded.Add(1)
	} else {
		c.failed.Add(1)
	}
}

// AuthAttempts is one protocol's count of login attempts since start (or the last reset).
type AuthAttempts struct {
	Protocol          string
	Succeeded, Failed uint64
}

// AuthAttempts returns the counts of the protocols that had a login attempt.
func (s *Server) AuthAttempts() []AuthAttempts {
	var out []AuthAttempts
	for _, p := range []struct {
		name string
		c    *authCounter
	}{{AuthProtocolHTTP, &s.authAttempts.http}, {AuthProtocolAMQP, &s.authAttempts.amqp}, {AuthProtocolMQTT, &s.authAttempts.mqtt}} {
		a := AuthAttempts{Protocol: p.name, Succeeded: p.c.succeeded.Load(), Failed: p.c.failed.Load()}
		if a.Succeeded+a.Failed > 0 {
			out = append(out, a)
		}
	}
	return out
}

// ResetAuthAttempts sets the counts to zero (DELETE /api/auth/attempts/{node}).
func (s *Server) ResetAuthAttempts() {
	for _, c := range []*authCounter{&s.authAttempts.http, &s.authAttempts.amqp, &s.authAttempts.mqtt} {
		c.succeeded.Store(0)
		c.failed.Store(0)
	}
}
