package server

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/storage"
)

// TopicPermission is a user's write and read patterns on the routing keys of a topic exchange in a
// vhost. Without one for an exchange, every key is allowed (as in RabbitMQ).
type TopicPermission struct {
	User, Vhost, Exchange string
	Write, Read           string
}

func (p TopicPermission) record() []byte {
	return encodeRecord(amqp.Table{"write": p.Write, "read": p.Read})
}

// TopicPermissions lists every topic permission, sorted by vhost, user, exchange.
func (s *Server) TopicPermissions() []TopicPermission {
	s.adm.mu.RLock()
	var out []TopicPermission
	for _, byUser := range s.adm.mu.topicPerms {
		for _, byEx := range byUser {
			for _, p := range byEx {
				out = append(out, p)
			}
		}
	}
	s.adm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Vhost != b.Vhost {
			return a.Vhost < b.Vhost
		}
		if a.User != b.User {
			return a.User < b.User
		}
		return a.Exchange < b.Exchange
	})
	return out
}

// putTopicPermissionDirect sets user's topic permission on an exchange in vhost (the exchange need not
// exist) and reports whether it was created.
func (s *Server) putTopicPermissionDirect(p TopicPermission) (created bool, err error) {
	for _, re := range []string{p.Write, p.Read} {
		if _, err := regexp.Compile(expandTopicVars(re, p.User, p.Vhost)); err != nil {
			return false, badRequest("invalid_regexp: %v", err)
		}
	}
	if p.Exchange == "" {
		return false, badRequest("exchange must not be empty")
	}
	if s.vhost(p.Vhost) == nil {
		return false, badRequest("vhost_or_user_not_found")
	}
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	if s.adm.mu.users[p.User] == nil {
		return false, badRequest("vhost_or_user_not_found")
	}
	var b storage.Batch
	b.Set(storage.TopicPermissionKey(p.Vhost, p.User, p.Exchange), p.record())
	if err := s.commit.apply(&b); err != nil {
		return false, fmt.Errorf("storing topic permission %s@%s on %q: %w", p.User, p.Vhost, p.Exchange, err)
	}
	_, existed := s.adm.mu.topicPerms[p.Vhost][p.User][p.Exchange]
	s.admUpdate(func() { s.setTopicPermissionLocked(p) })
	return !existed, nil
}

func (s *Server) setTopicPermissionLocked(p TopicPermission) {
	if s.adm.mu.topicPerms[p.Vhost] == nil {
		s.adm.mu.topicPerms[p.Vhost] = map[string]map[string]TopicPermission{}
	}
	if s.adm.mu.topicPerms[p.Vhost][p.User] == nil {
		s.adm.mu.topicPerms[p.Vhost][p.User] = map[string]TopicPermission{}
	}
	s.adm.mu.topicPerms[p.Vhost][p.User][p.Exchange] = p
}

// deleteTopicPermissionsDirect removes user's topic permissions in vhost: on exchange only, or all of them
// if exchange is "". ErrNotFound if the user has none in vhost; as in RabbitMQ, naming an exchange
// the user has no permission on is then no error.
func (s *Server) deleteTopicPermissionsDirect(vhost, user, exchange string) error {
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	byEx := s.adm.mu.topicPerms[vhost][user]
	if len(byEx) == 0 {
		return ErrNotFound
	}
	if _, ok := byEx[exchange]; exchange != "" && !ok {
		return nil
	}
	var b storage.Batch
	for x := range byEx {
		if exchange == "" || x == exchange {
			b.Delete(storage.TopicPermissionKey(vhost, user, x))
		}
	}
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting topic permissions %s@%s: %w", user, vhost, err)
	}
	s.admUpdate(func() {
		if exchange == "" {
			delete(s.adm.mu.topicPerms[vhost], user)
		} else {
			delete(byEx, exchange)
		}
	})
	return nil
}

// deleteTopicPermissionsLocked adds to b the deletion of the topic permissions drop selects, and
// returns the function that removes them from memory once b is written. Called with adm.write
// held; the returned function must run under adm.mu.
func (s *Server) deleteTopicPermissionsLocked(b *storage.Batch, drop func(vhost, user string) bool) (forget func()) {
	type vu struct{ vhost, user string }
	var gone []vu
	for vh, byUser := range s.adm.mu.topicPerms {
		for u, byEx := range byUser {
			if !drop(vh, u) {
				continue
			}
			for x := range byEx {
				b.Delete(storage.TopicPermissionKey(vh, u, x))
			}
			gone = append(gone, vu{vh, u})
		}
	}
	return func() {
		for _, g := range gone {
			delete(s.adm.mu.topicPerms[g.vhost], g.user)
		}
	}
}

// recoverTopicPermissions loads the topic permissions from the store.
func (s *Server) recoverTopicPermissions() error {
	err := s.store.Scan(storage.TopicPermissionPrefix(), func(k, rec []byte) error {
		vh, u, x, err := storage.ParseTopicPermissionKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		p := TopicPermission{User: u, Vhost: vh, Exchange: x}
		p.Write, _ = t["write"].(string)
		p.Read, _ = t["read"].(string)
		s.setTopicPermissionLocked(p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering topic permissions: %w", err)
	}
	return nil
}

// expandTopicVars replaces {username} and {vhost} in a topic permission pattern, as RabbitMQ does.
func expandTopicVars(pat, user, vhost string) string {
	if !strings.Contains(pat, "{") {
		return pat
	}
	return strings.NewReplacer("{username}", user, "{vhost}", vhost).Replace(pat)
}

// checkTopicAccess checks the topic permission of kind (write or read) on routing key for the
// exchange called exName, if it is a topic exchange, with RabbitMQ's 403 text.
func (ch *channel) checkTopicAccess(kind access, exName, key string) error {
	return ch.conn.srv.checkTopicAccess(ch.conn.user, ch.conn.vhost, kind, exName, key)
}

// checkTopicAccess is the topic permission check for user u in v, whatever the protocol asking.
func (s *Server) checkTopicAccess(u *user, v *vhost, kind access, exName, key string) error {
	if u == nil || v == nil || exName == "" {
		return nil
	}
	x := v.exchange(exName)
	if x == nil || x.kind != exchange.Topic {
		return nil
	}
	s.adm.mu.RLock()
	p, ok := s.adm.mu.topicPerms[v.name][u.name][exName]
	s.adm.mu.RUnlock()
	if !ok {
		return nil
	}
	pat := p.Write
	if kind == accessRead {
		pat = p.Read
	}
	if s.compiledPattern(expandTopicVars(pat, u.name, v.name)).MatchString(key) {
		return nil
	}
	return amqp.Errorf(amqp.AccessRefused, "access to topic '%s' in exchange '%s' in vhost '%s' refused for user '%s'",
		key, exName, v.name, u.name)
}
