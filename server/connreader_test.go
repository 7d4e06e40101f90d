package server

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// chunkReader returns src in chunks of random size up to max, the last one with io.EOF.
type chunkReader struct {
	src []byte
	max int
	rng *rand.Rand
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.src) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.src), 1+r.rng.IntN(r.max))
	copy(p, r.src[:n])
	r.src = r.src[n:]
	if len(r.src) == 0 {
		return n, io.EOF // data and EOF together, as some readers do
	}
	return n, nil
}

func TestConnReaderStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, 256<<10)
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	for _, max := range []int{1, 7, 100, 5000, 70000, 200000} {
		br := newConnReader(&chunkReader{src: src, max: max, rng: rng})
		var got []byte
		buf := make([]byte, 80000)
		for {
			p := buf[:1+rng.IntN(len(buf))]
			n, err := br.Read(p)
			got = append(got, p[:n]...)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("max chunk %d: read %d bytes, not the %d written (or different)", max, len(got), len(src))
		}
		if n, err := br.Read(make([]byte, 10)); n != 0 || err == nil {
			t.Fatalf("read after EOF: %d, %v", n, err)
		}
	}
}

// An idle connection (heartbeats only) keeps the small buffer; a busy one grows it once.
func TestConnReaderGrowsOnlyWhenBusy(t *testing.T) {
	var src bytes.Buffer
	br := newConnReader(&src)
	hb := []byte{8, 0, 0, 0, 0, 0, 0, 0xCE}
	for range 1000 {
		src.Write(hb)
		var hdr [7]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatal(err)
		}
		if h := br.peekBuffered(1); h == nil || h[0] != 0xCE {
			t.Fatalf("peekBuffered(1) = %v, want the end byte", h)
		}
		if br.peekBuffered(2) != nil {
			t.Fatal("peekBuffered beyond what is buffered")
		}
		if _, err := io.ReadFull(br, hdr[:1]); err != nil {
			t.Fatal(err)
		}
	}
	if len(br.buf) != smallReadBuf {
		t.Fatalf("idle connection's buffer is %d bytes, want %d", len(br.buf), smallReadBuf)
	}
	src.Write(make([]byte, 1<<20)) // a burst: reads fill the buffer
	p := make([]byte, 100)
	for range 100 {
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
	}
	if len(br.buf) != bigReadBuf {
		t.Fatalf("busy connection's buffer is %d bytes, want %d", len(br.buf), bigReadBuf)
	}
}
