package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/stomp"
)

// Web MQTT and Web STOMP (server/ws.go) with coder/websocket's client speaking raw MQTT packets
// and STOMP frames. With WARREN_TEST_URL set they run against that broker's Web MQTT and Web STOMP
// listeners (WARREN_TEST_WEB_MQTT_ADDR, default 127.0.0.1:15675; WARREN_TEST_WEB_STOMP_ADDR,
// default 127.0.0.1:15674: RabbitMQ with rabbitmq_web_mqtt and rabbitmq_web_stomp).

// webBroker is a broker under test with its Web MQTT and Web STOMP listeners.
type webBroker struct {
	URL      string // AMQP URL (guest)
	WebMQTT  string // host:port of the Web MQTT listener (endpoint ws://WebMQTT/ws)
	WebSTOMP string // host:port of the Web STOMP listener
	Srv      *server.Server
	tb       *testbroker.Broker // nil for the reference broker
}

func startWebBroker(t testing.TB) webBroker {
	t.Helper()
	if externalURL != "" {
		env := func(k, def string) string {
			if v := os.Getenv(k); v != "" {
				return v
			}
			return def
		}
		return webBroker{URL: externalURL, WebMQTT: env("WARREN_TEST_WEB_MQTT_ADDR", "127.0.0.1:15675"),
			WebSTOMP: env("WARREN_TEST_WEB_STOMP_ADDR", "127.0.0.1:15674")}
	}
	tb := testbroker.Start(t)
	return webBroker{URL: "amqp://guest:guest@" + tb.Addr + "/", WebMQTT: tb.StartWebMQTT(t),
		WebSTOMP: tb.StartWebSTOMP(t), Srv: tb.Srv, tb: tb}
}

// wsDial opens a WebSocket to ws://addr/ws offering protos.
func wsDial(t testing.TB, addr string, protos ...string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Subprotocols: protos})
	if err != nil {
		t.Fatalf("dial ws://%s/ws %v: %v", addr, protos, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func wsWrite(t testing.TB, c *websocket.Conn, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, b); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

// wsStream decodes what the broker sends over a WebSocket as one byte stream, checking the type
// of every message.
type wsStream struct {
	t    testing.TB
	c    *websocket.Conn
	typ  websocket.MessageType // the type every message must have
	buf  []byte
	msgs int // messages read
}

// more reads one more message; an error when the WebSocket closes or timeout passes.
func (s *wsStream) more(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := s.c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != s.typ {
		s.t.Fatalf("broker sent a %v message %q, want %v", typ, b, s.typ)
	}
	s.msgs++
	s.buf = append(s.buf, b...)
	return nil
}

func (s *wsStream) mqttPacket(timeout time.Duration) mqtt.Packet {
	s.t.Helper()
	for {
		if len(s.buf) > 0 {
			p, n, err := mqtt.Decode(mqtt.V311, s.buf)
			if err == nil {
				s.buf = s.buf[n:]
				return p
			}
			if !errors.Is(err, mqtt.ErrNeedMore) {
				s.t.Fatalf("decoding MQTT: %v", err)
			}
		}
		if err := s.more(timeout); err != nil {
			s.t.Fatalf("reading an MQTT packet: %v", err)
		}
	}
}

func (s *wsStream) stompFrame(timeout time.Duration) stomp.Frame {
	s.t.Helper()
	dec := stomp.Decoder{FromServer: true}
	for {
		if len(s.buf) > 0 {
			f, n, err := dec.Decode(stomp.V12, s.buf)
			if err == nil {
				s.buf = s.buf[n:]
				if f.Heartbeat { // the newline after a frame
					continue
				}
				return stomp.Frame{Command: f.Command, Headers: append([]stomp.Header(nil), f.Headers...), Body: append([]byte(nil), f.Body...)}
			}
			if !errors.Is(err, stomp.ErrNeedMore) {
				s.t.Fatalf("decoding STOMP: %v", err)
			}
		}
		if err := s.more(timeout); err != nil {
			s.t.Fatalf("reading a STOMP frame: %v", err)
		}
	}
}

// closed waits until the broker closes the WebSocket, discarding what it sends before.
func (s *wsStream) closed(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := s.more(time.Until(deadline))
		if err == nil {
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("still open after %v", timeout)
		}
		return nil
	}
}

func mqttBytes(t testing.TB, p mqtt.Packet) []byte {
	t.Helper()
	b, err := mqtt.Append(nil, p, mqtt.V311)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func guestConnect(id string) *mqtt.Connect {
	return &mqtt.Connect{Version: mqtt.V311, ClientID: id, CleanStart: true, KeepAlive: 60,
		HasUsername: true, Username: "guest", HasPassword: true, Password: []byte("guest")}
}

// Web MQTT: a CONNECT split across two binary messages, with a PINGREQ in the second; a text
// message is ignored (RabbitMQ ignores them); messages to and from an AMQP client.
func TestWebMQTTRawPackets(t *testing.T) {
	b := startWebBroker(t)
	c := wsDial(t, b.WebMQTT, "mqtt")
	if c.Subprotocol() != "mqtt" {
		t.Fatalf("subprotocol %q, want mqtt", c.Subprotocol())
	}
	in := &wsStream{t: t, c: c, typ: websocket.MessageBinary}
	id := fmt.Sprintf("webmqtt-%d", time.Now().UnixNano())
	connect := mqttBytes(t, guestConnect(id))
	wsWrite(t, c, websocket.MessageBinary, connect[:5])
	wsWrite(t, c, websocket.MessageBinary, append(connect[5:], mqttBytes(t, &mqtt.Pingreq{})...))
	if ack, ok := in.mqttPacket(10 * time.Second).(*mqtt.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("want CONNACK 0, got %+v", ack)
	}
	if p := in.mqttPacket(10 * time.Second); p.Type() != mqtt.PINGRESP {
		t.Fatalf("want PINGRESP, got %T", p)
	}
	// A text message is not read as MQTT ("hello" would be a malformed packet that closes the
	// connection).
	wsWrite(t, c, websocket.MessageText, []byte("hello"))
	topic := strings.ReplaceAll(id, "-", "/")
	wsWrite(t, c, websocket.MessageBinary, mqttBytes(t, &mqtt.Subscribe{PacketID: 1,
		Subscriptions: []mqtt.Subscription{{Filter: topic + "/in/#", QoS: 1}}}))
	if p, ok := in.mqttPacket(10 * time.Second).(*mqtt.Suback); !ok || p.PacketID != 1 {
		t.Fatalf("want SUBACK 1, got %+v", p)
	}

	ac, ch := dialAMQP(t, b.URL)
	defer ac.Close()
	key := strings.ReplaceAll(topic, "/", ".") + ".in.from-amqp"
	if err := ch.Publish("amq.topic", key, false, false, amqp.Publishing{Body: []byte("hello web mqtt")}); err != nil {
		t.Fatal(err)
	}
	pub, ok := in.mqttPacket(10 * time.Second).(*mqtt.Publish)
	if !ok || pub.Topic != topic+"/in/from-amqp" || string(pub.Payload) != "hello web mqtt" || pub.QoS != 1 {
		t.Fatalf("want the AMQP message as a QoS 1 PUBLISH on %s/in/from-amqp, got %+v", topic, pub)
	}
	wsWrite(t, c, websocket.MessageBinary, mqttBytes(t, &mqtt.PubAck{PacketID: pub.PacketID}))

	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, strings.ReplaceAll(topic, "/", ".")+".to-amqp", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	wsWrite(t, c, websocket.MessageBinary, mqttBytes(t, &mqtt.Publish{Topic: topic + "/to-amqp", QoS: 1, PacketID: 7, Payload: []byte("from the browser")}))
	if p, ok := in.mqttPacket(10 * time.Second).(*mqtt.PubAck); !ok || p.PacketID != 7 {
		t.Fatalf("want PUBACK 7, got %+v", p)
	}
	d := getOne(t, ch, q.Name)
	if string(d.Body) != "from the browser" {
		t.Fatalf("AMQP got %q", d.Body)
	}
	wsWrite(t, c, websocket.MessageBinary, mqttBytes(t, &mqtt.Disconnect{}))
	if err := in.closed(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// getOne gets one message from q, waiting for it.
func getOne(t testing.TB, ch *amqp.Channel, q string) amqp.Delivery {
	t.Helper()
	var d amqp.Delivery
	wait.For(t, 10*time.Second, "a message in "+q, func() bool {
		got, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		d = got
		return ok
	})
	return d
}

func dialAMQP(t testing.TB, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	ac, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := ac.Channel()
	if err != nil {
		ac.Close()
		t.Fatal(err)
	}
	return ac, ch
}

// Web STOMP: a CONNECT split across two messages, SUBSCRIBE and SEND in one message, a SEND in a
// binary message; the broker answers in text messages, the frames as on TCP.
func TestWebSTOMPRawFrames(t *testing.T) {
	b := startWebBroker(t)
	c := wsDial(t, b.WebSTOMP, "v10.stomp", "v11.stomp", "v12.stomp")
	if c.Subprotocol() != "v12.stomp" {
		t.Fatalf("subprotocol %q, want v12.stomp", c.Subprotocol())
	}
	in := &wsStream{t: t, c: c, typ: websocket.MessageText}
	wsWrite(t, c, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nho"))
	wsWrite(t, c, websocket.MessageText, []byte("st:/\nlogin:guest\npasscode:guest\n\n\x00"))
	if f := in.stompFrame(10 * time.Second); f.Command != "CONNECTED" || get(f, "version") != "1.2" {
		t.Fatalf("want CONNECTED 1.2, got %s %s", f.Command, hdrs(f))
	}
	q := fmt.Sprintf("webstomp-%d", time.Now().UnixNano())
	wsWrite(t, c, websocket.MessageText, []byte("SUBSCRIBE\nid:0\ndestination:/queue/"+q+"\nreceipt:r1\n\n\x00"+
		"SEND\ndestination:/queue/"+q+"\ncontent-type:text/plain\nreceipt:r2\n\nhéllo ✓\x00"))
	// RabbitMQ answers RECEIPT r1, MESSAGE, RECEIPT r2; Warren's receipts wait for their
	// commit, so the MESSAGE may come first.
	var got []string
	for range 3 {
		f := in.stompFrame(10 * time.Second)
		switch f.Command {
		case "RECEIPT":
			got = append(got, "RECEIPT "+get(f, "receipt-id"))
		case "MESSAGE":
			got = append(got, "MESSAGE "+string(f.Body)+" "+get(f, "content-type"))
		default:
			t.Fatalf("unexpected %s %s", f.Command, hdrs(f))
		}
	}
	slices.Sort(got)
	if want := []string{"MESSAGE héllo ✓ text/plain", "RECEIPT r1", "RECEIPT r2"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// A binary message is read as STOMP too.
	wsWrite(t, c, websocket.MessageBinary, []byte("SEND\ndestination:/queue/"+q+"\ncontent-length:3\n\na\x00b\x00"))
	if f := in.stompFrame(10 * time.Second); f.Command != "MESSAGE" || string(f.Body) != "a\x00b" {
		t.Fatalf("want MESSAGE a\\0b, got %s %s %q", f.Command, hdrs(f), f.Body)
	}
	// To and from AMQP.
	ac, ch := dialAMQP(t, b.URL)
	defer ac.Close()
	defer ch.QueueDelete(q, false, false, false)
	if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("from amqp")}); err != nil {
		t.Fatal(err)
	}
	if f := in.stompFrame(10 * time.Second); f.Command != "MESSAGE" || string(f.Body) != "from amqp" {
		t.Fatalf("want MESSAGE from amqp, got %s %s %q", f.Command, hdrs(f), f.Body)
	}
	wsWrite(t, c, websocket.MessageText, []byte("DISCONNECT\nreceipt:bye\n\n\x00"))
	// Warren answers with the RECEIPT, then closes; RabbitMQ 3.10.8's Web STOMP closes at once
	// ("STOMP died"), without it.
	in.buf = in.buf[:0]
	if err := in.closed(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if externalURL == "" && !strings.HasPrefix(string(in.buf), "RECEIPT\nreceipt-id:bye\n") {
		t.Fatalf("after DISCONNECT got %q, want RECEIPT bye", in.buf)
	}
}

// wsHandshake sends a WebSocket handshake for path offering protos (none: no header) and
// returns the status and the Sec-WebSocket-Protocol of the answer.
func wsHandshake(t testing.TB, addr, path, protos string) (int, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://elsewhere.example\r\n"
	if protos != "" {
		req += "Sec-WebSocket-Protocol: " + protos + "\r\n"
	}
	if _, err := nc.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", addr, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Sec-WebSocket-Protocol")
}

// The subprotocols each endpoint answers, the paths it serves, and no origin check, as RabbitMQ
// 3.10.8's plugins.
func TestWebSocketHandshakes(t *testing.T) {
	b := startWebBroker(t)
	for _, tc := range []struct {
		addr, path, offer string
		status            int
		answer            string
	}{
		{b.WebMQTT, "/ws", "mqtt", 101, "mqtt"},
		{b.WebMQTT, "/ws", "mqttv3.1", 101, "mqttv3.1"},
		{b.WebMQTT, "/ws", "", 101, ""},
		{b.WebMQTT, "/ws/", "mqtt", 101, "mqtt"},
		{b.WebMQTT, "/ws?x=1", "mqtt", 101, "mqtt"},
		{b.WebMQTT, "/", "mqtt", 404, ""},
		{b.WebMQTT, "/mqtt", "mqtt", 404, ""},
		{b.WebMQTT, "/WS", "mqtt", 404, ""},
		{b.WebSTOMP, "/ws", "v10.stomp", 101, "v10.stomp"},
		{b.WebSTOMP, "/ws", "v11.stomp", 101, "v11.stomp"},
		{b.WebSTOMP, "/ws", "v12.stomp", 101, "v12.stomp"},
		{b.WebSTOMP, "/ws", "v10.stomp, v11.stomp, v12.stomp", 101, "v12.stomp"},
		{b.WebSTOMP, "/ws", "v10.stomp, v11.stomp", 101, "v11.stomp"},
		{b.WebSTOMP, "/ws", "", 101, ""},
		{b.WebSTOMP, "/ws", "stomp", 101, ""},
		{b.WebSTOMP, "/ws", "mqtt", 101, ""},
		{b.WebSTOMP, "/stomp", "v12.stomp", 404, ""},
		{b.WebSTOMP, "/", "v12.stomp", 404, ""},
	} {
		status, answer := wsHandshake(t, tc.addr, tc.path, tc.offer)
		if status != tc.status || answer != tc.answer {
			t.Errorf("%s %s offering %q: %d %q, want %d %q", tc.addr, tc.path, tc.offer, status, answer, tc.status, tc.answer)
		}
	}
	// RabbitMQ 3.10.8's Web MQTT echoes whatever the client offers ("foo, mqtt" included, which
	// no client can accept); Warren answers with the MQTT subprotocol offered, or none.
	if externalURL == "" {
		for offer, want := range map[string]string{"foo": "", "foo, mqtt": "mqtt", "mqttv3.1, mqtt": "mqtt"} {
			if status, answer := wsHandshake(t, b.WebMQTT, "/ws", offer); status != 101 || answer != want {
				t.Errorf("Web MQTT offering %q: %d %q, want 101 %q", offer, status, answer, want)
			}
		}
	}
	if b.Srv != nil {
		// Let the broker see those connections end before the test stops it: Shutdown racing a
		// STOMP connection still in its CONNECT is a data race in the STOMP front end
		// (closeFromOutside reads stompConn.v, which connect writes), not what this test checks.
		wait.For(t, 10*time.Second, "the handshakes' connections closed", func() bool {
			o := b.Srv.Overview()
			return o.Churn.ConnectionCreated.Count == o.Churn.ConnectionClosed.Count
		})
	}
	// A plain GET of the endpoint: 426 Upgrade Required.
	for _, addr := range []string{b.WebMQTT, b.WebSTOMP} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/ws", nil)
		req.Close = true // no idle connection outlives the test (goleak)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Errorf("GET http://%s/ws: %d, want 426", addr, resp.StatusCode)
		}
	}
}

// The listeners are listed as RabbitMQ lists them; a Web MQTT connection is listed as an MQTT
// one; Shutdown closes them (MQTT 5: DISCONNECT; STOMP: ERROR) and waits for them.
func TestWebSocketListenersAndShutdown(t *testing.T) {
	mqttSkipExternal(t, "reads Warren's listings and shuts it down")
	b := startWebBroker(t)
	wait.For(t, 10*time.Second, "the http/web-mqtt and http/web-stomp listeners listed", func() bool {
		listed := map[string]string{}
		for _, l := range b.Srv.AllListeners() {
			listed[l.Protocol] = l.Addr.String()
		}
		return listed[server.ProtocolWebMQTT] == b.WebMQTT && listed[server.ProtocolWebSTOMP] == b.WebSTOMP
	})
	mc := wsDial(t, b.WebMQTT, "mqtt")
	mIn := &wsStream{t: t, c: mc, typ: websocket.MessageBinary}
	cp := guestConnect("web-at-shutdown")
	cp.Version = mqtt.V5
	b5, err := mqtt.Append(nil, cp, mqtt.V5)
	if err != nil {
		t.Fatal(err)
	}
	wsWrite(t, mc, websocket.MessageBinary, b5)
	if err := mIn.more(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p, _, err := mqtt.Decode(mqtt.V5, mIn.buf); err != nil || p.Type() != mqtt.CONNACK {
		t.Fatalf("CONNACK: %v %v", p, err)
	}
	mIn.buf = mIn.buf[:0]

	sc := wsDial(t, b.WebSTOMP, "v12.stomp")
	sin := &wsStream{t: t, c: sc, typ: websocket.MessageText}
	wsWrite(t, sc, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"))
	if f := sin.stompFrame(10 * time.Second); f.Command != "CONNECTED" {
		t.Fatalf("got %s", f.Command)
	}
	protos := map[string]bool{}
	for _, ci := range b.Srv.Connections() {
		protos[ci.Protocol] = true
		if !strings.HasPrefix(ci.PeerHost, "127.0.0.1") || ci.PeerPort == 0 {
			t.Errorf("connection %s: peer %s:%d", ci.Name, ci.PeerHost, ci.PeerPort)
		}
	}
	if !protos["Web MQTT 5.0"] || !protos["Web STOMP 1.2"] { // RabbitMQ's names for them
		t.Fatalf("connections listed: %v", protos)
	}

	// Read both in the background: Shutdown's close handshake waits for the clients' close
	// frames, which their reads answer.
	type result struct {
		what string
		err  error
	}
	results := make(chan result, 2)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var got []byte
		for {
			_, b, err := mc.Read(ctx)
			if err != nil {
				p, _, derr := mqtt.Decode(mqtt.V5, got)
				d, ok := p.(*mqtt.Disconnect)
				if derr != nil || !ok || d.ReasonCode != mqtt.ServerShuttingDown || websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					results <- result{"mqtt", fmt.Errorf("got %v (%v), closed with %v", p, derr, err)}
					return
				}
				results <- result{"mqtt", nil}
				return
			}
			got = append(got, b...)
		}
	}()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var got []byte
		for {
			_, b, err := sc.Read(ctx)
			if err != nil {
				if !strings.HasPrefix(string(got), "ERROR\n") || websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					results <- result{"stomp", fmt.Errorf("got %q, closed with %v", got, err)}
					return
				}
				results <- result{"stomp", nil}
				return
			}
			got = append(got, b...)
		}
	}()
	if err := b.tb.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := <-results; r.err != nil {
			t.Errorf("%s: %v", r.what, r.err)
		}
	}
}

// A message larger than the read limit (the largest message body and 1 MiB) closes the
// WebSocket with 1009 (message too big), even if every frame in it is valid (heart-beats here).
func TestWebSocketReadLimit(t *testing.T) {
	mqttSkipExternal(t, "needs broker options")
	tb := testbroker.Start(t, func(o *server.Options) { o.MaxMessageSize = 1 << 10 })
	addr := tb.StartWebSTOMP(t)
	c := wsDial(t, addr, "v12.stomp")
	wsWrite(t, c, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"))
	in := &wsStream{t: t, c: c, typ: websocket.MessageText}
	if f := in.stompFrame(10 * time.Second); f.Command != "CONNECTED" {
		t.Fatalf("got %s", f.Command)
	}
	big := make([]byte, 1<<10+2<<20)
	for i := range big {
		big[i] = '\n'
	}
	// The broker may close before the whole message is written: the write's error is not checked.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, big)
	var err error
	for err == nil {
		err = in.more(10 * time.Second)
	}
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("closed with %v, want 1009", err)
	}
}

// Read deadlines over a WebSocket wake the read loop without closing the WebSocket: an MQTT 5
// client silent past 1.5 keepalives gets DISCONNECT 0x8D (keep alive timeout) before the close
// (websocket.NetConn would have closed the WebSocket first).
func TestWebMQTTKeepaliveTimeout(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10 has no MQTT 5 and waits three keepalives")
	b := startWebBroker(t)
	c := wsDial(t, b.WebMQTT, "mqtt")
	cp := guestConnect("web-keepalive")
	cp.Version, cp.KeepAlive = mqtt.V5, 1
	bs, err := mqtt.Append(nil, cp, mqtt.V5)
	if err != nil {
		t.Fatal(err)
	}
	wsWrite(t, c, websocket.MessageBinary, bs)
	in := &wsStream{t: t, c: c, typ: websocket.MessageBinary}
	start := time.Now()
	if err := in.closed(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("closed after %v, before the keepalive", el)
	}
	var got []mqtt.PacketType
	for len(in.buf) > 0 {
		p, n, err := mqtt.Decode(mqtt.V5, in.buf)
		if err != nil {
			t.Fatalf("decoding %q: %v", in.buf, err)
		}
		in.buf = in.buf[n:]
		got = append(got, p.Type())
		if d, ok := p.(*mqtt.Disconnect); ok && d.ReasonCode != mqtt.KeepAliveTimeout {
			t.Fatalf("DISCONNECT %v, want keep alive timeout", d.ReasonCode)
		}
	}
	if !slices.Equal(got, []mqtt.PacketType{mqtt.CONNACK, mqtt.DISCONNECT}) {
		t.Fatalf("got %v, want CONNACK then DISCONNECT", got)
	}
}
