package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/cluster"
)

// The node's Raft host for quorum queues (queue_quorum.go). It is started on the first quorum
// queue (declared or recovered) and runs until the server stops: one cluster.Host on the
// server's own store (raft logs under cluster/raftlog's keys, next to the broker's), with this
// node as the only member of every group (node id 1) and no transport (no listener, no peers).
// On a cluster member it is the cluster's host, and a quorum queue declared through the meta group
// (meta.go) has the members the meta group chose (declareQuorumReplica).
//
// Goroutines: every quorum queue has one worker (quorumQueue.run) that creates its group,
// proposes its commands in order, republishes its dead letters and proposes its ticks; the
// workers are counted in quorumHost.wg and stop when their queue is deleted or the server stops
// (close). The host's loop applies committed entries to the queues' state machines.

const quorumNodeID = 1

type quorumHost struct {
	srv    *Server
	quit   chan struct{} // closed by close: every worker returns
	base   context.Context
	cancel context.CancelFunc // with quit: every worker's proposal ends
	wg     sync.WaitGroup
	self   uint64        // this node's Raft id in every group: quorumNodeID, or the cluster's (useHost)
	owners atomic.Uint64 // owner and producer ids: start at the wall clock, so unique across restarts

	// In a cluster (useHost): owner ids carry their node's tag in their top bits (ownerTagShift),
	// so that they cannot collide across nodes and the leader can tell which node an owner is on
	// (queue_quorum_replica.go). tag is this node's, nodes every member's tag → Raft id; tick is
	// the cluster's Raft tick, which the replicated queues' leader duties are paced by.
	tag   uint64
	nodes map[uint64]uint64
	tick  time.Duration
	peers peerWatch

	mu struct {
		sync.Mutex
		host   *cluster.Host
		err    error
		closed bool
	}
	// recovering is true while the server recovers its queues (set before and cleared after
	// Server.recover, single-threaded): a quorum queue made then is a recovered one.
	recovering bool
}

func newQuorumHost(s *Server) *quorumHost {
	qh := &quorumHost{srv: s, quit: make(chan struct{}), self: quorumNodeID, tick: 100 * time.Millisecond}
	qh.base, qh.cancel = context.WithCancel(context.Background())
	qh.owners.Store(uint64(time.Now().UnixNano()))
	return qh
}

// useHost makes h (the cluster's host, on which this node is self) the host of every quorum
// queue. New calls it before recovery, so before any quorum queue exists.
func (qh *quorumHost) useHost(h *cluster.Host, self uint64) {
	qh.mu.Lock()
	defer qh.mu.Unlock()
	qh.mu.host, qh.self = h, self
	qh.tag = ownerTag(self)
	qh.nodes = map[uint64]uint64{}
	qh.tick = 100 * time.Millisecond
	if co := qh.srv.opts.Cluster; co != nil {
		if co.TickInterval > 0 {
			qh.tick = co.TickInterval
		}
		for _, n := range co.Nodes {
			id := NodeID(n.Name)
			if other, dup := qh.nodes[ownerTag(id)]; dup && other != id {
				qh.srv.log.Error("quorum queues: two members have the same owner tag: a lost node's consumers may be confused with the other's",
					"tag", ownerTag(id))
			}
			qh.nodes[ownerTag(id)] = id
		}
	}
	// The counter's low bits start at the wall clock in milliseconds (2^44 ms is 557 years).
	qh.owners.Store(qh.tag<<ownerTagShift | uint64(time.Now().UnixMilli())&(1<<ownerTagShift-1))
}

// ownerTagShift: in a cluster, an owner id is its node's tag (20 bits) above a 44-bit counter.
const ownerTagShift = 44

// ownerTag is a node's owner tag: 20 bits of its Raft id, never 0 (0 is a single node's owners).
func ownerTag(id uint64) uint64 {
	if t := id & (1<<(64-ownerTagShift) - 1); t != 0 {
		return t
	}
	return 1
}

// newOwner returns a fresh owner id (a consumer's, a basic.get owner's, a producer's).
func (qh *quorumHost) newOwner() uint64 { return qh.owners.Add(1) }

// ownerNode returns the Raft id of the node an owner id was made on (0: unknown, or a single
// node's owner).
func (qh *quorumHost) ownerNode(owner uint64) uint64 {
	if qh.nodes == nil {
		return 0
	}
	return qh.nodes[owner>>ownerTagShift]
}

// mine reports whether owner was made on this node (always, on a single node).
func (qh *quorumHost) mine(owner uint64) bool {
	return qh.nodes == nil || owner>>ownerTagShift == qh.tag
}

// peerWatch remembers since when each peer has been disconnected.
type peerWatch struct {
	mu    sync.Mutex
	since map[uint64]time.Time
}

// peerDown reports whether the transport has had no connection to peer for at least d. It is
// polled by the replicated queues' leaders (every few ticks), which is what keeps it current.
func (qh *quorumHost) peerDown(h *cluster.Host, peer uint64, d time.Duration) bool {
	tr := h.Transport()
	if tr == nil || peer == qh.self {
		return false
	}
	now := time.Now()
	qh.peers.mu.Lock()
	defer qh.peers.mu.Unlock()
	if tr.Connected(peer) {
		delete(qh.peers.since, peer)
		return false
	}
	if qh.peers.since == nil {
		qh.peers.since = map[uint64]time.Time{}
	}
	t, ok := qh.peers.since[peer]
	if !ok {
		qh.peers.since[peer] = now
		return false
	}
	return now.Sub(t) >= d
}

// host returns the node's host, starting it on first use.
func (qh *quorumHost) host() (*cluster.Host, error) {
	qh.mu.Lock()
	defer qh.mu.Unlock()
	if qh.mu.closed {
		return nil, cluster.ErrStopped
	}
	if qh.mu.host != nil || qh.mu.err != nil {
		return qh.mu.host, qh.mu.err
	}
	// No listener and no peers: a host without a transport, every group this node alone.
	h, err := cluster.NewHost(cluster.HostOptions{ID: quorumNodeID, Cluster: "warren", Store: qh.srv.store,
		SnapshotEntries: quorumSnapshotEntries, CompactKeep: 0, Logger: qh.srv.log,
		// One member: no peer to wait for, so a new group elects itself after 2-4 ticks (a
		// clustered node will need raft's usual 10).
		ElectionTicks: 2})
	if err != nil {
		qh.mu.err = fmt.Errorf("quorum queues: %w", err)
		return nil, qh.mu.err
	}
	qh.mu.host = h
	return h, nil
}

// quorumSnapshotEntries: a group's state (with its messages' bodies) is snapshotted, and its log
// truncated, after this many entries.
const quorumSnapshotEntries = 8192

// goRun starts f as a worker owned by the host.
func (qh *quorumHost) goRun(f func()) bool {
	qh.mu.Lock()
	defer qh.mu.Unlock()
	if qh.mu.closed {
		return false
	}
	qh.wg.Add(1)
	go func() {
		defer qh.wg.Done()
		f()
	}()
	return true
}

// close stops every worker, then the host. The store stays open.
func (qh *quorumHost) close() error {
	qh.mu.Lock()
	if qh.mu.closed {
		qh.mu.Unlock()
		return nil
	}
	qh.mu.closed = true
	close(qh.quit)
	qh.cancel()
	qh.mu.Unlock()
	qh.wg.Wait()
	qh.mu.Lock()
	h := qh.mu.host
	qh.mu.Unlock()
	if h == nil {
		return nil
	}
	err := h.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// createGroup starts the queue's group: fresh (a declare: a stale log under the same id, left by a
// crash between a delete and its log's removal, is dropped first) or recovered (its log replays).
func (qh *quorumHost) createGroup(ctx context.Context, h *cluster.Host, id uint64, voters []uint64, sm cluster.StateMachine, fresh bool) error {
	if len(voters) == 0 {
		voters = []uint64{qh.self}
	}
	if fresh {
		for _, g := range h.StoredGroups() {
			if g == id {
				if err := h.CreateGroups(ctx, cluster.GroupSpec{ID: id, Voters: []uint64{qh.self}, SM: &discardSM{}}); err != nil {
					return err
				}
				if err := h.RemoveGroup(ctx, id); err != nil {
					return err
				}
			}
		}
	}
	return h.CreateGroups(ctx, cluster.GroupSpec{ID: id, Voters: voters, SM: sm})
}

// discardSM replays a stale log into nothing.
type discardSM struct{}

func (*discardSM) Apply(ents []cluster.Entry) ([]any, error) { return make([]any, len(ents)), nil }
func (*discardSM) Snapshot() ([]byte, error)                 { return nil, nil }
func (*discardSM) Restore([]byte) error                      { return nil }

// finishExternal completes a commit group that is not the committer's (a quorum queue's: its
// writes are the Raft host's), running its callbacks as the committer does.
func (c *committer) finishExternal(g *commitGroup, err error) {
	c.mu.Lock()
	g.err = err
	g.committed = true
	cbs := g.callbacks
	g.callbacks = nil
	c.mu.Unlock()
	for _, fn := range cbs {
		fn(err)
	}
	close(g.done)
}

// afterCurrent runs fn once every committer group added so far is applied: it hangs fn on the
// current group and wakes the committer (which takes a group with callbacks even if it has no
// writes). A quorum queue's confirm waits for it too, so that confirms stay in order with the
// connection's earlier writes to classic queues.
func (c *committer) afterCurrent(fn func(error)) {
	c.mu.Lock()
	if c.mu.stopped || c.mu.cur == nil {
		c.mu.Unlock()
		fn(nil)
		return
	}
	g := c.mu.cur
	g.callbacks = append(g.callbacks, fn)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// joinGroups returns a group that completes when a and b have (with the first error).
func (c *committer) joinGroups(a, b *commitGroup) *commitGroup {
	n := &commitGroup{done: make(chan struct{}), external: true}
	c.onCommit(a, func(e1 error) {
		c.onCommit(b, func(e2 error) {
			if e1 == nil {
				e1 = e2
			}
			c.finishExternal(n, e1)
		})
	})
	return n
}
