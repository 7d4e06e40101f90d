package mqtt

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode splits its input in two (as nats-server's parser fuzz and amqp's fuzz tests do):
// the first part alone must decode to the same packet as the whole or ask for more. Whatever
// decodes must re-encode, and the re-encoding must decode and re-encode to the same bytes.
func FuzzDecode(f *testing.F) {
	for i, v := range []Version{V31, V311, V5} {
		var all []byte
		for j, p := range samples(v) {
			b, err := Append(nil, p, v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(append([]byte{byte(i)}, b...), uint16(j))
			all = append(all, b...)
		}
		f.Add(append([]byte{byte(i)}, all...), uint16(100))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		if len(data) == 0 {
			return
		}
		v := []Version{V31, V311, V5}[int(data[0])%3]
		data = data[1:]
		d := &Decoder{Version: v, MaxPacketSize: 1 << 16}
		s := min(int(split), len(data))
		partial, pn, perr := d.Decode(data[:s])
		checkErr(t, perr)
		if pn > s {
			t.Fatalf("consumed %d of %d", pn, s)
		}
		var partialEnc []byte
		if perr == nil {
			var err error
			if partialEnc, err = Append(nil, partial, v); err != nil {
				t.Fatalf("decoded %#v does not re-encode: %v", partial, err)
			}
		}
		for len(data) > 0 {
			p, n, err := d.Decode(data)
			checkErr(t, err)
			if n > len(data) {
				t.Fatalf("consumed %d of %d", n, len(data))
			}
			if partialEnc != nil {
				// The first packet decoded from a prefix is the same as from the whole input.
				if err != nil {
					t.Fatalf("prefix decoded, whole failed: %v", err)
				}
				enc, _ := Append(nil, p, v)
				if !bytes.Equal(enc, partialEnc) {
					t.Fatalf("prefix and whole decode differently")
				}
				partialEnc = nil
			} else if perr == ErrNeedMore && err == nil && n <= s && s < len(data) {
				t.Fatalf("prefix of %d bytes needed more, whole packet is %d bytes", s, n)
			}
			perr = nil
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Close {
					return
				}
			}
			enc, err := Append(nil, p, v)
			if err != nil {
				if e := (*Error)(nil); errors.As(err, &e) {
					t.Fatal(err)
				}
				// Only a packet returned with a non-closing error (an invalid MQTT 5 topic filter) may
				// fail to re-encode.
				if _, _, derr := d.Decode(data); derr == nil {
					t.Fatalf("decoded %#v does not re-encode: %v", p, err)
				}
				data = data[n:]
				continue
			}
			p2, n2, err := Decode(v, enc)
			if err != nil || n2 != len(enc) {
				t.Fatalf("re-encoding of %#v: % X does not decode: %v", p, enc, err)
			}
			enc2, err := Append(nil, p2, v)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Fatalf("re-encoding not stable: % X then % X (%v)", enc, enc2, err)
			}
			data = data[n:]
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil || err == ErrNeedMore {
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T: %v", err, err)
	}
	if e.Code < 0x80 {
		t.Fatalf("error with a success code: %v", e)
	}
}
