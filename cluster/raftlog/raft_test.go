package raftlog

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/warrenmq/warren/storage"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// A deterministic simulation: three nodes in one process, each running simGroups Raft groups
// (raft.RawNode, PreVote and CheckQuorum on) over its own store through this package, with one
// Ready loop per node that writes every group's Ready in one Log.Write, an in-memory network (a
// FIFO of messages tagged with their group), and explicit ticks. No goroutines, no clocks.

const simGroups = 3

type simGroup struct {
	rn *raft.RawNode
	// applied is the state machine: the data of every applied normal entry, in order.
	applied  []string
	appliedI uint64
	// writtenLast and writtenHS are the last index and HardState made durable (Write returned).
	writtenLast uint64
	writtenHS   *pb.HardState
}

type simNode struct {
	id     uint64
	fs     *vfs.MemFS // Pebble's file system (nil: a MemStore)
	mem    *storage.MemStore
	store  storage.Store
	log    *Log
	groups []*simGroup // groups[i] is group i+1
	cycles uint64      // Ready cycles that wrote something
}

type envelope struct {
	group uint64
	m     *pb.Message
}

type sim struct {
	t     *testing.T
	nodes []*simNode
	down  map[uint64]bool
	queue []envelope
}

func newSim(t *testing.T, pebble bool) *sim {
	s := &sim{t: t, down: map[uint64]bool{}}
	for id := uint64(1); id <= 3; id++ {
		n := &simNode{id: id}
		if pebble {
			n.fs = vfs.NewCrashableMem()
		} else {
			n.mem = storage.NewMemStore()
		}
		s.open(n, true)
		s.nodes = append(s.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range s.nodes {
			if n.store != nil {
				_ = n.store.Close()
			}
		}
	})
	return s
}

// open opens n's store and log and starts its RawNodes; bootstrap writes every group's first
// ConfState (in one Write).
func (s *sim) open(n *simNode, bootstrap bool) {
	t := s.t
	var err error
	if n.fs != nil {
		n.store, err = storage.OpenPebble("data", storage.PebbleOptions{FS: n.fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	} else {
		n.store = n.mem
	}
	if err != nil {
		t.Fatal(err)
	}
	if n.log, err = Open(n.store); err != nil {
		t.Fatal(err)
	}
	if bootstrap {
		var us []Update
		for g := uint64(1); g <= simGroups; g++ {
			cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
			us = append(us, Update{Group: g, Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: cs}}})
		}
		if err := n.log.Write(us); err != nil {
			t.Fatal(err)
		}
	}
	prev := n.groups
	n.groups = nil
	for g := uint64(1); g <= simGroups; g++ {
		rn, err := raft.NewRawNode(&raft.Config{
			ID: n.id, ElectionTick: 10, HeartbeatTick: 1, Storage: n.log.Group(g),
			MaxSizePerMsg: 64 << 10, MaxInflightMsgs: 64, PreVote: true, CheckQuorum: true,
			Logger: discardLogger{},
		})
		if err != nil {
			t.Fatal(err)
		}
		sg := &simGroup{rn: rn}
		if prev != nil {
			sg.writtenLast, sg.writtenHS = prev[g-1].writtenLast, prev[g-1].writtenHS
		}
		n.groups = append(n.groups, sg)
	}
}

// crash drops n as a power loss would: with Pebble, its store is replaced by a crash clone of
// its file system holding exactly what was synced.
func (s *sim) crash(n *simNode) {
	s.down[n.id] = true
	if n.fs != nil {
		clone := n.fs.CrashClone(vfs.CrashCloneCfg{})
		_ = n.store.Close() // its later writes do not reach the clone
		n.fs = clone
	} else {
		n.mem = n.mem.Reopen()
	}
	n.store, n.log = nil, nil
	for _, g := range n.groups {
		g.rn, g.applied, g.appliedI = nil, nil, 0
	}
}

// restart reopens a crashed n from its store and checks what each group recovered.
func (s *sim) restart(n *simNode) {
	s.open(n, false)
	for i, sg := range n.groups {
		g := n.log.Group(uint64(i + 1))
		last, _ := g.LastIndex()
		hs, _, _ := g.InitialState()
		if last < sg.writtenLast {
			s.t.Fatalf("node %d group %d recovered last index %d, had written %d", n.id, i+1, last, sg.writtenLast)
		}
		if hs.GetTerm() != sg.writtenHS.GetTerm() || hs.GetVote() != sg.writtenHS.GetVote() || hs.GetCommit() != sg.writtenHS.GetCommit() {
			s.t.Fatalf("node %d group %d recovered HardState %v, had written %v", n.id, i+1, hs, sg.writtenHS)
		}
	}
	delete(s.down, n.id)
}

// handle runs one Ready cycle of n over all its groups: persist (one synced batch for all),
// send, apply, advance.
func (s *sim) handle(n *simNode) bool {
	var us []Update
	rds := make([]raft.Ready, len(n.groups))
	ready := make([]bool, len(n.groups))
	for i, sg := range n.groups {
		if !sg.rn.HasReady() {
			continue
		}
		rd := sg.rn.Ready()
		rds[i], ready[i] = rd, true
		u := Update{Group: uint64(i + 1), Snapshot: rd.Snapshot, Entries: rd.Entries, HardState: rd.HardState}
		if sg.appliedI > n.log.Group(uint64(i+1)).Applied() {
			u.Applied = sg.appliedI
		}
		us = append(us, u)
	}
	if len(us) == 0 {
		return false
	}
	before := n.log.Syncs()
	if err := n.log.Write(us); err != nil {
		s.t.Fatalf("node %d: %v", n.id, err)
	}
	if n.log.Syncs() > before+1 {
		s.t.Fatalf("node %d: one Ready cycle took %d synced batches", n.id, n.log.Syncs()-before)
	}
	n.cycles++
	for i, sg := range n.groups {
		if !ready[i] {
			continue
		}
		rd := rds[i]
		if len(rd.Entries) > 0 {
			sg.writtenLast = rd.Entries[len(rd.Entries)-1].GetIndex()
		}
		if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
			sg.writtenHS = rd.HardState
		}
		for _, m := range rd.Messages { // only after the write is durable
			s.queue = append(s.queue, envelope{uint64(i + 1), m})
		}
		if rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot) {
			sg.applied = decodeSM(rd.Snapshot.GetData())
			sg.appliedI = rd.Snapshot.GetMetadata().GetIndex()
		}
		for _, e := range rd.CommittedEntries {
			if e.GetIndex() <= sg.appliedI {
				continue
			}
			if e.GetType() == pb.EntryType_EntryNormal && len(e.GetData()) > 0 {
				sg.applied = append(sg.applied, string(e.GetData()))
			}
			sg.appliedI = e.GetIndex()
		}
		sg.rn.Advance(rd)
	}
	return true
}

// settle runs Ready cycles and delivers messages until nothing moves.
func (s *sim) settle() {
	for range 100000 {
		moved := false
		for _, n := range s.nodes {
			if !s.down[n.id] && s.handle(n) {
				moved = true
			}
		}
		if len(s.queue) > 0 {
			moved = true
			q := s.queue
			s.queue = nil
			for _, e := range q {
				m := e.m
				if s.down[m.GetTo()] || s.down[m.GetFrom()] {
					continue
				}
				_ = s.nodes[m.GetTo()-1].groups[e.group-1].rn.Step(m)
				if m.GetType() == pb.MessageType_MsgSnap {
					s.nodes[m.GetFrom()-1].groups[e.group-1].rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
				}
			}
		}
		if !moved {
			return
		}
	}
	s.t.Fatal("the cluster did not settle")
}

func (s *sim) tick() {
	for _, n := range s.nodes {
		if !s.down[n.id] {
			for _, g := range n.groups {
				g.rn.Tick()
			}
		}
	}
	s.settle()
}

// leader is group g's leader among the live nodes (nil: none); two leaders in one term fail.
func (s *sim) leader(g int) *simGroup {
	var l *simGroup
	var lid uint64
	for _, n := range s.nodes {
		if s.down[n.id] {
			continue
		}
		st := n.groups[g].rn.BasicStatus()
		if st.RaftState == raft.StateLeader {
			if l != nil && l.rn.BasicStatus().GetTerm() == st.GetTerm() {
				s.t.Fatalf("group %d: two leaders in term %d: %d and %d", g+1, st.GetTerm(), lid, n.id)
			}
			if l == nil || st.GetTerm() > l.rn.BasicStatus().GetTerm() {
				l, lid = n.groups[g], n.id
			}
		}
	}
	return l
}

func (s *sim) waitLeader(g int) *simGroup {
	for range 1000 {
		if l := s.leader(g); l != nil {
			return l
		}
		s.tick()
	}
	s.t.Fatalf("group %d: no leader after 1000 ticks", g+1)
	return nil
}

// leaderNode is the node leading group 1.
func (s *sim) leaderNode() *simNode {
	l := s.waitLeader(0)
	for _, n := range s.nodes {
		if !s.down[n.id] && n.groups[0] == l {
			return n
		}
	}
	return nil
}

// propose proposes entries [from, to) in every group on its leader, 50 per tick.
func (s *sim) propose(from, to int) {
	for i := from; i < to; {
		end := min(to, i+50)
		for g := range simGroups {
			l := s.waitLeader(g)
			for j := i; j < end; j++ {
				if err := l.rn.Propose([]byte(strconv.Itoa(j))); err != nil {
					s.t.Fatalf("group %d: propose %d: %v", g+1, j, err)
				}
			}
		}
		i = end
		s.tick()
	}
}

// waitApplied ticks until every live node has applied n entries in every group, then checks them.
func (s *sim) waitApplied(n int) {
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	for range 1000 {
		done := true
		for _, nd := range s.nodes {
			for _, g := range nd.groups {
				if !s.down[nd.id] && len(g.applied) < n {
					done = false
				}
			}
		}
		if done {
			for _, nd := range s.nodes {
				for gi, g := range nd.groups {
					if !s.down[nd.id] && !slices.Equal(g.applied, want) {
						s.t.Fatalf("node %d group %d applied %d entries, not 0..%d in order (first difference at %d)", nd.id, gi+1, len(g.applied), n-1, firstDiff(g.applied, want))
					}
				}
			}
			return
		}
		s.tick()
	}
	for _, nd := range s.nodes {
		for gi, g := range nd.groups {
			s.t.Logf("node %d group %d: down %v applied %d", nd.id, gi+1, s.down[nd.id], len(g.applied))
		}
	}
	s.t.Fatalf("not every node applied %d entries after 1000 ticks", n)
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func encodeSM(applied []string) []byte {
	return []byte(fmt.Sprint(len(applied), "\n", joinLines(applied)))
}

func joinLines(s []string) string {
	var b bytes.Buffer
	for _, x := range s {
		b.WriteString(x)
		b.WriteByte('\n')
	}
	return b.String()
}

func decodeSM(data []byte) []string {
	lines := bytes.Split(data, []byte("\n"))
	n, _ := strconv.Atoi(string(lines[0]))
	out := make([]string, 0, n)
	for _, l := range lines[1 : n+1] {
		out = append(out, string(l))
	}
	return out
}

// snapshotAndCompact makes every live node snapshot each group's state machine and drop its log
// up to it.
func (s *sim) snapshotAndCompact() {
	for _, n := range s.nodes {
		if s.down[n.id] {
			continue
		}
		var us []Update
		for i, g := range n.groups {
			_, cs, _ := n.log.Group(uint64(i + 1)).InitialState()
			us = append(us, Update{Group: uint64(i + 1), Applied: g.appliedI,
				CreateSnapshot: &SnapshotRequest{Index: g.appliedI, ConfState: cs, Data: encodeSM(g.applied)},
				Compact:        g.appliedI})
		}
		if err := n.log.Write(us); err != nil {
			s.t.Fatalf("node %d: snapshot and compact: %v", n.id, err)
		}
	}
}

func TestRaftThreeNodes(t *testing.T) {
	for _, tc := range []struct {
		name            string
		pebble, compact bool
	}{
		{"memstore", false, false},
		{"pebble", true, false},
		{"pebble-snapshot-catchup", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, tc.pebble)
			s.propose(0, 1000)
			s.waitApplied(1000)
			for _, n := range s.nodes {
				// At most one synced batch per Ready cycle (none when a cycle has nothing to
				// persist, only messages or entries to apply), +1 for the bootstrap.
				if n.log.Syncs() > n.cycles+1 || n.log.Syncs() < 10 {
					t.Fatalf("node %d: %d synced batches for %d Ready cycles", n.id, n.log.Syncs(), n.cycles)
				}
				t.Logf("node %d: %d synced batches for %d Ready cycles of %d groups", n.id, n.log.Syncs(), n.cycles, simGroups)
			}

			// Crash a follower of group 1, go on without it, then restart it from its store.
			victim := s.nodes[s.leaderNode().id%3]
			s.crash(victim)
			s.propose(1000, 1200)
			s.waitApplied(1200)
			if tc.compact {
				s.snapshotAndCompact()
			}
			s.restart(victim)
			s.waitApplied(1200)
			if tc.compact {
				for g := uint64(1); g <= simGroups; g++ {
					if snap, _ := victim.log.Group(g).Snapshot(); snap.GetMetadata().GetIndex() == 0 {
						t.Fatalf("group %d: the restarted node caught up without the leader's snapshot", g)
					}
				}
			}
			// The restarted node takes part again: more entries, all apply everywhere.
			s.propose(1200, 1300)
			s.waitApplied(1300)
		})
	}
}

// discardLogger is raft's Logger, silent (raft's default logs to stderr).
type discardLogger struct{}

func (discardLogger) Debug(...any)              {}
func (discardLogger) Debugf(string, ...any)     {}
func (discardLogger) Error(...any)              {}
func (discardLogger) Errorf(string, ...any)     {}
func (discardLogger) Info(...any)               {}
func (discardLogger) Infof(string, ...any)      {}
func (discardLogger) Warning(...any)            {}
func (discardLogger) Warningf(string, ...any)   {}
func (discardLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (discardLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
