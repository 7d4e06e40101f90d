package server

import (
	"errors"
	"fmt"

	"github.com/warrenmq/warren/amqp"
)

// Definitions are the broker's topology and access control, as RabbitMQ's definitions export
// holds them: everything but messages. Exclusive queues and the standard exchanges are left out;
// the default exchange's implicit bindings too.
type Definitions struct {
	Users       []UserInfo
	Vhosts      []VhostInfo
	Permissions []Permission
	TopicPerms  []TopicPermission
	Limits      []VhostLimits // exported as vhost-limits parameters
	Queues      []QueueDef
	Exchanges   []ExchangeDef
	Bindings    []BindingInfo
	Policies    []Policy
	// OperatorPolicies are exported as operator_policy parameters, as RabbitMQ does.
	OperatorPolicies []Policy
	// GlobalParameters (every vhost's definitions only).
	GlobalParameters []GlobalParameter
	// Parameters are the runtime parameters but vhost-limits (in Limits) and operator policies.
	Parameters []Parameter
}

// QueueDef is a queue in definitions.
type QueueDef struct {
	Vhost, Name         string
	Durable, AutoDelete bool
	Arguments           amqp.Table
}

// ExchangeDef is an exchange in definitions.
type ExchangeDef struct {
	Vhost, Name, Type             string
	Durable, AutoDelete, Internal bool
	Arguments                     amqp.Table
}

func builtinExchange(name string) bool {
	switch name {
	case "", "amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match":
		return true
	}
	return false
}

// ExportDefinitions returns the definitions of every vhost (vhost "" with all=true) or of one.
func (s *Server) ExportDefinitions(vhost string, all bool) (Definitions, error) {
	var d Definitions
	match := func(name string) bool { return all || name == vhost }
	if !all && s.vhost(vhost) == nil {
		return d, ErrNotFound
	}
	if all {
		d.Users = s.Users()
		d.Vhosts = s.Vhosts()
		d.Permissions = s.Permissions()
		d.TopicPerms = s.TopicPermissions()
		d.GlobalParameters = s.GlobalParameters()
	}
	for _, l := range s.AllVhostLimits() {
		if match(l.Vhost) {
			d.Limits = append(d.Limits, l)
		}
	}
	for _, p := range s.Policies() {
		if match(p.Vhost) {
			d.Policies = append(d.Policies, p)
		}
	}
	for _, p := range s.OperatorPolicies() {
		if match(p.Vhost) {
			d.OperatorPolicies = append(d.OperatorPolicies, p)
		}
	}
	for _, p := range s.Parameters() {
		if match(p.Vhost) && p.Component != ParameterVhostLimits {
			d.Parameters = append(d.Parameters, p)
		}
	}
	for _, v := range s.vhostList() {
		if !match(v.name) {
			continue
		}
		qs, xs := v.lists()
		for _, q := range qs {
			if q.owner != nil {
				continue
			}
			d.Queues = append(d.Queues, QueueDef{Vhost: v.name, Name: q.name, Durable: q.durable, AutoDelete: q.autoDelete, Arguments: tableOrEmpty(q.args)})
		}
		for _, x := range xs {
			if builtinExchange(x.name) {
				continue
			}
			d.Exchanges = append(d.Exchanges, ExchangeDef{Vhost: v.name, Name: x.name, Type: x.kind.String(), Durable: x.durable,
				AutoDelete: x.autoDelete, Internal: x.internal, Arguments: tableOrEmpty(x.args)})
		}
		for _, b := range v.bindings() {
			if b.Source == "" {
				continue
			}
			if b.DestinationType == "queue" {
				if q, _ := v.queueNamed(b.Destination); q != nil && q.owner != nil {
					continue
				}
			}
			d.Bindings = append(d.Bindings, b)
		}
	}
	return d, nil
}

// ImportDefinitions merges d into the broker, in the order users, vhosts, permissions, limits,
// topic permissions, parameters, policies, exchanges, queues, bindings. Objects that already exist
// are updated (users, vhosts, permissions, parameters) or kept when equivalent; an inequivalent exchange or queue is left as it is and logged, as RabbitMQ does.
// A queue, exchange or binding naming a missing vhost is an error.
func (s *Server) ImportDefinitions(d Definitions, actingUser string) error {
	for _, u := range d.Users {
		if _, err := s.PutUser(UserSpec{Name: u.Name, PasswordHash: u.PasswordHash, HashingAlgorithm: u.HashingAlgorithm, Tags: u.Tags, Limits: u.Limits}); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	for _, v := range d.Vhosts {
		if _, err := s.PutVhost(v, actingUser); err != nil {
			return fmt.Errorf("vhost %q: %w", v.Name, err)
		}
	}
	for _, p := range d.Permissions {
		if _, err := s.PutPermission(p); err != nil {
			return fmt.Errorf("permission of %q in %q: %w", p.User, p.Vhost, err)
		}
	}
	for _, l := range d.Limits {
		if err := s.SetVhostLimits(l.Vhost, l.Limits); err != nil {
			return fmt.Errorf("limits of vhost %q: %w", l.Vhost, err)
		}
	}
	for _, p := range d.TopicPerms {
		if _, err := s.PutTopicPermission(p); err != nil {
			return fmt.Errorf("topic permission of %q in %q on %q: %w", p.User, p.Vhost, p.Exchange, err)
		}
	}
	noVhost := func(name string) error {
		return &BadRequestError{Reason: "no_such_vhost", Term: []any{"no_such_vhost", name}}
	}
	for _, p := range d.Parameters {
		if s.vhost(p.Vhost) == nil {
			return noVhost(p.Vhost)
		}
		if _, err := s.PutParameter(p); err != nil {
			return fmt.Errorf("parameter %q of component %q in vhost %q: %w", p.Name, p.Component, p.Vhost, err)
		}
	}
	for _, p := range d.Policies {
		if s.vhost(p.Vhost) == nil {
			return noVhost(p.Vhost)
		}
		if _, err := s.PutPolicy(p); err != nil {
			return fmt.Errorf("policy %q in vhost %q: %w", p.Name, p.Vhost, err)
		}
	}
	for _, p := range d.OperatorPolicies {
		if s.vhost(p.Vhost) == nil {
			return noVhost(p.Vhost)
		}
		if _, err := s.PutOperatorPolicy(p); err != nil {
			return fmt.Errorf("operator policy %q in vhost %q: %w", p.Name, p.Vhost, err)
		}
	}
	for _, g := range d.GlobalParameters {
		if _, err := s.PutGlobalParameter(g.Name, g.Value); err != nil {
			return fmt.Errorf("global parameter %q: %w", g.Name, err)
		}
	}
	for _, x := range d.Exchanges {
		if s.vhost(x.Vhost) == nil {
			return noVhost(x.Vhost)
		}
		if builtinExchange(x.Name) {
			continue
		}
		_, existsErr := s.Exchange(x.Vhost, x.Name)
		_, err := s.DeclareExchange(x.Vhost, x.Name, ExchangeSpec{Type: x.Type, Durable: x.Durable, AutoDelete: x.AutoDelete, Internal: x.Internal, Arguments: x.Arguments})
		if err = s.importErr("exchange", x.Vhost, x.Name, existsErr == nil, err); err != nil {
			return err
		}
	}
	for _, q := range d.Queues {
		if s.vhost(q.Vhost) == nil {
			return noVhost(q.Vhost)
		}
		_, existsErr := s.Queue(q.Vhost, q.Name)
		_, err := s.DeclareQueue(q.Vhost, q.Name, QueueSpec{Durable: q.Durable, AutoDelete: q.AutoDelete, Arguments: q.Arguments})
		if err = s.importErr("queue", q.Vhost, q.Name, existsErr == nil, err); err != nil {
			return err
		}
	}
	for _, b := range d.Bindings {
		if s.vhost(b.Vhost) == nil {
			return noVhost(b.Vhost)
		}
		err := s.Bind(b.Vhost, b.Source, b.DestinationType, b.Destination, b.RoutingKey, b.Arguments)
		if err = s.importErr("binding from", b.Vhost, b.Source, false, err); err != nil {
			return err
		}
	}
	return nil
}

// importErr logs and drops a failed redeclaration of an object that existed (it is inequivalent);
// other errors are returned with context.
func (s *Server) importErr(what, vhost, name string, existed bool, err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	if existed && errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		s.log.Warn("definitions import: keeping the existing object", "kind", what, "vhost", vhost, "name", name, "reason", ae.Text)
		return nil
	}
	return fmt.Errorf("%s %q in vhost %q: %w", what, name, vhost, err)
}
