package server

import (
	"log/slog"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/exchange"
)

// The core publish path, shared by every front end: AMQP's basic.publish (channel_basic.go),
// management's publish (admin_ops.go), and the MQTT and STOMP connections (mqtt*.go, stomp*.go).
//
//  1. Before reading the next publish, a front end asks publishThrottle and publishAlarm whether
//     it must wait: the store's throttle or a resource alarm blocks every publisher, whatever its
//     protocol (AMQP also tells the client with connection.blocked). Waiting is the front end's: it must not
//     read its socket meanwhile, so TCP pushes back on its client (awaitPublishAllowed does both
//     for MQTT and STOMP).
//  2. vhost.checkPublish checks the user's write permission on the exchange (cached per
//     publisher until any permission changes), that the exchange exists and is not internal, and
//     the topic permission on a topic exchange, with RabbitMQ's texts.
//  3. vhost.publish routes the message and enqueues it on every queue it reaches. The source of
//     the publish (publishSource) is told what the publish needs from it afterwards: to pause
//     for a queue that must drain (flow control, queue_flow.go) and the commit group its confirm
//     waits for (commit.go).
//  4. The front end confirms (AMQP: basic.ack or basic.nack once the commit group is durable).

// publishSource is whoever publishes through the core path: an AMQP connection (*conn), an MQTT
// connection (*mqttConn) or a STOMP connection (*stompConn). nil publishes for the broker itself (dead-lettering, the
// management API), which never pauses and confirms nothing.
type publishSource interface {
	// batch is the write batch of the goroutine publishing (its read loop), which the
	// deliveries the publish makes join; nil writes them directly.
	batch() *writeBatch
	// flowID identifies the connection for flow control: a consumer delivering on the same
	// connection (deliveryTarget.deliversOn) does not make the publisher pause. nil: the source
	// never pauses (queues do not ask it to).
	flowID() any
	// pause asks the source to stop reading once it has handled the current publish, until
	// wake is closed (queue q is draining: flow control).
	pause(q *queue, wake <-chan struct{})
	// joined tells the source that the publish's confirm must wait for commit group g.
	joined(g *commitGroup)
}

// publishThrottle returns a channel closed when the store has caught up, or nil if it is not
// behind. A publisher of any protocol waits on it, without reading its socket, before its next
// publish; then it asks publishAlarm.
func (s *Server) publishThrottle() <-chan struct{} { return s.commit.throttle() }

// publishAlarm returns a channel closed when every resource alarm (memory, disk: alarm.go) has
// cleared, and RabbitMQ's connection.blocked reason, or nil if none is raised. A publisher of any
// protocol waits on it, without reading its socket, before its next publish (an AMQP client that
// supports it is told with connection.blocked).
func (s *Server) publishAlarm() (<-chan struct{}, string) { return s.alarms.blocked() }

// awaitPublishAllowed is a front end's wait before it reads its next publish: while the store is
// behind (publishThrottle) or a resource alarm is raised (publishAlarm), without reading its socket.
// flush writes what the front end's batch owes first (its peer may be waiting for it); an alarm is
// logged once on log. False: stopped or gone (the peer went away) was closed meanwhile.
func (s *Server) awaitPublishAllowed(flush func(), log *slog.Logger, stopped, gone <-chan struct{}) bool {
	if relief := s.publishThrottle(); relief != nil {
		flush()
		select {
		case <-relief:
		case <-stopped:
			return false
		case <-gone:
			return false
		}
	}
	cleared, reason := s.publishAlarm()
	if cleared == nil {
		return true
	}
	flush()
	log.Info("connection blocked: " + reason)
	select {
	case <-cleared:
	case <-stopped:
		return false
	case <-gone:
		return false
	}
	return true
}

// checkPublish resolves the exchange a publish by user u names and checks it may publish there:
// write on the exchange (cache: the publisher's remembered check), the exchange exists (404) and
// is not internal (403), and u's topic permission on key for a topic exchange (403). u nil: no
// permission checks (the broker's own publishes).
func (v *vhost) checkPublish(u *user, exName, key string, cache *publishAccess) (*exchangeEntity, error) {
	if err := v.srv.checkWriteCached(u, v, exName, cache); err != nil {
		return nil, err
	}
	ex := v.exchange(exName)
	if ex == nil {
		return nil, v.errNoExchange(exName)
	}
	if ex.internal {
		return nil, amqp.Errorf(amqp.AccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", exName, v.name)
	}
	if ex.kind == exchange.Topic {
		if err := v.srv.checkTopicAccess(u, v, accessWrite, exName, key); err != nil {
			return nil, err
		}
	}
	return ex, nil
}

// publish routes msg from exchange ex (with the extra routing keys routes, from CC and BCC) and
// enqueues it on every queue it reaches; buf is scratch for the queue list. It returns the
// queues and whether one of them refused the message (a full queue with reject-publish: the
// publisher's confirm is a nack). spare, if not nil, is a zero entry the first queue may use.
// The caller has checked permissions; it holds no lock.
func (v *vhost) publish(src publishSource, ex *exchangeEntity, msg *message, routes []string, spare *qentry, buf []*queue) (qs []*queue, refused bool) {
	qs = v.route(ex, msg.routingKey, routes, msg, buf)
	return qs, v.enqueue(src, msg, qs, spare)
}

// enqueue puts msg on the queues qs (as route chose them) and reports whether one refused it;
// spare and src as for publish. A transaction routes at basic.publish and enqueues at tx.commit.
func (v *vhost) enqueue(src publishSource, msg *message, qs []*queue, spare *qentry) (refused bool) {
	for _, q := range qs {
		res, g, wake := q.publishFrom(msg, src, spare)
		if res == published {
			spare = nil
		}
		if res == rejected {
			refused = true
		}
		if src != nil {
			if wake != nil {
				src.pause(q, wake)
			}
			if g != nil {
				src.joined(g)
			}
		}
	}
	msg.rec = nil // the commit groups hold the record until it is written
	return refused
}

// liveQueues resolves queues routed to earlier (by a publish held by a transaction) by name, as
// RabbitMQ does at tx.commit: a deleted queue is dropped, one declared again under its name
// takes its place.
func (v *vhost) liveQueues(qs []*queue) []*queue {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := qs[:0]
	for _, q := range qs {
		if cur := v.mu.queues[q.name]; cur != nil && !containsPtr(out, cur) {
			out = append(out, cur)
		}
	}
	return out
}

// An AMQP connection is a publishSource; its read loop acts on what the publishes asked
// (conn.readLoop, conn.flushConfirms).

func (c *conn) batch() *writeBatch { return &c.wb } // publishes run on c's read loop
func (c *conn) flowID() any        { return c }
func (c *conn) pause(q *queue, wake <-chan struct{}) {
	c.flowWaits = append(c.flowWaits, flowWait{q: q, wake: wake})
}
func (c *conn) joined(g *commitGroup) {
	// Confirms wait for the connection's last group only: committer groups complete in order,
	// but an external one (a quorum queue's) does not, so it is joined with the previous one.
	if prev := c.lastGroup; prev != nil && prev != g && (prev.external || g.external) {
		select {
		case <-prev.done:
		default:
			g = c.srv.commit.joinGroups(prev, g)
		}
	}
	c.lastGroup, c.groupFresh = g, true
}

// groupCollector is a publishSource for a publisher that waits for its own confirms (the
// management API's publish): it keeps the commit groups its messages joined.
type groupCollector struct{ groups []*commitGroup }

func (gc *groupCollector) batch() *writeBatch            { return nil }
func (gc *groupCollector) flowID() any                   { return nil } // never paused
func (gc *groupCollector) pause(*queue, <-chan struct{}) {}
func (gc *groupCollector) joined(g *commitGroup) {
	for _, x := range gc.groups {
		if x == g {
			return
		}
	}
	gc.groups = append(gc.groups, g)
}

// wait waits for the collected groups and returns the first write error.
func (gc *groupCollector) wait() error {
	for _, g := range gc.groups {
		<-g.done
		if g.err != nil {
			return g.err
		}
	}
	return nil
}
