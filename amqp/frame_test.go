package amqp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestFrameReaderStream(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes: three body frames at 4096
	stream := publishStream(t, body)
	stream = AppendHeartbeat(stream)
	fr := NewFrameReader(bytes.NewReader(stream))

	f, err := fr.ReadFrame()
	if err != nil || f.Type != FrameMethod || f.Channel != 1 {
		t.Fatalf("method frame: %+v, %v", f, err)
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.(*BasicPublish); p.Exchange != "orders" || p.RoutingKey != "orders.created" || !p.Mandatory {
		t.Fatalf("publish %+v", p)
	}

	f, err = fr.ReadFrame()
	if err != nil || f.Type != FrameHeader {
		t.Fatalf("header frame: %+v, %v", f, err)
	}
	class, size, raw, err := DecodeContentHeader(f.Payload)
	if err != nil || class != ClassBasic || size != uint64(len(body)) {
		t.Fatalf("content header %d %d %v", class, size, err)
	}
	props, err := DecodeProperties(raw)
	if err != nil || props.ContentType != "application/json" || props.DeliveryMode != 2 {
		t.Fatalf("props %+v, %v", props, err)
	}

	var got []byte
	var sizes []int
	for len(got) < len(body) {
		f, err = fr.ReadFrame()
		if err != nil || f.Type != FrameBody || f.Channel != 1 {
			t.Fatalf("body frame: %+v, %v", f, err)
		}
		if len(f.Payload)+8 > FrameMinSize {
			t.Fatalf("body frame of %d bytes exceeds frame max", len(f.Payload)+8)
		}
		sizes = append(sizes, len(f.Payload))
		got = append(got, f.Payload...)
	}
	if !bytes.Equal(got, body) || len(sizes) != 3 || sizes[0] != FrameMinSize-8 {
		t.Fatalf("body frames %v", sizes)
	}
	f, err = fr.ReadFrame()
	if err != nil || f.Type != FrameHeartbeat || f.Channel != 0 || len(f.Payload) != 0 {
		t.Fatalf("heartbeat %+v, %v", f, err)
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

// countingReader serves a frame header claiming size bytes, then an
// endless stream of zeros, counting what was read.
type countingReader struct {
	header []byte
	n      int
}

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		if r.n < len(r.header) {
			p[i] = r.header[r.n]
		} else {
			p[i] = 0
		}
		r.n++
	}
	return len(p), nil
}

func TestFrameReaderOversizeRejectedBeforeAllocation(t *testing.T) {
	for _, tc := range []struct {
		frameMax uint32
		size     uint32
	}{
		{0, 0xFFFFFFF0}, // "no limit" still stops at 1<<31
		{0, 1<<31 - 7},  // exactly one byte over 1<<31
		{FrameMinSize, FrameMinSize - 7},
		{131072, 131072},
	} {
		cr := &countingReader{header: []byte{FrameBody, 0, 1, byte(tc.size >> 24), byte(tc.size >> 16), byte(tc.size >> 8), byte(tc.size)}}
		fr := NewFrameReader(cr)
		if tc.frameMax != FrameMinSize {
			fr.SetFrameMax(tc.frameMax)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := fr.ReadFrame()
		runtime.ReadMemStats(&after)
		e := asError(t, err, FrameError)
		if want := fmt.Sprintf("FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,%d,%d}", tc.size, max(tc.frameMax, FrameMinSize)-8); tc.frameMax != 0 && e.Text != want {
			t.Errorf("text %q, want %q", e.Text, want)
		}
		if cr.n != 7 {
			t.Errorf("size %d: read %d bytes before rejecting, want 7", tc.size, cr.n)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
			t.Errorf("size %d: allocated %d bytes before rejecting", tc.size, d)
		}
		t.Log(e)
	}
	// At the limit is fine.
	ok := AppendFrame(nil, FrameBody, 1, make([]byte, FrameMinSize-8))
	if _, err := NewFrameReader(bytes.NewReader(ok)).ReadFrame(); err != nil {
		t.Fatalf("frame of exactly frame max: %v", err)
	}
}

func TestFrameReaderAllocsPerRun(t *testing.T) {
	stream := publishStream(t, make([]byte, 3000))
	r := bytes.NewReader(stream)
	fr := NewFrameReader(r)
	fr.SetFrameMax(131072)
	read := func() {
		r.Reset(stream)
		for i := 0; i < 3; i++ {
			if _, err := fr.ReadFrame(); err != nil {
				t.Fatal(err)
			}
		}
	}
	read() // first read sizes the buffer
	if n := testing.AllocsPerRun(100, read); n != 0 {
		t.Fatalf("ReadFrame allocates %v times per 3 frames after warm-up", n)
	}
	// A huge claimed frame that never arrives allocates only what arrived.
	cr := &limitedZeros{header: []byte{FrameBody, 0, 1, 0x7F, 0xFF, 0xFF, 0xF0}, left: 1000}
	fr = NewFrameReader(cr)
	fr.SetFrameMax(0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := fr.ReadFrame()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
		t.Fatalf("a 2 GiB claim with 1000 bytes behind it allocated %d bytes", d)
	}
}

// limitedZeros serves header, then left zero bytes, then io.EOF.
type limitedZeros struct {
	header []byte
	left   int
}

func (r *limitedZeros) Read(p []byte) (int, error) {
	if len(r.header) > 0 {
		n := copy(p, r.header)
		r.header = r.header[n:]
		return n, nil
	}
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	clear(p[:n])
	r.left -= n
	return n, nil
}

func TestFrameReaderLargeFrameGrowsIncrementally(t *testing.T) {
	payload := bytes.Repeat([]byte{0xAB}, 3<<20+17)
	stream := AppendFrame(nil, FrameBody, 2, payload)
	stream = AppendFrame(stream, FrameBody, 2, []byte("small"))
	fr := NewFrameReader(&splitReader{chunks: [][]byte{stream[:1<<20], stream[1<<20:]}})
	fr.SetFrameMax(0)
	f, err := fr.ReadFrame()
	if err != nil || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("large frame: %d bytes, %v", len(f.Payload), err)
	}
	f, err = fr.ReadFrame()
	if err != nil || string(f.Payload) != "small" {
		t.Fatalf("next frame: %q, %v", f.Payload, err)
	}
}

func TestFrameReaderErrors(t *testing.T) {
	good := AppendFrame(nil, FrameMethod, 3, []byte{0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	badEnd := bytes.Clone(good)
	badEnd[len(badEnd)-1] = 0xCD
	oob := AppendFrame(nil, 4, 0, []byte("oob"))
	for _, tc := range []struct {
		name string
		in   []byte
		want error // io error, or nil to expect a FrameError
	}{
		{"clean EOF", nil, io.EOF},
		{"partial header", good[:3], io.ErrUnexpectedEOF},
		{"header only", good[:7], io.ErrUnexpectedEOF},
		{"partial payload", good[:10], io.ErrUnexpectedEOF},
		{"missing end byte", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"bad end byte", badEnd, nil},
		{"type 4", oob, nil},
		{"type 0", AppendFrame(nil, 0, 0, nil), nil},
		{"type 255", AppendFrame(nil, 255, 0, nil), nil},
		{"heartbeat with payload", AppendFrame(nil, FrameHeartbeat, 0, []byte("boo")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			_, err := NewFrameReader(r).ReadFrame()
			if tc.want != nil {
				if err != tc.want {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				return
			}
			asError(t, err, FrameError)
			if r.Len() != 0 {
				t.Errorf("%d bytes left unread: the whole frame must be read first", r.Len())
			}
		})
	}
	// RabbitMQ's texts (integration/wire_conformance_test.go).
	for in, want := range map[string]string{
		string(AppendFrame(nil, 9, 0, []byte("xyz"))):              "FRAME_ERROR - type 9, all octets = <<\"xyz\">>: unknown_frame",
		string(AppendFrame(nil, 0, 0, nil)):                        "FRAME_ERROR - type 0, all octets = <<>>: unknown_frame",
		string(AppendFrame(nil, FrameHeartbeat, 0, []byte("boo"))): "FRAME_ERROR - type 8, all octets = <<\"boo\">>: unknown_frame",
		string(badEnd[:len(badEnd)-1]) + "\x00":                    "FRAME_ERROR - type 1, all octets = <<0,60,0,80,0,0,0,0,0,0,0,1,0>>: {invalid_frame_end_marker,0}",
	} {
		_, err := NewFrameReader(strings.NewReader(in)).ReadFrame()
		if e := asError(t, err, FrameError); e.Text != want {
			t.Errorf("text %q\n want %q", e.Text, want)
		}
	}
	// A read error other than EOF is returned as is.
	boom := errors.New("boom")
	if _, err := NewFrameReader(&errReader{err: boom}).ReadFrame(); err != boom {
		t.Fatalf("err = %v", err)
	}
	// After a bad frame the reader can continue with the next one.
	fr := NewFrameReader(bytes.NewReader(append(bytes.Clone(oob), good...)))
	if _, err := fr.ReadFrame(); err == nil {
		t.Fatal("oob frame accepted")
	}
	if f, err := fr.ReadFrame(); err != nil || f.Channel != 3 {
		t.Fatalf("next frame %+v, %v", f, err)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestFrameReaderSplitEverywhere(t *testing.T) {
	stream := publishStream(t, []byte("hello"))
	want := 0
	for fr := NewFrameReader(bytes.NewReader(stream)); ; want++ {
		if _, err := fr.ReadFrame(); err != nil {
			break
		}
	}
	for split := 0; split <= len(stream); split++ {
		fr := NewFrameReader(&splitReader{chunks: [][]byte{stream[:split], stream[split:]}})
		n := 0
		for ; ; n++ {
			if _, err := fr.ReadFrame(); err != nil {
				if err != io.EOF {
					t.Fatalf("split %d: %v", split, err)
				}
				break
			}
		}
		if n != want {
			t.Fatalf("split %d: %d frames, want %d", split, n, want)
		}
	}
}

func TestAppendFrames(t *testing.T) {
	if got := AppendHeartbeat(nil); !bytes.Equal(got, []byte{8, 0, 0, 0, 0, 0, 0, 0xCE}) {
		t.Fatalf("heartbeat %x", got)
	}
	if got := AppendBodyFrames([]byte("x"), 1, nil, FrameMinSize); string(got) != "x" {
		t.Fatalf("empty body produced %x", got)
	}
	body := make([]byte, 10000)
	one := AppendBodyFrames(nil, 1, body, 0)
	if len(one) != len(body)+8 {
		t.Fatalf("frameMax 0 produced %d bytes", len(one))
	}
	split := AppendBodyFrames(nil, 1, body, 1000)
	if want := 11*8 + len(body); len(split) != want { // 10 frames of 992 + one of 80
		t.Fatalf("split into %d bytes, want %d", len(split), want)
	}
	tiny := AppendBodyFrames(nil, 1, body[:5000], 8) // nonsense max falls back to FrameMinSize
	if len(tiny) != 5000+2*8 {
		t.Fatalf("tiny frame max: %d bytes", len(tiny))
	}
	hdr := AppendContentHeaderFrame(nil, 5, ClassBasic, 1<<40, []byte{0x80, 0, 1, 'x'})
	fr := NewFrameReader(bytes.NewReader(hdr))
	f, err := fr.ReadFrame()
	if err != nil || f.Type != FrameHeader || f.Channel != 5 {
		t.Fatalf("header frame %+v, %v", f, err)
	}
	class, size, raw, err := DecodeContentHeader(f.Payload)
	if err != nil || class != ClassBasic || size != 1<<40 || !bytes.Equal(raw, []byte{0x80, 0, 1, 'x'}) {
		t.Fatalf("DecodeContentHeader = %d %d %x %v", class, size, raw, err)
	}
	_, _, _, err = DecodeContentHeader(f.Payload[:13])
	asError(t, err, FrameError)
}

func TestAppendAllocationFree(t *testing.T) {
	dst := make([]byte, 0, 1<<16)
	deliver := &BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 1, Exchange: "ex", RoutingKey: "rk"}
	raw := []byte{0x90, 0, 16, 'a', 'p', 'p', 'l', 'i', 'c', 'a', 't', 'i', 'o', 'n', '/', 'j', 's', 'o', 'n', 2}
	body := make([]byte, 5000)
	n := testing.AllocsPerRun(100, func() {
		out, err := AppendMethodFrame(dst[:0], 1, deliver)
		if err != nil {
			t.Fatal(err)
		}
		out = AppendContentHeaderFrame(out, 1, ClassBasic, uint64(len(body)), raw)
		out = AppendBodyFrames(out, 1, body, FrameMinSize)
		_ = AppendHeartbeat(out)
	})
	if n != 0 {
		t.Fatalf("appending a delivery allocates %v times", n)
	}
}

func TestErrors(t *testing.T) {
	e := Errorf(NotFound, "no exchange '%s' in vhost '%s'", "x", "/")
	if e.Text != "NOT_FOUND - no exchange 'x' in vhost '/'" || e.Hard() {
		t.Fatalf("%q hard=%t", e.Text, e.Hard())
	}
	for code, name := range map[uint16]string{
		ReplySuccess: "REPLY_SUCCESS", PreconditionFailed: "PRECONDITION_FAILED", FrameError: "FRAME_ERROR",
		NotImplemented: "NOT_IMPLEMENTED", 999: "CODE_999",
	} {
		if got := CodeName(code); got != name {
			t.Errorf("CodeName(%d) = %q, want %q", code, got, name)
		}
	}
	hard := map[uint16]bool{320: true, 402: true, 501: true, 502: true, 503: true, 504: true, 505: true, 506: true, 530: true, 540: true, 541: true}
	for code := uint16(0); code < 1000; code++ {
		if got := (&Error{Code: code}).Hard(); got != hard[code] {
			t.Errorf("Hard(%d) = %t", code, got)
		}
	}
	if (*Error)(nil).Hard() || (*Error)(nil).Error() != "<nil>" {
		t.Error("nil *Error")
	}
	e.ClassID, e.MethodID = 40, 10
	if got := e.Error(); got != "amqp: 404 NOT_FOUND - no exchange 'x' in vhost '/' (class 40, method 10)" {
		t.Errorf("Error() = %q", got)
	}
	var err error = e
	var target *Error
	if !errors.As(err, &target) || target.Code != NotFound {
		t.Error("errors.As")
	}
	// Codes are usable where uint16 is expected.
	var _ uint16 = ContentTooLarge
	var _ uint8 = FrameMethod
	if ProtocolHeader != [8]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1} {
		t.Error("protocol header")
	}
}
