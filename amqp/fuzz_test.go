package amqp

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// seedFrames returns real encoded frames: a handshake, a declare with
// arguments, a publish with content, a delivery and a close.
func seedFrames(t testing.TB) [][]byte {
	t.Helper()
	var frames [][]byte
	for _, m := range []Method{
		&ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: Table{"product": "Warren", "capabilities": Table{"publisher_confirms": true}}, Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"},
		&ConnectionStartOk{ClientProperties: clientProperties(), Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"},
		&ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
		&ConnectionOpen{VirtualHost: "/"},
		&ChannelOpen{},
		&QueueDeclare{Queue: "q", Durable: true, Arguments: Table{"x-message-ttl": int32(60000), "x-queue-type": "classic", "x-dead-letter-exchange": "dlx"}},
		&ExchangeBind{Destination: "d", Source: "s", RoutingKey: "a.*.#", Arguments: Table{"x-match": "any", "when": time.Unix(1700000000, 0), "list": []any{int8(1), 2.5, Decimal{2, 314}, []byte{1}, nil}}},
		&BasicQos{PrefetchCount: 10, Global: true},
		&BasicConsume{Queue: "q", ConsumerTag: "ctag", NoAck: true, Arguments: Table{"x-priority": int16(5)}},
		&BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 42, Redelivered: true, Exchange: "ex", RoutingKey: "rk"},
		&BasicNack{DeliveryTag: 7, Multiple: true, Requeue: true},
		&ConnectionClose{ReplyCode: NotFound, ReplyText: "NOT_FOUND - no queue 'q'", FailingClassID: 50, FailingMethodID: 10},
	} {
		frames = append(frames, mustMethodFrame(t, 1, m))
	}
	frames = append(frames, publishStream(t, []byte("hello, world")))
	frames = append(frames, AppendHeartbeat(nil))
	return frames
}

// checkDecodeError fails unless err is nil, an io error or an *Error.
func checkDecodeError(t *testing.T, err error) {
	var e *Error
	if err != nil && !errors.As(err, &e) && err != io.EOF && err != io.ErrUnexpectedEOF {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	if e != nil && e.Code == 0 {
		t.Fatalf("error without code: %v", e)
	}
}

// FuzzFrameReader feeds input split in two reads (as nats-server's parser
// fuzz does) and decodes whatever frames come out.
func FuzzFrameReader(f *testing.F) {
	for i, fr := range seedFrames(f) {
		f.Add(fr, uint16(i*7))
	}
	f.Add(bytes.Join(seedFrames(f), nil), uint16(100))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		s := min(int(split), len(data))
		fr := NewFrameReader(&splitReader{chunks: [][]byte{data[:s], data[s:]}})
		if len(data) > 0 && data[0]&1 == 1 {
			fr.SetFrameMax(1 << 16) // a larger negotiated max (0 would make each exec allocate up to 1 MiB)
		}
		for {
			f, err := fr.ReadFrame()
			checkDecodeError(t, err)
			if err != nil {
				var e *Error
				if errors.As(err, &e) && e.Code != FrameError {
					t.Fatalf("ReadFrame error code %d", e.Code)
				}
				return
			}
			switch f.Type {
			case FrameMethod:
				_, err := DecodeMethod(f.Payload)
				checkDecodeError(t, err)
			case FrameHeader:
				_, _, raw, err := DecodeContentHeader(f.Payload)
				checkDecodeError(t, err)
				if err == nil {
					_, err = DecodeProperties(raw)
					checkDecodeError(t, err)
				}
			}
		}
	})
}

// FuzzDecodeMethod checks that whatever decodes re-encodes, and that the
// re-encoding decodes to an equal method and encodes to the same bytes.
func FuzzDecodeMethod(f *testing.F) {
	for _, fr := range seedFrames(f) {
		if fr[0] == FrameMethod {
			f.Add(fr[7 : len(fr)-1])
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := DecodeMethod(payload)
		checkDecodeError(t, err)
		if err != nil {
			return
		}
		enc, err := AppendMethod(nil, m)
		if err != nil {
			t.Fatalf("re-encode %s: %v", m.Name(), err)
		}
		m2, err := DecodeMethod(enc)
		if err != nil {
			t.Fatalf("re-decode %s: %v", m.Name(), err)
		}
		if !methodsEqual(m, m2) {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", m.Name(), m2, m)
		}
		enc2, err := AppendMethod(nil, m2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%s: encoding not stable: %x vs %x (%v)", m.Name(), enc, enc2, err)
		}
	})
}

func FuzzDecodeTable(f *testing.F) {
	for _, tbl := range []Table{everyType(), clientProperties(), {"deep": Table{"a": []any{Table{"b": []any{}}}}}, nil} {
		b, err := AppendTable(nil, tbl)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tbl, rest, err := DecodeTable(data)
		checkDecodeError(t, err)
		if err != nil {
			return
		}
		if len(rest) > len(data)-4 {
			t.Fatalf("rest %d of %d bytes", len(rest), len(data))
		}
		enc, err := AppendTable(nil, tbl)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		tbl2, rest2, err := DecodeTable(enc)
		if err != nil || len(rest2) != 0 {
			t.Fatalf("re-decode: %v, rest %d", err, len(rest2))
		}
		if !tbl.Equal(tbl2) {
			t.Fatalf("round trip\n got %#v\nwant %#v", tbl2, tbl)
		}
		enc2, _ := AppendTable(nil, tbl2)
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
	})
}

func FuzzDecodeProperties(f *testing.F) {
	for _, p := range []Properties{allProperties(), {}, {DeliveryMode: 2}, {Headers: Table{}}, {ContentType: "text/plain", Headers: clientProperties()}} {
		raw, err := p.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodeProperties(raw)
		checkDecodeError(t, err)
		mode, merr := RawDeliveryMode(raw)
		checkDecodeError(t, merr)
		hdrs, herr := RawHeaders(raw)
		checkDecodeError(t, herr)
		if err != nil {
			return
		}
		if merr != nil || mode != p.DeliveryMode {
			t.Fatalf("RawDeliveryMode = %d, %v; DecodeProperties says %d", mode, merr, p.DeliveryMode)
		}
		if herr != nil || !hdrs.Equal(p.Headers) {
			t.Fatalf("RawHeaders = %v, %v; DecodeProperties says %v", hdrs, herr, p.Headers)
		}
		enc, err := p.Append(nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		p2, err := DecodeProperties(enc)
		if err != nil || !propsEqual(p, p2) {
			t.Fatalf("round trip\n got %+v (%v)\nwant %+v", p2, err, p)
		}
		enc2, _ := p2.Append(nil)
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
	})
}
