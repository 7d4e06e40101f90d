package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
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

// MQTT front end tests with a real client (paho.mqtt.golang, MQTT 3.1.1) and raw packets (the
// mqtt codec) where the client cannot do what the test needs. With WARREN_TEST_URL set they run
// against that broker's MQTT listener on port 1883 (RabbitMQ with rabbitmq_mqtt), except those
// that need broker options, a restart or behaviour where Warren follows the specification and
// RabbitMQ 3.10 does not. The external broker's MQTT listener is WARREN_TEST_MQTT_ADDR (default: the
// host of WARREN_TEST_URL, port 1883).

// mqttBroker is a broker under test with its MQTT listener.
type mqttBroker struct {
	broker
	MQTT string // host:port of the MQTT listener
}

func startMQTTBroker(t testing.TB, opts ...func(*server.Options)) mqttBroker {
	t.Helper()
	if externalURL != "" {
		if len(opts) > 0 {
			t.Skip("needs broker options; WARREN_TEST_URL points at an external broker")
		}
		b := startBroker(t)
		addr := os.Getenv("WARREN_TEST_MQTT_ADDR")
		if addr == "" {
			host, _, _ := net.SplitHostPort(b.Addr)
			addr = net.JoinHostPort(host, "1883")
		}
		return mqttBroker{broker: b, MQTT: addr}
	}
	tb := testbroker.Start(t, opts...)
	return mqttBroker{broker: broker{URL: "amqp://guest:guest@" + tb.Addr + "/", Addr: tb.Addr, Srv: tb.Srv}, MQTT: tb.StartMQTT(t)}
}

func mqttSkipExternal(t testing.TB, why string) {
	t.Helper()
	if externalURL != "" {
		t.Skip(why)
	}
}

// received collects the messages a paho client gets.
type received struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (r *received) handler(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *received) wait(t *testing.T, n int) []paho.Message {
	t.Helper()
	wait.For(t, 10*time.Second, fmt.Sprintf("%d MQTT messages", n), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.msgs) >= n
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]paho.Message(nil), r.msgs...)
}

func pahoOptions(addr, id string, clean bool) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername("guest").SetPassword("guest").SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).SetOrderMatters(true)
}

// pahoConnect connects a client and disconnects it when the test ends.
func pahoConnect(t *testing.T, o *paho.ClientOptions) paho.Client {
	t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT connect: %v", tok.Error())
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(100)
		}
	})
	return c
}

func pahoWait(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

func uniqueTopic(t *testing.T) string {
	return fmt.Sprintf("%s/%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
}

// Publishes at QoS 0 and 1 reach subscribers at the lower of the two QoS, with '+' and '#' filters,
// and the topic comes back as published.
func TestMQTTPubSub(t *testing.T) {
	b := startMQTTBroker(t)
	base := uniqueTopic(t)
	var r0, r1 received
	sub := pahoConnect(t, pahoOptions(b.MQTT, "sub-"+base, true))
	pahoWait(t, "subscribe", sub.Subscribe(base+"/+/x", 1, r1.handler))
	sub2 := pahoConnect(t, pahoOptions(b.MQTT, "sub2-"+base, true))
	pahoWait(t, "subscribe", sub2.Subscribe(base+"/#", 0, r0.handler))
	pub := pahoConnect(t, pahoOptions(b.MQTT, "pub-"+base, true))
	pahoWait(t, "publish", pub.Publish(base+"/a/x", 0, false, "m0"))
	pahoWait(t, "publish", pub.Publish(base+"/b/x", 1, false, "m1"))
	pahoWait(t, "publish", pub.Publish(base+"/b/y", 1, false, "m2"))

	got := r1.wait(t, 2)
	if len(got) != 2 || string(got[0].Payload()) != "m0" || got[0].Topic() != base+"/a/x" || got[0].Qos() != 0 ||
		string(got[1].Payload()) != "m1" || got[1].Topic() != base+"/b/x" || got[1].Qos() != 1 {
		t.Fatalf("QoS 1 subscriber got %v", describe(got))
	}
	got = r0.wait(t, 3)
	for i, m := range got {
		if m.Qos() != 0 || string(m.Payload()) != fmt.Sprintf("m%d", i) {
			t.Fatalf("QoS 0 subscriber got %v", describe(got))
		}
	}
}

func describe(ms []paho.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s:%q(qos %d dup %v retained %v)", m.Topic(), m.Payload(), m.Qos(), m.Duplicate(), m.Retained()))
	}
	return out
}

// MQTT and AMQP clients exchange messages both ways through amq.topic, with RabbitMQ's mapping:
// '/' and '.' swapped, QoS 1 persistent, the x-mqtt-publish-qos and x-mqtt-dup headers.
func TestMQTTAMQPInterop(t *testing.T) {
	b := startMQTTBroker(t)
	base := uniqueTopic(t)
	key := strings.ReplaceAll(base, "/", ".")
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
	if err := ch.QueueBind(q.Name, key+".#", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var r received
	mc := pahoConnect(t, pahoOptions(b.MQTT, "interop-"+base, true))
	pahoWait(t, "subscribe", mc.Subscribe(base+"/from-amqp", 1, r.handler))
	pahoWait(t, "publish", mc.Publish(base+"/to/amqp", 1, false, "hello amqp"))
	pahoWait(t, "publish", mc.Publish(base+"/to/amqp0", 0, false, "qos0"))

	for i, want := range []struct {
		body, key string
		mode      uint8
		qos       int
	}{{"hello amqp", key + ".to.amqp", 2, 1}, {"qos0", key + ".to.amqp0", 1, 0}} {
		select {
		case d := <-msgs:
			if string(d.Body) != want.body || d.RoutingKey != want.key || d.Exchange != "amq.topic" || d.DeliveryMode != want.mode {
				t.Fatalf("AMQP delivery %d: %q key %q exchange %q mode %d", i, d.Body, d.RoutingKey, d.Exchange, d.DeliveryMode)
			}
			if qos, ok := d.Headers["x-mqtt-publish-qos"]; !ok || fmt.Sprint(qos) != fmt.Sprint(want.qos) {
				t.Fatalf("x-mqtt-publish-qos = %v (%T), want %d", qos, qos, want.qos)
			}
			if dup, ok := d.Headers["x-mqtt-dup"].(bool); !ok || dup {
				t.Fatalf("x-mqtt-dup = %v", d.Headers["x-mqtt-dup"])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no AMQP delivery %d", i)
		}
	}
	if err := ch.Publish("amq.topic", key+".from-amqp", false, false, amqp.Publishing{Body: []byte("hello mqtt")}); err != nil {
		t.Fatal(err)
	}
	got := r.wait(t, 1)
	if string(got[0].Payload()) != "hello mqtt" || got[0].Topic() != base+"/from-amqp" || got[0].Qos() != 1 {
		t.Fatalf("MQTT got %v", describe(got))
	}
}

// The subscription queues are named and declared as RabbitMQ names them, bound with the mapped
// filter; a clean session's are deleted with its connection.
func TestMQTTSubscriptionQueues(t *testing.T) {
	mqttSkipExternal(t, "reads Warren's queue listing")
	b := startMQTTBroker(t)
	c := pahoConnect(t, pahoOptions(b.MQTT, "qnames", true))
	pahoWait(t, "subscribe", c.Subscribe("a/+/c/#", 1, func(paho.Client, paho.Message) {}))
	pahoWait(t, "subscribe", c.Subscribe("z", 0, func(paho.Client, paho.Message) {}))
	qs := b.Srv.Queues(func(v string) bool { return v == "/" })
	names := map[string]bool{}
	for _, q := range qs {
		names[q.Name] = true
	}
	if !names["mqtt-subscription-qnamesqos1"] || !names["mqtt-subscription-qnamesqos0"] {
		t.Fatalf("queues %v", names)
	}
	bs, err := b.Srv.VhostBindings("/")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, bi := range bs {
		if bi.Source == "amq.topic" && (bi.Destination == "mqtt-subscription-qnamesqos1" && bi.RoutingKey == "a.*.c.#" ||
			bi.Destination == "mqtt-subscription-qnamesqos0" && bi.RoutingKey == "z") {
			found++
		}
	}
	if found != 2 {
		t.Fatalf("bindings %+v", bs)
	}
	c.Disconnect(100)
	wait.For(t, 10*time.Second, "clean session's queues deleted", func() bool {
		qs := b.Srv.Queues(func(v string) bool { return v == "/" })
		for _, q := range qs {
			if strings.HasPrefix(q.Name, "mqtt-subscription-qnames") {
				return false
			}
		}
		return true
	})
}

// A persistent session keeps its subscriptions and the QoS 1 messages published while its client
// was away, across reconnects and a broker restart; CONNACK says the session is present.
func TestMQTTPersistentSession(t *testing.T) {
	mqttSkipExternal(t, "restarts the broker")
	store := storage.NewMemStore()
	o := server.Options{Logger: testLogger(t), Store: store}
	b1, err := testbroker.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Stop()
	addr := b1.StartMQTT(t)
	base := uniqueTopic(t)
	var r received
	opts := pahoOptions(addr, "persist-1", false).SetDefaultPublishHandler(r.handler)
	c := pahoConnect(t, opts)
	pahoWait(t, "subscribe", c.Subscribe(base+"/#", 1, r.handler))
	c.Disconnect(100)

	pub := pahoConnect(t, pahoOptions(addr, "persist-pub", true))
	for i := range 3 {
		pahoWait(t, "publish", pub.Publish(fmt.Sprintf("%s/%d", base, i), 1, false, fmt.Sprintf("m%d", i)))
	}
	pub.Disconnect(100)

	c = paho.NewClient(opts)
	tok := c.Connect()
	pahoWait(t, "reconnect", tok)
	if !tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatal("session not present on reconnect")
	}
	got := r.wait(t, 3)
	for i, m := range got {
		if string(m.Payload()) != fmt.Sprintf("m%d", i) {
			t.Fatalf("got %v", describe(got))
		}
	}
	c.Disconnect(100)

	// Published while the client is away, then the broker restarts.
	pub = pahoConnect(t, pahoOptions(addr, "persist-pub", true))
	pahoWait(t, "publish", pub.Publish(base+"/after", 1, false, "after restart"))
	pub.Disconnect(100)
	if err := b1.Stop(); err != nil {
		t.Fatal(err)
	}
	b2, err := testbroker.New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Stop()
	addr2 := b2.StartMQTT(t)
	var r2 received
	opts2 := pahoOptions(addr2, "persist-1", false).SetDefaultPublishHandler(r2.handler)
	c2 := paho.NewClient(opts2)
	tok = c2.Connect()
	pahoWait(t, "connect after restart", tok)
	defer c2.Disconnect(100)
	if !tok.(*paho.ConnectToken).SessionPresent() {
		t.Fatal("session not present after a restart")
	}
	got = r2.wait(t, 1)
	if string(got[0].Payload()) != "after restart" || got[0].Topic() != base+"/after" {
		t.Fatalf("after restart got %v", describe(got))
	}
	// The subscription itself survived: a new publish reaches it.
	pub = pahoConnect(t, pahoOptions(addr2, "persist-pub", true))
	pahoWait(t, "publish", pub.Publish(base+"/new", 1, false, "new"))
	got = r2.wait(t, 2)
	if string(got[1].Payload()) != "new" {
		t.Fatalf("after restart got %v", describe(got))
	}
}

// A second connection with the same client id takes the session over: the first is closed.
func TestMQTTClientIDTakeover(t *testing.T) {
	b := startMQTTBroker(t)
	id := "takeover-" + strings.ReplaceAll(uniqueTopic(t), "/", "-")
	lost := make(chan error, 1)
	c1 := pahoConnect(t, pahoOptions(b.MQTT, id, true).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	_ = c1
	pahoConnect(t, pahoOptions(b.MQTT, id, true))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the first connection was not closed by the takeover")
	}
}

// A bad password gets CONNACK 4 (bad user name or password); an unknown vhost too, as RabbitMQ.
func TestMQTTBadLogin(t *testing.T) {
	b := startMQTTBroker(t)
	for _, tc := range []struct{ user, pass string }{{"guest", "wrong"}, {"nosuchvhost:guest", "guest"}, {"nobody", "x"}} {
		o := pahoOptions(b.MQTT, "badlogin", true).SetUsername(tc.user).SetPassword(tc.pass)
		c := paho.NewClient(o)
		tok := c.Connect()
		tok.WaitTimeout(10 * time.Second)
		if tok.Error() == nil || !strings.Contains(tok.Error().Error(), "bad user name or password") {
			t.Errorf("%s/%s: connect error %v, want bad user name or password", tc.user, tc.pass, tok.Error())
		}
		if rc := tok.(*paho.ConnectToken).ReturnCode(); rc != 4 {
			t.Errorf("%s: return code %d, want 4", tc.user, rc)
		}
	}
}

// rawMQTT is a connection speaking raw packets (the mqtt codec) for what a client library will not
// do: wills without DISCONNECT, silence past the keepalive, malformed packets.
type rawMQTT struct {
	t   testing.TB
	nc  net.Conn
	buf []byte
	v   mqtt.Version
}

func dialRaw(t testing.TB, addr string) *rawMQTT {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawMQTT{t: t, nc: nc, v: mqtt.V311}
}

func (r *rawMQTT) send(p mqtt.Packet) {
	r.t.Helper()
	b, err := mqtt.Append(nil, p, r.v)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the next packet, or an error (io.EOF when the broker closed the connection).
func (r *rawMQTT) read(timeout time.Duration) (mqtt.Packet, error) {
	r.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		if len(r.buf) > 0 {
			p, n, err := mqtt.Decode(r.v, r.buf)
			if err == nil {
				r.buf = r.buf[n:]
				return p, nil
			}
			if !errors.Is(err, mqtt.ErrNeedMore) {
				return nil, err
			}
		}
		var tmp [4096]byte
		n, err := r.nc.Read(tmp[:])
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

func (r *rawMQTT) connect(c *mqtt.Connect) *mqtt.Connack {
	r.t.Helper()
	if c.Version == 0 {
		c.Version = r.v
	}
	r.v = c.Version
	if !c.HasUsername {
		c.HasUsername, c.Username, c.HasPassword, c.Password = true, "guest", true, []byte("guest")
	}
	r.send(c)
	p, err := r.read(10 * time.Second)
	if err != nil {
		r.t.Fatalf("CONNACK: %v", err)
	}
	ack, ok := p.(*mqtt.Connack)
	if !ok {
		r.t.Fatalf("got %T, want CONNACK", p)
	}
	return ack
}

// expectClosed waits for the broker to close the connection (packets before the close are
// returned).
func (r *rawMQTT) expectClosed(timeout time.Duration) []mqtt.Packet {
	r.t.Helper()
	var got []mqtt.Packet
	for {
		p, err := r.read(timeout)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("connection still open after %v", timeout)
			}
			return got
		}
		got = append(got, p)
	}
}

// A client silent for 1.5 times its keepalive is disconnected (RabbitMQ waits 3 times), not
// before its keepalive.
func TestMQTTKeepaliveTimeout(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 waits three keepalives")
	b := startMQTTBroker(t)
	r := dialRaw(t, b.MQTT)
	if ack := r.connect(&mqtt.Connect{ClientID: "keepalive", CleanStart: true, KeepAlive: 1}); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v", ack.ReasonCode)
	}
	start := time.Now()
	r.expectClosed(10 * time.Second)
	if d := time.Since(start); d < time.Second {
		t.Fatalf("closed after %v, before the keepalive", d)
	}
	// A PINGREQ within the keepalive keeps the connection.
	r = dialRaw(t, b.MQTT)
	r.connect(&mqtt.Connect{ClientID: "keepalive2", CleanStart: true, KeepAlive: 60})
	r.send(&mqtt.Pingreq{})
	if p, err := r.read(10 * time.Second); err != nil || p.Type() != mqtt.PINGRESP {
		t.Fatalf("PINGREQ answered with %v, %v", p, err)
	}
}

// A malformed packet closes the connection; the broker goes on serving others.
func TestMQTTMalformedPacketCloses(t *testing.T) {
	b := startMQTTBroker(t)
	for i, tc := range []struct {
		junk     []byte
		specOnly bool // RabbitMQ 3.10 keeps the connection open, against the specification
	}{
		{[]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, true},       // remaining length of five bytes
		{[]byte{0x82, 0x02, 0x00, 0x01}, false},                  // SUBSCRIBE without a filter
		{[]byte{0x00, 0x00}, true},                               // reserved packet type 0
		{[]byte{0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00}, false}, // QoS 1 PUBLISH with packet identifier 0
	} {
		junk := tc.junk
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if tc.specOnly {
				mqttSkipExternal(t, "RabbitMQ 3.10 does not close the connection")
			}
			r := dialRaw(t, b.MQTT)
			r.connect(&mqtt.Connect{ClientID: fmt.Sprintf("malformed-%d", i), CleanStart: true, KeepAlive: 60})
			if _, err := r.nc.Write(junk); err != nil {
				t.Fatal(err)
			}
			r.expectClosed(10 * time.Second)
		})
	}
	// A first packet that is not CONNECT closes too.
	r := dialRaw(t, b.MQTT)
	r.send(&mqtt.Pingreq{})
	r.expectClosed(10 * time.Second)
	// Still serving.
	var rec received
	c := pahoConnect(t, pahoOptions(b.MQTT, "after-malformed", true))
	pahoWait(t, "subscribe", c.Subscribe("after/malformed", 0, rec.handler))
	pahoWait(t, "publish", c.Publish("after/malformed", 0, false, "ok"))
	rec.wait(t, 1)
}

// A second CONNECT on a connection closes it.
func TestMQTTSecondConnectCloses(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 ignores a second CONNECT")
	b := startMQTTBroker(t)
	r := dialRaw(t, b.MQTT)
	r.connect(&mqtt.Connect{ClientID: "second-connect", CleanStart: true, KeepAlive: 60})
	r.send(&mqtt.Connect{Version: mqtt.V311, ClientID: "second-connect", CleanStart: true, KeepAlive: 60})
	r.expectClosed(10 * time.Second)
}

// The will is published when a client goes away without DISCONNECT, not when it disconnects.
func TestMQTTWill(t *testing.T) {
	b := startMQTTBroker(t)
	base := uniqueTopic(t)
	var rec received
	sub := pahoConnect(t, pahoOptions(b.MQTT, "will-sub-"+strings.ReplaceAll(base, "/", "-"), true))
	pahoWait(t, "subscribe", sub.Subscribe(base+"/will", 1, rec.handler))

	polite := dialRaw(t, b.MQTT)
	polite.connect(&mqtt.Connect{ClientID: "will-polite", CleanStart: true, KeepAlive: 60,
		Will: &mqtt.Will{Topic: base + "/will", Payload: []byte("polite"), QoS: 1}})
	polite.send(&mqtt.Disconnect{})
	polite.expectClosed(10 * time.Second)

	rude := dialRaw(t, b.MQTT)
	rude.connect(&mqtt.Connect{ClientID: "will-rude", CleanStart: true, KeepAlive: 60,
		Will: &mqtt.Will{Topic: base + "/will", Payload: []byte("gone"), QoS: 1}})
	rude.nc.Close()
	got := rec.wait(t, 1)
	if string(got[0].Payload()) != "gone" || got[0].Topic() != base+"/will" {
		t.Fatalf("will: %v", describe(got))
	}
	// Nothing from the polite client: a publish after the will arrives right after it.
	pub := pahoConnect(t, pahoOptions(b.MQTT, "will-pub", true))
	pahoWait(t, "publish", pub.Publish(base+"/will", 1, false, "marker"))
	got = rec.wait(t, 2)
	if len(got) != 2 || string(got[1].Payload()) != "marker" {
		t.Fatalf("got %v, want the will then the marker only", describe(got))
	}
}

// The MQTT listener is listed as RabbitMQ lists it ("mqtt"), its connections in the connection
// listing with protocol "MQTT 3.1.1" and the client id, logins counted as "mqtt" attempts; the
// management API's close and Shutdown close them.
func TestMQTTListenerAndConnections(t *testing.T) {
	mqttSkipExternal(t, "reads Warren's listings")
	b := startMQTTBroker(t)
	wait.For(t, 10*time.Second, "the mqtt listener listed", func() bool {
		for _, l := range b.Srv.AllListeners() {
			if l.Protocol == server.ProtocolMQTT && l.Addr.String() == b.MQTT {
				return true
			}
		}
		return false
	})
	for _, a := range b.Srv.Listeners() {
		if a.String() == b.MQTT {
			t.Fatal("the MQTT listener is listed with the AMQP ones")
		}
	}
	lost := make(chan error, 1)
	pahoConnect(t, pahoOptions(b.MQTT, "listed", true).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	var ci server.ConnectionInfo
	for _, c := range b.Srv.Connections() {
		if c.Protocol == "MQTT 3.1.1" {
			ci = c
		}
	}
	if ci.ClientProperties["client_id"] != "listed" || ci.User != "guest" || ci.Vhost != "/" || ci.Heartbeat != 30 {
		t.Fatalf("MQTT connection listed as %+v", ci)
	}
	if got, err := b.Srv.Connection(ci.Name); err != nil || got.Protocol != "MQTT 3.1.1" {
		t.Fatalf("Connection(%q) = %+v, %v", ci.Name, got, err)
	}
	var attempts uint64
	for _, a := range b.Srv.AuthAttempts() {
		if a.Protocol == server.AuthProtocolMQTT {
			attempts = a.Succeeded
		}
	}
	if attempts != 1 {
		t.Fatalf("mqtt auth attempts %+v", b.Srv.AuthAttempts())
	}
	if err := b.Srv.CloseConnection(ci.Name, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("CloseConnection did not close the MQTT connection")
	}
	// Shutdown closes an open MQTT connection and waits for it (the test broker's Stop fails if
	// it cannot).
	r := dialRaw(t, b.MQTT)
	r.connect(&mqtt.Connect{ClientID: "at-shutdown", CleanStart: true, KeepAlive: 60})
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- b.Srv.Shutdown(ctx)
	}()
	r.expectClosed(10 * time.Second)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// MQTT 3.1 (MQIsdp) clients work too, and UNSUBSCRIBE ends a subscription: a publish after it is
// not delivered, one to a filter still subscribed is.
func TestMQTT31AndUnsubscribe(t *testing.T) {
	b := startMQTTBroker(t)
	base := uniqueTopic(t)
	var rec received
	c := pahoConnect(t, pahoOptions(b.MQTT, "v31-"+strings.ReplaceAll(base, "/", "-")[:10], true).SetProtocolVersion(3))
	pahoWait(t, "subscribe", c.Subscribe(base+"/a", 1, rec.handler))
	pahoWait(t, "subscribe", c.Subscribe(base+"/b", 1, rec.handler))
	pahoWait(t, "publish", c.Publish(base+"/a", 1, false, "before"))
	rec.wait(t, 1)
	pahoWait(t, "unsubscribe", c.Unsubscribe(base+"/a"))
	pahoWait(t, "publish", c.Publish(base+"/a", 1, false, "after"))
	pahoWait(t, "publish", c.Publish(base+"/b", 1, false, "marker"))
	got := rec.wait(t, 2) // in order: "after" would come before the marker
	if len(got) != 2 || string(got[1].Payload()) != "marker" {
		t.Fatalf("got %v, want before then marker", describe(got))
	}
	if externalURL == "" {
		var proto string
		for _, ci := range b.Srv.Connections() {
			if strings.HasPrefix(ci.Protocol, "MQTT") {
				proto = ci.Protocol
			}
		}
		if proto != "MQTT 3.1.0" { // RabbitMQ's name for 3.1
			t.Fatalf("listed as %q, want MQTT 3.1.0", proto)
		}
	}
}
