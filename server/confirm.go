package server

import (
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp"
)

// Publisher confirms (confirm.select). The state is in three places, each with one owner:
//
//   - channel.confirm, channel.publishSeq and channel.flushedSeq belong to the read loop. Every
//     publish on a channel in confirm mode takes the next seq (publishSeq), whether it was routed,
//     returned or refused; flushedSeq is the highest seq handed to the ledger.
//   - conn.confirmDirty, conn.lastGroup and conn.groupFresh belong to the read loop too: the channels
//     with seqs not yet handed over, the last commit group a publish of the connection wrote to (or
//     waited behind), and whether a publish since the last flush wrote to it.
//   - confirmLedger, one per channel, sends the basic.ack and basic.nack frames. It is called from
//     the read loop and from commit callbacks on the committer goroutine, so its state is behind mu.
//
// Invariants:
//
//  1. A publish is confirmed once every queue it was routed to has it and, for a persistent message
//     on a durable queue, once the commit group holding its record is durable. Commit groups
//     complete in order, so a flush waits for the connection's last group only (flushConfirms).
//  2. Confirms go out in seq order and each seq exactly once: the ledger's sent only grows, and
//     every frame it sends covers the seqs in (sent, tag], the nacks in their places; a seq at or
//     below sent is never answered again.
//  3. A seq a queue refused (reject-publish overflow) is nacked, never acked: mu.nacks holds such
//     seqs above sent, ascending.
//  4. If the store failed the group a batch's publishes wrote to, every seq of that batch is
//     nacked; a batch that only waited behind the failed group (to keep the order) is acked.
//  5. Once the channel is closed (close), nothing more is sent.
//
// Lock order: confirmLedger.mu comes after channel.mu and before outbound.mu (doc.go): settleUpTo
// appends the frames to the connection's outbound buffer under it, and never writes the socket.

// confirmLedger sends a channel's basic.ack and basic.nack in seq order.
type confirmLedger struct {
	mu struct {
		sync.Mutex
		sent   uint64   // every seq up to sent has been acked or nacked
		nacks  []uint64 // seqs above sent to nack (a queue refused them), ascending
		closed bool     // the channel is closed: nothing more is sent
	}
	// handed is the highest seq handed to the ledger (flushConfirms); handed - sent is the number
	// of publishes awaiting their confirm (the management's messages_unconfirmed).
	handed atomic.Uint64
}

// unconfirmed is the number of publishes handed to the ledger and not yet acked or nacked.
func (l *confirmLedger) unconfirmed() int {
	h := l.handed.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed || h <= l.mu.sent {
		return 0
	}
	return int(h - l.mu.sent)
}

// nack records that seq must be nacked when the ledger reaches it.
func (l *confirmLedger) nack(seq uint64) {
	l.mu.Lock()
	l.mu.nacks = append(l.mu.nacks, seq)
	l.mu.Unlock()
}

// settleUpTo confirms every seq up to upTo: acks, with the recorded nacks in their places, or,
// if err is not nil (the store failed), nacks for all of them.
func (l *confirmLedger) settleUpTo(ch *channel, upTo uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed || upTo <= l.mu.sent {
		return
	}
	if err != nil {
		ch.reply(&amqp.BasicNack{DeliveryTag: upTo, Multiple: upTo-l.mu.sent > 1})
		l.mu.sent = upTo
		for len(l.mu.nacks) > 0 && l.mu.nacks[0] <= upTo {
			l.mu.nacks = l.mu.nacks[1:]
		}
		return
	}
	for len(l.mu.nacks) > 0 && l.mu.nacks[0] <= upTo {
		n := l.mu.nacks[0]
		l.mu.nacks = l.mu.nacks[1:]
		if n-1 > l.mu.sent {
			ch.reply(&amqp.BasicAck{DeliveryTag: n - 1, Multiple: n-1-l.mu.sent > 1})
		}
		ch.reply(&amqp.BasicNack{DeliveryTag: n})
		l.mu.sent = n
	}
	if upTo > l.mu.sent {
		ch.reply(&amqp.BasicAck{DeliveryTag: upTo, Multiple: upTo-l.mu.sent > 1})
		l.mu.sent = upTo
	}
}

// close stops the ledger: the channel is closed and no confirm is sent any more.
func (l *confirmLedger) close() {
	l.mu.Lock()
	l.mu.closed = true
	l.mu.Unlock()
}

// flushConfirms hands the confirms earned by the last batch of frames to the channels' ledgers:
// at once if nothing they depend on is still being written, or when the connection's last commit
// group is durable (groups complete in order, so that covers every earlier write too).
func (c *conn) flushConfirms() {
	if len(c.confirmDirty) == 0 {
		return
	}
	type pending struct {
		ch  *channel
		seq uint64
	}
	ps := make([]pending, len(c.confirmDirty))
	for i, ch := range c.confirmDirty {
		ps[i] = pending{ch, ch.publishSeq}
		ch.flushedSeq = ch.publishSeq
		ch.confirms.handed.Store(ch.publishSeq)
	}
	clear(c.confirmDirty)
	c.confirmDirty = c.confirmDirty[:0]
	// A failed group fails these publishes only if one of them wrote to it; otherwise they
	// waited for it just to keep confirms in order.
	depends := c.groupFresh
	c.groupFresh = false
	settle := func(err error) {
		if !depends {
			err = nil
		}
		for _, p := range ps {
			p.ch.confirms.settleUpTo(p.ch, p.seq, err)
		}
	}
	if g := c.lastGroup; g != nil {
		c.srv.commit.onCommit(g, settle)
		select {
		case <-g.done:
			c.lastGroup = nil // its callbacks have run: later confirms need not wait
		default:
		}
		return
	}
	settle(nil)
}
