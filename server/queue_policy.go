package server

import "github.com/warrenmq/warren/amqp"

// A queue's side of policies (policy.go): its effective settings combine its arguments with the
// policy that matches it, and are replaced whole when that policy changes.

// effectiveLimits combines a queue's argument settings with policy p's definition and operator
// policy op's (either may be nil): for the numeric keys the lowest of the three wins.
func effectiveLimits(arg queueLimits, args amqp.Table, p, op *policy) *queueLimits {
	lim := arg
	lim.policy, lim.opPolicy = p, op
	for _, pp := range []*policy{p, op} {
		if pp == nil {
			continue
		}
		lower := func(cur *int64, key string) bool {
			n, ok := pp.Definition[key].(int64)
			if !ok {
				return false
			}
			if *cur < 0 || n < *cur {
				*cur = n
			}
			return true
		}
		lower(&lim.maxLen, "max-length")
		lower(&lim.maxBytes, "max-length-bytes")
		lower(&lim.msgTTL, "message-ttl")
		lower(&lim.expires, "expires")
		if lower(&lim.deliveryLimit, "delivery-limit") {
			lim.countDeliveries = true
		}
	}
	if p == nil {
		return &lim
	}
	_, argOverflow := args["x-overflow"]
	if s, ok := p.Definition["overflow"].(string); ok && !argOverflow {
		lim.overflow = s
	}
	if s, ok := p.Definition["dead-letter-exchange"].(string); ok && !arg.hasDLX {
		lim.hasDLX, lim.dlx = true, s
	}
	if s, ok := p.Definition["dead-letter-routing-key"].(string); ok && !arg.hasDLRK {
		lim.hasDLRK, lim.dlrk = true, s
	}
	return &lim
}

// setPolicy installs the settings of p and of the operator policy op in a queue that has no
// messages or consumers yet (declared or being recovered).
func (q *classicQueue) setPolicy(p, op *policy) {
	q.limits.Store(effectiveLimits(q.argLimits, q.args, p, op))
}

// applyPolicy sets q's effective settings from the policy and the operator policy that now match
// it. A lowered length
// limit drops the excess from the head (dead-lettered with reason maxlen); expiry timers are
// re-armed. The caller holds no lock.
func (q *classicQueue) applyPolicy() {
	p := q.v.srv.pol.match(q.v.name, q.name, true)
	op := q.v.srv.pol.matchOperator(q.v.name, q.name)
	q.mu.Lock()
	defer q.unlock()
	if q.mu.deleted {
		return
	}
	cur := q.lim()
	if cur.policy == p && cur.opPolicy == op {
		return
	}
	q.limits.Store(effectiveLimits(q.argLimits, q.args, p, op))
	q.trimLocked()
	q.wantPageInLocked() // the rest of the excess, if paged, is trimmed as it comes back
	q.mu.timerAt = 0     // re-arm from scratch: the expiry may be sooner or later now
	if q.mu.timer != nil {
		q.mu.timer.Stop()
	}
	q.armTimerLocked()
}
