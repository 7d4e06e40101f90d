package server

import (
	"bytes"
	"strings"
	"sync"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/storage"
)

// MQTT publishes, as RabbitMQ's plugin makes them: a PUBLISH to topic t is an AMQP message
// published to MQTTOptions.Exchange (amq.topic) with routing key t, '/' turned into '.', through
// vhost.publish with the connection as publishSource. QoS 0 is delivery mode 1, QoS 1 and 2
// delivery mode 2 (persistent), with the headers x-mqtt-publish-qos and x-mqtt-dup. PUBACK (QoS 1)
// and PUBREC (QoS 2) are sent once the message is on every queue it reached and, for a persistent
// message on a durable queue, once its commit group is durable; they go out in the order of the
// publishes. QoS 2 is exactly once on the way in: a PUBLISH repeated with a packet identifier
// awaiting its PUBREL is not published again.
//
// Permissions as RabbitMQ checks them: write on the exchange and the topic permission (write) on
// the routing key. A refused publish closes a 3.1/3.1.1 connection (it has no negative
// acknowledgement); an MQTT 5 client gets PUBACK or PUBREC with 0x87 (not authorized), or, at
// QoS 0, DISCONNECT 0x87.

// mqttToAMQP maps an MQTT topic to an AMQP routing key ('/' -> '.'), and amqpToMQTT back.
func mqttToAMQP(topic string) string { return strings.ReplaceAll(topic, "/", ".") }
func amqpToMQTT(key string) string   { return strings.ReplaceAll(key, ".", "/") }

// mqttProps holds the encoded AMQP properties of a publish without MQTT 5 properties, one per
// QoS and DUP flag, shared by every such message (a message's props are never changed in place).
var mqttProps = func() (out [3][2]struct {
	raw     []byte
	headers amqp.Table
}) {
	for qos := range 3 {
		for dup := range 2 {
			p := mqttAMQPProps(byte(qos), dup == 1)
			raw, err := p.Append(nil)
			if err != nil {
				panic("mqtt: encoding fixed properties: " + err.Error())
			}
			out[qos][dup].raw, out[qos][dup].headers = raw, p.Headers
		}
	}
	return out
}()

func mqttAMQPProps(qos byte, dup bool) amqp.Properties {
	p := amqp.Properties{DeliveryMode: 1, Headers: amqp.Table{"x-mqtt-publish-qos": int8(qos), "x-mqtt-dup": dup}}
	if qos > 0 {
		p.DeliveryMode = 2
	}
	return p
}

// mqttAck is an acknowledgement to send once the publishes before it are safe.
type mqttAck struct {
	typ  mqtt.PacketType // PUBACK, PUBREC or PUBCOMP
	id   uint16
	code mqtt.ReasonCode // MQTT 5
}

// handlePublish publishes one PUBLISH.
func (c *mqttConn) handlePublish(p *mqtt.Publish) error {
	if len(p.Properties.SubscriptionIDs) > 0 {
		// Only the server sends subscription identifiers [MQTT-3.3.4-6].
		return c.protocolError(mqtt.ProtocolError, "PUBLISH from the client with a subscription identifier")
	}
	topic, err := c.resolveAlias(p)
	if err != nil {
		return err
	}
	if p.QoS == 2 {
		if c.qos2 == nil {
			c.qos2 = map[uint16]struct{}{}
		}
		if _, dup := c.qos2[p.PacketID]; dup {
			// Published already, awaiting PUBREL: acknowledged again, not published again.
			c.acks = append(c.acks, mqttAck{typ: mqtt.PUBREC, id: p.PacketID})
			return nil
		}
	}
	if !c.waitPublishAllowed() {
		return errMQTTClose
	}
	exName := c.srv.opts.MQTT.Exchange
	key := mqttToAMQP(topic)
	v := c.vhost
	ex, err := v.checkPublish(c.user, exName, key, &c.pubAccess)
	if err != nil {
		c.log.Warn("MQTT publish refused", "client_id", c.clientID, "topic", topic, "err", err)
		if c.version != mqtt.V5 {
			return errMQTTClose
		}
		switch p.QoS {
		case 0:
			return c.protocolError(mqtt.NotAuthorized, "publish refused", "topic", topic)
		case 1:
			c.acks = append(c.acks, mqttAck{typ: mqtt.PUBACK, id: p.PacketID, code: mqtt.NotAuthorized})
		case 2:
			c.acks = append(c.acks, mqttAck{typ: mqtt.PUBREC, id: p.PacketID, code: mqtt.NotAuthorized})
		}
		return nil
	}
	msg := c.newMessage(p, exName, key)
	msg.mqttFrom = c.origin // for No Local subscriptions
	var buf [8]*queue
	v.publish(c, ex, msg, nil, nil, buf[:0])
	if p.Retain {
		c.retain(topic, p)
	}
	switch p.QoS {
	case 1:
		c.acks = append(c.acks, mqttAck{typ: mqtt.PUBACK, id: p.PacketID})
	case 2:
		c.qos2[p.PacketID] = struct{}{}
		// A persistent session keeps the identifier across a restart: PUBREC waits for it.
		if g := c.storeQoS2(storage.MQTTQoS2In, p.PacketID, true, true); g != nil {
			c.joined(g)
		}
		c.acks = append(c.acks, mqttAck{typ: mqtt.PUBREC, id: p.PacketID})
	}
	return nil
}

// handlePubrel completes a QoS 2 publish: PUBCOMP (after the PUBREC, in order).
func (c *mqttConn) handlePubrel(id uint16) error {
	code := mqtt.Success
	if _, ok := c.qos2[id]; ok {
		delete(c.qos2, id)
		// The client may reuse the identifier after PUBCOMP: the deletion is durable first.
		if g := c.storeQoS2(storage.MQTTQoS2In, id, false, true); g != nil {
			c.joined(g)
		}
	} else if c.version == mqtt.V5 {
		code = mqtt.PacketIdentifierNotFound
	}
	c.acks = append(c.acks, mqttAck{typ: mqtt.PUBCOMP, id: id, code: code})
	return nil
}

// resolveAlias returns the topic of p, applying MQTT 5 topic aliases.
func (c *mqttConn) resolveAlias(p *mqtt.Publish) (string, error) {
	if c.version != mqtt.V5 || !p.Properties.Has(mqtt.PropTopicAlias) {
		return p.Topic, nil
	}
	a := p.Properties.TopicAlias
	if a == 0 || a > mqttTopicAliasMax {
		return "", c.protocolError(mqtt.TopicAliasInvalid, "topic alias out of range", "alias", a)
	}
	if p.Topic == "" {
		t, ok := c.aliases[a]
		if !ok {
			return "", c.protocolError(mqtt.ProtocolError, "unknown topic alias", "alias", a)
		}
		return t, nil
	}
	if c.aliases == nil {
		c.aliases = map[uint16]string{}
	}
	c.aliases[a] = p.Topic
	return p.Topic, nil
}

// newMessage builds the AMQP message of a PUBLISH.
func (c *mqttConn) newMessage(p *mqtt.Publish, exName, key string) *message {
	msg := &message{exchange: exName, routingKey: key, body: bytes.Clone(p.Payload),
		persistent: p.QoS > 0, arrived: nowMillis(), mqttRetain: p.Retain}
	if c.version == mqtt.V5 && mqttHasAMQPProps(&p.Properties) {
		props := mqttAMQPProps(p.QoS, p.Dup)
		mqttToAMQPProps(&p.Properties, &props)
		raw, err := props.Append(nil)
		if err == nil {
			msg.props, msg.headers = raw, props.Headers
			if props.Expiration != "" {
				msg.ttl, msg.hasTTL = int64(p.Properties.MessageExpiry)*1000, true
			}
			return msg
		}
		c.log.Warn("MQTT 5 properties do not fit AMQP's; published without them", "err", err)
	}
	fixed := &mqttProps[p.QoS][b2i(p.Dup)]
	msg.props, msg.headers = fixed.raw, fixed.headers
	return msg
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The connection is a publishSource (publish.go).

func (c *mqttConn) batch() *writeBatch { return &c.wb } // publishes run on its read loop
func (c *mqttConn) flowID() any        { return c }
func (c *mqttConn) pause(q *queue, wake <-chan struct{}) {
	c.flowWaits = append(c.flowWaits, flowWait{q: q, wake: wake})
}
func (c *mqttConn) joined(g *commitGroup) { c.lastGroup = g }

// mqttAckLedger sends a connection's PUBACK, PUBREC and PUBCOMP in the order of its packets, each
// once the commit group of its batch (if any) is durable. Commit groups complete in order, so a
// batch waits for the last group it joined; batches queue behind one still waiting.
//
// Lock order: mqttAckLedger.mu comes before outbound.mu (it appends the packets under it).
type mqttAckLedger struct {
	mu      sync.Mutex
	waiting []*mqttAckBatch
}

type mqttAckBatch struct {
	acks []mqttAck
	done bool
	err  error
}

// flushAcks hands the batch's acknowledgements to the ledger (endBatch).
func (c *mqttConn) flushAcks() {
	if len(c.acks) == 0 {
		c.lastGroup = nil
		return
	}
	acks, g := c.acks, c.lastGroup
	c.acks, c.lastGroup = nil, nil
	l := &c.ackLedger
	l.mu.Lock()
	if g == nil && len(l.waiting) == 0 {
		c.out.write(func(b []byte) []byte { return c.appendAcks(b, acks, nil) })
		l.mu.Unlock()
		return
	}
	b := &mqttAckBatch{acks: acks, done: g == nil}
	l.waiting = append(l.waiting, b)
	l.mu.Unlock()
	if g == nil {
		return // behind a batch still waiting: sent with it
	}
	c.srv.commit.onCommit(g, func(err error) {
		l.mu.Lock()
		b.done, b.err = true, err
		var fail bool
		for len(l.waiting) > 0 && l.waiting[0].done {
			w := l.waiting[0]
			l.waiting[0] = nil
			l.waiting = l.waiting[1:]
			if w.err != nil && c.version != mqtt.V5 {
				fail = true
				continue
			}
			c.out.write(func(dst []byte) []byte { return c.appendAcks(dst, w.acks, w.err) })
		}
		l.mu.Unlock()
		if fail {
			// 3.1.1 has no negative acknowledgement: the client publishes again on a new connection.
			c.log.Error("MQTT publish not stored; closing", "client_id", c.clientID, "err", err)
			c.closeFromOutside(mqtt.UnspecifiedError)
		}
	})
}

// appendAcks encodes acks; err (the store failed) makes them MQTT 5 failures.
func (c *mqttConn) appendAcks(b []byte, acks []mqttAck, err error) []byte {
	for _, a := range acks {
		pa := mqtt.PubAck{PacketID: a.id, ReasonCode: a.code}
		if err != nil && a.typ != mqtt.PUBCOMP {
			pa.ReasonCode = mqtt.UnspecifiedError
		}
		var p mqtt.Packet
		switch a.typ {
		case mqtt.PUBREC:
			p = (*mqtt.PubRec)(&pa)
		case mqtt.PUBCOMP:
			p = (*mqtt.PubComp)(&pa)
		default:
			p = &pa
		}
		nb, aerr := mqtt.Append(b, p, c.version)
		if aerr != nil {
			c.log.Error("encoding MQTT acknowledgement", "err", aerr)
			continue
		}
		b = nb
	}
	return b
}
