package fifo

import (
	"math"
	"slices"
)

// noExpiry is a message's expiry when it has no TTL.
const noExpiry = math.MaxInt64

// msg is a message held by the queue.
type msg struct {
	id     uint64 // the log index of its enqueue
	size   uint64
	expiry int64  // milliseconds since the epoch; noExpiry
	count  uint32 // delivery count: times returned
	body   []byte
}

func (m *msg) message() Message {
	return Message{ID: m.id, DeliveryCount: m.count, Size: m.size, Body: m.body}
}

// consumerStatus is a consumer's place in the queue.
type consumerStatus uint8

const (
	statusActive    consumerStatus = iota // gets messages while it has credit
	statusWaiting                         // single active consumer: attached, not (yet) active
	statusCancelled                       // detached; keeps its unsettled messages until settled
	statusGet                             // the owner's basic.get deliveries (tag ""): never served
)

type consumer struct {
	key      ConsumerKey
	status   consumerStatus
	mode     CreditMode
	credit   uint32 // Prefetch: the limit (0: none); Credited: the credit left
	priority int32
	excl     bool
	noAck    bool // deliveries are settled as they are made
	// suspected: its owner's node is unreachable (KindDisconnected): no deliveries until
	// KindReconnected; with single active consumer it is not the active one meanwhile.
	suspected bool
	attached  uint64 // attach order (single active consumer takeover)
	served    uint64 // when it last got a message (round-robin: least recent first)
	checked   map[uint64]msg
}

// room reports whether c may take one more message.
func (c *consumer) room() bool {
	if c.status != statusActive || c.suspected {
		return false
	}
	if c.mode == Credited {
		return c.credit > 0
	}
	return c.noAck || c.credit == 0 || uint32(len(c.checked)) < c.credit
}

// State is a quorum queue's replicated state machine. Every member applies the same commands in
// log order with Apply and holds the same State; nothing in it depends on anything but the
// commands (no clock, no randomness, no map iteration order), so two members' Marshal outputs are
// byte-identical after the same log. It is not safe for concurrent use.
type State struct {
	cfg     Config
	index   uint64 // the last applied log index
	now     int64  // the latest command Time seen (time never goes back)
	started bool   // a command was applied (now and lastActive are set)

	returns      ring[msg] // returned messages: served before ready, in the order they came back
	ready        ring[msg] // enqueued messages never handed out, in log order
	readyBytes   uint64    // sizes of returns and ready
	unacked      int       // messages checked out to consumers
	unackedBytes uint64

	consumers map[ConsumerKey]*consumer
	order     []*consumer // attached consumers in attach order
	attachSeq uint64
	serveSeq  uint64

	enqueuers map[uint64]uint64 // producer -> the next sequence number it may enqueue

	dlx      map[uint64]deadMsg // at-least-once dead letters awaiting KindDeadLetterSettled
	dlxBytes uint64

	blocked     bool  // reject-publish: over the limit, refusing until below the soft limit
	lastActive  int64 // when the queue was last used (x-expires)
	expiredSent bool  // EffectQueueExpired was emitted
	timerAt     int64 // the last EffectTimer's At (noExpiry: none)
	cursor      uint64

	live    liveSet // ids of every message held (ready, returned, checked out, dlx)
	removed bool    // a message left the queue during this Apply

	effects []Effect
	scratch []uint64
}

// New returns an empty queue with DefaultConfig.
func New() *State {
	return &State{
		cfg:       DefaultConfig(),
		consumers: map[ConsumerKey]*consumer{},
		enqueuers: map[uint64]uint64{},
		dlx:       map[uint64]deadMsg{},
		timerAt:   noExpiry,
	}
}

// NewWithConfig returns an empty queue with cfg as its configuration from the start, as if it
// had been created with it (rabbit_fifo's init from the queue record): for a queue whose members
// all build the same State from the same arguments, with no Config entry in the log.
func NewWithConfig(cfg Config) *State {
	s := New()
	s.cfg = cfg
	return s
}

// Index returns the last applied log index.
func (s *State) Index() uint64 { return s.index }

// Config returns the queue's configuration.
func (s *State) Config() Config { return s.cfg }

// Apply applies the command at log index index (indexes must grow; a stale one is refused with
// StatusStale and changes nothing). It returns the reply to the proposer and the effects for the
// host. The effects slice is the State's own: it is valid until the next Apply.
func (s *State) Apply(index uint64, c *Command) (Reply, []Effect) {
	clear(s.effects) // the last Apply's: do not keep their messages' bodies alive
	s.effects = s.effects[:0]
	if index <= s.index {
		return Reply{Status: StatusStale}, nil
	}
	if c.Kind == 0 || c.Kind > kindMax {
		return Reply{Status: StatusInvalid}, nil
	}
	s.index = index
	if c.Time > s.now || !s.started {
		s.now = c.Time
	}
	if !s.started {
		s.started = true
		s.lastActive = s.now
	}
	s.removed = false
	var r Reply
	switch c.Kind {
	case KindEnqueue:
		r = s.enqueue(index, c)
	case KindCheckout:
		r = s.checkout(c)
	case KindCancel:
		r = s.cancel(c.Consumer)
	case KindSettle:
		r = s.settle(c.Consumer, c.IDs)
	case KindReturn:
		r = s.giveBack(c.Consumer, c.IDs)
	case KindDiscard:
		r = s.discard(c.Consumer, c.IDs)
	case KindCredit:
		r = s.credit(c)
	case KindDequeue:
		r = s.dequeue(c)
	case KindPurge:
		r = s.purge()
	case KindDown:
		s.down(c.Owner)
	case KindDisconnected:
		s.disconnected(c.Owner)
	case KindReconnected:
		s.reconnected(c.Owner)
	case KindTick:
	case KindConfig:
		s.configure(c.Config)
	case KindDeadLetterSettled:
		s.deadLetterSettled(c.IDs)
	}
	s.serve()
	s.unblock()
	s.expireQueue()
	s.armTimer()
	s.releaseCursor()
	return r, s.effects
}

func (s *State) emit(e Effect) { s.effects = append(s.effects, e) }

// --- publishing ---

// enqueue applies a publish: deduplication, reject-publish, TTL, drop-head.
func (s *State) enqueue(index uint64, c *Command) Reply {
	if c.Producer != 0 {
		next, ok := s.enqueuers[c.Producer]
		if !ok {
			next = 1
		}
		switch {
		case c.Seq < next:
			return Reply{Status: StatusDuplicate}
		case c.Seq > next:
			return Reply{Status: StatusOutOfSequence}
		}
		s.enqueuers[c.Producer] = next + 1
	}
	m := msg{id: index, size: c.Size, expiry: noExpiry, body: c.Body}
	ttl := c.TTL
	if s.cfg.MessageTTL >= 0 && (ttl < 0 || s.cfg.MessageTTL < ttl) {
		ttl = s.cfg.MessageTTL
	}
	if ttl >= 0 {
		m.expiry = s.now + ttl
		if m.expiry < s.now { // overflow
			m.expiry = noExpiry
		}
	}
	if s.cfg.Overflow != DropHead && s.blocked {
		if s.cfg.Overflow == RejectPublishDLX {
			s.live.add(m.id)
			s.deadLetter(m, ReasonMaxLen)
		}
		s.emit(Effect{Kind: EffectRejectPublish, Producer: c.Producer, Seq: c.Seq})
		return Reply{Status: StatusRejected}
	}
	s.ready.push(m)
	s.readyBytes += m.size
	s.live.add(m.id)
	if s.overLimit() {
		if s.cfg.Overflow == DropHead {
			for s.overLimit() && s.readyLen() > 0 {
				s.deadLetter(s.popHead(), ReasonMaxLen)
			}
		} else {
			// As rabbit_fifo: the enqueue that goes over the limit is taken; the ones after
			// it are refused until the queue is back at or below the soft limit.
			s.blocked = true
		}
	}
	return Reply{}
}

func (s *State) readyLen() int { return s.returns.len() + s.ready.len() }

// overLimit: ready messages plus pending dead letters exceed x-max-length or x-max-length-bytes
// (rabbit_fifo's is_over_limit).
func (s *State) overLimit() bool {
	n, b := uint64(s.readyLen()+len(s.dlx)), s.readyBytes+s.dlxBytes
	return (s.cfg.MaxLength >= 0 && n > uint64(s.cfg.MaxLength)) ||
		(s.cfg.MaxLengthBytes >= 0 && b > uint64(s.cfg.MaxLengthBytes))
}

// unblock lifts reject-publish once the queue is at or below 80% of its limits (rabbit_fifo's
// is_below_soft_limit), or the limits or the overflow changed so that it no longer applies.
func (s *State) unblock() {
	if !s.blocked {
		return
	}
	below := func(limit int64, v uint64) bool { return limit < 0 || v <= uint64(limit/5*4+limit%5*4/5) } // trunc(0.8 limit)
	if s.cfg.Overflow == DropHead ||
		below(s.cfg.MaxLength, uint64(s.readyLen()+len(s.dlx))) && below(s.cfg.MaxLengthBytes, s.readyBytes+s.dlxBytes) {
		s.blocked = false
	}
}

// head returns the next message to hand out: returned ones first.
func (s *State) head() *msg {
	if s.returns.len() > 0 {
		return s.returns.front()
	}
	if s.ready.len() > 0 {
		return s.ready.front()
	}
	return nil
}

func (s *State) popHead() msg {
	var m msg
	if s.returns.len() > 0 {
		m = s.returns.pop()
	} else {
		m = s.ready.pop()
	}
	s.readyBytes -= m.size
	return m
}

// expireHead dead-letters expired messages at the head, as RabbitMQ does: only the head is
// looked at. A message expires once the time is past its expiry, so one with TTL 0 still goes to
// a consumer waiting for it (RabbitMQ 3.10.8's quorum queues deliver an expiration "0" message to
// a waiting consumer, checked).
func (s *State) expireHead() {
	for m := s.head(); m != nil && m.expiry < s.now; m = s.head() {
		s.deadLetter(s.popHead(), ReasonExpired)
	}
}

// --- dead-lettering ---

func (s *State) strategy() Strategy {
	if s.cfg.DeadLetter == AtLeastOnce && s.cfg.Overflow == RejectPublish {
		return AtLeastOnce
	}
	return AtMostOnce
}

// deadLetter takes m, already out of the ready list or a consumer, out of the queue for reason:
// gone at once (at-most-once) or kept until the target confirms (at-least-once).
func (s *State) deadLetter(m msg, reason Reason) {
	if s.strategy() == AtLeastOnce {
		s.dlx[m.id] = deadMsg{m: m, reason: reason}
		s.dlxBytes += m.size
		s.emit(Effect{Kind: EffectDeadLetter, Msg: m.message(), Reason: reason, AtLeastOnce: true})
		return
	}
	s.forget(m.id)
	s.emit(Effect{Kind: EffectDeadLetter, Msg: m.message(), Reason: reason})
}

func (s *State) forget(id uint64) {
	s.live.remove(id)
	s.removed = true
}

func (s *State) deadLetterSettled(ids []uint64) {
	for _, id := range ids {
		if d, ok := s.dlx[id]; ok {
			delete(s.dlx, id)
			s.dlxBytes -= d.m.size
			s.forget(id)
		}
	}
}

// deadMsg is an at-least-once dead letter awaiting its target's confirmation.
type deadMsg struct {
	m      msg
	reason Reason
}

// PendingDeadLetters returns the at-least-once dead letters not yet confirmed, lowest id first,
// as the EffectDeadLetter effects a new leader's host runs again (the old leader's republishing
// died with it; the target may get a message twice, never none).
func (s *State) PendingDeadLetters() []Effect {
	ids := make([]uint64, 0, len(s.dlx))
	for id := range s.dlx {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Effect, 0, len(ids))
	for _, id := range ids {
		d := s.dlx[id]
		out = append(out, Effect{Kind: EffectDeadLetter, Msg: d.m.message(), Reason: d.reason, AtLeastOnce: true})
	}
	return out
}

// --- consumers ---

func (s *State) checkout(c *Command) Reply {
	s.lastActive = s.now
	s.expiredSent = false
	k := c.Consumer
	if k.Tag == "" || c.Exclusive && s.cfg.SingleActive { // the empty tag is basic.get's
		return Reply{Status: StatusRefused}
	}
	for _, o := range s.order {
		if o.key != k && (c.Exclusive || o.excl) {
			return Reply{Status: StatusRefused}
		}
	}
	cs := s.consumers[k]
	if cs != nil && cs.status != statusCancelled && cs.status != statusGet {
		// A checkout of an attached consumer updates its settings.
		cs.mode, cs.credit, cs.priority, cs.excl, cs.noAck = c.Mode, c.Credit, c.Priority, c.Exclusive, c.NoAck
		return Reply{}
	}
	if cs == nil {
		cs = &consumer{key: k, checked: map[uint64]msg{}}
		s.consumers[k] = cs
	}
	cs.mode, cs.credit, cs.priority, cs.excl, cs.noAck = c.Mode, c.Credit, c.Priority, c.Exclusive, c.NoAck
	s.attachSeq++
	cs.attached = s.attachSeq
	s.serveSeq++
	cs.served = s.serveSeq
	s.order = append(s.order, cs)
	cs.status, cs.suspected = statusActive, false
	if s.cfg.SingleActive {
		if s.activeConsumer() != cs {
			cs.status = statusWaiting
			s.emit(Effect{Kind: EffectConsumerInactive, Consumer: k})
		} else {
			s.emit(Effect{Kind: EffectConsumerActive, Consumer: k})
		}
	}
	return Reply{}
}

// activeConsumer returns, with single active consumer, the consumer that is active, or else the
// one to activate: the first attached one waiting (not suspected).
func (s *State) activeConsumer() *consumer {
	var first *consumer
	for _, c := range s.order {
		if c.suspected {
			continue
		}
		if c.status == statusActive {
			return c
		}
		if first == nil && c.status == statusWaiting {
			first = c
		}
	}
	return first
}

// activateNext makes the first waiting consumer active, with single active consumer.
func (s *State) activateNext() {
	if !s.cfg.SingleActive {
		return
	}
	c := s.activeConsumer()
	if c != nil && c.status == statusWaiting {
		c.status = statusActive
		s.emit(Effect{Kind: EffectConsumerActive, Consumer: c.key})
	}
}

// detach takes c out of the attach order; it stays known (cancelled) while it holds messages.
func (s *State) detach(c *consumer) {
	if i := slices.Index(s.order, c); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
	c.status = statusCancelled
	s.dropIfDone(c)
}

// dropIfDone forgets a detached consumer (or a basic.get owner) holding nothing.
func (s *State) dropIfDone(c *consumer) {
	if (c.status == statusCancelled || c.status == statusGet) && len(c.checked) == 0 {
		delete(s.consumers, c.key)
	}
}

func (s *State) cancel(k ConsumerKey) Reply {
	c := s.consumers[k]
	if c == nil || c.status == statusCancelled || c.status == statusGet {
		return Reply{Status: StatusUnknownConsumer}
	}
	s.lastActive = s.now
	s.detach(c)
	s.activateNext()
	return Reply{}
}

func (s *State) credit(cmd *Command) Reply {
	c := s.consumers[cmd.Consumer]
	if c == nil || c.status == statusCancelled || c.status == statusGet {
		return Reply{Status: StatusUnknownConsumer}
	}
	c.credit = cmd.Credit
	if cmd.Drain && c.mode == Credited {
		s.serve()
		if c.credit > 0 {
			s.emit(Effect{Kind: EffectCreditDrained, Consumer: c.key, Credit: c.credit})
			c.credit = 0
		}
	}
	return Reply{}
}

// serve hands ready messages to consumers with room, expiring the head first: the highest
// priority first, the least recently served among equals (round-robin); with single active
// consumer only the active one (priorities do not matter, as in RabbitMQ 3.10).
func (s *State) serve() {
	for {
		s.expireHead()
		if s.head() == nil {
			return
		}
		var best *consumer
		for _, c := range s.order {
			if !c.room() {
				continue
			}
			if best == nil || c.priority > best.priority || c.priority == best.priority && c.served < best.served {
				best = c
			}
		}
		if best == nil {
			return
		}
		s.deliver(best, s.popHead())
	}
}

func (s *State) deliver(c *consumer, m msg) {
	if c.noAck {
		s.forget(m.id)
	} else {
		c.checked[m.id] = m
		s.unacked++
		s.unackedBytes += m.size
	}
	if c.mode == Credited {
		c.credit--
	}
	s.serveSeq++
	c.served = s.serveSeq
	s.emit(Effect{Kind: EffectDeliver, Consumer: c.key, Msg: m.message()})
}

// take removes message id from consumer c's checked-out messages.
func (s *State) take(c *consumer, id uint64) (msg, bool) {
	m, ok := c.checked[id]
	if !ok {
		return msg{}, false
	}
	delete(c.checked, id)
	s.unacked--
	s.unackedBytes -= m.size
	return m, true
}

func (s *State) settle(k ConsumerKey, ids []uint64) Reply {
	c := s.consumers[k]
	if c == nil {
		return Reply{Status: StatusUnknownConsumer}
	}
	for _, id := range ids {
		if _, ok := s.take(c, id); ok {
			s.forget(id)
		}
	}
	s.dropIfDone(c)
	return Reply{}
}

// sorted returns ids in increasing order (a copy: the command is not changed).
func (s *State) sorted(ids []uint64) []uint64 {
	s.scratch = append(s.scratch[:0], ids...)
	slices.Sort(s.scratch)
	return s.scratch
}

// giveBack returns messages to the queue (requeue): to the returned list, served before the
// rest, in message id order, each with its delivery count one higher; one returned more than
// x-delivery-limit times is dead-lettered instead.
func (s *State) giveBack(k ConsumerKey, ids []uint64) Reply {
	c := s.consumers[k]
	if c == nil {
		return Reply{Status: StatusUnknownConsumer}
	}
	for _, id := range s.sorted(ids) {
		if m, ok := s.take(c, id); ok {
			s.returnOne(m)
		}
	}
	s.dropIfDone(c)
	return Reply{}
}

func (s *State) returnOne(m msg) {
	if m.count < math.MaxUint32 {
		m.count++
	}
	if s.cfg.DeliveryLimit >= 0 && int64(m.count) > s.cfg.DeliveryLimit {
		s.deadLetter(m, ReasonDeliveryLimit)
		return
	}
	s.returns.push(m)
	s.readyBytes += m.size
}

func (s *State) discard(k ConsumerKey, ids []uint64) Reply {
	c := s.consumers[k]
	if c == nil {
		return Reply{Status: StatusUnknownConsumer}
	}
	for _, id := range s.sorted(ids) {
		if m, ok := s.take(c, id); ok {
			s.deadLetter(m, ReasonRejected)
		}
	}
	s.dropIfDone(c)
	return Reply{}
}

// down: owner's channel or connection is gone. Its consumers' messages come back (delivery count
// +1, the delivery limit applies), its consumers and its producer state go.
func (s *State) down(owner uint64) {
	delete(s.enqueuers, owner)
	mine := s.ownedBy(owner)
	for _, c := range mine {
		s.returnAll(c)
		if c.status == statusActive || c.status == statusWaiting {
			s.detach(c)
		} else {
			s.dropIfDone(c)
		}
	}
	if len(mine) > 0 {
		s.lastActive = s.now
		s.activateNext()
	}
}

// disconnected: owner's node cannot be reached; it may come back (rabbit_fifo's noconnection).
// Its consumers' messages come back as with down, but its consumers stay, suspected: they get
// nothing until reconnected, and a suspected single active consumer gives way to the next one.
// Its producer state stays.
func (s *State) disconnected(owner uint64) {
	mine := s.ownedBy(owner)
	for _, c := range mine {
		s.returnAll(c)
		switch {
		case c.status != statusActive && c.status != statusWaiting:
			s.dropIfDone(c)
		case !c.suspected:
			c.suspected = true
			if s.cfg.SingleActive && c.status == statusActive {
				c.status = statusWaiting
				s.emit(Effect{Kind: EffectConsumerInactive, Consumer: c.key})
			}
		}
	}
	s.activateNext()
}

// reconnected: owner's node is back (rabbit_fifo's nodeup): its suspected consumers go on.
func (s *State) reconnected(owner uint64) {
	for _, c := range s.order {
		if c.key.Owner == owner && c.suspected {
			c.suspected = false
			if !s.cfg.SingleActive {
				c.status = statusActive
			}
		}
	}
	s.activateNext()
}

// ownedBy returns owner's consumers (attached, cancelled and its basic.get one) in a
// deterministic order: attach order, then by tag.
func (s *State) ownedBy(owner uint64) []*consumer {
	var mine []*consumer
	for _, c := range s.consumers {
		if c.key.Owner == owner {
			mine = append(mine, c)
		}
	}
	slices.SortFunc(mine, func(a, b *consumer) int {
		if a.attached != b.attached {
			return cmpU64(a.attached, b.attached)
		}
		return cmpString(a.key.Tag, b.key.Tag)
	})
	return mine
}

// returnAll returns every message c holds, in id order.
func (s *State) returnAll(c *consumer) {
	for _, id := range sortedKeys(nil, c.checked) {
		m, _ := s.take(c, id)
		s.returnOne(m)
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// --- basic.get, purge ---

func (s *State) dequeue(c *Command) Reply {
	s.lastActive = s.now
	s.expiredSent = false
	s.expireHead()
	if s.head() == nil {
		return Reply{Status: StatusEmpty}
	}
	m := s.popHead()
	if c.Settled {
		s.forget(m.id)
	} else {
		k := ConsumerKey{Owner: c.Owner}
		g := s.consumers[k]
		if g == nil {
			g = &consumer{key: k, status: statusGet, checked: map[uint64]msg{}}
			s.consumers[k] = g
		}
		g.checked[m.id] = m
		s.unacked++
		s.unackedBytes += m.size
	}
	return Reply{Msg: m.message(), Count: uint64(s.readyLen())}
}

func (s *State) purge() Reply {
	n := s.readyLen()
	for s.head() != nil {
		m := s.popHead()
		s.forget(m.id)
	}
	return Reply{Count: uint64(n)}
}

// --- configuration, time ---

func (s *State) configure(cfg Config) {
	was := s.strategy()
	wasSAC := s.cfg.SingleActive
	s.cfg = cfg
	s.lastActive = s.now
	s.expiredSent = false
	if was == AtLeastOnce && s.strategy() != AtLeastOnce {
		// No longer at-least-once: the pending dead letters go at-most-once.
		for _, e := range s.PendingDeadLetters() {
			delete(s.dlx, e.Msg.ID)
			s.dlxBytes -= e.Msg.Size
			s.forget(e.Msg.ID)
			e.AtLeastOnce = false
			s.emit(e)
		}
	}
	switch {
	case cfg.SingleActive && !wasSAC:
		active := s.activeConsumer()
		for _, c := range s.order {
			if c != active && c.status == statusActive {
				c.status = statusWaiting
				s.emit(Effect{Kind: EffectConsumerInactive, Consumer: c.key})
			}
		}
	case !cfg.SingleActive && wasSAC:
		for _, c := range s.order {
			if c.status == statusWaiting {
				c.status = statusActive
			}
		}
	}
	if cfg.Overflow == DropHead {
		for s.overLimit() && s.readyLen() > 0 {
			s.deadLetter(s.popHead(), ReasonMaxLen)
		}
	} else if s.overLimit() {
		s.blocked = true
	}
}

// attachedConsumers counts the consumers attached (not cancelled, not basic.get owners).
func (s *State) attachedConsumers() int { return len(s.order) }

// expireQueue emits EffectQueueExpired once the queue has had no consumer and no use for
// x-expires.
func (s *State) expireQueue() {
	if s.cfg.Expires < 0 || s.expiredSent || s.attachedConsumers() > 0 {
		return
	}
	if s.now-s.lastActive >= s.cfg.Expires {
		s.expiredSent = true
		s.emit(Effect{Kind: EffectQueueExpired})
	}
}

// armTimer emits EffectTimer when the next deadline (the head's expiry, x-expires) changed.
func (s *State) armTimer() {
	at := int64(noExpiry)
	if m := s.head(); m != nil && m.expiry != noExpiry {
		at = m.expiry + 1
	}
	if s.cfg.Expires >= 0 && !s.expiredSent && s.attachedConsumers() == 0 {
		if d := s.lastActive + s.cfg.Expires; d < at && d >= s.lastActive {
			at = d
		}
	}
	if at != s.timerAt {
		s.timerAt = at
		if at != noExpiry {
			s.emit(Effect{Kind: EffectTimer, At: at})
		}
	}
}

// releaseCursor emits EffectReleaseCursor when it advanced: when a message left the queue, or
// when the queue holds none (then the cursor is the applied index, every releaseIdleStep commands).
func (s *State) releaseCursor() {
	var cur uint64
	if low, ok := s.live.lowest(); ok {
		if !s.removed {
			return
		}
		cur = low - 1
	} else {
		if !s.removed && s.index-s.cursor < releaseIdleStep {
			return
		}
		cur = s.index
	}
	if cur > s.cursor {
		s.cursor = cur
		s.emit(Effect{Kind: EffectReleaseCursor, Index: cur})
	}
}

// releaseIdleStep: with no message held, the cursor follows the applied index only every this
// many commands (an idle queue's ticks and consumer changes need not emit one each).
const releaseIdleStep = 64

// --- queries ---

// Counts are what management shows of a queue's messages.
type Counts struct {
	Ready             uint64 // messages waiting for a consumer (returned ones included)
	ReadyBytes        uint64
	Unacked           uint64 // messages handed out, not settled
	UnackedBytes      uint64
	DeadLetterPending uint64 // at-least-once dead letters not yet confirmed by their target
	DeadLetterBytes   uint64
	Consumers         uint64 // attached consumers
	Producers         uint64 // producers with deduplication state
}

// Counts returns the queue's counts.
func (s *State) Counts() Counts {
	return Counts{
		Ready: uint64(s.readyLen()), ReadyBytes: s.readyBytes,
		Unacked: uint64(s.unacked), UnackedBytes: s.unackedBytes,
		DeadLetterPending: uint64(len(s.dlx)), DeadLetterBytes: s.dlxBytes,
		Consumers: uint64(len(s.order)), Producers: uint64(len(s.enqueuers)),
	}
}

// ConsumerInfo is a consumer as management shows it.
type ConsumerInfo struct {
	Key       ConsumerKey
	Mode      CreditMode
	Credit    uint32 // the prefetch limit (Prefetch) or the credit left (Credited)
	Priority  int32
	Active    bool // false: waiting (single active consumer) or suspected
	Suspected bool // its owner's node is unreachable (KindDisconnected)
	NoAck     bool
	Unacked   int
}

// Consumers returns the attached consumers in attach order.
func (s *State) Consumers() []ConsumerInfo {
	out := make([]ConsumerInfo, 0, len(s.order))
	for _, c := range s.order {
		out = append(out, ConsumerInfo{Key: c.key, Mode: c.mode, Credit: c.credit, Priority: c.priority,
			Active: c.status == statusActive && !c.suspected, Suspected: c.suspected, NoAck: c.noAck, Unacked: len(c.checked)})
	}
	return out
}

// Owners returns the owners of every consumer the state holds (attached, cancelled with messages
// still checked out, basic.get owners), in increasing order: what a host proposes
// KindDisconnected or KindDown for when the owners' node goes away.
func (s *State) Owners() []uint64 {
	var out []uint64
	for k := range s.consumers {
		out = append(out, k.Owner)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckedOut returns the messages consumer k holds unsettled, lowest id first: what a new leader's
// host resends when a consumer's deliveries may have been lost with the old leader.
func (s *State) CheckedOut(k ConsumerKey) []Message {
	c := s.consumers[k]
	if c == nil {
		return nil
	}
	out := make([]Message, 0, len(c.checked))
	for _, id := range sortedKeys(nil, c.checked) {
		m := c.checked[id]
		out = append(out, m.message())
	}
	return out
}

// ReleaseCursor returns the last EffectReleaseCursor's index.
func (s *State) ReleaseCursor() uint64 { return s.cursor }
