package amqp

import (
	"fmt"
	"strconv"
)

// Error is an AMQP protocol error: a reply code, text, and the method that caused it.
//
// Decoders in this package return *Error for malformed input so the server can
// close the channel or connection with Code and Text unchanged. ClassID and
// MethodID are zero when the failure is not attributable to a method (for
// example a bad frame end byte).
type Error struct {
	Code     uint16 // reply code, e.g. 404
	Text     string // "NOT_FOUND - no exchange 'x' in vhost '/'" (the server builds the full text)
	ClassID  uint16
	MethodID uint16
}

// Error implements the error interface. It returns Text, followed by the
// class and method ids when they are set.
func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	if e.ClassID == 0 && e.MethodID == 0 {
		return "amqp: " + strconv.Itoa(int(e.Code)) + " " + e.Text
	}
	return "amqp: " + strconv.Itoa(int(e.Code)) + " " + e.Text +
		" (class " + strconv.Itoa(int(e.ClassID)) + ", method " + strconv.Itoa(int(e.MethodID)) + ")"
}

// Hard reports whether Code is one of the spec's hard-error constants
// (320, 402, 501..506, 530, 540, 541): such an error closes the connection,
// a soft one only the channel.
func (e *Error) Hard() bool { return e != nil && isHardError(e.Code) }

// Errorf returns an *Error with Text = CodeName(code) + " - " + the formatted message.
func Errorf(code uint16, format string, args ...any) *Error {
	return &Error{Code: code, Text: CodeName(code) + " - " + fmt.Sprintf(format, args...)}
}

// CodeName returns the spec's name for a reply code with '-' replaced by '_'
// (404 -> "NOT_FOUND"). An unknown code yields "CODE_<n>".
func CodeName(code uint16) string {
	if s := codeName(code); s != "" {
		return s
	}
	return "CODE_" + strconv.Itoa(int(code))
}

// Reply codes used by the decoders. Kept as one constant each so they can be
// aligned with RabbitMQ's behaviour in one place.
const (
	// codeMalformed is returned for malformed field tables and
	// content-header properties.
	codeMalformed = SyntaxError
	// codeMalformedMethod is returned by DecodeMethod and DecodeArgs for
	// arguments that do not decode (short, overrunning lengths, bad tables,
	// trailing bytes): RabbitMQ answers these with 501 FRAME_ERROR
	// "cannot decode <<...>>".
	codeMalformedMethod = FrameError
	// codeUnknownMethod is returned by DecodeMethod for a class or method id
	// that is not in the spec.
	codeUnknownMethod = NotImplemented
)

// malformed builds the *Error for malformed table or property data.
func malformed(format string, args ...any) *Error {
	return Errorf(codeMalformed, format, args...)
}

// methodDecodeError is the *Error for method arguments that do not decode,
// in RabbitMQ's words: "FRAME_ERROR - cannot decode <<args>>".
func methodDecodeError(args []byte, classID, methodID uint16) *Error {
	e := Errorf(codeMalformedMethod, "cannot decode %s", erlBinary(args))
	e.ClassID, e.MethodID = classID, methodID
	return e
}

// unknownFrame is the *Error for a frame RabbitMQ cannot parse:
// "FRAME_ERROR - type T, all octets = <<payload>>: unknown_frame".
func unknownFrame(typ uint8, payload []byte) *Error {
	return Errorf(FrameError, "type %d, all octets = %s: unknown_frame", typ, erlBinary(payload))
}

// UnexpectedFrameError is RabbitMQ's UNEXPECTED_FRAME for a frame that is valid on the wire but
// not allowed where it arrived: "UNEXPECTED_FRAME - type T, all octets = <<payload>>".
func UnexpectedFrameError(f Frame) *Error {
	return Errorf(UnexpectedFrame, "type %d, all octets = %s", f.Type, erlBinary(f.Payload))
}
