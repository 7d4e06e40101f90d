package streamproto

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzFrames feeds the input in two pieces, as a front end reading a
// socket would, and checks that every frame that decodes re-encodes to a
// frame that decodes equal, and that errors are *Error with a code.
func FuzzFrames(f *testing.F) {
	var all []byte
	for i, c := range append(samples(), superSamples()...) {
		b, err := Append(nil, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(i), uint32(0))
		all = append(all, b...)
	}
	f.Add(all, uint16(100), uint32(64))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, frameMax uint32) {
		s := min(int(split), len(data))
		buf := append([]byte(nil), data[:s]...)
		consumed := 0
		pieces := [][]byte{data[s:], nil}
		for {
			fr, n, err := ReadFrame(buf, frameMax)
			if err == ErrNeedMore {
				if n != 0 {
					t.Fatalf("need more with %d consumed", n)
				}
				if pieces[0] == nil {
					break
				}
				buf = append(buf, pieces[0]...)
				pieces = pieces[1:]
				continue
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || (e.Code != CodeFrameTooLarge && e.Code != CodeUnknownFrame) {
					t.Fatalf("ReadFrame: %v", err)
				}
				break
			}
			if n < 8 || n > len(buf) {
				t.Fatalf("consumed %d of %d", n, len(buf))
			}
			consumed += n
			c, err := Decode(fr)
			buf = buf[n:]
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeUnknownFrame || e.Detail == "" {
					t.Fatalf("Decode: %v", err)
				}
				continue
			}
			b, err := Append(nil, c)
			if err != nil {
				t.Fatalf("%T decoded but does not encode: %v", c, err)
			}
			fr2, n2, err := ReadFrame(b, 0xffffffff)
			if err != nil || n2 != len(b) {
				t.Fatalf("%T re-read: %d %v", c, n2, err)
			}
			c2, err := Decode(fr2)
			if err != nil || !reflect.DeepEqual(c, c2) {
				t.Fatalf("%T re-decode: %v\n%+v\n%+v", c, err, c, c2)
			}
		}
		if consumed > len(data) {
			t.Fatalf("consumed %d of %d", consumed, len(data))
		}
	})
}

// FuzzMessage decodes arbitrary bytes as an AMQP 1.0 message; what decodes
// re-encodes to a message that decodes to the same fields.
func FuzzMessage(f *testing.F) {
	f.Add(AppendMessage(nil, &Message{HasHeader: true, Durable: true, MessageID: "id", ContentType: "text/plain",
		AppProperties: []AppProperty{{"k", "v"}, {"n", int64(3)}}, Data: [][]byte{[]byte("body")}}))
	f.Add([]byte{0x00, 0x53, 0x75, 0xa0, 0x01, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			return
		}
		b := AppendMessage(nil, m)
		m2, err := DecodeMessage(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if string(m.Body()) != string(m2.Body()) || m.ContentType != m2.ContentType || len(m.AppProperties) != len(m2.AppProperties) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m, m2)
		}
	})
}

// FuzzEntries splits arbitrary chunk data; what splits re-joins to the same bytes.
func FuzzEntries(f *testing.F) {
	f.Add(AppendSimpleEntry(AppendSimpleEntry(nil, []byte("a")), []byte("bc")))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := SplitEntries(data, 1<<16)
		if err != nil {
			return
		}
		var b []byte
		for _, e := range es {
			b = AppendSimpleEntry(b, e)
		}
		if string(b) != string(data) {
			t.Fatalf("entries re-join differently")
		}
	})
}
