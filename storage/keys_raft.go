package storage

import (
	"encoding/binary"
	"fmt"
)

// Raft log keys: prefixRaft, the group id (big-endian), one kind byte, and for a log entry its
// index (big-endian), so a group's keys form one range and its entries sort by index.
const prefixRaft = 'F'

// Kinds of a Raft group's keys (the byte after the group id).
const (
	RaftKindApplied   = 'a' // the applied index
	RaftKindConfState = 'c' // the ConfState
	RaftKindEntry     = 'e' // a log entry, followed by its index
	RaftKindHardState = 'h' // the HardState
	RaftKindSnapshot  = 's' // the latest snapshot (metadata and data)
	RaftKindTruncated = 't' // index and term of the last entry removed from the log
)

func raftGroupKey(group uint64, kind byte) []byte {
	k := make([]byte, 0, 18)
	k = append(k, prefixRaft)
	k = binary.BigEndian.AppendUint64(k, group)
	return append(k, kind)
}

// RaftKey is the key of one of group's single records (a RaftKind other than RaftKindEntry).
func RaftKey(group uint64, kind byte) []byte { return raftGroupKey(group, kind) }

// RaftEntryKey is the key of group's log entry at index.
func RaftEntryKey(group, index uint64) []byte {
	return binary.BigEndian.AppendUint64(raftGroupKey(group, RaftKindEntry), index)
}

// RaftEntryRange is [start, end) over group's log entries with index in [lo, hi).
func RaftEntryRange(group, lo, hi uint64) (start, end []byte) {
	return RaftEntryKey(group, lo), RaftEntryKey(group, hi)
}

// RaftEntriesAll is [start, end) over every log entry of group.
func RaftEntriesAll(group uint64) (start, end []byte) {
	return raftGroupKey(group, RaftKindEntry), raftGroupKey(group, RaftKindEntry+1)
}

// RaftPrefix selects every Raft record of every group.
func RaftPrefix() []byte { return []byte{prefixRaft} }

// ParseRaftKey splits a key under RaftPrefix into group id, kind and (for an entry) index.
func ParseRaftKey(key []byte) (group uint64, kind byte, index uint64, err error) {
	if len(key) < 10 || key[0] != prefixRaft {
		return 0, 0, 0, fmt.Errorf("storage: malformed raft key %x", key)
	}
	group, kind = binary.BigEndian.Uint64(key[1:9]), key[9]
	switch {
	case kind == RaftKindEntry && len(key) == 18:
		return group, kind, binary.BigEndian.Uint64(key[10:]), nil
	case kind != RaftKindEntry && len(key) == 10:
		return group, kind, 0, nil
	}
	return 0, 0, 0, fmt.Errorf("storage: malformed raft key %x", key)
}

// RaftGroupRange is [start, end) over every record of group.
func RaftGroupRange(group uint64) (start, end []byte) {
	start = binary.BigEndian.AppendUint64([]byte{prefixRaft}, group)
	if group == ^uint64(0) {
		return start, []byte{prefixRaft + 1}
	}
	return start, binary.BigEndian.AppendUint64([]byte{prefixRaft}, group+1)
}
