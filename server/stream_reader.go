package server

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// A stream's consumers: each subscription has a reader goroutine with a cursor (the next offset
// to hand over). The reader reads committed entries from the store in batches with no lock held,
// then delivers them holding its consumer's dmu while the target takes them (credit); it sleeps
// until woken by new entries (chunkCommitted), freed credit (kick) or its end (halt). A reader
// takes s.mu (briefly, to see what it may read), dmu and, inside the target's deliver, the
// channel's lock; it never waits for v.mu or a queue's lock, so its owner may wait for it while
// holding v.mu (stop, markDeleted).

// Reader batches: up to streamReadBatch entries or streamReadBytes bytes of values per store read.
const (
	streamReadBatch = 256
	streamReadBytes = 1 << 20
)

// streamConsumer is one subscription of a stream and its reader.
type streamConsumer struct {
	s    *streamQueue
	sub  *subscription
	wake chan struct{} // 1-buffered: look again
	quit chan struct{} // closed by halt
	once sync.Once

	// dmu serialises the target's calls (deliver, queueDeleted) and guards gone.
	dmu  sync.Mutex
	gone bool

	// Filtering (x-stream-filter, x-stream-match-unfiltered; RabbitMQ 3.13): only entries with one
	// of filters as their x-stream-filter-value, and with matchUnfiltered those without one. Set
	// before the reader starts.
	filters         []string
	matchUnfiltered bool

	// seekTs, if seek, is the timestamp (Unix ms) the consumer starts from: the reader finds its
	// offset first (a scan of a segment, off the channel's read loop). Set before the reader starts.
	seek   bool
	seekTs int64

	// rawProps: the target wants the stored properties without the x-stream-offset header
	// (rawStreamProps). Set before the reader starts.
	rawProps bool

	// Owned by the reader goroutine.
	cursor uint64
	buf    []*qentry // read, not yet delivered
	run    dispatchRun
	exch   string // the last exchange and routing key decoded, reused while they repeat
	rkey   string
}

func (c *streamConsumer) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// halt ends the reader and stops deliveries to the target.
func (c *streamConsumer) halt() {
	c.once.Do(func() { close(c.quit) })
	c.dmu.Lock()
	c.gone = true
	c.dmu.Unlock()
}

// addConsumer checks the consume as RabbitMQ 3.10.8 does for a stream (x-stream-offset, then
// x-priority, then a prefetch count, then no-ack), finds where the consumer starts and starts its
// reader.
func (s *streamQueue) addConsumer(sub *subscription, onAdded func()) error {
	track, void, err := streamTracking(s.v, s.name, sub.tag, sub.args)
	if err != nil {
		return err
	}
	start := streamStart{kind: 'f'} // x-stream-offset void: first, unless an offset is stored
	if !void {
		if start, err = parseStreamOffset(s.v, s.name, sub.args, time.Now()); err != nil {
			return err
		}
	}
	qdesc := fmt.Sprintf("queue '%s' in vhost '%s'", s.name, s.v.name)
	if _, ok := sub.args["x-priority"]; ok {
		return amqp.Errorf(amqp.PreconditionFailed, "invalid arg 'x-priority' for %s of queue type rabbit_stream_queue", qdesc)
	}
	if sub.prefetch == 0 {
		return amqp.Errorf(amqp.PreconditionFailed, "consumer prefetch count is not set for '%s'", qdesc)
	}
	if sub.noAck {
		return amqp.Errorf(amqp.NotImplemented, "automatic acknowledgement not supported by stream queues %s", qdesc)
	}
	filters, matchUnfiltered, err := parseStreamFilter(s.v, s.name, sub.args)
	if err != nil {
		return err
	}
	if track {
		// The stored offset wins over x-stream-offset (stream_track.go): resume right after it.
		t := &streamTracker{s: s, key: storage.StreamOffsetKey(s.id, sub.tag)}
		stored, found, err := s.v.srv.readStreamRef(t.key)
		if err != nil {
			return amqp.Errorf(amqp.InternalError, "reading the offset stored for consumer '%s' on queue '%s' in vhost '%s': %v", sub.tag, s.name, s.v.name, err)
		}
		if found {
			t.stored, t.has = stored, true
			start = streamStart{kind: 'o', offset: int64(min(stored, 1<<63-2)) + 1}
		}
		sub.track = t
	}
	var cursor uint64
	c := &streamConsumer{s: s, sub: sub, wake: make(chan struct{}, 1), quit: make(chan struct{}),
		filters: filters, matchUnfiltered: matchUnfiltered, seek: start.kind == 't', seekTs: start.ts}
	if _, ok := sub.target.(interface{ rawStreamProps() }); ok {
		c.rawProps = true
	}
	s.mu.Lock()
	if s.mu.deleted {
		s.mu.Unlock()
		return s.v.errNoQueue(s.name)
	}
	first := s.firstLocked()
	switch start.kind {
	case 'f':
		cursor = first
	case 'l':
		cursor = s.mu.next
		if s.mu.hasChunk && s.mu.lastChunk >= first {
			cursor = s.mu.lastChunk
		}
	case 'n', 't': // 't': until the reader has found the timestamp's offset
		cursor = s.mu.next
	case 'o':
		// Past the end, the consumer waits for that offset, as in RabbitMQ.
		cursor = uint64(start.offset)
		if start.offset < 0 || cursor < first {
			cursor = first
		}
	}
	c.cursor = cursor
	onAdded()
	s.mu.consumers = append(s.mu.consumers, c)
	s.readers.Add(1)
	s.mu.Unlock()
	go c.read()
	c.wakeUp()
	return nil
}

// removeConsumer stops sub's reader and waits for it (no lock is held).
func (s *streamQueue) removeConsumer(sub *subscription) bool {
	s.mu.Lock()
	var c *streamConsumer
	for i, x := range s.mu.consumers {
		if x.sub == sub {
			c = x
			s.mu.consumers = slices.Delete(s.mu.consumers, i, i+1)
			break
		}
	}
	s.mu.Unlock()
	if c != nil {
		c.halt()
	}
	return false // a stream is never auto-delete
}

// kick wakes the readers of subs (their targets freed credit), or all of them if subs is nil.
func (s *streamQueue) kick(subs []*subscription, _ *writeBatch) {
	s.mu.Lock()
	for _, c := range s.mu.consumers {
		if subs == nil || slices.Contains(subs, c.sub) {
			c.wakeUp()
		}
	}
	s.mu.Unlock()
}

// readable returns the segment holding the cursor (moved up to the oldest entry kept if
// retention dropped its segment) and the end of what may be read; ok false if the stream is
// gone.
func (s *streamQueue) readable(cursor uint64) (seg, from, upto uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.deleted || len(s.mu.segs) == 0 {
		return 0, cursor, s.mu.committed, !s.mu.deleted
	}
	segs := s.mu.segs
	if cursor < segs[0].first {
		cursor = segs[0].first
	}
	i, _ := slices.BinarySearchFunc(segs, cursor, func(sg streamSegment, off uint64) int {
		switch {
		case sg.end <= off:
			return -1
		case sg.first > off:
			return 1
		}
		return 0
	})
	if i == len(segs) {
		i--
	}
	return segs[i].num, cursor, s.mu.committed, true
}

// read is the reader goroutine.
func (c *streamConsumer) read() {
	defer c.s.readers.Done()
	if c.seek {
		off, err := c.s.offsetAt(c.seekTs)
		if err != nil {
			c.s.v.srv.log.Error("finding a stream's offset by timestamp", "vhost", c.s.v.name, "queue", c.s.name, "err", err)
		} else {
			c.cursor = off
		}
	}
	for {
		select {
		case <-c.quit:
			return
		case <-c.wake:
		}
		for c.deliverBuffered() {
			seg, from, upto, ok := c.s.readable(c.cursor)
			if !ok || from >= upto {
				break
			}
			c.cursor = from
			if err := c.fill(seg, upto); err != nil {
				c.s.v.srv.log.Error("reading stream", "vhost", c.s.v.name, "queue", c.s.name, "offset", c.cursor, "err", err)
				break
			}
			select {
			case <-c.quit:
				return
			default:
			}
		}
	}
}

// deliverBuffered hands the buffered entries to the target while it takes them; it reports
// whether the buffer is empty (more may be read).
func (c *streamConsumer) deliverBuffered() bool {
	if len(c.buf) == 0 {
		return true
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.gone {
		return false
	}
	c.run = dispatchRun{}
	n := 0
	if t := c.sub.track; t != nil {
		for n < len(c.buf) {
			off := c.buf[n].seq
			t.delivering(off)
			if !c.sub.target.deliver(c.buf[n], &c.run) {
				t.undeliver(off)
				break
			}
			c.buf[n] = nil
			n++
		}
	} else {
		for n < len(c.buf) && c.sub.target.deliver(c.buf[n], &c.run) {
			c.buf[n] = nil
			n++
		}
	}
	if f, ok := c.sub.target.(batchFlusher); ok && n > 0 {
		f.flushBatch() // the stream protocol front end cuts its chunk here
	}
	c.buf = c.buf[n:]
	if len(c.buf) == 0 {
		c.buf = c.buf[:0:0]
		return true
	}
	return false
}

// fill reads the next batch of entries, from the cursor (in segment seg) up to upto: at most
// streamReadBatch entries to deliver, and at most streamReadBytes of values scanned (entries a
// filter skips count there too). If it reaches upto, the cursor is upto.
func (c *streamConsumer) fill(seg, upto uint64) error {
	s := c.s
	start := storage.StreamEntryKey(s.id, seg, c.cursor)
	_, end := storage.StreamRange(s.id)
	var bytesRead int
	stopped := false
	if cap(c.buf) == 0 {
		c.buf = make([]*qentry, 0, streamReadBatch)
	}
	err := s.v.srv.store.ScanRange(start, end, func(k, v []byte) error {
		_, _, off, err := storage.ParseStreamEntryKey(k)
		if err != nil {
			return err
		}
		if off >= upto {
			return storage.ErrStop
		}
		if len(c.buf) >= streamReadBatch || bytesRead >= streamReadBytes {
			stopped = true
			return storage.ErrStop
		}
		bytesRead += len(v)
		c.cursor = off + 1
		if !c.wants(v) {
			return nil
		}
		e, err := c.decode(off, v)
		if err != nil {
			return fmt.Errorf("entry %d: %w", off, err)
		}
		c.buf = append(c.buf, e)
		return nil
	})
	if err == nil && !stopped {
		c.cursor = upto // read to upto (failed writes and retention leave gaps)
	}
	return err
}

// wants reports whether the consumer's filter lets the entry with value v through.
func (c *streamConsumer) wants(v []byte) bool {
	if c.filters == nil {
		return true
	}
	_, filter, _, err := parseStreamEntry(v)
	if err != nil {
		return true // decode reports it
	}
	if filter == nil {
		return c.matchUnfiltered
	}
	for _, f := range c.filters {
		if f == string(filter) {
			return true
		}
	}
	return false
}

// streamEntry is a delivered stream message and its entry, allocated together.
type streamEntry struct {
	e qentry
	m message
}

// streamOffsetHeader is the x-stream-offset header field as the table encodes it, without the
// value: name (shortstr) and type 'l' (a signed 64-bit integer).
var streamOffsetHeader = append(append([]byte{byte(len("x-stream-offset"))}, "x-stream-offset"...), 'l')

// decode makes the entry at offset off from its stored value: the message with an
// x-stream-offset header added to its properties (unless rawProps).
func (c *streamConsumer) decode(off uint64, v []byte) (*qentry, error) {
	_, _, rec, err := parseStreamEntry(v)
	if err != nil {
		return nil, err
	}
	hdr, propsLen, err := messageHeader(rec)
	if err != nil {
		return nil, err
	}
	se := new(streamEntry)
	m := &se.m
	m.persistent = rec[1]&recPersistent != 0
	p := 2
	if rec[0] == msgRecordV2 {
		m.arrived = int64(binary.BigEndian.Uint64(rec[2:]))
		p += 8
	}
	ex := rec[p+1 : p+1+int(rec[p])]
	p += 1 + int(rec[p])
	rk := rec[p+1 : p+1+int(rec[p])]
	if string(ex) != c.exch {
		c.exch = string(ex)
	}
	if string(rk) != c.rkey {
		c.rkey = string(rk)
	}
	m.exchange, m.routingKey = c.exch, c.rkey
	props, body := rec[hdr:hdr+propsLen], rec[hdr+propsLen:]
	var data []byte
	if c.rawProps {
		data = append(make([]byte, 0, len(props)+len(body)), props...)
	} else {
		data = make([]byte, 0, len(props)+len(streamOffsetHeader)+8+4+len(body))
		data, err = appendStreamOffsetProps(data, props, off)
		if err != nil {
			return nil, err
		}
	}
	n := len(data)
	data = append(data, body...)
	m.props, m.body = data[:n:n], data[n:]
	se.e = qentry{msg: m, seq: off, stored: true}
	return &se.e, nil
}

// appendStreamOffsetProps appends to dst the content-header properties props with the header
// x-stream-offset = off added at the end of the headers table (which it creates if absent).
func appendStreamOffsetProps(dst, props []byte, off uint64) ([]byte, error) {
	if len(props) < 2 {
		props = []byte{0, 0}
	}
	flags := binary.BigEndian.Uint16(props)
	if flags&1 != 0 {
		return nil, fmt.Errorf("%w: property flag continuation", errBadRecord)
	}
	// The headers table follows content-type and content-encoding (shortstrs), if present.
	p := 2
	for _, bit := range []uint16{1 << 15, 1 << 14} {
		if flags&bit != 0 {
			if p >= len(props) || p+1+int(props[p]) > len(props) {
				return nil, fmt.Errorf("%w: truncated properties", errBadRecord)
			}
			p += 1 + int(props[p])
		}
	}
	const headersBit = 1 << 13
	field := binary.BigEndian.AppendUint64(append([]byte(nil), streamOffsetHeader...), off)
	dst = binary.BigEndian.AppendUint16(dst, flags|headersBit)
	dst = append(dst, props[2:p]...)
	if flags&headersBit != 0 {
		if p+4 > len(props) {
			return nil, fmt.Errorf("%w: truncated headers", errBadRecord)
		}
		n := int(binary.BigEndian.Uint32(props[p:]))
		if p+4+n > len(props) {
			return nil, fmt.Errorf("%w: truncated headers", errBadRecord)
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(n+len(field)))
		dst = append(dst, props[p+4:p+4+n]...)
		p += 4 + n
	} else {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(field)))
	}
	dst = append(dst, field...)
	return append(dst, props[p:]...), nil
}

// offsetAt is the offset of the first entry that arrived at or after ts (Unix ms), or the next
// offset if none did. The segment index (each segment's first timestamp) picks where to start;
// the entries' own timestamps are read from there, with no lock held.
func (s *streamQueue) offsetAt(ts int64) (uint64, error) {
	s.mu.Lock()
	segs := slices.Clone(s.mu.segs)
	upto := s.mu.committed
	next := s.mu.next
	s.mu.Unlock()
	if len(segs) == 0 {
		return next, nil
	}
	i := 0
	for j := range segs {
		if segs[j].firstTs <= ts {
			i = j
		}
	}
	found := next
	start := storage.StreamEntryKey(s.id, segs[i].num, segs[i].first)
	_, end := storage.StreamRange(s.id)
	err := s.v.srv.store.ScanRange(start, end, func(k, v []byte) error {
		_, _, off, err := storage.ParseStreamEntryKey(k)
		if err != nil {
			return err
		}
		if off >= upto {
			return storage.ErrStop
		}
		if at, ok := streamEntryTime(v); ok && at >= ts {
			found = off
			return storage.ErrStop
		}
		return nil
	})
	return found, err
}
