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

// A deterministic simulation: three raft.RawNodes (PreVote and CheckQuorum on) in one process,
// each on its own store through this package, an in-memory network (a FIFO of messages), and
// explicit ticks. No goroutines, no clocks.

const simGroup = 1

type simNode struct {
	id    uint64
	fs    *vfs.MemFS // Pebble's file system (nil: a MemStore)
	mem   *storage.MemStore
	store storage.Store
	log   *Log
	rn    *raft.RawNode
	// applied is the state machine: the data of every applied normal entry, in order.
	applied  []string
	appliedI uint64
	// written is the last index and HardState this node has made durable (Write returned).
	writtenLast uint64
	writtenHS   *pb.HardState
}

type sim struct {
	t      *testing.T
	pebble bool
	nodes  []*simNode
	down   map[uint64]bool
	queue  []*pb.Message
}

func newSim(t *testing.T, pebble bool) *sim {
	s := &sim{t: t, pebble: pebble, down: map[uint64]bool{}}
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

// open opens n's store and log and starts its RawNode; bootstrap writes the first ConfState.
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
		cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
		if err := n.log.Write([]Update{{Group: simGroup, Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: cs}}}}); err != nil {
			t.Fatal(err)
		}
	}
	n.rn, err = raft.NewRawNode(&raft.Config{
		ID: n.id, ElectionTick: 10, HeartbeatTick: 1, Storage: n.log.Group(simGroup),
		MaxSizePerMsg: 64 << 10, MaxInflightMsgs: 64, PreVote: true, CheckQuorum: true,
		Logger: discardLogger{},
	})
	if err != nil {
		t.Fatal(err)
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
	n.store, n.log, n.rn, n.applied, n.appliedI = nil, nil, nil, nil, 0
}

// restart reopens a crashed n from its store and checks what it recovered.
func (s *sim) restart(n *simNode) {
	s.open(n, false)
	g := n.log.Group(simGroup)
	last, _ := g.LastIndex()
	hs, _, _ := g.InitialState()
	if last < n.writtenLast {
		s.t.Fatalf("node %d recovered last index %d, had written %d", n.id, last, n.writtenLast)
	}
	if hs.GetTerm() != n.writtenHS.GetTerm() || hs.GetVote() != n.writtenHS.GetVote() || hs.GetCommit() != n.writtenHS.GetCommit() {
		s.t.Fatalf("node %d recovered HardState %v, had written %v", n.id, hs, n.writtenHS)
	}
	delete(s.down, n.id)
}

// handle runs one Ready cycle of n: persist (one synced batch), send, apply, advance.
func (s *sim) handle(n *simNode) bool {
	if !n.rn.HasReady() {
		return false
	}
	rd := n.rn.Ready()
	u := Update{Group: simGroup, Snapshot: rd.Snapshot, Entries: rd.Entries, HardState: rd.HardState}
	if n.appliedI > n.log.Group(simGroup).Applied() {
		u.Applied = n.appliedI
	}
	if err := n.log.Write([]Update{u}); err != nil {
		s.t.Fatalf("node %d: %v", n.id, err)
	}
	if len(rd.Entries) > 0 {
		n.writtenLast = rd.Entries[len(rd.Entries)-1].GetIndex()
	}
	if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
		n.writtenHS = rd.HardState
	}
	s.queue = append(s.queue, rd.Messages...) // only after the write is durable
	if rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot) {
		n.applied = decodeSM(rd.Snapshot.GetData())
		n.appliedI = rd.Snapshot.GetMetadata().GetIndex()
	}
	for _, e := range rd.CommittedEntries {
		if e.GetIndex() <= n.appliedI {
			continue
		}
		if e.GetType() == pb.EntryType_EntryNormal && len(e.GetData()) > 0 {
			n.applied = append(n.applied, string(e.GetData()))
		}
		n.appliedI = e.GetIndex()
	}
	n.rn.Advance(rd)
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
			for _, m := range q {
				to := s.nodes[m.GetTo()-1]
				if s.down[m.GetTo()] || s.down[m.GetFrom()] {
					continue
				}
				_ = to.rn.Step(m)
				if m.GetType() == pb.MessageType_MsgSnap {
					s.nodes[m.GetFrom()-1].rn.ReportSnapshot(m.GetTo(), raft.SnapshotFinish)
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
			n.rn.Tick()
		}
	}
	s.settle()
}

func (s *sim) leader() *simNode {
	var l *simNode
	for _, n := range s.nodes {
		if !s.down[n.id] && n.rn.BasicStatus().RaftState == raft.StateLeader {
			if l != nil {
				s.t.Fatalf("two leaders: %d and %d", l.id, n.id)
			}
			l = n
		}
	}
	return l
}

func (s *sim) waitLeader() *simNode {
	for range 1000 {
		if l := s.leader(); l != nil {
			return l
		}
		s.tick()
	}
	s.t.Fatal("no leader after 1000 ticks")
	return nil
}

// propose proposes entries [from, to) on the leader, a batch per tick.
func (s *sim) propose(from, to int) {
	for i := from; i < to; {
		l := s.waitLeader()
		for ; i < to && i%50 != 49; i++ {
			if err := l.rn.Propose([]byte(strconv.Itoa(i))); err != nil {
				s.t.Fatalf("propose %d: %v", i, err)
			}
		}
		if i < to {
			if err := l.rn.Propose([]byte(strconv.Itoa(i))); err != nil {
				s.t.Fatalf("propose %d: %v", i, err)
			}
			i++
		}
		s.tick()
	}
}

// waitApplied ticks until every live node has applied n entries, then checks them.
func (s *sim) waitApplied(n int) {
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	for range 1000 {
		done := true
		for _, nd := range s.nodes {
			if !s.down[nd.id] && len(nd.applied) < n {
				done = false
			}
		}
		if done {
			for _, nd := range s.nodes {
				if !s.down[nd.id] && !slices.Equal(nd.applied, want) {
					s.t.Fatalf("node %d applied %d entries, not 0..%d in order (first difference near %v)", nd.id, len(nd.applied), n-1, firstDiff(nd.applied, want))
				}
			}
			return
		}
		s.tick()
	}
	for _, nd := range s.nodes {
		s.t.Logf("node %d: down %v applied %d", nd.id, s.down[nd.id], len(nd.applied))
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

// snapshotAndCompact makes every live node snapshot its state machine and drop its log up to it.
func (s *sim) snapshotAndCompact() {
	for _, n := range s.nodes {
		if s.down[n.id] {
			continue
		}
		_, cs, _ := n.log.Group(simGroup).InitialState()
		err := n.log.Write([]Update{{Group: simGroup, Applied: n.appliedI,
			CreateSnapshot: &SnapshotRequest{Index: n.appliedI, ConfState: cs, Data: encodeSM(n.applied)},
			Compact:        n.appliedI}})
		if err != nil {
			s.t.Fatalf("node %d: snapshot and compact at %d: %v", n.id, n.appliedI, err)
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
			s.waitLeader()
			s.propose(0, 1000)
			s.waitApplied(1000)

			// Crash a follower, go on without it, then restart it from its store.
			l := s.waitLeader()
			victim := s.nodes[l.id%3]
			s.crash(victim)
			s.propose(1000, 1200)
			s.waitApplied(1200)
			if tc.compact {
				s.snapshotAndCompact()
			}
			s.restart(victim)
			s.waitApplied(1200)
			if tc.compact {
				if snap, _ := victim.log.Group(simGroup).Snapshot(); snap.GetMetadata().GetIndex() == 0 {
					t.Fatal("the restarted node caught up without the leader's snapshot")
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
