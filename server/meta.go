package server

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/cluster"
)

// Replicated metadata (issue 16). On a cluster member (Options.Cluster) every change of the
// definitions — vhosts, users, permissions and topic permissions, vhost and user limits, policies
// and operator policies, parameters and global parameters, durable exchanges, durable queues and
// the bindings between them — is a command proposed to the meta group (metaGroupID, every member
// a voter). The proposer validates what it can first (the same checks, in the same order, as a
// single node: vhost.go's declare, bind and delete paths stop at the point where they would change
// anything and return errMetaPropose), then proposes and waits until the command is applied on
// THIS node; a majority must accept it. Reads stay local.
//
// Applying is in two parts, so that the Raft loop never waits for the broker:
//
//   - metaSM.Apply (on the host's loop) decodes each command into metaModel, a small
//     deterministic picture of the definitions (each definition's latest command by key, and a
//     tombstone per deleted key), allocates quorum queues' group ids and members, drops retried
//     proposals by Entry.ID, and queues the command for the applier. No I/O, no broker lock.
//   - the applier (metaApplier.run, one goroutine owned by the server) makes the broker's state
//     and its store records match, in log order, through the direct (single-node) paths, and
//     completes each command's metaOp, which the proposer waits for.
//
// Snapshot is the model (gob); Restore replaces it and has the applier replay it: every live
// definition's command and every tombstone's delete, in the order they were applied. Applying a
// command twice is harmless (the host replays the log after its last snapshot on a restart):
// declares of what exists are no-ops, deletes of what is missing too.
//
// Node-local, as RabbitMQ's: exclusive queues, auto-delete queues and exchanges, non-durable
// ones, and bindings with a node-local end. A classic durable queue exists on every member (so a
// declare, a passive declare and the API see it everywhere), its home node (the proposer) is in
// its command; its messages stay on the node they were published to: forwarding publishes and
// consumers to the home node is not built.

// errMetaPropose is what a declare, bind or delete path returns, once it validated the change on
// a cluster member, to have it proposed to the meta group instead of made locally.
var errMetaPropose = errors.New("warren: propose to the meta group")

// metaProposeQueue is errMetaPropose for a queue declare: with the queue's name (server-named
// queues get theirs before).
type metaProposeQueue struct{ name string }

func (e *metaProposeQueue) Error() string { return errMetaPropose.Error() }

// metaApply is what a declare made by the applier carries from the meta group.
type metaApply struct {
	group uint64 // a quorum queue's Raft group id
}

// ErrClusterUnavailable: a definition change could not be committed by the meta group (no
// majority, no leader) within ClusterOptions.ProposeTimeout. The error also wraps an *amqp.Error
// (INTERNAL_ERROR) for AMQP clients; the management API answers 503.
var ErrClusterUnavailable = errors.New("warren: cluster unavailable")

type clusterUnavailableError struct {
	ae    *amqp.Error
	cause error
}

func (e *clusterUnavailableError) Error() string { return e.ae.Text }
func (e *clusterUnavailableError) Unwrap() []error {
	return []error{ErrClusterUnavailable, e.ae, e.cause}
}

func newClusterUnavailable(cause error) error {
	return &clusterUnavailableError{cause: cause,
		ae: amqp.Errorf(amqp.InternalError, "cluster unavailable: the meta group did not commit the change (no majority of the members reachable?): %v", cause)}
}

// replicates reports whether v's durable definitions go through the meta group: a cluster member,
// and v not being deleted (DeleteVhost takes it out of the map first, then deletes its queues and
// exchanges locally, on every node).
func (v *vhost) replicates() bool {
	return v.srv.meta != nil && v.srv.vhost(v.name) == v
}

// replicatedQueue: a durable, non-exclusive queue that is not auto-delete.
func replicatedQueue(q *queue) bool { return q.durable && !q.autoDelete && q.owner == nil }

// replicatedBinding: both ends replicated.
func replicatedBinding(src *exchangeEntity, d destination) bool {
	if !src.durable || src.autoDelete {
		return false
	}
	switch d := d.(type) {
	case *queue:
		return replicatedQueue(d)
	case *exchangeEntity:
		return d.durable && !d.autoDelete
	}
	return false
}

// --- the vhost paths: validate locally, propose, wait ---

func (v *vhost) declareExchange(d *amqp.ExchangeDeclare) error {
	err := v.declareExchangeOn(d, false)
	if err != errMetaPropose {
		return err
	}
	c := &metaCmd{Op: "x.put", Vhost: v.name, Name: d.Exchange, Type: d.Type, Durable: d.Durable,
		AutoDelete: d.AutoDelete, Internal: d.Internal, Args: encodeArgs(d.Arguments)}
	_, err = v.srv.metaDo(c)
	return err
}

func (v *vhost) deleteExchange(name string, ifUnused bool) error {
	err := v.deleteExchangeOn(name, ifUnused, false)
	if err != errMetaPropose {
		return err
	}
	_, err = v.srv.metaDo(&metaCmd{Op: "x.del", Vhost: v.name, Name: name})
	return err
}

func (v *vhost) bind(srcName string, dst destination, key string, args amqp.Table, c *conn) error {
	err := v.bindOn(srcName, dst, key, args, c, false)
	if err != errMetaPropose {
		return err
	}
	_, err = v.srv.metaDo(&metaCmd{Op: "b.put", Vhost: v.name, Source: srcName, DestKind: dst.destKind(),
		Dest: dst.destName(), Key: key, Args: encodeArgs(args)})
	return err
}

func (v *vhost) unbind(srcName string, dst destination, key string, args amqp.Table, c *conn) error {
	err := v.unbindOn(srcName, dst, key, args, c, false)
	if err != errMetaPropose {
		return err
	}
	_, err = v.srv.metaDo(&metaCmd{Op: "b.del", Vhost: v.name, Source: srcName, DestKind: dst.destKind(),
		Dest: dst.destName(), Key: key, Args: encodeArgs(args)})
	return err
}

// declareQueue declares (or checks) a queue for connection c (declareQueueOn); on a cluster
// member a new replicated queue is proposed to the meta group and returned once applied here.
func (v *vhost) declareQueue(c *conn, d *amqp.QueueDeclare) (*queue, error) {
	q, err := v.declareQueueOn(c, d, nil)
	var mp *metaProposeQueue
	if !errors.As(err, &mp) {
		return q, err
	}
	cmd := &metaCmd{Op: "q.put", Vhost: v.name, Name: mp.name, Durable: d.Durable, AutoDelete: d.AutoDelete,
		Args: encodeArgs(d.Arguments)}
	if queueType(d.Arguments) == "quorum" {
		cmd.Quorum = true
		cmd.GroupSize = quorumGroupSize(d.Arguments)
		cmd.Locator, _ = d.Arguments["x-queue-leader-locator"].(string)
	}
	if _, err := v.srv.metaDo(cmd); err != nil {
		return nil, err
	}
	v.mu.RLock()
	q = v.mu.queues[mp.name]
	v.mu.RUnlock()
	if q == nil { // deleted meanwhile, by another node's command applied after this one
		return nil, v.errNoQueue(mp.name)
	}
	return q, nil
}

// removeQueue is deleteQueue that leaves telling the cancelled consumers to the caller
// (removeQueueOn); on a cluster member a replicated queue's delete is proposed (if-empty and
// if-unused are checked on this node, before).
func (v *vhost) removeQueue(q *queue, ifUnused, ifEmpty bool) (uint32, []deliveryTarget, error) {
	n, cancelled, err := v.removeQueueOn(q, ifUnused, ifEmpty, false)
	if err != errMetaPropose {
		return n, cancelled, err
	}
	r, err := v.srv.metaDo(&metaCmd{Op: "q.del", Vhost: v.name, Name: q.name})
	return r.n, nil, err
}

// quorumGroupSize is x-quorum-initial-group-size (0: the default, min(3, members)).
func quorumGroupSize(args amqp.Table) int {
	switch n := args["x-quorum-initial-group-size"].(type) {
	case int8:
		return int(n)
	case int16:
		return int(n)
	case int32:
		return int(n)
	case int64:
		return int(n)
	case uint8:
		return int(n)
	case uint16:
		return int(n)
	case uint32:
		return int(n)
	}
	return 0
}

func encodeArgs(t amqp.Table) []byte {
	if len(t) == 0 {
		return nil
	}
	b, err := amqp.AppendTable(nil, t)
	if err != nil { // decoded from the wire or built by the API: encodable
		return nil
	}
	return b
}

func decodeArgs(b []byte) (amqp.Table, error) {
	if len(b) == 0 {
		return nil, nil
	}
	t, _, err := amqp.DecodeTable(b)
	return t, err
}

// --- commands ---

// metaCmd is one meta group command. Op names the change ("x.put", "q.del", "user.put", ...);
// the identity fields name what it changes (metaKey); the rest is its content.
type metaCmd struct {
	Op   string
	From string // the proposing node's name: a classic queue's home node
	// Identity: Vhost and Name, and for a binding Source, DestKind, Dest, Key and Args; for a
	// topic permission Source is the exchange, for a parameter the component, for a user limit the
	// limit's name.
	Vhost, Name string
	Source      string
	DestKind    string
	Dest, Key   string
	Args        []byte // an AMQP field table: exchange, queue or binding arguments

	Type                          string
	Durable, AutoDelete, Internal bool

	// Quorum queues: GroupSize and Locator from the declare; Group and Voters set by Apply.
	Quorum    bool
	GroupSize int
	Locator   string
	Group     uint64
	Voters    []uint64

	// A is an administrative command's argument (JSON): the server method's input.
	A []byte
	// Acting is PutVhost's acting user.
	Acting string
}

// metaKey is the model's key of what c puts or deletes ("" for a command the model does not
// keep). Keys of one kind share the prefix up to the first NUL.
func (c *metaCmd) metaKey() string {
	kind, _, _ := strings.Cut(c.Op, ".")
	switch kind {
	case "v", "u", "g":
		return kind + "\x00" + c.Name
	case "x", "q", "p", "pol", "opol", "vl":
		return kind + "\x00" + c.Vhost + "\x00" + c.Name
	case "t", "par":
		return kind + "\x00" + c.Vhost + "\x00" + c.Source + "\x00" + c.Name
	case "ul":
		return kind + "\x00" + c.Name + "\x00" + c.Source
	case "vls":
		return "vl\x00" + c.Vhost + "\x00"
	case "b":
		return "b\x00" + c.Vhost + "\x00" + c.Source + "\x00" + c.DestKind + "\x00" + c.Dest + "\x00" + c.Key + "\x00" + hex.EncodeToString(c.Args)
	}
	return ""
}

// refs are the keys whose deletion deletes what c puts (its vhost, user, exchange, queue).
func (c *metaCmd) refs() []string {
	kind, _, _ := strings.Cut(c.Op, ".")
	v := "v\x00" + c.Vhost
	switch kind {
	case "x", "q", "pol", "opol", "par", "vl", "vls":
		return []string{v}
	case "p", "t":
		return []string{v, "u\x00" + c.Name}
	case "ul":
		return []string{"u\x00" + c.Name}
	case "b":
		dk := "q"
		if c.DestKind == "exchange" {
			dk = "x"
		}
		return []string{v, "x\x00" + c.Vhost + "\x00" + c.Source, dk + "\x00" + c.Vhost + "\x00" + c.Dest}
	}
	return nil
}

// deleteOf is the delete command that undoes c (a put).
func (c *metaCmd) deleteOf() *metaCmd {
	kind, _, _ := strings.Cut(c.Op, ".")
	d := &metaCmd{Op: kind + ".del", Vhost: c.Vhost, Name: c.Name, Source: c.Source, DestKind: c.DestKind,
		Dest: c.Dest, Key: c.Key, Args: c.Args}
	if kind == "vls" {
		d.Op = "vls.put" // no limits
	}
	return d
}

// --- the model ---

type metaItem struct {
	Seq uint64
	Cmd *metaCmd
}

// metaModel is the meta group's state: the definitions as commands. Deterministic: only Apply
// changes it, from the log.
type metaModel struct {
	Seq       uint64              // commands applied
	NextGroup uint64              // the next quorum queue group id
	Items     map[string]metaItem // every live definition's latest command
	Gone      map[string]metaItem // tombstones: the delete that removed each key
	Seen      []cluster.ProposalID
}

// quorumGroupBase: cluster-wide quorum queue group ids count from here, far above the node-local
// store ids (which count from 1) and below metaGroupID.
const quorumGroupBase = 1 << 48

func newMetaModel() *metaModel {
	return &metaModel{NextGroup: quorumGroupBase, Items: map[string]metaItem{}, Gone: map[string]metaItem{}}
}

// apply changes the model for c (and gives a new quorum queue its group and members); nodes is
// the member list in its configured order.
func (m *metaModel) apply(c *metaCmd, nodes []ClusterNode) {
	m.Seq++
	key := c.metaKey()
	if key == "" {
		return
	}
	_, op, _ := strings.Cut(c.Op, ".")
	if op == "del" {
		m.remove(key, c)
		if c.Op == "t.del" && c.Source == "" { // every topic permission of the user in the vhost
			prefix := "t\x00" + c.Vhost + "\x00"
			for k, it := range m.Items {
				if strings.HasPrefix(k, prefix) && it.Cmd.Name == c.Name {
					m.remove(k, it.Cmd.deleteOf())
				}
			}
		}
		return
	}
	if c.Op == "vls.put" { // replaces every limit of the vhost
		prefix := "vl\x00" + c.Vhost + "\x00"
		for k, it := range m.Items {
			if strings.HasPrefix(k, prefix) && k != key {
				m.remove(k, it.Cmd.deleteOf())
			}
		}
	}
	if c.Op == "x.put" || c.Op == "q.put" || c.Op == "b.put" {
		if _, ok := m.Items[key]; ok {
			return // a redeclare: the first declare stands (the broker checks equivalence)
		}
	}
	if c.Quorum && c.Group == 0 {
		c.Group = m.NextGroup
		m.NextGroup++
		c.Voters = quorumMembers(c.From, c.GroupSize, c.Locator, nodes, c.Group)
	}
	delete(m.Gone, key)
	m.Items[key] = metaItem{Seq: m.Seq, Cmd: c}
}

// remove deletes key and, recursively, what refers to it, leaving tombstones.
func (m *metaModel) remove(key string, del *metaCmd) {
	delete(m.Items, key)
	m.Gone[key] = metaItem{Seq: m.Seq, Cmd: del}
	for k, it := range m.Items {
		if slices.Contains(it.Cmd.refs(), key) {
			m.remove(k, it.Cmd.deleteOf())
		}
	}
}

// quorumMembers chooses a new quorum queue's members: size of them (0: min(3, members)),
// starting with the proposer (x-queue-leader-locator client-local, the default) or, for
// "balanced", at a node chosen by the group id, then round-robin in the member list's order.
func quorumMembers(from string, size int, locator string, nodes []ClusterNode, group uint64) []uint64 {
	n := len(nodes)
	if size <= 0 {
		size = min(3, n)
	}
	size = min(size, n)
	start := 0
	for i, nd := range nodes {
		if nd.Name == from {
			start = i
		}
	}
	if locator == "balanced" {
		start = int(group % uint64(n))
	}
	out := make([]uint64, 0, size)
	for i := range size {
		out = append(out, NodeID(nodes[(start+i)%n].Name))
	}
	return out
}

// replay is the model as commands, in the order they were applied: each live definition's put
// and each tombstone's delete.
func (m *metaModel) replay() []*metaCmd {
	all := make([]metaItem, 0, len(m.Items)+len(m.Gone))
	for _, it := range m.Items {
		all = append(all, it)
	}
	for _, it := range m.Gone {
		all = append(all, it)
	}
	slices.SortStableFunc(all, func(a, b metaItem) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		// one command's cascade: deletes after the put of the same step (none), then by key
		return strings.Compare(a.Cmd.metaKey(), b.Cmd.metaKey())
	})
	out := make([]*metaCmd, len(all))
	for i, it := range all {
		out[i] = it.Cmd
	}
	return out
}

// --- the state machine ---

// metaSM is the meta group's state machine (runs on the host's loop).
type metaSM struct {
	srv   *Server
	nodes []ClusterNode
	m     *metaModel
	seen  map[cluster.ProposalID]*metaOp // recent proposals: a retry gets the first one's op
}

func newMetaSM(s *Server, nodes []ClusterNode) *metaSM {
	return &metaSM{srv: s, nodes: nodes, m: newMetaModel(), seen: map[cluster.ProposalID]*metaOp{}}
}

// metaSeenMax bounds the remembered proposal ids.
const metaSeenMax = 1024

func (sm *metaSM) Apply(ents []cluster.Entry) ([]any, error) {
	out := make([]any, len(ents))
	for i, e := range ents {
		if op, ok := sm.seen[e.ID]; ok {
			out[i] = op // a retry of an applied proposal: its first application's outcome
			continue
		}
		if slices.Contains(sm.m.Seen, e.ID) { // applied before the last restart
			op := &metaOp{done: make(chan struct{})}
			close(op.done)
			out[i] = op
			continue
		}
		sm.m.Seen = append(sm.m.Seen, e.ID)
		if len(sm.m.Seen) > metaSeenMax {
			delete(sm.seen, sm.m.Seen[0])
			sm.m.Seen = sm.m.Seen[1:]
		}
		op := &metaOp{done: make(chan struct{})}
		sm.seen[e.ID] = op
		out[i] = op
		var c metaCmd
		if err := gob.NewDecoder(bytes.NewReader(e.Data)).Decode(&c); err != nil {
			op.res.err = fmt.Errorf("meta group: entry %d: %w", e.Index, err)
			close(op.done)
			continue
		}
		sm.m.apply(&c, sm.nodes)
		op.cmd = &c
		sm.srv.meta.enqueue(op)
	}
	return out, nil
}

func (sm *metaSM) Snapshot() ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(sm.m); err != nil {
		return nil, fmt.Errorf("meta group snapshot: %w", err)
	}
	return b.Bytes(), nil
}

func (sm *metaSM) Restore(data []byte) error {
	m := newMetaModel()
	if len(data) > 0 {
		if err := gob.NewDecoder(bytes.NewReader(data)).Decode(m); err != nil {
			return fmt.Errorf("meta group snapshot: %w", err)
		}
		if m.Items == nil {
			m.Items = map[string]metaItem{}
		}
		if m.Gone == nil {
			m.Gone = map[string]metaItem{}
		}
	}
	sm.m = m
	clear(sm.seen)
	op := &metaOp{done: make(chan struct{}), restore: m.replay()}
	sm.srv.meta.enqueue(op)
	return nil
}

// --- the applier ---

// metaOp is one command for the applier, or a snapshot's replay (restore); done is closed once it
// is applied, with res.
type metaOp struct {
	cmd     *metaCmd
	restore []*metaCmd
	done    chan struct{}
	res     metaResult
}

type metaResult struct {
	created bool
	n       uint32
	err     error
}

// metaApplier applies the meta group's commands to the broker in log order: one goroutine (run),
// started by New after recovery and stopped by Shutdown (stop) before the quorum queues' host.
type metaApplier struct {
	srv  *Server
	wake chan struct{}
	quit chan struct{}
	done chan struct{}

	mu struct {
		sync.Mutex
		ops     []*metaOp
		stopped bool
	}
	timeout time.Duration
}

func newMetaApplier(s *Server, timeout time.Duration) *metaApplier {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &metaApplier{srv: s, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		timeout: timeout}
}

// enqueue hands op to the applier (from the host's loop: never blocks).
func (a *metaApplier) enqueue(op *metaOp) {
	a.mu.Lock()
	if a.mu.stopped {
		a.mu.Unlock()
		op.res.err = cluster.ErrStopped
		close(op.done)
		return
	}
	a.mu.ops = append(a.mu.ops, op)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *metaApplier) start() { go a.run() }

func (a *metaApplier) run() {
	defer close(a.done)
	for {
		a.mu.Lock()
		ops := a.mu.ops
		a.mu.ops = nil
		a.mu.Unlock()
		for _, op := range ops {
			select {
			case <-a.quit:
				op.res.err = cluster.ErrStopped
			default:
				a.apply(op)
			}
			close(op.done)
		}
		select {
		case <-a.wake:
		case <-a.quit:
			a.mu.Lock()
			a.mu.stopped = true
			ops := a.mu.ops
			a.mu.ops = nil
			a.mu.Unlock()
			for _, op := range ops {
				op.res.err = cluster.ErrStopped
				close(op.done)
			}
			return
		}
	}
}

// stop stops the applier and waits for it (started or not).
func (a *metaApplier) stop(started bool) {
	close(a.quit)
	if started {
		<-a.done
		return
	}
	a.mu.Lock()
	a.mu.stopped = true
	ops := a.mu.ops
	a.mu.ops = nil
	a.mu.Unlock()
	for _, op := range ops {
		op.res.err = cluster.ErrStopped
		close(op.done)
	}
}

func (a *metaApplier) apply(op *metaOp) {
	if op.restore != nil {
		for _, c := range op.restore {
			if r := a.srv.metaExec(c); r.err != nil && !errors.Is(r.err, ErrNotFound) {
				a.srv.log.Debug("meta group: replaying a snapshot's command", "op", c.Op, "vhost", c.Vhost, "name", c.Name, "err", r.err)
			}
		}
		return
	}
	op.res = a.srv.metaExec(op.cmd)
	if op.res.err != nil {
		a.srv.log.Debug("meta group: command refused", "op", op.cmd.Op, "vhost", op.cmd.Vhost, "name", op.cmd.Name, "err", op.res.err)
	}
}

// --- proposing ---

// metaDo proposes c to the meta group and waits until it is applied on this node, retrying a
// dropped proposal (no leader yet) and one whose outcome is unknown (with its id) until
// ClusterOptions.ProposeTimeout.
func (s *Server) metaDo(c *metaCmd) (metaResult, error) {
	c.From = s.opts.NodeName
	data, err := gobEncode(c)
	if err != nil {
		return metaResult{}, fmt.Errorf("meta group: encoding a command: %w", err)
	}
	h, herr := s.qq.host()
	if herr != nil {
		return metaResult{}, newClusterUnavailable(herr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.meta.timeout)
	defer cancel()
	id := h.NewProposalID()
	pause := 10 * time.Millisecond
	for {
		res, err := h.ProposeID(ctx, metaGroupID, id, data)
		if err == nil {
			op, _ := res.(*metaOp)
			if op == nil {
				return metaResult{}, fmt.Errorf("meta group: no result for proposal %v", id)
			}
			select {
			case <-op.done:
				return op.res, op.res.err
			case <-ctx.Done():
				return metaResult{}, newClusterUnavailable(fmt.Errorf("committed, but not applied on this node in %v", s.meta.timeout))
			}
		}
		if errors.Is(err, cluster.ErrTooLarge) || errors.Is(err, cluster.ErrStopped) || ctx.Err() != nil {
			return metaResult{}, newClusterUnavailable(err)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return metaResult{}, newClusterUnavailable(err)
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

func gobEncode(c *metaCmd) ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
