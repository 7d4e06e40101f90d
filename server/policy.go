package server

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Policies, as RabbitMQ 3.10 has them: a policy names the queues and/or exchanges of a vhost whose
// names match its pattern, and sets the same settings as their x-arguments. One policy applies to
// an object: the matching one with the highest priority (ties: the first name in order).
//
// Where an argument and the policy set the same thing they combine as in RabbitMQ's
// rabbit_amqqueue_process:process_args_policy: the lower value wins for expires, message-ttl,
// max-length, max-length-bytes (and delivery-limit, as rabbit_quorum_queue does); the argument
// wins for dead-letter-exchange, dead-letter-routing-key and overflow, and for an exchange's
// alternate-exchange (rabbit_policy:get_arg).
//
// A queue's effective settings (queue.limits) are replaced whole under queue.mu when a policy is
// added, changed or deleted; a lowered length limit drops (dead-letters) the excess at once, as
// RabbitMQ does whatever the overflow mode. Policy changes are serialized by policyState.change,
// which is taken before any other broker lock (see doc.go); the policy map is guarded by
// policyState.mu, a leaf. Policies are durable ('O' records, storage/keys_admin.go).

// Policy is one policy, as the management API shows it. Definition values are int64 or string
// (or, for the keys Warren accepts and ignores, what the JSON held).
type Policy struct {
	Vhost, Name, Pattern, ApplyTo string
	Priority                      int64
	Definition                    map[string]any
}

// policy is a validated Policy with its compiled pattern. Immutable once stored.
type policy struct {
	Policy
	re *regexp.Regexp
}

type policyState struct {
	change sync.Mutex // serializes changes and their re-application (taken first, alone)

	mu struct {
		sync.Mutex                               // leaf
		byVhost    map[string]map[string]*policy // vhost -> name -> policy
		// opByVhost are the operator policies (vhost -> name -> policy), set by the operator and
		// applied to queues alongside the users' policies (admin_oppolicy.go).
		opByVhost map[string]map[string]*policy
	}
}

// match returns the policy that applies to the object name in vhost (nil: none).
func (ps *policyState) match(vhost, name string, isQueue bool) *policy {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return matchIn(ps.mu.byVhost[vhost], name, isQueue)
}

// matchOperator returns the operator policy that applies to the queue name in vhost (nil: none).
func (ps *policyState) matchOperator(vhost, name string) *policy {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return matchIn(ps.mu.opByVhost[vhost], name, true)
}

// matchIn picks among ps the policy for the object called name: the matching one with the highest
// priority, ties to the first name.
func matchIn(ps map[string]*policy, name string, isQueue bool) *policy {
	var best *policy
	for _, p := range ps {
		switch p.ApplyTo {
		case "queues":
			if !isQueue {
				continue
			}
		case "exchanges":
			if isQueue {
				continue
			}
		}
		if !p.re.MatchString(name) {
			continue
		}
		if best == nil || p.Priority > best.Priority || p.Priority == best.Priority && p.Name < best.Name {
			best = p
		}
	}
	return best
}

// --- validation, with RabbitMQ's texts ---

func policyInvalid(format string, args ...any) error {
	return &BadRequestError{Reason: "Validation failed\n\n" + fmt.Sprintf(format, args...) + "\n"}
}

// policyKeys are the definition keys RabbitMQ 3.10 recognises, with the check of each; nil: the
// key is accepted without a check (mirroring and quorum settings Warren has no use for; max-age and
// stream-max-segment-size-bytes, which streams read: stream.go).
var policyKeys = map[string]func(x any) error{
	"alternate-exchange":            stringKey("%s is not a valid alternate exchange name"),
	"dead-letter-exchange":          stringKey("%s is not a valid dead letter exchange name"),
	"dead-letter-routing-key":       stringKey("%s is not a valid dead letter routing key"),
	"message-ttl":                   intKey(0, "%s is not a valid message TTL"),
	"expires":                       intKey(1, "%s is not a valid queue expiry"),
	"max-length":                    intKey(0, "%s is not a valid maximum length"),
	"max-length-bytes":              intKey(0, "%s is not a valid maximum length in bytes"),
	"delivery-limit":                intKey(0, "%s is not a valid delivery limit"),
	"queue-mode":                    enumKey("%s is not a valid queue-mode value", "default", "lazy"),
	"overflow":                      enumKey("%s is not a valid overflow value", "drop-head", "reject-publish", "reject-publish-dlx"),
	"max-in-memory-length":          intKey(0, "%s is not a valid maximum memory in bytes"), // RabbitMQ's text for both
	"max-in-memory-bytes":           intKey(0, "%s is not a valid maximum memory in bytes"),
	"queue-master-locator":          nil,
	"queue-leader-locator":          nil,
	"ha-mode":                       nil,
	"ha-params":                     nil,
	"ha-sync-mode":                  nil,
	"ha-sync-batch-size":            nil,
	"ha-promote-on-shutdown":        nil,
	"ha-promote-on-failure":         nil,
	"initial-cluster-size":          nil,
	"max-age":                       nil,
	"stream-max-segment-size-bytes": nil,
	"stream-compaction":             enumKey("%s is not a valid stream-compaction value", "key", "none"),
	"stream-compaction-key-header":  compactionKeyHeader,
	"federation-upstream":           stringKey("%s is not a valid federation upstream name"),
	"federation-upstream-set":       stringKey("%s is not a valid federation upstream set name"),
	"federation-upstream-pattern":   fedPatternKey,
}

// fedPatternKey checks federation-upstream-pattern: a regular expression over upstream names.
func fedPatternKey(x any) error {
	s, ok := x.(string)
	if !ok {
		return policyInvalid("%s is not a valid federation upstream pattern name", amqp.ErlangTermHTML(x))
	}
	if _, err := regexp.Compile(s); err != nil {
		return policyInvalid("could not compile pattern %s to a regular expression. Error: %s", s, amqp.ErlangTermHTML(err.Error()))
	}
	return nil
}

func stringKey(msg string) func(any) error {
	return func(x any) error {
		if _, ok := x.(string); !ok {
			return policyInvalid(msg, amqp.ErlangTermHTML(x))
		}
		return nil
	}
}

func intKey(lowest int64, msg string) func(any) error {
	return func(x any) error {
		if n, ok := x.(int64); !ok || n < lowest {
			return policyInvalid(msg, amqp.ErlangTermHTML(x))
		}
		return nil
	}
}

func enumKey(msg string, values ...string) func(any) error {
	return func(x any) error {
		s, ok := x.(string)
		for _, v := range values {
			if ok && s == v {
				return nil
			}
		}
		return policyInvalid(msg, amqp.ErlangTermHTML(x))
	}
}

// validate checks p as RabbitMQ does and compiles its pattern. An empty ApplyTo is "all".
func (p Policy) validate() (*policy, error) { return p.validateWith(policyKeys) }

// validateWith is validate with the definition keys allowed (and their checks) given.
func (p Policy) validateWith(allowed map[string]func(any) error) (*policy, error) {
	if p.ApplyTo == "" {
		p.ApplyTo = "all"
	}
	switch p.ApplyTo {
	case "queues", "exchanges", "all":
	default:
		return nil, policyInvalid("apply-to '%s' unrecognised; should be 'queues', 'exchanges' or 'all'", p.ApplyTo)
	}
	re, err := regexp.Compile(p.Pattern)
	if err != nil {
		return nil, policyInvalid("pattern should be regular expression but is invalid: %s", amqp.ErlangTermHTML(err.Error()))
	}
	if len(p.Definition) == 0 {
		return nil, policyInvalid("no policy provided")
	}
	keys := make([]string, 0, len(p.Definition))
	for k := range p.Definition {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var unknown []string
	for _, k := range keys {
		check, known := allowed[k]
		switch {
		case !known:
			unknown = append(unknown, fmt.Sprintf("{%s,%s}", amqp.ErlangTermHTML(k), amqp.ErlangTermHTML(p.Definition[k])))
		case check != nil:
			if err := check(p.Definition[k]); err != nil {
				return nil, err
			}
		}
	}
	if unknown != nil {
		return nil, policyInvalid("[%s] are not recognised policy settings", strings.Join(unknown, ","))
	}
	fed := 0
	for _, k := range []string{"federation-upstream", "federation-upstream-set", "federation-upstream-pattern"} {
		if _, ok := p.Definition[k]; ok {
			fed++
		}
	}
	if fed > 1 {
		return nil, policyInvalid("cannot specify federation-upstream, federation-upstream-set or federation-upstream-pattern together")
	}
	def := make(map[string]any, len(p.Definition))
	for k, x := range p.Definition {
		def[k] = x
	}
	p.Definition = def
	return &policy{Policy: p, re: re}, nil
}

// PolicyName returns the name of the policy applied (or "") and its definition.
func (p *policy) nameAndDefinition() (string, map[string]any) {
	if p == nil {
		return "", nil
	}
	return p.Name, p.Definition
}

func policyName(p *policy) string {
	n, _ := p.nameAndDefinition()
	return n
}

// alternateExchange is the exchange's effective alternate exchange: its alternate-exchange
// argument, else its policy's (ok false: none).
func (x *exchangeEntity) alternateExchange() (string, bool) {
	if s, ok := x.args["alternate-exchange"].(string); ok {
		return s, true
	}
	if p := x.pol.Load(); p != nil {
		s, ok := p.Definition["alternate-exchange"].(string)
		return s, ok
	}
	return "", false
}

// applyPolicies re-applies the policies of v to its queues and exchanges.
func (v *vhost) applyPolicies() {
	qs, xs := v.lists()
	for _, x := range xs {
		x.pol.Store(v.srv.pol.match(v.name, x.name, false))
	}
	for _, q := range qs {
		q.applyPolicy()
	}
	v.srv.fedPoliciesChanged()
}

// --- API ---

// Policies returns every policy, by vhost and name.
func (s *Server) Policies() []Policy { return s.listPolicies(userPolicies) }

// Policy returns the policy name of vhost.
func (s *Server) Policy(vhost, name string) (Policy, error) {
	return s.getPolicy(vhost, name, userPolicies)
}

// listPolicies returns the policies of set, by vhost and name.
func (s *Server) listPolicies(set policySet) []Policy {
	s.pol.mu.Lock()
	var out []Policy
	for _, ps := range *set.of(&s.pol) {
		for _, p := range ps {
			out = append(out, p.Policy)
		}
	}
	s.pol.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Vhost != out[j].Vhost {
			return out[i].Vhost < out[j].Vhost
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// getPolicy returns the policy name of vhost in set.
func (s *Server) getPolicy(vhost, name string, set policySet) (Policy, error) {
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	p, ok := (*set.of(&s.pol))[vhost][name]
	if !ok {
		return Policy{}, ErrNotFound
	}
	return p.Policy, nil
}

func (p *policy) record() []byte {
	def := amqp.Table{}
	for k, x := range p.Definition {
		def[k] = x
	}
	return encodeRecord(amqp.Table{"pattern": p.Pattern, "apply-to": p.ApplyTo, "priority": p.Priority, "definition": def})
}

// policySet is one of the two kinds of policy: the users' policies or the operator policies
// (admin_oppolicy.go). Both are stored, kept and re-applied the same way.
type policySet struct {
	what string                                               // for error texts
	key  func(vhost, name string) []byte                      // its store records
	of   func(ps *policyState) *map[string]map[string]*policy // its map, under ps.mu
}

var (
	userPolicies = policySet{what: "policy", key: storage.PolicyKey,
		of: func(ps *policyState) *map[string]map[string]*policy { return &ps.mu.byVhost }}
	operatorPolicies = policySet{what: "operator policy", key: storage.OperatorPolicyKey,
		of: func(ps *policyState) *map[string]map[string]*policy { return &ps.mu.opByVhost }}
)

// putPolicyDirect validates and stores p, re-applying the vhost's policies, and reports whether it was
// created. The vhost must exist (ErrNotFound).
func (s *Server) putPolicyDirect(in Policy) (created bool, err error) {
	p, err := in.validate()
	if err != nil {
		return false, err
	}
	return s.putPolicy(p, userPolicies)
}

// putPolicy stores the validated p in set and re-applies its vhost's policies.
func (s *Server) putPolicy(p *policy, set policySet) (created bool, err error) {
	s.pol.change.Lock()
	defer s.pol.change.Unlock()
	v := s.vhost(p.Vhost)
	if v == nil {
		return false, ErrNotFound
	}
	var b storage.Batch
	b.Set(set.key(p.Vhost, p.Name), p.record())
	if err := s.commit.apply(&b); err != nil {
		return false, fmt.Errorf("storing %s %s in %s: %w", set.what, p.Name, p.Vhost, err)
	}
	s.pol.mu.Lock()
	_, existed := (*set.of(&s.pol))[p.Vhost][p.Name]
	s.pol.setLocked(p, set)
	s.pol.mu.Unlock()
	v.applyPolicies()
	return !existed, nil
}

func (ps *policyState) setLocked(p *policy, set policySet) {
	m := set.of(ps)
	if *m == nil {
		*m = map[string]map[string]*policy{}
	}
	if (*m)[p.Vhost] == nil {
		(*m)[p.Vhost] = map[string]*policy{}
	}
	(*m)[p.Vhost][p.Name] = p
}

// deletePolicyDirect removes the policy name of vhost and re-applies the vhost's policies.
func (s *Server) deletePolicyDirect(vhost, name string) error {
	return s.deletePolicy(vhost, name, userPolicies)
}

// deletePolicy removes the policy name of vhost from set and re-applies the vhost's policies.
func (s *Server) deletePolicy(vhost, name string, set policySet) error {
	s.pol.change.Lock()
	defer s.pol.change.Unlock()
	s.pol.mu.Lock()
	_, ok := (*set.of(&s.pol))[vhost][name]
	s.pol.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	var b storage.Batch
	b.Delete(set.key(vhost, name))
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting %s %s in %s: %w", set.what, name, vhost, err)
	}
	s.pol.mu.Lock()
	delete((*set.of(&s.pol))[vhost], name)
	s.pol.mu.Unlock()
	if v := s.vhost(vhost); v != nil {
		v.applyPolicies()
	}
	return nil
}

// dropPolicies deletes the policies and operator policies of a deleted vhost.
func (s *Server) dropPolicies(vhost string) error {
	s.pol.change.Lock()
	defer s.pol.change.Unlock()
	var b storage.Batch
	s.pol.mu.Lock()
	for n := range s.pol.mu.byVhost[vhost] {
		b.Delete(storage.PolicyKey(vhost, n))
	}
	for n := range s.pol.mu.opByVhost[vhost] {
		b.Delete(storage.OperatorPolicyKey(vhost, n))
	}
	delete(s.pol.mu.byVhost, vhost)
	delete(s.pol.mu.opByVhost, vhost)
	s.pol.mu.Unlock()
	s.fedPoliciesChanged()
	if b.Len() == 0 {
		return nil
	}
	if err := s.commit.apply(&b); err != nil {
		return fmt.Errorf("deleting the policies of vhost %s: %w", vhost, err)
	}
	return nil
}

// recoverPolicies loads the policies (after the vhosts, queues and exchanges, before the
// messages) and sets the recovered queues' and exchanges' effective settings. Policies of a vhost
// that no longer exists are dropped.
func (s *Server) recoverPolicies() error {
	var orphans [][]byte
	err := s.store.Scan(storage.PolicyPrefix(), func(k, rec []byte) error {
		vhost, name, err := storage.ParsePolicyKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		if s.vhost(vhost) == nil {
			orphans = append(orphans, append([]byte(nil), k...))
			return nil
		}
		in := Policy{Vhost: vhost, Name: name, Definition: map[string]any{}}
		in.Pattern, _ = t["pattern"].(string)
		in.ApplyTo, _ = t["apply-to"].(string)
		in.Priority, _ = t["priority"].(int64)
		def, _ := t["definition"].(amqp.Table)
		for k, x := range def {
			in.Definition[k] = x
		}
		p, err := in.validate()
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		s.pol.setLocked(p, userPolicies) // recovery runs alone
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering policies: %w", err)
	}
	opOrphans, err := s.recoverOperatorPolicies()
	if err != nil {
		return err
	}
	orphans = append(orphans, opOrphans...)
	if len(orphans) > 0 {
		var b storage.Batch
		for _, k := range orphans {
			b.Delete(k)
		}
		if err := s.commit.apply(&b); err != nil {
			return err
		}
	}
	for _, v := range s.vhostList() {
		qs, xs := v.lists()
		for _, x := range xs {
			x.pol.Store(s.pol.match(v.name, x.name, false))
		}
		for _, q := range qs {
			q.setPolicy(s.pol.match(v.name, q.name, true), s.pol.matchOperator(v.name, q.name))
		}
	}
	return nil
}
