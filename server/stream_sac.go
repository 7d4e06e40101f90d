package server

import (
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/streamproto"
)

// Single active consumer over the stream protocol, as RabbitMQ's rabbit_stream_sac_coordinator
// (3.11+) does it. Subscriptions with the properties single-active-consumer=true and name=N on
// stream S form the group (vhost, S, N); one member at a time is active and reads. A member
// starts reading only once its client answered the consumer update (0x001a) that made it
// active, at the offset specification of the answer (none: the subscription's own).
//
//   - A plain stream's group: the first member is active; when the active member leaves
//     (unsubscribe, connection closed, stream deleted) the first remaining one is activated.
//   - A super stream partition (property super-stream=SS; the group's partition index is the
//     stream's position among SS's partitions): the active member is the one at index
//     partition_index mod len(members), members in subscription order, so a super stream's
//     consumers spread over its partitions. When a join or leave moves the choice, the current
//     active member is first told to step down (consumer update, active false); once its client
//     answered, it stops reading and the new choice is activated.
//
// Warren adds one thing RabbitMQ 3.11 lacks: a member that leaves while stepping down (before
// its client answered) hands over as an active member would, so the group is not left without
// an active member.
//
// Locks: sacCoordinator.mu -> streamConn.sacPending (sacConn.mu) -> streamConn.out. Consumer
// updates are only appended to the connection's out buffer under them; the reader is started
// and stopped by the subscription's own read loop (consumerUpdated) with none of them held.

type sacKey struct{ vhost, stream, name string }

type sacState uint8

const (
	sacInactive sacState = iota
	sacActive
	sacStepping // was active, told to step down, its client has not answered yet
)

type sacMember struct {
	b     *streamSub
	state sacState
}

type sacGroup struct {
	partition int // -1: not a super stream partition
	members   []*sacMember
}

// sacCoordinator is the server's single active consumer groups. super serializes super stream
// creation and deletion (stream_super.go).
type sacCoordinator struct {
	mu     sync.Mutex
	groups map[sacKey]*sacGroup
	super  sync.Mutex
}

// sacConn is a connection's side: the consumer updates sent and not yet answered.
type sacConn struct {
	mu      sync.Mutex
	corr    uint32
	pending map[uint32]sacUpdate
}

type sacUpdate struct {
	b      *streamSub
	active bool
}

// sacNotify sends b's client a consumer update (under sac.mu).
func sacNotify(b *streamSub, active bool) {
	c := b.c
	c.sac.mu.Lock()
	c.sac.corr++
	corr := c.sac.corr
	if c.sac.pending == nil {
		c.sac.pending = map[uint32]sacUpdate{}
	}
	c.sac.pending[corr] = sacUpdate{b: b, active: active}
	c.sac.mu.Unlock()
	c.send(&streamproto.ConsumerUpdate{CorrelationID: corr, SubscriptionID: b.id, Active: active})
}

func (g *sacGroup) active() *sacMember {
	for _, m := range g.members {
		if m.state != sacInactive {
			return m
		}
	}
	return nil
}

// choose is the member that should be active: the first one, or for a partition the one at
// partition mod len(members).
func (g *sacGroup) choose() *sacMember {
	if len(g.members) == 0 {
		return nil
	}
	if g.partition < 0 {
		return g.members[0]
	}
	return g.members[g.partition%len(g.members)]
}

func (g *sacGroup) activate(m *sacMember) {
	m.state = sacActive
	sacNotify(m.b, true)
}

// join adds b to its group (b.sac is set).
func (s *sacCoordinator) join(b *streamSub, partition int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups == nil {
		s.groups = map[sacKey]*sacGroup{}
	}
	g := s.groups[*b.sac]
	if g == nil {
		g = &sacGroup{partition: partition}
		s.groups[*b.sac] = g
	}
	m := &sacMember{b: b}
	g.members = append(g.members, m)
	cur := g.active()
	switch {
	case cur == nil && len(g.members) == 1:
		g.activate(m)
	case cur == nil: // a former active member is stepping down: activated when it answers
	case cur.state == sacActive && g.partition >= 0 && g.choose() != cur:
		cur.state = sacStepping
		sacNotify(cur.b, false)
	}
}

// leave removes b from its group and activates or steps down whom that concerns.
func (s *sacCoordinator) leave(b *streamSub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[*b.sac]
	if g == nil {
		return
	}
	i := -1
	for j, m := range g.members {
		if m.b == b {
			i = j
		}
	}
	if i < 0 {
		return
	}
	gone := g.members[i]
	g.members = append(g.members[:i], g.members[i+1:]...)
	if len(g.members) == 0 {
		delete(s.groups, *b.sac)
		return
	}
	cur := g.active()
	switch {
	case cur == nil && gone.state != sacInactive: // the active (or stepping) member left
		g.activate(g.choose())
	case cur != nil && cur.state == sacActive && g.partition >= 0 && g.choose() != cur:
		cur.state = sacStepping
		sacNotify(cur.b, false)
	}
}

// steppedDown: b's client answered its step-down; the group's choice is activated.
func (s *sacCoordinator) steppedDown(b *streamSub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[*b.sac]
	if g == nil {
		return
	}
	for _, m := range g.members {
		if m.b == b && m.state == sacStepping {
			m.state = sacInactive
		}
	}
	if g.active() == nil {
		g.activate(g.choose())
	}
}

// isActive reports whether b is its group's active member.
func (s *sacCoordinator) isActive(b *streamSub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[*b.sac]; g != nil {
		for _, m := range g.members {
			if m.b == b {
				return m.state == sacActive
			}
		}
	}
	return false
}

// sacSubscribe handles a subscribe with single-active-consumer=true (false: not one, the
// caller goes on). The subscription is registered and answered, but reads only once active.
func (c *streamConn) sacSubscribe(m *streamproto.Subscribe, b *streamSub) bool {
	props := map[string]string{}
	for _, kv := range m.Properties {
		props[kv.Key] = kv.Value
	}
	if props["single-active-consumer"] != "true" {
		return false
	}
	name := props["name"]
	if name == "" { // RabbitMQ: a single active consumer needs a name
		c.respond(streamproto.KeySubscribe, m.CorrelationID, streamproto.CodePreconditionFailed)
		return true
	}
	partition := -1
	if ss := props["super-stream"]; ss != "" {
		if parts, ok := c.v.superStreamPartitions(ss); ok {
			for i, p := range parts {
				if p == m.Stream {
					partition = i
				}
			}
		}
	}
	b.sac = &sacKey{vhost: c.v.name, stream: m.Stream, name: name}
	b.sacOffset = b.sub.args["x-stream-offset"]
	b.credit = int(m.Credit) // no reader yet: nothing reads credit before activation
	c.subs.Lock()
	c.subs.m[m.SubscriptionID] = b
	c.subs.Unlock()
	c.respond(streamproto.KeySubscribe, m.CorrelationID, streamproto.CodeOK)
	c.srv.sac.join(b, partition)
	return true
}

// unsubscribeAnswered unsubscribes and answers, then takes the subscription out of its single
// active consumer group: the answer goes before the consumer update that may follow (as in
// RabbitMQ, whose coordinator's effects arrive after the frame is handled).
func (c *streamConn) unsubscribeAnswered(m *streamproto.Unsubscribe) {
	c.subs.Lock()
	b := c.subs.m[m.SubscriptionID]
	c.subs.Unlock()
	c.respond(streamproto.KeyUnsubscribe, m.CorrelationID, c.unsubscribe(m.SubscriptionID))
	if b != nil {
		b.sacLeave()
	}
}

// sacLeave takes b out of its group (unsubscribe, connection closed, stream deleted).
func (b *streamSub) sacLeave() {
	if b.sac != nil {
		b.c.srv.sac.leave(b)
	}
}

// consumerUpdated handles the client's answer to a consumer update: an activated subscription
// starts reading at the answer's offset, a stepped-down one stops and hands over.
func (c *streamConn) consumerUpdated(m *streamproto.ConsumerUpdateResponse) bool {
	c.sac.mu.Lock()
	u, ok := c.sac.pending[m.CorrelationID]
	delete(c.sac.pending, m.CorrelationID)
	c.sac.mu.Unlock()
	if !ok {
		return true
	}
	b := u.b
	c.subs.Lock()
	live := c.subs.m[b.id] == b
	c.subs.Unlock()
	if !u.active {
		b.stopReading()
		if live {
			c.srv.sac.steppedDown(b)
		}
		return true
	}
	if !live || !c.srv.sac.isActive(b) {
		return true
	}
	if m.Code != streamproto.CodeOK {
		c.srv.log.Debug("stream consumer update refused by the client", "stream", b.stream, "code", m.Code)
	}
	var off any
	switch m.Offset.Type {
	case streamproto.OffsetNone:
		off = b.sacOffset
	case streamproto.OffsetFirst:
		off = "first"
	case streamproto.OffsetLast:
		off = "last"
	case streamproto.OffsetNext:
		off = "next"
	case streamproto.OffsetOffset:
		off = int64(min(m.Offset.Value, 1<<63-1))
	case streamproto.OffsetTimestamp:
		off = time.UnixMilli(int64(m.Offset.Value))
	}
	b.stopReading()
	// Not registered with the stream now: no reader reads its arguments; the writer reads only
	// the pointer.
	b.sub.args = amqp.Table{"x-stream-offset": off}
	if err := b.q.addConsumer(b.sub, func() {}); err != nil {
		// The stream was deleted while this member waited: it goes as a reading subscription
		// would (metadata update), and the group's next member is activated in turn.
		c.srv.log.Debug("stream single active consumer not started", "stream", b.stream, "err", err)
		b.cancelled()
		return true
	}
	b.reading = true
	b.q.kick([]*subscription{b.sub}, nil)
	return true
}

// stopReading stops b's reader, if it has one, and drops what it had not sent (read loop).
func (b *streamSub) stopReading() {
	if !b.reading {
		return
	}
	b.reading = false
	b.q.removeConsumer(b.sub)
	b.mu.Lock()
	b.n, b.data, b.ready = 0, b.data[:0], false
	b.mu.Unlock()
}
