package server

import "slices"

// What management (admin*.go) reads of a queue: counts and snapshots, each taken under the
// queue's lock and released through q.unlock.

// lengths returns the ready (in memory and paged out) and unacknowledged message counts.
func (q *classicQueue) lengths() (ready, unacked int64) {
	q.mu.Lock()
	defer q.unlock()
	return q.lenLocked(), int64(q.mu.unacked)
}

// info is the management API's view of the queue; un sums its messages unacknowledged on
// channels (Server.unackedByQueue), nil for none.
func (q *classicQueue) info(un *unackedSums) QueueInfo {
	qi := q.baseInfo()
	lim := q.lim()
	qi.Policy, qi.OperatorPolicy = policyName(lim.policy), policyName(lim.opPolicy)
	qi.PolicyDefinition = effectiveDefinition(lim.policy, lim.opPolicy)
	q.mu.Lock()
	qi.Ready, qi.Unacked = q.lenLocked(), int64(q.mu.unacked)
	qi.ReadyBytes = q.bytesLocked()
	qi.PagedOut, qi.PagedOutBytes = q.mu.paged.n, q.mu.paged.bytes
	qi.Consumers = len(q.mu.consumers)
	q.mu.ready.each(func(e *qentry) {
		qi.Memory += int64(len(e.msg.body)+len(e.msg.props)) + perMessageOverhead
		if e.msg.persistent {
			qi.Persistent++
			qi.PersistentBytes += int64(len(e.msg.body))
		}
	})
	q.unlock()
	if un != nil {
		qi.UnackedBytes = un.bytes
		qi.Persistent += un.persistent
		qi.PersistentBytes += un.persistentBytes
		qi.Memory += un.memory
	}
	return qi
}

// consumerInfos describes the queue's consumers; each delivery target adds what it knows.
func (q *classicQueue) consumerInfos() []ConsumerInfo {
	q.mu.Lock()
	cs := slices.Clone(q.mu.consumers)
	q.unlock()
	out := make([]ConsumerInfo, 0, len(cs))
	for _, c := range cs {
		ci := ConsumerInfo{
			Vhost: q.v.name, Queue: q.name, Tag: c.tag, AckRequired: !c.noAck, Exclusive: c.exclusive,
			Arguments: c.args,
		}
		c.target.describe(&ci)
		out = append(out, ci)
	}
	return out
}
