package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/warrenmq/warren/amqp"
)

// The administrative changes, each through the meta group on a cluster member (meta.go) and
// directly (its ...Direct method) on a single node. The applier runs the same Direct methods.

func (s *Server) metaJSON(c *metaCmd, v any) (metaResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return metaResult{}, fmt.Errorf("meta group: encoding %s: %w", c.Op, err)
	}
	c.A = b
	return s.metaDo(c)
}

// PutVhost creates a vhost (with its standard exchanges, and full permissions for actingUser, as
// RabbitMQ's API grants) or updates its metadata. It reports whether the vhost was created.
func (s *Server) PutVhost(info VhostInfo, actingUser string) (created bool, err error) {
	if s.meta == nil || info.Name == "" {
		return s.putVhostDirect(info, actingUser)
	}
	r, err := s.metaJSON(&metaCmd{Op: "v.put", Name: info.Name, Acting: actingUser}, info)
	return r.created, err
}

// DeleteVhost deletes a vhost: its connections are closed, its queues and exchanges deleted (from
// the store too), and its permissions removed.
func (s *Server) DeleteVhost(name string) error {
	if s.meta == nil {
		return s.deleteVhostDirect(name)
	}
	if s.vhost(name) == nil {
		return ErrNotFound
	}
	_, err := s.metaDo(&metaCmd{Op: "v.del", Name: name})
	return err
}

// PutUser creates or updates a user and reports whether it was created. On a cluster member a
// password is hashed before it is proposed: the log and snapshots hold the hash only.
func (s *Server) PutUser(spec UserSpec) (created bool, err error) {
	if s.meta == nil || spec.Name == "" {
		return s.putUserDirect(spec)
	}
	if err := checkUserLimits(spec.Limits); err != nil {
		return false, err
	}
	if spec.Password != nil {
		spec.PasswordHash = hashPassword(newSalt(), *spec.Password)
		spec.HashingAlgorithm = HashSHA256
		spec.Password = nil
	}
	r, err := s.metaJSON(&metaCmd{Op: "u.put", Name: spec.Name}, spec)
	return r.created, err
}

// DeleteUser removes a user and its permissions.
func (s *Server) DeleteUser(name string) error {
	if s.meta == nil {
		return s.deleteUserDirect(name)
	}
	if s.lookupUser(name) == nil {
		return ErrNotFound
	}
	_, err := s.metaDo(&metaCmd{Op: "u.del", Name: name})
	return err
}

// PutPermission sets a user's permissions in a vhost and reports whether they were created.
func (s *Server) PutPermission(p Permission) (created bool, err error) {
	if s.meta == nil {
		return s.putPermissionDirect(p)
	}
	r, err := s.metaJSON(&metaCmd{Op: "p.put", Vhost: p.Vhost, Name: p.User}, p)
	return r.created, err
}

// DeletePermission removes a user's permissions in a vhost.
func (s *Server) DeletePermission(vhost, user string) error {
	if s.meta == nil {
		return s.deletePermissionDirect(vhost, user)
	}
	if _, err := s.Permission(vhost, user); err != nil {
		return err
	}
	_, err := s.metaDo(&metaCmd{Op: "p.del", Vhost: vhost, Name: user})
	return err
}

// PutTopicPermission sets a user's topic permission on an exchange of a vhost.
func (s *Server) PutTopicPermission(p TopicPermission) (created bool, err error) {
	if s.meta == nil {
		return s.putTopicPermissionDirect(p)
	}
	r, err := s.metaJSON(&metaCmd{Op: "t.put", Vhost: p.Vhost, Name: p.User, Source: p.Exchange}, p)
	return r.created, err
}

// DeleteTopicPermissions removes user's topic permissions in vhost (deleteTopicPermissionsDirect).
func (s *Server) DeleteTopicPermissions(vhost, user, exchange string) error {
	if s.meta == nil {
		return s.deleteTopicPermissionsDirect(vhost, user, exchange)
	}
	_, err := s.metaDo(&metaCmd{Op: "t.del", Vhost: vhost, Name: user, Source: exchange})
	return err
}

// PutPolicy validates and stores a policy, applying it, and reports whether it was created.
func (s *Server) PutPolicy(in Policy) (created bool, err error) {
	if s.meta == nil {
		return s.putPolicyDirect(in)
	}
	if _, err := in.validate(); err != nil {
		return false, err
	}
	r, err := s.metaJSON(&metaCmd{Op: "pol.put", Vhost: in.Vhost, Name: in.Name, Args: typedValue(in.Definition)}, in)
	return r.created, err
}

// DeletePolicy removes a policy.
func (s *Server) DeletePolicy(vhost, name string) error {
	if s.meta == nil {
		return s.deletePolicyDirect(vhost, name)
	}
	if _, err := s.Policy(vhost, name); err != nil {
		return err
	}
	_, err := s.metaDo(&metaCmd{Op: "pol.del", Vhost: vhost, Name: name})
	return err
}

// PutOperatorPolicy validates and stores an operator policy and reports whether it was created.
func (s *Server) PutOperatorPolicy(in Policy) (created bool, err error) {
	if s.meta == nil {
		return s.putOperatorPolicyDirect(in)
	}
	r, err := s.metaJSON(&metaCmd{Op: "opol.put", Vhost: in.Vhost, Name: in.Name, Args: typedValue(in.Definition)}, in)
	return r.created, err
}

// DeleteOperatorPolicy removes an operator policy.
func (s *Server) DeleteOperatorPolicy(vhost, name string) error {
	if s.meta == nil {
		return s.deleteOperatorPolicyDirect(vhost, name)
	}
	if _, err := s.OperatorPolicy(vhost, name); err != nil {
		return err
	}
	_, err := s.metaDo(&metaCmd{Op: "opol.del", Vhost: vhost, Name: name})
	return err
}

// PutParameter validates and stores a runtime parameter and reports whether it was created.
func (s *Server) PutParameter(p Parameter) (created bool, err error) {
	if s.meta == nil {
		return s.putParameterDirect(p)
	}
	r, err := s.metaJSON(&metaCmd{Op: "par.put", Vhost: p.Vhost, Name: p.Name, Source: p.Component, Args: typedValue(p.Value)}, p)
	return r.created, err
}

// DeleteParameter removes a runtime parameter.
func (s *Server) DeleteParameter(component, vhost, name string) error {
	if s.meta == nil {
		return s.deleteParameterDirect(component, vhost, name)
	}
	if _, err := s.Parameter(component, vhost, name); err != nil {
		return err
	}
	_, err := s.metaDo(&metaCmd{Op: "par.del", Vhost: vhost, Name: name, Source: component})
	return err
}

// PutGlobalParameter sets a global parameter to a JSON value and reports whether it was created.
func (s *Server) PutGlobalParameter(name string, value json.RawMessage) (created bool, err error) {
	if s.meta == nil || name == "" || !json.Valid(value) {
		return s.putGlobalParameterDirect(name, value)
	}
	r, err := s.metaDo(&metaCmd{Op: "g.put", Name: name, A: slices.Clone(value)})
	return r.created, err
}

// DeleteGlobalParameter removes a global parameter.
func (s *Server) DeleteGlobalParameter(name string) error {
	if s.meta == nil {
		return s.deleteGlobalParameterDirect(name)
	}
	if _, err := s.GlobalParameter(name); err != nil {
		return err
	}
	_, err := s.metaDo(&metaCmd{Op: "g.del", Name: name})
	return err
}

// PutVhostLimit sets one limit of a vhost (max-connections or max-queues).
func (s *Server) PutVhostLimit(vhost, name string, value int64) error {
	if s.meta == nil {
		return s.putVhostLimitDirect(vhost, name, value)
	}
	_, err := s.metaJSON(&metaCmd{Op: "vl.put", Vhost: vhost, Name: name}, value)
	return err
}

// SetVhostLimits replaces all of a vhost's limits (definitions import).
func (s *Server) SetVhostLimits(vhost string, limits map[string]int64) error {
	if s.meta == nil {
		return s.setVhostLimitsDirect(vhost, limits)
	}
	_, err := s.metaJSON(&metaCmd{Op: "vls.put", Vhost: vhost}, limits)
	return err
}

// DeleteVhostLimit removes one limit of a vhost.
func (s *Server) DeleteVhostLimit(vhost, name string) error {
	if s.meta == nil {
		return s.deleteVhostLimitDirect(vhost, name)
	}
	_, err := s.metaDo(&metaCmd{Op: "vl.del", Vhost: vhost, Name: name})
	return err
}

// PutUserLimit sets one limit of a user (max-connections or max-channels).
func (s *Server) PutUserLimit(name, limit string, value int64) error {
	if s.meta == nil {
		return s.putUserLimitDirect(name, limit, value)
	}
	if err := checkUserLimits(map[string]int64{limit: value}); err != nil {
		return err
	}
	_, err := s.metaJSON(&metaCmd{Op: "ul.put", Name: name, Source: limit}, value)
	return err
}

// DeleteUserLimit removes one limit of a user.
func (s *Server) DeleteUserLimit(name, limit string) error {
	if s.meta == nil {
		return s.deleteUserLimitDirect(name, limit)
	}
	_, err := s.metaDo(&metaCmd{Op: "ul.del", Name: name, Source: limit})
	return err
}

// typedValue encodes x as an AMQP field value (in a table), which keeps its types (an int64 stays
// one, a float64 too, where JSON would not tell them apart); nil if it cannot.
func typedValue(x any) []byte {
	if m, ok := x.(map[string]any); ok {
		x = amqp.Table(m)
	}
	b, err := amqp.AppendTable(nil, amqp.Table{"v": x})
	if err != nil {
		return nil
	}
	return b
}

func untypedValue(b []byte) (any, bool) {
	if len(b) == 0 {
		return nil, false
	}
	t, _, err := amqp.DecodeTable(b)
	if err != nil {
		return nil, false
	}
	v, ok := t["v"]
	return v, ok
}

// metaExec applies one meta group command to the broker through the direct paths (the applier's
// goroutine).
func (s *Server) metaExec(c *metaCmd) (r metaResult) {
	dec := func(v any) bool {
		d := json.NewDecoder(bytes.NewReader(c.A))
		d.UseNumber() // numbers as the API gave them (policies' definitions, parameters)
		if err := d.Decode(v); err != nil {
			r.err = fmt.Errorf("meta group: decoding %s: %w", c.Op, err)
			return false
		}
		return true
	}
	switch c.Op {
	case "v.put":
		var in VhostInfo
		if dec(&in) {
			r.created, r.err = s.putVhostDirect(in, c.Acting)
		}
		return r
	case "v.del":
		r.err = s.deleteVhostDirect(c.Name)
		return r
	case "u.put":
		var in UserSpec
		if dec(&in) {
			r.created, r.err = s.putUserDirect(in)
		}
		return r
	case "u.del":
		r.err = s.deleteUserDirect(c.Name)
		return r
	case "p.put":
		var in Permission
		if dec(&in) {
			r.created, r.err = s.putPermissionDirect(in)
		}
		return r
	case "p.del":
		r.err = s.deletePermissionDirect(c.Vhost, c.Name)
		return r
	case "t.put":
		var in TopicPermission
		if dec(&in) {
			r.created, r.err = s.putTopicPermissionDirect(in)
		}
		return r
	case "t.del":
		r.err = s.deleteTopicPermissionsDirect(c.Vhost, c.Name, c.Source)
		return r
	case "pol.put", "opol.put":
		var in Policy
		if dec(&in) {
			if v, ok := untypedValue(c.Args); ok {
				in.Definition, _ = v.(amqp.Table)
			}
			if c.Op == "pol.put" {
				r.created, r.err = s.putPolicyDirect(in)
			} else {
				r.created, r.err = s.putOperatorPolicyDirect(in)
			}
		}
		return r
	case "pol.del":
		r.err = s.deletePolicyDirect(c.Vhost, c.Name)
		return r
	case "opol.del":
		r.err = s.deleteOperatorPolicyDirect(c.Vhost, c.Name)
		return r
	case "par.put":
		var in Parameter
		if dec(&in) {
			if v, ok := untypedValue(c.Args); ok {
				in.Value = v
			}
			r.created, r.err = s.putParameterDirect(in)
		}
		return r
	case "par.del":
		r.err = s.deleteParameterDirect(c.Source, c.Vhost, c.Name)
		return r
	case "g.put":
		r.created, r.err = s.putGlobalParameterDirect(c.Name, c.A)
		return r
	case "g.del":
		r.err = s.deleteGlobalParameterDirect(c.Name)
		return r
	case "vl.put":
		var n int64
		if dec(&n) {
			r.err = s.putVhostLimitDirect(c.Vhost, c.Name, n)
		}
		return r
	case "vls.put":
		var ls map[string]int64
		if len(c.A) == 0 || dec(&ls) {
			r.err = s.setVhostLimitsDirect(c.Vhost, ls)
		}
		return r
	case "vl.del":
		r.err = s.deleteVhostLimitDirect(c.Vhost, c.Name)
		return r
	case "ul.put":
		var n int64
		if dec(&n) {
			r.err = s.putUserLimitDirect(c.Name, c.Source, n)
		}
		return r
	case "ul.del":
		r.err = s.deleteUserLimitDirect(c.Name, c.Source)
		return r
	}
	v := s.vhost(c.Vhost)
	if v == nil {
		r.err = amqp.Errorf(amqp.NotFound, "no vhost '%s'", c.Vhost)
		return r
	}
	args, err := decodeArgs(c.Args)
	if err != nil {
		r.err = fmt.Errorf("meta group: %s arguments: %w", c.Op, err)
		return r
	}
	switch c.Op {
	case "x.put":
		existed := v.exchange(c.Name) != nil
		r.err = v.declareExchangeOn(&amqp.ExchangeDeclare{Exchange: c.Name, Type: c.Type, Durable: c.Durable,
			AutoDelete: c.AutoDelete, Internal: c.Internal, Arguments: args}, true)
		r.created = !existed && r.err == nil
	case "x.del":
		r.err = v.deleteExchangeOn(c.Name, false, true)
	case "q.put":
		d := &amqp.QueueDeclare{Queue: c.Name, Durable: c.Durable, AutoDelete: c.AutoDelete, Arguments: args}
		v.mu.RLock()
		existed := v.mu.queues[c.Name] != nil
		v.mu.RUnlock()
		var q *queue
		switch {
		case !c.Quorum:
			q, r.err = v.declareQueueOn(nil, d, &metaApply{})
		case existed:
			q, r.err = v.declareQueueOn(nil, d, &metaApply{group: c.Group}) // the equivalence check
		case c.Group == 0:
			// A redeclare of a quorum queue this node is not a member of: nothing here.
		case slices.Contains(c.Voters, NodeID(s.opts.NodeName)):
			q, r.err = v.declareQuorumReplica(d, c.Group, c.Voters)
		default:
			// Not a member: the queue lives on its members only (reaching it from here is not built).
		}
		if q != nil && !existed {
			q.declared() // arms its timers
		}
		r.created = !existed && r.err == nil
	case "q.del":
		v.mu.RLock()
		q := v.mu.queues[c.Name]
		v.mu.RUnlock()
		if q != nil {
			n, cancelled, err := v.removeQueueOn(q, false, false, true)
			notifyCancelled(cancelled)
			r.n, r.err = n, err
		}
	case "b.put", "b.del":
		var d destination
		d, r.err = v.destination(c.DestKind, c.Dest)
		if r.err != nil {
			if c.Op == "b.del" {
				r.err = nil
			}
			break
		}
		if c.Op == "b.put" {
			r.err = v.bindOn(c.Source, d, c.Key, args, nil, true)
		} else {
			r.err = v.unbindOn(c.Source, d, c.Key, args, nil, true)
		}
	default:
		r.err = fmt.Errorf("meta group: unknown command %q", c.Op)
	}
	return r
}
