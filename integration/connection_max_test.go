package integration

import (
	"errors"
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/stomp"
)

// connection_max (Options.ConnectionMax) bounds each listener's open connections as RabbitMQ's
// ranch max_connections does: past it a client's TCP connection waits in the backlog, unanswered,
// until one of that listener's connections closes; other listeners keep their own count; Shutdown
// ends an accept loop waiting for a slot (the test's cleanup would hang otherwise).
func TestConnectionMaxPerListener(t *testing.T) {
	if externalURL != "" {
		t.Skip("sets connection_max in-process")
	}
	tb := testbroker.Start(t, func(o *server.Options) { o.ConnectionMax = 2 })
	stompAddr := tb.STOMP(t)
	mqttAddr := tb.StartMQTT(t)
	// notAnswered checks that nothing comes back for a while: the connection is not accepted.
	notAnswered := func(what string, nc net.Conn) {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var b [1]byte
		_, err := nc.Read(b[:])
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("%s past connection_max: read %v, want no answer (a timeout)", what, err)
		}
		nc.SetReadDeadline(time.Time{})
	}

	// STOMP: two connect; the third waits until one of them closes.
	s1 := dialSTOMP(t, stompAddr)
	s1.connect()
	s2 := dialSTOMP(t, stompAddr)
	s2.connect()
	s3 := dialSTOMP(t, stompAddr)
	s3.frame(stomp.CmdConnect, "", "accept-version:1.2", "host:/", "login:guest", "passcode:guest")
	notAnswered("the third STOMP connection", s3.nc)
	s1.frame(stomp.CmdDisconnect, "")
	s1.expectClosed()
	s3.expect(stomp.CmdConnected)

	// MQTT has its own two; AMQP its own too.
	m1, m2 := dialRaw(t, mqttAddr), dialRaw(t, mqttAddr)
	for i, m := range []*rawMQTT{m1, m2} {
		if ack := m.connect(&mqtt.Connect{ClientID: "max-" + string(rune('a'+i)), CleanStart: true, KeepAlive: 60}); ack.ReasonCode != 0 {
			t.Fatalf("MQTT connection %d: %v", i+1, ack.ReasonCode)
		}
	}
	m3 := dialRaw(t, mqttAddr)
	m3.send(&mqtt.Connect{Version: mqtt.V311, ClientID: "max-c", CleanStart: true, KeepAlive: 60,
		HasUsername: true, Username: "guest", HasPassword: true, Password: []byte("guest")})
	notAnswered("the third MQTT connection", m3.nc)
	m1.nc.Close()
	if p, err := m3.read(10 * time.Second); err != nil {
		t.Fatalf("the third MQTT connection after one closed: %v", err)
	} else if ack, ok := p.(*mqtt.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("the third MQTT connection after one closed: %+v", p)
	}
	for range 2 {
		c, err := amqp.Dial("amqp://guest:guest@" + tb.Addr + "/")
		if err != nil {
			t.Fatalf("AMQP within its listener's connection_max: %v", err)
		}
		defer c.Close()
	}
}
