package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/warrenmq/warren/storage"
	"github.com/warrenmq/warren/streamproto"
)

// startStreamFront starts a broker with a stream listener on 127.0.0.1:0; it stops with the test.
func startStreamFront(t testing.TB) (*Server, string) {
	t.Helper()
	srv, err := New(Options{ConsumerTimeout: -1, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeStream(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeStream: %v", err)
		}
	})
	return srv, ln.Addr().String()
}

// rawStream is a minimal stream protocol client over streamproto.
type rawStream struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRawStream(t testing.TB, addr string) *rawStream {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawStream{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawStream) send(c streamproto.Command) {
	r.t.Helper()
	b, err := streamproto.Append(nil, c)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// next reads the next command, skipping heartbeats; io.EOF-like errors are returned.
func (r *rawStream) next() (streamproto.Command, error) {
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
			return nil, err
		}
		buf := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
		copy(buf, hdr[:])
		if _, err := io.ReadFull(r.br, buf[4:]); err != nil {
			return nil, err
		}
		f, _, err := streamproto.ReadFrame(buf, 0xFFFFFFFF)
		if err != nil {
			return nil, err
		}
		c, err := streamproto.Decode(f)
		if err != nil {
			return nil, err
		}
		if _, ok := c.(*streamproto.Heartbeat); !ok {
			return c, nil
		}
	}
}

func (r *rawStream) expect(want streamproto.Command) streamproto.Command {
	r.t.Helper()
	c, err := r.next()
	if err != nil {
		r.t.Fatalf("waiting for %T: %v", want, err)
	}
	if c.Key() != want.Key() {
		r.t.Fatalf("got %T %+v, want a %T", c, c, want)
	}
	return c
}

// code sends c and returns the response code of its generic response.
func (r *rawStream) code(c streamproto.Command) uint16 {
	r.t.Helper()
	r.send(c)
	resp := r.expect(&streamproto.Response{For: c.Key()}).(*streamproto.Response)
	return resp.Code
}

// open runs the handshake as guest on "/".
func (r *rawStream) open() {
	r.t.Helper()
	r.send(&streamproto.PeerProperties{CorrelationID: 1})
	r.expect(&streamproto.PeerPropertiesResponse{})
	r.send(&streamproto.SaslHandshake{CorrelationID: 2})
	r.expect(&streamproto.SaslHandshakeResponse{})
	r.send(&streamproto.SaslAuthenticate{CorrelationID: 3, Mechanism: "PLAIN", Data: []byte("\x00guest\x00guest")})
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

// closedWith waits for the server's close and the end of the connection; it returns the code.
func (r *rawStream) closedWith() uint16 {
	r.t.Helper()
	code := uint16(0)
	for {
		c, err := r.next()
		if err != nil {
			return code
		}
		if cl, ok := c.(*streamproto.Close); ok {
			code = cl.Code
		}
	}
}

func TestStreamFrontCodes(t *testing.T) {
	srv, addr := startStreamFront(t)
	r := dialRawStream(t, addr)
	r.open()
	const OK = streamproto.CodeOK
	if c := r.code(&streamproto.Create{CorrelationID: 5, Stream: "s1", Arguments: []streamproto.KV{{Key: "max-age", Value: "1h"}}}); c != OK {
		t.Fatalf("create: %d", c)
	}
	if c := r.code(&streamproto.Create{CorrelationID: 6, Stream: "s1"}); c != streamproto.CodeStreamAlreadyExists {
		t.Fatalf("create again: %d", c)
	}
	if c := r.code(&streamproto.Create{CorrelationID: 7, Stream: "s2", Arguments: []streamproto.KV{{Key: "max-length-bytes", Value: "lots"}}}); c != streamproto.CodePreconditionFailed {
		t.Fatalf("create with a bad argument: %d", c)
	}
	if c := r.code(&streamproto.Delete{CorrelationID: 8, Stream: "nope"}); c != streamproto.CodeStreamDoesNotExist {
		t.Fatalf("delete missing: %d", c)
	}
	r.send(&streamproto.MetadataQuery{CorrelationID: 9, Streams: []string{"s1", "nope"}})
	md := r.expect(&streamproto.Metadata{}).(*streamproto.Metadata)
	if len(md.Brokers) != 1 || md.Brokers[0].Host != "127.0.0.1" || len(md.Streams) != 2 ||
		md.Streams[0].Code != OK || md.Streams[0].Leader != 0 || md.Streams[1].Code != streamproto.CodeStreamDoesNotExist {
		t.Fatalf("metadata %+v", md)
	}
	r.send(&streamproto.ExchangeCommandVersions{CorrelationID: 10, Versions: []streamproto.CommandVersion{{Key: streamproto.KeyPublish, Min: 1, Max: 2}}})
	ev := r.expect(&streamproto.ExchangeCommandVersions{Response: true}).(*streamproto.ExchangeCommandVersions)
	publishV2 := false
	for _, v := range ev.Versions {
		publishV2 = publishV2 || v.Key == streamproto.KeyPublish && v.Max == 2
	}
	if ev.Code != OK || !publishV2 {
		t.Fatalf("exchange command versions %+v", ev)
	}
	if c := r.code(&streamproto.DeclarePublisher{CorrelationID: 11, PublisherID: 1, Stream: "nope"}); c != streamproto.CodeStreamDoesNotExist {
		t.Fatalf("publisher on a missing stream: %d", c)
	}
	r.send(&streamproto.Publish{PublisherID: 9, Messages: []streamproto.PublishedMessage{{PublishingID: 1, Message: []byte("x")}}})
	pe := r.expect(&streamproto.PublishError{}).(*streamproto.PublishError)
	if len(pe.Errors) != 1 || pe.Errors[0].Code != streamproto.CodePublisherDoesNotExist {
		t.Fatalf("publish without a publisher: %+v", pe)
	}
	if c := r.code(&streamproto.DeclarePublisher{CorrelationID: 12, PublisherID: 1, Reference: "ref", Stream: "s1"}); c != OK {
		t.Fatalf("declare publisher: %d", c)
	}
	if c := r.code(&streamproto.DeclarePublisher{CorrelationID: 13, PublisherID: 1, Stream: "s1"}); c != streamproto.CodePreconditionFailed {
		t.Fatalf("publisher id twice: %d", c)
	}
	// Version 2 with filter values; ids 1..3, then 2 again (a duplicate, confirmed and dropped).
	body := streamproto.AppendMessage(nil, &streamproto.Message{Data: [][]byte{[]byte("b")}})
	r.send(&streamproto.Publish{V: 2, PublisherID: 1, Messages: []streamproto.PublishedMessage{
		{PublishingID: 1, FilterValue: "red", Message: body}, {PublishingID: 2, Message: body}, {PublishingID: 3, FilterValue: "blue", Message: body}}})
	if pc := r.expect(&streamproto.PublishConfirm{}).(*streamproto.PublishConfirm); len(pc.PublishingIDs) != 3 {
		t.Fatalf("confirm %+v", pc)
	}
	r.send(&streamproto.Publish{PublisherID: 1, Messages: []streamproto.PublishedMessage{{PublishingID: 2, Message: body}}})
	if pc := r.expect(&streamproto.PublishConfirm{}).(*streamproto.PublishConfirm); len(pc.PublishingIDs) != 1 || pc.PublishingIDs[0] != 2 {
		t.Fatalf("confirm of a duplicate %+v", pc)
	}
	// Publish v2's filter values are the entries' x-stream-filter-value (what AMQP consumers'
	// x-stream-filter selects on).
	var filters []string
	v := srv.vhost("/")
	v.mu.RLock()
	q := v.mu.queues["s1"]
	v.mu.RUnlock()
	start, end := storage.StreamRange(q.id)
	if err := srv.store.ScanRange(start, end, func(_, v []byte) error {
		_, f, _, err := parseStreamEntry(v)
		filters = append(filters, string(f))
		return err
	}); err != nil || len(filters) != 3 || filters[0] != "red" || filters[1] != "" || filters[2] != "blue" {
		t.Fatalf("stored filter values %q, %v", filters, err)
	}
	r.send(&streamproto.QueryPublisherSequence{CorrelationID: 14, Reference: "ref", Stream: "s1"})
	if qs := r.expect(&streamproto.QueryPublisherSequenceResponse{}).(*streamproto.QueryPublisherSequenceResponse); qs.Code != OK || qs.Sequence != 3 {
		t.Fatalf("sequence %+v", qs)
	}
	r.send(&streamproto.StreamStats{CorrelationID: 15, Stream: "s1"})
	if st := r.expect(&streamproto.StreamStatsResponse{}).(*streamproto.StreamStatsResponse); st.Code != OK || len(st.Stats) != 2 || st.Stats[0].Value != 0 {
		t.Fatalf("stats %+v", st)
	}
	r.send(&streamproto.QueryOffset{CorrelationID: 16, Reference: "none", Stream: "s1"})
	if qo := r.expect(&streamproto.QueryOffsetResponse{}).(*streamproto.QueryOffsetResponse); qo.Code != streamproto.CodeNoOffset {
		t.Fatalf("query offset without one: %+v", qo)
	}
	if c := r.code(&streamproto.Subscribe{CorrelationID: 17, SubscriptionID: 1, Stream: "nope", Offset: streamproto.OffsetSpec{Type: streamproto.OffsetFirst}, Credit: 1}); c != streamproto.CodeStreamDoesNotExist {
		t.Fatalf("subscribe to a missing stream: %d", c)
	}
	r.send(&streamproto.Credit{SubscriptionID: 7, Credit: 1})
	if cr := r.expect(&streamproto.CreditResponse{}).(*streamproto.CreditResponse); cr.Code != streamproto.CodeSubscriptionIDDoesNotExist || cr.SubscriptionID != 7 {
		t.Fatalf("credit for no subscription %+v", cr)
	}
	// One chunk of three entries, with the osiris header and a CRC the clients check.
	if c := r.code(&streamproto.Subscribe{CorrelationID: 18, SubscriptionID: 1, Stream: "s1", Offset: streamproto.OffsetSpec{Type: streamproto.OffsetFirst}, Credit: 1}); c != OK {
		t.Fatalf("subscribe: %d", c)
	}
	d := r.expect(&streamproto.Deliver{}).(*streamproto.Deliver)
	entries, err := streamproto.SplitEntries(d.Data, 100)
	if err != nil || d.Chunk.MagicVersion != 0x50 || d.Chunk.ChunkFirstOffset != 0 || int(d.Chunk.NumEntries) != len(entries) ||
		d.Chunk.DataLength != uint32(len(d.Data)) || d.Chunk.ChunkCRC != crcIEEE(d.Data) {
		t.Fatalf("chunk %+v (%d entries, %v)", d.Chunk, len(entries), err)
	}
	if m, err := streamproto.DecodeMessage(entries[0]); err != nil || string(m.Body()) != "b" {
		t.Fatalf("entry 0: %+v %v", m, err)
	}
	if c := r.code(&streamproto.Subscribe{CorrelationID: 19, SubscriptionID: 1, Stream: "s1", Offset: streamproto.OffsetSpec{Type: streamproto.OffsetFirst}, Credit: 1}); c != streamproto.CodeSubscriptionIDAlreadyExists {
		t.Fatalf("subscription id twice: %d", c)
	}
	if c := r.code(&streamproto.Unsubscribe{CorrelationID: 20, SubscriptionID: 1}); c != OK {
		t.Fatalf("unsubscribe: %d", c)
	}
	if c := r.code(&streamproto.Unsubscribe{CorrelationID: 21, SubscriptionID: 1}); c != streamproto.CodeSubscriptionIDDoesNotExist {
		t.Fatalf("unsubscribe twice: %d", c)
	}
	if c := r.code(&streamproto.Delete{CorrelationID: 22, Stream: "s1"}); c != OK {
		t.Fatalf("delete: %d", c)
	}
	if c := r.code(&streamproto.Close{CorrelationID: 23, Code: OK, Reason: "bye"}); c != OK {
		t.Fatalf("close: %d", c)
	}
}

func crcIEEE(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// The handshake's refusals: a wrong password (8, then the connection ends), an unknown vhost
// (12), a command before open and a frame over frame_max (the connection closes with 13, 14).
func TestStreamFrontRefusals(t *testing.T) {
	_, addr := startStreamFront(t)
	r := dialRawStream(t, addr)
	r.send(&streamproto.SaslAuthenticate{CorrelationID: 1, Mechanism: "PLAIN", Data: []byte("\x00guest\x00nope")})
	if c := r.expect(&streamproto.SaslAuthenticateResponse{}).(*streamproto.SaslAuthenticateResponse); c.Code != streamproto.CodeAuthenticationFailure {
		t.Fatalf("bad password: %d", c.Code)
	}
	if _, err := r.next(); err == nil {
		t.Fatal("connection open after a failed login")
	}

	r = dialRawStream(t, addr)
	r.send(&streamproto.SaslAuthenticate{CorrelationID: 1, Mechanism: "PLAIN", Data: []byte("\x00guest\x00guest")})
	r.expect(&streamproto.SaslAuthenticateResponse{})
	r.expect(&streamproto.Tune{})
	r.send(&streamproto.Open{CorrelationID: 2, VirtualHost: "nope"})
	if c := r.expect(&streamproto.OpenResponse{}).(*streamproto.OpenResponse); c.Code != streamproto.CodeVirtualHostAccessFailure {
		t.Fatalf("unknown vhost: %d", c.Code)
	}

	r = dialRawStream(t, addr)
	r.send(&streamproto.Create{CorrelationID: 1, Stream: "early"})
	if c := r.closedWith(); c != streamproto.CodeUnknownFrame {
		t.Fatalf("create before open closed with %d", c)
	}

	r = dialRawStream(t, addr)
	r.open()
	big := make([]byte, 8)
	binary.BigEndian.PutUint32(big, streamFrameMax+100)
	r.nc.Write(big)
	if c := r.closedWith(); c != streamproto.CodeFrameTooLarge {
		t.Fatalf("frame over frame_max closed with %d", c)
	}
}

// FuzzStreamConn feeds raw bytes to a stream connection (after a valid handshake when the first
// octet is odd): no panic, the connection ends once the client goes away, and the server still
// serves the next connection.
func FuzzStreamConn(f *testing.F) {
	var hs []byte
	for _, c := range []streamproto.Command{
		&streamproto.PeerProperties{CorrelationID: 1}, &streamproto.SaslHandshake{CorrelationID: 2},
		&streamproto.SaslAuthenticate{CorrelationID: 3, Mechanism: "PLAIN", Data: []byte("\x00guest\x00guest")},
		&streamproto.Tune{FrameMax: 65536, Response: true}, &streamproto.Open{CorrelationID: 4, VirtualHost: "/"},
	} {
		hs, _ = streamproto.Append(hs, c)
	}
	body := streamproto.AppendMessage(nil, &streamproto.Message{Data: [][]byte{[]byte("b")}, AppProperties: []streamproto.AppProperty{{Key: "k", Value: "v"}}})
	var session []byte
	for _, c := range []streamproto.Command{
		&streamproto.Create{CorrelationID: 5, Stream: "fz"},
		&streamproto.DeclarePublisher{CorrelationID: 6, PublisherID: 1, Reference: "r", Stream: "fz"},
		&streamproto.Publish{V: 2, PublisherID: 1, Messages: []streamproto.PublishedMessage{{PublishingID: 1, FilterValue: "f", Message: body}}},
		&streamproto.Subscribe{CorrelationID: 7, SubscriptionID: 1, Stream: "fz", Offset: streamproto.OffsetSpec{Type: streamproto.OffsetOffset, Value: 0}, Credit: 2},
		&streamproto.Credit{SubscriptionID: 1, Credit: 1}, &streamproto.StoreOffset{Reference: "c", Stream: "fz", Offset: 1},
		&streamproto.QueryOffset{CorrelationID: 8, Reference: "c", Stream: "fz"},
		&streamproto.MetadataQuery{CorrelationID: 9, Streams: []string{"fz"}},
		&streamproto.Unsubscribe{CorrelationID: 10, SubscriptionID: 1}, &streamproto.Delete{CorrelationID: 11, Stream: "fz"},
	} {
		session, _ = streamproto.Append(session, c)
	}
	f.Add(append([]byte{0}, hs...))
	f.Add(append([]byte{1}, session...))
	f.Add([]byte{1, 0, 0, 0, 4, 0, 99, 0, 1})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	_, addr := startStreamFront(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		in := data[1:]
		if data[0]&1 == 1 {
			in = append(append([]byte(nil), hs...), in...)
		}
		client, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		fuzzFeed(t, client, in)
	})
}

// Many 1 KiB messages come back in order, in chunks whose CRC and offsets are right.
func TestStreamFrontChunks(t *testing.T) {
	_, addr := startStreamFront(t)
	r := dialRawStream(t, addr)
	r.open()
	if c := r.code(&streamproto.Create{CorrelationID: 5, Stream: "big"}); c != streamproto.CodeOK {
		t.Fatal(c)
	}
	if c := r.code(&streamproto.DeclarePublisher{CorrelationID: 6, PublisherID: 0, Stream: "big"}); c != streamproto.CodeOK {
		t.Fatal(c)
	}
	const total = 5000
	for i := 0; i < total; i += 100 {
		p := &streamproto.Publish{PublisherID: 0}
		for j := i; j < i+100; j++ {
			body := make([]byte, 1024)
			binary.BigEndian.PutUint32(body, uint32(j))
			p.Messages = append(p.Messages, streamproto.PublishedMessage{PublishingID: uint64(j), Message: streamproto.AppendMessage(nil, &streamproto.Message{Data: [][]byte{body}})})
		}
		r.send(p)
	}
	for n := 0; n < total; {
		n += len(r.expect(&streamproto.PublishConfirm{}).(*streamproto.PublishConfirm).PublishingIDs)
	}
	if c := r.code(&streamproto.Subscribe{CorrelationID: 7, SubscriptionID: 3, Stream: "big", Offset: streamproto.OffsetSpec{Type: streamproto.OffsetFirst}, Credit: 2}); c != streamproto.CodeOK {
		t.Fatal(c)
	}
	next, chunks := 0, 0
	for next < total {
		d := r.expect(&streamproto.Deliver{}).(*streamproto.Deliver)
		chunks++
		if d.Chunk.ChunkCRC != crcIEEE(d.Data) || d.Chunk.ChunkFirstOffset != uint64(next) {
			t.Fatalf("chunk %d at %d: crc %x, computed %x, first offset %d", chunks, next, d.Chunk.ChunkCRC, crcIEEE(d.Data), d.Chunk.ChunkFirstOffset)
		}
		es, err := streamproto.SplitEntries(d.Data, 1<<16)
		if err != nil || len(es) != int(d.Chunk.NumEntries) {
			t.Fatalf("entries: %d of %d, %v", len(es), d.Chunk.NumEntries, err)
		}
		for _, e := range es {
			m, err := streamproto.DecodeMessage(e)
			if err != nil || binary.BigEndian.Uint32(m.Body()) != uint32(next) {
				t.Fatalf("entry %d: %v", next, err)
			}
			next++
		}
		r.send(&streamproto.Credit{SubscriptionID: 3, Credit: 1})
	}
	if chunks > total/20 {
		t.Errorf("%d messages came in %d chunks", total, chunks)
	}
}
