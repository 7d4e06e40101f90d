package integration

import (
	"crypto/tls"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// readPublishes reads n PUBLISH packets (skipping other packets).
func (r *rawMQTT) readPublishes(n int) []*mqtt.Publish {
	r.t.Helper()
	var out []*mqtt.Publish
	for len(out) < n {
		p, err := r.read(10 * time.Second)
		if err != nil {
			r.t.Fatalf("after %d of %d PUBLISH: %v", len(out), n, err)
		}
		if pub, ok := p.(*mqtt.Publish); ok {
			out = append(out, pub)
		}
	}
	return out
}

// expectNothing checks that no packet arrives within d (a negative check: it waits d).
func (r *rawMQTT) expectNothing(d time.Duration) {
	r.t.Helper()
	if p, err := r.read(d); err == nil {
		r.t.Fatalf("unexpected %v %+v", p.Type(), p)
	}
}

func (r *rawMQTT) subscribe(id uint16, filter string, qos byte) *mqtt.Suback {
	r.t.Helper()
	r.send(&mqtt.Subscribe{PacketID: id, Subscriptions: []mqtt.Subscription{{Filter: filter, QoS: qos}}})
	for {
		p, err := r.read(10 * time.Second)
		if err != nil {
			r.t.Fatalf("SUBACK: %v", err)
		}
		if sa, ok := p.(*mqtt.Suback); ok {
			if sa.PacketID != id {
				r.t.Fatalf("SUBACK for %d, want %d", sa.PacketID, id)
			}
			return sa
		}
	}
}

// The in-flight window bounds unacknowledged QoS 1 deliveries (mqtt.prefetch, 10 by default);
// each PUBACK lets one more out. What is in flight when the connection ends comes back to the
// persistent session with DUP set.
func TestMQTTInflightWindowAndDupRedelivery(t *testing.T) {
	b := startMQTTBroker(t)
	r := dialRaw(t, b.MQTT)
	r.connect(&mqtt.Connect{ClientID: "window", KeepAlive: 60}) // persistent session
	if sa := r.subscribe(1, "window/#", 1); sa.ReasonCodes[0] != 1 {
		t.Fatalf("granted %v", sa.ReasonCodes)
	}
	pub := pahoConnect(t, pahoOptions(b.MQTT, "window-pub", true))
	for i := range 15 {
		pahoWait(t, "publish", pub.Publish(fmt.Sprintf("window/%d", i), 1, false, fmt.Sprintf("m%d", i)))
	}
	got := r.readPublishes(10)
	r.expectNothing(200 * time.Millisecond)
	for i, p := range got {
		if string(p.Payload) != fmt.Sprintf("m%d", i) || p.QoS != 1 || p.Dup {
			t.Fatalf("delivery %d: %q qos %d dup %v", i, p.Payload, p.QoS, p.Dup)
		}
	}
	r.send(&mqtt.PubAck{PacketID: got[0].PacketID})
	more := r.readPublishes(1)
	if string(more[0].Payload) != "m10" {
		t.Fatalf("after one PUBACK got %q", more[0].Payload)
	}
	r.nc.Close() // m1..m10 in flight

	r2 := dialRaw(t, b.MQTT)
	if ack := r2.connect(&mqtt.Connect{ClientID: "window", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	again := r2.readPublishes(10)
	for i, p := range again {
		want := fmt.Sprintf("m%d", i+1)
		if string(p.Payload) != want || !p.Dup {
			t.Fatalf("redelivery %d: %q dup %v, want %s with DUP", i, p.Payload, p.Dup, want)
		}
		r2.send(&mqtt.PubAck{PacketID: p.PacketID})
	}
	rest := r2.readPublishes(4)
	for i, p := range rest {
		if want := fmt.Sprintf("m%d", i+11); string(p.Payload) != want || p.Dup {
			t.Fatalf("delivery %q dup %v, want %s", p.Payload, p.Dup, want)
		}
	}
	// A clean start discards the session.
	r2.nc.Close()
	r3 := dialRaw(t, b.MQTT)
	if ack := r3.connect(&mqtt.Connect{ClientID: "window", CleanStart: true, KeepAlive: 60}); ack.SessionPresent {
		t.Fatal("session present after a clean start")
	}
}

// A QoS 1 PUBACK means the message is stored: it survives a crash of the broker (the store as a
// kill -9 leaves it) right after the PUBACK.
func TestMQTTPubackMeansDurable(t *testing.T) {
	mqttSkipExternal(t, "crashes the broker")
	store := storage.NewMemStore()
	b1, err := testbroker.New(server.Options{Logger: testLogger(t), Store: store}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Stop()
	addr := b1.StartMQTT(t)
	sub := dialRaw(t, addr)
	sub.connect(&mqtt.Connect{ClientID: "durable-sub", KeepAlive: 60})
	sub.subscribe(1, "durable/#", 1)
	sub.send(&mqtt.Disconnect{})
	sub.expectClosed(10 * time.Second)

	pub := dialRaw(t, addr)
	pub.connect(&mqtt.Connect{ClientID: "durable-pub", CleanStart: true, KeepAlive: 60})
	for i := range 20 {
		pub.send(&mqtt.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "durable/x", Payload: fmt.Appendf(nil, "m%d", i)})
	}
	for i := range 20 {
		p, err := pub.read(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := p.(*mqtt.PubAck); !ok || a.PacketID != uint16(i+1) {
			t.Fatalf("got %T %+v, want PUBACK %d (in order)", p, p, i+1)
		}
	}
	crashed := store.Reopen() // what a kill -9 leaves right after the PUBACKs
	b2, err := testbroker.New(server.Options{Logger: testLogger(t), Store: crashed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Stop()
	r := dialRaw(t, b2.StartMQTT(t))
	r.connect(&mqtt.Connect{ClientID: "durable-sub", KeepAlive: 60})
	for i := range 20 {
		p := r.readPublishes(1)[0]
		if string(p.Payload) != fmt.Sprintf("m%d", i) {
			t.Fatalf("after the crash: delivery %d is %q", i, p.Payload)
		}
		r.send(&mqtt.PubAck{PacketID: p.PacketID})
	}
}

// QoS 2 publishes are taken exactly once: PUBREC, a repeated PUBLISH (DUP) before PUBREL is not
// published again, PUBREL gets PUBCOMP.
func TestMQTTQoS2Inbound(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 answers QoS 2 with PUBACK")
	b := startMQTTBroker(t)
	var rec received
	sub := pahoConnect(t, pahoOptions(b.MQTT, "qos2-sub", true))
	pahoWait(t, "subscribe", sub.Subscribe("qos2/#", 1, rec.handler))
	r := dialRaw(t, b.MQTT)
	r.connect(&mqtt.Connect{ClientID: "qos2-pub", CleanStart: true, KeepAlive: 60})
	r.send(&mqtt.Publish{QoS: 2, PacketID: 7, Topic: "qos2/a", Payload: []byte("once")})
	expect := func(typ mqtt.PacketType) {
		t.Helper()
		p, err := r.read(10 * time.Second)
		if err != nil || p.Type() != typ {
			t.Fatalf("got %v %v, want %v", p, err, typ)
		}
	}
	expect(mqtt.PUBREC)
	r.send(&mqtt.Publish{QoS: 2, PacketID: 7, Dup: true, Topic: "qos2/a", Payload: []byte("once")})
	expect(mqtt.PUBREC)
	r.send(&mqtt.PubRel{PacketID: 7})
	expect(mqtt.PUBCOMP)
	r.send(&mqtt.Publish{QoS: 1, PacketID: 8, Topic: "qos2/a", Payload: []byte("marker")})
	expect(mqtt.PUBACK)
	got := rec.wait(t, 2)
	if len(got) != 2 || string(got[0].Payload()) != "once" || string(got[1].Payload()) != "marker" {
		t.Fatalf("got %v, want once then marker", describe(got))
	}
}

// Retained messages: the last one per topic, sent to new subscriptions whose filters match
// (wildcards included, with the retain flag), removed by an empty payload, kept across a restart.
// A filter starting with a wildcard does not match a topic starting with '$'.
func TestMQTTRetained(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10's retained store does not match wildcards")
	store := storage.NewMemStore()
	o := server.Options{Logger: testLogger(t), Store: store}
	b1, err := testbroker.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Stop()
	addr := b1.StartMQTT(t)
	pub := dialRaw(t, addr)
	pub.connect(&mqtt.Connect{ClientID: "ret-pub", CleanStart: true, KeepAlive: 60})
	for i, m := range []struct{ topic, body string }{
		{"ret/a", "old"}, {"ret/a", "a"}, {"ret/b/c", "bc"}, {"ret/gone", "x"}, {"ret/gone", ""}, {"$ret/d", "dollar"},
	} {
		pub.send(&mqtt.Publish{QoS: 1, PacketID: uint16(i + 1), Retain: true, Topic: m.topic, Payload: []byte(m.body)})
		if p, err := pub.read(10 * time.Second); err != nil || p.Type() != mqtt.PUBACK {
			t.Fatalf("PUBACK: %v %v", p, err)
		}
	}
	check := func(addr, filter string, want ...string) {
		t.Helper()
		r := dialRaw(t, addr)
		r.connect(&mqtt.Connect{ClientID: "ret-sub", CleanStart: true, KeepAlive: 60})
		r.subscribe(1, filter, 1)
		got := r.readPublishes(len(want))
		for i, p := range got {
			if p.Topic+"="+string(p.Payload) != want[i] || !p.Retain {
				t.Fatalf("%s: got %s=%q retain %v, want %s", filter, p.Topic, p.Payload, p.Retain, want[i])
			}
			if p.QoS == 1 {
				r.send(&mqtt.PubAck{PacketID: p.PacketID})
			}
		}
		r.expectNothing(100 * time.Millisecond)
		r.send(&mqtt.Disconnect{})
	}
	check(addr, "ret/#", "ret/a=a", "ret/b/c=bc")
	check(addr, "ret/+", "ret/a=a")
	// MQTT 5 retain handling: 2 sends none; 1 sends them only for a new subscription.
	r5 := dialRaw(t, addr)
	r5.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: "ret-v5", CleanStart: true, KeepAlive: 60})
	r5.send(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "ret/a", QoS: 0, RetainHandling: 2}}})
	r5.send(&mqtt.Subscribe{PacketID: 2, Subscriptions: []mqtt.Subscription{{Filter: "ret/b/c", QoS: 0, RetainHandling: 1}}})
	r5.send(&mqtt.Subscribe{PacketID: 3, Subscriptions: []mqtt.Subscription{{Filter: "ret/b/c", QoS: 0, RetainHandling: 1}}})
	var pubs []string
	for done := false; !done; {
		p, err := r5.read(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch p := p.(type) {
		case *mqtt.Publish:
			pubs = append(pubs, p.Topic)
		case *mqtt.Suback:
			done = p.PacketID == 3 // retained messages follow their SUBACK
		}
	}
	if len(pubs) != 1 || pubs[0] != "ret/b/c" {
		t.Fatalf("retain handling: got %v, want ret/b/c once", pubs)
	}
	r5.expectNothing(200 * time.Millisecond) // nor after the third SUBACK
	check(addr, "#", "ret/a=a", "ret/b/c=bc")
	check(addr, "$ret/#", "$ret/d=dollar")
	check(addr, "+/d")

	if err := b1.Stop(); err != nil {
		t.Fatal(err)
	}
	b2, err := testbroker.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Stop()
	check(b2.StartMQTT(t), "ret/#", "ret/a=a", "ret/b/c=bc")
}

// A message published to a topic starting with '$' is not delivered through a subscription whose
// filter starts with a wildcard, though the binding key "#" matches it in the topic exchange.
func TestMQTTDollarTopics(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 matches $ topics with # and +")
	b := startMQTTBroker(t)
	var all, dollar received
	c := pahoConnect(t, pahoOptions(b.MQTT, "dollar-all", true))
	pahoWait(t, "subscribe", c.Subscribe("#", 1, all.handler))
	d := pahoConnect(t, pahoOptions(b.MQTT, "dollar-sys", true))
	pahoWait(t, "subscribe", d.Subscribe("$SYS/#", 1, dollar.handler))
	pub := pahoConnect(t, pahoOptions(b.MQTT, "dollar-pub", true))
	pahoWait(t, "publish", pub.Publish("$SYS/x", 1, false, "sys"))
	pahoWait(t, "publish", pub.Publish("plain/x", 1, false, "plain"))
	got := dollar.wait(t, 1)
	if string(got[0].Payload()) != "sys" {
		t.Fatalf("$SYS/# got %v", describe(got))
	}
	got = all.wait(t, 1) // in publish order: $SYS/x would come first
	if string(got[0].Payload()) != "plain" {
		t.Fatalf("# got %v, want only plain", describe(got))
	}
}

// Permissions: a user may publish only with write on the exchange and the topic permission on the
// routing key (a 3.1.1 connection is closed on a refusal), and subscribe only with read.
func TestMQTTPermissions(t *testing.T) {
	mqttSkipExternal(t, "creates users")
	b := startMQTTBroker(t)
	pw := "pw"
	if _, err := b.Srv.PutUser(server.UserSpec{Name: "dev", Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Srv.PutPermission(server.Permission{User: "dev", Vhost: "/", Configure: ".*", Write: "^mqtt-subscription-", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	o := pahoOptions(b.MQTT, "dev-client", true).SetUsername("dev").SetPassword("pw")
	lost := make(chan error, 1)
	o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	c := pahoConnect(t, o)
	var rec received
	pahoWait(t, "subscribe", c.Subscribe("perm/#", 1, rec.handler)) // write on its queue, read on amq.topic
	c.Publish("perm/x", 1, false, "refused")                        // no write on amq.topic
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("a publish without write permission did not close the connection")
	}
	// Refused before it was routed: nothing can have been delivered.
	if got := rec.wait(t, 0); len(got) != 0 {
		t.Fatalf("refused publish delivered: %v", describe(got))
	}
}

// MQTT 5: CONNACK reason codes and properties, user properties and content type to AMQP headers
// and properties and back, topic aliases, a server DISCONNECT on a takeover.
func TestMQTT5(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	bad := dialRaw(t, b.MQTT)
	if ack := bad.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: "v5", CleanStart: true, HasUsername: true, Username: "guest",
		HasPassword: true, Password: []byte("nope")}); ack.ReasonCode != mqtt.BadUserNameOrPassword {
		t.Fatalf("bad login: reason %v", ack.ReasonCode)
	}
	r := dialRaw(t, b.MQTT)
	ack := r.connect(&mqtt.Connect{Version: mqtt.V5, CleanStart: true, KeepAlive: 60})
	if ack.ReasonCode != mqtt.Success || ack.Properties.AssignedClientID == "" || ack.Properties.Has(mqtt.PropMaximumQoS) ||
		ack.Properties.TopicAliasMaximum == 0 || ack.Properties.SharedSubAvailable != 1 {
		t.Fatalf("CONNACK %+v", ack)
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
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "v5.#", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	var props mqtt.Properties
	props.ContentType, props.ResponseTopic, props.CorrelationData = "text/plain", "v5/reply", []byte("corr-1")
	props.Set(mqtt.PropContentType)
	props.Set(mqtt.PropResponseTopic)
	props.Set(mqtt.PropCorrelationData)
	props.UserProperties = []mqtt.UserProperty{{Key: "k", Value: "v"}}
	props.TopicAlias = 3
	props.Set(mqtt.PropTopicAlias)
	r.send(&mqtt.Publish{QoS: 1, PacketID: 1, Topic: "v5/a", Payload: []byte("one"), Properties: props})
	var aliasOnly mqtt.Properties
	aliasOnly.TopicAlias = 3
	aliasOnly.Set(mqtt.PropTopicAlias)
	r.send(&mqtt.Publish{QoS: 1, PacketID: 2, Topic: "", Payload: []byte("two"), Properties: aliasOnly})
	for range 2 {
		if p, err := r.read(10 * time.Second); err != nil || p.Type() != mqtt.PUBACK {
			t.Fatalf("PUBACK: %v %v", p, err)
		}
	}
	d1, ok, err := ch.Get(q.Name, true)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if string(d1.Body) != "one" || d1.ContentType != "text/plain" || d1.ReplyTo != "v5.reply" || d1.CorrelationId != "corr-1" || d1.Headers["k"] != "v" {
		t.Fatalf("AMQP message %+v", d1)
	}
	d2, ok, err := ch.Get(q.Name, true)
	if err != nil || !ok || string(d2.Body) != "two" || d2.RoutingKey != "v5.a" {
		t.Fatalf("aliased publish: %v %v %+v", ok, err, d2)
	}

	// AMQP -> MQTT 5: properties back.
	sa := r.subscribe(5, "v5/back", 1)
	if sa.ReasonCodes[0] != mqtt.GrantedQoS1 {
		t.Fatalf("SUBACK %v", sa.ReasonCodes)
	}
	if err := ch.Publish("amq.topic", "v5.back", false, false, amqp.Publishing{Body: []byte("back"), ContentType: "application/json",
		CorrelationId: "c2", ReplyTo: "v5.replies", Headers: amqp.Table{"h": "x"}}); err != nil {
		t.Fatal(err)
	}
	got := r.readPublishes(1)[0]
	if string(got.Payload) != "back" || got.Properties.ContentType != "application/json" || string(got.Properties.CorrelationData) != "c2" ||
		got.Properties.ResponseTopic != "v5/replies" || len(got.Properties.UserProperties) != 1 || got.Properties.UserProperties[0] != (mqtt.UserProperty{Key: "h", Value: "x"}) {
		t.Fatalf("MQTT 5 delivery %+v", got)
	}
	r.send(&mqtt.PubAck{PacketID: got.PacketID})

	// Takeover: the old MQTT 5 connection is told why.
	r.send(&mqtt.Disconnect{})
	r.expectClosed(10 * time.Second)
	old := dialRaw(t, b.MQTT)
	old.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: "v5-takeover", CleanStart: true, KeepAlive: 60})
	nw := dialRaw(t, b.MQTT)
	nw.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: "v5-takeover", CleanStart: true, KeepAlive: 60})
	pkts := old.expectClosed(10 * time.Second)
	if len(pkts) != 1 || pkts[0].(*mqtt.Disconnect).ReasonCode != mqtt.SessionTakenOver {
		t.Fatalf("old connection got %+v, want DISCONNECT 0x8E", pkts)
	}
	// A shared subscription is granted, an invalid filter refused with 0x8F.
	// (Raw bytes: the codec will not encode an invalid filter.)
	var body []byte
	body = append(body, 0, 9, 0) // packet id 9, no properties
	for _, f := range []struct {
		filter string
		opts   byte
	}{{"$share/g/x", 1}, {"a/#/b", 0}} {
		body = append(body, byte(len(f.filter)>>8), byte(len(f.filter)))
		body = append(append(body, f.filter...), f.opts)
	}
	if _, err := nw.nc.Write(append([]byte{0x82, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	p, err := nw.read(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sa, ok := p.(*mqtt.Suback); !ok || len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != mqtt.GrantedQoS1 || sa.ReasonCodes[1] != mqtt.TopicFilterInvalid {
		t.Fatalf("got %+v", p)
	}
}

var mqttReadyRe = regexp.MustCompile(`msg="warren ready".* mqtt=(\S+)`)

// The broker binary serves MQTT with --mqtt-addr; a persistent session and a retained message
// survive a kill -9 on a Pebble data directory (the PUBACKs meant durable).
func TestMQTTBinaryKill9(t *testing.T) {
	mqttSkipExternal(t, "runs the broker binary")
	dir := t.TempDir()
	mqttAddr := func(p *proc) string {
		for _, line := range strings.Split(p.log.String(), "\n") {
			if m := mqttReadyRe.FindStringSubmatch(line); m != nil {
				return m[1]
			}
		}
		t.Fatalf("no mqtt address in the ready line:\n%s", p.log)
		return ""
	}
	p := startProc(t, dir, "--mqtt-addr", "127.0.0.1:0")
	addr := mqttAddr(p)
	sub := dialRaw(t, addr)
	sub.connect(&mqtt.Connect{ClientID: "kill9-sub", KeepAlive: 60})
	sub.subscribe(1, "kill9/#", 1)
	sub.send(&mqtt.Disconnect{})
	sub.expectClosed(10 * time.Second)
	pub := dialRaw(t, addr)
	pub.connect(&mqtt.Connect{ClientID: "kill9-pub", CleanStart: true, KeepAlive: 60})
	pub.send(&mqtt.Publish{QoS: 1, PacketID: 1, Topic: "kill9/a", Retain: true, Payload: []byte("kept")})
	if a, err := pub.read(10 * time.Second); err != nil || a.Type() != mqtt.PUBACK {
		t.Fatalf("PUBACK: %v %v", a, err)
	}
	p.kill()

	p = startProc(t, dir, "--mqtt-addr", "127.0.0.1:0")
	addr = mqttAddr(p)
	r := dialRaw(t, addr)
	if ack := r.connect(&mqtt.Connect{ClientID: "kill9-sub", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatal("session not present after kill -9")
	}
	got := r.readPublishes(1)[0]
	if got.Topic != "kill9/a" || string(got.Payload) != "kept" || got.Retain {
		t.Fatalf("queued delivery %+v", got)
	}
	r.send(&mqtt.PubAck{PacketID: got.PacketID})
	r2 := dialRaw(t, addr)
	r2.connect(&mqtt.Connect{ClientID: "kill9-retained", CleanStart: true, KeepAlive: 60})
	r2.subscribe(1, "kill9/+", 1)
	ret := r2.readPublishes(1)[0]
	if ret.Topic != "kill9/a" || string(ret.Payload) != "kept" || !ret.Retain {
		t.Fatalf("retained after kill -9: %+v", ret)
	}
}

// Shared subscriptions: the members of a group share its messages, each message to one member;
// when a member leaves, the others get everything. Retained messages are not sent to them.
func TestMQTTSharedSubscriptions(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no shared subscriptions")
	b := startMQTTBroker(t)
	pub := pahoConnect(t, pahoOptions(b.MQTT, "shared-pub", true))
	pahoWait(t, "publish retained", pub.Publish("shared/r", 1, true, "retained"))
	var m1, m2, other received
	c1 := pahoConnect(t, pahoOptions(b.MQTT, "shared-1", true))
	pahoWait(t, "subscribe", c1.Subscribe("$share/g/shared/+", 1, m1.handler))
	c2 := pahoConnect(t, pahoOptions(b.MQTT, "shared-2", true))
	pahoWait(t, "subscribe", c2.Subscribe("$share/g/shared/+", 1, m2.handler))
	c3 := pahoConnect(t, pahoOptions(b.MQTT, "shared-3", true))
	pahoWait(t, "subscribe", c3.Subscribe("$share/other/shared/+", 0, other.handler))
	const n = 20
	for i := range n {
		pahoWait(t, "publish", pub.Publish("shared/x", 1, false, fmt.Sprintf("m%d", i)))
	}
	got := other.wait(t, n) // another group gets every message
	wait.For(t, 10*time.Second, "the group's messages", func() bool {
		m1.mu.Lock()
		m2.mu.Lock()
		defer m1.mu.Unlock()
		defer m2.mu.Unlock()
		return len(m1.msgs)+len(m2.msgs) >= n
	})
	seen := map[string]int{}
	for _, r := range []*received{&m1, &m2} {
		r.mu.Lock()
		if len(r.msgs) == 0 {
			t.Errorf("a member got nothing")
		}
		for _, m := range r.msgs {
			seen[string(m.Payload())]++
		}
		r.mu.Unlock()
	}
	if len(seen) != n || len(got) != n {
		t.Fatalf("group got %d distinct of %d (%v); other group %d", len(seen), n, seen, len(got))
	}
	for k, c := range seen {
		if c != 1 || k == "retained" {
			t.Fatalf("%s delivered %d times", k, c)
		}
	}
	// One member leaves: the other gets the rest.
	pahoWait(t, "unsubscribe", c1.Unsubscribe("$share/g/shared/+"))
	before := len(m2.wait(t, 0))
	for i := range 5 {
		pahoWait(t, "publish", pub.Publish("shared/y", 1, false, fmt.Sprintf("late%d", i)))
	}
	after := m2.wait(t, before+5)
	if len(after) != before+5 {
		t.Fatalf("remaining member got %d, want %d", len(after), before+5)
	}
}

// An MQTT 5 client's maximum packet size: a larger message is not sent to it (and does not block
// the ones after it).
func TestMQTT5MaximumPacketSize(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	r := dialRaw(t, b.MQTT)
	var props mqtt.Properties
	props.MaximumPacketSize = 100
	props.Set(mqtt.PropMaximumPacketSize)
	r.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: "maxpkt", CleanStart: true, KeepAlive: 60, Properties: props})
	r.subscribe(1, "maxpkt/#", 1)
	pub := pahoConnect(t, pahoOptions(b.MQTT, "maxpkt-pub", true))
	pahoWait(t, "publish", pub.Publish("maxpkt/big", 1, false, strings.Repeat("x", 200)))
	pahoWait(t, "publish", pub.Publish("maxpkt/small", 1, false, "small"))
	got := r.readPublishes(1)[0]
	if string(got.Payload) != "small" {
		t.Fatalf("got %s %d bytes, want only the small message", got.Topic, len(got.Payload))
	}
}

// A vhost's max-connections counts MQTT connections with AMQP ones; past it CONNACK refuses (3,
// server unavailable, in 3.1.1).
func TestMQTTConnectionLimit(t *testing.T) {
	mqttSkipExternal(t, "sets a vhost limit")
	b := startMQTTBroker(t)
	if err := b.Srv.PutVhostLimit("/", server.LimitMaxConnections, 2); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r1 := dialRaw(t, b.MQTT)
	if ack := r1.connect(&mqtt.Connect{ClientID: "limit-1", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != 0 {
		t.Fatalf("first MQTT connection: %v", ack.ReasonCode)
	}
	r2 := dialRaw(t, b.MQTT)
	if ack := r2.connect(&mqtt.Connect{ClientID: "limit-2", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != 3 {
		t.Fatalf("third connection: CONNACK %v, want 3", ack.ReasonCode)
	}
	r2.expectClosed(10 * time.Second)
}

// MQTT over TLS (ServeMQTTTLS): listed as "mqtt/ssl", a paho client on ssl:// publishes and
// subscribes, the connection is listed with its TLS session.
func TestMQTTOverTLS(t *testing.T) {
	mqttSkipExternal(t, "needs an in-process broker with TLS")
	pki := newTestPKI(t)
	cfg, err := server.LoadTLS(pki.serverFiles(t, 20))
	if err != nil {
		t.Fatal(err)
	}
	tb := testbroker.Start(t)
	addr := tb.StartMQTTTLS(t, cfg.Config())
	o := pahoOptions(addr, "tls-client", true)
	o.Servers = nil
	o.AddBroker("ssl://" + addr).SetTLSConfig(&tls.Config{RootCAs: pki.pool})
	c := pahoConnect(t, o)
	var rec received
	pahoWait(t, "subscribe", c.Subscribe("tls/#", 1, rec.handler))
	pahoWait(t, "publish", c.Publish("tls/x", 1, false, "secret"))
	if got := rec.wait(t, 1); string(got[0].Payload()) != "secret" {
		t.Fatalf("got %v", describe(got))
	}
	var listed, tlsConn bool
	for _, l := range tb.Srv.AllListeners() {
		listed = listed || l.Protocol == server.ProtocolMQTTS && l.Addr.String() == addr
	}
	for _, ci := range tb.Srv.Connections() {
		tlsConn = tlsConn || ci.Protocol == "MQTT 3.1.1" && ci.TLS != nil && ci.TLS.Protocol != ""
	}
	if !listed || !tlsConn {
		t.Fatalf("listed as mqtt/ssl %v, connection with TLS %v", listed, tlsConn)
	}
}

// MQTT 5 will delay: the will of a persistent session comes after the delay, and not at all if
// the client reconnects within it.
func TestMQTT5WillDelay(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5")
	b := startMQTTBroker(t)
	sub := dialRaw(t, b.MQTT)
	sub.connect(&mqtt.Connect{ClientID: "willdelay-sub", CleanStart: true, KeepAlive: 60})
	sub.subscribe(1, "willdelay/#", 0)
	connect := func(id string) *rawMQTT {
		var cp, wp mqtt.Properties
		cp.SessionExpiry = 60
		cp.Set(mqtt.PropSessionExpiry)
		wp.WillDelay = 1
		wp.Set(mqtt.PropWillDelay)
		r := dialRaw(t, b.MQTT)
		r.connect(&mqtt.Connect{Version: mqtt.V5, ClientID: id, CleanStart: true, KeepAlive: 60, Properties: cp,
			Will: &mqtt.Will{Topic: "willdelay/" + id, Payload: []byte(id), Properties: wp}})
		return r
	}
	back := connect("back")
	back.nc.Close()
	connect("back") // within the delay: no will
	gone := connect("gone")
	start := time.Now()
	gone.nc.Close()
	got := sub.readPublishes(1)[0]
	if got.Topic != "willdelay/gone" {
		t.Fatalf("will %s, want willdelay/gone only", got.Topic)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("will after %v, before its delay", d)
	}
	sub.expectNothing(1500 * time.Millisecond) // the reconnected client's will never comes
}

// QoS 2 deliveries: a QoS 2 subscription gets QoS 2 messages at QoS 2 (PUBREC settles the message,
// PUBREL, PUBCOMP frees the identifier); a persistent session gets an unreceived one again with DUP,
// and a PUBREL it still owes after reconnecting.
func TestMQTTQoS2Delivery(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 grants QoS 2 as 1")
	b := startMQTTBroker(t)
	r := dialRaw(t, b.MQTT)
	r.connect(&mqtt.Connect{ClientID: "qos2-deliv", KeepAlive: 60}) // persistent
	if sa := r.subscribe(1, "q2d/#", 2); sa.ReasonCodes[0] != mqtt.GrantedQoS2 {
		t.Fatalf("granted %v", sa.ReasonCodes)
	}
	pub := dialRaw(t, b.MQTT)
	pub.connect(&mqtt.Connect{ClientID: "qos2-deliv-pub", CleanStart: true, KeepAlive: 60})
	publish2 := func(id uint16, body string) {
		t.Helper()
		pub.send(&mqtt.Publish{QoS: 2, PacketID: id, Topic: "q2d/x", Payload: []byte(body)})
		for _, want := range []mqtt.PacketType{mqtt.PUBREC, mqtt.PUBCOMP} {
			if want == mqtt.PUBCOMP {
				pub.send(&mqtt.PubRel{PacketID: id})
			}
			if p, err := pub.read(10 * time.Second); err != nil || p.Type() != want {
				t.Fatalf("publisher got %v %v, want %v", p, err, want)
			}
		}
	}
	publish2(1, "a")
	p := r.readPublishes(1)[0]
	if p.QoS != 2 || string(p.Payload) != "a" || p.Dup {
		t.Fatalf("delivery %+v", p)
	}
	r.send(&mqtt.PubRec{PacketID: p.PacketID})
	if rel, err := r.read(10 * time.Second); err != nil || rel.Type() != mqtt.PUBREL || rel.(*mqtt.PubRel).PacketID != p.PacketID {
		t.Fatalf("got %v %v, want PUBREL %d", rel, err, p.PacketID)
	}
	// Gone before PUBCOMP, and with a second message unreceived.
	publish2(2, "b")
	pb := r.readPublishes(1)[0]
	r.nc.Close()

	r2 := dialRaw(t, b.MQTT)
	if ack := r2.connect(&mqtt.Connect{ClientID: "qos2-deliv", KeepAlive: 60}); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	var rels []uint16
	var again *mqtt.Publish
	for again == nil || len(rels) == 0 {
		x, err := r2.read(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch x := x.(type) {
		case *mqtt.PubRel:
			rels = append(rels, x.PacketID)
		case *mqtt.Publish:
			again = x
		}
	}
	if len(rels) != 1 || rels[0] != p.PacketID {
		t.Fatalf("PUBRELs again %v, want [%d]", rels, p.PacketID)
	}
	if string(again.Payload) != "b" || !again.Dup || again.QoS != 2 || again.PacketID == p.PacketID {
		t.Fatalf("redelivery %+v (first id %d, second %d)", again, p.PacketID, pb.PacketID)
	}
	r2.send(&mqtt.PubComp{PacketID: p.PacketID})
	r2.send(&mqtt.PubRec{PacketID: again.PacketID})
	if rel, err := r2.read(10 * time.Second); err != nil || rel.Type() != mqtt.PUBREL {
		t.Fatalf("got %v %v, want PUBREL", rel, err)
	}
	r2.send(&mqtt.PubComp{PacketID: again.PacketID})
	// Settled: a clean reconnect to the session finds nothing more.
	r2.send(&mqtt.Disconnect{})
	r2.expectClosed(10 * time.Second)
	r3 := dialRaw(t, b.MQTT)
	r3.connect(&mqtt.Connect{ClientID: "qos2-deliv", KeepAlive: 60})
	r3.expectNothing(200 * time.Millisecond)
}
