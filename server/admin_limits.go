package server

import (
	"fmt"
	"sort"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Per-vhost limits, as RabbitMQ's vhost-limits runtime parameter: max-connections and max-queues.
// A negative value means no limit; 0 allows none.
const (
	LimitMaxConnections = "max-connections"
	LimitMaxQueues      = "max-queues"
)

// VhostLimits are one vhost's limits, by name.
type VhostLimits struct {
	Vhost  string
	Limits map[string]int64
}

// AllVhostLimits lists the vhosts that have limits, sorted by name.
func (s *Server) AllVhostLimits() []VhostLimits {
	s.adm.mu.RLock()
	out := make([]VhostLimits, 0, len(s.adm.mu.limits))
	for vh, ls := range s.adm.mu.limits {
		cp := make(map[string]int64, len(ls))
		for k, v := range ls {
			cp[k] = v
		}
		out = append(out, VhostLimits{Vhost: vh, Limits: cp})
	}
	s.adm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Vhost < out[j].Vhost })
	return out
}

// putVhostLimitDirect sets one limit of a vhost. The name must be max-connections or max-queues.
func (s *Server) putVhostLimitDirect(vhost, name string, value int64) error {
	switch name {
	case LimitMaxConnections, LimitMaxQueues:
	default:
		return badRequest("Validation failed\n\nUnrecognised terms [{<<\"%s\">>,%d}] in limits\n", name, value)
	}
	if s.vhost(vhost) == nil {
		return ErrNotFound
	}
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	ls := make(map[string]int64, len(s.adm.mu.limits[vhost])+1)
	for k, v := range s.adm.mu.limits[vhost] {
		ls[k] = v
	}
	ls[name] = value
	return s.storeLimitsLocked(vhost, ls)
}

// setVhostLimitsDirect replaces all of a vhost's limits (definitions import).
func (s *Server) setVhostLimitsDirect(vhost string, limits map[string]int64) error {
	for name, v := range limits {
		switch name {
		case LimitMaxConnections, LimitMaxQueues:
		default:
			return badRequest("Validation failed\n\nUnrecognised terms [{<<\"%s\">>,%d}] in limits\n", name, v)
		}
	}
	if s.vhost(vhost) == nil {
		return ErrNotFound
	}
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	ls := make(map[string]int64, len(limits))
	for k, v := range limits {
		ls[k] = v
	}
	return s.storeLimitsLocked(vhost, ls)
}

// deleteVhostLimitDirect removes one limit of a vhost.
func (s *Server) deleteVhostLimitDirect(vhost, name string) error {
	if s.vhost(vhost) == nil {
		return ErrNotFound
	}
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	ls := make(map[string]int64, len(s.adm.mu.limits[vhost]))
	for k, v := range s.adm.mu.limits[vhost] {
		if k != name {
			ls[k] = v
		}
	}
	return s.storeLimitsLocked(vhost, ls)
}

// storeLimitsLocked writes a vhost's limits (none: deletes the record) and installs them. The
// caller holds adm.write.
func (s *Server) storeLimitsLocked(vhost string, ls map[string]int64) error {
	var b storage.Batch
	if len(ls) == 0 {
		b.Delete(storage.VhostLimitKey(vhost))
	} else {
		t := amqp.Table{}
		for k, v := range ls {
			t[k] = v
		}
		b.Set(storage.VhostLimitKey(vhost), encodeRecord(t))
	}
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("storing the limits of vhost %q: %w", vhost, err)
	}
	s.admUpdate(func() {
		if len(ls) == 0 {
			delete(s.adm.mu.limits, vhost)
		} else {
			s.adm.mu.limits[vhost] = ls
		}
	})
	return nil
}

// vhostLimit returns a vhost's limit called name, and whether it limits anything.
func (s *Server) vhostLimit(vhost, name string) (int64, bool) {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	v, ok := s.adm.mu.limits[vhost][name]
	return v, ok && v >= 0
}

// checkConnectionLimit refuses a connection to vh over its max-connections, with RabbitMQ's text.
// Connections opening at the same moment may together pass the limit by a few (RabbitMQ's count is
// not exact either).
func (s *Server) checkConnectionLimit(vh *vhost, user string) error {
	limit, ok := s.vhostLimit(vh.name, LimitMaxConnections)
	if !ok {
		return nil
	}
	n := int64(0)
	for _, c := range s.openConns() {
		if c.vhost == vh {
			n++
		}
	}
	for _, c := range s.openMQTTConns() {
		if c.vhost == vh {
			n++
		}
	}
	for _, sc := range s.openSTOMPConns() {
		if sc.vhost == vh {
			n++
		}
	}
	if n < limit {
		return nil
	}
	return amqp.Errorf(amqp.NotAllowed, "access to vhost '%s' refused for user '%s': connection limit (%d) is reached", vh.name, user, limit)
}

// checkQueueLimitLocked refuses a new queue in v over its max-queues, with RabbitMQ's text. Called
// with v.meta held.
func (v *vhost) checkQueueLimitLocked(name string) error {
	limit, ok := v.srv.vhostLimit(v.name, LimitMaxQueues)
	if !ok || int64(len(v.mu.queues)) < limit {
		return nil
	}
	return amqp.Errorf(amqp.PreconditionFailed, "cannot declare queue '%s': queue limit in vhost '%s' (%d) is reached", name, v.name, limit)
}

// recoverVhostLimits loads the vhosts' limits from the store.
func (s *Server) recoverVhostLimits() error {
	err := s.store.Scan(storage.VhostLimitPrefix(), func(k, rec []byte) error {
		vh, err := storage.ParseVhostLimitKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		ls := map[string]int64{}
		for name, x := range t {
			if n, ok := intArg(x); ok {
				ls[name] = n
			}
		}
		if len(ls) > 0 {
			s.adm.mu.limits[vh] = ls
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering vhost limits: %w", err)
	}
	return nil
}
