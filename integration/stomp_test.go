package integration

// The STOMP front end (server/stomp*.go) with a raw client: CONNECT, errors, SEND to each
// destination kind with receipts, STOMP <-> AMQP both ways with RabbitMQ's header mapping,
// client acks and NACK, transactions, heart-beats, malformed frames, a frame in 1-byte writes.
// Every test but those needing broker options also runs against the reference RabbitMQ with
// WARREN_TEST_URL (its STOMP port: WARREN_TEST_STOMP_ADDR, default 127.0.0.1:61613).

import (
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/stomp"
	"github.com/warrenmq/warren/storage"
)

func (sb stompBroker) amqp() broker { return broker{URL: sb.URL, Srv: sb.Srv} }

func TestSTOMPConnect(t *testing.T) {
	sb := startSTOMP(t)
	c := dialSTOMP(t, sb.STOMP)
	f := c.connect("heart-beat:0,0")
	if get(f, "version") != "1.2" || !strings.HasPrefix(get(f, "session"), "session-") || get(f, "heart-beat") != "0,0" {
		t.Fatalf("CONNECTED %s", hdrs(f))
	}
	c.frame(stomp.CmdDisconnect, "", "receipt:77")
	if r := c.expect(stomp.CmdReceipt); get(r, "receipt-id") != "77" {
		t.Fatalf("RECEIPT %s", hdrs(r))
	}
	c.expectClosed()

	// No accept-version: STOMP 1.0.
	c = dialSTOMP(t, sb.STOMP)
	c.frame(stomp.CmdConnect, "", "login:guest", "passcode:guest", "host:/")
	if f := c.expect(stomp.CmdConnected); get(f, "version") != "1.0" {
		t.Fatalf("CONNECTED %s", hdrs(f))
	}
	// Heart-beats are answered reversed, rounded up to whole seconds.
	c = dialSTOMP(t, sb.STOMP)
	if f := c.connect("heart-beat:500,4000"); get(f, "heart-beat") != "4000,1000" {
		t.Fatalf("CONNECTED %s", hdrs(f))
	}
}

func TestSTOMPConnectErrors(t *testing.T) {
	sb := startSTOMP(t)
	for _, tc := range []struct {
		name, frame, message, body string
	}{
		{"bad password", "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:nope\n\n\x00", "Bad CONNECT", "Access refused for user 'guest'"},
		{"unknown user", "CONNECT\naccept-version:1.2\nhost:/\nlogin:nobody-here\npasscode:x\n\n\x00", "Bad CONNECT", "Access refused for user 'nobody-here'"},
		{"bad vhost", "CONNECT\naccept-version:1.2\nhost:no-such-vhost\nlogin:guest\npasscode:guest\n\n\x00", "Bad CONNECT", "Virtual host 'no-such-vhost' access denied"},
		{"version", "CONNECT\naccept-version:3.0\nhost:/\nlogin:guest\npasscode:guest\n\n\x00", "Version mismatch", "Supported versions are 1.0,1.1,1.2"},
		{"heart-beat", "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:x,y\n\n\x00", "Processing error", "Processing error"},
		{"not connected", "SEND\ndestination:/queue/a\n\nx\x00", "Illegal command", "You must log in using CONNECT first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialSTOMP(t, sb.STOMP)
			c.raw(tc.frame)
			f := c.expectError(tc.message, tc.body)
			if get(f, "version") != "1.0,1.1,1.2" || get(f, "content-type") != "text/plain" {
				t.Fatalf("ERROR headers %s", hdrs(f))
			}
		})
	}
}

// TestSTOMPFrameErrors: RabbitMQ's ERROR frames for frames it refuses. Those about a frame's
// headers leave the connection open; an unknown destination of the core closes it.
func TestSTOMPFrameErrors(t *testing.T) {
	sb := startSTOMP(t)
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSend, "x", "receipt:1")
	if f := c.expectError("Missing destination", `"SEND" must include a 'destination' header`); get(f, "receipt-id") != "" {
		t.Fatalf("ERROR with a receipt-id, which RabbitMQ does not write: %s", hdrs(f))
	}
	c.frame(stomp.CmdSend, "x", "destination:/foo/a")
	c.expectError("Unknown destination", "'/foo/a' is not a valid destination.\nValid destination types are: /temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/.")
	c.frame(stomp.CmdAck, "", "id:zzz")
	c.expectError("Invalid header", `"ACK" must include a valid "id" header`)
	c.frame(stomp.CmdCommit, "", "transaction:t9")
	c.expectError("Bad transaction", `Invalid transaction identifier: "t9"`)
	c.frame(stomp.CmdUnsubscribe, "", "id:nope")
	c.expectError("No subscription found", "UNSUBSCRIBE must refer to an existing subscription.\nSubscription to \"id='nope'\" not found.")
	c.frame(stomp.CmdSend, "x", "destination:/queue/a", "message-id:m1")
	c.expectError("Invalid header", "'message-id' is not allowed on 'SEND'.")
	// Still open: a receipt comes back.
	c.frame(stomp.CmdBegin, "", "transaction:t1", "receipt:ok")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdSend, "x", "destination:/exchange/no-such-exchange-"+amqpName(t, "x"))
	c.expectError("not_found", "NOT_FOUND - no exchange 'no-such-exchange-")
	c.expectClosed()
}

// TestSTOMPMalformed: a frame that cannot be parsed gets an ERROR frame and the connection
// closes; the broker goes on serving.
func TestSTOMPMalformed(t *testing.T) {
	sb := startSTOMP(t)
	for _, tc := range []struct{ name, frame, message string }{
		{"unknown command", "FOO\n\n\x00", "Bad command"},
		{"bad escape", "SEND\ndestination:/queue/a\nx:\\t\n\nx\x00", "Invalid header escape"},
		{"bad content-length", "SEND\ndestination:/queue/a\ncontent-length:x\n\nhello\x00", "Invalid content-length"},
		{"missing NUL", "SEND\ndestination:/queue/a\ncontent-length:1\n\nhello\x00", "Frame not terminated by NUL"},
		{"no colon", "SEND\ndestination\n\nx\x00", "Invalid header"},
		{"between frames", "\rX", "Unexpected characters between frames"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if externalURL != "" {
				t.Skip("RabbitMQ closes without an ERROR frame for most of these")
			}
			c := dialSTOMP(t, sb.STOMP)
			c.connect()
			c.raw(tc.frame)
			c.expectError(tc.message, "")
			c.expectClosed()
		})
	}
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
}

// TestSTOMPOversize: a body over the broker's maximum message size is refused before it is
// read whole.
func TestSTOMPOversize(t *testing.T) {
	sb := startSTOMP(t, func(o *server.Options) { o.MaxMessageSize = 1000 })
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.raw("SEND\ndestination:/queue/a\ncontent-length:5000\n\n")
	c.expectError("Body too large", "content-length 5000 exceeds the limit of 1000 bytes")
	c.expectClosed()
}

// TestSTOMPSplitFrame: a frame written one byte at a time arrives whole.
func TestSTOMPSplitFrame(t *testing.T) {
	sb := startSTOMP(t)
	conn := amqpDial(t, sb.amqp())
	ch := amqpChannel(t, conn)
	q := amqpName(t, "q")
	amqpCleanup(t, sb.amqp(), "queue", q)
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	body := strings.Repeat("0123456789", 30)
	frame := "SEND\ndestination:/queue/" + q + "\nx-note:a\\cb\nreceipt:r1\n\n" + body + "\x00"
	for i := range len(frame) {
		c.raw(frame[i : i+1])
	}
	if r := c.expect(stomp.CmdReceipt); get(r, "receipt-id") != "r1" {
		t.Fatalf("RECEIPT %s", hdrs(r))
	}
	d := amqpGet(t, ch, q, true)
	if string(d.Body) != body || d.Headers["x-note"] != "a:b" {
		t.Fatalf("got %q %v", d.Body, d.Headers)
	}
}

// TestSTOMPToAMQP: a SEND's headers become AMQP properties as RabbitMQ maps them; /queue
// declares a durable queue.
func TestSTOMPToAMQP(t *testing.T) {
	sb := startSTOMP(t)
	conn := amqpDial(t, sb.amqp())
	ch := amqpChannel(t, conn)
	q := amqpName(t, "q")
	amqpCleanup(t, sb.amqp(), "queue", q)
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSend, "body1", "destination:/queue/"+q, "content-type:text/plain", "persistent:true", "priority:3",
		"reply-to:/queue/replies", "correlation-id:c1", "expiration:60000", "x-custom:v1", "type:t1", "app-id:a1",
		"timestamp:123", "user-id:guest", "amqp-message-id:am1", "content-encoding:identity", "receipt:r1")
	c.expect(stomp.CmdReceipt)
	// The queue is durable, as RabbitMQ declares it.
	if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
		t.Fatalf("queue %s is not durable: %v", q, err)
	}
	d := amqpGet(t, ch, q, true)
	want := amqp.Delivery{ContentType: "text/plain", ContentEncoding: "identity", DeliveryMode: 2, Priority: 3,
		ReplyTo: "/queue/replies", CorrelationId: "c1", Expiration: "60000", Type: "t1", AppId: "a1",
		UserId: "guest", MessageId: "am1", Timestamp: time.Unix(123, 0)}
	if d.ContentType != want.ContentType || d.ContentEncoding != want.ContentEncoding || d.DeliveryMode != want.DeliveryMode ||
		d.Priority != want.Priority || d.ReplyTo != want.ReplyTo || d.CorrelationId != want.CorrelationId ||
		d.Expiration != want.Expiration || d.Type != want.Type || d.AppId != want.AppId || d.UserId != want.UserId ||
		d.MessageId != want.MessageId || !d.Timestamp.Equal(want.Timestamp) || string(d.Body) != "body1" {
		t.Fatalf("delivery %+v", d)
	}
	// Other headers (content-length and receipt too, as RabbitMQ) become AMQP headers.
	if len(d.Headers) != 3 || d.Headers["x-custom"] != "v1" || d.Headers["receipt"] != "r1" || d.Headers["content-length"] != "5" {
		t.Fatalf("headers %v", d.Headers)
	}
	if d.Exchange != "" || d.RoutingKey != q {
		t.Fatalf("exchange %q key %q", d.Exchange, d.RoutingKey)
	}

	// /amq/queue, /topic and /exchange publish without declaring.
	x := amqpName(t, "x")
	if err := ch.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct{ ex, key string }{{"amq.topic", "a.b"}, {x, "k1"}} {
		if err := ch.QueueBind(q, b.key, b.ex, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.frame(stomp.CmdSend, "amq", "destination:/amq/queue/"+q)
	c.frame(stomp.CmdSend, "topic", "destination:/topic/a.b")
	c.frame(stomp.CmdSend, "exchange", "destination:/exchange/"+x+"/k1", "receipt:r2")
	c.expect(stomp.CmdReceipt)
	for _, want := range []struct{ body, ex, key string }{{"amq", "", q}, {"topic", "amq.topic", "a.b"}, {"exchange", x, "k1"}} {
		d := amqpGet(t, ch, q, true)
		if string(d.Body) != want.body || d.Exchange != want.ex || d.RoutingKey != want.key || d.DeliveryMode != 0 {
			t.Fatalf("got %q from %q/%q mode %d, want %+v", d.Body, d.Exchange, d.RoutingKey, d.DeliveryMode, want)
		}
	}
}

// TestSTOMPFromAMQP: an AMQP message's properties become MESSAGE headers as RabbitMQ writes
// them, on subscriptions to /queue, /topic and /exchange.
func TestSTOMPFromAMQP(t *testing.T) {
	sb := startSTOMP(t)
	conn := amqpDial(t, sb.amqp())
	ch := amqpConfirmChannel(t, conn)
	q := amqpName(t, "q")
	amqpCleanup(t, sb.amqp(), "queue", q)
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSubscribe, "", "id:s1", "destination:/queue/"+q, "receipt:sub")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdSubscribe, "", "id:s2", "destination:/topic/x.y", "receipt:sub2")
	c.expect(stomp.CmdReceipt)
	pub := amqp.Publishing{ContentType: "application/json", ContentEncoding: "gzip", DeliveryMode: 2, Priority: 4,
		CorrelationId: "c2", ReplyTo: "rq", Expiration: "50000", MessageId: "mid", Timestamp: time.Unix(99, 0),
		Type: "ty", UserId: "guest", AppId: "ap", Headers: amqp.Table{"h1": "v", "n": int32(5), "b": true}, Body: []byte("fromamqp")}
	if err := ch.Publish("", q, false, false, pub); err != nil {
		t.Fatal(err)
	}
	m := c.expect(stomp.CmdMessage)
	want := "subscription:s1 destination:/queue/" + q + " message-id:T_s1@@SESSION@@1 redelivered:false " +
		"h1:v n:5 app-id:ap user-id:guest type:ty timestamp:99 amqp-message-id:mid expiration:50000 reply-to:/reply-queue/rq " +
		"correlation-id:c2 priority:4 persistent:true content-encoding:gzip content-type:application/json content-length:8 "
	got := hdrs(m)
	if mid := get(m, "message-id"); strings.Count(mid, "@@") == 2 {
		got = strings.Replace(got, mid[len("T_s1@@"):strings.LastIndex(mid, "@@")], "SESSION", 1)
	}
	if got != want || string(m.Body) != "fromamqp" {
		t.Fatalf("MESSAGE\n%s\nwant\n%s\nbody %q", got, want, m.Body)
	}
	if err := ch.Publish("amq.topic", "x.y", false, false, amqp.Publishing{Body: []byte("t")}); err != nil {
		t.Fatal(err)
	}
	m = c.expect(stomp.CmdMessage)
	if get(m, "subscription") != "s2" || get(m, "destination") != "/topic/x.y" || string(m.Body) != "t" {
		t.Fatalf("MESSAGE %s %q", hdrs(m), m.Body)
	}
	// A SEND reaches a STOMP subscriber too.
	c.frame(stomp.CmdSend, "viatopic", "destination:/topic/x.y")
	m = c.expect(stomp.CmdMessage)
	if get(m, "subscription") != "s2" || string(m.Body) != "viatopic" {
		t.Fatalf("MESSAGE %s %q", hdrs(m), m.Body)
	}
}

// TestSTOMPClientAck: ack:client acknowledges cumulatively, NACK requeues by default (the
// message comes back redelivered) or drops with requeue:false, prefetch-count bounds what is
// unacknowledged.
func TestSTOMPClientAck(t *testing.T) {
	sb := startSTOMP(t)
	conn := amqpDial(t, sb.amqp())
	ch := amqpConfirmChannel(t, conn)
	q := amqpQueue(t, sb.amqp(), ch, "q")
	for i := range 4 {
		amqpPublish(t, ch, "", q, "m"+string(rune('0'+i)))
	}
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSubscribe, "", "id:s1", "destination:/amq/queue/"+q, "ack:client", "prefetch-count:2")
	m0, m1 := c.expect(stomp.CmdMessage), c.expect(stomp.CmdMessage)
	if string(m0.Body) != "m0" || string(m1.Body) != "m1" || get(m0, "ack") != get(m0, "message-id") {
		t.Fatalf("%s %q / %s %q", hdrs(m0), m0.Body, hdrs(m1), m1.Body)
	}
	if f, err := c.next(300 * time.Millisecond); err == nil {
		t.Fatalf("past prefetch-count 2: %s %q", f.Command, f.Body)
	}
	// ACK of the second covers both (ack:client): two more come, and the receipt (RabbitMQ sends
	// it first, Warren after the deliveries the ACK made).
	c.frame(stomp.CmdAck, "", "id:"+get(m1, "ack"), "receipt:a1")
	var ms []stomp.Frame
	for range 3 {
		f, err := c.next(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if f.Command == stomp.CmdMessage {
			ms = append(ms, f)
		}
	}
	if len(ms) != 2 || string(ms[0].Body) != "m2" || string(ms[1].Body) != "m3" {
		t.Fatalf("after the ACK: %d messages", len(ms))
	}
	m2 := ms[0]
	// NACK of m2 requeues it (and only it, as client mode... covers m2 alone here: it is the oldest).
	c.frame(stomp.CmdNack, "", "id:"+get(m2, "ack"))
	r := c.expect(stomp.CmdMessage)
	if string(r.Body) != "m2" || get(r, "redelivered") != "true" {
		t.Fatalf("redelivery %s %q", hdrs(r), r.Body)
	}
	// NACK requeue:false of everything drops it.
	c.frame(stomp.CmdNack, "", "id:"+get(r, "ack"), "requeue:false", "receipt:n2")
	c.expect(stomp.CmdReceipt)
	if msgs, _ := amqpReady(t, conn, q); msgs != 0 {
		t.Fatalf("%d messages left", msgs)
	}
}

// TestSTOMPClientIndividual: each ACK covers one message; unacknowledged ones return to the
// queue when the connection ends.
func TestSTOMPClientIndividual(t *testing.T) {
	sb := startSTOMP(t)
	conn := amqpDial(t, sb.amqp())
	ch := amqpConfirmChannel(t, conn)
	q := amqpQueue(t, sb.amqp(), ch, "q")
	for _, b := range []string{"a", "b", "c"} {
		amqpPublish(t, ch, "", q, b)
	}
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSubscribe, "", "id:s1", "destination:/amq/queue/"+q, "ack:client-individual")
	ms := []stomp.Frame{c.expect(stomp.CmdMessage), c.expect(stomp.CmdMessage), c.expect(stomp.CmdMessage)}
	c.frame(stomp.CmdAck, "", "id:"+get(ms[2], "ack"), "receipt:r")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdDisconnect, "", "receipt:bye")
	c.expect(stomp.CmdReceipt)
	c.expectClosed()
	got := amqpRecvBodies(t, amqpConsume(t, ch, q, true), 2)
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("requeued %v, want a,b", got)
	}
}

// TestSTOMPTransaction: SENDs and ACKs in a transaction take effect at COMMIT; ABORT drops them.
func TestSTOMPTransaction(t *testing.T) {
	sb := startSTOMP(t)
	conn := amqpDial(t, sb.amqp())
	ch := amqpConfirmChannel(t, conn)
	q := amqpQueue(t, sb.amqp(), ch, "q")
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdBegin, "", "transaction:t1")
	c.frame(stomp.CmdSend, "in-tx", "destination:/amq/queue/"+q, "transaction:t1", "receipt:s1")
	c.frame(stomp.CmdBegin, "", "transaction:t0", "receipt:b0")
	if r := c.expect(stomp.CmdReceipt); get(r, "receipt-id") != "b0" {
		t.Fatalf("the SEND's receipt came before COMMIT: %s", hdrs(r))
	}
	if msgs, _ := amqpReady(t, conn, q); msgs != 0 {
		t.Fatalf("a SEND in a transaction was enqueued before COMMIT (%d)", msgs)
	}
	c.frame(stomp.CmdBegin, "", "transaction:t2")
	c.frame(stomp.CmdSend, "aborted", "destination:/amq/queue/"+q, "transaction:t2")
	c.frame(stomp.CmdAbort, "", "transaction:t2")
	c.frame(stomp.CmdCommit, "", "transaction:t1", "receipt:c1")
	// The COMMIT's receipt, then the held SEND's, as RabbitMQ sends them.
	if r1, r2 := c.expect(stomp.CmdReceipt), c.expect(stomp.CmdReceipt); get(r1, "receipt-id") != "c1" || get(r2, "receipt-id") != "s1" {
		t.Fatalf("receipts %s / %s", hdrs(r1), hdrs(r2))
	}
	if msgs, _ := amqpReady(t, conn, q); msgs != 1 {
		t.Fatalf("%d messages after COMMIT, want 1", msgs)
	}
	// An ACK in a transaction settles at COMMIT.
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/amq/queue/"+q, "ack:client-individual")
	m := c.expect(stomp.CmdMessage)
	c.frame(stomp.CmdBegin, "", "transaction:t3")
	c.frame(stomp.CmdAck, "", "id:"+get(m, "ack"), "transaction:t3")
	c.frame(stomp.CmdAbort, "", "transaction:t3", "receipt:a3")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdBegin, "", "transaction:t4")
	c.frame(stomp.CmdAck, "", "id:"+get(m, "ack"), "transaction:t4")
	c.frame(stomp.CmdCommit, "", "transaction:t4", "receipt:c4")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdDisconnect, "", "receipt:bye")
	c.expect(stomp.CmdReceipt)
	c.expectClosed()
	amqpGetEmpty(t, ch, q)
}

// TestSTOMPHeartbeat: the server sends heart-beats at the negotiated interval and closes a
// client silent for three of its intervals.
func TestSTOMPHeartbeat(t *testing.T) {
	sb := startSTOMP(t)
	c := dialSTOMP(t, sb.STOMP)
	start := time.Now()
	c.connect("heart-beat:1000,1000")
	// The server's heart-beat: an EOL within the interval (with slack).
	c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b [1]byte
	if _, err := c.nc.Read(b[:]); err != nil || b[0] != '\n' {
		t.Fatalf("no heart-beat: %q %v", b, err)
	}
	c.expectClosed() // we send nothing
	if el := time.Since(start); el < 3*time.Second {
		t.Fatalf("closed after %v, before three heart-beat intervals", el)
	}
}

// TestSTOMPDurableTopic: a durable subscription's queue outlives the connection and gets the
// messages published meanwhile; UNSUBSCRIBE with durable:true deletes it.
func TestSTOMPDurableTopic(t *testing.T) {
	sb := startSTOMP(t)
	key := amqpName(t, "k")
	cid := amqpName(t, "cid")
	c := dialSTOMP(t, sb.STOMP)
	c.connect("client-id:" + cid)
	c.frame(stomp.CmdSubscribe, "", "id:d1", "destination:/topic/"+key, "durable:true", "auto-delete:false", "receipt:s")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdDisconnect, "", "receipt:bye")
	c.expect(stomp.CmdReceipt)
	c.expectClosed()

	conn := amqpDial(t, sb.amqp())
	ch := amqpConfirmChannel(t, conn)
	amqpPublish(t, ch, "amq.topic", key, "while-away")

	c = dialSTOMP(t, sb.STOMP)
	c.connect("client-id:" + cid)
	c.frame(stomp.CmdSubscribe, "", "id:d1", "destination:/topic/"+key, "durable:true", "auto-delete:false")
	if m := c.expect(stomp.CmdMessage); string(m.Body) != "while-away" {
		t.Fatalf("%q", m.Body)
	}
	c.frame(stomp.CmdUnsubscribe, "", "id:d1", "durable:true", "receipt:u")
	c.expect(stomp.CmdReceipt)
	amqpPublish(t, ch, "amq.topic", key, "gone")
	c.frame(stomp.CmdSubscribe, "", "id:d2", "destination:/topic/"+key, "x-queue-name:"+amqpName(t, "named"), "receipt:s2")
	c.expect(stomp.CmdReceipt)
	if f, err := c.next(300 * time.Millisecond); err == nil {
		t.Fatalf("a message reached a deleted durable subscription: %s %q", f.Command, f.Body)
	}
}

// TestSTOMPQueueArgs: queue arguments as SUBSCRIBE headers declare the queue with them.
func TestSTOMPQueueArgs(t *testing.T) {
	sb := startSTOMP(t)
	q := amqpName(t, "q")
	amqpCleanup(t, sb.amqp(), "queue", q)
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/queue/"+q, "x-max-length:10", "x-queue-type:quorum", "receipt:r")
	c.expect(stomp.CmdReceipt)
	conn := amqpDial(t, sb.amqp())
	ch := amqpChannel(t, conn)
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int64(10), "x-queue-type": "quorum"}); err != nil {
		t.Fatalf("redeclaring with the same arguments: %v", err)
	}
	ch = amqpChannel(t, conn)
	_, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int64(11), "x-queue-type": "quorum"})
	amqpWantError(t, err, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length'")
}

// TestSTOMPPermissions: a user's write, read and configure permissions apply to STOMP
// destinations as to AMQP, with RabbitMQ's texts.
func TestSTOMPPermissions(t *testing.T) {
	sb := startSTOMP(t)
	if sb.Srv == nil {
		t.Skip("creates users in process")
	}
	if _, err := sb.Srv.PutUser(server.UserSpec{Name: "limited", Password: ptr("pw")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Srv.PutPermission(server.Permission{Vhost: "/", User: "limited", Configure: "^mine", Write: "^mine", Read: "^mine"}); err != nil {
		t.Fatal(err)
	}
	login := func() *stompClient {
		c := dialSTOMP(t, sb.STOMP)
		c.frame(stomp.CmdConnect, "", "accept-version:1.2", "host:/", "login:limited", "passcode:pw")
		c.expect(stomp.CmdConnected)
		return c
	}
	c := login()
	c.frame(stomp.CmdSend, "x", "destination:/queue/mine-q", "receipt:r")
	// Write on the default exchange is refused: "^mine" does not match amq.default.
	c.expectError("access_refused", "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'limited'")
	c.expectClosed()
	c = login()
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/queue/other")
	c.expectError("access_refused", "ACCESS_REFUSED - access to queue 'other' in vhost '/' refused for user 'limited'")
	c.expectClosed()
	c = login()
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/queue/mine-q", "receipt:ok")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdSubscribe, "", "id:t", "destination:/topic/a.b")
	c.expectError("access_refused", "ACCESS_REFUSED - access to queue 'stomp-subscription-")
	c.expectClosed()
}

// TestSTOMPListenerAndShutdown: the listener is listed as RabbitMQ's "stomp", and Shutdown
// ends an open STOMP connection with an ERROR frame.
func TestSTOMPListenerAndShutdown(t *testing.T) {
	if externalURL != "" {
		t.Skip("stops the broker")
	}
	tb := testbroker.Start(t)
	addr := tb.STOMP(t)
	wait.For(t, 5*time.Second, "the stomp listener listed", func() bool {
		for _, l := range tb.Srv.AllListeners() {
			if l.Protocol == "stomp" && l.Addr.String() == addr {
				return true
			}
		}
		return false
	})
	c := dialSTOMP(t, addr)
	c.connect()
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/queue/"+amqpName(t, "q"), "receipt:r")
	c.expect(stomp.CmdReceipt)
	done := make(chan error, 1)
	go func() { done <- tb.Stop() }()
	c.expectError("Server shutdown", "The broker is shutting down")
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSTOMPTempQueue: reply-to /temp-queue/<name> becomes a server-named queue the connection is
// subscribed to; an AMQP reply to it arrives as a MESSAGE of subscription /temp-queue/<name>.
func TestSTOMPTempQueue(t *testing.T) {
	sb := startSTOMP(t)
	conn := amqpDial(t, sb.amqp())
	ch := amqpConfirmChannel(t, conn)
	q := amqpQueue(t, sb.amqp(), ch, "requests")
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSend, "ping", "destination:/amq/queue/"+q, "reply-to:/temp-queue/replies")
	c.frame(stomp.CmdSend, "ping2", "destination:/amq/queue/"+q, "reply-to:/temp-queue/replies", "receipt:r")
	c.expect(stomp.CmdReceipt)
	req, req2 := amqpGet(t, ch, q, true), amqpGet(t, ch, q, true)
	if !strings.HasPrefix(req.ReplyTo, "amq.gen-") || req2.ReplyTo != req.ReplyTo {
		t.Fatalf("reply-to %q and %q, want one amq.gen- queue", req.ReplyTo, req2.ReplyTo)
	}
	if err := ch.Publish("", req.ReplyTo, false, false, amqp.Publishing{CorrelationId: "c", Body: []byte("pong")}); err != nil {
		t.Fatal(err)
	}
	m := c.expect(stomp.CmdMessage)
	if get(m, "subscription") != "/temp-queue/replies" || get(m, "destination") != "/queue/"+req.ReplyTo ||
		!strings.HasPrefix(get(m, "message-id"), "T_/temp-queue/replies@@") || get(m, "correlation-id") != "c" || string(m.Body) != "pong" {
		t.Fatalf("MESSAGE %s %q", hdrs(m), m.Body)
	}
	c.frame(stomp.CmdSend, "x", "destination:/temp-queue/replies")
	c.expectError("Invalid destination", "'/temp-queue/replies' is not a valid destination for 'SEND'")
	// The queue is the connection's: it goes with it.
	c.frame(stomp.CmdDisconnect, "", "receipt:bye")
	c.expect(stomp.CmdReceipt)
	c.expectClosed()
	wait.For(t, 5*time.Second, "the temporary queue deleted", func() bool {
		probe := amqpChannel(t, conn)
		_, err := probe.QueueDeclarePassive(req.ReplyTo, false, true, true, false, nil)
		return err != nil
	})
}

// TestSTOMPDiskAlarm: a resource alarm stops a STOMP publisher between frames, without reading
// its socket; the SEND goes through, with its receipt, once the alarm clears.
func TestSTOMPDiskAlarm(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 40)
	sb := startSTOMP(t, func(o *server.Options) {
		o.DiskFree = func() (uint64, error) { return uint64(free.Load()), nil }
		o.DiskFreeLimit = 1 << 30
		o.DiskCheckInterval = 2 * time.Millisecond
	})
	conn := amqpDial(t, sb.amqp())
	ch := amqpConfirmChannel(t, conn)
	q := amqpQueue(t, sb.amqp(), ch, "q")
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	free.Store(1 << 20)
	wait.For(t, 5*time.Second, "the disk alarm to be raised", func() bool { return len(sb.Srv.Alarms()) > 0 })
	c.frame(stomp.CmdSend, "during", "destination:/amq/queue/"+q, "receipt:r")
	if f, err := c.next(300 * time.Millisecond); err == nil {
		t.Fatalf("%s during the alarm", f.Command)
	}
	amqpGetEmpty(t, ch, q)
	free.Store(1 << 40)
	if r := c.expect(stomp.CmdReceipt); get(r, "receipt-id") != "r" {
		t.Fatalf("RECEIPT %s", hdrs(r))
	}
	if d := amqpGet(t, ch, q, true); string(d.Body) != "during" {
		t.Fatalf("%q", d.Body)
	}
}

// gatedStore holds synced writes (the fsyncs commit groups wait for) while its gate is closed.
type gatedStore struct {
	storage.Store
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (g *gatedStore) Apply(b *storage.Batch, sync bool) error {
	if sync {
		g.mu.Lock()
		gate := g.gate
		g.mu.Unlock()
		if gate != nil {
			<-gate
		}
	}
	return g.Store.Apply(b, sync)
}

func (g *gatedStore) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) open() {
	g.mu.Lock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
	g.mu.Unlock()
}

// TestSTOMPReceiptAfterFsync: the receipt of a persistent SEND to a durable queue comes once the
// message is durable, and later receipts wait behind it; the read loop goes on meanwhile.
func TestSTOMPReceiptAfterFsync(t *testing.T) {
	if externalURL != "" {
		t.Skip("needs a store of the test's own")
	}
	gs := &gatedStore{Store: storage.NewMemStore()}
	t.Cleanup(func() { gs.Store.Close() })
	sb := startSTOMP(t, func(o *server.Options) { o.Store = gs })
	t.Cleanup(gs.open) // before the broker stops
	q := amqpName(t, "q")
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/queue/"+q, "receipt:declared") // durable: its declare is synced
	c.expect(stomp.CmdReceipt)
	gs.close()
	c.frame(stomp.CmdSend, "p", "destination:/amq/queue/"+q, "persistent:true", "receipt:persistent")
	c.frame(stomp.CmdSend, "t", "destination:/amq/queue/"+q, "receipt:transient")
	// Both messages are delivered (the read loop did not wait), but no receipt comes yet.
	for _, want := range []string{"p", "t"} {
		if m := c.expect(stomp.CmdMessage); string(m.Body) != want {
			t.Fatalf("%q, want %q", m.Body, want)
		}
	}
	if f, err := c.next(300 * time.Millisecond); err == nil {
		t.Fatalf("%s %s before the fsync", f.Command, hdrs(f))
	}
	gs.open()
	for _, want := range []string{"persistent", "transient"} {
		if r := c.expect(stomp.CmdReceipt); get(r, "receipt-id") != want {
			t.Fatalf("receipt %s, want %s", hdrs(r), want)
		}
	}
}

// TestSTOMPVhostDeleted: deleting a vhost closes its STOMP connections, as its AMQP ones.
func TestSTOMPVhostDeleted(t *testing.T) {
	sb := startSTOMP(t)
	if sb.Srv == nil {
		t.Skip("creates a vhost in process")
	}
	vh := amqpName(t, "vh")
	if _, err := sb.Srv.PutVhost(server.VhostInfo{Name: vh}, "guest"); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Srv.PutPermission(server.Permission{Vhost: vh, User: "guest", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	c := dialSTOMP(t, sb.STOMP)
	c.frame(stomp.CmdConnect, "", "accept-version:1.2", "host:"+vh, "login:guest", "passcode:guest")
	c.expect(stomp.CmdConnected)
	if err := sb.Srv.DeleteVhost(vh); err != nil {
		t.Fatal(err)
	}
	c.expectError("connection_forced", "CONNECTION_FORCED - vhost '"+vh+"' is deleted")
	c.expectClosed()
}

// TestSTOMPTopicPermissions: topic permissions apply to /topic routing keys, write for a SEND and
// read for a subscription's binding, as in RabbitMQ.
func TestSTOMPTopicPermissions(t *testing.T) {
	sb := startSTOMP(t)
	if sb.Srv == nil {
		t.Skip("creates users in process")
	}
	if _, err := sb.Srv.PutUser(server.UserSpec{Name: "topical", Password: ptr("pw")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Srv.PutPermission(server.Permission{Vhost: "/", User: "topical", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Srv.PutTopicPermission(server.TopicPermission{User: "topical", Vhost: "/", Exchange: "amq.topic", Write: "^pub\\.", Read: "^sub\\."}); err != nil {
		t.Fatal(err)
	}
	login := func() *stompClient {
		c := dialSTOMP(t, sb.STOMP)
		c.frame(stomp.CmdConnect, "", "accept-version:1.2", "host:/", "login:topical", "passcode:pw")
		c.expect(stomp.CmdConnected)
		return c
	}
	c := login()
	c.frame(stomp.CmdSubscribe, "", "id:ok", "destination:/topic/sub.a", "receipt:r1")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdSend, "x", "destination:/topic/pub.a", "receipt:r2")
	c.expect(stomp.CmdReceipt)
	c.frame(stomp.CmdSend, "x", "destination:/topic/other.a")
	c.expectError("access_refused", "ACCESS_REFUSED - access to topic 'other.a' in exchange 'amq.topic' in vhost '/' refused for user 'topical'")
	c.expectClosed()
	c = login()
	c.frame(stomp.CmdSubscribe, "", "id:no", "destination:/topic/other.b")
	c.expectError("access_refused", "ACCESS_REFUSED - access to topic 'other.b' in exchange 'amq.topic' in vhost '/' refused for user 'topical'")
	c.expectClosed()
}

// TestSTOMPGarbage: mutated frames after CONNECT never take the broker down (a panic in a read
// loop would end the test binary); the broker serves a new connection afterwards.
func TestSTOMPGarbage(t *testing.T) {
	if externalURL != "" {
		t.Skip("in-process broker only")
	}
	sb := startSTOMP(t)
	seeds := []string{
		"SEND\ndestination:/queue/garbage\ncontent-type:text/plain\nreceipt:1\n\nhello\x00",
		"SEND\r\ndestination:/exchange/amq.topic/a.b\r\ncontent-length:3\r\n\r\na\x00b\x00\r\n",
		"SUBSCRIBE\nid:0\ndestination:/topic/x\nack:client-individual\nprefetch-count:10\n\n\x00",
		"ACK\nid:T_0@@session@@1\n\n\x00NACK\nid:T_0@@s@@2\nrequeue:false\n\n\x00",
		"BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/amq/queue/garbage\ntransaction:t\n\nx\x00COMMIT\ntransaction:t\n\n\x00",
		"UNSUBSCRIBE\nid:0\n\n\x00DISCONNECT\nreceipt:9\n\n\x00",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var conns []*stompClient
	for i := range 200 {
		b := []byte(seeds[i%len(seeds)])
		for range 1 + rng.IntN(4) {
			switch rng.IntN(3) {
			case 0:
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			case 1:
				b = b[:rng.IntN(len(b))]
			default:
				j := rng.IntN(len(b))
				b = append(b[:j:j], append([]byte{":\\\n\r\x00"[rng.IntN(5)]}, b[j:]...)...)
			}
			if len(b) == 0 {
				b = []byte{'\n'}
			}
		}
		c := dialSTOMP(t, sb.STOMP)
		c.connect()
		c.raw(string(b))
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.nc.Close()
	}
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdDisconnect, "", "receipt:alive")
	c.expect(stomp.CmdReceipt)
}

// TestSTOMPFlowControl: a STOMP publisher faster than a queue's AMQP consumer is paused (its
// socket not read) until the queue drains, as an AMQP publisher is (server/queue_flow.go).
func TestSTOMPFlowControl(t *testing.T) {
	if externalURL != "" {
		t.Skip("reads the in-process broker's queue counters")
	}
	sb := startSTOMP(t, func(o *server.Options) { o.QueueWindow = flowWindow })
	b := sb.amqp()
	cconn := amqpDial(t, b)
	cch := amqpChannel(t, cconn)
	q := amqpQueue(t, b, cch, "q")
	if err := cch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries := amqpConsume(t, cch, q, false)
	const n = 2000
	var frames strings.Builder
	body := strings.Repeat("x", 100)
	for range n {
		frames.WriteString("SEND\ndestination:/amq/queue/" + q + "\n\n" + body + "\x00")
	}
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	pubDone := make(chan error, 1)
	go func() {
		_, err := c.nc.Write([]byte(frames.String()))
		pubDone <- err
	}()
	var maxReady int64
	for i := range n {
		d := amqpRecv(t, deliveries)
		qi := queueInfo(t, b, q)
		maxReady = max(maxReady, qi.Ready)
		if qi.PagedOut != 0 {
			t.Fatalf("after %d deliveries the queue paged %d messages out: the STOMP publisher was not throttled", i, qi.PagedOut)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	if maxReady > flowWindow/2 {
		t.Errorf("the queue held up to %d ready messages; want at most %d", maxReady, flowWindow/2)
	}
	if fs := sb.Srv.FlowStats(); fs.Pauses == 0 {
		t.Errorf("flow stats %+v: the STOMP publisher was never paused", fs)
	}
	t.Logf("max ready %d, flow %+v", maxReady, sb.Srv.FlowStats())
}

// TestSTOMPDurableAutoDelete: a durable subscription without auto-delete:false is auto-deleted
// when its consumer goes, as in RabbitMQ 3.10.8.
func TestSTOMPDurableAutoDelete(t *testing.T) {
	sb := startSTOMP(t)
	name := amqpName(t, "sub")
	c := dialSTOMP(t, sb.STOMP)
	c.connect()
	c.frame(stomp.CmdSubscribe, "", "id:d", "destination:/topic/"+amqpName(t, "k"), "durable:true", "x-queue-name:"+name, "receipt:s")
	c.expect(stomp.CmdReceipt)
	conn := amqpDial(t, sb.amqp())
	if _, err := amqpChannel(t, conn).QueueDeclarePassive(name, true, true, false, false, nil); err != nil {
		t.Fatalf("durable subscription queue: %v", err)
	}
	c.frame(stomp.CmdDisconnect, "", "receipt:bye")
	c.expect(stomp.CmdReceipt)
	c.expectClosed()
	wait.For(t, 5*time.Second, "the subscription's queue auto-deleted", func() bool {
		_, err := amqpChannel(t, conn).QueueDeclarePassive(name, true, true, false, false, nil)
		return err != nil
	})
}
