package server

import "github.com/warrenmq/warren/storage"

// The classic queue's side of recovery (persist.go reads the store and hands each queue its
// messages through queueImpl; markClean writes what the next start needs).

// recoverMessage takes back stored message seq (record rec, size bytes of body) in seq order:
// into memory up to the queue's window, the rest as its paged range. redelivered: the message may
// have been delivered before the stop.
func (q *classicQueue) recoverMessage(seq uint64, rec []byte, size int64, redelivered bool) error {
	q.mu.Lock()
	defer q.unlock()
	q.mu.nextSeq = max(q.mu.nextSeq, seq)
	q.mu.storedAny = true
	opts := &q.v.srv.opts
	// A queue that does not page (its drop-head limit bounds it) holds everything in memory,
	// so that its publishes, which never page, stay behind the recovered messages.
	if !q.pageable || q.mu.paged.n == 0 && q.mu.ready.len() < opts.QueueWindow && q.mu.ready.bytes < opts.QueueWindowBytes {
		m, err := decodeMessage(rec)
		if err != nil {
			return err
		}
		q.recLast = &qentry{msg: m, seq: seq, stored: true, redelivered: redelivered, expiry: q.expiryOf(m), prio: q.prioOf(m)}
		q.mu.ready.push(q.recLast)
		return nil
	}
	if q.mu.paged.n == 0 {
		q.mu.paged.from = seq
	}
	q.mu.paged.n++
	q.mu.paged.bytes += size
	return nil
}

// recoverDelivered marks message seq, the last one handed to recoverMessage, as delivered before
// a clean stop (it comes back redelivered; its DeliveredKey exists).
func (q *classicQueue) recoverDelivered(seq uint64) {
	q.mu.Lock()
	defer q.unlock()
	if e := q.recLast; e != nil && e.seq == seq && q.mu.ready.isLast(e) {
		e.redelivered, e.marked = true, true
	}
}

// recovered ends recovery. After an unclean stop every recovered message may have been
// delivered: those come back redelivered, paged ones included.
func (q *classicQueue) recovered(clean bool) {
	q.mu.Lock()
	defer q.unlock()
	q.recLast = nil
	if !clean {
		q.mu.uncleanUpTo = q.mu.nextSeq
	}
}

// markClean adds to b, at a clean stop, a DeliveredKey for every stored message in memory that
// was delivered, so that it comes back redelivered.
func (q *classicQueue) markClean(b *storage.Batch) {
	q.mu.Lock()
	defer q.unlock()
	q.mu.ready.each(func(e *qentry) {
		if e.stored && e.redelivered && !e.marked {
			b.Set(storage.DeliveredKey(q.id, e.seq), nil)
			e.marked = true
		}
	})
}
