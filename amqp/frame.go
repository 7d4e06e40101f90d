package amqp

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// ProtocolHeader is the 8-byte header a client sends before its first frame.
var ProtocolHeader = [8]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}

// Frame is one AMQP frame as read by FrameReader.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte // aliases the reader's buffer: valid only until the next ReadFrame
}

const (
	// frameHeaderSize is type (1) + channel (2) + size (4).
	frameHeaderSize = 7
	// frameOverhead is the header plus the end byte.
	frameOverhead = frameHeaderSize + 1
	// noFrameMax is the limit applied when SetFrameMax(0): a peer's length
	// is never trusted beyond it.
	noFrameMax = 1 << 31
	// eagerAlloc is the largest payload buffer allocated before any payload
	// byte arrives. Bigger frames (allowed by a large frame_max) grow the
	// buffer as data is actually read, so a peer that claims a big frame and
	// then stalls or disconnects cannot make us allocate it.
	eagerAlloc = 1 << 20
)

// FrameReader reads frames from r (the server passes a *bufio.Reader). It reuses one payload
// buffer, growing it only up to the frame max. Default frame max: FrameMinSize (4096).
//
// Invariants: the declared payload size is checked against the frame max
// before any payload byte is read or any buffer is grown; the buffer never
// grows beyond the frame max; a FrameReader is not safe for concurrent use.
type FrameReader struct {
	r        io.Reader
	frameMax uint64 // whole-frame limit (header + payload + end byte), never 0
	hdr      [frameHeaderSize]byte
	buf      []byte // payload + end byte of the last frame; reused
}

// NewFrameReader returns a FrameReader reading from r with frame max FrameMinSize.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: r, frameMax: FrameMinSize}
}

// SetFrameMax sets the largest whole frame accepted (7-byte header + payload + end byte),
// as negotiated in connection.tune-ok. 0 means no limit beyond 1<<31 (never trust the length).
func (fr *FrameReader) SetFrameMax(n uint32) {
	if n == 0 || n > noFrameMax {
		fr.frameMax = noFrameMax
		return
	}
	fr.frameMax = uint64(n)
}

// ReadFrame reads the next frame. It reads the 7-byte header, checks
// size+8 <= frame max BEFORE allocating or reading the payload, then reads
// the payload and the end byte. Errors:
//   - io errors are returned as is: io.EOF on a clean EOF before any header
//     byte, io.ErrUnexpectedEOF mid-frame;
//   - size too large: *Error{Code: FrameError}, text as RabbitMQ's
//     "FRAME_ERROR - type T, all octets = <<>>: {frame_too_large,Size,MaxPayload}";
//   - end byte != 0xCE: *Error{Code: FrameError} ("{invalid_frame_end_marker,B}");
//   - a frame type other than 1, 2, 3 or 8, or a heartbeat with a payload:
//     *Error{Code: FrameError} ("type T, all octets = <<...>>: unknown_frame"),
//     reported after the whole frame has been read.
//
// The returned Payload aliases the reader's buffer and is valid only until
// the next call.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return Frame{}, err // io.EOF if nothing was read, else io.ErrUnexpectedEOF or the read error
	}
	typ := fr.hdr[0]
	channel := binary.BigEndian.Uint16(fr.hdr[1:3])
	size := uint64(binary.BigEndian.Uint32(fr.hdr[3:7]))
	if size+frameOverhead > fr.frameMax {
		// RabbitMQ's words: payload size, then the largest payload allowed.
		return Frame{}, Errorf(FrameError, "type %d, all octets = <<>>: {frame_too_large,%d,%d}", typ, size, fr.frameMax-frameOverhead)
	}
	need := int(size) + 1 // payload + end byte
	if err := fr.fill(need); err != nil {
		return Frame{}, err
	}
	if end := fr.buf[size]; end != FrameEnd {
		return Frame{}, Errorf(FrameError, "type %d, all octets = %s: {invalid_frame_end_marker,%d}", typ, erlBinary(fr.buf[:size]), end)
	}
	payload := fr.buf[:size:size]
	switch typ {
	case FrameMethod, FrameHeader, FrameBody:
	case FrameHeartbeat:
		if size != 0 {
			return Frame{}, unknownFrame(typ, payload) // as RabbitMQ: a heartbeat carries nothing
		}
	default:
		return Frame{}, unknownFrame(typ, payload)
	}
	return Frame{Type: typ, Channel: channel, Payload: payload}, nil
}

// fill reads exactly need bytes into fr.buf[:need], growing the buffer at
// most to need. need has already been checked against the frame max.
func (fr *FrameReader) fill(need int) error {
	if need <= cap(fr.buf) || need <= eagerAlloc {
		if need > cap(fr.buf) {
			fr.buf = make([]byte, max(need, min(2*cap(fr.buf), eagerAlloc, int(fr.frameMax))))
		}
		fr.buf = fr.buf[:need]
		return readFull(fr.r, fr.buf)
	}
	// Large frame: grow as the bytes arrive, doubling from what we have.
	fr.buf = fr.buf[:0]
	for len(fr.buf) < need {
		if len(fr.buf) == cap(fr.buf) {
			grown := make([]byte, len(fr.buf), min(need, max(2*cap(fr.buf), eagerAlloc)))
			copy(grown, fr.buf)
			fr.buf = grown
		}
		chunk := fr.buf[len(fr.buf):min(cap(fr.buf), need)]
		if err := readFull(fr.r, chunk); err != nil {
			return err
		}
		fr.buf = fr.buf[:len(fr.buf)+len(chunk)]
	}
	return nil
}

// readFull is io.ReadFull where running out of input is always
// io.ErrUnexpectedEOF: it is only called once a frame header has been read.
func readFull(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// AppendFrame appends one whole frame: type, channel, size, payload, end byte.
// It is allocation-free when dst has capacity. The caller keeps payload
// within the negotiated frame max.
func AppendFrame(dst []byte, typ uint8, channel uint16, payload []byte) []byte {
	dst = append(dst, typ, byte(channel>>8), byte(channel))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, payload...)
	return append(dst, FrameEnd)
}

// AppendHeartbeat appends a heartbeat frame (type 8, channel 0, empty payload).
func AppendHeartbeat(dst []byte) []byte {
	return append(dst, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// AppendMethodFrame encodes a whole method frame (header, class id, method id, args, end byte).
// On error dst is returned unchanged.
func AppendMethodFrame(dst []byte, channel uint16, m Method) ([]byte, error) {
	start := len(dst)
	dst = append(dst, FrameMethod, byte(channel>>8), byte(channel), 0, 0, 0, 0)
	dst, err := AppendMethod(dst, m)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - frameHeaderSize
	if uint64(n) > math.MaxUint32 {
		return dst[:start], errors.New("amqp: method frame payload exceeds 4 GiB")
	}
	binary.BigEndian.PutUint32(dst[start+3:], uint32(n))
	return append(dst, FrameEnd), nil
}

// AppendContentHeaderFrame: class id, weight 0, body size, then rawProps (property flags + property list, as
// received or as produced by Properties.Append).
func AppendContentHeaderFrame(dst []byte, channel uint16, classID uint16, bodySize uint64, rawProps []byte) []byte {
	dst = append(dst, FrameHeader, byte(channel>>8), byte(channel))
	dst = binary.BigEndian.AppendUint32(dst, uint32(12+len(rawProps)))
	dst = binary.BigEndian.AppendUint16(dst, classID)
	dst = append(dst, 0, 0) // weight
	dst = binary.BigEndian.AppendUint64(dst, bodySize)
	dst = append(dst, rawProps...)
	return append(dst, FrameEnd)
}

// AppendBodyFrames splits body into body frames of at most frameMax-8 payload bytes each (frameMax 0 = no split).
// An empty body produces no frames. A frameMax of 8 or less is treated as
// FrameMinSize, since no body byte would fit.
func AppendBodyFrames(dst []byte, channel uint16, body []byte, frameMax uint32) []byte {
	limit := len(body)
	if frameMax != 0 {
		if frameMax <= frameOverhead {
			frameMax = FrameMinSize
		}
		limit = int(frameMax - frameOverhead)
	}
	for len(body) > 0 {
		n := min(len(body), limit)
		dst = AppendFrame(dst, FrameBody, channel, body[:n])
		body = body[n:]
	}
	return dst
}

// DecodeContentHeader parses a header frame payload. rawProps aliases payload.
// Errors are *Error with FrameError (payload shorter than 14 bytes; RabbitMQ's "unknown_frame" text) --
// the properties themselves are not decoded here (see DecodeProperties). The weight field is ignored.
func DecodeContentHeader(payload []byte) (classID uint16, bodySize uint64, rawProps []byte, err error) {
	if len(payload) < 14 {
		return 0, 0, nil, unknownFrame(FrameHeader, payload)
	}
	classID = binary.BigEndian.Uint16(payload[0:2])
	bodySize = binary.BigEndian.Uint64(payload[4:12])
	return classID, bodySize, payload[12:], nil
}
