package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/cluster"
	"github.com/warrenmq/warren/cluster/fifo"
	"github.com/warrenmq/warren/storage"
)

// The quorum queue type (x-queue-type: quorum): a queue whose state is cluster/fifo's state
// machine, replicated by its own Raft group on the node's cluster.Host (queue_quorum_host.go).
// On this single node the group has one member, this node, so a command is committed once the
// host's write holding it is fsynced.
//
// Commands: every operation becomes fifo commands, appended in order to the queue's pending batch
// (pmu) and proposed by the queue's worker (run) as ONE Raft entry per batch: the entry is a
// count and the commands' encodings; the state machine applies command i of the entry at log
// index idx as fifo index idx<<16 | i+1 (fifo wants a strictly increasing index per command; a
// message's id is its enqueue's). While a batch is being proposed the next one fills up, so any
// number of publishers share one proposal and one fsync.
//
//   - publish: Enqueue with the queue's producer id (one per queue and boot) and its next seq;
//     the confirm waits for the batch's commit group (external, completed by the worker once the
//     entry is committed and applied, and after the committer's groups of the moment, so that a
//     connection's confirms stay ordered with its writes to classic queues). With x-overflow
//     reject-publish(-dlx) and a length limit, the publisher waits for its enqueue's outcome and
//     a refused one is nacked.
//   - basic.consume: Checkout (credit: the consumer's prefetch, 0 unlimited); the consumer is
//     told consume-ok once the checkout is applied, before any delivery. Deliveries are the
//     state machine's Deliver effects, handed to the subscription's deliveryTarget; one the
//     target refuses waits in the subscription's backlog until kick.
//   - basic.cancel: Cancel, then Return of what never reached the target (the channel keeps its
//     unacked deliveries). A closed channel: Down of the consumer's owner (each subscription is
//     its own owner), which returns everything the consumer holds before the next single active
//     consumer is chosen, as RabbitMQ 3.10.8 does (checked: the requeued message goes first to
//     the next consumer).
//   - ack / nack / reject: Settle / Return / Discard by the consumer that holds the message
//     (held: message id → consumer key). basic.get: Dequeue (the queue's get owner); purge: Purge.
//   - Dead letters (at most once) are republished by the worker through the vhost's routing, as
//     the classic queue does (deadMessage). Timers (TTL at the head, x-expires) are the state
//     machine's Timer effects; the worker proposes a Tick then.
//
// Restart: the group's log (and its latest snapshot: the host snapshots the state, bodies
// included, every quorumSnapshotEntries entries and truncates the log there) replays into a new
// State. Effects are not acted on during the replay (the worker ends it with a ReadIndex); then
// every owner the log named is proposed Down, so the messages held by the previous run's
// consumers come back, redelivered with their delivery count one higher.
//
// Locks: q.mu guards the state machine and the subscriptions; the host's loop takes it in Apply
// (and delivers under it, as a classic queue's dispatch does); pmu guards the pending batch and is
// never held with q.mu taken after it (q.mu, then pmu). Neither is held across a proposal,
// a wait for one, or an fsync.

type quorumQueue struct {
	*queueMeta
	lim      queueLimits
	qh       *quorumHost
	group    uint64   // the Raft group id: the queue's store id (see docs/DESIGN.md), or the meta group's choice
	voters   []uint64 // a replicated queue's members' Raft ids (declareQuorumReplica); nil: this node alone
	rep      bool     // a replicated queue (queue_quorum_replica.go)
	producer uint64   // this run's producer id for the queue's enqueues
	getOwner uint64   // this run's owner of basic.get deliveries
	fresh    bool     // declared now (not recovered)

	base   context.Context // ends when the queue is deleted or the server stops
	cancel context.CancelFunc
	wake   chan struct{} // 1-buffered: the worker has something to do
	stopc  chan struct{} // closed when the queue is deleted
	stop1  sync.Once
	ready  chan struct{} // closed when the group runs (or failed to start: readyErr)
	rerr   error

	pmu  sync.Mutex
	pend struct {
		cmds    []fifo.Command
		waiters []*qwaiter
		g       *commitGroup
		seq     uint64
	}

	mu struct {
		sync.Mutex
		st        *fifo.State
		subs      map[fifo.ConsumerKey]*qsub
		bySub     map[*subscription]*qsub
		held      map[uint64]fifo.ConsumerKey
		dead      []deadLetter
		aloKick   bool                          // new at-least-once dead letters
		returns   map[fifo.ConsumerKey][]uint64 // delivered to a consumer gone here: return them
		timerAt   int64
		expired   bool
		replaying bool
		owners    map[uint64]bool // owners seen while replaying
		deleted   bool
		run       dispatchRun
	}
}

type qsub struct {
	s       *subscription
	key     fifo.ConsumerKey
	pending bool // checkout not applied yet: deliveries wait in the backlog
	backlog []*qentry
}

type qwaiter struct {
	done  chan struct{}
	reply fifo.Reply
	err   error
}

var _ queueImpl = (*quorumQueue)(nil)
var _ raftQueue = (*quorumQueue)(nil)

// raftGroup is the queue's Raft group id (its Prometheus rabbitmq_raft_* series: RaftGroups).
func (q *quorumQueue) raftGroup() uint64 { return q.group }

// unlock releases the queue's lock (the package's rule: a queue's lock is released by its unlock
// method; a quorum queue has no pending work to finish there, its worker does it).
func (qq *quorumQueue) unlock() { qq.mu.Unlock() }

func newQuorumQueue(m *queueMeta, lim queueLimits) queueImpl {
	return newQuorumQueueGroup(m, lim, m.id, nil, !m.v.srv.qq.recovering)
}

// newQuorumQueueGroup makes the queue of group (this node alone when voters is nil; a replicated
// queue's member otherwise), new (fresh) or recovered.
func newQuorumQueueGroup(m *queueMeta, lim queueLimits, group uint64, voters []uint64, fresh bool) *quorumQueue {
	qh := m.v.srv.qq
	q := &quorumQueue{queueMeta: m, lim: lim, qh: qh, group: group, voters: voters, rep: voters != nil, fresh: fresh,
		wake: make(chan struct{}, 1), stopc: make(chan struct{}), ready: make(chan struct{})}
	q.base, q.cancel = context.WithCancel(qh.base)
	q.producer = qh.newOwner()
	q.getOwner = qh.newOwner()
	q.mu.st = fifo.New()
	if q.rep {
		// Every member starts from the configuration of the queue's arguments, which the meta
		// group gives them all (no Config entry, so none proposed by each member).
		q.mu.st = fifo.NewWithConfig(q.config())
	}
	q.mu.subs = map[fifo.ConsumerKey]*qsub{}
	q.mu.bySub = map[*subscription]*qsub{}
	q.mu.held = map[uint64]fifo.ConsumerKey{}
	q.mu.returns = map[fifo.ConsumerKey][]uint64{}
	q.mu.replaying = true
	q.mu.owners = map[uint64]bool{}
	if q.fresh && !q.rep {
		q.appendLocked(fifo.Command{Kind: fifo.KindConfig, Config: q.config()}, nil)
	}
	if !qh.goRun(q.run) {
		q.rerr = cluster.ErrStopped
		close(q.ready)
	}
	return q
}

// config is the state machine's configuration from the queue's arguments.
func (q *quorumQueue) config() fifo.Config {
	c := fifo.DefaultConfig()
	c.DeliveryLimit, c.MaxLength, c.MaxLengthBytes = q.lim.deliveryLimit, q.lim.maxLen, q.lim.maxBytes
	c.MessageTTL, c.Expires, c.SingleActive = q.lim.msgTTL, q.lim.expires, q.lim.single
	switch q.lim.overflow {
	case "reject-publish":
		c.Overflow = fifo.RejectPublish
	case "reject-publish-dlx":
		c.Overflow = fifo.RejectPublishDLX
	}
	if q.lim.dlxAtLeastOnce && q.lim.hasDLX {
		c.DeadLetter = fifo.AtLeastOnce // fifo applies it with reject-publish only, as RabbitMQ
	}
	return c
}

// rejects: a publish may be refused (reject-publish with a length limit): it waits for its outcome.
func (q *quorumQueue) rejects() bool {
	return strings.HasPrefix(q.lim.overflow, "reject-publish") && (q.lim.maxLen >= 0 || q.lim.maxBytes >= 0)
}

// appendLocked adds c to the pending batch (pmu held, or before the worker starts) and returns
// the batch's commit group.
func (q *quorumQueue) appendLocked(c fifo.Command, w *qwaiter) *commitGroup {
	c.Time = nowMillis()
	q.pend.cmds = append(q.pend.cmds, c)
	q.pend.waiters = append(q.pend.waiters, w)
	if q.pend.g == nil {
		q.pend.g = &commitGroup{done: make(chan struct{}), external: true}
	}
	return q.pend.g
}

// propose adds commands to the pending batch and wakes the worker.
func (q *quorumQueue) propose(cs ...fifo.Command) *commitGroup {
	q.pmu.Lock()
	var g *commitGroup
	for _, c := range cs {
		g = q.appendLocked(c, nil)
	}
	q.pmu.Unlock()
	q.kickWorker()
	return g
}

// call proposes c and waits for its reply.
func (q *quorumQueue) call(c fifo.Command) (fifo.Reply, error) {
	w := &qwaiter{done: make(chan struct{})}
	q.pmu.Lock()
	q.appendLocked(c, w)
	q.pmu.Unlock()
	q.kickWorker()
	<-w.done
	return w.reply, w.err
}

func (q *quorumQueue) kickWorker() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// maxBatch bounds the commands of one entry (the fifo index keeps 16 bits for them) and its bytes.
const (
	maxBatch      = 4096
	maxBatchBytes = 4 << 20
)

// takeBatch takes the pending commands (up to the limits) with their waiters and group.
func (q *quorumQueue) takeBatch() (cmds []fifo.Command, ws []*qwaiter, g *commitGroup) {
	q.pmu.Lock()
	defer q.pmu.Unlock()
	n, size := 0, 0
	for n < len(q.pend.cmds) && n < maxBatch && (n == 0 || size+len(q.pend.cmds[n].Body) <= maxBatchBytes) {
		size += len(q.pend.cmds[n].Body)
		n++
	}
	if n == 0 {
		return nil, nil, nil
	}
	cmds, ws = q.pend.cmds[:n:n], q.pend.waiters[:n:n]
	if n == len(q.pend.cmds) {
		g = q.pend.g
		q.pend.cmds, q.pend.waiters, q.pend.g = nil, nil, nil
	} else {
		// The rest stays with the group: it completes with the last batch that holds its writes.
		q.pend.cmds = append([]fifo.Command(nil), q.pend.cmds[n:]...)
		q.pend.waiters = append([]*qwaiter(nil), q.pend.waiters[n:]...)
	}
	return cmds, ws, g
}

func encodeBatch(cmds []fifo.Command) []byte {
	size := 8
	for i := range cmds {
		size += len(cmds[i].Body) + 64
	}
	b := binary.AppendUvarint(make([]byte, 0, size), uint64(len(cmds)))
	var tmp []byte
	for i := range cmds {
		tmp = cmds[i].Append(tmp[:0])
		b = binary.AppendUvarint(b, uint64(len(tmp)))
		b = append(b, tmp...)
	}
	return b
}

// run is the queue's worker: it starts the group, then proposes batches, republishes dead letters
// and proposes ticks until the queue is deleted or the server stops.
func (q *quorumQueue) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	h, err := q.qh.host()
	if err == nil {
		err = q.startGroup(h)
	}
	q.mu.Lock()
	q.mu.replaying = false
	owners := q.mu.owners
	q.mu.owners = nil
	q.unlock()
	q.rerr = err
	close(q.ready)
	if err != nil {
		q.v.srv.log.Error("quorum queue: its group did not start", "vhost", q.v.name, "queue", q.name, "err", err)
	} else if !q.fresh {
		// The previous run's consumers and basic.get owners are gone: their messages come back.
		var downs []fifo.Command
		for o := range owners {
			if !q.rep || q.qh.mine(o) { // another member's owners are its own to report
				downs = append(downs, fifo.Command{Kind: fifo.KindDown, Owner: o})
			}
		}
		q.pmu.Lock()
		for _, c := range downs {
			q.appendLocked(c, nil)
		}
		// Downs first: they were the state before anything this run proposed.
		n := len(downs)
		q.pend.cmds = append(q.pend.cmds[len(q.pend.cmds)-n:], q.pend.cmds[:len(q.pend.cmds)-n]...)
		q.pend.waiters = append(q.pend.waiters[len(q.pend.waiters)-n:], q.pend.waiters[:len(q.pend.waiters)-n]...)
		q.pmu.Unlock()
	}
	armed := int64(0)
	var duty <-chan time.Time
	var lead *leaderDuty
	alo := q.config().DeadLetter == fifo.AtLeastOnce
	if (q.rep || alo) && err == nil {
		t := time.NewTicker(leaderCheckTicks * q.qh.tick)
		defer t.Stop()
		duty = t.C
		lead = &leaderDuty{}
	}
	for {
		q.work(h, err)
		q.mu.Lock()
		dead := q.mu.dead
		q.mu.dead = nil
		returns := q.mu.returns
		if len(returns) > 0 {
			q.mu.returns = map[fifo.ConsumerKey][]uint64{}
		}
		at, expired := q.mu.timerAt, q.mu.expired
		q.mu.expired = false
		aloKick := q.mu.aloKick
		q.mu.aloKick = false
		q.unlock()
		if len(dead) > 0 && (!q.rep || q.leading(h)) {
			q.deadLetterAll(dead) // at most once: only the leader republishes
		}
		for k, ids := range returns {
			q.propose(fifo.Command{Kind: fifo.KindReturn, Consumer: k, IDs: ids})
		}
		if expired {
			if self := q.self(); self != nil {
				q.v.deleteQueue(self, false, false)
			}
		}
		if at != armed && at > 0 {
			armed = at
			timer.Reset(time.Duration(max(at-nowMillis(), 0)) * time.Millisecond)
		}
		if alo && lead != nil && (aloKick || lead.check) {
			q.deadLetterAtLeastOnce(h, lead)
		}
		if q.rep && lead != nil && lead.check {
			lead.check = false
			if q.leaderDuties(h, lead) && armed > 0 && nowMillis() >= armed {
				armed = 0
				q.propose(fifo.Command{Kind: fifo.KindTick})
			}
		}
		q.pmu.Lock()
		more := len(q.pend.cmds) > 0
		q.pmu.Unlock()
		if more {
			continue
		}
		select {
		case <-q.wake:
		case <-timer.C:
			if q.rep && !q.leading(h) {
				// Timers are the leader's: a follower keeps the deadline (armed) and proposes the
				// Tick if it leads once it is past (below).
				continue
			}
			armed = 0
			q.propose(fifo.Command{Kind: fifo.KindTick})
		case <-duty:
			lead.check = true
			if !q.rep {
				lead.check = false
				q.deadLetterAtLeastOnce(h, lead)
			}
		case <-q.stopc:
			q.failPending(errQuorumDeleted)
			if h != nil && err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if rerr := h.RemoveGroup(ctx, q.group); rerr != nil {
					q.v.srv.log.Warn("quorum queue: removing its log", "queue", q.name, "err", rerr)
				}
				cancel()
			}
			return
		case <-q.qh.quit:
			q.failPending(cluster.ErrStopped)
			return
		}
	}
}

var errQuorumDeleted = errors.New("quorum queue deleted")

// startGroup creates (or recovers) the group and waits until its log has replayed.
func (q *quorumQueue) startGroup(h *cluster.Host) error {
	ctx, cancel := q.ctx(30 * time.Second)
	defer cancel()
	if err := q.qh.createGroup(ctx, h, q.group, q.voters, &quorumSM{q: q}, q.fresh); err != nil {
		return err
	}
	if q.rep {
		// A replicated queue waits as long as it takes for a majority of its members (a node
		// restarted while the others are down), until it is deleted or the server stops.
		ctx = q.base
	}
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		err := h.ReadIndex(rctx, q.group)
		rcancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if q.rep && errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if !errors.Is(err, cluster.ErrNoLeader) && !errors.Is(err, cluster.ErrLeaderChange) {
			return err
		}
		if !q.pause(ctx, 10*time.Millisecond) {
			return err
		}
	}
}

// ctx is a context that ends after d, or when the queue is deleted or the server stops.
func (q *quorumQueue) ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(q.base, d)
}

// pause waits d unless ctx ends first.
func (q *quorumQueue) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// work proposes the pending batches, one at a time, until none is left.
func (q *quorumQueue) work(h *cluster.Host, startErr error) {
	for {
		cmds, ws, g := q.takeBatch()
		if len(cmds) == 0 {
			return
		}
		var replies []fifo.Reply
		err := startErr
		if err == nil {
			replies, err = q.proposeBatch(h, cmds)
		}
		for i, w := range ws {
			if w == nil {
				continue
			}
			if err != nil {
				w.err = err
			} else {
				w.reply = replies[i]
			}
			close(w.done)
		}
		if g != nil {
			c := q.v.srv.commit
			c.afterCurrent(func(cerr error) {
				if err == nil {
					err = cerr
				}
				c.finishExternal(g, err)
			})
		}
	}
}

// proposeBatch proposes one entry and returns its commands' replies. A dropped proposal is
// retried; one whose outcome is unknown is retried with the same proposal id (the state machine
// drops the duplicate: quorumSM.Apply).
func (q *quorumQueue) proposeBatch(h *cluster.Host, cmds []fifo.Command) ([]fifo.Reply, error) {
	data := encodeBatch(cmds)
	id := h.NewProposalID()
	ctx, cancel := q.ctx(time.Minute)
	defer cancel()
	for {
		res, err := h.ProposeID(ctx, q.group, id, data)
		if err == nil {
			rs, ok := res.([]fifo.Reply)
			if !ok || len(rs) != len(cmds) {
				return nil, fmt.Errorf("quorum queue: entry %v applied as a duplicate or malformed", id)
			}
			return rs, nil
		}
		if ctx.Err() != nil || errors.Is(err, cluster.ErrStopped) || errors.Is(err, cluster.ErrNoGroup) || errors.Is(err, cluster.ErrTooLarge) {
			return nil, err
		}
		if !q.pause(ctx, 10*time.Millisecond) {
			return nil, err
		}
	}
}

// failPending fails what is still pending (the queue was deleted or the server stops).
func (q *quorumQueue) failPending(err error) {
	for {
		_, ws, g := q.takeBatch()
		if ws == nil {
			return
		}
		for _, w := range ws {
			if w != nil {
				w.err = err
				close(w.done)
			}
		}
		if g != nil {
			q.v.srv.commit.finishExternal(g, err)
		}
	}
}

// deadLetterAll republishes dead letters to the queue's dead-letter exchange.
func (q *quorumQueue) deadLetterAll(dead []deadLetter) {
	cq := &classicQueue{queueMeta: q.queueMeta}
	lim := q.lim
	cq.limits.Store(&lim)
	cq.deadLetterAll(dead)
}

// --- the state machine ---

// quorumSM is the queue's cluster.StateMachine: the host's loop applies entries with it.
type quorumSM struct {
	q   *quorumQueue
	dec fifo.Decoder
	// applied proposal ids, for a retried proposal (the last ones only: a retry follows its
	// first attempt closely).
	seen    map[cluster.ProposalID]bool
	seenLog []cluster.ProposalID
	// this node's last proposals' replies: a retry whose first attempt was applied gets them (its
	// proposer saw ErrUnknownOutcome, not the replies). The worker has one proposal in flight at
	// a time, so a few suffice.
	own [4]ownReplies
}

type ownReplies struct {
	id      cluster.ProposalID
	replies []fifo.Reply
}

func (sm *quorumSM) Apply(ents []cluster.Entry) ([]any, error) {
	q := sm.q
	out := make([]any, len(ents))
	q.mu.Lock()
	defer q.unlock()
	run := &q.mu.run
	*run = dispatchRun{}
	for i, e := range ents {
		if sm.seen[e.ID] {
			for _, o := range sm.own {
				if o.id == e.ID {
					out[i] = o.replies // a retry of an applied proposal: its first outcome stands
				}
			}
			continue
		}
		data := append([]byte(nil), e.Data...) // the state keeps messages' bodies aliased
		n, k := binary.Uvarint(data)
		if k <= 0 || n > maxBatch {
			return nil, fmt.Errorf("quorum queue %q: malformed entry %d", q.name, e.Index)
		}
		data = data[k:]
		replies := make([]fifo.Reply, 0, n)
		for j := range n {
			l, k := binary.Uvarint(data)
			if k <= 0 || uint64(len(data)-k) < l {
				return nil, fmt.Errorf("quorum queue %q: malformed entry %d", q.name, e.Index)
			}
			var c fifo.Command
			if err := sm.dec.Decode(data[k:k+int(l)], &c); err != nil {
				return nil, fmt.Errorf("quorum queue %q: entry %d: %w", q.name, e.Index, err)
			}
			data = data[k+int(l):]
			if q.mu.replaying {
				if c.Owner != 0 {
					q.mu.owners[c.Owner] = true
				}
				if c.Consumer.Owner != 0 {
					q.mu.owners[c.Consumer.Owner] = true
				}
			}
			r, effs := q.mu.st.Apply(e.Index<<16|(j+1), &c)
			replies = append(replies, r)
			q.effectsLocked(effs, run)
		}
		out[i] = replies
		sm.remember(e.ID)
		if e.ID.Node == q.qh.self {
			copy(sm.own[1:], sm.own[:len(sm.own)-1])
			sm.own[0] = ownReplies{id: e.ID, replies: replies}
		}
	}
	return out, nil
}

func (sm *quorumSM) remember(id cluster.ProposalID) {
	if sm.seen == nil {
		sm.seen = map[cluster.ProposalID]bool{}
	}
	sm.seen[id] = true
	sm.seenLog = append(sm.seenLog, id)
	if len(sm.seenLog) > 1024 {
		delete(sm.seen, sm.seenLog[0])
		sm.seenLog = sm.seenLog[1:]
	}
}

func (sm *quorumSM) Snapshot() ([]byte, error) {
	sm.q.mu.Lock()
	defer sm.q.unlock()
	return sm.q.mu.st.Marshal(), nil
}

func (sm *quorumSM) Restore(data []byte) error {
	st, err := fifo.Restore(data)
	if err != nil {
		return err
	}
	sm.q.mu.Lock()
	defer sm.q.unlock()
	sm.q.mu.st = st
	if sm.q.mu.replaying {
		for _, o := range st.Owners() {
			sm.q.mu.owners[o] = true
		}
		delete(sm.q.mu.owners, 0)
	}
	return nil
}

// effectsLocked acts on a command's effects (q.mu held; not while the log replays, except for
// the timer).
func (q *quorumQueue) effectsLocked(effs []fifo.Effect, run *dispatchRun) {
	for i := range effs {
		e := &effs[i]
		if e.Kind == fifo.EffectTimer {
			q.mu.timerAt = e.At
			q.kickWorker()
			continue
		}
		if q.mu.replaying || q.mu.deleted {
			continue
		}
		switch e.Kind {
		case fifo.EffectDeliver:
			q.deliverLocked(e.Consumer, &e.Msg, run)
		case fifo.EffectDeadLetter:
			if e.AtLeastOnce {
				q.mu.aloKick = true // the worker republishes the state's pending ones
				q.kickWorker()
				continue
			}
			if !q.lim.hasDLX {
				continue
			}
			m, err := decodeMessage(e.Msg.Body)
			if err != nil {
				q.v.srv.log.Error("quorum queue: undecodable message", "queue", q.name, "err", err)
				continue
			}
			q.mu.dead = append(q.mu.dead, deadLetter{msg: m, reason: e.Reason.String()})
			q.kickWorker()
		case fifo.EffectQueueExpired:
			q.mu.expired = true
			q.kickWorker()
		}
	}
}

// entry builds the handle of a message leaving the queue, with x-delivery-count if stamp or
// redelivered (RabbitMQ 3.10.8: a consumer's first delivery has no header, basic.get's has 0).
func (q *quorumQueue) entry(m *fifo.Message, stamp bool) (*qentry, error) {
	msg, err := decodeMessage(m.Body)
	if err != nil {
		return nil, err
	}
	e := &qentry{msg: msg, seq: m.ID, redelivered: m.Redelivered(), returns: m.DeliveryCount}
	if stamp || m.DeliveryCount > 0 {
		stampDeliveryCount(e)
	}
	return e, nil
}

// stampDeliveryCount makes e's message carry x-delivery-count (as the classic queue's stampLocked).
func stampDeliveryCount(e *qentry) {
	props, err := amqp.DecodeProperties(e.msg.props)
	if err != nil {
		return
	}
	h := amqp.Table{}
	for k, x := range props.Headers {
		h[k] = x
	}
	h["x-delivery-count"] = int64(e.returns)
	props.Headers = h
	raw, err := props.Append(nil)
	if err != nil {
		return
	}
	e.msg.props, e.msg.headers, e.msg.rec = raw, h, nil
	e.stamped = e.returns + 1
}

func (q *quorumQueue) deliverLocked(k fifo.ConsumerKey, m *fifo.Message, run *dispatchRun) {
	if q.rep && !q.qh.mine(k.Owner) {
		return // another member's consumer: that member delivers it from its own log
	}
	sub := q.mu.subs[k]
	if sub == nil {
		// Cancelled here before the state machine knew: give it back.
		q.mu.returns[k] = append(q.mu.returns[k], m.ID)
		q.kickWorker()
		return
	}
	e, err := q.entry(m, false)
	if err != nil {
		q.v.srv.log.Error("quorum queue: undecodable message", "queue", q.name, "err", err)
		return
	}
	if !sub.s.noAck {
		q.mu.held[m.ID] = k
	}
	if sub.pending || len(sub.backlog) > 0 || !sub.s.target.deliver(e, run) {
		sub.backlog = append(sub.backlog, e)
	}
}

// flushLocked hands sub's backlog to its target while it takes them.
func (q *quorumQueue) flushLocked(sub *qsub, run *dispatchRun) {
	n := 0
	for n < len(sub.backlog) && sub.s.target.deliver(sub.backlog[n], run) {
		sub.backlog[n] = nil
		n++
	}
	sub.backlog = sub.backlog[n:]
}

// --- queueImpl ---

func (q *quorumQueue) publishFrom(msg *message, _ publishSource, _ *qentry) (publishResult, *commitGroup, <-chan struct{}) {
	c := fifo.Command{Kind: fifo.KindEnqueue, Producer: q.producer, Size: uint64(len(msg.body)), TTL: -1, Body: msg.record()}
	if msg.hasTTL {
		c.TTL = msg.ttl
	}
	q.mu.Lock()
	deleted := q.mu.deleted
	q.unlock()
	if deleted {
		return gone, nil, nil
	}
	if q.rejects() {
		w := &qwaiter{done: make(chan struct{})}
		q.pmu.Lock()
		q.pend.seq++
		c.Seq = q.pend.seq
		q.appendLocked(c, w)
		q.pmu.Unlock()
		q.kickWorker()
		<-w.done
		switch {
		case w.err != nil:
			return rejected, nil, nil
		case w.reply.Status == fifo.StatusRejected:
			return rejected, nil, nil
		}
		return published, nil, nil
	}
	q.pmu.Lock()
	q.pend.seq++
	c.Seq = q.pend.seq
	g := q.appendLocked(c, nil)
	q.pmu.Unlock()
	q.kickWorker()
	return published, g, nil
}

func (q *quorumQueue) publish(msg *message) (publishResult, *commitGroup) {
	r, g, _ := q.publishFrom(msg, nil, nil)
	return r, g
}

func (q *quorumQueue) dispatchCount() uint64                     { return 0 }
func (q *quorumQueue) flowCheckStall(mark uint64) (uint64, bool) { return mark, false }

func (q *quorumQueue) addConsumer(s *subscription, onAdded func()) error {
	var prio int64
	if x, ok := s.args["x-priority"]; ok {
		p, ok := intArg(x)
		if !ok {
			return amqp.Errorf(amqp.PreconditionFailed, "invalid arg 'x-priority' for queue '%s' in vhost '%s': \"expected integer, got %s\"",
				q.name, q.v.name, amqp.FieldTypeName(x))
		}
		prio = p
	}
	s.priority = prio
	var ci ConsumerInfo
	s.target.describe(&ci)
	key := fifo.ConsumerKey{Owner: q.qh.newOwner(), Tag: s.tag}
	sub := &qsub{s: s, key: key, pending: true}
	q.mu.Lock()
	if q.mu.deleted {
		q.unlock()
		return q.v.errNoQueue(q.name)
	}
	excl := false
	for _, o := range q.mu.subs {
		excl = excl || o.s.exclusive
	}
	if len(q.mu.subs) > 0 && (s.exclusive || excl) || s.exclusive && q.lim.single {
		q.unlock()
		return amqp.Errorf(amqp.AccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.name, q.v.name)
	}
	q.mu.subs[key] = sub
	q.mu.bySub[s] = sub
	q.unlock()
	r, err := q.call(fifo.Command{Kind: fifo.KindCheckout, Consumer: key, Mode: fifo.Prefetch, Credit: uint32(ci.Prefetch),
		Priority: int32(max(min(prio, 1<<31-1), -1<<31)), Exclusive: s.exclusive, NoAck: s.noAck})
	q.mu.Lock()
	defer q.unlock()
	if err == nil && r.Status != fifo.StatusOK {
		err = amqp.Errorf(amqp.AccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.name, q.v.name)
	}
	if err != nil {
		if q.mu.bySub[s] == sub {
			delete(q.mu.subs, key)
			delete(q.mu.bySub, s)
		}
		if errors.Is(err, errQuorumDeleted) {
			return q.v.errNoQueue(q.name)
		}
		if _, ok := err.(*amqp.Error); ok {
			return err
		}
		return amqp.Errorf(amqp.InternalError, "quorum queue '%s': %v", q.name, err)
	}
	if q.mu.bySub[s] != sub {
		return q.v.errNoQueue(q.name) // deleted meanwhile
	}
	onAdded()
	sub.pending = false
	run := &q.mu.run
	*run = dispatchRun{}
	q.flushLocked(sub, run)
	return nil
}

func (q *quorumQueue) removeConsumer(s *subscription) bool {
	closing := false
	if c, ok := s.target.(interface{ closing() bool }); ok {
		closing = c.closing()
	}
	q.mu.Lock()
	sub := q.mu.bySub[s]
	if sub == nil {
		q.unlock()
		return false
	}
	delete(q.mu.bySub, s)
	delete(q.mu.subs, sub.key)
	var ids []uint64
	for _, e := range sub.backlog {
		ids = append(ids, e.seq)
		delete(q.mu.held, e.seq)
	}
	sub.backlog = nil
	if closing {
		// Down returns everything the consumer holds (the channel's requeue that follows finds
		// nothing left to return) before another single active consumer is chosen.
		for id, k := range q.mu.held {
			if k == sub.key {
				delete(q.mu.held, id)
			}
		}
	}
	q.unlock()
	if closing {
		q.propose(fifo.Command{Kind: fifo.KindDown, Owner: sub.key.Owner})
		return false
	}
	cs := []fifo.Command{{Kind: fifo.KindCancel, Consumer: sub.key}}
	if len(ids) > 0 && !s.noAck {
		cs = append(cs, fifo.Command{Kind: fifo.KindReturn, Consumer: sub.key, IDs: ids})
	}
	q.propose(cs...)
	return false
}

func (q *quorumQueue) kick(subs []*subscription, wb *writeBatch) {
	q.mu.Lock()
	defer q.unlock()
	run := &q.mu.run
	*run = dispatchRun{wb: wb}
	for _, sub := range q.mu.bySub {
		if len(sub.backlog) > 0 && !sub.pending {
			q.flushLocked(sub, run)
		}
	}
}

func (q *quorumQueue) get(ackRequired bool) (*qentry, uint32) {
	r, err := q.call(fifo.Command{Kind: fifo.KindDequeue, Owner: q.getOwner, Settled: !ackRequired})
	if err != nil || r.Status != fifo.StatusOK {
		return nil, 0
	}
	e, derr := q.entry(&r.Msg, true)
	if derr != nil {
		return nil, 0
	}
	if ackRequired {
		q.mu.Lock()
		q.mu.held[e.seq] = fifo.ConsumerKey{Owner: q.getOwner}
		q.unlock()
	}
	return e, uint32(min(r.Count, 1<<32-1))
}

// byConsumer groups entries by the consumer that holds them into commands of kind k.
func (q *quorumQueue) byConsumer(k fifo.Kind, es []*qentry) []fifo.Command {
	q.mu.Lock()
	ids := map[fifo.ConsumerKey][]uint64{}
	var order []fifo.ConsumerKey
	for _, e := range es {
		key, ok := q.mu.held[e.seq]
		if !ok {
			continue
		}
		delete(q.mu.held, e.seq)
		if _, seen := ids[key]; !seen {
			order = append(order, key)
		}
		ids[key] = append(ids[key], e.seq)
	}
	q.unlock()
	cs := make([]fifo.Command, 0, len(order))
	for _, key := range order {
		cs = append(cs, fifo.Command{Kind: k, Consumer: key, IDs: ids[key]})
	}
	return cs
}

func (q *quorumQueue) settle(es []*qentry) {
	if cs := q.byConsumer(fifo.KindSettle, es); len(cs) > 0 {
		q.propose(cs...)
	}
}

func (q *quorumQueue) reject(es []*qentry) {
	if cs := q.byConsumer(fifo.KindDiscard, es); len(cs) > 0 {
		q.propose(cs...)
	}
}

func (q *quorumQueue) requeue(es []*qentry) {
	if cs := q.byConsumer(fifo.KindReturn, es); len(cs) > 0 {
		q.propose(cs...)
	}
}

// declared: a redeclare does not reset a quorum queue's x-expires here (declared cannot tell a
// passive declare, which must not; RabbitMQ 3.10.8 expires a queue that is polled passively).
func (q *quorumQueue) declared() (uint32, uint32) { return q.counts() }

func (q *quorumQueue) start() {}
func (q *quorumQueue) stop()  {}

func (q *quorumQueue) purge() uint32 {
	r, err := q.call(fifo.Command{Kind: fifo.KindPurge})
	if err != nil {
		return 0
	}
	return uint32(min(r.Count, 1<<32-1))
}

func (q *quorumQueue) markDeleted(ifUnused, ifEmpty bool) (uint32, []deliveryTarget, error) {
	q.mu.Lock()
	defer q.unlock()
	c := q.mu.st.Counts()
	if ifEmpty && c.Ready > 0 {
		return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' not empty", q.name, q.v.name)
	}
	if ifUnused && len(q.mu.subs) > 0 {
		return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' in use", q.name, q.v.name)
	}
	q.mu.deleted = true
	var cancelled []deliveryTarget
	for _, sub := range q.mu.bySub {
		if sub.s.target.queueDeleted() {
			cancelled = append(cancelled, sub.s.target)
		}
	}
	q.mu.subs = map[fifo.ConsumerKey]*qsub{}
	q.mu.bySub = map[*subscription]*qsub{}
	q.stop1.Do(func() { close(q.stopc); q.cancel() })
	return uint32(min(c.Ready, 1<<32-1)), cancelled, nil
}

// Policies are not applied to quorum queues yet: their settings are their arguments.
func (q *quorumQueue) applyPolicy()           {}
func (q *quorumQueue) setPolicy(_, _ *policy) {}

func (q *quorumQueue) pageOut() (int, int64, *commitGroup) { return 0, 0, nil }

func (q *quorumQueue) counts() (uint32, uint32) {
	q.mu.Lock()
	defer q.unlock()
	c := q.mu.st.Counts()
	return uint32(min(c.Ready, 1<<32-1)), uint32(len(q.mu.subs))
}

func (q *quorumQueue) lengths() (int64, int64) {
	q.mu.Lock()
	defer q.unlock()
	c := q.mu.st.Counts()
	return int64(c.Ready), int64(c.Unacked)
}

func (q *quorumQueue) info(_ *unackedSums) QueueInfo {
	qi := q.baseInfo()
	q.mu.Lock()
	c := q.mu.st.Counts()
	qi.Consumers = len(q.mu.subs)
	if q.rep {
		// Every member's, but not those suspected (their node unreachable), as rabbit_fifo's
		// query_consumer_count.
		qi.Consumers = 0
		for _, ci := range q.mu.st.Consumers() {
			if !ci.Suspected {
				qi.Consumers++
			}
		}
	}
	q.unlock()
	qi.Ready, qi.Unacked = int64(c.Ready), int64(c.Unacked)
	qi.ReadyBytes, qi.UnackedBytes = int64(c.ReadyBytes), int64(c.UnackedBytes)
	qi.DeadLetterPending, qi.DeadLetterBytes = int64(c.DeadLetterPending), int64(c.DeadLetterBytes)
	// Every message of a quorum queue is kept as persistent (RabbitMQ counts them so too).
	qi.Persistent, qi.PersistentBytes = qi.Ready+qi.Unacked, qi.ReadyBytes+qi.UnackedBytes
	qi.Memory = qi.PersistentBytes + (qi.Ready+qi.Unacked)*perMessageOverhead
	q.membership(&qi)
	return qi
}

func (q *quorumQueue) consumerInfos() []ConsumerInfo {
	q.mu.Lock()
	subs := make([]*subscription, 0, len(q.mu.bySub))
	for s := range q.mu.bySub {
		subs = append(subs, s)
	}
	q.unlock()
	out := make([]ConsumerInfo, 0, len(subs))
	for _, c := range subs {
		ci := ConsumerInfo{Vhost: q.v.name, Queue: q.name, Tag: c.tag, AckRequired: !c.noAck, Exclusive: c.exclusive, Arguments: c.args}
		c.target.describe(&ci)
		out = append(out, ci)
	}
	return out
}

// A quorum queue writes no message keys: recovery hands it none.
func (q *quorumQueue) recoverMessage(uint64, []byte, int64, bool) error { return nil }
func (q *quorumQueue) recoverDelivered(uint64)                          {}
func (q *quorumQueue) recovered(bool)                                   {}
func (q *quorumQueue) markClean(*storage.Batch)                         {}
