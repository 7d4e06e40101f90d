package server

import (
	"bytes"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/storage"
)

// Retained messages and wills.
//
// A PUBLISH with the retain flag replaces the message retained on its topic in the vhost (an empty
// payload removes it). Retained messages are durable: each is written to the store (key prefix
// 'H', storage/keys_mqtt.go) through the committer, in the commit group the publish's PUBACK waits
// for, and read back when a vhost's retained messages are first needed after a start. A new
// subscription gets the retained messages its filter matches (mqtt.Match: wildcards included, and
// no '$' topic for a filter starting with a wildcard), with the retain flag set, at the lower of
// the subscription's QoS and the message's; MQTT 5's retain handling 2 sends none, 1 only to a new
// subscription. Retained messages keep topic, payload and QoS (not MQTT 5 properties).
//
// Lock: retainedStore.mu is a leaf but for committer.mu, taken under it so that the store's writes
// for one topic are in the order of the map's changes.

type retainedStore struct {
	mu struct {
		sync.Mutex
		vhosts map[string]map[string]*retainedMsg // vhost -> topic -> message; a vhost present is loaded
	}
}

type retainedMsg struct {
	topic   string
	qos     byte
	payload []byte
}

// encodeRetained is a retained message's store record: version, QoS, payload.
func encodeRetained(m *retainedMsg) []byte {
	return append([]byte{storage.RecordVersion, m.qos}, m.payload...)
}

func decodeRetained(topic string, rec []byte) (*retainedMsg, error) {
	if len(rec) < 2 || rec[0] != storage.RecordVersion || rec[1] > 2 {
		return nil, fmt.Errorf("malformed retained message record for topic %q", topic)
	}
	return &retainedMsg{topic: topic, qos: rec[1], payload: bytes.Clone(rec[2:])}, nil
}

// vhostLocked returns the retained messages of vhost, reading them from the store on first use.
func (s *Server) retainedLocked(vhost string) map[string]*retainedMsg {
	rs := &s.mqtt.retained
	if rs.mu.vhosts == nil {
		rs.mu.vhosts = map[string]map[string]*retainedMsg{}
	}
	m := rs.mu.vhosts[vhost]
	if m != nil {
		return m
	}
	m = map[string]*retainedMsg{}
	err := s.store.Scan(storage.RetainedPrefix(vhost), func(k, val []byte) error {
		_, topic, err := storage.ParseRetainedKey(k)
		if err != nil {
			return err
		}
		r, err := decodeRetained(topic, val)
		if err != nil {
			return err
		}
		m[topic] = r
		return nil
	})
	if err != nil {
		s.log.Error("reading retained MQTT messages", "vhost", vhost, "err", err)
	}
	rs.mu.vhosts[vhost] = m
	return m
}

// retain makes p the message retained on topic (removes it for an empty payload), written to the
// store in a commit group the publish's acknowledgement waits for.
func (c *mqttConn) retain(topic string, p *mqtt.Publish) {
	if g := c.srv.setRetained(c.vhost.name, topic, p.QoS, p.Payload); g != nil {
		c.joined(g)
	}
}

func (s *Server) setRetained(vhost, topic string, qos byte, payload []byte) *commitGroup {
	rs := &s.mqtt.retained
	rs.mu.Lock()
	defer rs.mu.Unlock()
	m := s.retainedLocked(vhost)
	key := storage.RetainedKey(vhost, topic)
	if len(payload) == 0 {
		if m[topic] == nil {
			return nil
		}
		delete(m, topic)
		return s.commit.add(true, func(b *storage.Batch) { b.Delete(key) })
	}
	r := &retainedMsg{topic: topic, qos: qos, payload: bytes.Clone(payload)}
	m[topic] = r
	rec := encodeRetained(r)
	return s.commit.add(true, func(b *storage.Batch) { b.Set(key, rec) })
}

// matchRetained returns the messages retained in vhost whose topics filter matches, by topic.
func (s *Server) matchRetained(vhost, filter string) []*retainedMsg {
	rs := &s.mqtt.retained
	rs.mu.Lock()
	var out []*retainedMsg
	for topic, r := range s.retainedLocked(vhost) {
		if mqtt.Match(filter, topic) {
			out = append(out, r)
		}
	}
	rs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].topic < out[j].topic })
	return out
}

// sendRetained sends the retained messages a new subscription, with subscription identifier subID
// (0: none), matches.
func (c *mqttConn) sendRetained(sub mqtt.Subscription, subID uint32) {
	if sub.RetainHandling == 2 {
		return
	}
	var ids []uint32
	if subID != 0 {
		ids = []uint32{subID}
	}
	for _, r := range c.srv.matchRetained(c.vhost.name, sub.Filter) {
		qos := min(sub.QoS, r.qos)
		m := &message{routingKey: mqttToAMQP(r.topic), body: r.payload}
		if c.maxOut > 0 && c.tooLarge(m, qos, ids, true) {
			continue // [MQTT-3.1.2-25]
		}
		var id uint16
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return
		}
		if qos > 0 {
			id = c.nextIDLocked()
			c.mu.inflight[id] = mqttInflight{qos2: qos == 2}
		}
		c.mu.Unlock()
		c.out.writeVia(&c.wb, func(b []byte) []byte { return c.appendDelivery(b, m, qos, id, false, true, ids) })
	}
}

// checkWill checks a will at CONNECT; the permission to publish it is checked when it is published.
func (c *mqttConn) checkWill(w *mqtt.Will) mqtt.ReasonCode {
	if err := mqtt.ValidTopicName(w.Topic); err != nil {
		return mqtt.TopicNameInvalid
	}
	return mqtt.Success
}

// willDue publishes the will of a connection that ended without DISCONNECT: at once, or for an
// MQTT 5 will delay interval on a session that outlives the connection, after the delay (or the
// session expiry, if sooner) unless a connection with the client id comes first (takeOver). A
// delayed will runs while the server's timer set is open; Shutdown drops the ones still waiting.
func (c *mqttConn) willDue() {
	d := time.Duration(c.will.Properties.WillDelay) * time.Second
	if c.version != mqtt.V5 || d == 0 || !c.persistent {
		c.publishWill()
		return
	}
	if c.expiry != 0xFFFFFFFF {
		d = min(d, time.Duration(c.expiry)*time.Second)
	}
	st := &c.srv.mqtt
	key := mqttClientKey{c.vhost.name, c.clientID}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.mu.clients[key] != c && st.mu.clients[key] != nil {
		return // taken over: the session goes on, the will is not due
	}
	if st.mu.wills == nil {
		st.mu.wills = map[mqttClientKey]*time.Timer{}
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		st.mu.Lock()
		mine := st.mu.wills[key] == t
		if mine {
			delete(st.mu.wills, key)
		}
		st.mu.Unlock()
		if !mine || !c.srv.timers.enter() {
			return
		}
		defer c.srv.timers.wg.Done()
		c.publishWill()
	})
	st.mu.wills[key] = t
}

// publishWill publishes the will of a connection that ended without DISCONNECT (or with MQTT 5's
// 0x04), with the client's permissions, as the broker's own publish (no flow control).
func (c *mqttConn) publishWill() {
	w := c.will
	exName := c.srv.opts.MQTT.Exchange
	key := mqttToAMQP(w.Topic)
	ex, err := c.vhost.checkPublish(c.user, exName, key, &c.pubAccess)
	if err != nil {
		c.log.Warn("MQTT will not published", "client_id", c.clientID, "topic", w.Topic, "err", err)
		return
	}
	p := &mqtt.Publish{Topic: w.Topic, QoS: w.QoS, Retain: w.Retain, Payload: w.Payload, Properties: w.Properties}
	msg := c.newMessage(p, exName, key)
	var buf [8]*queue
	c.vhost.publish(nil, ex, msg, nil, nil, buf[:0])
	if w.Retain {
		c.srv.setRetained(c.vhost.name, w.Topic, w.QoS, w.Payload)
	}
	c.log.Debug("MQTT will published", "client_id", c.clientID, "topic", w.Topic)
}
