package server

import (
	"fmt"
	"slices"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/cluster/fifo"
	"github.com/warrenmq/warren/storage"
)

// Quorum queues replicated over several nodes (issue 16). The meta group decides that queue
// d.Queue of a vhost is a Raft group (its id, unique in the cluster) over some members (their Raft
// ids) and, on each member, calls declareQuorumReplica: the queue is then a member of that group on
// this node, with the same quorumQueue as a queue of one member (queue_quorum.go), and:
//
//   - Every member applies the same log and starts from the same configuration (the queue's
//     arguments, through fifo.NewWithConfig: no Config entry to propose).
//   - Publishing, consuming, settling and basic.get work on any member: a proposal on a follower
//     is forwarded to the leader by raft, and returns once THIS node applied the entry (a majority
//     had it fsynced), so a confirm means what it means on one node. An outcome lost with a
//     leader change is retried with the same proposal id (the state machine applies it once and
//     hands the retry the first outcome) and enqueues carry the queue's producer id and sequence
//     (fifo's deduplication).
//   - Owner ids carry their node (queue_quorum_host.go: ownerTag), so consumers of different
//     nodes never collide, and a Deliver effect is acted on only by the node whose consumer it is.
//   - Leader-only duties, checked by each member's worker every leaderCheckTicks ticks: Ticks for
//     the state's timers, republishing dead letters (at most once), and, for owners on a node the
//     transport has not reached for nodeDownTicks, Disconnected (rabbit_fifo's noconnection:
//     their messages come back, their consumers are suspected). A node whose consumers are
//     suspected while they are still attached proposes Reconnected for them; a restarted node
//     proposes Down for its own previous owners (queue_quorum.go's run).

// leaderCheckTicks: the replicated queues' workers check leadership and the members' reachability
// every this many Raft ticks (500 ms with the default 100 ms tick).
const leaderCheckTicks = 5

// nodeDownTicks: a member the transport has not reached for this many ticks (3 s with the default
// tick) has its consumers' messages returned by the leader.
const nodeDownTicks = 30

// leaderDuty is the worker's memory of its leader duties.
type leaderDuty struct {
	check bool            // the duty ticker fired: check on the next turn
	disc  map[uint64]bool // owners proposed Disconnected while their node is down
	reco  map[uint64]bool // this node's suspected owners proposed Reconnected
	// at-least-once dead letters republished and confirmed, by message id: their
	// DeadLetterSettled is proposed; republished again if still pending after aloRetry
	sent map[uint64]time.Time
}

// aloRetry: an at-least-once dead letter still pending this long after it was republished and
// confirmed (its DeadLetterSettled lost with a leader change) is republished again.
const aloRetry = 10 * time.Second

// deadLetterAtLeastOnce republishes the state's pending at-least-once dead letters (on the
// leader only; a new leader finds them all pending, as rabbit_fifo's dead-letter worker does)
// and, for those every target queue confirmed, proposes DeadLetterSettled. A dead letter that
// routes nowhere, or that a target refuses, stays pending and is tried again at the next check.
func (q *quorumQueue) deadLetterAtLeastOnce(h *cluster.Host, d *leaderDuty) {
	if q.rep && !q.leading(h) {
		d.sent = nil
		return
	}
	q.mu.Lock()
	pend := q.mu.st.PendingDeadLetters()
	q.unlock()
	now := time.Now()
	still := map[uint64]time.Time{}
	var ids []uint64
	for _, e := range pend {
		if t, ok := d.sent[e.Msg.ID]; ok && now.Sub(t) < aloRetry {
			still[e.Msg.ID] = t
			continue
		}
		m, err := decodeMessage(e.Msg.Body)
		if err != nil {
			q.v.srv.log.Error("quorum queue: undecodable dead letter", "queue", q.name, "err", err)
			continue
		}
		if q.republishConfirmed(deadLetter{msg: m, reason: e.Reason.String()}) {
			ids = append(ids, e.Msg.ID)
			still[e.Msg.ID] = now
		}
	}
	d.sent = still
	if len(ids) > 0 {
		q.propose(fifo.Command{Kind: fifo.KindDeadLetterSettled, IDs: ids})
	}
}

// republishConfirmed routes a dead letter through the queue's dead-letter exchange as the
// classic queue does (deadMessage) and waits until every target queue has it committed; false if
// it routes nowhere or a target refuses it.
func (q *quorumQueue) republishConfirmed(dl deadLetter) bool {
	cq := &classicQueue{queueMeta: q.queueMeta}
	lim := q.lim
	cq.limits.Store(&lim)
	ex := q.v.exchange(lim.dlx)
	if ex == nil {
		return false
	}
	m, keys, deaths := cq.deadMessage(dl, &lim)
	var buf [8]*queue
	routed := false
	var groups []*commitGroup
	for _, tq := range q.v.route(ex, keys[0], keys[1:], m, buf[:0]) {
		if dl.reason != "rejected" && isDeathCycle(tq.name, deaths) {
			continue
		}
		r, g := tq.publish(m)
		if r != published {
			return false
		}
		routed = true
		// This queue's own batch completes only when this worker proposes it: not waited for.
		if g != nil && tq.queueImpl != quorumQueueImpl(q) {
			groups = append(groups, g)
		}
	}
	// Bounded: two queues dead-lettering at least once into each other wait for each other's
	// worker.
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	for _, g := range groups {
		select {
		case <-g.done:
		case <-t.C:
			return false
		case <-q.base.Done():
			return false
		}
		if g.err != nil {
			return false
		}
	}
	return routed
}

func quorumQueueImpl(q *quorumQueue) queueImpl { return q }

// leading reports whether this node leads the queue's group (as of the host's last cycle).
func (q *quorumQueue) leading(h *cluster.Host) bool {
	return h != nil && h.Leader(q.group) == q.qh.self
}

// leaderDuties proposes Disconnected for the owners of members gone for longer than
// nodeDownTicks (when this node leads) and Reconnected for this node's suspected owners; it
// reports whether this node leads.
func (q *quorumQueue) leaderDuties(h *cluster.Host, d *leaderDuty) bool {
	leading := q.leading(h)
	var cs []fifo.Command
	q.mu.Lock()
	// Ours, suspected while their node was cut off, but still attached here: they go on.
	suspected := map[uint64]bool{}
	for _, c := range q.mu.st.Consumers() {
		if c.Suspected && q.qh.mine(c.Key.Owner) && q.mu.subs[c.Key] != nil {
			suspected[c.Key.Owner] = true
			if !d.reco[c.Key.Owner] {
				cs = append(cs, fifo.Command{Kind: fifo.KindReconnected, Owner: c.Key.Owner})
			}
		}
	}
	var owners []uint64
	if leading {
		owners = q.mu.st.Owners()
	}
	q.unlock()
	d.reco = suspected
	if leading {
		gone := map[uint64]bool{}
		for _, o := range owners {
			n := q.qh.ownerNode(o)
			if n == 0 || n == q.qh.self || !q.qh.peerDown(h, n, nodeDownTicks*q.qh.tick) {
				continue
			}
			gone[o] = true
			if !d.disc[o] {
				cs = append(cs, fifo.Command{Kind: fifo.KindDisconnected, Owner: o})
			}
		}
		d.disc = gone
	} else {
		d.disc = nil
	}
	if len(cs) > 0 {
		q.propose(cs...)
	}
	return leading
}

// declareQuorumReplica declares quorum queue d.Queue on this node as a member of Raft group group
// over voters (the members' Raft ids: NodeID of their names), or returns it if it is already
// declared so. The group and voters are kept in the queue's record, so a restart recovers the same
// member. It does not wait for the group (the meta group's state machine calls it on the Raft
// host's loop): the queue's worker creates and joins the group.
func (v *vhost) declareQuorumReplica(d *amqp.QueueDeclare, group uint64, voters []uint64) (*queue, error) {
	qh := v.srv.qq
	switch {
	case v.srv.opts.Cluster == nil:
		return nil, fmt.Errorf("quorum queue %q: replicated without a cluster", d.Queue)
	case group == 0 || group == metaGroupID:
		return nil, fmt.Errorf("quorum queue %q: invalid group id %d", d.Queue, group)
	case !slices.Contains(voters, qh.self):
		return nil, fmt.Errorf("quorum queue %q: this node (%d) is not among the members %v", d.Queue, qh.self, voters)
	case queueType(d.Arguments) != "quorum":
		return nil, fmt.Errorf("quorum queue %q: x-queue-type is %q", d.Queue, queueType(d.Arguments))
	}
	// Before v.meta (it takes the vhost table's and every vhost's lock): the meta group declares
	// one queue at a time, so no other declare takes the group meanwhile.
	other := v.srv.quorumGroupUser(group)
	v.meta.Lock()
	defer v.meta.Unlock()
	if q := v.mu.queues[d.Queue]; q != nil {
		if qq, ok := q.queueImpl.(*quorumQueue); ok && qq.rep && qq.group == group {
			return q, nil
		}
		return nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' exists, not as a member of quorum group %d", d.Queue, v.name, group)
	}
	if err := v.checkNewQueueType(d.Queue, d); err != nil {
		return nil, err
	}
	if other != "" {
		return nil, fmt.Errorf("quorum queue %q: group %d is already queue %s's", d.Queue, group, other)
	}
	lim, err := v.queueArgs(d.Queue, d.Arguments)
	if err != nil {
		return nil, err
	}
	id := v.srv.queueIDs.Add(1)
	voters = slices.Clone(voters)
	var b storage.Batch
	b.Set(storage.QueueKey(v.name, d.Queue), replicaRecord(d.Arguments, id, group, voters))
	if err := v.persistMeta(&b); err != nil {
		return nil, err
	}
	q := newReplicaQueue(v, d.Queue, d.Arguments, id, lim, group, voters, true)
	v.mu.Lock()
	q.setPolicy(v.srv.pol.match(v.name, d.Queue, true), v.srv.pol.matchOperator(v.name, d.Queue))
	v.mu.queues[d.Queue] = q
	v.mu.Unlock()
	v.srv.adm.stats.inc(sQueueCreated)
	v.srv.fedKick()
	return q, nil
}

// quorumGroupUser names the queue ("vhost/name") whose group is group on this node, or "".
func (s *Server) quorumGroupUser(group uint64) string {
	s.vhosts.RLock()
	vs := make([]*vhost, 0, len(s.vhosts.m))
	for _, v := range s.vhosts.m {
		vs = append(vs, v)
	}
	s.vhosts.RUnlock()
	for _, v := range vs {
		v.mu.RLock()
		for _, q := range v.mu.queues {
			if qq, ok := q.queueImpl.(*quorumQueue); ok && qq.group == group {
				v.mu.RUnlock()
				return v.name + "/" + q.name
			}
		}
		v.mu.RUnlock()
	}
	return ""
}

// newReplicaQueue makes the queue of a replicated group's member (fresh: declared now).
func newReplicaQueue(v *vhost, name string, args amqp.Table, id uint64, lim queueLimits, group uint64, voters []uint64, fresh bool) *queue {
	q := &queue{queueMeta: queueMeta{v: v, name: name, typ: queueTypes["quorum"], durable: true, args: args, id: id}}
	q.queueImpl = newQuorumQueueGroup(&q.queueMeta, lim, group, voters, fresh)
	return q
}

// replicaRecord is a replicated quorum queue's record: a queue's (queueMeta.record) with its
// group id and voters (Raft ids stored as int64 bit patterns).
func replicaRecord(args amqp.Table, id, group uint64, voters []uint64) []byte {
	vs := make([]any, len(voters))
	for i, x := range voters {
		vs[i] = int64(x)
	}
	return encodeRecord(amqp.Table{"auto_delete": false, "arguments": tableOrEmpty(args), "id": int64(id),
		"quorum_group": int64(group), "quorum_voters": vs})
}

// recoveredQueue makes a queue from its record t at recovery: a replicated quorum queue's member
// when the record names its group, any other queue as newQueue makes it.
func recoveredQueue(v *vhost, name string, autoDelete bool, args amqp.Table, id uint64, lim queueLimits, t amqp.Table) (*queue, error) {
	g, ok := t["quorum_group"].(int64)
	if !ok {
		return newQueue(v, name, true, autoDelete, nil, args, id, lim), nil
	}
	vs, _ := t["quorum_voters"].([]any)
	voters := make([]uint64, 0, len(vs))
	for _, x := range vs {
		n, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("quorum queue %q: malformed voters %v", name, vs)
		}
		voters = append(voters, uint64(n))
	}
	if g == 0 || len(voters) == 0 {
		return nil, fmt.Errorf("quorum queue %q: malformed group %d or voters %v", name, g, vs)
	}
	return newReplicaQueue(v, name, args, id, lim, uint64(g), voters, false), nil
}

// nodeName is the name of the member whose Raft id is id ("" if none is).
func (s *Server) nodeName(id uint64) string {
	if s.opts.Cluster == nil {
		if id == quorumNodeID {
			return s.opts.NodeName
		}
		return ""
	}
	for _, n := range s.opts.Cluster.Nodes {
		if NodeID(n.Name) == id {
			return n.Name
		}
	}
	return ""
}

// membership fills a quorum queue's leader, members and online (node names) into qi.
func (q *quorumQueue) membership(qi *QueueInfo) {
	s := q.v.srv
	h, err := q.qh.host()
	if !q.rep || err != nil {
		qi.Leader, qi.Members, qi.Online = s.opts.NodeName, []string{s.opts.NodeName}, []string{s.opts.NodeName}
		return
	}
	qi.Leader = s.nodeName(h.Leader(q.group))
	tr := h.Transport()
	for _, id := range q.voters {
		name := s.nodeName(id)
		qi.Members = append(qi.Members, name)
		if id == q.qh.self || tr != nil && tr.Connected(id) {
			qi.Online = append(qi.Online, name)
		}
	}
	slices.Sort(qi.Members)
	slices.Sort(qi.Online)
}

// QuorumCritical lists the quorum queues that would lose their majority if this node stopped:
// those with this node as a member whose online members are at most a bare majority (RabbitMQ's
// node-is-quorum-critical health check). single: the node is not clustered (nothing listed).
func (s *Server) QuorumCritical() (single bool, critical []QueueInfo) {
	if s.opts.Cluster == nil || len(s.opts.Cluster.Nodes) <= 1 {
		return true, nil
	}
	var out []QueueInfo
	for _, qi := range s.Queues(nil) {
		if len(qi.Members) <= 1 {
			continue
		}
		if !slices.Contains(qi.Online, s.opts.NodeName) {
			continue
		}
		// Online members left if this node stopped, against a majority of all members.
		if len(qi.Online)-1 < len(qi.Members)/2+1 {
			out = append(out, qi)
		}
	}
	return false, out
}
