// Package stomp is the STOMP 1.0, 1.1 and 1.2 frame codec: bytes in, frames
// out, and frames back to bytes. It opens no sockets and starts no
// goroutines; a front end owns the connection, buffers what it reads and calls
// Decoder.Decode until a frame is complete.
//
// What it does:
//   - frames as the specifications write them: a command line, header lines
//     ("name:value", ordered, repeats kept, the first occurrence wins in
//     Frame.Get as STOMP 1.2 says), a blank line, a body ended by NUL;
//   - content-length honoured (the body may then contain NUL), else the body
//     ends at the first NUL;
//   - EOLs between frames (heart-beats, and RabbitMQ's trailing LF) reported
//     as heart-beat frames;
//   - header escaping per version: \r \n \c \\ in 1.2, \n \c \\ in 1.1,
//     none in 1.0 and none in CONNECT and CONNECTED frames (1.2 says so); an
//     undefined escape is an error;
//   - CRLF line endings in 1.2;
//   - limits (header count, header line length, body size) checked before
//     anything is allocated or waited for;
//   - the commands a client or a server may send, per version.
//
// Before a connection has negotiated a version (its first frame, CONNECT or
// STOMP) decode with V12: CONNECT headers are never escaped, and 1.2's CRLF
// acceptance is a superset of the earlier versions.
package stomp

import (
	"bytes"
	"strconv"
	"strings"
)

// Version is a STOMP protocol version.
type Version uint8

// The protocol versions.
const (
	V10 Version = 1 + iota
	V11
	V12
)

// String returns the version as the accept-version header writes it.
func (v Version) String() string {
	switch v {
	case V10:
		return "1.0"
	case V11:
		return "1.1"
	case V12:
		return "1.2"
	}
	return "unknown"
}

// ParseVersion parses "1.0", "1.1" or "1.2".
func ParseVersion(s string) (Version, bool) {
	switch s {
	case "1.0":
		return V10, true
	case "1.1":
		return V11, true
	case "1.2":
		return V12, true
	}
	return 0, false
}

// Commands. Decoded frames carry these constant strings, so comparing and
// keeping a command allocates nothing.
const (
	CmdConnect     = "CONNECT"
	CmdStomp       = "STOMP" // 1.1+
	CmdSend        = "SEND"
	CmdSubscribe   = "SUBSCRIBE"
	CmdUnsubscribe = "UNSUBSCRIBE"
	CmdBegin       = "BEGIN"
	CmdCommit      = "COMMIT"
	CmdAbort       = "ABORT"
	CmdAck         = "ACK"
	CmdNack        = "NACK" // 1.1+
	CmdDisconnect  = "DISCONNECT"

	CmdConnected = "CONNECTED"
	CmdMessage   = "MESSAGE"
	CmdReceipt   = "RECEIPT"
	CmdError     = "ERROR"
)

// clientCommand returns the constant for a command a client may send in v.
func clientCommand(b []byte, v Version) (string, bool) {
	switch string(b) { // no allocation: the compiler switches on the bytes
	case CmdConnect:
		return CmdConnect, true
	case CmdSend:
		return CmdSend, true
	case CmdSubscribe:
		return CmdSubscribe, true
	case CmdUnsubscribe:
		return CmdUnsubscribe, true
	case CmdBegin:
		return CmdBegin, true
	case CmdCommit:
		return CmdCommit, true
	case CmdAbort:
		return CmdAbort, true
	case CmdAck:
		return CmdAck, true
	case CmdDisconnect:
		return CmdDisconnect, true
	case CmdStomp:
		return CmdStomp, v >= V11
	case CmdNack:
		return CmdNack, v >= V11
	}
	return "", false
}

// serverCommand returns the constant for a command a server may send.
func serverCommand(b []byte) (string, bool) {
	switch string(b) {
	case CmdConnected:
		return CmdConnected, true
	case CmdMessage:
		return CmdMessage, true
	case CmdReceipt:
		return CmdReceipt, true
	case CmdError:
		return CmdError, true
	}
	return "", false
}

// IsClientCommand reports whether a client may send cmd in version v.
func IsClientCommand(cmd string, v Version) bool {
	_, ok := clientCommand([]byte(cmd), v)
	return ok
}

// IsServerCommand reports whether a server may send cmd (the same in every version).
func IsServerCommand(cmd string) bool {
	_, ok := serverCommand([]byte(cmd))
	return ok
}

// Header is one header line. Decoded headers alias the decoder's input or
// its scratch buffer: see Decoder.Decode.
type Header struct {
	Name, Value []byte
}

// H builds a header from strings, for frames built by hand.
func H(name, value string) Header {
	return Header{Name: []byte(name), Value: []byte(value)}
}

// Frame is one STOMP frame. A heart-beat (an EOL between frames) decodes as
// a Frame with Heartbeat set and nothing else.
type Frame struct {
	Command   string
	Headers   []Header // in wire order; repeated names are kept
	Body      []byte
	Heartbeat bool
}

// Get returns the value of the first header called name: STOMP 1.2 says
// that when a header is repeated, only the first occurrence is used.
func (f *Frame) Get(name string) ([]byte, bool) {
	for i := range f.Headers {
		if string(f.Headers[i].Name) == name {
			return f.Headers[i].Value, true
		}
	}
	return nil, false
}

// Clone returns a deep copy that no longer aliases the decoder's buffers,
// in one allocation for all headers and body plus one for the header slice.
func (f *Frame) Clone() Frame {
	n := len(f.Body)
	for _, h := range f.Headers {
		n += len(h.Name) + len(h.Value)
	}
	buf := make([]byte, 0, n)
	out := Frame{Command: f.Command, Heartbeat: f.Heartbeat}
	if len(f.Headers) > 0 {
		out.Headers = make([]Header, len(f.Headers))
	}
	take := func(b []byte) []byte {
		s := len(buf)
		buf = append(buf, b...)
		return buf[s:len(buf):len(buf)]
	}
	for i, h := range f.Headers {
		out.Headers[i] = Header{Name: take(h.Name), Value: take(h.Value)}
	}
	if f.Body != nil {
		out.Body = take(f.Body)
	}
	return out
}

// escaped reports whether header names and values of cmd are escaped in v.
func escaped(cmd string, v Version) bool {
	return v >= V11 && cmd != CmdConnect && cmd != CmdConnected
}

// contentLength parses a content-length value: decimal digits only.
func contentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// appendEscaped appends b escaped for version v (1.1: no \r escape).
func appendEscaped(dst, b []byte, v Version) []byte {
	if !bytes.ContainsAny(b, "\\\r\n:") {
		return append(dst, b...)
	}
	for _, c := range b {
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case ':':
			dst = append(dst, '\\', 'c')
		case '\r':
			if v >= V12 {
				dst = append(dst, '\\', 'r')
			} else {
				dst = append(dst, c) // 1.1 defines no \r escape; the octet goes as is
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Append appends f encoded for version v to dst: the command, the headers
// (escaped as v and the command require), a content-length header when the
// frame has a body and none was given, a blank line, the body and NUL.
//
// It fails, leaving dst's contents unchanged, when a header cannot be
// written in v (a newline in an unescaped header, a colon in an unescaped
// name, a CR in a 1.1 header), when a given content-length is not the body's
// length, or when the command is empty or contains an EOL.
// RabbitMQ writes an LF after each frame it sends (its trailing_lf setting,
// on by default); a front end that wants that appends '\n' itself.
func Append(dst []byte, f Frame, v Version) ([]byte, error) {
	if f.Heartbeat {
		return append(dst, '\n'), nil
	}
	if f.Command == "" || strings.ContainsAny(f.Command, "\r\n\x00") {
		return dst, errorf(ErrEncode, "command %q cannot be written", f.Command)
	}
	esc := escaped(f.Command, v)
	start := len(dst)
	dst = append(dst, f.Command...)
	dst = append(dst, '\n')
	haveLength := false
	for _, h := range f.Headers {
		if esc {
			if v == V11 && (bytes.IndexByte(h.Name, '\r') >= 0 || bytes.IndexByte(h.Value, '\r') >= 0) {
				return dst[:start], errorf(ErrEncode, "header %q: STOMP 1.1 cannot escape a carriage return", h.Name)
			}
			dst = appendEscaped(dst, h.Name, v)
			dst = append(dst, ':')
			dst = appendEscaped(dst, h.Value, v)
		} else {
			if bytes.ContainsAny(h.Name, "\r\n:") || bytes.ContainsAny(h.Value, "\r\n") {
				return dst[:start], errorf(ErrEncode, "header %q cannot be written unescaped in %s %s", h.Name, v, f.Command)
			}
			dst = append(dst, h.Name...)
			dst = append(dst, ':')
			dst = append(dst, h.Value...)
		}
		dst = append(dst, '\n')
		if !haveLength && string(h.Name) == "content-length" {
			haveLength = true
			n, ok := contentLength(h.Value)
			if !ok || n != int64(len(f.Body)) {
				return dst[:start], errorf(ErrEncode, "content-length %q but the body has %d bytes", h.Value, len(f.Body))
			}
		}
	}
	if !haveLength && len(f.Body) > 0 {
		dst = append(dst, "content-length:"...)
		dst = strconv.AppendInt(dst, int64(len(f.Body)), 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, f.Body...)
	return append(dst, 0), nil
}
