package server

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/storage"
)

// MQTT sessions and subscriptions, as RabbitMQ 3.10's plugin keeps them: a client's subscriptions
// are bindings from MQTTOptions.Exchange to the queues mqtt-subscription-<clientid>qos0 and ...qos1
// (and ...qos2, which RabbitMQ, granting QoS 2 as 1, does not have), with the filter mapped to a
// binding key ('/' -> '.', '+' -> '*', '#' stays). A subscription binds to the queue of its granted
// QoS, and only to it.
//
// A persistent session (3.1.1 clean session 0; MQTT 5 session expiry above 0) has durable queues
// that outlive the connection, with x-expires the session expiry (3.1.1: MQTTOptions.SubscriptionTTL,
// RabbitMQ's 24 hours): a client that comes back with the same client id in the same vhost finds its
// subscriptions and the messages that arrived meanwhile, and CONNACK says session present. A clean
// session's queues are auto-delete and not durable (RabbitMQ makes the qos1 one durable; nothing of
// a clean session survives the connection, so Warren does not fsync its messages), and are deleted
// with the connection.
//
// The connection consumes each queue through an mqttSub, its deliveryTarget: the qos0 queue without
// acknowledgements, the others with them. A message goes out at the lower of the subscription's
// QoS and the message's own (x-mqtt-publish-qos; 1 for a message from AMQP, as RabbitMQ). A QoS 1
// PUBLISH stays in flight, its entry unsettled, until PUBACK; the in-flight window (the client's
// receive maximum in MQTT 5, MQTTOptions.Prefetch before) is the credit. A message delivered at QoS
// 0 from another queue is settled at once (by the settler: deliver runs under the queue's lock). A
// QoS 2 PUBLISH is settled on PUBREC; its packet identifier stays in flight until PUBCOMP. When the
// connection ends, what is in flight is requeued: a persistent session gets it again on its next
// connection with DUP set, and the PUBRELs it was owed (kept in memory, not across a restart).

// mqttSub is one of a connection's queue consumers.
type mqttSub struct {
	subscription
	c      *mqttConn
	q      *queue
	qos    byte
	shared string      // a shared subscription's topic filter (mqtt_shared.go); "" for the session's queues
	opts   mqttSubOpts // a shared subscription's options (the session's queues: mqttConn.mu.keys)
}

// mqttSubOpts are a subscription's MQTT 5 options that act on its deliveries (MQTT 5.0 sections
// 3.8.3.1 and 3.8.2.1.2): its subscription identifier, No Local and Retain As Published. A
// session's subscriptions keep them in the arguments of their bindings
// (x-mqtt-subscription-opts, as RabbitMQ 3.13 does), so they last as long as the binding: across
// reconnects of a persistent session and restarts. A subscription without them has no arguments.
type mqttSubOpts struct {
	filter  string // the topic filter
	id      uint32 // subscription identifier; 0: none
	noLocal bool   // not sent what the client itself published
	rap     bool   // Retain As Published: the retain flag as published (otherwise 0)
}

// special reports whether deliver must look at the subscription's options.
func (o mqttSubOpts) special() bool { return o.id != 0 || o.noLocal || o.rap }

// mqttSubOptsArg is the binding argument that keeps a subscription's options.
const mqttSubOptsArg = "x-mqtt-subscription-opts"

// args returns the binding arguments that keep o (nil when o has no options).
func (o mqttSubOpts) args() amqp.Table {
	if !o.special() {
		return nil
	}
	t := amqp.Table{"no-local": o.noLocal, "retain-as-published": o.rap}
	if o.id != 0 {
		t["id"] = int64(o.id)
	}
	return amqp.Table{mqttSubOptsArg: t}
}

// mqttOptsFromArgs reads the options of a binding with key (filter from the key) back.
func mqttOptsFromArgs(key string, args amqp.Table) mqttSubOpts {
	o := mqttSubOpts{filter: mqttKeyToFilter(key)}
	t, _ := args[mqttSubOptsArg].(amqp.Table)
	if t == nil {
		return o
	}
	if n, ok := intArg(t["id"]); ok && n > 0 && n <= 268435455 {
		o.id = uint32(n)
	}
	o.noLocal, _ = t["no-local"].(bool)
	o.rap, _ = t["retain-as-published"].(bool)
	return o
}

func mqttQueueName(clientID string, qos byte) string {
	return "mqtt-subscription-" + clientID + "qos" + strconv.Itoa(int(qos))
}

// mqttFilterToKey maps a topic filter to a binding key.
func mqttFilterToKey(filter string) string {
	var b strings.Builder
	b.Grow(len(filter))
	for i := 0; i < len(filter); i++ {
		switch ch := filter[i]; ch {
		case '/':
			b.WriteByte('.')
		case '+':
			b.WriteByte('*')
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// deliver is deliveryTarget.deliver: PUBLISH if the connection has credit for it.
func (s *mqttSub) deliver(e *qentry, run *dispatchRun) bool {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed || c.out.full.Load() {
		return false
	}
	var ids []uint32
	var retain bool
	if k := e.msg.routingKey; (len(k) > 0 && k[0] == '$') || c.mu.special[s.qos] > 0 || s.opts.special() {
		var send bool
		if send, ids, retain = c.matchLocked(s, e.msg); !send {
			// Only No Local subscriptions, or filters starting with a wildcard for a '$' topic
			// (MQTT 5.0 section 4.7.2, 3.1.1 section 4.7.2), match: taken and dropped.
			c.dropLocked(s, e)
			return true
		}
	}
	qos := s.qos
	if qos > 0 {
		qos = min(qos, messageQoS(e.msg))
	}
	if c.maxOut > 0 && c.tooLarge(e.msg, qos, ids, retain) {
		// Larger than the client's maximum packet size: discarded as if it had been sent
		// [MQTT-3.1.2-25] (taken and settled, so that it does not block the queue).
		c.dropLocked(s, e)
		return true
	}
	var id uint16
	if qos > 0 {
		if len(c.mu.inflight) >= c.recvMax {
			return false
		}
		id = c.nextIDLocked()
		c.mu.inflight[id] = mqttInflight{sub: s, e: e, qos2: qos == 2}
	} else if !s.noAck {
		c.mu.settle = append(c.mu.settle, mqttSettle{q: s.q, e: e})
		c.ringSettler()
	}
	dup := e.redelivered && qos > 0
	c.out.writeVia(run.wb, func(b []byte) []byte { return c.appendDelivery(b, e.msg, qos, id, dup, retain, ids) })
	return true
}

// dropLocked takes e from s's queue without sending it: settled by the settler unless s does not
// acknowledge. c.mu is held.
func (c *mqttConn) dropLocked(s *mqttSub, e *qentry) {
	if !s.noAck {
		c.mu.settle = append(c.mu.settle, mqttSettle{q: s.q, e: e})
		c.ringSettler()
	}
}

// matchLocked finds the subscriptions of s's queue (or s itself, shared) that m's topic matches by
// MQTT's rules, for a '$' topic or when some have options. send is false when none matches but
// for No Local ones of the client's own message, or, for a '$' topic, when none matches (the
// binding that routed it starts with a wildcard). ids are the matching subscriptions' identifiers
// (several when several match: the one PUBLISH carries them all, [MQTT-3.3.4-4]); retain is the
// retain flag to send, set if a matching subscription has Retain As Published and m was published
// with it. c.mu is held.
func (c *mqttConn) matchLocked(s *mqttSub, m *message) (send bool, ids []uint32, retain bool) {
	topic := amqpToMQTT(m.routingKey)
	local := m.mqttFrom != nil && *m.mqttFrom == c.clientID
	var matched, excluded bool
	try := func(o *mqttSubOpts) {
		if !mqtt.Match(o.filter, topic) {
			return
		}
		if o.noLocal && local {
			excluded = true
			return
		}
		matched = true
		if o.id != 0 {
			ids = append(ids, o.id)
		}
		retain = retain || (o.rap && m.mqttRetain)
	}
	if s.shared != "" {
		try(&s.opts)
	} else {
		for _, o := range c.mu.keys[s.qos] {
			try(&o)
		}
	}
	if len(ids) > 1 {
		slices.Sort(ids)
	}
	switch {
	case matched:
		return true, ids, retain
	case excluded, topic != "" && topic[0] == '$':
		return false, nil, false
	}
	// Routed by a binding no subscription here lists (the '/' <-> '.' mapping makes some topics
	// look alike): sent, as before subscription options.
	return true, nil, false
}

// tooLarge reports whether the PUBLISH of m would pass the client's maximum packet size (without
// a topic alias, which may or may not be used; the payload is not copied to find out).
func (c *mqttConn) tooLarge(m *message, qos byte, ids []uint32, retain bool) bool {
	if 5+len(m.routingKey)+len(m.body) > int(c.maxOut) {
		return true
	}
	p := mqtt.Publish{Topic: amqpToMQTT(m.routingKey), QoS: qos, PacketID: 1, Retain: retain}
	if c.version == mqtt.V5 {
		amqpToMQTTProps(m, &p.Properties)
		p.Properties.SubscriptionIDs = ids
	}
	head, err := mqtt.AppendPublish(nil, &p, c.version)
	if err != nil {
		return true
	}
	// head is the packet without payload: fixed header byte, remaining length, the rest.
	rest := len(head) - 2
	for n := 1; n <= 4; n++ { // the remaining length's own size, from the packet's
		if r := len(head) - 1 - n; varintLen(r) == n {
			rest = r
			break
		}
	}
	total := rest + len(m.body)
	return 1+varintLen(total)+total > int(c.maxOut)
}

// varintLen is the size of n as MQTT's variable byte integer.
func varintLen(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 16384:
		return 2
	case n < 2097152:
		return 3
	}
	return 4
}

// mqttKeyToFilter maps a binding key back to a topic filter.
func mqttKeyToFilter(key string) string {
	return strings.NewReplacer(".", "/", "*", "+").Replace(key)
}

// hasKey reports whether the session has a subscription with binding key key.
func (c *mqttConn) hasKey(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ks := range c.mu.keys {
		if _, ok := ks[key]; ok {
			return true
		}
	}
	return false
}

// setKey records the subscription with binding key in the queue for qos, with its options.
func (c *mqttConn) setKey(qos byte, key string, o mqttSubOpts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.keys[qos] == nil {
		c.mu.keys[qos] = map[string]mqttSubOpts{}
	}
	if old, ok := c.mu.keys[qos][key]; ok && old.special() {
		c.mu.special[qos]--
	}
	c.mu.keys[qos][key] = o
	if o.special() {
		c.mu.special[qos]++
	}
}

// dropKey forgets the subscription with binding key in the queue for qos and returns it.
func (c *mqttConn) dropKey(qos byte, key string) (mqttSubOpts, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.mu.keys[qos][key]
	if ok {
		delete(c.mu.keys[qos], key)
		if o.special() {
			c.mu.special[qos]--
		}
	}
	return o, ok
}

// queueDeleted is deliveryTarget.queueDeleted: the subscription is gone (MQTT has no way to tell
// the client).
func (s *mqttSub) queueDeleted() bool {
	c := s.c
	c.mu.Lock()
	if c.mu.subs[s.qos] == s {
		c.mu.subs[s.qos] = nil
	}
	for f, x := range c.mu.shared {
		if x == s {
			delete(c.mu.shared, f)
		}
	}
	c.mu.Unlock()
	return false
}

func (s *mqttSub) cancelled()      {}
func (s *mqttSub) deliversOn() any { return s.c }
func (s *mqttSub) describe(ci *ConsumerInfo) {
	ci.Prefetch = s.c.recvMax
	if s.noAck {
		ci.Prefetch = 0
	}
}

// messageQoS is the QoS a message was published with: its x-mqtt-publish-qos header, or 1.
func messageQoS(m *message) byte {
	if q, ok := m.headers["x-mqtt-publish-qos"]; ok {
		if n, ok := intArg(q); ok && n >= 0 && n <= 2 {
			return byte(n)
		}
	}
	return 1
}

// nextIDLocked returns a packet identifier not in flight. c.mu is held; the caller checked that
// fewer than 65535 are.
func (c *mqttConn) nextIDLocked() uint16 {
	for {
		c.mu.nextID++
		if c.mu.nextID == 0 {
			c.mu.nextID = 1
		}
		if _, used := c.mu.inflight[c.mu.nextID]; !used {
			return c.mu.nextID
		}
	}
}

// appendDelivery encodes the PUBLISH of m, with the subscription identifiers ids. It runs in a
// write closure (under out.mu, in wire order), so it may use and set the client's topic aliases.
func (c *mqttConn) appendDelivery(b []byte, m *message, qos byte, id uint16, dup, retain bool, ids []uint32) []byte {
	p := mqtt.Publish{Topic: amqpToMQTT(m.routingKey), QoS: qos, PacketID: id, Dup: dup, Retain: retain, Payload: m.body}
	var newAlias string
	if c.version == mqtt.V5 {
		amqpToMQTTProps(m, &p.Properties)
		p.Properties.SubscriptionIDs = ids
		newAlias = c.outAlias(&p)
	}
	nb, err := mqtt.AppendPublish(b, &p, c.version)
	if err != nil {
		c.log.Error("encoding MQTT PUBLISH", "err", err)
		return b
	}
	if c.maxOut > 0 && len(nb)-len(b) > int(c.maxOut) {
		// Larger than the client takes: discarded, as MQTT 5 says (deliver checked already; this
		// is a last guard).
		return nb[:len(b)]
	}
	if newAlias != "" { // the alias is the client's once the packet that sets it goes out
		if c.outAliases == nil {
			c.outAliases = map[string]uint16{}
		}
		c.outAliases[newAlias] = p.Properties.TopicAlias
	}
	return nb
}

// outAlias gives p a topic alias (MQTT 5.0 section 3.3.2.3.4), within the client's topic alias
// maximum: a topic that has one is sent as the alias alone; the first topics, up to the maximum,
// are given one as they are first sent (topic and alias); past the maximum, new topics go out in
// full. Called in wire order under out.mu (appendDelivery).
// It returns the topic of a new alias, which the caller records once the packet is encoded.
func (c *mqttConn) outAlias(p *mqtt.Publish) (newAlias string) {
	if c.aliasMax == 0 {
		return "" // [MQTT-3.1.2-26]
	}
	if a, ok := c.outAliases[p.Topic]; ok {
		p.Topic = ""
		p.Properties.TopicAlias = a
		p.Properties.Set(mqtt.PropTopicAlias)
		return ""
	}
	if len(c.outAliases) >= int(c.aliasMax) {
		return "" // [MQTT-3.1.2-27]: no alias above the maximum
	}
	p.Properties.TopicAlias = uint16(len(c.outAliases) + 1)
	p.Properties.Set(mqtt.PropTopicAlias)
	return p.Topic
}

// handlePuback settles the delivery the client acknowledged and lets the queues deliver more.
func (c *mqttConn) handlePuback(id uint16) error {
	c.mu.Lock()
	in, ok := c.mu.inflight[id]
	ok = ok && !in.qos2 && !in.released // a QoS 2 delivery is not acknowledged with PUBACK
	full := len(c.mu.inflight) >= c.recvMax
	if ok {
		delete(c.mu.inflight, id)
	}
	c.mu.Unlock()
	if !ok {
		return nil // not in flight (already settled): ignored
	}
	if in.e != nil {
		in.sub.q.settle([]*qentry{in.e})
	}
	if full {
		c.kickAll()
	}
	return nil
}

// handlePubrec settles a QoS 2 delivery the client received and answers PUBREL; the packet
// identifier stays in flight until PUBCOMP. An MQTT 5 PUBREC with a failure code ends the flow
// there (the message is settled: the client refused it).
func (c *mqttConn) handlePubrec(id uint16, code mqtt.ReasonCode) error {
	c.mu.Lock()
	in, ok := c.mu.inflight[id]
	ok = ok && in.qos2
	full := len(c.mu.inflight) >= c.recvMax
	refused := c.version == mqtt.V5 && code >= 0x80
	if ok {
		if refused {
			delete(c.mu.inflight, id)
		} else {
			c.mu.inflight[id] = mqttInflight{released: true}
		}
	}
	c.mu.Unlock()
	if ok && !refused {
		// Owed a PUBCOMP from here, across a restart too: stored before the entry is settled.
		c.storeQoS2(storage.MQTTQoS2Out, id, true, false)
	}
	if ok && in.e != nil {
		in.sub.q.settle([]*qentry{in.e})
	}
	if ok && refused {
		if full {
			c.kickAll()
		}
		return nil
	}
	rel := mqtt.PubRel{PacketID: id}
	if !ok {
		c.mu.Lock()
		_, released := c.mu.inflight[id]
		c.mu.Unlock()
		if !released && c.version == mqtt.V5 {
			rel.ReasonCode = mqtt.PacketIdentifierNotFound
		}
	}
	c.writePacket(&c.wb, &rel)
	return nil
}

// handlePubcomp ends a QoS 2 delivery: its packet identifier is free again.
func (c *mqttConn) handlePubcomp(id uint16) error {
	c.mu.Lock()
	in, ok := c.mu.inflight[id]
	ok = ok && in.released
	full := len(c.mu.inflight) >= c.recvMax
	if ok {
		delete(c.mu.inflight, id)
	}
	c.mu.Unlock()
	if ok {
		c.storeQoS2(storage.MQTTQoS2Out, id, false, false)
	}
	if ok && full {
		c.kickAll()
	}
	return nil
}

// kickAll lets the connection's queues deliver again (credit was freed, or the write buffer
// drained).
func (c *mqttConn) kickAll() {
	c.mu.Lock()
	subs := c.subsLocked()
	c.mu.Unlock()
	for _, s := range subs {
		s.q.kick([]*subscription{&s.subscription}, nil)
	}
}

// subsLocked returns every consumer of the connection. c.mu is held.
func (c *mqttConn) subsLocked() []*mqttSub {
	out := make([]*mqttSub, 0, 2+len(c.mu.shared))
	for _, s := range c.mu.subs {
		if s != nil {
			out = append(out, s)
		}
	}
	for _, s := range c.mu.shared {
		out = append(out, s)
	}
	return out
}

// queueArgs returns the declaration of the session's queue for qos.
func (c *mqttConn) sessionQueue(qos byte) *amqp.QueueDeclare {
	d := &amqp.QueueDeclare{Queue: mqttQueueName(c.clientID, qos)}
	if !c.persistent {
		d.AutoDelete = true
		return d
	}
	d.Durable = true
	var ms int64
	switch {
	case c.version == mqtt.V5 && c.expiry != 0xFFFFFFFF:
		ms = int64(c.expiry) * 1000
	case c.version != mqtt.V5 && c.srv.opts.MQTT.SubscriptionTTL > 0:
		ms = c.srv.opts.MQTT.SubscriptionTTL.Milliseconds()
	}
	if ms > 0 {
		d.Arguments = amqp.Table{"x-expires": ms}
	}
	return d
}

// startSession discards the client's previous session (clean start) or finds it: it returns the
// session's queues that exist, for the connection to consume once CONNACK is queued.
func (c *mqttConn) startSession(cleanStart bool) (resume [3]*queue, err error) {
	v := c.vhost
	for qos := range byte(3) {
		name := mqttQueueName(c.clientID, qos)
		v.mu.RLock()
		q := v.mu.queues[name]
		v.mu.RUnlock()
		if q == nil {
			continue
		}
		if cleanStart {
			if err := c.srv.checkAccess(c.user, v, accessConfigure, "queue", name); err != nil {
				return resume, err
			}
			if _, err := v.deleteQueue(q, false, false); err != nil {
				return resume, err
			}
			continue
		}
		if err := c.srv.checkAccess(c.user, v, accessRead, "queue", name); err != nil {
			return resume, err
		}
		resume[qos] = q
	}
	return resume, nil
}

// consume attaches the connection's consumer for qos to q.
func (c *mqttConn) consume(q *queue, qos byte) error {
	s := &mqttSub{c: c, q: q, qos: qos}
	s.subscription = subscription{tag: "mqtt-" + c.clientID + "-qos" + strconv.Itoa(int(qos)), target: s, noAck: qos == 0}
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return errMQTTClose
	}
	c.mu.subs[qos] = s
	c.mu.Unlock()
	if ex := c.vhost.exchange(c.srv.opts.MQTT.Exchange); ex != nil {
		// The keys of a resumed session's queue, for '$' topics.
		ex.mu.Lock()
		bs := ex.mu.router.Bindings()
		ex.mu.Unlock()
		for _, b := range bs {
			if b.Dest == destination(q) {
				c.setKey(qos, b.Key, mqttOptsFromArgs(b.Key, b.Args))
			}
		}
	}
	if err := q.addConsumer(&s.subscription, func() {}); err != nil {
		c.mu.Lock()
		c.mu.subs[qos] = nil
		c.mu.Unlock()
		return err
	}
	return nil
}

// ensureQueue returns the session's queue for qos, declaring it (configure permission) and
// consuming it if needed.
func (c *mqttConn) ensureQueue(qos byte) (*queue, error) {
	c.mu.Lock()
	s := c.mu.subs[qos]
	c.mu.Unlock()
	if s != nil {
		return s.q, nil
	}
	d := c.sessionQueue(qos)
	if err := c.srv.checkAccess(c.user, c.vhost, accessConfigure, "queue", d.Queue); err != nil {
		return nil, err
	}
	if err := c.srv.checkAccess(c.user, c.vhost, accessRead, "queue", d.Queue); err != nil {
		return nil, err
	}
	q, err := c.vhost.declareQueue(nil, d)
	if err != nil {
		return nil, err
	}
	if err := c.consume(q, qos); err != nil {
		return nil, err
	}
	return q, nil
}

// handleSubscribe binds each filter to the queue of its granted QoS and answers with SUBACK, then
// sends the retained messages the new subscriptions match.
func (c *mqttConn) handleSubscribe(p *mqtt.Subscribe) error {
	codes := make([]mqtt.ReasonCode, len(p.Subscriptions))
	granted := make([]mqtt.Subscription, 0, len(p.Subscriptions))
	var id uint32 // the subscription identifier of every subscription of the packet
	if c.version == mqtt.V5 && len(p.Properties.SubscriptionIDs) > 0 {
		id = p.Properties.SubscriptionIDs[0]
	}
	for i, sub := range p.Subscriptions {
		existed := c.hasKey(mqttFilterToKey(sub.Filter))
		if c.version != mqtt.V5 {
			sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling = false, false, 0
		}
		code := c.subscribe(sub, id)
		codes[i] = code
		// Retain handling 1: retained messages only for a subscription that did not exist.
		if code <= mqtt.GrantedQoS2 && !mqtt.IsShared(sub.Filter) && !(sub.RetainHandling == 1 && existed) {
			gs := sub
			gs.QoS = byte(code)
			granted = append(granted, gs)
		}
	}
	if c.version != mqtt.V5 {
		for i, code := range codes {
			if code >= 0x80 {
				codes[i] = 0x80
			}
		}
	}
	c.writePacket(&c.wb, &mqtt.Suback{PacketID: p.PacketID, ReasonCodes: codes})
	for _, gs := range granted {
		c.sendRetained(gs, id)
	}
	return nil
}

// subscribe makes one subscription, with subscription identifier id (0: none), and returns its
// SUBACK code (the MQTT 5 one).
func (c *mqttConn) subscribe(sub mqtt.Subscription, id uint32) mqtt.ReasonCode {
	if mqtt.IsShared(sub.Filter) {
		return c.subscribeShared(sub, id)
	}
	if err := mqtt.ValidTopicFilter(sub.Filter); err != nil {
		return mqtt.TopicFilterInvalid
	}
	qos := sub.QoS
	v, exName, key := c.vhost, c.srv.opts.MQTT.Exchange, mqttFilterToKey(sub.Filter)
	o := mqttSubOpts{filter: sub.Filter, id: id, noLocal: sub.NoLocal, rap: sub.RetainAsPublished}
	q, err := c.ensureQueue(qos)
	if err == nil {
		err = c.checkBind(q.name, exName, key)
	}
	if err == nil {
		err = v.bind(exName, q, key, o.args(), nil)
	}
	if err != nil {
		c.log.Warn("MQTT subscription refused", "client_id", c.clientID, "filter", sub.Filter, "err", err)
		if ae, ok := err.(*amqp.Error); ok && ae.Code == amqp.AccessRefused {
			return mqtt.NotAuthorized
		}
		return mqtt.UnspecifiedError
	}
	c.mu.Lock()
	prev, had := c.mu.keys[qos][key]
	c.mu.Unlock()
	c.setKey(qos, key, o)
	if had && !prev.args().Equal(o.args()) {
		// The same filter with other options replaces the subscription (MQTT 5.0 section 3.8.4):
		// the binding that kept the old options goes.
		if err := v.unbind(exName, q, key, prev.args(), nil); err != nil {
			c.log.Warn("MQTT resubscribe", "client_id", c.clientID, "key", key, "err", err)
		}
	}
	// A filter lives in one queue: the one of its latest granted QoS.
	for other := range byte(3) {
		if other != qos {
			c.unbindFrom(other, key)
		}
	}
	return mqtt.ReasonCode(qos)
}

// checkBind checks what queue.bind needs (write on the queue, read on the exchange) and the
// topic permission (read) on the binding key, as RabbitMQ does for a subscription.
func (c *mqttConn) checkBind(qName, exName, key string) error {
	s, v := c.srv, c.vhost
	if err := s.checkAccess(c.user, v, accessWrite, "queue", qName); err != nil {
		return err
	}
	if err := s.checkAccess(c.user, v, accessRead, "exchange", exName); err != nil {
		return err
	}
	return s.checkTopicAccess(c.user, v, accessRead, exName, key)
}

// unbindFrom removes binding key from the session's queue for qos; it reports whether there was
// one.
func (c *mqttConn) unbindFrom(qos byte, key string) bool {
	o, _ := c.dropKey(qos, key)
	args := o.args()
	v, exName := c.vhost, c.srv.opts.MQTT.Exchange
	v.mu.RLock()
	q := v.mu.queues[mqttQueueName(c.clientID, qos)]
	v.mu.RUnlock()
	ex := v.exchange(exName)
	if q == nil || ex == nil {
		return false
	}
	ex.mu.Lock()
	had := ex.mu.router.Has(q, key, args)
	ex.mu.Unlock()
	if !had {
		return false
	}
	if err := v.unbind(exName, q, key, args, nil); err != nil {
		c.log.Warn("MQTT unsubscribe", "client_id", c.clientID, "key", key, "err", err)
	}
	return true
}

// handleUnsubscribe removes each filter's binding and answers with UNSUBACK.
func (c *mqttConn) handleUnsubscribe(p *mqtt.Unsubscribe) error {
	var codes []mqtt.ReasonCode
	if c.version == mqtt.V5 {
		codes = make([]mqtt.ReasonCode, len(p.Filters))
	}
	for i, f := range p.Filters {
		if mqtt.IsShared(f) {
			if !c.unsubscribeShared(f) && codes != nil {
				codes[i] = mqtt.NoSubscriptionExisted
			}
			continue
		}
		key := mqttFilterToKey(f)
		had0 := c.unbindFrom(0, key)
		had1 := c.unbindFrom(1, key)
		had2 := c.unbindFrom(2, key)
		if codes != nil && !had0 && !had1 && !had2 {
			codes[i] = mqtt.NoSubscriptionExisted
		}
	}
	c.writePacket(&c.wb, &mqtt.Unsuback{PacketID: p.PacketID, ReasonCodes: codes})
	return nil
}

// teardown ends the connection's part in its session: no more deliveries, in-flight messages
// requeued, the queues of a session that does not persist deleted, the will published if the
// client did not disconnect normally, and the client id released.
func (c *mqttConn) teardown() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	subs := c.subsLocked()
	c.mu.subs, c.mu.shared = [3]*mqttSub{}, nil
	inflight := c.mu.inflight
	c.mu.inflight = map[uint16]mqttInflight{}
	c.mu.Unlock()
	for _, s := range subs {
		c.detach(s)
	}
	requeueInflight(inflight)
	c.saveQoS2(inflight)
	c.endSession()
	if !c.normalExit && c.will != nil {
		c.willDue()
	}
	c.releaseClientID()
}

// requeueInflight returns unacknowledged deliveries to their queues, in order.
func requeueInflight(inflight map[uint16]mqttInflight) {
	byQueue := map[*queue][]*qentry{}
	for _, in := range inflight {
		if in.e != nil {
			byQueue[in.sub.q] = append(byQueue[in.sub.q], in.e)
		}
	}
	for q, es := range byQueue {
		sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
		q.requeue(es)
	}
}

// endSession deletes the session's queues unless the session persists.
func (c *mqttConn) endSession() {
	if c.persistent || c.vhost == nil {
		return
	}
	// A connection that took the client id over waits for this teardown before it starts its
	// session, so the queues of that name are still this session's.
	v := c.vhost
	for qos := range byte(3) {
		v.mu.RLock()
		q := v.mu.queues[mqttQueueName(c.clientID, qos)]
		v.mu.RUnlock()
		if q != nil {
			v.deleteQueue(q, false, false)
		}
	}
}
