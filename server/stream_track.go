package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Server-side offset tracking for AMQP 0-9-1 stream consumers (as LavinMQ has it; RabbitMQ has
// it only over the stream protocol). A consumer opts in on basic.consume with x-stream-offset set
// to AMQP void (null), or with x-stream-automatic-offset-tracking true (a bool, or the string
// "true" as LavinMQ also takes); its consumer tag names the tracking reference, the same key as
// the stream protocol's store_offset/query_offset (storage.StreamOffsetKey), so either protocol
// sees the other's offsets.
//
// Where it starts: if an offset is stored for the tag, right after it (the stored offset wins
// over an explicit x-stream-offset, as in LavinMQ); otherwise from x-stream-offset, and from
// first for void.
//
// What is stored is the offset of the newest delivery below which every delivery to this
// consumer has been acked (basic.ack, multiple too): an ack out of order does not move it past
// an unacked delivery, so a restart redelivers what was not acked (at least once). The stored
// value is written with the commit group the ack lands in, without a sync of its own (the
// committer syncs unsynced writes within Options.SyncInterval, and at shutdown): one Set per
// tracker per commit group, however many acks the group takes (track.persist overwrites its own
// value while the group is still filling).

// streamTrackArg is the consume argument that asks for tracking with an explicit start.
const streamTrackArg = "x-stream-automatic-offset-tracking"

// streamTracking reads the tracking arguments of a consume on queue: whether the consumer is
// tracked, and whether x-stream-offset was void (start from first unless an offset is stored).
func streamTracking(v *vhost, queue, tag string, args amqp.Table) (track, void bool, err error) {
	x, has := args["x-stream-offset"]
	void = has && x == nil
	track = void
	if a, ok := args[streamTrackArg]; ok {
		switch t := a.(type) {
		case bool:
			track = track || t
		case string:
			switch t {
			case "true":
				track = true
			case "false":
			default:
				return false, false, amqp.Errorf(amqp.PreconditionFailed,
					"invalid arg '%s' for queue '%s' in vhost '%s': expected a boolean, got \"%s\"", streamTrackArg, queue, v.name, t)
			}
		default:
			return false, false, amqp.Errorf(amqp.PreconditionFailed,
				"invalid arg '%s' for queue '%s' in vhost '%s': {unacceptable_type,%s}", streamTrackArg, queue, v.name, amqp.FieldTypeName(a))
		}
	}
	if track && strings.HasPrefix(tag, "amq.ctag-") {
		return false, false, amqp.Errorf(amqp.PreconditionFailed,
			"server-side offset tracking on queue '%s' in vhost '%s' needs a consumer tag chosen by the client (it names the stored offset)", queue, v.name)
	}
	return track, void, nil
}

// streamTracker keeps one tracking consumer's offset.
type streamTracker struct {
	s   *streamQueue
	key []byte

	mu      sync.Mutex
	pending []trackedDelivery // delivered, oldest first, down to the oldest unacked one
	stored  uint64            // every delivery up to it is acked (valid if has)
	has     bool

	// Guarded by the committer's mu (set inside commit.add): the batch written to last and the
	// value slice it holds, overwritten while that batch is still the group being filled.
	batch *storage.Batch
	val   []byte
}

type trackedDelivery struct {
	off   uint64
	acked bool
}

// delivering records that off is about to be handed to the consumer (before the target takes
// it, so an ack cannot come first); undeliver takes it back if the target refused it.
func (t *streamTracker) delivering(off uint64) {
	t.mu.Lock()
	t.pending = append(t.pending, trackedDelivery{off: off})
	t.mu.Unlock()
}

func (t *streamTracker) undeliver(off uint64) {
	t.mu.Lock()
	if n := len(t.pending); n > 0 && t.pending[n-1].off == off && !t.pending[n-1].acked {
		t.pending = t.pending[:n-1]
	}
	t.mu.Unlock()
}

// acked marks offs (offsets delivered to this consumer) acked and stores the new offset if it
// moved.
func (t *streamTracker) acked(offs []uint64) {
	t.mu.Lock()
	for _, off := range offs {
		// Deliveries are in offset order; acks mostly are too, so search from the front.
		for i := range t.pending {
			if t.pending[i].off == off {
				t.pending[i].acked = true
				break
			}
			if t.pending[i].off > off {
				break
			}
		}
	}
	moved := false
	n := 0
	for n < len(t.pending) && t.pending[n].acked {
		if off := t.pending[n].off; !t.has || off > t.stored {
			t.stored, t.has, moved = off, true, true
		}
		n++
	}
	if n > 0 {
		t.pending = append(t.pending[:0], t.pending[n:]...)
	}
	stored := t.stored
	t.mu.Unlock()
	if moved {
		t.persist(stored)
	}
}

// persist writes off as the tracker's offset with the current commit group (unless the stream
// is deleted: its keys are gone, and a write after the delete would bring one back).
func (t *streamTracker) persist(off uint64) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.deleted {
		return
	}
	s.v.srv.commit.add(false, func(b *storage.Batch) {
		if b == t.batch {
			// Still the group being filled (it is applied only once out of the committer's
			// cur, after this lock): overwrite the value it holds.
			if binary.BigEndian.Uint64(t.val) < off {
				binary.BigEndian.PutUint64(t.val, off)
			}
			return
		}
		t.batch, t.val = b, binary.BigEndian.AppendUint64(make([]byte, 0, 8), off)
		b.Set(t.key, t.val)
	})
}

// trackStreamAcks passes acked deliveries of tracking consumers to their trackers (the channel's
// ack path; deliveries of other consumers cost one check each).
func trackStreamAcks(ds []*delivery) {
	for i := 0; i < len(ds); {
		d := ds[i]
		if d.c == nil || d.c.track == nil {
			i++
			continue
		}
		t := d.c.track
		var offs []uint64
		for ; i < len(ds) && ds[i].c != nil && ds[i].c.track == t; i++ {
			offs = append(offs, ds[i].e.seq)
		}
		t.acked(offs)
	}
}

// readStreamRef reads the uint64 stored under key (a stream's publisher or offset reference),
// after the writes added so far are applied. No lock may be held: it waits for the committer.
func (s *Server) readStreamRef(key []byte) (uint64, bool, error) {
	applied := make(chan struct{})
	cm := s.commit
	cm.onCommit(cm.add(false, func(*storage.Batch) {}), func(error) { close(applied) })
	select { // a group with nothing but a callback is applied once the committer looks again
	case cm.wake <- struct{}{}:
	default:
	}
	<-applied
	var val uint64
	found := false
	end := append(append([]byte(nil), key...), 0)
	err := s.store.ScanRange(key, end, func(k, v []byte) error {
		if len(v) == 8 {
			val, found = binary.BigEndian.Uint64(v), true
		}
		return storage.ErrStop
	})
	if errors.Is(err, storage.ErrStop) {
		err = nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading %x: %w", key, err)
	}
	return val, found, nil
}
