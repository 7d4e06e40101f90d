package server

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Streams (x-queue-type: stream): an append-only log of messages with offsets, kept in the store
// under the stream's own keys (storage/keys_stream.go), read by any number of consumers each from
// its own position, and trimmed only by retention, a whole segment at a time.
//
// Appending. publishFrom gives the message the next offset and adds its entry to the current
// commit group with sync (commit.go): the publisher's confirm waits for that group's fsync, and
// many publishers share one. The entries a stream adds to one commit group form a chunk (as
// osiris writes a chunk per batch of writes); "last" is the first offset of the newest
// committed chunk. When a chunk starts and the segment being appended to holds at least
// x-stream-max-segment-size-bytes, the stream rolls: the segment is sealed (its metadata records
// its end, bytes and last timestamp) and a new one starts, and retention drops the oldest
// sealed segments, whole, while the stream is over x-max-length-bytes or their newest entry is
// older than x-max-age; all in the same batch as the entry, so a crash leaves the stream
// consistent. Entries become readable when their group is applied (chunkCommitted advances
// committed and wakes the readers).
//
// Reading. Every consumer has a reader goroutine (stream_reader.go) with a cursor: it reads a
// batch of committed entries from the store with no stream lock held (so readers never block
// the appending publishers, and Pebble serves the read while writes go on), and hands them to
// the consumer's target while it has credit (an AMQP consumer's prefetch, required by RabbitMQ
// for streams). An ack only gives credit back; nothing is removed. Memory is one batch per
// consumer plus what its credit lets it hold unacked, whatever the stream's length.
//
// Recovery is the stream's own (stream_recover.go): its constructor reads its segments' metadata
// and scans the newest segment before the queue is used; the seam's recover* methods have
// nothing to do (no stream message is under the broker's message keys).
//
// Concurrency: s.mu guards the log's state (offsets, segments, consumers); it is held briefly
// by publishers (while adding to the commit group, so s.mu comes before committer.mu), by the
// commit callback and by readers looking up what they may read. A reader delivers holding its
// consumer's dmu (after s.mu is released), which serialises the target's calls (deliver,
// queueDeleted) as a queue's lock does for a classic queue.
type streamQueue struct {
	*queueMeta
	argLimits streamLimits
	limits    atomic.Pointer[streamLimits]

	readers sync.WaitGroup // the consumers' reader goroutines (stream_reader.go) and compaction's

	compaction streamCompaction // key-based compaction (stream_compact.go)

	mu struct {
		sync.Mutex
		next      uint64 // the offset the next entry gets
		committed uint64 // entries below it are applied to the store: readers read up to it
		lastChunk uint64 // first offset of the newest committed chunk ("last")
		hasChunk  bool
		// chunkBatch is the batch of the commit group the current chunk is written in: an
		// append to another batch starts a new chunk. chunk is that chunk.
		chunkBatch *storage.Batch
		chunk      *streamChunk
		segs       []streamSegment // oldest first; the last is the one appended to
		consumers  []*streamConsumer
		deleted    bool
	}
}

// streamChunk is the entries a stream added to one commit group: [first, end).
type streamChunk struct{ first, end uint64 }

// streamSegment is one segment of a stream: entries [first, end).
type streamSegment struct {
	num     uint64
	first   uint64
	end     uint64
	firstTs int64 // arrival (Unix ms) of its first entry: the timestamp index
	lastTs  int64 // arrival of its newest entry (x-max-age)
	bytes   int64 // keys and values of its entries

	compacted bool  // key-based compaction has been through it (stream_compact.go)
	removed   int64 // entries compaction removed from it
}

// Entry values: a flags byte; if streamFiltered, the message's x-stream-filter-value (a length
// byte and up to 255 bytes); then the message record (msgstore.go).
const (
	streamChunkStart = 1 // the entry starts a chunk
	streamFiltered   = 2 // the entry carries a filter value
)

// encodeStreamEntry builds an entry's value for msg: the record is encoded straight into it
// unless another queue had it built already.
func encodeStreamEntry(msg *message) []byte {
	filter, _ := msg.headers["x-stream-filter-value"].(string)
	if len(filter) > 255 {
		filter = "" // a filter value is a short string; a longer one does not filter
	}
	head := 1
	if filter != "" {
		head += 1 + len(filter)
	}
	var val []byte
	if msg.rec != nil {
		val = make([]byte, head, head+len(msg.rec))
		val = append(val, msg.rec...)
	} else {
		val = appendMessage(make([]byte, head, head+messageRecordSize(msg)), msg)
	}
	if filter != "" {
		val[0], val[1] = streamFiltered, byte(len(filter))
		copy(val[2:], filter)
	}
	return val
}

// parseStreamEntry splits an entry's value into its flags, filter value and message record.
func parseStreamEntry(v []byte) (flags byte, filter, rec []byte, err error) {
	if len(v) < 1 {
		return 0, nil, nil, errBadRecord
	}
	flags, rec = v[0], v[1:]
	if flags&streamFiltered != 0 {
		if len(rec) < 1 || len(rec) < 1+int(rec[0]) {
			return 0, nil, nil, errBadRecord
		}
		filter, rec = rec[1:1+int(rec[0])], rec[1+int(rec[0]):]
	}
	return flags, filter, rec, nil
}

// streamEntryTime is the arrival time (Unix ms) of an entry's message, if its record has one.
func streamEntryTime(v []byte) (int64, bool) {
	_, _, rec, err := parseStreamEntry(v)
	if err != nil || len(rec) < 10 || rec[0] != msgRecordV2 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(rec[2:])), true
}

// Segment metadata: version, first offset, first timestamp; sealed segments add their end,
// bytes and last timestamp.
func (sg *streamSegment) encode(sealed bool) []byte {
	b := make([]byte, 0, 1+8*6)
	b = append(b, storage.RecordVersion)
	b = binary.BigEndian.AppendUint64(b, sg.first)
	b = binary.BigEndian.AppendUint64(b, uint64(sg.firstTs))
	if sealed {
		b = binary.BigEndian.AppendUint64(b, sg.end)
		b = binary.BigEndian.AppendUint64(b, uint64(sg.bytes))
		b = binary.BigEndian.AppendUint64(b, uint64(sg.lastTs))
		if sg.compacted {
			b = binary.BigEndian.AppendUint64(b, uint64(sg.removed))
		}
	}
	return b
}

// decodeStreamSegment reads segment metadata; sealed says whether it has the sealed fields.
func decodeStreamSegment(num uint64, b []byte) (sg streamSegment, sealed bool, err error) {
	if len(b) != 17 && len(b) != 41 && len(b) != 49 || b[0] != storage.RecordVersion {
		return sg, false, fmt.Errorf("stream segment %d: malformed metadata (%d bytes)", num, len(b))
	}
	sg.num = num
	sg.first = binary.BigEndian.Uint64(b[1:])
	sg.firstTs = int64(binary.BigEndian.Uint64(b[9:]))
	sg.end, sg.lastTs = sg.first, sg.firstTs
	if len(b) >= 41 {
		sg.end = binary.BigEndian.Uint64(b[17:])
		sg.bytes = int64(binary.BigEndian.Uint64(b[25:]))
		sg.lastTs = int64(binary.BigEndian.Uint64(b[33:]))
		if len(b) == 49 {
			sg.compacted, sg.removed = true, int64(binary.BigEndian.Uint64(b[41:]))
		}
		return sg, true, nil
	}
	return sg, false, nil
}

// newStreamQueue is the stream type's constructor: it recovers the stream from its keys (nothing
// for a new one).
func newStreamQueue(m *queueMeta, _ queueLimits) queueImpl {
	s := &streamQueue{queueMeta: m}
	lim, err := streamArgLimits(m.v, m.name, m.args)
	if err != nil { // validated at declare; a stored record cannot fail
		m.v.srv.log.Error("stream arguments", "vhost", m.v.name, "queue", m.name, "err", err)
	}
	s.argLimits = lim
	s.limits.Store(&s.argLimits)
	if err := s.recoverLog(); err != nil {
		m.v.srv.log.Error("recovering stream", "vhost", m.v.name, "queue", m.name, "err", err)
	}
	return s
}

var _ queueImpl = (*streamQueue)(nil)

func (s *streamQueue) lim() *streamLimits { return s.limits.Load() }

// --- publishing ---

func (s *streamQueue) publish(msg *message) (publishResult, *commitGroup) {
	res, g, _ := s.publishFrom(msg, nil, nil)
	return res, g
}

// publishFrom appends msg. The group returned is the one its entry is written in (with sync):
// the publisher's confirm waits for it.
func (s *streamQueue) publishFrom(msg *message, _ publishSource, _ *qentry) (publishResult, *commitGroup, <-chan struct{}) {
	val := encodeStreamEntry(msg)
	var started *streamChunk
	var rolled uint64 // the segment a roll started (0: none, or the first)
	s.mu.Lock()
	if s.mu.deleted {
		s.mu.Unlock()
		return gone, nil, nil
	}
	g := s.v.srv.commit.add(true, func(b *storage.Batch) {
		if b != s.mu.chunkBatch {
			s.mu.chunkBatch = b
			n := len(s.mu.segs)
			if n == 0 || s.mu.segs[n-1].end > s.mu.segs[n-1].first && s.mu.segs[n-1].bytes >= s.lim().segBytes {
				s.rollLocked(b, msg.arrived)
				rolled = s.mu.segs[len(s.mu.segs)-1].num
			}
			val[0] |= streamChunkStart
			started = &streamChunk{first: s.mu.next}
			s.mu.chunk = started
		}
		off := s.mu.next
		s.mu.next++
		sg := &s.mu.segs[len(s.mu.segs)-1]
		key := storage.StreamEntryKey(s.id, sg.num, off)
		b.Set(key, val)
		sg.end = off + 1
		sg.bytes += int64(len(key) + len(val))
		sg.lastTs = msg.arrived
		s.mu.chunk.end = off + 1
	})
	s.mu.Unlock()
	if started != nil {
		s.v.srv.commit.onCommit(g, func(err error) { s.chunkCommitted(started, err) })
	}
	if rolled > 0 && s.lim().compact {
		s.v.srv.commit.onCommit(g, func(err error) {
			if err == nil {
				s.sealed(rolled)
			}
		})
	}
	return published, g, nil
}

// rollLocked seals the segment appended to (if any), starts the next one with the entry about
// to be written (arrived at ts), and applies retention; its writes go into b, the entry's batch.
func (s *streamQueue) rollLocked(b *storage.Batch, ts int64) {
	num := uint64(0)
	if n := len(s.mu.segs); n > 0 {
		a := &s.mu.segs[n-1]
		b.Set(storage.StreamSegmentKey(s.id, a.num), a.encode(true))
		num = a.num + 1
	}
	sg := streamSegment{num: num, first: s.mu.next, end: s.mu.next, firstTs: ts, lastTs: ts}
	s.mu.segs = append(s.mu.segs, sg)
	b.Set(storage.StreamSegmentKey(s.id, num), sg.encode(false))
	s.retainLocked(b, ts)
}

// retainLocked drops the oldest segments, whole, as osiris does at a roll: while the stream's
// segments hold more than max-length-bytes, or the oldest one's newest entry is older than
// max-age (now: Unix ms). The segment appended to is never dropped.
func (s *streamQueue) retainLocked(b *storage.Batch, now int64) {
	drop := retainSegments(s.mu.segs, s.lim(), now)
	if drop == 0 {
		return
	}
	from, to := s.mu.segs[0].num, s.mu.segs[drop].num
	start, end := storage.StreamSegmentRange(s.id, from, to)
	b.DeleteRange(start, end)
	start, end = storage.StreamSegmentMetaRange(s.id, from, to)
	b.DeleteRange(start, end)
	s.mu.segs = append(s.mu.segs[:0], s.mu.segs[drop:]...)
}

// retainSegments returns how many of segs, oldest first, retention drops.
func retainSegments(segs []streamSegment, lim *streamLimits, now int64) int {
	var total int64
	for _, sg := range segs {
		total += sg.bytes
	}
	drop := 0
	for drop < len(segs)-1 {
		sg := segs[drop]
		if lim.maxBytes >= 0 && total > lim.maxBytes || lim.maxAge > 0 && sg.lastTs < now-lim.maxAge {
			total -= sg.bytes
			drop++
			continue
		}
		break
	}
	return drop
}

// chunkCommitted runs when the group holding chunk c is applied: its entries are readable.
func (s *streamQueue) chunkCommitted(c *streamChunk, err error) {
	if err != nil {
		s.v.srv.log.Error("writing stream entries failed", "vhost", s.v.name, "queue", s.name, "first", c.first, "err", err)
	}
	s.mu.Lock()
	if c.end > s.mu.committed {
		s.mu.committed = c.end
	}
	if err == nil && (!s.mu.hasChunk || c.first > s.mu.lastChunk) {
		s.mu.lastChunk, s.mu.hasChunk = c.first, true
	}
	for _, sc := range s.mu.consumers {
		sc.wakeUp()
	}
	s.mu.Unlock()
}

func (s *streamQueue) dispatchCount() uint64                     { return 0 }
func (s *streamQueue) flowCheckStall(mark uint64) (uint64, bool) { return mark, true }

// --- counts ---

// firstLocked is the offset of the oldest entry kept.
func (s *streamQueue) firstLocked() uint64 {
	if len(s.mu.segs) == 0 {
		return s.mu.next
	}
	return s.mu.segs[0].first
}

func (s *streamQueue) lenLocked() int64 {
	n := int64(s.mu.committed - min(s.firstLocked(), s.mu.committed))
	for _, sg := range s.mu.segs {
		n -= sg.removed // key-based compaction's gaps
	}
	return n
}

func (s *streamQueue) bytesLocked() (n int64) {
	for _, sg := range s.mu.segs {
		n += sg.bytes
	}
	return n
}

// counts: a stream's messages are those it keeps (acks remove none).
func (s *streamQueue) counts() (ready, consumers uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint32(s.lenLocked()), uint32(len(s.mu.consumers))
}

// declared: RabbitMQ 3.10.8 answers a stream's declare with a message count that its metrics
// refresh every few seconds and always 0 consumers; Warren's count is the current one.
func (s *streamQueue) declared() (ready, consumers uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint32(s.lenLocked()), 0
}

func (s *streamQueue) lengths() (ready, unacked int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lenLocked(), 0
}

// info: as RabbitMQ shows a stream, its messages are all ready (messages_unacknowledged 0).
func (s *streamQueue) info(*unackedSums) QueueInfo {
	qi := s.baseInfo()
	lim := s.lim()
	qi.Policy, qi.OperatorPolicy = policyName(lim.policy), policyName(lim.opPolicy)
	qi.PolicyDefinition = effectiveDefinition(lim.policy, lim.opPolicy)
	s.mu.Lock()
	qi.Ready = s.lenLocked()
	qi.ReadyBytes = s.bytesLocked()
	qi.PagedOut, qi.PagedOutBytes = qi.Ready, qi.ReadyBytes
	qi.Persistent, qi.PersistentBytes = qi.Ready, qi.ReadyBytes
	qi.Consumers = len(s.mu.consumers)
	s.mu.Unlock()
	return qi
}

func (s *streamQueue) consumerInfos() []ConsumerInfo {
	s.mu.Lock()
	cs := append([]*streamConsumer(nil), s.mu.consumers...)
	s.mu.Unlock()
	out := make([]ConsumerInfo, 0, len(cs))
	for _, c := range cs {
		ci := ConsumerInfo{Vhost: s.v.name, Queue: s.name, Tag: c.sub.tag, AckRequired: !c.sub.noAck,
			Exclusive: c.sub.exclusive, Arguments: c.sub.args}
		c.sub.target.describe(&ci)
		out = append(out, ci)
	}
	return out
}

// --- what a stream does not do ---

// get is never reached from AMQP (basic.get is refused: streamRefuses); management's get finds
// nothing.
func (s *streamQueue) get(bool) (*qentry, uint32) { return nil, 0 }

// settle: an ack gives the consumer credit back (the channel did) and removes nothing.
func (s *streamQueue) settle([]*qentry) {}

// reject and requeue are refused over AMQP (streamRefuses); a closed channel's unacked
// deliveries come here and stay in the stream, as every entry does.
func (s *streamQueue) reject([]*qentry)  {}
func (s *streamQueue) requeue([]*qentry) {}

// purge is refused over AMQP (streamRefuses).
func (s *streamQueue) purge() uint32 { return 0 }

// pageOut: a stream keeps no messages in memory.
func (s *streamQueue) pageOut() (int, int64, *commitGroup) { return 0, 0, nil }

// The recover* methods have nothing to do: the stream recovered itself (stream_recover.go).
func (s *streamQueue) recoverMessage(seq uint64, _ []byte, _ int64, _ bool) error {
	return fmt.Errorf("stream %q: unexpected message record %d", s.name, seq)
}
func (s *streamQueue) recoverDelivered(uint64)  {}
func (s *streamQueue) recovered(bool)           {}
func (s *streamQueue) markClean(*storage.Batch) {}
func (s *streamQueue) start()                   { s.compactRecovered() }

// --- lifecycle ---

// stop stops the readers (the server stops; v.mu held). Readers never wait for a lock held under
// v.mu (stream_reader.go), so waiting for them here is safe.
func (s *streamQueue) stop() {
	s.compaction.stopping.Store(true)
	s.mu.Lock()
	cs := s.mu.consumers
	s.mu.Unlock()
	for _, c := range cs {
		c.halt()
	}
	s.readers.Wait()
}

// markDeleted drops the stream: its entries and metadata go with two range deletes, its readers
// stop and its consumers are told. The caller holds v.mu.
func (s *streamQueue) markDeleted(ifUnused, ifEmpty bool) (uint32, []deliveryTarget, error) {
	s.mu.Lock()
	if ifEmpty && s.lenLocked() > 0 {
		s.mu.Unlock()
		return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' not empty", s.name, s.v.name)
	}
	if ifUnused && len(s.mu.consumers) > 0 {
		s.mu.Unlock()
		return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' in use", s.name, s.v.name)
	}
	n := s.lenLocked()
	s.mu.deleted = true
	cs := s.mu.consumers
	s.mu.consumers = nil
	s.mu.segs = nil
	s.v.srv.commit.add(false, func(b *storage.Batch) {
		start, end := storage.StreamRange(s.id)
		b.DeleteRange(start, end)
		start, end = storage.StreamMetaRange(s.id)
		b.DeleteRange(start, end)
	})
	s.mu.Unlock()
	var cancelled []deliveryTarget
	for _, c := range cs {
		c.halt()
	}
	s.readers.Wait()
	for _, c := range cs {
		c.dmu.Lock()
		if c.sub.target.queueDeleted() {
			cancelled = append(cancelled, c.sub.target)
		}
		c.dmu.Unlock()
	}
	return uint32(n), cancelled, nil
}

// --- policies ---

// setPolicy installs policy p and operator policy op at declare or recovery.
func (s *streamQueue) setPolicy(p, op *policy) {
	s.limits.Store(streamEffectiveLimits(s.argLimits, s.args, p, op))
}

// applyPolicy takes the policies that now match; retention applies them at the next roll.
func (s *streamQueue) applyPolicy() {
	p := s.v.srv.pol.match(s.v.name, s.name, true)
	op := s.v.srv.pol.matchOperator(s.v.name, s.name)
	s.limits.Store(streamEffectiveLimits(s.argLimits, s.args, p, op))
}

// streamEffectiveLimits combines a stream's arguments with the policy keys RabbitMQ lets policies
// set on streams (max-length-bytes, max-age, stream-max-segment-size-bytes): an argument wins; of
// a policy and an operator policy, the operator's max-length-bytes wins when lower.
func streamEffectiveLimits(arg streamLimits, args amqp.Table, p, op *policy) *streamLimits {
	lim := arg
	lim.policy, lim.opPolicy = p, op
	for _, pp := range []*policy{p, op} {
		if pp == nil {
			continue
		}
		if n, ok := pp.Definition["max-length-bytes"].(int64); ok {
			if _, set := args["x-max-length-bytes"]; !set && (pp == p || lim.maxBytes < 0 || n < lim.maxBytes) {
				lim.maxBytes = n
			}
		}
		if pp != p {
			continue
		}
		if str, ok := pp.Definition["max-age"].(string); ok {
			if _, set := args["x-max-age"]; !set {
				if ms, valid, _ := parseStreamDuration(str); valid {
					lim.maxAge = ms
				}
			}
		}
		applyCompactionPolicy(&lim, args, pp)
		if n, ok := pp.Definition["stream-max-segment-size-bytes"].(int64); ok {
			if _, set := args["x-stream-max-segment-size-bytes"]; !set && n >= 0 {
				lim.segBytes = n
			}
		}
	}
	return &lim
}
