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
type Decoder struct {
	Limits     Limits
	FromServer bool // decode the frames a server sends (CONNECTED, MESSAGE, RECEIPT, ERROR)

	hdrs    []Header
	scratch []byte
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
// Decode keeps no parse state between calls: after ErrNeedMore the next call
// rescans the partial frame from its start, so a front end that calls it
// after every small read of a large frame (up to Limits) does quadratic
// work. Resumable state is not built yet.
//
// The frame's headers and body alias buf and the decoder's scratch space:
// they are valid until buf is modified or Decode is called again. Use
// Frame.Clone to keep them longer.
func (d *Decoder) Decode(v Version, buf []byte) (Frame, int, error) {
	lim := d.limits()
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

	// Pass 1: split the command and header lines, bounded by the limits.
	pos := 0
	cmd := ""
	hdrs := d.hdrs[:0]
	for {
		line, next, err := nextLine(buf, pos, lim.MaxHeaderLine, v)
		if err != nil {
			d.hdrs = hdrs
			return Frame{}, 0, err
		}
		pos = next
		if cmd == "" {
			var ok bool
			if d.FromServer {
				cmd, ok = serverCommand(line)
			} else {
				cmd, ok = clientCommand(line, v)
			}
			if !ok {
				return Frame{}, 0, errorf(ErrUnknownCommand, "%q is not a STOMP %s %s command", truncate(line), v, d.side())
			}
			continue
		}
		if len(line) == 0 {
			break
		}
		if len(hdrs) == lim.MaxHeaders {
			d.hdrs = hdrs
			return Frame{}, 0, errorf(ErrTooManyHeaders, "more than %d headers", lim.MaxHeaders)
		}
		c := bytes.IndexByte(line, ':')
		if c < 0 {
			d.hdrs = hdrs
			return Frame{}, 0, errorf(ErrBadHeader, "header line %q has no colon", truncate(line))
		}
		hdrs = append(hdrs, Header{Name: line[:c:c], Value: line[c+1 : len(line) : len(line)]})
	}
	d.hdrs = hdrs

	// Pass 2: unescape. The unescaped form is never longer, so scratch
	// sized to the header section never grows while slices point into it.
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
					return Frame{}, 0, err
				}
				if hdrs[i].Value, sc, err = unescape(hdrs[i].Value, sc, v); err != nil {
					return Frame{}, 0, err
				}
			}
		}
	}

	f := Frame{Command: cmd}
	if len(hdrs) > 0 {
		f.Headers = hdrs[:len(hdrs):len(hdrs)]
	}
	end := 0
	if cl, ok := f.Get("content-length"); ok {
		n, ok := contentLength(cl)
		if !ok {
			return Frame{}, 0, errorf(ErrBadContentLength, "content-length %q is not a non-negative decimal", truncate(cl))
		}
		if n > int64(lim.MaxBody) {
			return Frame{}, 0, errorf(ErrBodyTooLarge, "content-length %d exceeds the limit of %d bytes", n, lim.MaxBody)
		}
		end = pos + int(n)
		if len(buf) <= end {
			return Frame{}, 0, ErrNeedMore
		}
		if buf[end] != 0 {
			return Frame{}, 0, errorf(ErrMissingNul, "the %d-byte body given by content-length is followed by %q, not NUL", n, string(buf[end:end+1]))
		}
	} else {
		window := buf[pos:min(len(buf), pos+lim.MaxBody+1)]
		i := bytes.IndexByte(window, 0)
		if i < 0 {
			if len(window) > lim.MaxBody {
				return Frame{}, 0, errorf(ErrBodyTooLarge, "body exceeds the limit of %d bytes", lim.MaxBody)
			}
			return Frame{}, 0, ErrNeedMore
		}
		end = pos + i
	}
	if end > pos {
		f.Body = buf[pos:end:end]
	}
	return f, end + 1, nil
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

// nextLine returns the line starting at pos without its EOL (LF, or CRLF in
// 1.2) and the position after the EOL. It looks at most max+2 bytes ahead.
func nextLine(buf []byte, pos, max int, v Version) ([]byte, int, error) {
	window := buf[pos:min(len(buf), pos+max+2)]
	i := bytes.IndexByte(window, '\n')
	if i < 0 {
		if len(window) > max+1 {
			return nil, 0, errorf(ErrHeaderTooLong, "a line is longer than %d bytes", max)
		}
		return nil, 0, ErrNeedMore
	}
	line := window[:i:i]
	if v >= V12 && i > 0 && line[i-1] == '\r' {
		line = line[: i-1 : i-1]
	}
	if len(line) > max {
		return nil, 0, errorf(ErrHeaderTooLong, "a line is longer than %d bytes", max)
	}
	return line, pos + i + 1, nil
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
