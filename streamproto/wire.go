// Package streamproto is the framing and command codec of RabbitMQ's
// stream protocol (the one RabbitMQ's stream plugin serves on port 5552):
// bytes in, values out. It opens no sockets and starts no goroutines.
//
// A frame is a uint32 size (of what follows), a uint16 key, a uint16
// version and the command's fields, big-endian. Responses set the key's
// high bit (ResponseFlag). Strings are an int16 length (-1 for null) and
// bytes; byte blobs an int32 length (-1 for null); arrays an int32 count.
// The field layouts follow RabbitMQ's deps/rabbitmq_stream/docs/PROTOCOL.adoc
// as the Go client github.com/rabbitmq/rabbitmq-stream-go-client v1.8.3
// writes and reads them (that client's source was the reference here).
//
// Every length and count is checked against the bytes actually present
// before anything is allocated, and a frame's size against the negotiated
// frame_max before the front end waits for its body.
package streamproto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Command keys.
const (
	KeyDeclarePublisher       uint16 = 1
	KeyPublish                uint16 = 2
	KeyPublishConfirm         uint16 = 3
	KeyPublishError           uint16 = 4
	KeyQueryPublisherSequence uint16 = 5
	KeyDeletePublisher        uint16 = 6
	KeySubscribe              uint16 = 7
	KeyDeliver                uint16 = 8
	KeyCredit                 uint16 = 9
	KeyStoreOffset            uint16 = 10
	KeyQueryOffset            uint16 = 11
	KeyUnsubscribe            uint16 = 12
	KeyCreate                 uint16 = 13
	KeyDelete                 uint16 = 14
	KeyMetadata               uint16 = 15
	KeyMetadataUpdate         uint16 = 16
	KeyPeerProperties         uint16 = 17
	KeySaslHandshake          uint16 = 18
	KeySaslAuthenticate       uint16 = 19
	KeyTune                   uint16 = 20
	KeyOpen                   uint16 = 21
	KeyClose                  uint16 = 22
	KeyHeartbeat              uint16 = 23

	// ResponseFlag is set in the key of a response.
	ResponseFlag uint16 = 0x8000
)

// Response codes.
const (
	CodeOK                            uint16 = 1
	CodeStreamDoesNotExist            uint16 = 2
	CodeSubscriptionIDAlreadyExists   uint16 = 3
	CodeSubscriptionIDDoesNotExist    uint16 = 4
	CodeStreamAlreadyExists           uint16 = 5
	CodeStreamNotAvailable            uint16 = 6
	CodeSaslMechanismNotSupported     uint16 = 7
	CodeAuthenticationFailure         uint16 = 8
	CodeSaslError                     uint16 = 9
	CodeSaslChallenge                 uint16 = 10
	CodeAuthenticationFailureLoopback uint16 = 11
	CodeVirtualHostAccessFailure      uint16 = 12
	CodeUnknownFrame                  uint16 = 13
	CodeFrameTooLarge                 uint16 = 14
	CodeInternalError                 uint16 = 15
	CodeAccessRefused                 uint16 = 16
	CodePreconditionFailed            uint16 = 17
	CodePublisherDoesNotExist         uint16 = 18
	CodeNoOffset                      uint16 = 19
)

// DefaultFrameMax is the frame_max RabbitMQ's stream plugin offers in its
// Tune (1 MiB), used before a connection has tuned.
const DefaultFrameMax = 1048576

// ErrNeedMore is returned by ReadFrame when buf holds no complete frame yet.
var ErrNeedMore = errors.New("streamproto: need more input")

// Error is a frame that cannot be decoded. Code is the response code a
// server closes the connection with (CodeFrameTooLarge, CodeUnknownFrame).
type Error struct {
	Code   uint16
	Detail string
}

func (e *Error) Error() string { return fmt.Sprintf("streamproto: code %d: %s", e.Code, e.Detail) }

func errorf(code uint16, format string, args ...any) error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Frame is one undecoded frame: its key (with ResponseFlag for a
// response), its version and the command's fields.
type Frame struct {
	Key     uint16
	Version uint16
	Payload []byte // aliases the input
}

// ReadFrame splits the first frame off buf. frameMax bounds the whole frame
// including its size field (0 means DefaultFrameMax); a larger declared
// size fails at once, before the body is waited for.
func ReadFrame(buf []byte, frameMax uint32) (Frame, int, error) {
	if frameMax == 0 {
		frameMax = DefaultFrameMax
	}
	if len(buf) < 4 {
		return Frame{}, 0, ErrNeedMore
	}
	size := binary.BigEndian.Uint32(buf)
	if uint64(size)+4 > uint64(frameMax) {
		return Frame{}, 0, errorf(CodeFrameTooLarge, "frame of %d bytes exceeds frame_max %d", uint64(size)+4, frameMax)
	}
	if size < 4 {
		return Frame{}, 0, errorf(CodeUnknownFrame, "frame size %d is shorter than a key and version", size)
	}
	if uint64(len(buf)) < uint64(size)+4 {
		return Frame{}, 0, ErrNeedMore
	}
	end := 4 + int(size)
	return Frame{
		Key:     binary.BigEndian.Uint16(buf[4:]),
		Version: binary.BigEndian.Uint16(buf[6:]),
		Payload: buf[8:end:end],
	}, end, nil
}

// reader decodes fields from a payload; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = errorf(CodeUnknownFrame, format, args...)
	}
	r.b = nil
}

func (r *reader) need(n int, what string) bool {
	if r.err != nil {
		return false
	}
	if len(r.b) < n {
		r.fail("%s: need %d bytes, %d left", what, n, len(r.b))
		return false
	}
	return true
}

func (r *reader) u8(what string) uint8 {
	if !r.need(1, what) {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16(what string) uint16 {
	if !r.need(2, what) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32(what string) uint32 {
	if !r.need(4, what) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if !r.need(8, what) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// str reads an int16-length string; -1 (null) reads as "".
func (r *reader) str(what string) string {
	n := int16(r.u16(what))
	if n == -1 {
		return ""
	}
	if n < 0 {
		r.fail("%s: negative string length %d", what, n)
		return ""
	}
	if !r.need(int(n), what) {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// bytes reads an int32-length blob, aliasing the payload; -1 reads as nil.
func (r *reader) bytes(what string) []byte {
	n := int32(r.u32(what))
	if n == -1 {
		return nil
	}
	if n < 0 {
		r.fail("%s: negative length %d", what, n)
		return nil
	}
	if !r.need(int(n), what) {
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

// count reads an int32 array count and checks that count elements of at
// least minSize bytes each fit in what is left, so the caller can allocate.
func (r *reader) count(what string, minSize int) int {
	n := int32(r.u32(what))
	if r.err != nil {
		return 0
	}
	if n < 0 {
		r.fail("%s: negative count %d", what, n)
		return 0
	}
	if int64(n)*int64(minSize) > int64(len(r.b)) {
		r.fail("%s: %d elements cannot fit in %d bytes", what, n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *reader) rest() []byte {
	b := r.b
	r.b = nil
	return b
}

// done fails when bytes are left over after the last field of command key.
func (r *reader) done(key uint16) error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("command %s: %d bytes left after the last field", keyName(key), len(r.b))
	}
	return r.err
}

// enc appends fields; the first error (a string too long for its int16
// length) sticks.
type enc struct {
	b   []byte
	err error
}

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

func (e *enc) str(s string) {
	if len(s) > 0x7FFF {
		if e.err == nil {
			e.err = fmt.Errorf("streamproto: string of %d bytes exceeds the protocol's 32767", len(s))
		}
		return
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) bytes(v []byte) {
	if v == nil {
		e.u32(0xFFFFFFFF)
		return
	}
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
}

// KV is one entry of a properties or arguments map, in wire order.
type KV struct{ Key, Value string }

func (e *enc) kvs(kvs []KV) {
	e.u32(uint32(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.Key)
		e.str(kv.Value)
	}
}

func (r *reader) kvs(what string) []KV {
	n := r.count(what, 4)
	if n == 0 {
		return nil
	}
	out := make([]KV, n)
	for i := range out {
		out[i] = KV{r.str(what), r.str(what)}
	}
	return out
}
