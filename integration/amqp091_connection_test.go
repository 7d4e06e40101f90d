package integration

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// connection.start: protocol 0-9, the server properties RabbitMQ sends with their types, and exactly
// RabbitMQ 3.10's capabilities table.
func TestConnectionStartProperties(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	if conn.Major != 0 || conn.Minor != 9 {
		t.Errorf("version %d-%d, want 0-9", conn.Major, conn.Minor)
	}
	for _, k := range []string{"product", "version", "platform", "copyright", "information", "cluster_name"} {
		v, ok := conn.Properties[k]
		if !ok {
			t.Errorf("server property %q missing", k)
			continue
		}
		if s, ok := v.(string); !ok || s == "" {
			t.Errorf("server property %q = %#v, want a non-empty long string", k, v)
		}
	}
	if p := conn.Properties["product"]; p != "RabbitMQ" && p != "Warren" {
		t.Errorf("product %q, want RabbitMQ or Warren", p)
	}
	caps, ok := conn.Properties["capabilities"].(amqp.Table)
	if !ok {
		t.Fatalf("capabilities = %#v, want a table", conn.Properties["capabilities"])
	}
	want := []string{
		"publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
		"connection.blocked", "consumer_priorities", "authentication_failure_close", "per_consumer_qos",
		"direct_reply_to",
	}
	for _, k := range want {
		if v, ok := caps[k].(bool); !ok || !v {
			t.Errorf("capability %q = %#v, want true", k, caps[k])
		}
	}
	if len(caps) != len(want) {
		t.Errorf("capabilities %v: %d entries, want the %d RabbitMQ 3.10 sends", caps, len(caps), len(want))
	}
	found := false
	for _, l := range conn.Locales {
		found = found || l == "en_US"
	}
	if !found {
		t.Errorf("locales %q, want en_US", conn.Locales)
	}
}

// Both SASL mechanisms RabbitMQ offers, PLAIN and AMQPLAIN, log in.
func TestConnectionSASLMechanisms(t *testing.T) {
	b := startBroker(t)
	for _, auth := range []amqp.Authentication{
		&amqp.PlainAuth{Username: "guest", Password: "guest"},
		&amqp.AMQPlainAuth{Username: "guest", Password: "guest"},
	} {
		t.Run(auth.Mechanism(), func(t *testing.T) {
			conn := amqpDialConfig(t, b, amqp.Config{SASL: []amqp.Authentication{auth}})
			if got := conn.Config.SASL[0].Mechanism(); got != auth.Mechanism() {
				t.Fatalf("mechanism %q, want %q", got, auth.Mechanism())
			}
			amqpAssertAlive(t, conn)
		})
	}
}

// A wrong password is refused with 403 ACCESS_REFUSED, with either mechanism.
func TestConnectionBadPassword(t *testing.T) {
	b := startBroker(t)
	for _, auth := range []amqp.Authentication{
		&amqp.PlainAuth{Username: "guest", Password: "not-the-password"},
		&amqp.AMQPlainAuth{Username: "guest", Password: "not-the-password"},
		&amqp.PlainAuth{Username: "no-such-user-warren", Password: "guest"},
	} {
		t.Run(auth.Mechanism(), func(t *testing.T) {
			t.Parallel() // RabbitMQ delays its answer to a failed login
			conn, err := amqp.DialConfig(b.URL, amqp.Config{SASL: []amqp.Authentication{auth}})
			if err == nil {
				conn.Close()
				t.Fatal("dial with a bad login succeeded")
			}
			amqpWantError(t, err, amqp.AccessRefused, "")
		})
	}
}

// Opening a vhost that does not exist is refused with 530 NOT_ALLOWED.
func TestConnectionUnknownVhost(t *testing.T) {
	b := startBroker(t)
	vhost := amqpName(t, "vhost")
	conn, err := amqp.DialConfig(b.URL, amqp.Config{Vhost: vhost})
	if err == nil {
		conn.Close()
		t.Fatal("dial to an unknown vhost succeeded")
	}
	amqpWantError(t, err, amqp.NotAllowed, "NOT_ALLOWED - vhost "+vhost+" not found")
}

// connection.tune: channel_max 2047, frame_max 131072 and heartbeat 60 by default; the lower value of
// client and server wins; a zero from the client takes the server's (amqp091-go sends 0 for a
// heartbeat under 1s, a frame size of -1 and a channel max of 0).
func TestConnectionTuneNegotiation(t *testing.T) {
	b := startBroker(t)
	cases := []struct {
		name                 string
		cfg                  amqp.Config
		channelMax, frameMax int
		heartbeat            time.Duration
	}{
		{"server defaults", amqp.Config{FrameSize: -1, Heartbeat: 500 * time.Millisecond}, 2047, 131072, 60 * time.Second},
		{"client lower", amqp.Config{ChannelMax: 10, FrameSize: 8192, Heartbeat: 7 * time.Second}, 10, 8192, 7 * time.Second},
		{"client higher", amqp.Config{ChannelMax: 5000, FrameSize: 1 << 20, Heartbeat: 600 * time.Second}, 2047, 131072, 60 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := amqpDialConfig(t, b, c.cfg)
			if int(conn.Config.ChannelMax) != c.channelMax {
				t.Errorf("channel_max %d, want %d", conn.Config.ChannelMax, c.channelMax)
			}
			if conn.Config.FrameSize != c.frameMax {
				t.Errorf("frame_max %d, want %d", conn.Config.FrameSize, c.frameMax)
			}
			if conn.Config.Heartbeat != c.heartbeat {
				t.Errorf("heartbeat %v, want %v", conn.Config.Heartbeat, c.heartbeat)
			}
			amqpAssertAlive(t, conn)
		})
	}
}

// With a negotiated channel_max, the client can open that many channels and they all work.
func TestConnectionChannelMaxUsable(t *testing.T) {
	b := startBroker(t)
	conn := amqpDialConfig(t, b, amqp.Config{ChannelMax: 8})
	var chans []*amqp.Channel
	for i := range 8 {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("channel %d of 8: %v", i+1, err)
		}
		chans = append(chans, ch)
	}
	for i, ch := range chans {
		if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
			t.Fatalf("channel %d: queue.declare: %v", i+1, err)
		}
	}
	if _, err := conn.Channel(); err == nil {
		t.Fatal("a 9th channel opened with channel_max 8")
	}
}

// The broker sends heartbeats at the negotiated interval on an idle connection.
func TestConnectionHeartbeatsSent(t *testing.T) {
	b := startBroker(t)
	tap := make(chan *amqpTapConn, 1)
	conn := amqpDialConfig(t, b, amqp.Config{Heartbeat: time.Second, Dial: amqpTapDial(tap)})
	tc := <-tap
	if conn.Config.Heartbeat != time.Second {
		t.Fatalf("heartbeat %v, want 1s", conn.Config.Heartbeat)
	}
	for i := range 2 {
		select {
		case <-tc.heartbeats:
		case <-time.After(amqpTimeout):
			t.Fatalf("no heartbeat %d from the broker within %v at a 1s interval", i+1, amqpTimeout)
		}
	}
	if conn.IsClosed() {
		t.Fatal("connection closed")
	}
}

// A peer that goes silent (no heartbeats, no frames) is closed by the broker after about two missed
// intervals.
func TestConnectionSilentPeerClosed(t *testing.T) {
	b := startBroker(t)
	tap := make(chan *amqpTapConn, 1)
	conn := amqpDialConfig(t, b, amqp.Config{Heartbeat: time.Second, Dial: amqpTapDial(tap)})
	tc := <-tap
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	start := time.Now()
	tc.mute.Store(true)
	select {
	case e := <-closed:
		if e == nil {
			t.Fatal("connection closed cleanly, want an error (the broker dropped it)")
		}
		t.Logf("closed after %v: %v", time.Since(start), e)
	case <-time.After(10 * time.Second):
		t.Fatal("broker kept a silent peer open for 10s with a 1s heartbeat")
	}
}

// A clean connection.close from the client: close-ok, no error notified, channels closed too.
func TestConnectionCloseClean(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	ch := amqpChannel(t, conn)
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := conn.Close(); err != nil {
		t.Fatalf("connection.close: %v", err)
	}
	amqpWaitCleanClose(t, connClosed)
	amqpWaitCleanClose(t, chClosed)
	if !conn.IsClosed() || !ch.IsClosed() {
		t.Fatal("connection or channel still open after connection.close")
	}
	if err := ch.Publish("", "x", false, false, amqp.Publishing{}); err == nil {
		t.Fatal("publish on a closed connection succeeded")
	}
}

// A connection error closes the whole connection: every channel is told, with the same code.
func TestConnectionErrorClosesAllChannels(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	ch1 := amqpChannel(t, conn)
	ch2 := amqpChannel(t, conn)
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch2Closed := ch2.NotifyClose(make(chan *amqp.Error, 1))
	name := amqpName(t, "x")
	err := ch1.ExchangeDeclare(name, "no-such-type", false, false, false, false, nil)
	amqpCleanup(t, b, "exchange", name)
	amqpAssertConnectionError(t, conn, connClosed, err, amqp.CommandInvalid, "COMMAND_INVALID - unknown exchange type 'no-such-type'")
	e := amqpWaitClose(t, ch2Closed)
	if e.Code != amqp.CommandInvalid {
		t.Fatalf("other channel told %d, want 503", e.Code)
	}
	if _, err := ch2.QueueDeclare("", false, true, true, false, nil); err == nil {
		t.Fatal("other channel still works after a connection error")
	}
}

// Warren-only: the server's heartbeat option is what a client asking for 0 gets, and the lower one wins.
func TestConnectionServerHeartbeatOption(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.Heartbeat = time.Second })
	for _, c := range []struct {
		client, want time.Duration
	}{{500 * time.Millisecond, time.Second}, {10 * time.Second, time.Second}} {
		tap := make(chan *amqpTapConn, 1)
		conn := amqpDialConfig(t, b, amqp.Config{Heartbeat: c.client, Dial: amqpTapDial(tap)})
		tc := <-tap
		if conn.Config.Heartbeat != c.want {
			t.Errorf("client %v: heartbeat %v, want %v", c.client, conn.Config.Heartbeat, c.want)
		}
		select {
		case <-tc.heartbeats:
		case <-time.After(amqpTimeout):
			t.Fatal("no heartbeat from the broker")
		}
		conn.Close()
	}
}

// Warren-only: FrameMax and ChannelMax options are what connection.tune proposes.
func TestConnectionServerTuneOptions(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.FrameMax = 8192; o.ChannelMax = 16 })
	conn := amqpDialConfig(t, b, amqp.Config{})
	if conn.Config.FrameSize != 8192 {
		t.Errorf("frame_max %d, want 8192", conn.Config.FrameSize)
	}
	if conn.Config.ChannelMax != 16 {
		t.Errorf("channel_max %d, want 16", conn.Config.ChannelMax)
	}
	// A body much larger than frame_max still travels, split into many frames.
	ch := amqpChannel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 100_000)
	for i := range body {
		body[i] = byte(i % 251)
	}
	if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
		t.Fatal(err)
	}
	m := amqpGet(t, ch, q.Name, true)
	if string(m.Body) != string(body) {
		t.Fatalf("body of %d bytes came back as %d bytes or altered", len(body), len(m.Body))
	}
}

// Warren-only: the default user is configurable; the old guest login is then refused with 403.
func TestConnectionDefaultUserOption(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.DefaultUser = "alice"; o.DefaultPass = "s3cret" })
	conn := amqpDialConfig(t, b, amqp.Config{SASL: []amqp.Authentication{&amqp.PlainAuth{Username: "alice", Password: "s3cret"}}})
	amqpAssertAlive(t, conn)
	bad, err := amqp.Dial(b.URL) // guest:guest
	if err == nil {
		bad.Close()
		t.Fatal("guest logged in although the default user is alice")
	}
	amqpWantError(t, err, amqp.AccessRefused, "")
}

// Warren-only: MaxMessageSize bounds a body; a larger one is a channel error 406 PRECONDITION_FAILED,
// like RabbitMQ's max_message_size.
func TestConnectionMaxMessageSizeOption(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.MaxMessageSize = 1024 })
	conn := amqpDial(t, b)
	ch := amqpChannel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: make([]byte, 1024)}); err != nil {
		t.Fatal(err)
	}
	amqpGet(t, ch, q.Name, true)
	if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: make([]byte, 2048)}); err != nil {
		t.Fatal(err)
	}
	e := amqpWaitClose(t, closed)
	amqpAssertChannelError(t, conn, ch, nil, e, amqp.PreconditionFailed, "PRECONDITION_FAILED - message size 2048 is larger than configured max size 1024")
}
