package storage

import (
	"bytes"
	"errors"
	"sort"
	"sync"
)

// RecordVersion is the first byte of every record the broker writes.
const RecordVersion = 1

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("storage: closed")

// ErrStop, returned by a scan callback, ends the scan early; the scan then returns nil.
var ErrStop = errors.New("storage: stop scan")

// Store is Warren's durable key-value state. Implementations are safe for concurrent use.
type Store interface {
	// Apply writes b atomically; with sync it returns after the write is durable.
	Apply(b *Batch, sync bool) error
	// Scan calls fn for every key with prefix, in key order, until fn returns an error (which Scan
	// returns). fn must not keep key or value after it returns.
	Scan(prefix []byte, fn func(key, value []byte) error) error
	// ScanRange is Scan over the keys in [start, end) (end nil: no upper bound).
	ScanRange(start, end []byte, fn func(key, value []byte) error) error
	// Close releases the store.
	Close() error
}

// Batch is a list of writes applied together.
type Batch struct {
	ops  []op
	size int // bytes of keys and values
}

type opKind uint8

const (
	opSet opKind = iota
	opDelete
	opDeleteRange
)

type op struct {
	kind       opKind
	key, value []byte // for opDeleteRange: [key, value) is the range
}

// Set writes key=value. The batch keeps the slices: do not modify them afterwards.
func (b *Batch) Set(key, value []byte) {
	b.ops = append(b.ops, op{kind: opSet, key: key, value: value})
	b.size += len(key) + len(value)
}

// Delete removes key.
func (b *Batch) Delete(key []byte) {
	b.ops = append(b.ops, op{kind: opDelete, key: key})
	b.size += len(key)
}

// DeleteRange removes every key in [start, end).
func (b *Batch) DeleteRange(start, end []byte) {
	b.ops = append(b.ops, op{kind: opDeleteRange, key: start, value: end})
	b.size += len(start) + len(end)
}

// Append adds every write of o to b, after b's own.
func (b *Batch) Append(o *Batch) {
	b.ops = append(b.ops, o.ops...)
	b.size += o.size
}

// Size is the number of bytes of the keys and values in the batch.
func (b *Batch) Size() int { return b.size }

// Len is the number of writes in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Release drops the keys and values of an applied batch, keeping Len and Size: whoever still
// holds the batch (the broker keeps a commit group to learn its outcome) does not keep its records.
func (b *Batch) Release() {
	for i := range b.ops {
		b.ops[i] = op{kind: b.ops[i].kind}
	}
}

// MemStore is a Store in memory. Sync is a no-op: it is for tests and for running without disk.
type MemStore struct {
	mu     sync.Mutex
	m      map[string][]byte
	closed bool
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return &MemStore{m: map[string][]byte{}} }

// Apply implements Store.
func (s *MemStore) Apply(b *Batch, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, o := range b.ops {
		switch o.kind {
		case opSet:
			s.m[string(o.key)] = bytes.Clone(o.value)
		case opDelete:
			delete(s.m, string(o.key))
		case opDeleteRange:
			for k := range s.m {
				if k >= string(o.key) && k < string(o.value) {
					delete(s.m, k)
				}
			}
		}
	}
	return nil
}

// Scan implements Store. It copies the matching entries first, so fn may call Apply.
func (s *MemStore) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return s.scan(func(k string) bool { return bytes.HasPrefix([]byte(k), prefix) }, fn)
}

// ScanRange implements Store.
func (s *MemStore) ScanRange(start, end []byte, fn func(key, value []byte) error) error {
	return s.scan(func(k string) bool { return k >= string(start) && (end == nil || k < string(end)) }, fn)
}

func (s *MemStore) scan(match func(string) bool, fn func(key, value []byte) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var keys []string
	for k := range s.m {
		if match(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = s.m[k]
	}
	s.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// Close implements Store. The contents stay readable by nothing: a closed store refuses calls.
func (s *MemStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Reopen returns a new MemStore with the same contents, as a restart would see them.
func (s *MemStore) Reopen() *MemStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := NewMemStore()
	for k, v := range s.m {
		n.m[k] = v
	}
	return n
}
