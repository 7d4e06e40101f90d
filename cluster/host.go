package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/cluster/raftlog"
	"github.com/warrenmq/warren/storage"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ProposalID names a proposal: the proposing node and a sequence number. A state machine that
// has applied an id and sees it again (a retry after ErrUnknownOutcome) must not apply it twice.
type ProposalID struct{ Node, Seq uint64 }

// Entry is one committed proposal, as a state machine applies it.
type Entry struct {
	Index, Term uint64
	ID          ProposalID
	Data        []byte
}

// StateMachine is a group's replicated state. The host calls it from its one loop goroutine, in
// log order; it must be deterministic (every member applies the same entries to the same state)
// and quick (it holds up every group of the node while it runs).
type StateMachine interface {
	// Apply applies committed entries in order and returns one result per entry (given to the
	// proposer when it proposed on this node). An error stops the group on this node.
	Apply(entries []Entry) ([]any, error)
	// Snapshot serializes the state (everything applied so far).
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot's (on a restart, or a leader's snapshot).
	Restore(data []byte) error
}

// Proposal errors. Every error Propose returns wraps exactly one of ErrProposalDropped and
// ErrUnknownOutcome (and, as a *ProposalError, the reason).
var (
	// ErrProposalDropped: the entry is in no log (no leader known, the group is not on this
	// node, the host stopped before proposing it): retrying is always safe.
	ErrProposalDropped = errors.New("cluster: proposal dropped")
	// ErrUnknownOutcome: the entry was handed to raft but this node saw no result (the leader or
	// term changed, the context ended, the group was removed, the host stopped): it may still be
	// committed and applied. Retry with the same ProposalID (ProposeID) so the state machine can
	// drop a duplicate.
	ErrUnknownOutcome = errors.New("cluster: proposal outcome unknown")

	ErrNoGroup      = errors.New("cluster: no such group on this node")
	ErrGroupExists  = errors.New("cluster: group already on this node")
	ErrNoLeader     = errors.New("cluster: group has no leader")
	ErrLeaderChange = errors.New("cluster: leader or term changed")
	// ErrLeaderUnreachable: a follower could not send the proposal to the leader.
	ErrLeaderUnreachable = errors.New("cluster: leader unreachable")
	// ErrTooLarge: the entry would not fit in one transport frame.
	ErrTooLarge     = errors.New("cluster: proposal too large")
	ErrGroupRemoved = errors.New("cluster: group removed")
	ErrStopped      = errors.New("cluster: host stopped")
)

// ProposalError is the error of a failed proposal: Kind is ErrProposalDropped or
// ErrUnknownOutcome, Cause the reason.
type ProposalError struct {
	Group uint64
	ID    ProposalID
	Kind  error
	Cause error
}

func (e *ProposalError) Error() string {
	return fmt.Sprintf("%v: group %d proposal %d/%d: %v", e.Kind, e.Group, e.ID.Node, e.ID.Seq, e.Cause)
}

func (e *ProposalError) Unwrap() []error { return []error{e.Kind, e.Cause} }

// HostOptions configure a Host.
type HostOptions struct {
	// ID is this node's Raft id (not 0, never reused by another node); Cluster the cluster name
	// (the transport's handshake).
	ID      uint64
	Cluster string
	// Store is the node's store, holding every group's log (the caller closes it after Close).
	Store storage.Store
	// Listener is the inter-node listener; Peers the other nodes' ids and addresses. With neither
	// the host has no transport: every group is this node alone (a single broker's quorum queues).
	Listener net.Listener
	Peers    map[uint64]string
	// TickInterval is the one timer of every group (default 100 ms); ElectionTicks and
	// HeartbeatTicks are in ticks (defaults 10 and 1).
	TickInterval                  time.Duration
	ElectionTicks, HeartbeatTicks int
	// SnapshotEntries: after this many entries applied since a group's last snapshot, the host
	// takes a snapshot of its state machine and compacts its log (0: never).
	SnapshotEntries uint64
	// CompactKeep entries before the snapshot index stay in the log for followers a little
	// behind (so they catch up by log, not by snapshot).
	CompactKeep uint64
	// MaxSizePerMsg and MaxInflightMsgs are raft's flow control (defaults 1 MiB and 256).
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
	// Network, when set, replaces the TCP transport (Listener and Peers are then ignored): it is
	// called once with the host, the Handler the network delivers to, and returns what the host
	// sends through. Tests run hosts over an in-memory network with faults (sim_test.go).
	Network func(Handler) Network
	// Transport tuning (zero: the transport's defaults).
	QueueSize, MaxFrame    int
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
}

// Network carries a host's Raft messages to the other nodes: the TCP Transport, or what
// HostOptions.Network makes.
type Network interface {
	// Send queues m for node to, without blocking; false: it was not queued (the host reports
	// the peer unreachable to raft).
	Send(to, group uint64, m *pb.Message) bool
	// Close stops the network's deliveries to the host (the host is stopped first).
	Close() error
}

var _ Network = (*Transport)(nil)

// Host runs many Raft groups on one node. One goroutine (the loop) owns every group's RawNode and
// state machine; see the package documentation for its cycle.
type Host struct {
	o   HostOptions
	log *raftlog.Log
	tr  *Transport // the TCP transport (nil without one, or with HostOptions.Network)
	net Network    // tr, or HostOptions.Network's; nil: no network
	lg  *slog.Logger

	propc chan *proposal
	readc chan *readRequest
	opc   chan func()
	recvc chan []Envelope
	wake  chan struct{}
	stopc chan struct{}
	donec chan struct{}
	stop  sync.Once
	seq   atomic.Uint64

	repMu   sync.Mutex
	reports []report

	// maxEntry bounds a proposal's data: an entry, with its message's envelope, fits in a frame.
	maxEntry int

	// Loop-owned.
	groups  map[uint64]*group
	dirty   []*group
	readSeq uint64
	err     error // a failed Write: the host stopped

	statMu sync.Mutex
	status map[uint64]GroupStatus

	cycles, writes, unsynced, groupWrites, maxGroupsPerWrite atomic.Uint64
}

type group struct {
	id      uint64
	rn      *raft.RawNode
	st      *raftlog.Group
	sm      StateMachine
	applied uint64
	snapIdx uint64
	lastLat time.Duration // CommitLatency of the latest applied local proposal
	waiters map[ProposalID]*proposal
	lead    uint64 // leader and term as of the last Ready (proposals record theirs)
	term    uint64
	dirty   bool
	failed  error
	// pending is a snapshot to record (and compaction) in the next Write.
	pendingSnap *raftlog.SnapshotRequest
	// pendingCS is the configuration a membership change applied, to record in the next Write
	// (a crash before it replays the change: the applied index is recorded with it).
	pendingCS   *pb.ConfState
	confChanged bool // a membership change was applied since the last snapshot
	compactTo   uint64
	// reads are ReadIndex requests by their request context, waiting for raft's read index
	// (index 0) and then for that index to be applied.
	reads map[uint64]*readRequest
}

type readRequest struct {
	ctx        context.Context
	group      uint64
	term, lead uint64
	index      uint64 // raft's read index, once known
	done       chan error
}

type proposal struct {
	ctx        context.Context
	group      uint64
	id         ProposalID
	data       []byte
	term, lead uint64
	start      time.Time
	cc         *pb.ConfChangeV2 // a membership change (data unused), or nil
	done       chan proposalResult
}

type proposalResult struct {
	val any
	err error
}

type report struct {
	peer, group uint64
	snapshot    bool // a snapshot status (ok), else unreachable
	ok          bool
}

// GroupStatus is a snapshot of one group on this node, for queries and metrics.
type GroupStatus struct {
	Group, Node  uint64
	State        string // raft's StateFollower, StateCandidate, StatePreCandidate, StateLeader
	Term, Leader uint64
	Commit       uint64
	Applied      uint64
	LastIndex    uint64 // the last index in this node's log (written, maybe not yet committed)
	Snapshot     uint64 // index of the latest snapshot
	// CommitLatency is the time from Propose to this node's apply of its latest proposal that
	// was applied (0 before the first): RabbitMQ's raft entry commit latency.
	CommitLatency time.Duration
	Pending       int    // proposals of this node waiting for their entry
	Err           string // the group stopped on this node (its state machine failed)
}

// HostStats are the host's counters.
type HostStats struct {
	// Cycles are Ready cycles (with work); Writes the synced batches they wrote (at most one per
	// cycle), Unsynced their batches without a sync (only commit or applied indexes moved);
	// GroupWrites the group updates in the synced ones (GroupWrites/Writes groups per fsync);
	// MaxGroupsPerWrite the most groups in one.
	Cycles, Writes, Unsynced, GroupWrites, MaxGroupsPerWrite uint64
	Transport                                                TransportStats
}

// NewHost opens the log in o.Store, starts the transport and the loop. It runs no group until
// CreateGroups: after a restart, call it again for the groups the node had (StoredGroups).
func NewHost(o HostOptions) (*Host, error) {
	if o.ID == 0 {
		return nil, errors.New("cluster: host: node id 0")
	}
	if o.Store == nil {
		return nil, errors.New("cluster: host: no store")
	}
	if o.TickInterval <= 0 {
		o.TickInterval = 100 * time.Millisecond
	}
	if o.ElectionTicks <= 0 {
		o.ElectionTicks = 10
	}
	if o.HeartbeatTicks <= 0 {
		o.HeartbeatTicks = 1
	}
	if o.MaxSizePerMsg == 0 {
		o.MaxSizePerMsg = 1 << 20
	}
	if o.MaxInflightMsgs <= 0 {
		o.MaxInflightMsgs = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l, err := raftlog.Open(o.Store)
	if err != nil {
		return nil, fmt.Errorf("cluster: host: %w", err)
	}
	h := &Host{o: o, log: l, lg: o.Logger.With("node", o.ID),
		propc: make(chan *proposal, 1024), readc: make(chan *readRequest, 1024), opc: make(chan func()), recvc: make(chan []Envelope, 256),
		wake: make(chan struct{}, 1), stopc: make(chan struct{}), donec: make(chan struct{}),
		groups: map[uint64]*group{}, status: map[uint64]GroupStatus{}}
	h.maxEntry = o.MaxFrame
	if h.maxEntry <= 0 {
		h.maxEntry = DefaultMaxFrame
	}
	if h.maxEntry > 8192 {
		h.maxEntry -= 4096
	} else {
		h.maxEntry /= 2
	}
	// Proposal ids start at the wall clock in nanoseconds, so a restarted node does not reuse
	// its earlier ids (unless its clock went back by more than it proposed since).
	h.seq.Store(uint64(time.Now().UnixNano()))
	if o.Network != nil {
		h.net = o.Network(h)
	} else if o.Listener != nil || len(o.Peers) > 0 {
		h.tr, err = NewTransport(TransportOptions{ID: o.ID, Cluster: o.Cluster, Listener: o.Listener, Peers: o.Peers,
			QueueSize: o.QueueSize, MaxFrame: o.MaxFrame, BackoffMin: o.BackoffMin, BackoffMax: o.BackoffMax,
			Logger: o.Logger}, h)
		if err != nil {
			return nil, err
		}
		h.net = h.tr
	}
	go h.run()
	return h, nil
}

// Err is why the loop stopped on its own (a failed write to the store: the log can no longer be
// trusted, every proposal fails with ErrStopped); nil while it runs or after Close.
func (h *Host) Err() error {
	select {
	case <-h.donec:
		return h.err
	default:
		return nil
	}
}

// Transport is the host's transport (SetIsolated, Stats); nil for a host without one.
func (h *Host) Transport() *Transport { return h.tr }

// StoredGroups are the groups whose logs the node's store holds.
func (h *Host) StoredGroups() []uint64 { return h.log.Groups() }

// Stats returns the host's counters.
func (h *Host) Stats() HostStats {
	st := HostStats{Cycles: h.cycles.Load(), Writes: h.writes.Load(), Unsynced: h.unsynced.Load(), GroupWrites: h.groupWrites.Load(),
		MaxGroupsPerWrite: h.maxGroupsPerWrite.Load()}
	if h.tr != nil {
		st.Transport = h.tr.Stats()
	}
	return st
}

// Close stops the loop (pending proposals fail with ErrStopped) and the transport. The store stays
// open.
func (h *Host) Close() error {
	h.stop.Do(func() { close(h.stopc) })
	<-h.donec
	if h.net == nil {
		return nil
	}
	return h.net.Close()
}

// do runs f on the loop and waits for it.
func (h *Host) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case h.opc <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-h.donec:
		return ErrStopped
	}
	select {
	case <-done:
		return nil
	case <-h.donec:
		return ErrStopped
	}
}

// GroupSpec names a group to run on this node: its id, its voters (the same on every member) and
// this node's state machine for it.
type GroupSpec struct {
	ID     uint64
	Voters []uint64
	SM     StateMachine
}

// CreateGroups starts groups on this node, all of them or, on an error, none. A group the store
// already holds (a restart) restores its state machine from its latest snapshot and replays its
// log (Voters is then ignored); a new one is bootstrapped with Voters, all new groups in one synced
// write.
func (h *Host) CreateGroups(ctx context.Context, specs ...GroupSpec) error {
	var err error
	if derr := h.do(ctx, func() { err = h.createGroups(specs) }); derr != nil {
		return derr
	}
	return err
}

// RemoveGroup stops group id on this node and deletes its log; its pending proposals fail with
// ErrUnknownOutcome.
func (h *Host) RemoveGroup(ctx context.Context, id uint64) error {
	var err error
	if derr := h.do(ctx, func() {
		g := h.groups[id]
		if g == nil {
			err = fmt.Errorf("cluster: remove group %d: %w", id, ErrNoGroup)
			return
		}
		delete(h.groups, id)
		g.failWaiters(ErrUnknownOutcome, ErrGroupRemoved)
		g.failReads(ErrGroupRemoved)
		h.statMu.Lock()
		delete(h.status, id)
		h.statMu.Unlock()
		err = h.log.Remove(id)
	}); derr != nil {
		return derr
	}
	return err
}

// Status returns group id's status on this node, as of the loop's last cycle for it.
func (h *Host) Status(id uint64) (GroupStatus, bool) {
	h.statMu.Lock()
	defer h.statMu.Unlock()
	s, ok := h.status[id]
	return s, ok
}

// Statuses returns every group's status.
func (h *Host) Statuses() []GroupStatus {
	h.statMu.Lock()
	defer h.statMu.Unlock()
	out := make([]GroupStatus, 0, len(h.status))
	for _, s := range h.status {
		out = append(out, s)
	}
	return out
}

// Leader is group id's leader as this node knows it (0: none known).
func (h *Host) Leader(id uint64) uint64 {
	s, _ := h.Status(id)
	return s.Leader
}

// NewProposalID returns a fresh id for ProposeID.
func (h *Host) NewProposalID() ProposalID { return ProposalID{Node: h.o.ID, Seq: h.seq.Add(1)} }

// Propose proposes data to group and returns, once the entry is committed and applied on this
// node, the state machine's result. On a follower the entry is forwarded to the leader by raft
// (proposal forwarding is on), and the result is this node's own state machine's once it applies
// the entry. Errors: see ErrProposalDropped and ErrUnknownOutcome.
func (h *Host) Propose(ctx context.Context, group uint64, data []byte) (any, error) {
	return h.ProposeID(ctx, group, h.NewProposalID(), data)
}

// ProposeID is Propose with the caller's proposal id: to retry a proposal whose outcome is
// unknown with the id it had.
func (h *Host) ProposeID(ctx context.Context, group uint64, id ProposalID, data []byte) (any, error) {
	return h.await(&proposal{ctx: ctx, group: group, id: id, data: data, start: time.Now(), done: make(chan proposalResult, 1)})
}

// await hands p to the loop and waits for its result.
func (h *Host) await(p *proposal) (any, error) {
	ctx := p.ctx
	fail := func(kind, cause error) (any, error) {
		return nil, &ProposalError{Group: p.group, ID: p.id, Kind: kind, Cause: cause}
	}
	select {
	case h.propc <- p:
	case <-ctx.Done():
		return fail(ErrProposalDropped, ctx.Err())
	case <-h.donec:
		return fail(ErrProposalDropped, ErrStopped)
	}
	select {
	case r := <-p.done:
		return r.val, r.err
	case <-ctx.Done():
		return fail(ErrUnknownOutcome, ctx.Err())
	case <-h.donec:
		return fail(ErrUnknownOutcome, ErrStopped)
	}
}

// ReadIndex returns once this node's state machine for group has applied every entry committed
// before the call (raft's ReadIndex: the leader confirms it still leads with a round of
// heartbeats; a follower asks the leader). A read of the local state machine after it is
// linearizable. Errors: ErrNoGroup, ErrNoLeader, ErrLeaderChange (the request may have been lost
// with the old leader: ask again), ErrStopped, or the context's.
func (h *Host) ReadIndex(ctx context.Context, group uint64) error {
	r := &readRequest{ctx: ctx, group: group, done: make(chan error, 1)}
	select {
	case h.readc <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-h.donec:
		return ErrStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-h.donec:
		return ErrStopped
	}
}

// Receive implements Handler: the transport's reader hands the loop a peer's messages.
func (h *Host) Receive(_ uint64, envs []Envelope) {
	select {
	case h.recvc <- envs:
	case <-h.donec:
	}
}

// Unreachable implements Handler.
func (h *Host) Unreachable(peer uint64, groups []uint64) {
	h.repMu.Lock()
	for _, g := range groups {
		h.reports = append(h.reports, report{peer: peer, group: g})
	}
	h.repMu.Unlock()
	h.signal()
}

// SnapshotStatus implements Handler.
func (h *Host) SnapshotStatus(peer, group uint64, ok bool) {
	h.repMu.Lock()
	h.reports = append(h.reports, report{peer: peer, group: group, snapshot: true, ok: ok})
	h.repMu.Unlock()
	h.signal()
}

func (h *Host) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Entry data: a version byte, the proposal id (node, seq: 8 bytes each), the payload.
const entryHeader = 17

func encodeEntry(id ProposalID, data []byte) []byte {
	b := make([]byte, entryHeader, entryHeader+len(data))
	b[0] = 1
	putUint64(b[1:], id.Node)
	putUint64(b[9:], id.Seq)
	return append(b, data...)
}

func decodeEntry(b []byte) (ProposalID, []byte, bool) {
	if len(b) < entryHeader || b[0] != 1 {
		return ProposalID{}, nil, false
	}
	return ProposalID{Node: readUint64(b[1:]), Seq: readUint64(b[9:])}, b[entryHeader:], true
}

// ready is a closed channel: a select case on it is always ready.
var ready = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// run is the loop: it takes ticks, proposals, peers' messages, transport reports and operations,
// and runs a Ready cycle whenever a group has work.
func (h *Host) run() {
	defer close(h.donec)
	ticker := time.NewTicker(h.o.TickInterval)
	defer ticker.Stop()
	defer h.shutdown()
	for {
		if len(h.dirty) > 0 {
			if !h.cycle() {
				return
			}
		}
		// With more work, take what has arrived without waiting (now is ready); else wait for some.
		var now <-chan struct{}
		if len(h.dirty) > 0 {
			now = ready
		}
		select {
		case <-h.stopc:
			return
		case <-ticker.C:
			h.tick()
		case p := <-h.propc:
			h.propose(p)
		case r := <-h.readc:
			h.readIndex(r)
		case envs := <-h.recvc:
			h.step(envs)
		case <-h.wake:
			h.takeReports()
		case f := <-h.opc:
			f()
		case <-now:
		}
		h.drain()
	}
}

// drain takes, without waiting, what else has arrived (bounded, so that a cycle runs regularly).
func (h *Host) drain() {
	for range 4096 {
		select {
		case p := <-h.propc:
			h.propose(p)
		case r := <-h.readc:
			h.readIndex(r)
		case envs := <-h.recvc:
			h.step(envs)
		case <-h.wake:
			h.takeReports()
		default:
			return
		}
	}
}

func (h *Host) shutdown() {
	for _, g := range h.groups {
		g.failWaiters(ErrUnknownOutcome, ErrStopped)
		g.failReads(ErrStopped)
	}
	for {
		select {
		case p := <-h.propc:
			p.done <- proposalResult{err: &ProposalError{Group: p.group, ID: p.id, Kind: ErrProposalDropped, Cause: ErrStopped}}
		case r := <-h.readc:
			r.done <- ErrStopped
		default:
			return
		}
	}
}

func (h *Host) markDirty(g *group) {
	if !g.dirty {
		g.dirty = true
		h.dirty = append(h.dirty, g)
	}
}

func (h *Host) tick() {
	for _, g := range h.groups {
		if g.failed != nil {
			continue
		}
		g.rn.Tick()
		h.markDirty(g)
		// Forget the proposals whose callers gave up (their Propose returned already).
		for id, p := range g.waiters {
			if p.ctx.Err() != nil {
				delete(g.waiters, id)
			}
		}
		for id, r := range g.reads {
			if r.ctx.Err() != nil {
				delete(g.reads, id)
			}
		}
	}
}

func (h *Host) readIndex(r *readRequest) {
	g := h.groups[r.group]
	switch {
	case g == nil:
		r.done <- fmt.Errorf("cluster: read index of group %d: %w", r.group, ErrNoGroup)
		return
	case g.failed != nil:
		r.done <- fmt.Errorf("cluster: read index of group %d: %w", r.group, g.failed)
		return
	}
	st := g.rn.BasicStatus()
	if st.Lead == raft.None {
		r.done <- fmt.Errorf("cluster: read index of group %d: %w", r.group, ErrNoLeader)
		return
	}
	h.readSeq++
	r.term, r.lead = st.GetTerm(), st.Lead
	g.reads[h.readSeq] = r
	var rctx [8]byte
	putUint64(rctx[:], h.readSeq)
	g.rn.ReadIndex(rctx[:])
	h.markDirty(g)
}

func (h *Host) propose(p *proposal) {
	fail := func(kind, cause error) {
		p.done <- proposalResult{err: &ProposalError{Group: p.group, ID: p.id, Kind: kind, Cause: cause}}
	}
	g := h.groups[p.group]
	switch {
	case g == nil:
		fail(ErrProposalDropped, ErrNoGroup)
		return
	case g.failed != nil:
		fail(ErrProposalDropped, g.failed)
		return
	case p.ctx.Err() != nil:
		fail(ErrProposalDropped, p.ctx.Err())
		return
	case len(p.data) > h.maxEntry:
		fail(ErrProposalDropped, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(p.data), h.maxEntry))
		return
	}
	if _, dup := g.waiters[p.id]; dup {
		fail(ErrProposalDropped, errors.New("the same proposal id is already pending on this node"))
		return
	}
	st := g.rn.BasicStatus()
	if st.Lead == raft.None {
		fail(ErrProposalDropped, ErrNoLeader)
		return
	}
	var err error
	if p.cc != nil {
		err = g.rn.ProposeConfChange(p.cc)
	} else {
		err = g.rn.Propose(encodeEntry(p.id, p.data))
	}
	if err != nil {
		fail(ErrProposalDropped, err)
		return
	}
	p.term, p.lead = st.GetTerm(), st.Lead
	g.waiters[p.id] = p
	h.markDirty(g)
}

// applyConfChange applies a committed membership change entry: raft's configuration, recorded in
// the next write, and this node's proposal answered. A malformed one is logged and skipped (every
// member skips it alike).
func (h *Host) applyConfChange(g *group, e *pb.Entry) {
	var cc pb.ConfChangeI
	switch e.GetType() {
	case pb.EntryType_EntryConfChange:
		var c pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &c); err != nil {
			h.lg.Error("cluster: skipping a malformed configuration change", "group", g.id, "index", e.GetIndex(), "err", err)
			return
		}
		cc = &c
	case pb.EntryType_EntryConfChangeV2:
		var c pb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &c); err != nil {
			h.lg.Error("cluster: skipping a malformed configuration change", "group", g.id, "index", e.GetIndex(), "err", err)
			return
		}
		cc = &c
	default:
		h.lg.Error("cluster: skipping an entry of unknown type", "group", g.id, "index", e.GetIndex(), "type", e.GetType())
		return
	}
	g.pendingCS, g.confChanged = g.rn.ApplyConfChange(cc), true
	h.lg.Info("cluster: membership changed", "group", g.id, "index", e.GetIndex(), "voters", g.pendingCS.GetVoters(), "learners", g.pendingCS.GetLearners())
	if id, _, ok := decodeEntry(cc.AsV2().GetContext()); ok {
		if p := g.waiters[id]; p != nil {
			delete(g.waiters, id)
			p.done <- proposalResult{val: proto.Clone(g.pendingCS)}
		}
	}
}

// AddMember makes node a voter of group (raft's single-step membership change) and returns once
// the change is applied on this node. The new member's node must run the group (CreateGroups
// with Voters listing every member, itself included) to take part; until it has caught up — by
// the log or by a snapshot — it counts toward the majority without holding the entries, so add
// one member at a time. Raft takes one change per group at a time: a second one while the first
// is not applied is dropped by the leader, and its call ends with ctx (give it a deadline).
func (h *Host) AddMember(ctx context.Context, group, node uint64) error {
	return h.changeMember(ctx, group, pb.ConfChangeType_ConfChangeAddNode, node)
}

// RemoveMember removes node from group's voters, as AddMember adds one. The removed node stops
// hearing from the others; the caller removes the group there (RemoveGroup). Removing the
// leader makes it step down once the change is applied.
func (h *Host) RemoveMember(ctx context.Context, group, node uint64) error {
	return h.changeMember(ctx, group, pb.ConfChangeType_ConfChangeRemoveNode, node)
}

func (h *Host) changeMember(ctx context.Context, group uint64, typ pb.ConfChangeType, node uint64) error {
	if node == 0 {
		return fmt.Errorf("cluster: membership change of group %d: node id 0", group)
	}
	id := h.NewProposalID()
	cc := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: typ.Enum(), NodeId: &node}}, Context: encodeEntry(id, nil)}
	p := &proposal{ctx: ctx, group: group, id: id, cc: cc, start: time.Now(), done: make(chan proposalResult, 1)}
	_, err := h.await(p)
	if err != nil {
		return fmt.Errorf("cluster: membership change of group %d (%v node %d): %w", group, typ, node, err)
	}
	return nil
}

// Members returns group's voters as this node's raft knows them (nil: not on this node).
func (h *Host) Members(ctx context.Context, group uint64) ([]uint64, error) {
	var out []uint64
	err := h.do(ctx, func() {
		if g := h.groups[group]; g != nil {
			for id := range g.rn.Status().Config.Voters.IDs() {
				out = append(out, id)
			}
			slices.Sort(out)
		}
	})
	return out, err
}

func (h *Host) step(envs []Envelope) {
	for _, e := range envs {
		g := h.groups[e.Group]
		if g == nil || g.failed != nil {
			continue // not (yet) on this node: the sender retries
		}
		if err := g.rn.Step(e.Msg); err != nil {
			h.lg.Debug("cluster: step", "group", e.Group, "type", e.Msg.GetType(), "err", err)
		}
		h.markDirty(g)
	}
}

func (h *Host) takeReports() {
	h.repMu.Lock()
	rs := h.reports
	h.reports = nil
	h.repMu.Unlock()
	for _, r := range rs {
		g := h.groups[r.group]
		if g == nil || g.failed != nil {
			continue
		}
		if r.snapshot {
			st := raft.SnapshotFinish
			if !r.ok {
				st = raft.SnapshotFailure
			}
			g.rn.ReportSnapshot(r.peer, st)
		} else {
			g.rn.ReportUnreachable(r.peer)
		}
		h.markDirty(g)
	}
}

func (h *Host) raftConfig(id, applied uint64, st *raftlog.Group) *raft.Config {
	return &raft.Config{
		ID: h.o.ID, ElectionTick: h.o.ElectionTicks, HeartbeatTick: h.o.HeartbeatTicks, Storage: st,
		Applied: applied, MaxSizePerMsg: h.o.MaxSizePerMsg, MaxInflightMsgs: h.o.MaxInflightMsgs,
		MaxCommittedSizePerReady: 4 << 20, MaxUncommittedEntriesSize: 64 << 20,
		CheckQuorum: true, PreVote: true, Logger: raftLogger{h.lg.With("group", id)},
	}
}

func (h *Host) createGroups(specs []GroupSpec) error {
	var boot []raftlog.Update
	seen := map[uint64]bool{}
	for _, s := range specs {
		if s.ID == 0 || s.SM == nil {
			return fmt.Errorf("cluster: create group %d: id 0 or no state machine", s.ID)
		}
		if h.groups[s.ID] != nil || seen[s.ID] {
			return fmt.Errorf("cluster: create group %d: %w", s.ID, ErrGroupExists)
		}
		seen[s.ID] = true
		_, cs, err := h.log.Group(s.ID).InitialState()
		if err != nil {
			return err
		}
		if len(cs.GetVoters()) > 0 {
			continue // stored: restored below
		}
		member := false
		for _, v := range s.Voters {
			member = member || v == h.o.ID
		}
		if !member {
			return fmt.Errorf("cluster: create group %d: this node (%d) is not among its voters %v", s.ID, h.o.ID, s.Voters)
		}
		boot = append(boot, raftlog.Update{Group: s.ID, Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			ConfState: &pb.ConfState{Voters: append([]uint64(nil), s.Voters...)}}}})
	}
	if len(boot) > 0 {
		if err := h.log.Write(boot); err != nil {
			return fmt.Errorf("cluster: create groups: %w", err)
		}
	}
	var made []*group
	for _, s := range specs {
		st := h.log.Group(s.ID)
		snap, err := st.Snapshot()
		if err != nil {
			return fmt.Errorf("cluster: group %d: %w", s.ID, err)
		}
		idx := snap.GetMetadata().GetIndex()
		if idx > 0 {
			if err := s.SM.Restore(snap.GetData()); err != nil {
				return fmt.Errorf("cluster: group %d: restore snapshot at %d: %w", s.ID, idx, err)
			}
		}
		rn, err := raft.NewRawNode(h.raftConfig(s.ID, idx, st))
		if err != nil {
			return fmt.Errorf("cluster: group %d: %w", s.ID, err)
		}
		bs := rn.BasicStatus()
		made = append(made, &group{id: s.ID, rn: rn, st: st, sm: s.SM, applied: idx, snapIdx: idx,
			waiters: map[ProposalID]*proposal{}, reads: map[uint64]*readRequest{}, lead: bs.Lead, term: bs.GetTerm()})
	}
	// All or none start (the bootstrap above stays: a retry restores those groups).
	for _, g := range made {
		h.groups[g.id] = g
		h.markDirty(g)
		h.setStatus(g)
	}
	return nil
}

// appliedLag is how far the stored applied index may trail before a cycle writes it on its own.
const appliedLag = 1024

type readyGroup struct {
	g  *group
	rd raft.Ready
	ok bool // rd is a Ready (else only a pending snapshot write)
}

// cycle is one Ready cycle over the dirty groups: collect every Ready, persist them all in one
// synced write, then send their messages, then apply committed entries, then Advance. It returns
// false when the write failed (the host stops: its log is no longer trustworthy).
func (h *Host) cycle() bool {
	dirty := h.dirty
	h.dirty = nil
	var rgs []readyGroup
	var updates []raftlog.Update
	for _, g := range dirty {
		g.dirty = false
		if h.groups[g.id] != g || g.failed != nil {
			continue
		}
		has := g.rn.HasReady()
		if !has && g.pendingSnap == nil {
			continue
		}
		rg := readyGroup{g: g, ok: has}
		u := raftlog.Update{Group: g.id}
		if has {
			rg.rd = g.rn.Ready()
			u.Snapshot, u.Entries, u.HardState = rg.rd.Snapshot, rg.rd.Entries, rg.rd.HardState
		}
		// The applied index rides along with a write the cycle makes anyway (a restart replays
		// from the snapshot, so it need not be exact); alone it is worth a sync only when the
		// log's in-memory tail, which it trims, has grown.
		if st := g.st.Applied(); g.applied > st && (len(u.Entries) > 0 || u.HardState != nil ||
			g.pendingSnap != nil || g.applied-st >= appliedLag) {
			u.Applied = g.applied
		}
		if g.pendingCS != nil {
			u.ConfState, g.pendingCS = g.pendingCS, nil
		}
		if g.pendingSnap != nil {
			u.CreateSnapshot, u.Compact = g.pendingSnap, g.compactTo
			g.pendingSnap, g.compactTo = nil, 0
		}
		rgs = append(rgs, rg)
		updates = append(updates, u)
	}
	if len(rgs) == 0 {
		return true
	}
	h.cycles.Add(1)
	// The batch is synced when raft says a Ready must be (new entries, a new term or vote) or it
	// holds a snapshot; a cycle that only moves commit or applied indexes is not.
	sync := false
	for _, rg := range rgs {
		sync = sync || rg.rd.MustSync || (rg.rd.Snapshot != nil && !raft.IsEmptySnap(rg.rd.Snapshot))
	}
	before := h.log.Syncs()
	if err := h.log.WriteSync(updates, sync); err != nil {
		h.lg.Error("cluster: the raft log write failed; the host stops", "err", err)
		h.err = err
		return false
	}
	if !sync {
		h.unsynced.Add(1)
	} else if h.log.Syncs() != before {
		h.writes.Add(1)
		h.groupWrites.Add(uint64(len(updates)))
		for n := uint64(len(updates)); ; {
			m := h.maxGroupsPerWrite.Load()
			if n <= m || h.maxGroupsPerWrite.CompareAndSwap(m, n) {
				break
			}
		}
	}
	// Persisted: now the messages may go.
	for _, rg := range rgs {
		for _, m := range rg.rd.Messages {
			if h.net == nil || !h.net.Send(m.GetTo(), rg.g.id, m) {
				switch m.GetType() {
				case pb.MessageType_MsgSnap:
					rg.g.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
				case pb.MessageType_MsgProp:
					// Proposals forwarded to the leader that never left this node: in no log.
					rg.g.dropForwarded(m)
				}
				rg.g.rn.ReportUnreachable(m.GetTo())
			}
		}
	}
	for _, rg := range rgs {
		g := rg.g
		if rg.ok {
			h.apply(g, &rg.rd)
			g.rn.Advance(rg.rd)
		}
		if g.failed == nil && (g.rn.HasReady() || g.pendingSnap != nil) {
			h.markDirty(g)
		}
		h.setStatus(g)
	}
	return true
}

// apply hands a Ready's snapshot and committed entries to the state machine and answers the
// proposals of this node among them; then fails proposals a leader or term change left behind.
func (h *Host) apply(g *group, rd *raft.Ready) {
	if g.failed != nil {
		return
	}
	if snap := rd.Snapshot; snap != nil && !raft.IsEmptySnap(snap) {
		if err := g.sm.Restore(snap.GetData()); err != nil {
			h.failGroup(g, fmt.Errorf("restore snapshot at %d: %w", snap.GetMetadata().GetIndex(), err))
			return
		}
		g.applied, g.snapIdx = snap.GetMetadata().GetIndex(), snap.GetMetadata().GetIndex()
		// Entries the snapshot covered applied without this node seeing their results.
		g.failWaiters(ErrUnknownOutcome, errors.New("replaced by a snapshot"))
	}
	changed := rd.SoftState != nil || rd.HardState != nil
	if changed {
		bs := g.rn.BasicStatus()
		g.term, g.lead = bs.GetTerm(), bs.Lead
	}
	var ents []Entry
	for _, e := range rd.CommittedEntries {
		if e.GetIndex() <= g.applied {
			continue
		}
		if e.GetType() != pb.EntryType_EntryNormal {
			h.applyConfChange(g, e)
			continue
		}
		if len(e.GetData()) == 0 {
			continue // a new leader's empty entry
		}
		id, data, ok := decodeEntry(e.GetData())
		if !ok {
			h.lg.Error("cluster: skipping a malformed entry", "group", g.id, "index", e.GetIndex())
			continue
		}
		ents = append(ents, Entry{Index: e.GetIndex(), Term: e.GetTerm(), ID: id, Data: data})
	}
	if len(ents) > 0 {
		res, err := g.sm.Apply(ents)
		if err == nil && len(res) != len(ents) {
			err = fmt.Errorf("state machine returned %d results for %d entries", len(res), len(ents))
		}
		if err != nil {
			h.failGroup(g, fmt.Errorf("apply entries %d-%d: %w", ents[0].Index, ents[len(ents)-1].Index, err))
			return
		}
		for i, e := range ents {
			if p := g.waiters[e.ID]; p != nil {
				delete(g.waiters, e.ID)
				g.lastLat = time.Since(p.start)
				p.done <- proposalResult{val: res[i]}
			}
		}
	}
	if n := len(rd.CommittedEntries); n > 0 {
		g.applied = max(g.applied, rd.CommittedEntries[n-1].GetIndex())
	}
	if len(g.waiters) > 0 && changed {
		for id, p := range g.waiters {
			if p.term != g.term || p.lead != g.lead {
				delete(g.waiters, id)
				p.done <- proposalResult{err: &ProposalError{Group: g.id, ID: id, Kind: ErrUnknownOutcome, Cause: ErrLeaderChange}}
			}
		}
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) == 8 {
			if r := g.reads[readUint64(rs.RequestCtx)]; r != nil && r.index == 0 {
				r.index = max(rs.Index, 1)
			}
		}
	}
	for id, r := range g.reads {
		switch {
		case r.index != 0 && r.index <= g.applied:
			delete(g.reads, id)
			r.done <- nil
		case r.index == 0 && changed && (r.term != g.term || r.lead != g.lead):
			// raft drops a read index request on a leader change without a word.
			delete(g.reads, id)
			r.done <- fmt.Errorf("cluster: read index of group %d: %w", g.id, ErrLeaderChange)
		}
	}
	// A membership change is followed by a snapshot: a member added later may be sent the latest
	// snapshot, and raft ignores one whose configuration does not name the recipient.
	if se := h.o.SnapshotEntries; se > 0 && (g.applied >= g.snapIdx+se || (g.confChanged && g.applied > g.snapIdx)) {
		g.confChanged = false
		data, err := g.sm.Snapshot()
		if err != nil {
			h.lg.Error("cluster: state machine snapshot", "group", g.id, "err", err)
			return
		}
		_, cs, _ := g.st.InitialState()
		if g.pendingCS != nil {
			cs = g.pendingCS // a change applied in this cycle, recorded in the same write
		}
		g.pendingSnap = &raftlog.SnapshotRequest{Index: g.applied, ConfState: cs, Data: data}
		if g.applied > h.o.CompactKeep {
			if c := g.applied - h.o.CompactKeep; c > g.snapIdx {
				g.compactTo = c
			}
		}
		g.snapIdx = g.applied
	}
}

func (h *Host) failGroup(g *group, err error) {
	h.lg.Error("cluster: group stopped on this node", "group", g.id, "err", err)
	g.failed = err
	g.failWaiters(ErrUnknownOutcome, err)
	g.failReads(err)
}

// dropForwarded fails the proposals of a MsgProp this node could not send to the leader.
func (g *group) dropForwarded(m *pb.Message) {
	for _, e := range m.GetEntries() {
		id, _, ok := decodeEntry(e.GetData())
		if p := g.waiters[id]; ok && p != nil {
			delete(g.waiters, id)
			p.done <- proposalResult{err: &ProposalError{Group: g.id, ID: id, Kind: ErrProposalDropped, Cause: ErrLeaderUnreachable}}
		}
	}
}

func (g *group) failReads(cause error) {
	for id, r := range g.reads {
		delete(g.reads, id)
		r.done <- fmt.Errorf("cluster: read index of group %d: %w", g.id, cause)
	}
}

func (g *group) failWaiters(kind, cause error) {
	for id, p := range g.waiters {
		delete(g.waiters, id)
		p.done <- proposalResult{err: &ProposalError{Group: g.id, ID: id, Kind: kind, Cause: cause}}
	}
}

func (h *Host) setStatus(g *group) {
	bs := g.rn.BasicStatus()
	s := GroupStatus{Group: g.id, Node: h.o.ID, State: bs.RaftState.String(), Term: bs.GetTerm(), Leader: bs.Lead,
		Commit: bs.GetCommit(), Applied: g.applied, Snapshot: g.snapIdx, Pending: len(g.waiters), CommitLatency: g.lastLat}
	if last, err := g.st.LastIndex(); err == nil {
		s.LastIndex = last
	}
	if g.failed != nil {
		s.Err = g.failed.Error()
	}
	h.statMu.Lock()
	h.status[g.id] = s
	h.statMu.Unlock()
}

// raftLogger is raft's Logger over slog (raft's default logs to stderr). Fatal and Panic panic,
// as raft expects of them.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any)      { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)       { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any)    { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)      { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)      { panic(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
