package integration

// The wire tap of the randomized side-by-side test (diff_test.go): it reads the frames the broker sends
// to an amqp091-go connection and keeps the ones a transcript records (deliveries, returns, consumer
// cancels, channel and connection closes), each with its channel number, in the order they arrived.

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// diffEvent is one frame (with its content, for deliveries and returns) the broker sent.
type diffEvent struct {
	ch          uint16
	kind        string // "deliver", "return", "getok", "cancel", "close", "connclose"
	ctag        string
	tag         uint64
	redelivered bool
	code        uint16
	class       uint16
	method      uint16
	exchange    string
	key         string
	body        []byte
	size        uint64
}

// diffTap wraps the client's socket and parses what it reads.
type diffTap struct {
	net.Conn
	last atomic.Int64 // UnixNano of the last frame read

	mu       sync.Mutex
	buf      []byte
	events   []diffEvent
	openOK   uint16                // channel of the last channel.open-ok
	pending  map[uint16]*diffEvent // content method waiting for its header and body
	parseErr error
}

func newDiffTap(c net.Conn) *diffTap {
	t := &diffTap{Conn: c, pending: map[uint16]*diffEvent{}}
	t.last.Store(time.Now().UnixNano())
	return t
}

func (t *diffTap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.feed(p[:n])
	}
	return n, err
}

// take returns the events read since the last take.
func (t *diffTap) take() []diffEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev := t.events
	t.events = nil
	return ev
}

func (t *diffTap) lastOpenOK() uint16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.openOK
}

func (t *diffTap) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parseErr
}

func (t *diffTap) feed(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.parseErr != nil {
		return
	}
	t.buf = append(t.buf, p...)
	off := 0
	for len(t.buf)-off >= 7 {
		size := int(binary.BigEndian.Uint32(t.buf[off+3 : off+7]))
		if len(t.buf)-off < 8+size {
			break
		}
		typ := t.buf[off]
		ch := binary.BigEndian.Uint16(t.buf[off+1 : off+3])
		payload := t.buf[off+7 : off+7+size]
		if t.buf[off+7+size] != 0xCE {
			t.parseErr = fmt.Errorf("tap: bad frame end after frame type %d on channel %d", typ, ch)
			return
		}
		if err := t.frame(typ, ch, payload); err != nil {
			t.parseErr = err
			return
		}
		off += 8 + size
	}
	t.buf = append(t.buf[:0], t.buf[off:]...)
	t.last.Store(time.Now().UnixNano())
}

// diffReader decodes the fields of a method's arguments.
type diffReader struct {
	b   []byte
	err error
}

func (r *diffReader) n(k int) []byte {
	if r.err != nil || len(r.b) < k {
		r.err = fmt.Errorf("tap: short method arguments")
		return make([]byte, k)
	}
	v := r.b[:k]
	r.b = r.b[k:]
	return v
}
func (r *diffReader) u8() uint8   { return r.n(1)[0] }
func (r *diffReader) u16() uint16 { return binary.BigEndian.Uint16(r.n(2)) }
func (r *diffReader) u64() uint64 { return binary.BigEndian.Uint64(r.n(8)) }
func (r *diffReader) str() string { return string(r.n(int(r.u8()))) }

func (t *diffTap) frame(typ uint8, ch uint16, p []byte) error {
	switch typ {
	case 1: // method
		r := &diffReader{b: p}
		class, method := r.u16(), r.u16()
		var ev *diffEvent
		switch {
		case class == 20 && method == 11:
			t.openOK = ch
		case class == 60 && method == 60: // basic.deliver
			ev = &diffEvent{kind: "deliver", ctag: r.str(), tag: r.u64(), redelivered: r.u8()&1 != 0, exchange: r.str(), key: r.str()}
			t.pending[ch] = ev
		case class == 60 && method == 71: // basic.get-ok
			ev = &diffEvent{kind: "getok", tag: r.u64(), redelivered: r.u8()&1 != 0, exchange: r.str(), key: r.str()}
			t.pending[ch] = ev
		case class == 60 && method == 50: // basic.return
			ev = &diffEvent{kind: "return", code: r.u16()}
			_ = r.str()
			ev.exchange, ev.key = r.str(), r.str()
			t.pending[ch] = ev
		case class == 60 && method == 30: // basic.cancel from the broker
			t.events = append(t.events, diffEvent{ch: ch, kind: "cancel", ctag: r.str()})
		case class == 20 && method == 40: // channel.close
			ev := diffEvent{ch: ch, kind: "close", code: r.u16()}
			_ = r.str()
			ev.class, ev.method = r.u16(), r.u16()
			t.events = append(t.events, ev)
		case class == 10 && method == 50: // connection.close
			ev := diffEvent{ch: ch, kind: "connclose", code: r.u16()}
			_ = r.str()
			ev.class, ev.method = r.u16(), r.u16()
			t.events = append(t.events, ev)
		}
		if r.err != nil {
			return fmt.Errorf("method %d.%d on channel %d: %w", class, method, ch, r.err)
		}
		if ev != nil {
			ev.ch = ch
		}
	case 2: // content header
		ev := t.pending[ch]
		if ev == nil {
			return nil
		}
		if len(p) < 12 {
			return fmt.Errorf("tap: short content header on channel %d", ch)
		}
		ev.size = binary.BigEndian.Uint64(p[4:12])
		if ev.size == 0 {
			t.complete(ch)
		}
	case 3: // content body
		ev := t.pending[ch]
		if ev == nil {
			return nil
		}
		ev.body = append(ev.body, p...)
		if uint64(len(ev.body)) >= ev.size {
			t.complete(ch)
		}
	}
	return nil
}

func (t *diffTap) complete(ch uint16) {
	ev := t.pending[ch]
	delete(t.pending, ch)
	t.events = append(t.events, *ev)
}
