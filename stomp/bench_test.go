package stomp

import (
	"bytes"
	"fmt"
	"testing"
)

var sendFrame = []byte("SEND\ndestination:/exchange/amq.topic/a.b.c\ncontent-type:text/plain\npersistent:true\nreceipt:42\ncontent-length:64\n\n" +
	"0123456789012345678901234567890123456789012345678901234567890123\x00")

// BenchmarkDecodeSend decodes a SEND frame with a content-length body; once
// the decoder's buffers are warm it allocates nothing.
func BenchmarkDecodeSend(b *testing.B) {
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(sendFrame)))
	for b.Loop() {
		f, n, err := d.Decode(V12, sendFrame)
		if err != nil || n != len(sendFrame) || f.Command != CmdSend {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkDecodeSendEscaped has escaped header values (unescaped into the
// decoder's reused scratch buffer).
func BenchmarkDecodeSendEscaped(b *testing.B) {
	in := []byte("SEND\ndestination:/queue/a\\cb\nx-note:line1\\nline2\\\\\n\nbody\x00")
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, _, err := d.Decode(V12, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendMessage encodes a MESSAGE frame into a reused buffer.
func BenchmarkAppendMessage(b *testing.B) {
	f := Frame{Command: CmdMessage, Headers: []Header{
		H("subscription", "sub-0"), H("destination", "/queue/a"), H("message-id", "T_sub-0@@session-abc@@1"),
		H("redelivered", "false"), H("content-type", "text/plain"),
	}, Body: make([]byte, 64)}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], f, V12); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func TestDecodeSendAllocs(t *testing.T) {
	var d Decoder
	d.Decode(V12, sendFrame) // warm the header slice
	if a := testing.AllocsPerRun(100, func() { d.Decode(V12, sendFrame) }); a != 0 {
		t.Fatalf("decoding a SEND frame allocates %v times", a)
	}
}

// bigFrame is a SEND with 200 headers and a body of size bytes without
// content-length, so the decoder must look for its NUL.
func bigFrame(size int) []byte {
	b := []byte("SEND\ndestination:/queue/a\n")
	for i := range 200 {
		b = fmt.Appendf(b, "x-header-%d:value-%d\n", i, i)
	}
	b = append(b, '\n')
	b = append(b, bytes.Repeat([]byte("0123456789abcdef"), size/16)...)
	return append(b, 0)
}

// decodeInReads feeds in to d in reads of step bytes, as a front end reading
// a slow socket would, and returns the frame's size.
func decodeInReads(tb testing.TB, d *Decoder, in []byte, step int, reset bool) int {
	for end := step; ; end += step {
		if reset {
			d.Reset() // what a decoder without resumable state does: rescan from the start
		}
		f, n, err := d.Decode(V12, in[:min(end, len(in))])
		if err == ErrNeedMore && end < len(in) {
			continue
		}
		if err != nil || n != len(in) || f.Command != CmdSend {
			tb.Fatalf("%d %v", n, err)
		}
		return n
	}
}

// BenchmarkDecodeInSmallReads decodes a large frame arriving in 512-byte
// reads. With the resumable decoder the cost per byte stays flat as the frame
// grows (linear); "rescan" resets the decoder before each read, as the
// decoder did before it kept its place, and grows with the frame (quadratic).
func BenchmarkDecodeInSmallReads(b *testing.B) {
	for _, size := range []int{16 << 10, 256 << 10, 1 << 20} {
		in := bigFrame(size)
		for _, mode := range []string{"resume", "rescan"} {
			b.Run(fmt.Sprintf("%s/%dKiB", mode, size>>10), func(b *testing.B) {
				var d Decoder
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					decodeInReads(b, &d, in, 512, mode == "rescan")
				}
			})
		}
	}
}
