package fifo

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Snapshots.
//
// Marshal encodes the whole state, message bodies included: Restore of it is the same State, and
// it applies the same further commands with the same replies and effects. Two members that
// applied the same log produce the same bytes (maps are written in key order).
//
// MarshalCheckpoint is the same without the bodies: the host's cheap snapshot for log
// truncation, the way rabbit_fifo's release cursor works. Take a checkpoint at applied index C;
// once an EffectReleaseCursor reports an Index >= C, every message the checkpoint holds has left
// the queue, so the checkpoint plus the log entries after C rebuild the current state exactly
// (the bodies of live messages are in those entries), and the log up to C may go. Until the
// replay has passed the release cursor's index, effects of the restored state may carry messages
// without bodies: a host replays without acting on effects anyway.

const (
	snapshotVersion = 1
	snapNoBodies    = 1 // flag: message bodies left out (a checkpoint)
)

// Marshal encodes the whole state.
func (s *State) Marshal() []byte { return s.marshal(make([]byte, 0, s.sizeHint(true)), true) }

// MarshalCheckpoint encodes the state without message bodies (see above).
func (s *State) MarshalCheckpoint() []byte {
	return s.marshal(make([]byte, 0, s.sizeHint(false)), false)
}

// sizeHint estimates the encoding's size, so that it is built without copying.
func (s *State) sizeHint(bodies bool) int {
	n := s.live.n
	size := 128 + 24*n + 16*len(s.consumers) + 16*len(s.enqueuers)
	if bodies {
		sum := 0
		for i := range s.returns.len() {
			sum += len(s.returns.at(i).body)
		}
		for i := range s.ready.len() {
			sum += len(s.ready.at(i).body)
		}
		for _, c := range s.consumers {
			for _, m := range c.checked {
				sum += len(m.body)
			}
		}
		for _, d := range s.dlx {
			sum += len(d.m.body)
		}
		size += sum + 2*n
	}
	return size
}

func (s *State) marshal(dst []byte, bodies bool) []byte {
	flags := byte(0)
	if !bodies {
		flags |= snapNoBodies
	}
	dst = append(dst, snapshotVersion, flags)
	dst = appendConfig(dst, &s.cfg)
	dst = binary.AppendUvarint(dst, s.index)
	dst = binary.AppendVarint(dst, s.now)
	dst = append(dst, boolByte(s.started))
	appendMsg := func(dst []byte, m *msg) []byte {
		dst = binary.AppendUvarint(dst, m.id)
		dst = binary.AppendUvarint(dst, m.size)
		dst = binary.AppendVarint(dst, m.expiry)
		dst = binary.AppendUvarint(dst, uint64(m.count))
		if bodies {
			dst = binary.AppendUvarint(dst, uint64(len(m.body)))
			dst = append(dst, m.body...)
		}
		return dst
	}
	for _, r := range []*ring[msg]{&s.returns, &s.ready} {
		dst = binary.AppendUvarint(dst, uint64(r.len()))
		for i := range r.len() {
			dst = appendMsg(dst, r.at(i))
		}
	}
	cs := make([]*consumer, 0, len(s.consumers))
	for _, c := range s.consumers {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, compareConsumers)
	dst = binary.AppendUvarint(dst, uint64(len(cs)))
	var ids []uint64
	for _, c := range cs {
		dst = appendKey(dst, c.key)
		dst = append(dst, byte(c.status), byte(c.mode))
		dst = binary.AppendUvarint(dst, uint64(c.credit))
		dst = binary.AppendVarint(dst, int64(c.priority))
		dst = append(dst, boolByte(c.excl)|boolByte(c.noAck)<<1|boolByte(c.suspected)<<2)
		dst = binary.AppendUvarint(dst, c.attached)
		dst = binary.AppendUvarint(dst, c.served)
		ids = sortedKeys(ids[:0], c.checked)
		dst = binary.AppendUvarint(dst, uint64(len(ids)))
		for _, id := range ids {
			m := c.checked[id]
			dst = appendMsg(dst, &m)
		}
	}
	dst = binary.AppendUvarint(dst, s.attachSeq)
	dst = binary.AppendUvarint(dst, s.serveSeq)
	ids = sortedKeys(ids[:0], s.enqueuers)
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, p := range ids {
		dst = binary.AppendUvarint(dst, p)
		dst = binary.AppendUvarint(dst, s.enqueuers[p])
	}
	ids = sortedKeys(ids[:0], s.dlx)
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		d := s.dlx[id]
		dst = appendMsg(dst, &d.m)
		dst = append(dst, byte(d.reason))
	}
	dst = append(dst, boolByte(s.blocked))
	dst = binary.AppendVarint(dst, s.lastActive)
	dst = append(dst, boolByte(s.expiredSent))
	dst = binary.AppendVarint(dst, s.timerAt)
	return binary.AppendUvarint(dst, s.cursor)
}

// compareConsumers orders consumers by attach order, then key (basic.get owners, never
// attached, by owner).
func compareConsumers(a, b *consumer) int {
	if a.attached != b.attached {
		return cmpU64(a.attached, b.attached)
	}
	if a.key.Owner != b.key.Owner {
		return cmpU64(a.key.Owner, b.key.Owner)
	}
	return cmpString(a.key.Tag, b.key.Tag)
}

func sortedKeys[V any](dst []uint64, m map[uint64]V) []uint64 {
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

// Restore decodes a Marshal or MarshalCheckpoint encoding. Message bodies alias b: keep it
// unchanged. It returns an error, never panics, on anything Marshal does not produce.
func Restore(b []byte) (*State, error) {
	s := New()
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != snapshotVersion {
		return nil, ErrVersion
	}
	flags := d.enum(snapNoBodies)
	bodies := flags&snapNoBodies == 0
	s.cfg = d.config()
	s.index = d.uvarint()
	s.now = d.varint()
	s.started = d.bool()
	const minMsg = 4 // the fewest bytes a message takes
	readMsg := func() msg {
		m := msg{id: d.uvarint(), size: d.uvarint(), expiry: d.varint(), count: d.uint32()}
		if bodies {
			m.body = d.bytes()
		}
		if d.err == nil {
			if m.id == 0 || m.id > s.index {
				d.fail(fmt.Errorf("%w: message id %d outside 1..%d", ErrInvalid, m.id, s.index))
			} else if !s.live.add(m.id) {
				d.fail(fmt.Errorf("%w: message id %d held twice", ErrInvalid, m.id))
			}
		}
		return m
	}
	for _, r := range []*ring[msg]{&s.returns, &s.ready} {
		n := d.length(minMsg)
		for range n {
			m := readMsg()
			if d.err != nil {
				break
			}
			r.push(m)
			s.readyBytes += m.size
		}
	}
	n := d.length(8)
	for range n {
		c := &consumer{key: d.key(), checked: map[uint64]msg{}}
		c.status = consumerStatus(d.enum(byte(statusGet)))
		c.mode = CreditMode(d.enum(byte(Credited)))
		c.credit = d.uint32()
		c.priority = d.int32()
		flags := d.enum(7)
		c.excl, c.noAck, c.suspected = flags&1 != 0, flags&2 != 0, flags&4 != 0
		c.attached = d.uvarint()
		c.served = d.uvarint()
		k := d.length(minMsg)
		for range k {
			m := readMsg()
			if d.err != nil {
				break
			}
			c.checked[m.id] = m
			s.unacked++
			s.unackedBytes += m.size
		}
		if d.err != nil {
			break
		}
		if _, dup := s.consumers[c.key]; dup {
			d.fail(fmt.Errorf("%w: consumer %v twice", ErrInvalid, c.key))
			break
		}
		if (c.status == statusGet) != (c.key.Tag == "") {
			d.fail(fmt.Errorf("%w: consumer %v with status %d", ErrInvalid, c.key, c.status))
			break
		}
		s.consumers[c.key] = c
		if c.status == statusActive || c.status == statusWaiting {
			s.order = append(s.order, c)
		}
	}
	s.attachSeq = d.uvarint()
	s.serveSeq = d.uvarint()
	n = d.length(2)
	for range n {
		p, next := d.uvarint(), d.uvarint()
		if d.err != nil {
			break
		}
		s.enqueuers[p] = next
	}
	n = d.length(minMsg + 1)
	for range n {
		m := readMsg()
		r := Reason(d.enum(byte(ReasonDeliveryLimit)))
		if d.err != nil {
			break
		}
		s.dlx[m.id] = deadMsg{m: m, reason: r}
		s.dlxBytes += m.size
	}
	s.blocked = d.bool()
	s.lastActive = d.varint()
	s.expiredSent = d.bool()
	s.timerAt = d.varint()
	s.cursor = d.uvarint()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("restoring a quorum queue snapshot: %w", d.err)
	}
	// The attach order must be the order it is written in (ascending attach numbers).
	if !slices.IsSortedFunc(s.order, compareConsumers) {
		return nil, fmt.Errorf("restoring a quorum queue snapshot: %w: consumers out of order", ErrInvalid)
	}
	return s, nil
}
