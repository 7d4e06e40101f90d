package server

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/mqtt"
)

// Shared subscriptions ($share/{group}/{filter}, MQTT 5.0 section 4.8.2; accepted from 3.1.1 clients
// too, as most brokers do), which RabbitMQ 3.10 lacks. Each group and filter is one queue,
// mqtt-shared-<group>-<binding key>, bound like any subscription; every member connection consumes
// it with its own mqttSub, so the queue hands each message to one member, round-robin among those
// with credit, and a member that goes away gives its in-flight messages back to the others. A
// member's QoS is its own (QoS 0 members consume without acknowledgements). The queue is
// auto-delete: it goes with the group's last member. Retained messages are not sent to a shared
// subscription (the specification's rule). Not kept across reconnects, even of a persistent
// session.

// mqttSharedQueueName names the queue of a share group and filter (a hash when the name would pass
// AMQP's 255 bytes).
func mqttSharedQueueName(group, key string) string {
	name := "mqtt-shared-" + group + "-" + key
	if len(name) > 255 {
		sum := sha256.Sum256([]byte(group + "\x00" + key))
		name = "mqtt-shared-" + hex.EncodeToString(sum[:])
	}
	return name
}

// subscribeShared makes a shared subscription and returns its SUBACK code.
func (c *mqttConn) subscribeShared(sub mqtt.Subscription, id uint32) mqtt.ReasonCode {
	group, filter, err := mqtt.ParseShared(sub.Filter)
	if err != nil {
		return mqtt.TopicFilterInvalid
	}
	qos := sub.QoS
	v, exName, key := c.vhost, c.srv.opts.MQTT.Exchange, mqttFilterToKey(filter)
	name := mqttSharedQueueName(group, key)
	o := mqttSubOpts{filter: filter, id: id, rap: sub.RetainAsPublished} // No Local: refused by the codec
	c.mu.Lock()
	old := c.mu.shared[sub.Filter]
	if old != nil && old.qos == qos {
		old.opts = o
		c.mu.Unlock()
		return mqtt.ReasonCode(qos)
	}
	c.mu.Unlock()
	err = c.srv.checkAccess(c.user, v, accessConfigure, "queue", name)
	if err == nil {
		err = c.srv.checkAccess(c.user, v, accessRead, "queue", name)
	}
	var q *queue
	if err == nil {
		q, err = v.declareQueue(nil, &amqp.QueueDeclare{Queue: name, AutoDelete: true})
	}
	if err == nil {
		err = c.checkBind(name, exName, key)
	}
	if err == nil {
		err = v.bind(exName, q, key, nil, nil)
	}
	if err == nil {
		s := &mqttSub{c: c, q: q, qos: qos, shared: filter, opts: o}
		s.subscription = subscription{tag: "mqtt-" + c.clientID + "-" + sub.Filter + "-qos" + strconv.Itoa(int(qos)), target: s, noAck: qos == 0}
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return mqtt.UnspecifiedError
		}
		if c.mu.shared == nil {
			c.mu.shared = map[string]*mqttSub{}
		}
		c.mu.shared[sub.Filter] = s
		c.mu.Unlock()
		if err = q.addConsumer(&s.subscription, func() {}); err != nil {
			c.mu.Lock()
			delete(c.mu.shared, sub.Filter)
			c.mu.Unlock()
		}
	}
	if err != nil {
		c.log.Warn("MQTT shared subscription refused", "client_id", c.clientID, "filter", sub.Filter, "err", err)
		if ae, ok := err.(*amqp.Error); ok && ae.Code == amqp.AccessRefused {
			return mqtt.NotAuthorized
		}
		return mqtt.UnspecifiedError
	}
	if old != nil { // a new QoS: the old consumer goes (its in-flight messages settle on their PUBACKs)
		c.detach(old)
	}
	return mqtt.ReasonCode(qos)
}

// unsubscribeShared ends a shared subscription; false if there was none.
func (c *mqttConn) unsubscribeShared(filter string) bool {
	c.mu.Lock()
	s := c.mu.shared[filter]
	delete(c.mu.shared, filter)
	c.mu.Unlock()
	if s == nil {
		return false
	}
	c.detach(s)
	return true
}

// detach removes s from its queue, deleting the queue if it was its last consumer (auto-delete).
func (c *mqttConn) detach(s *mqttSub) {
	if s.q.removeConsumer(&s.subscription) {
		c.vhost.deleteQueue(s.q, false, false)
	}
}
