package stomp

import (
	"bytes"
	"errors"
	"fmt"
)

// Limits bound what one frame may hold. Each is checked before the decoder
// allocates for it or asks for more input, so a peer cannot make a front end
// buffer more than about MaxHeaders*(MaxHeaderLine+2)+MaxBody bytes.
type Limits struct {
	MaxHeaders    int // header lines per frame
	MaxHeaderLine int // bytes in one command or header line, without its EOL
	MaxBody       int // body bytes
}

// DefaultLimits are used for zero fields of Decoder.Limits.
//
// RabbitMQ 3.10.8's STOMP plugin has no frame limits of its own (its
// application environment, checked in rabbitmq_stomp.app on this machine,
// has none), so these are Warren's: MaxBody is RabbitMQ's default
// max_message_size (128 MiB), so a body RabbitMQ would accept over AMQP is
// accepted over STOMP; MaxHeaderLine allows long tokens in passcode headers.
var DefaultLimits = Limits{
	MaxHeaders:    1000,
	MaxHeaderLine: 64 << 10,
	MaxBody:       128 << 20,
}

// ErrNeedMore is returned by Decode when buf holds no complete frame yet
// and nothing is wrong with what it does hold.
var ErrNeedMore = errors.New("stomp: need more input")

// Kind says what is wrong with a frame. It is also an error, so
// errors.Is(err, stomp.ErrBadEscape) works on a decode error.
type Kind uint8

// The kinds of decode and encode error.
const (
	ErrUnknownCommand Kind = 1 + iota
	ErrBadHeader
	ErrBadEscape
	ErrBadContentLength
	ErrMissingNul
	ErrBetweenFrames
	ErrTooManyHeaders
	ErrHeaderTooLong
	ErrBodyTooLarge
	ErrEncode
)

var kindMessages = [...]string{
	ErrUnknownCommand:   "Unknown command",
	ErrBadHeader:        "Invalid header",
	ErrBadEscape:        "Invalid header escape",
	ErrBadContentLength: "Invalid content-length",
	ErrMissingNul:       "Frame not terminated by NUL",
	ErrBetweenFrames:    "Unexpected characters between frames",
	ErrTooManyHeaders:   "Too many headers",
	ErrHeaderTooLong:    "Header too long",
	ErrBodyTooLarge:     "Body too large",
	ErrEncode:           "Cannot encode frame",
}

// Error implements error with the short message.
func (k Kind) Error() string {
	if int(k) < len(kindMessages) && kindMessages[k] != "" {
		return kindMessages[k]
	}
	return "stomp error"
}

// Error is a malformed frame. A front end sends an ERROR frame with
// Message() in its message header and Detail as its body, then closes the
// connection, as the STOMP specifications and RabbitMQ do.
type Error struct {
	Kind   Kind
	Detail string // what exactly is wrong, e.g. `undefined escape "\t" in header "a"`
}

// Message is the short text for the ERROR frame's message header.
func (e *Error) Message() string { return e.Kind.Error() }

func (e *Error) Error() string { return "stomp: " + e.Kind.Error() + ": " + e.Detail }

// Is makes errors.Is(err, kind) true for an *Error of that kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

func errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Decoder decodes frames. Its buffers are reused between calls, so decoding
// a frame without escaped headers allocates nothing once warmed up. The zero
// value decodes frames a client sends, with DefaultLimits.
//
// A Decoder resumes a partial frame: after ErrNeedMore it remembers how far
// it scanned (the lines it split, how far it looked for the next EOL or the
// body's NUL), so a large frame arriving in many small reads costs time in
// proportion to its size, not to its size times the number of reads.
type Decoder struct {
	Limits     Limits
	FromServer bool // decode the frames a server sends (CONNECTED, MESSAGE, RECEIPT, ERROR)

	hdrs    []Header
	scratch []byte
	st      partial
}

// partial is what a Decoder knows of the frame it has not finished: offsets
// into the caller's buffer (which may have moved since), never slices of it.
type partial struct {
	active  bool
	v       Version
	seen    int    // len(buf) at the last call: a shorter buf is another input
	pos     int    // start of the next line to split, or of the body once headers
	scan    int    // bytes from pos already searched for an LF (a line) or a NUL (the body)
	cmd     string // the command, once its line was read
	offs    []hdrOff
	headers bool  // the blank line was read; pos is the body's start
	checked bool  // the headers were unescaped and content-length read without error
	clen    int64 // once checked: the content-length, or -1 without one
}

type hdrOff struct{ name, colon, end int }

// Reset forgets a partial frame. Decode assumes that after it returned
// ErrNeedMore its next call's buf starts with the same bytes (the unconsumed
// partial frame, with more appended) under the same version; a caller that
// drops or changes that input must call Reset first.
func (d *Decoder) Reset() {
	d.st = partial{offs: d.st.offs[:0]}
}

// Decode decodes frames a client sends, with DefaultLimits and fresh buffers.
func Decode(v Version, buf []byte) (Frame, int, error) {
	var d Decoder
	return d.Decode(v, buf)
}

// Decode decodes the first frame in buf under version v and returns it with
// the number of bytes it took. It returns ErrNeedMore (and 0) when buf
// holds only part of a frame, and an *Error when the bytes can never be a
// frame. An LF or CRLF at the start of buf is a heart-beat: a Frame with
// Heartbeat set.
//
// After ErrNeedMore the decoder keeps how far it got: the next call must pass
// the same bytes at the start of buf (more may follow) and the same version,
// or call Reset first. Each byte of a frame is then scanned once however the
// frame is split between calls (up to the few bytes of a CRLF).
//
// The frame's headers and body alias buf and the decoder's scratch space:
// they are valid until buf is modified or Decode is called again. Use
// Frame.Clone to keep them longer.
func (d *Decoder) Decode(v Version, buf []byte) (Frame, int, error) {
	st := &d.st
	if st.active && (st.v != v || len(buf) < st.seen) {
		d.Reset() // not the input the state was for: start again
	}
	f, n, err := d.decode(v, buf)
	if err == ErrNeedMore {
		if st.active {
			st.v, st.seen = v, len(buf)
		}
		return f, n, err
	}
	if st.active {
		d.Reset()
	}
	return f, n, err
}

func (d *Decoder) decode(v Version, buf []byte) (Frame, int, error) {
	lim := d.limits()
	st := &d.st
	if !st.active {
		if len(buf) == 0 {
			return Frame{}, 0, ErrNeedMore
		}
		switch buf[0] {
		case '\n':
			return Frame{Heartbeat: true}, 1, nil
		case '\r':
			if len(buf) == 1 {
				return Frame{}, 0, ErrNeedMore
			}
			if buf[1] == '\n' {
				return Frame{Heartbeat: true}, 2, nil
			}
			return Frame{}, 0, errorf(ErrBetweenFrames, "carriage return not followed by a newline")
		}
		st.active = true
		st.offs = st.offs[:0]
	}

	// Pass 1: split the command and header lines, bounded by the limits,
	// from where the last call stopped.
	for !st.headers {
		start, end, next, err := nextLine(buf, st.pos, &st.scan, lim.MaxHeaderLine, v)
		if err != nil {
			return Frame{}, 0, err
		}
		line := buf[start:end:end]
		st.pos, st.scan = next, 0
		if st.cmd == "" {
			var ok bool
			if d.FromServer {
				st.cmd, ok = serverCommand(line)
			} else {
				st.cmd, ok = clientCommand(line, v)
			}
			if !ok {
				return Frame{}, 0, errorf(ErrUnknownCommand, "%q is not a STOMP %s %s command", truncate(line), v, d.side())
			}
			continue
		}
		if len(line) == 0 {
			st.headers = true
			break
		}
		if len(st.offs) == lim.MaxHeaders {
			return Frame{}, 0, errorf(ErrTooManyHeaders, "more than %d headers", lim.MaxHeaders)
		}
		c := bytes.IndexByte(line, ':')
		if c < 0 {
			return Frame{}, 0, errorf(ErrBadHeader, "header line %q has no colon", truncate(line))
		}
		st.offs = append(st.offs, hdrOff{name: start, colon: start + c, end: end})
	}
	cmd, pos := st.cmd, st.pos
	f := Frame{Command: cmd}
	have := false // f.Headers built by this call
	if !st.checked {
		// The first call past the blank line unescapes and reads
		// content-length; later calls only wait for the body.
		hdrs, err := d.headers(buf, cmd, v)
		if err != nil {
			return Frame{}, 0, err
		}
		f.Headers, have = hdrs, true
		st.clen = -1
		if cl, ok := f.Get("content-length"); ok {
			n, ok := contentLength(cl)
			if !ok {
				return Frame{}, 0, errorf(ErrBadContentLength, "content-length %q is not a non-negative decimal", truncate(cl))
			}
			if n > int64(lim.MaxBody) {
				return Frame{}, 0, errorf(ErrBodyTooLarge, "content-length %d exceeds the limit of %d bytes", n, lim.MaxBody)
			}
			st.clen = n
		}
		st.checked = true
	}
	end := 0
	if st.clen >= 0 {
		end = pos + int(st.clen)
		if len(buf) <= end {
			return Frame{}, 0, ErrNeedMore
		}
		if buf[end] != 0 {
			return Frame{}, 0, errorf(ErrMissingNul, "the %d-byte body given by content-length is followed by %q, not NUL", st.clen, string(buf[end:end+1]))
		}
	} else {
		window := buf[pos:min(len(buf), pos+lim.MaxBody+1)]
		i := bytes.IndexByte(window[min(st.scan, len(window)):], 0)
		if i < 0 {
			if len(window) > lim.MaxBody {
				return Frame{}, 0, errorf(ErrBodyTooLarge, "body exceeds the limit of %d bytes", lim.MaxBody)
			}
			st.scan = len(window)
			return Frame{}, 0, ErrNeedMore
		}
		end = pos + st.scan + i
	}
	if !have {
		hdrs, err := d.headers(buf, cmd, v) // checked before: cannot fail
		if err != nil {
			return Frame{}, 0, err
		}
		f.Headers = hdrs
	}
	if end > pos {
		f.Body = buf[pos:end:end]
	}
	return f, end + 1, nil
}

// headers builds the frame's headers from the offsets pass 1 recorded and
// unescapes them as cmd and v require. The unescaped form is never longer,
// so scratch sized to the header section never grows while slices point
// into it.
func (d *Decoder) headers(buf []byte, cmd string, v Version) ([]Header, error) {
	hdrs := d.hdrs[:0]
	for _, o := range d.st.offs {
		hdrs = append(hdrs, Header{Name: buf[o.name:o.colon:o.colon], Value: buf[o.colon+1 : o.end : o.end]})
	}
	d.hdrs = hdrs
	if escaped(cmd, v) {
		need := 0
		for _, h := range hdrs {
			if bytes.IndexByte(h.Name, '\\') >= 0 || bytes.IndexByte(h.Value, '\\') >= 0 {
				need += len(h.Name) + len(h.Value)
			}
		}
		if need > 0 {
			if cap(d.scratch) < need {
				d.scratch = make([]byte, 0, need)
			}
			sc := d.scratch[:0]
			for i := range hdrs {
				var err error
				if hdrs[i].Name, sc, err = unescape(hdrs[i].Name, sc, v); err != nil {
					return nil, err
				}
				if hdrs[i].Value, sc, err = unescape(hdrs[i].Value, sc, v); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(hdrs) == 0 {
		return nil, nil
	}
	return hdrs[:len(hdrs):len(hdrs)], nil
}

func (d *Decoder) side() string {
	if d.FromServer {
		return "server"
	}
	return "client"
}

func (d *Decoder) limits() Limits {
	l := d.Limits
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultLimits.MaxHeaders
	}
	if l.MaxHeaderLine <= 0 {
		l.MaxHeaderLine = DefaultLimits.MaxHeaderLine
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultLimits.MaxBody
	}
	return l
}

// nextLine finds the line starting at pos and returns its bounds without
// its EOL (LF, or CRLF in 1.2) and the position after the EOL. It looks at
// most max+2 bytes ahead of pos, skipping the *scan bytes a previous call
// already searched, and on ErrNeedMore records how far it searched.
func nextLine(buf []byte, pos int, scan *int, max int, v Version) (start, end, next int, err error) {
	window := buf[pos:min(len(buf), pos+max+2)]
	from := min(*scan, len(window))
	i := bytes.IndexByte(window[from:], '\n')
	if i < 0 {
		if len(window) > max+1 {
			return 0, 0, 0, errorf(ErrHeaderTooLong, "a line is longer than %d bytes", max)
		}
		*scan = len(window)
		return 0, 0, 0, ErrNeedMore
	}
	i += from
	n := i
	if v >= V12 && i > 0 && window[i-1] == '\r' {
		n = i - 1
	}
	if n > max {
		return 0, 0, 0, errorf(ErrHeaderTooLong, "a line is longer than %d bytes", max)
	}
	return pos, pos + n, pos + i + 1, nil
}

// unescape appends the unescaped b to sc when b has a backslash and returns
// the unescaped slice; otherwise it returns b as is.
func unescape(b, sc []byte, v Version) ([]byte, []byte, error) {
	if bytes.IndexByte(b, '\\') < 0 {
		return b, sc, nil
	}
	start := len(sc)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			sc = append(sc, c)
			continue
		}
		if i+1 == len(b) {
			return nil, sc, errorf(ErrBadEscape, "header %q ends in a lone backslash", truncate(b))
		}
		i++
		switch b[i] {
		case '\\':
			sc = append(sc, '\\')
		case 'n':
			sc = append(sc, '\n')
		case 'c':
			sc = append(sc, ':')
		case 'r':
			if v < V12 {
				return nil, sc, errorf(ErrBadEscape, "undefined escape \"\\r\" in %q (STOMP 1.1 has \\n \\c \\\\ only)", truncate(b))
			}
			sc = append(sc, '\r')
		default:
			return nil, sc, errorf(ErrBadEscape, "undefined escape %q in %q", []byte{'\\', b[i]}, truncate(b))
		}
	}
	return sc[start:len(sc):len(sc)], sc, nil
}

// truncate keeps error details short when the input is long.
func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
