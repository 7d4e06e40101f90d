package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// MQTT 5 subscription options, outgoing topic aliases, the client's maximum packet size and
// enhanced authentication, with raw packets (the mqtt codec) so that every field on the wire is
// checked. RabbitMQ 3.10 has no MQTT 5: skipped against it.

// client5 is a raw client that keeps the PUBLISH packets it reads while waiting for another
// packet, for next.
type client5 struct {
	*rawMQTT
	stash []*mqtt.Publish
}

// connect5 connects an MQTT 5 client with props (the session expiry, topic alias maximum...).
func connect5(t *testing.T, addr, id string, clean bool, props mqtt.Properties) *client5 {
	t.Helper()
	r := dialRaw(t, addr)
	ack := r.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: id, CleanStart: clean, KeepAlive: 60, Properties: props})
	if ack.ReasonCode != mqtt.Success {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	return &client5{rawMQTT: r}
}

// readFor reads packets until keep returns true for one, stashing the PUBLISH packets before it.
func (r *client5) readFor(what string, keep func(mqtt.Packet) bool) {
	r.t.Helper()
	for {
		x, err := r.read(10 * time.Second)
		if err != nil {
			r.t.Fatalf("%s: %v", what, err)
		}
		if keep(x) {
			return
		}
		if p, ok := x.(*mqtt.Publish); ok {
			r.stash = append(r.stash, p)
		}
	}
}

// subscribe5 sends one SUBSCRIBE with subscription identifier subID (0: none) and waits for its
// SUBACK, which must grant every subscription.
func (r *client5) subscribe5(pid uint16, subID uint32, subs ...mqtt.Subscription) {
	r.t.Helper()
	p := &mqtt.Subscribe{PacketID: pid, Subscriptions: subs}
	if subID != 0 {
		p.Properties.SubscriptionIDs = []uint32{subID}
	}
	r.send(p)
	r.readFor("SUBACK", func(x mqtt.Packet) bool {
		sa, ok := x.(*mqtt.Suback)
		if !ok || sa.PacketID != pid {
			return false
		}
		for i, c := range sa.ReasonCodes {
			if c > mqtt.GrantedQoS2 {
				r.t.Fatalf("subscription %q refused: %v", subs[i].Filter, c)
			}
		}
		return true
	})
}

// publish1 publishes at QoS 1 and waits for the PUBACK.
func (r *client5) publish1(pid uint16, topic, body string, retain bool) {
	r.t.Helper()
	r.send(&mqtt.Publish{QoS: 1, PacketID: pid, Topic: topic, Retain: retain, Payload: []byte(body)})
	r.readFor("PUBACK", func(x mqtt.Packet) bool {
		a, ok := x.(*mqtt.PubAck)
		if ok && a.PacketID == pid && a.ReasonCode != mqtt.Success {
			r.t.Fatalf("PUBACK %v", a.ReasonCode)
		}
		return ok && a.PacketID == pid
	})
}

// next returns the next PUBLISH (stashed or read) and acknowledges it (QoS 1).
func (r *client5) next() *mqtt.Publish {
	r.t.Helper()
	var p *mqtt.Publish
	if len(r.stash) > 0 {
		p, r.stash = r.stash[0], r.stash[1:]
	} else {
		p = r.readPublishes(1)[0]
	}
	if p.QoS == 1 {
		r.send(&mqtt.PubAck{PacketID: p.PacketID})
	}
	return p
}

func sessionExpiry(s uint32) mqtt.Properties {
	var p mqtt.Properties
	p.SessionExpiry = s
	p.Set(mqtt.PropSessionExpiry)
	return p
}

// Subscription identifiers: each PUBLISH carries the identifiers of the subscriptions it matches
// (several when several match), retained messages sent on SUBSCRIBE carry the new subscription's;
// a SUBSCRIBE of the same filter with another identifier replaces it. CONNACK says they are
// available.
func TestMQTT5SubscriptionIdentifiers(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	r := &client5{rawMQTT: dialRaw(t, b.MQTT)}
	ack := r.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: "subid", CleanStart: true, KeepAlive: 60})
	if !ack.Properties.Has(mqtt.PropSubscriptionIDAvailable) || ack.Properties.SubscriptionIDAvailable != 1 {
		t.Fatalf("CONNACK subscription identifiers available: %+v", ack.Properties)
	}
	r.subscribe5(1, 7, mqtt.Subscription{Filter: "sid/a/+", QoS: 1})
	r.subscribe5(2, 9, mqtt.Subscription{Filter: "sid/#", QoS: 1})
	r.subscribe5(3, 0, mqtt.Subscription{Filter: "sid/none", QoS: 1})
	pub := connect5(t, b.MQTT, "subid-pub", true, mqtt.Properties{})
	pub.publish1(1, "sid/a/x", "both", false)
	pub.publish1(2, "sid/b", "one", false)
	pub.publish1(3, "sid/none", "no id and 9", false)
	for _, want := range []struct {
		topic string
		ids   []uint32
	}{{"sid/a/x", []uint32{7, 9}}, {"sid/b", []uint32{9}}, {"sid/none", []uint32{9}}} {
		p := r.next()
		ids := slices.Clone(p.Properties.SubscriptionIDs)
		slices.Sort(ids)
		if p.Topic != want.topic || !slices.Equal(ids, want.ids) {
			t.Fatalf("PUBLISH %s ids %v, want %s %v", p.Topic, ids, want.topic, want.ids)
		}
	}
	// The same filter again with another identifier replaces the subscription.
	r.subscribe5(4, 11, mqtt.Subscription{Filter: "sid/#", QoS: 1})
	pub.publish1(4, "sid/c", "replaced", false)
	if p := r.next(); p.Topic != "sid/c" || !slices.Equal(p.Properties.SubscriptionIDs, []uint32{11}) {
		t.Fatalf("after resubscribe: %s ids %v, want [11]", p.Topic, p.Properties.SubscriptionIDs)
	}
	// A retained message sent on SUBSCRIBE carries the new subscription's identifier.
	pub.publish1(5, "sidr/x", "kept", true)
	r.subscribe5(5, 21, mqtt.Subscription{Filter: "sidr/+", QoS: 1})
	if p := r.next(); p.Topic != "sidr/x" || !p.Retain || !slices.Equal(p.Properties.SubscriptionIDs, []uint32{21}) {
		t.Fatalf("retained: %s retain %v ids %v", p.Topic, p.Retain, p.Properties.SubscriptionIDs)
	}
	// A 3.1.1 subscriber of the same topics gets no properties.
	old := &client5{rawMQTT: dialRaw(t, b.MQTT)}
	old.connect(&mqtt.Connect{ClientID: "subid-311", CleanStart: true, KeepAlive: 60})
	old.subscribe(1, "sid/#", 1)
	pub.publish1(6, "sid/d", "to both", false)
	if p := old.next(); p.Topic != "sid/d" || len(p.Properties.SubscriptionIDs) != 0 {
		t.Fatalf("3.1.1 delivery %+v", p)
	}
	// Only the server sends subscription identifiers: a client's PUBLISH with one is a protocol
	// error [MQTT-3.3.4-6].
	var bad mqtt.Properties
	bad.SubscriptionIDs = []uint32{5}
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 9, Topic: "sid/e", Payload: []byte("x"), Properties: bad})
	if got := pub.expectClosed(10 * time.Second); len(got) != 1 || got[0].(*mqtt.Disconnect).ReasonCode != mqtt.ProtocolError {
		t.Fatalf("after a PUBLISH with a subscription identifier: %+v, want DISCONNECT 0x82", got)
	}
}

// No Local: a subscription with it does not get what the client itself published (another
// subscription of the client without it does), and gets what others publish.
func TestMQTT5NoLocal(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	r := connect5(t, b.MQTT, "nolocal", true, mqtt.Properties{})
	r.subscribe5(1, 0, mqtt.Subscription{Filter: "nl/#", QoS: 1, NoLocal: true})
	r.publish1(1, "nl/own", "own", false)
	other := connect5(t, b.MQTT, "nolocal-other", true, mqtt.Properties{})
	other.publish1(1, "nl/other", "other", false)
	// Both went to the same queue in this order: had "own" been sent, it would come first.
	if p := r.next(); p.Topic != "nl/other" {
		t.Fatalf("No Local subscription got %s (%s), want nl/other", p.Topic, p.Payload)
	}
	// A subscription without No Local, at another QoS (another queue), gets the client's own.
	r.subscribe5(2, 0, mqtt.Subscription{Filter: "nl/+/x", QoS: 0})
	r.publish1(2, "nl/own/x", "own again", false)
	if p := r.next(); p.Topic != "nl/own/x" || p.QoS != 0 {
		t.Fatalf("plain subscription got %+v", p)
	}
	// Both subscriptions in one queue: one without No Local is enough to send it.
	r.subscribe5(3, 0, mqtt.Subscription{Filter: "nl/both", QoS: 1})
	r.publish1(3, "nl/both", "both", false)
	if p := r.next(); p.Topic != "nl/both" {
		t.Fatalf("got %s, want nl/both", p.Topic)
	}
}

// Retain As Published: with it, a forwarded message keeps the retain flag it was published with;
// without it the flag is 0. Retained messages sent on SUBSCRIBE have it set either way.
func TestMQTT5RetainAsPublished(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	rap := connect5(t, b.MQTT, "rap-1", true, mqtt.Properties{})
	rap.subscribe5(1, 0, mqtt.Subscription{Filter: "rap/#", QoS: 1, RetainAsPublished: true})
	plain := connect5(t, b.MQTT, "rap-0", true, mqtt.Properties{})
	plain.subscribe5(1, 0, mqtt.Subscription{Filter: "rap/#", QoS: 1})
	pub := connect5(t, b.MQTT, "rap-pub", true, mqtt.Properties{})
	pub.publish1(1, "rap/r", "retained", true)
	pub.publish1(2, "rap/n", "not retained", false)
	for _, c := range []struct {
		r    *client5
		want [2]bool
	}{{rap, [2]bool{true, false}}, {plain, [2]bool{false, false}}} {
		p1, p2 := c.r.next(), c.r.next()
		if p1.Topic != "rap/r" || p2.Topic != "rap/n" || [2]bool{p1.Retain, p2.Retain} != c.want {
			t.Fatalf("got %s retain %v, %s retain %v; want retain %v", p1.Topic, p1.Retain, p2.Topic, p2.Retain, c.want)
		}
	}
	late := connect5(t, b.MQTT, "rap-late", true, mqtt.Properties{})
	late.subscribe5(1, 0, mqtt.Subscription{Filter: "rap/+", QoS: 1})
	if p := late.next(); p.Topic != "rap/r" || !p.Retain {
		t.Fatalf("retained on subscribe: %s retain %v", p.Topic, p.Retain)
	}
}

// Subscription options are kept with a persistent session: across a reconnect and a restart.
func TestMQTT5SubscriptionOptionsPersist(t *testing.T) {
	mqttSkipExternal(t, "restarts the broker")
	o := server.Options{Logger: testLogger(t), Store: storage.NewMemStore()}
	b1, err := testbroker.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Stop()
	addr := b1.StartMQTT(t)
	r := connect5(t, addr, "subopts-keep", true, sessionExpiry(600))
	r.subscribe5(1, 42, mqtt.Subscription{Filter: "keep/#", QoS: 1, NoLocal: true, RetainAsPublished: true})
	r.send(&mqtt.Disconnect{})
	r.expectClosed(10 * time.Second)
	check := func(addr, step string) {
		t.Helper()
		r := connect5(t, addr, "subopts-keep", false, sessionExpiry(600))
		r.publish1(1, "keep/own", "own", false)
		pub := connect5(t, addr, "subopts-keep-pub", true, mqtt.Properties{})
		pub.publish1(1, "keep/x", "x", true)
		p := r.next()
		if p.Topic != "keep/x" || !p.Retain || !slices.Equal(p.Properties.SubscriptionIDs, []uint32{42}) {
			t.Fatalf("%s: %s retain %v ids %v, want keep/x retained [42]", step, p.Topic, p.Retain, p.Properties.SubscriptionIDs)
		}
		pub.publish1(2, "keep/x", "", true) // clears the retained message, and is forwarded
		if p := r.next(); p.Topic != "keep/x" || len(p.Payload) != 0 || !p.Retain {
			t.Fatalf("%s: %+v, want the empty retained publish", step, p)
		}
		r.send(&mqtt.Disconnect{})
		r.expectClosed(10 * time.Second)
	}
	check(addr, "after a reconnect")
	if err := b1.Stop(); err != nil {
		t.Fatal(err)
	}
	b2, err := testbroker.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Stop()
	check(b2.StartMQTT(t), "after a restart")
}

// Topic aliases to the client: within its topic alias maximum, the first topics get an alias as
// they are first sent and are then sent as the alias alone; past the maximum, topics go in full.
// A client that set no maximum gets none.
func TestMQTT5OutgoingTopicAliases(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	var props mqtt.Properties
	props.TopicAliasMaximum = 2
	props.Set(mqtt.PropTopicAliasMaximum)
	r := connect5(t, b.MQTT, "alias-out", true, props)
	r.subscribe5(1, 0, mqtt.Subscription{Filter: "ta/#", QoS: 1})
	none := connect5(t, b.MQTT, "alias-none", true, mqtt.Properties{})
	none.subscribe5(1, 0, mqtt.Subscription{Filter: "ta/#", QoS: 1})
	pub := connect5(t, b.MQTT, "alias-pub", true, mqtt.Properties{})
	topics := []string{"ta/a", "ta/a", "ta/b", "ta/c", "ta/b", "ta/c", "ta/a"}
	for i, tp := range topics {
		pub.publish1(uint16(i+1), tp, tp, false)
	}
	type sent struct {
		topic string
		alias uint16
	}
	want := []sent{{"ta/a", 1}, {"", 1}, {"ta/b", 2}, {"ta/c", 0}, {"", 2}, {"ta/c", 0}, {"", 1}}
	for i, w := range want {
		p := r.next()
		got := sent{p.Topic, 0}
		if p.Properties.Has(mqtt.PropTopicAlias) {
			got.alias = p.Properties.TopicAlias
		}
		if got != w || string(p.Payload) != topics[i] {
			t.Fatalf("PUBLISH %d: %+v payload %s, want %+v", i, got, p.Payload, w)
		}
	}
	for range topics {
		if p := none.next(); p.Properties.Has(mqtt.PropTopicAlias) || p.Topic == "" {
			t.Fatalf("client without a topic alias maximum got %+v", p)
		}
	}
}

// The client's maximum packet size counts the whole packet, properties included: a message whose
// PUBLISH would pass it is dropped as if sent (it uses no in-flight slot, so the window of 1 goes
// on), retained ones too.
func TestMQTT5MaximumPacketSizeExact(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	var props mqtt.Properties
	props.MaximumPacketSize = 120
	props.ReceiveMaximum = 1
	props.Set(mqtt.PropMaximumPacketSize)
	props.Set(mqtt.PropReceiveMaximum)
	pub := connect5(t, b.MQTT, "maxexact-pub", true, mqtt.Properties{})
	pub.publish1(1, "mx/retained-big", strings.Repeat("r", 150), true)
	pub.publish1(2, "mx/retained-small", "r", true)
	r := connect5(t, b.MQTT, "maxexact", true, props)
	r.subscribe5(1, 0, mqtt.Subscription{Filter: "mx/#", QoS: 1})
	if p := r.next(); p.Topic != "mx/retained-small" {
		t.Fatalf("retained: got %s, want only mx/retained-small", p.Topic)
	}
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// A small body with a large header: the user property makes the PUBLISH too large.
	if err := ch.Publish("amq.topic", "mx.props", false, false, amqp.Publishing{Body: []byte("b"),
		Headers: amqp.Table{"h": strings.Repeat("v", 120)}}); err != nil {
		t.Fatal(err)
	}
	pub.publish1(3, "mx/big", strings.Repeat("x", 200), false)
	pub.publish1(4, "mx/small", "small", false)
	for _, want := range []string{"mx/small"} {
		if p := r.next(); p.Topic != want || len(p.Payload) > 120 {
			t.Fatalf("got %s (%d bytes), want %s", p.Topic, len(p.Payload), want)
		}
	}
}

// Enhanced authentication is not offered: a CONNECT with an Authentication Method gets CONNACK
// 0x8C (bad authentication method), whatever its password, and is closed; an AUTH from a client
// that named none is a protocol error (DISCONNECT 0x82).
func TestMQTT5Auth(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	for _, pass := range []string{"guest", "wrong"} {
		r := dialRaw(t, b.MQTT)
		var props mqtt.Properties
		props.AuthMethod, props.AuthData = "SCRAM-SHA-1", []byte("n,,n=guest,r=abc")
		props.Set(mqtt.PropAuthMethod)
		props.Set(mqtt.PropAuthData)
		ack := r.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: "auth", CleanStart: true, KeepAlive: 60, Properties: props,
			HasUsername: true, Username: "guest", HasPassword: true, Password: []byte(pass)})
		if ack.ReasonCode != mqtt.BadAuthenticationMethod || ack.Properties.Has(mqtt.PropAuthMethod) {
			t.Fatalf("password %q: CONNACK %v %+v, want 0x8C", pass, ack.ReasonCode, ack.Properties)
		}
		r.expectClosed(10 * time.Second)
	}
	r := connect5(t, b.MQTT, "auth-later", true, mqtt.Properties{})
	var ap mqtt.Properties
	ap.AuthMethod = "SCRAM-SHA-1"
	ap.Set(mqtt.PropAuthMethod)
	r.send(&mqtt.Auth{ReasonCode: mqtt.ReAuthenticate, Properties: ap})
	got := r.expectClosed(10 * time.Second)
	if len(got) != 1 || got[0].(*mqtt.Disconnect).ReasonCode != mqtt.ProtocolError {
		t.Fatalf("after AUTH got %+v, want DISCONNECT 0x82", got)
	}
}

// QoS 2 state of persistent sessions survives a restart: a publisher's identifier awaiting PUBREL
// (its repeated PUBLISH is acknowledged, not published again) and a subscriber's delivery released
// and awaiting PUBCOMP (its PUBREL is sent again). Once completed, the state is gone: after another
// restart the publisher's session, which has no subscriptions, is not present.
func TestMQTTQoS2StateSurvivesRestart(t *testing.T) {
	mqttSkipExternal(t, "restarts the broker")
	o := server.Options{Logger: testLogger(t), Store: storage.NewMemStore()}
	start := func() (*testbroker.Broker, string) {
		b, err := testbroker.New(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Stop() })
		return b, b.StartMQTT(t)
	}
	expect := func(r *rawMQTT, typ mqtt.PacketType, id uint16) {
		t.Helper()
		p, err := r.read(10 * time.Second)
		if err != nil {
			t.Fatalf("want %v %d: %v", typ, id, err)
		}
		var got uint16
		switch p := p.(type) {
		case *mqtt.PubRec:
			got = p.PacketID
		case *mqtt.PubRel:
			got = p.PacketID
		case *mqtt.PubComp:
			got = p.PacketID
		case *mqtt.PubAck:
			got = p.PacketID
		}
		if p.Type() != typ || got != id {
			t.Fatalf("got %v %+v, want %v %d", p.Type(), p, typ, id)
		}
	}
	b1, addr := start()
	sub := dialRaw(t, addr)
	sub.connect(&mqtt.Connect{ClientID: "q2r-sub", KeepAlive: 60})
	sub.subscribe(1, "q2r/#", 2)
	pub := dialRaw(t, addr)
	pub.connect(&mqtt.Connect{ClientID: "q2r-pub", KeepAlive: 60})
	pub.send(&mqtt.Publish{QoS: 2, PacketID: 5, Topic: "q2r/x", Payload: []byte("once")})
	expect(pub, mqtt.PUBREC, 5)
	d := sub.readPublishes(1)[0]
	if d.QoS != 2 || string(d.Payload) != "once" {
		t.Fatalf("delivery %+v", d)
	}
	sub.send(&mqtt.PubRec{PacketID: d.PacketID})
	expect(sub, mqtt.PUBREL, d.PacketID)
	if err := b1.Stop(); err != nil {
		t.Fatal(err)
	}

	b2, addr := start()
	pub = dialRaw(t, addr)
	if ack := pub.connect(&mqtt.Connect{ClientID: "q2r-pub", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatal("publisher's session (QoS 2 state only) not present after the restart")
	}
	pub.send(&mqtt.Publish{QoS: 2, PacketID: 5, Dup: true, Topic: "q2r/x", Payload: []byte("once")})
	expect(pub, mqtt.PUBREC, 5)
	pub.send(&mqtt.PubRel{PacketID: 5})
	expect(pub, mqtt.PUBCOMP, 5)
	sub = dialRaw(t, addr)
	if ack := sub.connect(&mqtt.Connect{ClientID: "q2r-sub", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatal("subscriber's session not present after the restart")
	}
	expect(sub, mqtt.PUBREL, d.PacketID)
	sub.send(&mqtt.PubComp{PacketID: d.PacketID})
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 6, Topic: "q2r/x", Payload: []byte("after")})
	expect(pub, mqtt.PUBACK, 6)
	// Had the repeated PUBLISH been published again, "once" would come before "after".
	if p := sub.readPublishes(1)[0]; string(p.Payload) != "after" || p.QoS != 1 {
		t.Fatalf("subscriber got %q at QoS %d, want only \"after\" at 1", p.Payload, p.QoS)
	} else {
		sub.send(&mqtt.PubAck{PacketID: p.PacketID})
	}
	sub.send(&mqtt.Disconnect{})
	sub.expectClosed(10 * time.Second)
	pub.send(&mqtt.Disconnect{})
	pub.expectClosed(10 * time.Second)
	if err := b2.Stop(); err != nil {
		t.Fatal(err)
	}

	_, addr = start()
	pub = dialRaw(t, addr)
	if ack := pub.connect(&mqtt.Connect{ClientID: "q2r-pub", KeepAlive: 60}); ack.SessionPresent {
		t.Fatal("publisher's completed QoS 2 state still present after a second restart")
	}
	// A clean start discards QoS 2 state: packet identifier 7 is a new publish each time.
	pub.send(&mqtt.Publish{QoS: 2, PacketID: 7, Topic: "q2r/y", Payload: []byte("first")})
	expect(pub, mqtt.PUBREC, 7)
	pub.nc.Close()
	pub = dialRaw(t, addr)
	if ack := pub.connect(&mqtt.Connect{ClientID: "q2r-pub", CleanStart: true, KeepAlive: 60}); ack.SessionPresent {
		t.Fatal("clean start: session present")
	}
	sub = dialRaw(t, addr)
	sub.connect(&mqtt.Connect{ClientID: "q2r-sub", KeepAlive: 60})
	pub.send(&mqtt.Publish{QoS: 2, PacketID: 7, Topic: "q2r/y", Payload: []byte("second")})
	expect(pub, mqtt.PUBREC, 7)
	got := sub.readPublishes(2)
	if string(got[0].Payload) != "first" || string(got[1].Payload) != "second" {
		t.Fatalf("after a clean start got %q, %q", got[0].Payload, got[1].Payload)
	}
}

// procMQTTAddr returns the MQTT address of a broker process from its ready line.
func procMQTTAddr(t *testing.T, p *proc) string {
	t.Helper()
	for _, line := range strings.Split(p.log.String(), "\n") {
		if m := mqttReadyRe.FindStringSubmatch(line); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no mqtt address in the ready line:\n%s", p.log)
	return ""
}

// A PUBREC means the packet identifier is durable: after a kill -9 of the broker binary (Pebble
// data directory), the publisher's repeated PUBLISH is acknowledged and not published again.
func TestMQTTQoS2StateKill9(t *testing.T) {
	mqttSkipExternal(t, "runs the broker binary")
	dir := t.TempDir()
	p := startProc(t, dir, "--mqtt-addr", "127.0.0.1:0")
	addr := procMQTTAddr(t, p)
	sub := dialRaw(t, addr)
	sub.connect(&mqtt.Connect{ClientID: "k9q2-sub", KeepAlive: 60})
	sub.subscribe(1, "k9q2/#", 1)
	sub.send(&mqtt.Disconnect{})
	sub.expectClosed(10 * time.Second)
	pub := dialRaw(t, addr)
	pub.connect(&mqtt.Connect{ClientID: "k9q2-pub", KeepAlive: 60})
	pub.send(&mqtt.Publish{QoS: 2, PacketID: 3, Topic: "k9q2/x", Payload: []byte("once")})
	if x, err := pub.read(10 * time.Second); err != nil || x.Type() != mqtt.PUBREC {
		t.Fatalf("PUBREC: %v %v", x, err)
	}
	p.kill()

	p = startProc(t, dir, "--mqtt-addr", "127.0.0.1:0")
	addr = procMQTTAddr(t, p)
	pub = dialRaw(t, addr)
	if ack := pub.connect(&mqtt.Connect{ClientID: "k9q2-pub", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatal("publisher's QoS 2 state lost by kill -9")
	}
	pub.send(&mqtt.Publish{QoS: 2, PacketID: 3, Dup: true, Topic: "k9q2/x", Payload: []byte("once")})
	pub.send(&mqtt.PubRel{PacketID: 3})
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 4, Topic: "k9q2/x", Payload: []byte("after")})
	for _, want := range []mqtt.PacketType{mqtt.PUBREC, mqtt.PUBCOMP, mqtt.PUBACK} {
		if x, err := pub.read(10 * time.Second); err != nil || x.Type() != want {
			t.Fatalf("publisher got %v %v, want %v", x, err, want)
		}
	}
	sub = dialRaw(t, addr)
	sub.connect(&mqtt.Connect{ClientID: "k9q2-sub", KeepAlive: 60})
	got := sub.readPublishes(2)
	if string(got[0].Payload) != "once" || string(got[1].Payload) != "after" {
		t.Fatalf("subscriber got %q, %q; want once, after", got[0].Payload, got[1].Payload)
	}
}
