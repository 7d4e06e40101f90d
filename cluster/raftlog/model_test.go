package raftlog

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/warrenmq/warren/storage"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// model is a naive Raft log: every entry after the truncation point in a slice.
type model struct {
	truncIndex, truncTerm uint64
	ents                  []*pb.Entry // indexes truncIndex+1, ...
	applied               uint64
}

func (m *model) last() uint64 { return m.truncIndex + uint64(len(m.ents)) }

func (m *model) term(i uint64) (uint64, error) {
	switch {
	case i < m.truncIndex:
		return 0, raft.ErrCompacted
	case i == m.truncIndex:
		return m.truncTerm, nil
	case i > m.last():
		return 0, raft.ErrUnavailable
	}
	return m.ents[i-m.truncIndex-1].GetTerm(), nil
}

func (m *model) append(ents []*pb.Entry) error {
	if len(ents) == 0 || ents[len(ents)-1].GetIndex() <= m.truncIndex {
		return nil
	}
	if ents[0].GetIndex() <= m.truncIndex {
		ents = ents[m.truncIndex+1-ents[0].GetIndex():]
	}
	at := ents[0].GetIndex()
	if at > m.last()+1 {
		return ErrOutOfBounds
	}
	if at <= m.applied {
		return ErrReplacesApplied
	}
	m.ents = append(m.ents[:at-m.truncIndex-1:at-m.truncIndex-1], ents...)
	return nil
}

func (m *model) compact(i uint64) error {
	if i <= m.truncIndex {
		return raft.ErrCompacted
	}
	if i > m.last() {
		return ErrOutOfBounds
	}
	t, _ := m.term(i)
	m.ents = m.ents[i-m.truncIndex:]
	m.truncIndex, m.truncTerm = i, t
	return nil
}

// checkModel compares every raft.Storage answer of g with m's.
func checkModel(t *testing.T, g *Group, m *model, r *rand.Rand) {
	t.Helper()
	if first, _ := g.FirstIndex(); first != m.truncIndex+1 {
		t.Fatalf("FirstIndex %d, model %d", first, m.truncIndex+1)
	}
	if last, _ := g.LastIndex(); last != m.last() {
		t.Fatalf("LastIndex %d, model %d", last, m.last())
	}
	for i := m.truncIndex - min(m.truncIndex, 2); i <= m.last()+2; i++ {
		got, err := g.Term(i)
		want, werr := m.term(i)
		if got != want || !errors.Is(err, werr) || (werr == nil && err != nil) {
			t.Fatalf("Term(%d) = %d, %v; model %d, %v", i, got, err, want, werr)
		}
	}
	for range 4 {
		lo := m.truncIndex + 1 + uint64(r.IntN(len(m.ents)+1))
		hi := lo + uint64(r.IntN(int(m.last()+2-lo)))
		maxSize := uint64(r.IntN(200))
		if r.IntN(2) == 0 {
			maxSize = 1 << 30
		}
		got, err := g.Entries(lo, hi, maxSize)
		if len(m.ents) == 0 {
			if !errors.Is(err, raft.ErrUnavailable) {
				t.Fatalf("Entries(%d, %d) on the empty log after %d: %v, want ErrUnavailable", lo, hi, m.truncIndex, err)
			}
			continue
		}
		if lo == hi {
			if err != nil || len(got) != 0 {
				t.Fatalf("Entries(%d, %d) = %v, %v; want none", lo, hi, got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Entries(%d, %d, %d): %v", lo, hi, maxSize, err)
		}
		var want []*pb.Entry
		var size uint64
		for _, e := range m.ents[lo-m.truncIndex-1 : hi-m.truncIndex-1] {
			size += uint64(proto.Size(e))
			if len(want) > 0 && size > maxSize {
				break
			}
			want = append(want, e)
		}
		equalEntries(t, want, got)
	}
	if _, err := g.Entries(m.truncIndex, m.last()+1, 1<<30); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries from the truncation point %d: %v, want ErrCompacted", m.truncIndex, err)
	}
}

// runModel applies the operations encoded in ops to a Group and to the model, comparing them
// after each.
func runModel(t *testing.T, ops []byte) {
	mem := storage.NewMemStore()
	l, err := Open(mem)
	if err != nil {
		t.Fatal(err)
	}
	m := &model{}
	r := rand.New(rand.NewPCG(uint64(len(ops)), 1))
	next := func() int {
		if len(ops) == 0 {
			return 0
		}
		b := int(ops[0])
		ops = ops[1:]
		return b
	}
	term := uint64(1)
	for len(ops) > 0 {
		var u Update
		var werr error
		switch op := next() % 5; op {
		case 0, 1: // append k entries at an index around the log's end (maybe over a compacted prefix)
			at := m.truncIndex + uint64(next()%(len(m.ents)+3))
			at = max(at, 1) // raft's first entry is index 1
			k := 1 + next()%4
			if next()%3 == 0 {
				term++
			}
			ents := make([]*pb.Entry, k)
			for i := range ents {
				ents[i] = &pb.Entry{Index: new(at + uint64(i)), Term: new(term), Data: make([]byte, next()%40)}
			}
			u.Entries = ents
			werr = m.append(ents)
		case 2: // advance applied
			if d := uint64(next() % (int(m.last()-m.applied) + 1)); d > 0 {
				u.Applied = m.applied + d
				m.applied = u.Applied
			}
		case 3: // compact at or before applied (or just after: out of bounds when past last)
			i := m.truncIndex + uint64(next()%(int(m.applied-min(m.applied, m.truncIndex))+2))
			u.Compact = i
			werr = m.compact(i)
			if i == 0 {
				u.Compact, werr = 0, nil
			}
		case 4: // restart
			mem = mem.Reopen()
			if l, err = Open(mem); err != nil {
				t.Fatalf("reopen: %v", err)
			}
			checkModel(t, l.Group(1), m, r)
			continue
		}
		u.Group = 1
		err := l.Write([]Update{u})
		if !errors.Is(err, werr) || (werr == nil && err != nil) {
			t.Fatalf("Write(%+v) = %v, model %v", u, err, werr)
		}
		checkModel(t, l.Group(1), m, r)
	}
}

func FuzzLogModel(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 64 {
		ops := make([]byte, 200)
		for i := range ops {
			ops[i] = byte(r.IntN(256))
		}
		f.Add(ops)
	}
	f.Fuzz(runModel)
}
