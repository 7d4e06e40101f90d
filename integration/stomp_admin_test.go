package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/stomp"
)

// mgmtCall does one request as guest on the management API h and decodes a JSON answer into out.
func mgmtCall(t *testing.T, h string, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, h+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("X-Reason", "closed by the test")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, b, err)
		}
	}
	return res.StatusCode
}

// STOMP, Web STOMP and Web MQTT connections in the management API as RabbitMQ 3.10.8 lists them
// (protocol "STOMP 1.2", "Web STOMP 1.2", "Web MQTT 3.1.1"; one channel; product "STOMP
// client"), counted in the overview's object totals, and closed by DELETE
// /api/connections/{name}: the STOMP client gets an ERROR frame, then the close.
func TestSTOMPConnectionsInManagement(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads Warren's management API in-process")
	}
	tb := testbroker.Start(t)
	stompAddr := tb.STOMP(t)
	webMQTT, webSTOMP := tb.StartWebMQTT(t), tb.StartWebSTOMP(t)
	hs := httptest.NewServer(management.NewHandler(tb.Srv, slog.New(slog.DiscardHandler)))
	defer hs.Close()
	defer http.DefaultClient.CloseIdleConnections()

	sc := dialSTOMP(t, stompAddr)
	sc.connect()
	ws := wsDial(t, webSTOMP, "v12.stomp")
	wsIn := &wsStream{t: t, c: ws, typ: websocket.MessageText}
	wsWrite(t, ws, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"))
	if f := wsIn.stompFrame(10 * time.Second); f.Command != stomp.CmdConnected {
		t.Fatalf("Web STOMP: %s", f.Command)
	}
	wm := wsDial(t, webMQTT, "mqtt")
	wmIn := &wsStream{t: t, c: wm, typ: websocket.MessageBinary}
	wsWrite(t, wm, websocket.MessageBinary, mqttBytes(t, guestConnect("listed-web-mqtt")))
	if ack, ok := wmIn.mqttPacket(10 * time.Second).(*mqtt.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("Web MQTT: %+v", ack)
	}

	type connJSON struct {
		Name             string         `json:"name"`
		Protocol         string         `json:"protocol"`
		User             string         `json:"user"`
		Vhost            string         `json:"vhost"`
		Channels         int            `json:"channels"`
		Port             int            `json:"port"`
		SSL              bool           `json:"ssl"`
		ClientProperties map[string]any `json:"client_properties"`
	}
	byProto := map[string]connJSON{}
	wait.For(t, 10*time.Second, "the three connections listed", func() bool {
		var conns []connJSON
		if code := mgmtCall(t, hs.URL, http.MethodGet, "/api/connections", &conns); code != 200 {
			t.Fatalf("GET /api/connections: %d", code)
		}
		for _, c := range conns {
			byProto[c.Protocol] = c
		}
		return len(byProto) == 3
	})
	for proto, addr := range map[string]string{"STOMP 1.2": stompAddr, "Web STOMP 1.2": webSTOMP, "Web MQTT 3.1.1": webMQTT} {
		c, ok := byProto[proto]
		if !ok || c.User != "guest" || c.Vhost != "/" || c.Channels != 1 || c.SSL || addr != fmt.Sprintf("127.0.0.1:%d", c.Port) {
			t.Fatalf("%s listed as %+v (all: %+v)", proto, c, byProto)
		}
	}
	if p := byProto["STOMP 1.2"].ClientProperties["product"]; p != "STOMP client" {
		t.Fatalf("STOMP client properties %v", byProto["STOMP 1.2"].ClientProperties)
	}
	var one connJSON
	name := byProto["STOMP 1.2"].Name
	if code := mgmtCall(t, hs.URL, http.MethodGet, "/api/connections/"+url.PathEscape(name), &one); code != 200 || one.Protocol != "STOMP 1.2" {
		t.Fatalf("GET the STOMP connection: %d %+v", code, one)
	}
	var ov struct {
		ObjectTotals struct {
			Connections int `json:"connections"`
		} `json:"object_totals"`
	}
	mgmtCall(t, hs.URL, http.MethodGet, "/api/overview", &ov)
	if ov.ObjectTotals.Connections != 3 {
		t.Fatalf("overview counts %d connections, want 3", ov.ObjectTotals.Connections)
	}

	// Prometheus: rabbitmq_connections counts them all, warren_connections by protocol.
	res, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"\nrabbitmq_connections 3\n", "\nwarren_connections{protocol=\"STOMP 1.2\"} 1\n",
		"\nwarren_connections{protocol=\"Web STOMP 1.2\"} 1\n", "\nwarren_connections{protocol=\"Web MQTT 3.1.1\"} 1\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(string(metrics), `warren_connections{protocol="AMQP 0-9-1"}`) {
		t.Errorf("/metrics counts an AMQP connection, and there is none")
	}

	// DELETE closes each: the STOMP clients get an ERROR frame and the close.
	if code := mgmtCall(t, hs.URL, http.MethodDelete, "/api/connections/"+url.PathEscape(name), nil); code != http.StatusNoContent {
		t.Fatalf("DELETE the STOMP connection: %d", code)
	}
	sc.expectError("connection_forced", "CONNECTION_FORCED - closed by the test")
	sc.expectClosed()
	if code := mgmtCall(t, hs.URL, http.MethodDelete, "/api/connections/"+url.PathEscape(byProto["Web STOMP 1.2"].Name), nil); code != http.StatusNoContent {
		t.Fatalf("DELETE the Web STOMP connection: %d", code)
	}
	if f := wsIn.stompFrame(10 * time.Second); f.Command != stomp.CmdError {
		t.Fatalf("Web STOMP after DELETE: %s", f.Command)
	}
	if err := wsIn.closed(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := mgmtCall(t, hs.URL, http.MethodDelete, "/api/connections/"+url.PathEscape(byProto["Web MQTT 3.1.1"].Name), nil); code != http.StatusNoContent {
		t.Fatalf("DELETE the Web MQTT connection: %d", code)
	}
	if err := wmIn.closed(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "no connection listed", func() bool { return len(tb.Srv.Connections()) == 0 })
	if code := mgmtCall(t, hs.URL, http.MethodDelete, "/api/connections/"+url.PathEscape(name), nil); code != http.StatusNotFound {
		t.Fatalf("DELETE a closed connection: %d, want 404", code)
	}
}

// A vhost's and a user's max-connections count STOMP connections with AMQP and MQTT ones; a
// STOMP CONNECT past either is refused as RabbitMQ 3.10.8 refuses it ("Bad CONNECT", "Virtual
// host '/' access denied"), and an AMQP connection past it is refused too.
func TestSTOMPConnectionLimits(t *testing.T) {
	if externalURL != "" {
		t.Skip("sets limits in-process")
	}
	tb := testbroker.Start(t)
	stompAddr := tb.STOMP(t)
	mqttAddr := tb.StartMQTT(t)
	url := "amqp://guest:guest@" + tb.Addr + "/"
	refused := func(what string) {
		t.Helper()
		c := dialSTOMP(t, stompAddr)
		c.frame(stomp.CmdConnect, "", "accept-version:1.2", "host:/", "login:guest", "passcode:guest")
		c.expectError("Bad CONNECT", "Virtual host '/' access denied")
		c.expectClosed()
		if conn, err := amqp.Dial(url); err == nil {
			conn.Close()
			t.Fatalf("%s: an AMQP connection past the limit was accepted", what)
		}
	}

	// The vhost's limit: one STOMP and one MQTT connection fill it.
	if err := tb.Srv.PutVhostLimit("/", server.LimitMaxConnections, 2); err != nil {
		t.Fatal(err)
	}
	s1 := dialSTOMP(t, stompAddr)
	s1.connect()
	m1 := dialRaw(t, mqttAddr)
	if ack := m1.connect(&mqtt.Connect{ClientID: "limit-m1", CleanStart: true, KeepAlive: 60}); ack.ReasonCode != 0 {
		t.Fatalf("MQTT connection within the limit: %v", ack.ReasonCode)
	}
	refused("vhost limit")
	if err := tb.Srv.DeleteVhostLimit("/", server.LimitMaxConnections); err != nil {
		t.Fatal(err)
	}

	// The user's limit.
	if err := tb.Srv.PutUserLimit("guest", server.LimitMaxConnections, 2); err != nil {
		t.Fatal(err)
	}
	refused("user limit")
	// The MQTT connection gone, one more STOMP connection fits.
	m1.nc.Close()
	wait.For(t, 10*time.Second, "the MQTT connection gone", func() bool { return len(tb.Srv.Connections()) == 1 })
	s2 := dialSTOMP(t, stompAddr)
	s2.connect()
	refused("user limit, full again")
	if err := tb.Srv.DeleteUserLimit("guest", server.LimitMaxConnections); err != nil {
		t.Fatal(err)
	}
	s3 := dialSTOMP(t, stompAddr)
	s3.connect()
}
