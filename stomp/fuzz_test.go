package stomp

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

var seedInputs = []string{
	"CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:0,10000\n\n\x00",
	"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\x00\n",
	"SEND\r\ndestination:/exchange/amq.topic/a.b\r\ncontent-length:3\r\n\r\na\x00b\x00\r\n",
	"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client-individual\nprefetch-count:10\n\n\x00",
	"SEND\na\\cb:c\\\\d\\ne\\rf\nfoo:1\nfoo:2\n\n\x00",
	"\n\n\r\nACK\nid:1\n\n\x00NACK\nid:2\n\n\x00DISCONNECT\nreceipt:9\n\n\x00",
	"MESSAGE\nsubscription:0\nmessage-id:T_0@@session\ndestination:/queue/a\n\nx\x00",
	"SEND\nbad:\\t\n\n\x00",
}

// decodeAll decodes frames from buf until it needs more or fails,
// returning a description of each frame and the bytes consumed.
func decodeAll(t *testing.T, d *Decoder, v Version, buf []byte, out *[]string) (int, error) {
	used := 0
	for {
		f, n, err := d.Decode(v, buf[used:])
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with %d bytes consumed", err, n)
			}
			var e *Error
			if err != ErrNeedMore && (!errors.As(err, &e) || e.Kind == 0 || e.Detail == "") {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			return used, err
		}
		if n <= 0 || n > len(buf)-used {
			t.Fatalf("consumed %d of %d", n, len(buf)-used)
		}
		used += n
		*out = append(*out, fmt.Sprintf("%v %s %s %q", f.Heartbeat, f.Command, hdr(f), f.Body))
		if f.Heartbeat {
			continue
		}
		checkReencode(t, d.FromServer, v, f)
	}
}

// checkReencode: whatever decodes and can be encoded decodes back equal.
func checkReencode(t *testing.T, fromServer bool, v Version, f Frame) {
	b, err := Append(nil, f, v)
	if err != nil {
		if !errors.Is(err, ErrEncode) {
			t.Fatalf("Append: %v", err)
		}
		return
	}
	d2 := Decoder{FromServer: fromServer, Limits: Limits{MaxHeaders: 1 << 20, MaxHeaderLine: 1 << 30, MaxBody: 1 << 30}}
	g, n, err := d2.Decode(v, b)
	if err != nil || n != len(b) {
		t.Fatalf("re-decoding %q: %d %v", b, n, err)
	}
	if g.Command != f.Command || !bytes.Equal(g.Body, f.Body) {
		t.Fatalf("round trip %q: %s %q vs %s %q", b, g.Command, g.Body, f.Command, f.Body)
	}
	// The re-encoding may add content-length; the original headers come first.
	if len(g.Headers) < len(f.Headers) {
		t.Fatalf("round trip lost headers: %s vs %s", hdr(g), hdr(f))
	}
	for i := range f.Headers {
		if !bytes.Equal(g.Headers[i].Name, f.Headers[i].Name) || !bytes.Equal(g.Headers[i].Value, f.Headers[i].Value) {
			t.Fatalf("round trip header %d: %s vs %s", i, hdr(g), hdr(f))
		}
	}
}

// FuzzDecode feeds the input in two pieces, as a front end reading a socket
// would (nats-server's parser fuzz shape), and checks the frames are those
// of the input decoded whole.
func FuzzDecode(f *testing.F) {
	for i, s := range seedInputs {
		f.Add([]byte(s), uint16(i*5), uint8(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16, mode uint8) {
		v := Version(mode%3) + V10
		newDecoder := func() *Decoder {
			d := &Decoder{FromServer: mode&4 != 0}
			if mode&8 != 0 {
				d.Limits = Limits{MaxHeaders: 3, MaxHeaderLine: 16, MaxBody: 8}
			}
			return d
		}
		var whole []string
		wholeUsed, wholeErr := decodeAll(t, newDecoder(), v, data, &whole)

		s := min(int(split), len(data))
		var parts []string
		d := newDecoder()
		buf := append([]byte(nil), data[:s]...)
		used, err := decodeAll(t, d, v, buf, &parts)
		if err == nil || err == ErrNeedMore {
			buf = append(buf[used:], data[s:]...)
			var more int
			more, err = decodeAll(t, d, v, buf, &parts)
			used += more
		}
		if used != wholeUsed || fmt.Sprint(parts) != fmt.Sprint(whole) {
			t.Fatalf("split at %d: %d bytes %v\nwhole: %d bytes %v", s, used, parts, wholeUsed, whole)
		}
		if (err == ErrNeedMore) != (wholeErr == ErrNeedMore) {
			t.Fatalf("split at %d ended with %v, whole with %v", s, err, wholeErr)
		}

		// And in small reads of 1 to 8 bytes, the decoder resuming its
		// partial frame after each one.
		step := int(split%8) + 1
		var small []string
		d = newDecoder()
		buf = buf[:0]
		used, err = 0, ErrNeedMore
		for off := 0; off < len(data) && (err == nil || err == ErrNeedMore); off += step {
			buf = append(buf, data[off:min(len(data), off+step)]...)
			var n int
			n, err = decodeAll(t, d, v, buf, &small)
			used += n
			buf = buf[n:]
		}
		if used != wholeUsed || fmt.Sprint(small) != fmt.Sprint(whole) {
			t.Fatalf("reads of %d: %d bytes %v\nwhole: %d bytes %v", step, used, small, wholeUsed, whole)
		}
		if (err == ErrNeedMore) != (wholeErr == ErrNeedMore) && len(data) > 0 {
			t.Fatalf("reads of %d ended with %v, whole with %v", step, err, wholeErr)
		}
	})
}
