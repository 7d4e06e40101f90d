package server

import (
	"fmt"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Durable administrative state: vhosts ('V' records with their metadata), users ('U', with the
// password hash and tags) and permissions ('P'). Records are RecordVersion followed by an AMQP
// field table, like the topology records in persist.go.
//
// A store without vhost records is a first boot (or a store written before vhosts were recorded):
// the vhosts found in it are recorded, and the default user is created with full permissions on
// "/", as RabbitMQ does on a fresh node. Otherwise the recorded users and permissions are loaded and
// the options' default user is not recreated.

func stringsToArray(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func arrayToStrings(x any) []string {
	a, _ := x.([]any)
	out := make([]string, 0, len(a))
	for _, v := range a {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (m vhostMeta) record() []byte {
	return encodeRecord(amqp.Table{
		"description": m.description, "tags": stringsToArray(m.tags),
		"default_queue_type": m.defaultQueueType, "tracing": m.tracing,
	})
}

func (u *user) record() []byte {
	algo := u.algo
	if algo == "" {
		algo = HashSHA256
	}
	hash := u.hash
	if hash == nil {
		hash = []byte{}
	}
	t := amqp.Table{"password_hash": hash, "hashing_algorithm": algo, "tags": stringsToArray(u.tags)}
	if len(u.limits) > 0 {
		ls := amqp.Table{}
		for k, v := range u.limits {
			ls[k] = v
		}
		t["limits"] = ls
	}
	return encodeRecord(t)
}

func (p Permission) record() []byte {
	return encodeRecord(amqp.Table{"configure": p.Configure, "write": p.Write, "read": p.Read})
}

// recoverAdmin loads vhosts, users and permissions (called by recover before the messages are
// loaded; the queues of a vhost that no longer exists are dropped from byID, so that their
// messages are dropped too).
func (s *Server) recoverAdmin(byID map[uint64]*queue) error {
	recorded := map[string]bool{}
	err := s.store.Scan(storage.VhostPrefix(), func(k, rec []byte) error {
		name, err := storage.ParseVhostKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		m := vhostMeta{tags: arrayToStrings(t["tags"])}
		m.description, _ = t["description"].(string)
		m.defaultQueueType, _ = t["default_queue_type"].(string)
		m.tracing, _ = t["tracing"].(bool)
		s.adm.mu.meta[name] = m
		recorded[name] = true
		if s.vhosts.m[name] == nil {
			s.vhosts.m[name] = newVhost(s, name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering vhosts: %w", err)
	}
	if len(recorded) == 0 {
		return s.firstBoot()
	}
	// Exchanges or queues of a vhost deleted while a client was still declaring in it: drop them.
	for name, v := range s.vhosts.m {
		if recorded[name] {
			continue
		}
		s.log.Warn("dropping records of a deleted vhost", "vhost", name)
		var b storage.Batch
		for _, q := range v.mu.queues {
			b.Delete(storage.QueueKey(name, q.name))
			delete(byID, q.id)
		}
		for _, x := range v.mu.exchanges {
			b.Delete(storage.ExchangeKey(name, x.name))
			for _, bd := range x.mu.router.Bindings() {
				b.Delete(bindingKey(name, x, bd.Dest, bd.Key, bd.Args))
			}
		}
		if err := s.commit.apply(&b); err != nil {
			return fmt.Errorf("dropping records of deleted vhost %q: %w", name, err)
		}
		delete(s.vhosts.m, name)
	}

	users := map[string]*user{}
	err = s.store.Scan(storage.UserPrefix(), func(k, rec []byte) error {
		name, err := storage.ParseUserKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		u := &user{name: name, tags: arrayToStrings(t["tags"])}
		u.hash, _ = t["password_hash"].([]byte)
		u.algo, _ = t["hashing_algorithm"].(string)
		if ls, ok := t["limits"].(amqp.Table); ok {
			u.limits = map[string]int64{}
			for k, x := range ls {
				if n, ok := intArg(x); ok {
					u.limits[k] = n
				}
			}
		}
		users[name] = u
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering users: %w", err)
	}
	clear(s.adm.mu.users)
	for name, u := range users {
		s.adm.mu.users[name] = u
	}
	err = s.store.Scan(storage.PermissionPrefix(), func(k, rec []byte) error {
		vh, name, err := storage.ParsePermissionKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		p := Permission{User: name, Vhost: vh}
		p.Configure, _ = t["configure"].(string)
		p.Write, _ = t["write"].(string)
		p.Read, _ = t["read"].(string)
		if s.adm.mu.perms[vh] == nil {
			s.adm.mu.perms[vh] = map[string]Permission{}
		}
		s.adm.mu.perms[vh][name] = p
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering permissions: %w", err)
	}
	if err := s.recoverTopicPermissions(); err != nil {
		return err
	}
	return s.recoverVhostLimits()
}

// firstBoot records the vhosts found in the store (at least the default vhost, "/" unless
// Options.DefaultVhost says otherwise) and the default user with full permissions on it.
func (s *Server) firstBoot() error {
	var b storage.Batch
	for name := range s.vhosts.m {
		m := vhostMeta{}
		if name == s.opts.DefaultVhost {
			m.description = "Default virtual host"
		}
		s.adm.mu.meta[name] = m
		b.Set(storage.VhostKey(name), m.record())
	}
	for _, u := range s.adm.mu.users {
		b.Set(storage.UserKey(u.name), u.record())
		dv := s.opts.DefaultVhost
		p := Permission{User: u.name, Vhost: dv, Configure: ".*", Write: ".*", Read: ".*"}
		if s.adm.mu.perms[dv] == nil {
			s.adm.mu.perms[dv] = map[string]Permission{}
		}
		s.adm.mu.perms[dv][u.name] = p
		b.Set(storage.PermissionKey(dv, u.name), p.record())
	}
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("recording the initial vhosts and user: %w", err)
	}
	return nil
}
