package server

import "io"

// Read buffer sizes of a connection. An idle connection (handshake done, heartbeats only) never
// fills the small buffer, so it costs smallReadBuf rather than bigReadBuf (5,000 idle connections:
// 20 MiB of heap instead of 320 MiB); a busy one switches to the big buffer the first time a
// read fills the small one, and from then on reads up to 64 KiB per syscall as a
// bufio.Reader of that size would.
const (
	smallReadBuf = 4 << 10
	bigReadBuf   = 64 << 10
)

// connReader is the connection's buffered reader: bufio.Reader's Read with a buffer that starts
// small and grows once (see smallReadBuf). It belongs to the read loop.
type connReader struct {
	src  io.Reader
	buf  []byte
	r, w int  // buf[r:w] is buffered
	full bool // the last read filled the small buffer: grow before the next one
	err  error
}

func newConnReader(src io.Reader) *connReader {
	return &connReader{src: src, buf: make([]byte, smallReadBuf)}
}

// Buffered returns how many bytes can be read without touching the socket.
func (b *connReader) Buffered() int { return b.w - b.r }

// peekBuffered returns the next n bytes if they are already buffered (it never reads), else nil.
func (b *connReader) peekBuffered(n int) []byte {
	if b.w-b.r < n {
		return nil
	}
	return b.buf[b.r : b.r+n]
}

// Read reads into p: from the buffer if it holds anything, else with at most one read of the
// socket (straight into p when p is at least as big as the buffer, as bufio.Reader does).
func (b *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			err := b.err
			b.err = nil
			return 0, err
		}
		b.r, b.w = 0, 0
		if b.full && len(b.buf) < bigReadBuf {
			b.buf = make([]byte, bigReadBuf) // busy connection: grow (once)
		}
		if len(p) >= len(b.buf) {
			n, err := b.src.Read(p)
			if n < 0 {
				panic("connReader: negative read")
			}
			b.full = n == len(p)
			return n, err
		}
		n, err := b.src.Read(b.buf)
		if n < 0 {
			panic("connReader: negative read")
		}
		b.w = n
		b.full = n == len(b.buf)
		if n == 0 {
			return 0, err
		}
		b.err = err
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}
