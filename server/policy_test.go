package server

import (
	"testing"

	"github.com/warrenmq/warren/amqp"
)

// Arguments and a policy combine as in RabbitMQ's process_args_policy: the lower value wins for the
// limits and TTLs, the argument wins for the dead-letter settings and overflow.
func TestEffectiveLimits(t *testing.T) {
	v := &vhost{name: "/"}
	args := amqp.Table{"x-max-length": int32(5), "x-message-ttl": int32(1000), "x-dead-letter-exchange": "a", "x-overflow": "reject-publish"}
	arg, err := v.queueArgs("q", args)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Policy{Pattern: ".*", Definition: map[string]any{
		"max-length": int64(10), "message-ttl": int64(500), "expires": int64(60000), "max-length-bytes": int64(100),
		"dead-letter-exchange": "b", "dead-letter-routing-key": "rk", "overflow": "drop-head", "delivery-limit": int64(3),
	}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	lim := effectiveLimits(arg, args, p, nil)
	if lim.maxLen != 5 || lim.msgTTL != 500 || lim.expires != 60000 || lim.maxBytes != 100 || lim.dlx != "a" || !lim.hasDLX ||
		lim.dlrk != "rk" || !lim.hasDLRK || lim.overflow != "reject-publish" || lim.deliveryLimit != 3 || !lim.countDeliveries || lim.policy != p {
		t.Fatalf("effective %+v", *lim)
	}
	if none := effectiveLimits(arg, args, nil, nil); *none != arg {
		t.Fatalf("without a policy %+v, want %+v", *none, arg)
	}
	if p.ApplyTo != "all" {
		t.Fatalf("apply-to %q", p.ApplyTo)
	}
}

// An operator policy lowers the numeric limits further (the lowest of argument, policy and
// operator policy wins) and takes only its keys; effective_policy_definition merges the two
// definitions with the lower value of each key both set.
func TestOperatorPolicyLimits(t *testing.T) {
	v := &vhost{name: "/"}
	args := amqp.Table{"x-max-length": int32(50)}
	arg, err := v.queueArgs("q", args)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Policy{Pattern: ".*", Definition: map[string]any{"max-length": int64(10), "message-ttl": int64(500), "overflow": "reject-publish"}}.validate()
	if err != nil {
		t.Fatal(err)
	}
	op, err := Policy{Pattern: ".*", Definition: map[string]any{"max-length": int64(5), "message-ttl": int64(1000), "expires": int64(9000)}}.validateWith(operatorPolicyKeys)
	if err != nil {
		t.Fatal(err)
	}
	lim := effectiveLimits(arg, args, p, op)
	if lim.maxLen != 5 || lim.msgTTL != 500 || lim.expires != 9000 || lim.overflow != "reject-publish" || lim.policy != p || lim.opPolicy != op {
		t.Fatalf("effective %+v", *lim)
	}
	if only := effectiveLimits(arg, args, nil, op); only.maxLen != 5 || only.msgTTL != 1000 || only.overflow != "drop-head" {
		t.Fatalf("operator policy alone %+v", *only)
	}
	def := effectiveDefinition(p, op)
	want := map[string]any{"max-length": int64(5), "message-ttl": int64(500), "expires": int64(9000), "overflow": "reject-publish"}
	if len(def) != len(want) {
		t.Fatalf("effective definition %v, want %v", def, want)
	}
	for k, x := range want {
		if def[k] != x {
			t.Fatalf("effective definition %v, want %v", def, want)
		}
	}
	for _, bad := range []map[string]any{{"overflow": "drop-head"}, {"queue-mode": "lazy"}, {"dead-letter-exchange": "x"}, {"ha-mode": "all"}} {
		if _, err := (Policy{Pattern: ".*", Definition: bad}).validateWith(operatorPolicyKeys); err == nil {
			t.Errorf("operator policy %v accepted", bad)
		}
	}
}

// Of the matching policies the highest priority applies; apply-to restricts the kind of object.
func TestPolicyMatch(t *testing.T) {
	var ps policyState
	for _, in := range []Policy{
		{Vhost: "/", Name: "a", Pattern: "^q", ApplyTo: "queues", Priority: 1, Definition: map[string]any{"expires": int64(1)}},
		{Vhost: "/", Name: "b", Pattern: "^q\\.x", ApplyTo: "all", Priority: 2, Definition: map[string]any{"expires": int64(1)}},
		{Vhost: "/", Name: "c", Pattern: "^q", ApplyTo: "exchanges", Priority: 9, Definition: map[string]any{"expires": int64(1)}},
		{Vhost: "other", Name: "d", Pattern: "", ApplyTo: "all", Priority: 99, Definition: map[string]any{"expires": int64(1)}},
	} {
		p, err := in.validate()
		if err != nil {
			t.Fatal(err)
		}
		ps.setLocked(p, userPolicies)
	}
	for _, c := range []struct {
		name    string
		isQueue bool
		want    string
	}{
		{"q.y", true, "a"}, {"q.x", true, "b"}, {"q.x", false, "c"}, {"z", true, ""},
	} {
		if got := policyName(ps.match("/", c.name, c.isQueue)); got != c.want {
			t.Errorf("%s (queue %v): %q, want %q", c.name, c.isQueue, got, c.want)
		}
	}
}
