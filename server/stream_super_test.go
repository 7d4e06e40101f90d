package server

import (
	"net"
	"slices"
	"testing"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/streamproto"
)

func (r *rawStream) partitions(corr uint32, ss string) *streamproto.PartitionsResponse {
	r.t.Helper()
	r.send(&streamproto.Partitions{CorrelationID: corr, SuperStream: ss})
	return r.expect(&streamproto.PartitionsResponse{}).(*streamproto.PartitionsResponse)
}

func (r *rawStream) route(corr uint32, ss, key string) *streamproto.RouteResponse {
	r.t.Helper()
	r.send(&streamproto.Route{CorrelationID: corr, SuperStream: ss, RoutingKey: key})
	return r.expect(&streamproto.RouteResponse{}).(*streamproto.RouteResponse)
}

// TestStreamSuperCodes: create and delete super stream with their refusals, the topology they
// make (RabbitMQ 3.10.8's add_super_stream's: a durable direct exchange with x-super-stream,
// bindings with x-stream-partition-order), and route and partitions.
func TestStreamSuperCodes(t *testing.T) {
	srv, addr := startStreamFront(t)
	r := dialRawStream(t, addr)
	r.open()
	const OK = streamproto.CodeOK
	create := func(corr uint32, name string, parts, keys []string, args ...streamproto.KV) uint16 {
		return r.code(&streamproto.CreateSuperStream{CorrelationID: corr, Name: name, Partitions: parts, BindingKeys: keys, Arguments: args})
	}
	if c := create(5, "ss", []string{"ss-0", "ss-1", "ss-2"}, []string{"0", "1", "2"}, streamproto.KV{Key: "max-age", Value: "1h"}); c != OK {
		t.Fatalf("create: %d", c)
	}
	x, err := srv.Exchange("/", "ss")
	if err != nil || x.Type != "direct" || !x.Durable || x.Arguments["x-super-stream"] != true {
		t.Fatalf("exchange %+v %v", x, err)
	}
	var keys []string
	for _, b := range srv.Bindings(nil) {
		if b.Source == "ss" {
			o, _ := intArg(b.Arguments[superStreamOrderArg])
			keys = append(keys, b.RoutingKey+"->"+b.Destination+"#"+string(rune('0'+o)))
		}
	}
	if slices.Sort(keys); !slices.Equal(keys, []string{"0->ss-0#0", "1->ss-1#1", "2->ss-2#2"}) {
		t.Fatalf("bindings %v", keys)
	}
	q, _, _ := r.streamOf(srv, "ss-1")
	if q == nil || q.args["x-max-age"] != "1h" {
		t.Fatalf("partition ss-1: %+v", q)
	}
	if p := r.partitions(6, "ss"); p.Code != OK || !slices.Equal(p.Streams, []string{"ss-0", "ss-1", "ss-2"}) {
		t.Fatalf("partitions %+v", p)
	}
	if rt := r.route(7, "ss", "1"); rt.Code != OK || !slices.Equal(rt.Streams, []string{"ss-1"}) {
		t.Fatalf("route %+v", rt)
	}
	if rt := r.route(8, "ss", "9"); rt.Code != OK || len(rt.Streams) != 0 {
		t.Fatalf("route to nowhere %+v", rt)
	}
	// As RabbitMQ 3.10.8: a missing exchange is 2, any other exchange answers.
	if rt := r.route(9, "nope", "1"); rt.Code != streamproto.CodeStreamDoesNotExist || len(rt.Streams) != 0 {
		t.Fatalf("route of a missing super stream %+v", rt)
	}
	if p := r.partitions(10, "nope"); p.Code != streamproto.CodeStreamDoesNotExist {
		t.Fatalf("partitions of a missing super stream %+v", p)
	}
	if p := r.partitions(11, "amq.direct"); p.Code != OK || len(p.Streams) != 0 {
		t.Fatalf("partitions of amq.direct %+v", p)
	}

	// Partitions follow x-stream-partition-order, not binding order or names.
	v := srv.vhost("/")
	for _, n := range []string{"o-a", "o-b"} {
		if _, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: n, Durable: true, Arguments: amqp.Table{"x-queue-type": "stream"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.DeclareExchange("/", "ordered", ExchangeSpec{Type: "direct", Durable: true}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		q     string
		order int64
	}{{"o-a", 1}, {"o-b", 0}} {
		if err := srv.Bind("/", "ordered", "queue", b.q, b.q, amqp.Table{superStreamOrderArg: b.order}); err != nil {
			t.Fatal(err)
		}
	}
	if p := r.partitions(12, "ordered"); !slices.Equal(p.Streams, []string{"o-b", "o-a"}) {
		t.Fatalf("ordered partitions %+v", p)
	}

	for _, c := range []struct {
		what        string
		name        string
		parts, keys []string
		want        uint16
	}{
		{"existing super stream", "ss", []string{"x-0"}, []string{"0"}, streamproto.CodeStreamAlreadyExists},
		{"existing partition", "new", []string{"new-0", "ss-1"}, []string{"0", "1"}, streamproto.CodeStreamAlreadyExists},
		{"partitions and keys differ", "new", []string{"new-0"}, []string{"0", "1"}, streamproto.CodePreconditionFailed},
		{"no partitions", "new", nil, nil, streamproto.CodePreconditionFailed},
		{"amq. name", "amq.new", []string{"n-0"}, []string{"0"}, streamproto.CodePreconditionFailed},
		{"empty name", "", []string{"n-0"}, []string{"0"}, streamproto.CodePreconditionFailed},
		{"amq. partition", "new", []string{"amq.p"}, []string{"0"}, streamproto.CodePreconditionFailed},
		{"empty key", "new", []string{"new-0"}, []string{""}, streamproto.CodePreconditionFailed},
	} {
		if got := create(13, c.name, c.parts, c.keys); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
	if got := create(14, "new", []string{"new-0"}, []string{"0"}, streamproto.KV{Key: "max-length-bytes", Value: "lots"}); got != streamproto.CodePreconditionFailed {
		t.Errorf("bad argument: %d", got)
	}
	// Refused creations leave nothing behind.
	if x, err := srv.Exchange("/", "new"); err == nil {
		t.Fatalf("exchange left by a refused create: %+v", x)
	}
	if q, _, _ := r.streamOf(srv, "new-0"); q != nil {
		t.Fatal("partition left by a refused create")
	}

	pw := "pw"
	if _, err := srv.PutUser(UserSpec{Name: "limited", Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.PutPermission(Permission{User: "limited", Vhost: "/", Configure: "^lim", Write: "^lim", Read: "^$"}); err != nil {
		t.Fatal(err)
	}
	lr := dialRawStream(t, addr)
	lr.openAs("limited", "pw")
	lr.send(&streamproto.ExchangeCommandVersions{CorrelationID: 4})
	ev := lr.expect(&streamproto.ExchangeCommandVersions{Response: true}).(*streamproto.ExchangeCommandVersions)
	for _, k := range []uint16{streamproto.KeyRoute, streamproto.KeyPartitions, streamproto.KeyConsumerUpdate,
		streamproto.KeyCreateSuperStream, streamproto.KeyDeleteSuperStream} {
		if !slices.Contains(ev.Versions, streamproto.CommandVersion{Key: k, Min: 1, Max: 1}) {
			t.Errorf("command versions lack %#04x: %v", k, ev.Versions)
		}
	}
	if c := lr.code(&streamproto.CreateSuperStream{CorrelationID: 5, Name: "lim", Partitions: []string{"lim-0"}, BindingKeys: []string{"0"}}); c != streamproto.CodeAccessRefused {
		t.Fatalf("create without read on the exchange: %d", c)
	}
	if c := lr.code(&streamproto.DeleteSuperStream{CorrelationID: 6, Name: "ss"}); c != streamproto.CodeAccessRefused {
		t.Fatalf("delete without permissions: %d", c)
	}

	if c := r.code(&streamproto.DeleteSuperStream{CorrelationID: 20, Name: "ss"}); c != OK {
		t.Fatalf("delete: %d", c)
	}
	if p := r.partitions(21, "ss"); p.Code != streamproto.CodeStreamDoesNotExist {
		t.Fatalf("partitions after delete %+v", p)
	}
	for _, n := range []string{"ss-0", "ss-1", "ss-2"} {
		if q, _, _ := r.streamOf(srv, n); q != nil {
			t.Fatalf("%s survived", n)
		}
	}
	if c := r.code(&streamproto.DeleteSuperStream{CorrelationID: 22, Name: "ss"}); c != streamproto.CodeStreamDoesNotExist {
		t.Fatalf("delete twice: %d", c)
	}
	if c := r.code(&streamproto.DeleteSuperStream{CorrelationID: 23, Name: "amq.direct"}); c != streamproto.CodePreconditionFailed {
		t.Fatalf("delete amq.direct: %d", c)
	}
}

// streamOf looks a stream queue up in "/" (nil if there is none).
func (r *rawStream) streamOf(srv *Server, name string) (*queue, *streamQueue, bool) {
	v := srv.vhost("/")
	v.mu.RLock()
	q := v.mu.queues[name]
	v.mu.RUnlock()
	if q == nil {
		return nil, nil, false
	}
	sq, ok := q.queueImpl.(*streamQueue)
	return q, sq, ok
}

// TestStreamSingleActiveConsumer: the active member reads only after answering its consumer
// update, at the answer's offset; the others wait; when it unsubscribes the next is updated and
// reads from its own subscribe offset (answer none). A group needs a name (17).
func TestStreamSingleActiveConsumer(t *testing.T) {
	_, addr := startStreamFront(t)
	r := dialRawStream(t, addr)
	r.open()
	const OK = streamproto.CodeOK
	if c := r.code(&streamproto.Create{CorrelationID: 5, Stream: "s"}); c != OK {
		t.Fatal(c)
	}
	if c := r.code(&streamproto.DeclarePublisher{CorrelationID: 6, PublisherID: 1, Stream: "s"}); c != OK {
		t.Fatal(c)
	}
	body := streamproto.AppendMessage(nil, &streamproto.Message{Data: [][]byte{[]byte("m")}})
	var msgs []streamproto.PublishedMessage
	for i := range 5 {
		msgs = append(msgs, streamproto.PublishedMessage{PublishingID: uint64(i), Message: body})
	}
	r.send(&streamproto.Publish{V: 1, PublisherID: 1, Messages: msgs})
	r.expect(&streamproto.PublishConfirm{})

	sac := func(name string) []streamproto.KV {
		return []streamproto.KV{{Key: "single-active-consumer", Value: "true"}, {Key: "name", Value: name}}
	}
	first := streamproto.OffsetSpec{Type: streamproto.OffsetFirst}
	if c := r.code(&streamproto.Subscribe{CorrelationID: 7, SubscriptionID: 9, Stream: "s", Offset: first, Credit: 5,
		Properties: []streamproto.KV{{Key: "single-active-consumer", Value: "true"}}}); c != streamproto.CodePreconditionFailed {
		t.Fatalf("single active consumer without a name: %d", c)
	}
	if c := r.code(&streamproto.Subscribe{CorrelationID: 8, SubscriptionID: 1, Stream: "s", Offset: first, Credit: 5, Properties: sac("app")}); c != OK {
		t.Fatalf("subscribe: %d", c)
	}
	cu := r.expect(&streamproto.ConsumerUpdate{}).(*streamproto.ConsumerUpdate)
	if cu.SubscriptionID != 1 || !cu.Active {
		t.Fatalf("consumer update %+v", cu)
	}
	// A second member (another subscription id) is told nothing and reads nothing.
	if c := r.code(&streamproto.Subscribe{CorrelationID: 9, SubscriptionID: 2, Stream: "s", Offset: first, Credit: 5, Properties: sac("app")}); c != OK {
		t.Fatalf("second subscribe: %d", c)
	}
	// An answer nobody asked for is ignored.
	r.send(&streamproto.ConsumerUpdateResponse{CorrelationID: 999, Code: OK})
	r.send(&streamproto.ConsumerUpdateResponse{CorrelationID: cu.CorrelationID, Code: OK, Offset: streamproto.OffsetSpec{Type: streamproto.OffsetOffset, Value: 3}})
	d := r.expect(&streamproto.Deliver{}).(*streamproto.Deliver)
	if d.SubscriptionID != 1 || d.Chunk.ChunkFirstOffset != 3 || d.Chunk.NumEntries != 2 {
		t.Fatalf("first chunk: sub %d %+v", d.SubscriptionID, d.Chunk)
	}
	if c := r.code(&streamproto.Unsubscribe{CorrelationID: 10, SubscriptionID: 1}); c != OK {
		t.Fatal(c)
	}
	cu = r.expect(&streamproto.ConsumerUpdate{}).(*streamproto.ConsumerUpdate)
	if cu.SubscriptionID != 2 || !cu.Active {
		t.Fatalf("consumer update after unsubscribe %+v", cu)
	}
	r.send(&streamproto.ConsumerUpdateResponse{CorrelationID: cu.CorrelationID, Code: OK, Offset: streamproto.OffsetSpec{Type: streamproto.OffsetNone}})
	d = r.expect(&streamproto.Deliver{}).(*streamproto.Deliver)
	if d.SubscriptionID != 2 || d.Chunk.ChunkFirstOffset != 0 || d.Chunk.NumEntries != 5 {
		t.Fatalf("second member's chunk: sub %d %+v", d.SubscriptionID, d.Chunk)
	}
	// The stream is deleted: the reading member and, once activated, the waiting one are told.
	if c := r.code(&streamproto.Subscribe{CorrelationID: 11, SubscriptionID: 3, Stream: "s", Offset: first, Credit: 5, Properties: sac("app")}); c != OK {
		t.Fatalf("third subscribe: %d", c)
	}
	r.send(&streamproto.Delete{CorrelationID: 12, Stream: "s"})
	updates, answered := 0, false
	for updates < 2 || !answered {
		c, err := r.next()
		if err != nil {
			t.Fatalf("after the delete: %v (%d metadata updates)", err, updates)
		}
		switch m := c.(type) {
		case *streamproto.MetadataUpdate:
			if m.Stream != "s" || m.Code != streamproto.CodeStreamNotAvailable {
				t.Fatalf("metadata update %+v", m)
			}
			updates++
		case *streamproto.ConsumerUpdate:
			if m.SubscriptionID != 3 || !m.Active {
				t.Fatalf("consumer update %+v", m)
			}
			r.send(&streamproto.ConsumerUpdateResponse{CorrelationID: m.CorrelationID, Code: OK})
		case *streamproto.Response:
			answered = m.Code == OK
		default:
			t.Fatalf("unexpected %T %+v", m, m)
		}
	}
	if c := r.code(&streamproto.Unsubscribe{CorrelationID: 13, SubscriptionID: 3}); c != streamproto.CodeSubscriptionIDDoesNotExist {
		t.Fatalf("the cancelled member is still subscribed: %d", c)
	}
}

// openAs runs the handshake as user on "/".
func (r *rawStream) openAs(user, pw string) {
	r.t.Helper()
	r.send(&streamproto.PeerProperties{CorrelationID: 1})
	if pp := r.expect(&streamproto.PeerPropertiesResponse{}).(*streamproto.PeerPropertiesResponse); !slices.Contains(pp.Properties, streamproto.KV{Key: "version", Value: streamProtocolVersion}) {
		r.t.Fatalf("peer properties %v", pp.Properties)
	}
	r.send(&streamproto.SaslHandshake{CorrelationID: 2})
	r.expect(&streamproto.SaslHandshakeResponse{})
	r.send(&streamproto.SaslAuthenticate{CorrelationID: 3, Mechanism: "PLAIN", Data: []byte("\x00" + user + "\x00" + pw)})
	if c := r.expect(&streamproto.SaslAuthenticateResponse{}).(*streamproto.SaslAuthenticateResponse); c.Code != streamproto.CodeOK {
		r.t.Fatalf("authenticate: %d", c.Code)
	}
	r.expect(&streamproto.Tune{})
	r.send(&streamproto.Tune{FrameMax: streamFrameMax, Heartbeat: 0, Response: true})
	r.send(&streamproto.Open{CorrelationID: 4, VirtualHost: "/"})
	if c := r.expect(&streamproto.OpenResponse{}).(*streamproto.OpenResponse); c.Code != streamproto.CodeOK {
		r.t.Fatalf("open: %d", c.Code)
	}
}

// FuzzStreamSuper is FuzzStreamConn seeded with super stream and single active consumer
// sessions: no panic, no hang, and groups left by a connection that went away do not stop the
// next connections.
func FuzzStreamSuper(f *testing.F) {
	var hs []byte
	for _, c := range []streamproto.Command{
		&streamproto.PeerProperties{CorrelationID: 1}, &streamproto.SaslHandshake{CorrelationID: 2},
		&streamproto.SaslAuthenticate{CorrelationID: 3, Mechanism: "PLAIN", Data: []byte("\x00guest\x00guest")},
		&streamproto.Tune{FrameMax: 65536, Response: true}, &streamproto.Open{CorrelationID: 4, VirtualHost: "/"},
	} {
		hs, _ = streamproto.Append(hs, c)
	}
	sac := []streamproto.KV{{Key: "single-active-consumer", Value: "true"}, {Key: "name", Value: "g"}, {Key: "super-stream", Value: "fs"}}
	var session []byte
	for _, c := range []streamproto.Command{
		&streamproto.CreateSuperStream{CorrelationID: 5, Name: "fs", Partitions: []string{"fs-0", "fs-1"}, BindingKeys: []string{"0", "1"}},
		&streamproto.Route{CorrelationID: 6, RoutingKey: "1", SuperStream: "fs"},
		&streamproto.Partitions{CorrelationID: 7, SuperStream: "fs"},
		&streamproto.Subscribe{CorrelationID: 8, SubscriptionID: 1, Stream: "fs-1", Offset: streamproto.OffsetSpec{Type: streamproto.OffsetFirst}, Credit: 2, Properties: sac},
		&streamproto.Subscribe{CorrelationID: 9, SubscriptionID: 2, Stream: "fs-1", Offset: streamproto.OffsetSpec{Type: streamproto.OffsetFirst}, Credit: 2, Properties: sac},
		&streamproto.ConsumerUpdateResponse{CorrelationID: 1, Code: streamproto.CodeOK, Offset: streamproto.OffsetSpec{Type: streamproto.OffsetNext}},
		&streamproto.ConsumerUpdateResponse{CorrelationID: 2, Code: streamproto.CodeOK},
		&streamproto.Unsubscribe{CorrelationID: 10, SubscriptionID: 1},
		&streamproto.DeleteSuperStream{CorrelationID: 11, Name: "fs"},
	} {
		session, _ = streamproto.Append(session, c)
	}
	f.Add(session)
	f.Add(session[:len(session)/2])
	_, addr := startStreamFront(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		client, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		fuzzFeed(t, client, append(append([]byte(nil), hs...), data...))
	})
}
