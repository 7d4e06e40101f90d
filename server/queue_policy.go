package server

import "github.com/warrenmq/warren/amqp"

// A queue's side of policies (policy.go): its effective settings combine its arguments with the
// policy that matches it, and are replaced whole when that policy changes.

// effectiveLimits combines a queue's argument settings with policy p's definition (p may be nil).
func effectiveLimits(arg queueLimits, args amqp.Table, p *policy) *queueLimits {
	lim := arg
	lim.policy = p
	if p == nil {
		return &lim
	}
	lower := func(cur *int64, key string) bool {
		n, ok := p.Definition[key].(int64)
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

// setPolicy installs p's settings in a queue that has no messages or consumers yet (declared or
// being recovered).
func (q *classicQueue) setPolicy(p *policy) {
	q.limits.Store(effectiveLimits(q.argLimits, q.args, p))
}

// applyPolicy sets q's effective settings from the policy that now matches it. A lowered length
// limit drops the excess from the head (dead-lettered with reason maxlen); expiry timers are
// re-armed. The caller holds no lock.
func (q *classicQueue) applyPolicy() {
	p := q.v.srv.pol.match(q.v.name, q.name, true)
	q.mu.Lock()
	defer q.unlock()
	if q.mu.deleted {
		return
	}
	cur := q.lim()
	if cur.policy == p {
		return
	}
	q.limits.Store(effectiveLimits(q.argLimits, q.args, p))
	q.trimLocked()
	q.wantPageInLocked() // the rest of the excess, if paged, is trimmed as it comes back
	q.mu.timerAt = 0     // re-arm from scratch: the expiry may be sooner or later now
	if q.mu.timer != nil {
		q.mu.timer.Stop()
	}
	q.armTimerLocked()
}
