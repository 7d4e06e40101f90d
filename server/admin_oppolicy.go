package server

import (
	"fmt"
	"strings"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Operator policies, as RabbitMQ 3.10's: policies an operator sets over the users' own, which may
// set only the keys below (rabbit_policies' operator policy validators). One operator policy
// applies to a queue (the matching one of the highest priority, as for policies), besides its
// policy; for every key both set, the lower value wins (rabbit_policy:merge_policy_value), and
// a queue's x-argument lowers it further. They apply to queues only: an operator policy with
// apply-to "exchanges" is stored but matches nothing, as in RabbitMQ, whose exchanges take none
// of these keys. 'W' records; changes take policyState.change like the policies'.
var operatorPolicyKeys = map[string]func(any) error{
	"expires":              policyKeys["expires"],
	"message-ttl":          policyKeys["message-ttl"],
	"max-length":           policyKeys["max-length"],
	"max-length-bytes":     policyKeys["max-length-bytes"],
	"max-in-memory-length": policyKeys["max-in-memory-length"],
	"max-in-memory-bytes":  policyKeys["max-in-memory-bytes"],
	"delivery-limit":       policyKeys["delivery-limit"],
}

// effectiveDefinition merges a queue's policy and operator policy definitions as RabbitMQ shows
// them (effective_policy_definition): every key of either, the lower value where both set one.
// Nil if neither applies; the policy's own map if only it does (shared: do not modify).
func effectiveDefinition(p, op *policy) map[string]any {
	switch {
	case op == nil && p == nil:
		return nil
	case op == nil:
		return p.Definition
	case p == nil:
		return op.Definition
	}
	out := make(map[string]any, len(p.Definition)+len(op.Definition))
	for k, x := range p.Definition {
		out[k] = x
	}
	for k, x := range op.Definition {
		if cur, ok := out[k].(int64); ok {
			if n, ok := x.(int64); ok && cur < n {
				continue
			}
		}
		out[k] = x
	}
	return out
}

// OperatorPolicies returns every operator policy, by vhost and name.
func (s *Server) OperatorPolicies() []Policy { return s.listPolicies(operatorPolicies) }

// OperatorPolicy returns the operator policy name of vhost.
func (s *Server) OperatorPolicy(vhost, name string) (Policy, error) {
	return s.getPolicy(vhost, name, operatorPolicies)
}

// putOperatorPolicyDirect validates and stores an operator policy, re-applying the vhost's policies, and
// reports whether it was created. The vhost must exist (ErrNotFound).
func (s *Server) putOperatorPolicyDirect(in Policy) (created bool, err error) {
	p, err := in.validateWith(operatorPolicyKeys)
	if err != nil {
		// RabbitMQ escapes the policies' validation texts for HTML but not the operator policies'.
		if bre, ok := err.(*BadRequestError); ok {
			bre.Reason = strings.NewReplacer("&lt;", "<", "&gt;", ">").Replace(bre.Reason)
		}
		return false, err
	}
	return s.putPolicy(p, operatorPolicies)
}

// deleteOperatorPolicyDirect removes the operator policy name of vhost and re-applies the vhost's
// policies.
func (s *Server) deleteOperatorPolicyDirect(vhost, name string) error {
	return s.deletePolicy(vhost, name, operatorPolicies)
}

// recoverOperatorPolicies loads the operator policies (recovery runs alone) and returns the keys of
// those whose vhost is gone, for recoverPolicies to delete.
func (s *Server) recoverOperatorPolicies() (orphans [][]byte, err error) {
	err = s.store.Scan(storage.OperatorPolicyPrefix(), func(k, rec []byte) error {
		vhost, name, err := storage.ParseOperatorPolicyKey(k)
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
		p, err := in.validateWith(operatorPolicyKeys)
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		s.pol.setLocked(p, operatorPolicies)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recovering operator policies: %w", err)
	}
	return orphans, nil
}
