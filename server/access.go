package server

import (
	"regexp"

	"github.com/warrenmq/warren/amqp"
)

// Access control as RabbitMQ's internal authorisation backend applies it to AMQP operations.
//
// A user reaches a vhost only with a permission in it. Each operation then needs configure, write
// or read on a named resource: the permission's pattern for that kind is a regular expression
// searched (not anchored) in the resource's name; an empty pattern is "^$", so it matches nothing
// but the empty name. The default exchange is named "amq.default" for these checks. Warren checks
// the current permission on every operation (RabbitMQ caches successful checks per channel), so a
// revoked permission takes effect at once; publishes remember their last successful check until
// any permission changes (checkWriteCached).

// access is one of the three kinds of permission.
type access uint8

const (
	accessConfigure access = iota
	accessWrite
	accessRead
)

// pattern returns p's pattern for kind.
func (p Permission) pattern(kind access) string {
	switch kind {
	case accessConfigure:
		return p.Configure
	case accessWrite:
		return p.Write
	}
	return p.Read
}

// compiledPattern compiles a permission pattern, caching the result. An invalid pattern (PutPermission
// refuses them, so only a damaged store has one) matches nothing.
func (s *Server) compiledPattern(pat string) *regexp.Regexp {
	if pat == "" {
		pat = "^$"
	}
	if re, ok := s.adm.patterns.Load(pat); ok {
		return re.(*regexp.Regexp)
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		re = regexp.MustCompile(`[^\s\S]`) // matches nothing
	}
	s.adm.patterns.Store(pat, re)
	return re
}

// hasVhostAccess reports whether user has a permission in vhost.
func (s *Server) hasVhostAccess(user, vhost string) bool {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	_, ok := s.adm.mu.perms[vhost][user]
	return ok
}

// permitted reports whether user may do kind on the resource called name in vhost.
func (s *Server) permitted(user, vhost string, kind access, name string) bool {
	s.adm.mu.RLock()
	p, ok := s.adm.mu.perms[vhost][user]
	s.adm.mu.RUnlock()
	if !ok {
		return false
	}
	return s.compiledPattern(p.pattern(kind)).MatchString(name)
}

// checkAccess refuses kind on the resource (what is "queue" or "exchange") for the connection's
// user, with RabbitMQ's 403 text. An exchange named "" is the default exchange, "amq.default".
// A connection without a user (none in tests of internals) is not checked.
func (c *conn) checkAccess(kind access, what, name string) error {
	return c.srv.checkAccess(c.user, c.vhost, kind, what, name)
}

// checkAccess refuses kind on the resource (what is "queue" or "exchange") in v for user u, with
// RabbitMQ's 403 text, whatever the protocol asking. No user or no vhost, or a direct connection's
// user (direct.go): not checked.
func (s *Server) checkAccess(u *user, v *vhost, kind access, what, name string) error {
	if u == nil || v == nil || u.direct {
		return nil
	}
	if what == "exchange" && name == "" {
		name = "amq.default"
	}
	if s.permitted(u.name, v.name, kind, name) {
		return nil
	}
	return amqp.Errorf(amqp.AccessRefused, "access to %s '%s' in vhost '%s' refused for user '%s'", what, name, v.name, u.name)
}

// publishAccess remembers the last exchange a publisher was permitted to write to, while the
// permissions stay at gen (one per AMQP channel; one per MQTT or STOMP session).
type publishAccess struct {
	ok       bool
	gen      uint64
	exchange string
}

// checkWriteCached checks write on exchange exName for u in v (a publish), remembering a success
// in cache until the permissions change (RabbitMQ caches successful checks per channel too;
// Warren drops the cache on any change, so a revoked permission still applies to the next
// publish).
func (s *Server) checkWriteCached(u *user, v *vhost, exName string, cache *publishAccess) error {
	gen := s.adm.gen.Load()
	if cache.ok && cache.gen == gen && cache.exchange == exName {
		return nil
	}
	if err := s.checkAccess(u, v, accessWrite, "exchange", exName); err != nil {
		return err
	}
	cache.ok, cache.gen, cache.exchange = true, gen, exName
	return nil
}

// checkQueueDeclare checks a non-passive queue.declare of name (already generated for a
// server-named queue) as RabbitMQ does: configure on the queue, and, for a new queue with a
// dead-letter exchange, read on the queue and write on that exchange. Called under v.meta.
func (c *conn) checkQueueDeclare(v *vhost, name string, args amqp.Table) error {
	if err := c.checkAccess(accessConfigure, "queue", name); err != nil {
		return err
	}
	dlx, ok := args["x-dead-letter-exchange"].(string)
	if !ok || v.mu.queues[name] != nil {
		return nil
	}
	if err := c.checkAccess(accessRead, "queue", name); err != nil {
		return err
	}
	return c.checkAccess(accessWrite, "exchange", dlx)
}
