package server

import (
	"fmt"
	"maps"
	"sort"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Per-user limits, as RabbitMQ 3.10's user limits: max-connections (connections the user has open
// at once, whatever the vhost) and max-channels (channels over all of them). A negative value
// means no limit; 0 allows none. They live in the user's record, as in RabbitMQ's internal user
// database, and go with the user: deleting the user drops them.
const LimitMaxChannels = "max-channels"

// UserLimits are one user's limits, by name.
type UserLimits struct {
	User   string
	Limits map[string]int64
}

// checkUserLimits refuses a limit name RabbitMQ does not know, with its text.
func checkUserLimits(ls map[string]int64) error {
	names := make([]string, 0, len(ls))
	for k := range ls {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch k {
		case LimitMaxConnections, LimitMaxChannels:
		default:
			return badRequest("Unrecognised terms [{<<\"%s\">>,%d}] in user-limits", k, ls[k])
		}
	}
	return nil
}

// AllUserLimits lists the users that have limits, sorted by name.
func (s *Server) AllUserLimits() []UserLimits {
	s.adm.mu.RLock()
	var out []UserLimits
	for _, u := range s.adm.mu.users {
		if len(u.limits) > 0 {
			out = append(out, UserLimits{User: u.name, Limits: maps.Clone(u.limits)})
		}
	}
	s.adm.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// putUserLimitDirect sets one limit of a user (max-connections or max-channels). A missing user is a bad
// request naming it, as RabbitMQ answers.
func (s *Server) putUserLimitDirect(name, limit string, value int64) error {
	if err := checkUserLimits(map[string]int64{limit: value}); err != nil {
		return err
	}
	return s.changeUserLimits(name, func(ls map[string]int64) { ls[limit] = value })
}

// deleteUserLimitDirect removes one limit of a user; removing a limit the user does not have is no error.
func (s *Server) deleteUserLimitDirect(name, limit string) error {
	return s.changeUserLimits(name, func(ls map[string]int64) { delete(ls, limit) })
}

// changeUserLimits stores the user with its limits changed by change.
func (s *Server) changeUserLimits(name string, change func(map[string]int64)) error {
	s.adm.write.Lock()
	defer s.adm.write.Unlock()
	old := s.adm.mu.users[name]
	if old == nil {
		return &BadRequestError{Reason: "no_such_user", Term: []any{"no_such_user", name}}
	}
	u := *old
	u.limits = maps.Clone(old.limits)
	if u.limits == nil {
		u.limits = map[string]int64{}
	}
	change(u.limits)
	if len(u.limits) == 0 {
		u.limits = nil
	}
	var b storage.Batch
	b.Set(storage.UserKey(name), u.record())
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("storing the limits of user %q: %w", name, err)
	}
	s.admUpdate(func() { s.adm.mu.users[name] = &u })
	return nil
}

// userLimit returns user name's limit called limit, and whether it limits anything.
func (s *Server) userLimit(name, limit string) (int64, bool) {
	s.adm.mu.RLock()
	defer s.adm.mu.RUnlock()
	u := s.adm.mu.users[name]
	if u == nil {
		return 0, false
	}
	v, ok := u.limits[limit]
	return v, ok && v >= 0
}

// checkUserConnectionLimit refuses a connection of a user over its max-connections, with
// RabbitMQ's text (rabbit_reader, checked on connection.open after the vhost's limit). As for the
// vhost limit, connections opening at the same moment may together pass it by a few.
func (s *Server) checkUserConnectionLimit(name string) error {
	limit, ok := s.userLimit(name, LimitMaxConnections)
	if !ok {
		return nil
	}
	n := int64(0)
	for _, c := range s.openConns() {
		if c.user != nil && c.user.name == name {
			n++
		}
	}
	for _, c := range s.openMQTTConns() {
		if c.user.name == name {
			n++
		}
	}
	for _, sc := range s.openSTOMPConns() {
		if sc.user.name == name {
			n++
		}
	}
	if n < limit {
		return nil
	}
	return amqp.Errorf(amqp.NotAllowed, "connection refused for user '%s': user connection limit (%d) is reached", name, limit)
}

// checkUserChannelLimit refuses a new channel of c's user over its max-channels, counted over all
// the user's connections, with RabbitMQ's text (a connection error). Called by c's reader.
func (c *conn) checkUserChannelLimit() error {
	name := c.user.name
	limit, ok := c.srv.userLimit(name, LimitMaxChannels)
	if !ok {
		return nil
	}
	n := int64(0)
	for _, o := range c.srv.openConns() {
		// A connection that sent connection.close (closeAt set first) opens nothing more and its
		// channels are on their way out: its client may already have seen the close.
		if o.user != nil && o.user.name == name && o.closeAt.Load() == 0 {
			n += int64(len(o.channelList()))
		}
	}
	if n < limit {
		return nil
	}
	return amqp.Errorf(amqp.NotAllowed, "number of channels opened for user '%s' has reached the maximum allowed user limit of (%d)", name, limit)
}
