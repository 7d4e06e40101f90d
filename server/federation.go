package server

import (
	"errors"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/federation"
)

// Federation (RabbitMQ's rabbitmq_federation, built in). The links themselves are the federation
// package's; this file is the broker's side of them:
//
//   - the federation-upstream and federation-upstream-set runtime parameter components (params.go),
//     validated by the federation package with RabbitMQ's texts;
//   - the policy keys federation-upstream, federation-upstream-set and federation-upstream-pattern
//     (policy.go);
//   - Desired: the links that should run, one per (federated exchange or queue, upstream): every
//     exchange or queue whose policy names an upstream, or an upstream set ("all": every upstream
//     of the vhost), that exists;
//   - federation.Local: publishing downstream, a federated exchange's bindings, a federated
//     queue's demand.
//
// The manager is nudged (fedKick) whenever the answer to Desired may have changed: a parameter or
// policy change, and, while some policy names an upstream, an exchange or queue declared or
// deleted. A binding change on a federated exchange tells its links (fedBindings). Both only
// signal the manager's goroutines (federation.Manager.mu is a leaf), so they may be called under
// any broker lock.

// fedState is the broker's federation manager.
type fedState struct {
	mgr *federation.Manager
}

func (s *Server) startFederation() {
	s.fed.mgr = federation.NewManager(federation.Config{Local: fedLocal{s}, Logger: s.log, Desired: s.fedDesired})
	validate := func(check func(string, any) error) func(vhost, name string, value any) error {
		return func(_, name string, value any) error {
			var ve *federation.ValidationError
			if err := check(name, value); errors.As(err, &ve) {
				return badRequest("Validation failed\n\n%s\n", strings.Join(ve.Lines, "\n"))
			} else if err != nil {
				return err
			}
			return nil
		}
	}
	hooks := func(check func(string, any) error) ParameterComponent {
		return ParameterComponent{
			Validate: validate(check),
			Set:      func(Parameter) { s.fedPoliciesChanged() },
			Clear:    func(string, string) { s.fedPoliciesChanged() },
		}
	}
	upstream := hooks(federation.ValidateUpstream)
	// A URI without a host is this broker's direct connection, which reaches every vhost: a user
	// may name only vhosts it can use (as for shovels), or it could federate another vhost's
	// messages into its own.
	upstream.ValidateAs = func(user, vhost, name string, value any) error {
		if err := upstream.Validate(vhost, name, value); err != nil || user == "" {
			return err
		}
		for _, vh := range federation.DirectVhosts(value) {
			if !slices.Contains(s.UserVhosts(user), vh) {
				return badRequest("Validation failed\n\nuser \"%s\" may not connect to vhost \"%s\"\n", user, vh)
			}
		}
		return nil
	}
	s.RegisterParameterComponent(federation.ComponentUpstream, upstream)
	s.RegisterParameterComponent(federation.ComponentUpstreamSet, hooks(federation.ValidateUpstreamSet))
	// RabbitMQ 3.10 registers the component "federation" too, and recognises no name in it.
	s.RegisterParameterComponent("federation", ParameterComponent{Validate: func(_, name string, _ any) error {
		return badRequest("Validation failed\n\nname not recognised: %s\n", amqp.ErlangTermHTML(name))
	}})
	s.fedPoliciesChanged()
}

// stopFederation stops every link (first in Shutdown: links publish through the broker).
func (s *Server) stopFederation() {
	if s.fed.mgr != nil {
		s.fed.mgr.Close()
	}
}

// fedPoliciesChanged records whether any policy names an upstream (so that declares and deletes
// need to nudge the manager) and nudges it.
func (s *Server) fedPoliciesChanged() {
	any := false
	s.pol.mu.Lock()
	for _, ps := range s.pol.mu.byVhost {
		for _, p := range ps {
			if fedPolicyUpstream(p) != "" {
				any = true
			}
		}
	}
	s.pol.mu.Unlock()
	s.fedActive.Store(any)
	if s.fed.mgr != nil {
		s.fed.mgr.Kick()
	}
}

// fedKick nudges the manager if some policy names an upstream: an exchange or queue appeared or went.
func (s *Server) fedKick() {
	if s.fedActive.Load() && s.fed.mgr != nil {
		s.fed.mgr.Kick()
	}
}

// fedBindings tells the links of exchange, if it is federated, that its bindings changed.
func (s *Server) fedBindings(vhost, exchange string) {
	if s.fedActive.Load() && s.fed.mgr != nil {
		s.fed.mgr.BindingsChanged(vhost, exchange)
	}
}

// FederationLinks returns the status of the federation links of vhost ("": every vhost).
func (s *Server) FederationLinks(vhost string) []federation.LinkStatus {
	if s.fed.mgr == nil {
		return nil
	}
	return s.fed.mgr.Status(vhost)
}

// fedPolicyUpstream is what p federates from: "upstream:NAME" or "set:NAME", or "" if nothing.
func fedPolicyUpstream(p *policy) string {
	if p == nil {
		return ""
	}
	if n, ok := p.Definition["federation-upstream"].(string); ok {
		return "upstream:" + n
	}
	if n, ok := p.Definition["federation-upstream-set"].(string); ok {
		return "set:" + n
	}
	if n, ok := p.Definition["federation-upstream-pattern"].(string); ok {
		return "pattern:" + n
	}
	return ""
}

// fedDesired lists the links that should run now (on the manager's goroutine).
func (s *Server) fedDesired() []federation.LinkSpec {
	var out []federation.LinkSpec
	for _, v := range s.vhostList() {
		qs, xs := v.lists()
		for _, x := range xs {
			// As rabbit_federation_exchange:federate: not the default or amq.* exchanges, internal
			// ones, federation's own.
			if x.name == "" || strings.HasPrefix(x.name, "amq.") || x.internal || x.kind == exchange.FederationUpstream ||
				x.args["x-internal-purpose"] != nil {
				continue
			}
			p := s.pol.match(v.name, x.name, false)
			for _, u := range s.fedUpstreams(v.name, fedPolicyUpstream(p)) {
				out = append(out, federation.LinkSpec{Type: federation.TypeExchange, Vhost: v.name, Name: x.name, Policy: p.Name, Upstream: u})
			}
		}
		for _, q := range qs {
			if q.owner != nil || q.args["x-internal-purpose"] != nil { // not exclusive queues, nor federation's own
				continue
			}
			p := s.pol.match(v.name, q.name, true)
			for _, u := range s.fedUpstreams(v.name, fedPolicyUpstream(p)) {
				out = append(out, federation.LinkSpec{Type: federation.TypeQueue, Vhost: v.name, Name: q.name, Policy: p.Name, Upstream: u})
			}
		}
	}
	return out
}

// fedUpstreams resolves a policy's federation target (fedPolicyUpstream) in vhost to upstreams.
// An upstream or set that does not exist gives none, as in RabbitMQ.
func (s *Server) fedUpstreams(vhost, target string) []federation.Upstream {
	kind, name, ok := strings.Cut(target, ":")
	if !ok {
		return nil
	}
	s.params.mu.Lock()
	defer s.params.mu.Unlock()
	upstream := func(n string) (map[string]any, bool) {
		p, ok := s.params.mu.values[paramKey{federation.ComponentUpstream, vhost, n}]
		if !ok {
			return nil, false
		}
		m, ok := p.Value.(map[string]any)
		return m, ok
	}
	if kind == "upstream" {
		if m, ok := upstream(name); ok {
			return []federation.Upstream{federation.ResolveUpstream(name, m, nil)}
		}
		return nil
	}
	var out []federation.Upstream
	if kind == "pattern" || name == "all" {
		match := func(string) bool { return true }
		if kind == "pattern" {
			re, err := regexp.Compile(name)
			if err != nil {
				return nil
			}
			match = re.MatchString
		}
		for k, p := range s.params.mu.values {
			if m, ok := p.Value.(map[string]any); ok && k.component == federation.ComponentUpstream && k.vhost == vhost && match(k.name) {
				out = append(out, federation.ResolveUpstream(k.name, m, nil))
			}
		}
		return out
	}
	set, ok := s.params.mu.values[paramKey{federation.ComponentUpstreamSet, vhost, name}]
	if !ok {
		return nil
	}
	members, _ := set.Value.([]any)
	for _, x := range members {
		o, _ := x.(map[string]any)
		n, _ := o["upstream"].(string)
		if m, ok := upstream(n); ok {
			out = append(out, federation.ResolveUpstream(n, m, o))
		}
	}
	return out
}

// fedLocal is the broker as the federation links see it.
type fedLocal struct{ s *Server }

func (l fedLocal) ClusterName() string { return l.s.ClusterName() }

func (l fedLocal) Publish(vhost, exchange, key string, props amqp.Properties, body []byte) (func() error, error) {
	_, confirmed, err := l.s.publishAsync(vhost, exchange, key, props, body, props.UserID)
	return confirmed, err
}

func (l fedLocal) ExchangeBindings(vhost, exchange string) ([]federation.Binding, error) {
	v := l.s.vhost(vhost)
	if v == nil {
		return nil, ErrNotFound
	}
	x := v.exchange(exchange)
	if x == nil {
		return nil, v.errNoExchange(exchange)
	}
	x.mu.Lock()
	bs := x.mu.router.Bindings()
	x.mu.Unlock()
	out := make([]federation.Binding, len(bs))
	for i, b := range bs {
		out[i] = federation.Binding{Key: b.Key, Args: b.Args}
	}
	return out, nil
}

func (l fedLocal) DialDirect() (net.Conn, error) { return l.s.DialDirect() }

func (l fedLocal) QueueDemand(vhost, queue string) (bool, error) {
	v := l.s.vhost(vhost)
	if v == nil {
		return false, ErrNotFound
	}
	v.mu.RLock()
	q := v.mu.queues[queue]
	v.mu.RUnlock()
	if q == nil {
		return false, v.errNoQueue(queue)
	}
	ready, consumers := q.counts()
	return ready == 0 && consumers > 0, nil
}
