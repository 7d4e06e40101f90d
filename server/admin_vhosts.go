package server

import (
	"fmt"
	"slices"
	"sort"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Vhost administration: listing, describing, creating and deleting virtual hosts, as the
// management API and definitions import ask for it. The users, permissions and the lock that
// serialises every administrative change (Server.adm.write) are in admin_users.go.

// vhostMeta is what a vhost has besides its exchanges and queues.
type vhostMeta struct {
	description      string
	tags             []string
	defaultQueueType string
	tracing          bool
}

// VhostInfo describes a vhost.
type VhostInfo struct {
	Name             string
	Description      string
	Tags             []string
	DefaultQueueType string
	Tracing          bool
}

// vhostList returns the vhosts, sorted by name.
func (s *Server) vhostList() []*vhost {
	s.vhosts.RLock()
	out := make([]*vhost, 0, len(s.vhosts.m))
	for _, v := range s.vhosts.m {
		out = append(out, v)
	}
	s.vhosts.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Vhosts lists every vhost, sorted by name.
func (s *Server) Vhosts() []VhostInfo {
	vs := s.vhostList()
	out := make([]VhostInfo, 0, len(vs))
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	for _, v := range vs {
		out = append(out, s.vhostInfoLocked(v.name))
	}
	return out
}

// Vhost describes the named vhost.
func (s *Server) Vhost(name string) (VhostInfo, error) {
	if s.vhost(name) == nil {
		return VhostInfo{}, ErrNotFound
	}
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	return s.vhostInfoLocked(name), nil
}

func (s *Server) vhostInfoLocked(name string) VhostInfo {
	m := s.adm.mu.meta[name]
	dqt := m.defaultQueueType
	if dqt == "" {
		dqt = "undefined"
	}
	tags := slices.Clone(m.tags)
	if tags == nil {
		tags = []string{}
	}
	return VhostInfo{Name: name, Description: m.description, Tags: tags, DefaultQueueType: dqt, Tracing: m.tracing}
}

// putVhostDirect creates a vhost (with its standard exchanges, and full permissions for actingUser, as
// RabbitMQ's API grants) or updates its metadata. It reports whether the vhost was created.
func (s *Server) putVhostDirect(info VhostInfo, actingUser string) (created bool, err error) {
	if info.Name == "" {
		return false, badRequest("vhost name must not be empty")
	}
	meta := vhostMeta{description: info.Description, tags: slices.Clone(info.Tags), defaultQueueType: info.DefaultQueueType, tracing: info.Tracing}
	if meta.defaultQueueType == "undefined" {
		meta.defaultQueueType = ""
	}
	s.adm.write.Lock() // vhosts are created and deleted only under it
	defer s.adm.write.Unlock()
	created = s.vhost(info.Name) == nil
	var b storage.Batch
	b.Set(storage.VhostKey(info.Name), meta.record())
	if err := s.commit.apply(&b); err != nil {
		return false, fmt.Errorf("storing vhost %q: %w", info.Name, err)
	}
	if created {
		s.vhosts.Lock()
		s.vhosts.m[info.Name] = newVhost(s, info.Name)
		s.vhosts.Unlock()
	}
	s.admUpdate(func() { s.adm.mu.meta[info.Name] = meta })
	if created && actingUser != "" && s.adm.mu.users[actingUser] != nil {
		p := Permission{User: actingUser, Vhost: info.Name, Configure: ".*", Write: ".*", Read: ".*"}
		if err := s.putPermissionWriting(p); err != nil {
			return true, err
		}
	}
	return created, nil
}

// deleteVhostDirect deletes a vhost: its connections are closed, its queues and exchanges deleted (from
// the store too), and its permissions removed.
func (s *Server) deleteVhostDirect(name string) error {
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	v := s.vhost(name)
	if v == nil {
		return ErrNotFound
	}
	var b storage.Batch
	b.Delete(storage.VhostKey(name))
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting vhost %q: %w", name, err)
	}
	// Gone from the map before its connections are listed: a connection opening meanwhile is
	// either listed below or refused by its handshake's second look (handshake.go).
	s.vhosts.Lock()
	delete(s.vhosts.m, name)
	s.vhosts.Unlock()
	var err error

	for _, c := range s.openConns() {
		if c.vhost == v {
			c.closeFromOutside(amqp.ConnectionForced, fmt.Sprintf("CONNECTION_FORCED - vhost '%s' is deleted", name))
		}
	}
	s.closeSTOMPVhost(v)
	qs, xs := v.lists()
	for _, q := range qs {
		if _, derr := v.deleteQueue(q, false, false); derr != nil && err == nil {
			err = derr
		}
	}
	var xb storage.Batch
	v.meta.Lock()
	v.mu.Lock()
	for _, x := range xs {
		if x.name == "" || v.mu.exchanges[x.name] != x {
			continue
		}
		v.removeExchangeLocked(&xb, x)
	}
	v.mu.Unlock()
	if derr := v.persistMeta(&xb); derr != nil && err == nil {
		err = derr
	}
	v.meta.Unlock()

	var pb storage.Batch
	for u := range s.adm.mu.perms[name] {
		pb.Delete(storage.PermissionKey(name, u))
	}
	s.deleteTopicPermissionsLocked(&pb, func(vh, _ string) bool { return vh == name })
	if _, ok := s.adm.mu.limits[name]; ok {
		pb.Delete(storage.VhostLimitKey(name))
	}
	// The vhost is gone from memory whatever the store says.
	s.admUpdate(func() {
		delete(s.adm.mu.perms, name)
		delete(s.adm.mu.topicPerms, name)
		delete(s.adm.mu.meta, name)
		delete(s.adm.mu.limits, name)
	})
	if perr := s.commit.apply(&pb); perr != nil && err == nil {
		err = fmt.Errorf("deleting permissions of vhost %q: %w", name, perr)
	}
	if perr := s.dropPolicies(name); perr != nil && err == nil {
		err = perr
	}
	if perr := s.dropParameters(name); perr != nil && err == nil {
		err = perr
	}
	return err
}
