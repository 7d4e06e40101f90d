package server

import (
	"time"

	"github.com/warrenmq/warren/cluster"
)

// RaftGroupInfo is one Raft group of this node as Prometheus reports it (RabbitMQ's
// rabbitmq_raft_* metrics): a quorum queue's (Vhost and Queue set) or the meta group's (both
// empty, as RabbitMQ reports its own internal Raft clusters without labels).
type RaftGroupInfo struct {
	Vhost, Queue  string
	Term          uint64
	Commit        uint64
	Applied       uint64
	LastWritten   uint64
	Snapshot      uint64
	CommitLatency time.Duration
}

// raftQueue is a queue type replicated by a Raft group of the node's host.
type raftQueue interface{ raftGroup() uint64 }

// RaftGroups returns this node's Raft groups with their indexes, or nothing when no group runs
// (no quorum queue on a single node).
func (s *Server) RaftGroups() []RaftGroupInfo {
	s.qq.mu.Lock()
	h := s.qq.mu.host
	s.qq.mu.Unlock()
	if h == nil {
		return nil
	}
	info := func(st cluster.GroupStatus, vhost, queue string) RaftGroupInfo {
		return RaftGroupInfo{Vhost: vhost, Queue: queue, Term: st.Term, Commit: st.Commit, Applied: st.Applied,
			LastWritten: st.LastIndex, Snapshot: st.Snapshot, CommitLatency: st.CommitLatency}
	}
	var out []RaftGroupInfo
	if st, ok := h.Status(metaGroupID); ok {
		out = append(out, info(st, "", ""))
	}
	for _, v := range s.vhostList() {
		qs, _ := v.lists()
		for _, q := range qs {
			rq, ok := q.queueImpl.(raftQueue)
			if !ok {
				continue
			}
			if st, ok := h.Status(rq.raftGroup()); ok {
				out = append(out, info(st, v.name, q.name))
			}
		}
	}
	return out
}
