package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// fuzzMethod encodes m as a method frame on channel ch.
func fuzzMethod(t testing.TB, ch uint16, m amqp.Method) []byte {
	t.Helper()
	b, err := amqp.AppendMethodFrame(nil, ch, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fuzzHandshake is a complete client handshake (guest/guest on "/") and channel 1 opened: FuzzConn
// prepends it when the first input octet is odd, so that mutations spend their time past the
// handshake.
func fuzzHandshake(t testing.TB) []byte {
	var b []byte
	b = append(b, "AMQP\x00\x00\x09\x01"...)
	b = append(b, fuzzMethod(t, 0, &amqp.ConnectionStartOk{ClientProperties: amqp.Table{"product": "fuzz"},
		Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})...)
	b = append(b, fuzzMethod(t, 0, &amqp.ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 0})...)
	b = append(b, fuzzMethod(t, 0, &amqp.ConnectionOpen{VirtualHost: "/"})...)
	return append(b, fuzzMethod(t, 1, &amqp.ChannelOpen{})...)
}

// fuzzSession is a well-formed session after the handshake: declares, binds, publishes with
// properties and content, consumes, gets, acks, confirms, transactions and closes.
func fuzzSession(t testing.TB) [][]byte {
	props, err := (&amqp.Properties{ContentType: "text/plain", Headers: amqp.Table{"h": int32(1)},
		DeliveryMode: 2, Priority: 3, Expiration: "60000", MessageID: "m1"}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(ch uint16, ex, key string, body string) []byte {
		b := fuzzMethod(t, ch, &amqp.BasicPublish{Exchange: ex, RoutingKey: key})
		b = amqp.AppendContentHeaderFrame(b, ch, 60, uint64(len(body)), props)
		return amqp.AppendBodyFrames(b, ch, []byte(body), 131072)
	}
	return [][]byte{
		fuzzMethod(t, 1, &amqp.QueueDeclare{Queue: "fq", Arguments: amqp.Table{"x-max-length": int32(10), "x-message-ttl": int32(1000), "x-dead-letter-exchange": "dlx"}}),
		fuzzMethod(t, 1, &amqp.ExchangeDeclare{Exchange: "fx", Type: "topic"}),
		fuzzMethod(t, 1, &amqp.QueueBind{Queue: "fq", Exchange: "fx", RoutingKey: "a.#"}),
		fuzzMethod(t, 1, &amqp.ConfirmSelect{}),
		publish(1, "fx", "a.b", "hello"),
		publish(1, "", "fq", ""),
		fuzzMethod(t, 1, &amqp.BasicQos{PrefetchCount: 2}),
		fuzzMethod(t, 1, &amqp.BasicConsume{Queue: "fq", ConsumerTag: "c1"}),
		fuzzMethod(t, 1, &amqp.BasicAck{DeliveryTag: 1, Multiple: true}),
		fuzzMethod(t, 1, &amqp.BasicNack{DeliveryTag: 2, Requeue: true}),
		fuzzMethod(t, 1, &amqp.BasicCancel{ConsumerTag: "c1"}),
		fuzzMethod(t, 1, &amqp.BasicGet{Queue: "fq"}),
		fuzzMethod(t, 1, &amqp.BasicReject{DeliveryTag: 3}),
		fuzzMethod(t, 2, &amqp.ChannelOpen{}),
		fuzzMethod(t, 2, &amqp.TxSelect{}),
		publish(2, "", "fq", "in a transaction"),
		fuzzMethod(t, 2, &amqp.TxCommit{}),
		fuzzMethod(t, 1, &amqp.BasicRecover{Requeue: true}),
		fuzzMethod(t, 1, &amqp.QueuePurge{Queue: "fq"}),
		fuzzMethod(t, 1, &amqp.QueueDelete{Queue: "fq"}),
		fuzzMethod(t, 1, &amqp.ChannelFlow{Active: false}),
		fuzzMethod(t, 1, &amqp.ChannelClose{ReplyCode: 200}),
		amqp.AppendHeartbeat(nil),
		fuzzMethod(t, 0, &amqp.ConnectionClose{ReplyCode: 200}),
	}
}

// FuzzConn feeds raw bytes to a server connection over net.Pipe: the connection must not panic,
// must end once the client goes away, and must not allocate far beyond what it was sent (a declared
// size is not a reason to allocate). With the first octet odd, the input follows a valid handshake.
func FuzzConn(f *testing.F) {
	hs := fuzzHandshake(f)
	session := fuzzSession(f)
	f.Add(append([]byte{0}, hs...))
	f.Add(append([]byte{1}, bytes.Join(session, nil)...))
	for _, s := range session {
		f.Add(append([]byte{1}, s...))
	}
	f.Add([]byte("\x00AMQP\x01\x01\x00\x09"))
	f.Add([]byte("\x01\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff\x00\x00\xce"))

	srv, err := New(Options{ConsumerTimeout: -1, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			f.Errorf("shutdown: %v", err)
		}
	})
	// Each input gets a fresh loopback TCP connection: the client writes the input, half-closes (so
	// the broker sees end of input after handling every frame) and reads until the broker closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		in := data[1:]
		if data[0]&1 == 1 {
			in = append(append([]byte(nil), hs...), in...)
		}
		fuzzServeOne(t, ln, in, func(nc net.Conn) { newConn(srv, nc).serve() })
	})
}

// isConnReset reports a connection reset by the broker (it closed with unread input).
func isConnReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// FuzzDecodeMessage: a message record read back from the store decodes or fails with
// errBadRecord, never panics, and a decoded record encodes back to the same bytes (version 2).
func FuzzDecodeMessage(f *testing.F) {
	props, _ := (&amqp.Properties{Headers: amqp.Table{"a": "b"}, Expiration: "5", Priority: 1}).Append(nil)
	for _, m := range []*message{
		{exchange: "ex", routingKey: "rk", props: props, body: []byte("body"), persistent: true, arrived: 1700000000000},
		{body: []byte{}},
		{exchange: string(make([]byte, 255)), props: []byte{0, 0}},
	} {
		f.Add(encodeMessage(m))
	}
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		m, err := decodeMessage(rec)
		size, _, serr := recordBodySize(rec)
		if (err == nil) != (serr == nil) && err != nil && !bytes.Contains([]byte(err.Error()), []byte("properties")) {
			t.Fatalf("decodeMessage: %v, recordBodySize: %v", err, serr)
		}
		if err != nil {
			return
		}
		if int64(len(m.body)) != size {
			t.Fatalf("body %d bytes, recordBodySize %d", len(m.body), size)
		}
		if rec[0] == msgRecordV2 {
			want := append([]byte(nil), rec...)
			want[1] &= recPersistent // other flag bits are not kept
			if got := encodeMessage(m); !bytes.Equal(got, want) {
				t.Fatalf("re-encoded record differs:\n got %x\nwant %x", got, want)
			}
		}
	})
}

// fuzzServeOne feeds in to one fresh loopback connection, accepted on ln and served by serve (which
// returns when the connection ends): the client writes in, half-closes (so the broker sees the end
// of input after handling every frame) and reads until the broker closes. It fails t if the broker
// does not close the connection, the connection does not end, or in made it allocate more than
// 64 MiB plus 64 bytes per input byte.
func fuzzServeOne(t *testing.T, ln net.Listener, in []byte, serve func(nc net.Conn)) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); serve(nc) }()
	fuzzFeed(t, client, in)
	client.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("the connection did not end after the client went away:\n%s", buf[:runtime.Stack(buf, true)])
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20+64*uint64(len(in)) {
		t.Fatalf("%d bytes of input made the broker allocate %d bytes", len(in), n)
	}
}

// fuzzFeed writes in to client, half-closes it and reads until the broker closes the connection,
// failing t if it does not within 15 s. The broker may stop reading (an AMQP close waits only for
// close-ok): the write then ends when the broker closes the socket.
func fuzzFeed(t *testing.T, client net.Conn, in []byte) {
	t.Helper()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := client.Write(in); err == nil {
			_ = client.(*net.TCPConn).CloseWrite()
		}
	}()
	_ = client.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.Copy(io.Discard, client); err != nil && !isConnReset(err) {
		buf := make([]byte, 1<<20)
		t.Fatalf("the broker did not close the connection after the end of input: %v\n%s", err, buf[:runtime.Stack(buf, true)])
	}
	<-wrote
}
