package integration

import (
	"context"
	"crypto/tls"
	"net/http"
	"strconv"
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

// wssDial opens a WebSocket to wss://addr/ws offering protos, trusting the CAs of cfg.
func wssDial(t testing.TB, addr string, cfg *tls.Config, protos ...string) (*websocket.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	c, _, err := websocket.Dial(ctx, "wss://"+addr+"/ws", &websocket.DialOptions{
		Subprotocols: protos, HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, nil
}

// findConn waits for the connection listed with protocol and returns it.
func findConnByProtocol(t testing.TB, srv *server.Server, protocol string) server.ConnectionInfo {
	t.Helper()
	var ci server.ConnectionInfo
	wait.For(t, 10*time.Second, "a connection listed as "+protocol, func() bool {
		for _, c := range srv.Connections() {
			if c.Protocol == protocol {
				ci = c
				return true
			}
		}
		return false
	})
	return ci
}

// Web MQTT and Web STOMP over TLS (wss://, RabbitMQ's web_mqtt.ssl.port and web_stomp.ssl.port):
// listed as "https/web-mqtt" and "https/web-stomp"; a TLS client exchanges messages with AMQP over
// each; the connections are listed with their TLS; a plain ws:// client and a client that does not
// trust the certificate get nowhere.
func TestWebSocketTLS(t *testing.T) {
	if externalURL != "" {
		t.Skip("needs an in-process broker with TLS")
	}
	pki := newTestPKI(t)
	cfg, err := server.LoadTLS(pki.serverFiles(t, 40))
	if err != nil {
		t.Fatal(err)
	}
	tb := testbroker.Start(t)
	mqttAddr := tb.StartWebMQTTTLS(t, cfg.Config())
	stompAddr := tb.StartWebSTOMPTLS(t, cfg.Config())
	wait.For(t, 5*time.Second, "the https/web-mqtt and https/web-stomp listeners listed", func() bool {
		got := map[string]string{}
		for _, l := range tb.Srv.AllListeners() {
			got[l.Protocol] = l.Addr.String()
		}
		return got[server.ProtocolWebMQTTS] == mqttAddr && got[server.ProtocolWebSTOMPS] == stompAddr
	})
	if server.ProtocolWebMQTTS != "https/web-mqtt" || server.ProtocolWebSTOMPS != "https/web-stomp" {
		t.Fatalf("listener protocols %q %q", server.ProtocolWebMQTTS, server.ProtocolWebSTOMPS)
	}
	trust := &tls.Config{RootCAs: pki.pool, ServerName: "localhost"}
	ac, ch := dialAMQP(t, "amqp://guest:guest@"+tb.Addr+"/")
	defer ac.Close()

	// Web MQTT over TLS: AMQP -> MQTT.
	c, err := wssDial(t, mqttAddr, trust, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	in := &wsStream{t: t, c: c, typ: websocket.MessageBinary}
	wsWrite(t, c, websocket.MessageBinary, mqttBytes(t, guestConnect("wss-mqtt")))
	if ack, ok := in.mqttPacket(10 * time.Second).(*mqtt.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("want CONNACK 0, got %+v", ack)
	}
	wsWrite(t, c, websocket.MessageBinary, mqttBytes(t, &mqtt.Subscribe{PacketID: 1,
		Subscriptions: []mqtt.Subscription{{Filter: "wss/in", QoS: 1}}}))
	if p, ok := in.mqttPacket(10 * time.Second).(*mqtt.Suback); !ok || p.PacketID != 1 {
		t.Fatalf("want SUBACK 1, got %+v", p)
	}
	if err := ch.Publish("amq.topic", "wss.in", false, false, amqp.Publishing{Body: []byte("over wss")}); err != nil {
		t.Fatal(err)
	}
	if p, ok := in.mqttPacket(10 * time.Second).(*mqtt.Publish); !ok || p.Topic != "wss/in" || string(p.Payload) != "over wss" {
		t.Fatalf("want PUBLISH wss/in, got %+v", p)
	}
	ci := findConnByProtocol(t, tb.Srv, "Web MQTT 3.1.1")
	if ci.TLS == nil || ci.Port == 0 || !strings.HasSuffix(mqttAddr, ":"+strconv.Itoa(ci.Port)) {
		t.Fatalf("the wss:// MQTT connection listed as %+v (TLS %+v), want TLS on port of %s", ci, ci.TLS, mqttAddr)
	}

	// Web STOMP over TLS: STOMP -> AMQP.
	s, err := wssDial(t, stompAddr, trust, "v12.stomp")
	if err != nil {
		t.Fatal(err)
	}
	if s.Subprotocol() != "v12.stomp" {
		t.Fatalf("subprotocol %q", s.Subprotocol())
	}
	sin := &wsStream{t: t, c: s, typ: websocket.MessageText}
	wsWrite(t, s, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"))
	if f := sin.stompFrame(10 * time.Second); f.Command != stomp.CmdConnected {
		t.Fatalf("want CONNECTED, got %s %s", f.Command, hdrs(f))
	}
	q := amqpName(t, "q")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	wsWrite(t, s, websocket.MessageText, []byte("SEND\ndestination:/amq/queue/"+q+"\n\nsent over wss\x00"))
	if d := getOne(t, ch, q); string(d.Body) != "sent over wss" {
		t.Fatalf("AMQP got %q", d.Body)
	}
	sci := findConnByProtocol(t, tb.Srv, "Web STOMP 1.2")
	if sci.TLS == nil || !strings.HasSuffix(stompAddr, ":"+strconv.Itoa(sci.Port)) {
		t.Fatalf("the wss:// STOMP connection listed as %+v (TLS %+v), want TLS on port of %s", sci, sci.TLS, stompAddr)
	}

	// A plain ws:// client on the TLS port, and a TLS client that does not trust the broker's
	// certificate, fail.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if pc, _, err := websocket.Dial(ctx, "ws://"+mqttAddr+"/ws", &websocket.DialOptions{Subprotocols: []string{"mqtt"}}); err == nil {
		pc.CloseNow()
		t.Fatal("a plain ws:// handshake succeeded on the wss:// listener")
	}
	if _, err := wssDial(t, stompAddr, &tls.Config{ServerName: "localhost"}, "v12.stomp"); err == nil {
		t.Fatal("a client that does not trust the certificate connected")
	}
}
