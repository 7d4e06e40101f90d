package mqtt

import (
	"encoding/binary"
	"unicode/utf8"
)

// Version is the MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5 (5.0).
type Version byte

// The protocol levels this package speaks.
const (
	V31  Version = 3
	V311 Version = 4
	V5   Version = 5
)

func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "unknown"
}

// MaxRemainingLength is the largest remaining length a four-byte variable byte integer holds.
const MaxRemainingLength = 268435455

// reader is a bounds-checked cursor over one packet's remaining bytes; the first failure sticks.
type reader struct {
	b   []byte
	t   PacketType
	v   Version
	err *Error
}

func (r *reader) fail(e *Error) {
	if r.err == nil {
		r.err = e
	}
}

func (r *reader) short(what string) bool {
	r.fail(malformed(r.t, what+" runs past the end of the packet"))
	r.b = nil
	return false
}

func (r *reader) u8(what string) byte {
	if len(r.b) < 1 {
		r.short(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) u16(what string) uint16 {
	if len(r.b) < 2 {
		r.short(what)
		return 0
	}
	x := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return x
}

func (r *reader) u32(what string) uint32 {
	if len(r.b) < 4 {
		r.short(what)
		return 0
	}
	x := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return x
}

// varint reads a variable byte integer: at most four bytes; MQTT 5 also requires the minimum number.
func (r *reader) varint(what string) uint32 {
	x, n, e := decodeVarint(r.b, r.v)
	if e != nil {
		e.Type = r.t
		e.Text = what + ": " + e.Text
		r.fail(e)
		r.b = nil
		return 0
	}
	if n == 0 {
		r.short(what)
		return 0
	}
	r.b = r.b[n:]
	return x
}

// decodeVarint returns the value and its length, n == 0 when b ends inside it.
func decodeVarint(b []byte, v Version) (uint32, int, *Error) {
	var x uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, nil
		}
		c := b[i]
		x |= uint32(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if v == V5 && i > 0 && c == 0 {
				return 0, 0, malformed(0, "variable byte integer not in its shortest form")
			}
			return x, i + 1, nil
		}
	}
	return 0, 0, malformed(0, "variable byte integer longer than four bytes")
}

// bin reads two-byte-length-prefixed binary data; the result aliases the packet.
func (r *reader) bin(what string) []byte {
	n := int(r.u16(what + " length"))
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.short(what)
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// strBytes reads a UTF-8 string as the specification requires it: well-formed (no surrogates, no
// overlong forms) and without U+0000 (MQTT 5 section 1.5.4, 3.1.1 section 1.5.3).
func (r *reader) strBytes(what string) []byte {
	s := r.bin(what)
	if r.err == nil && !validUTF8(s) {
		r.fail(malformed(r.t, what+" is not well-formed UTF-8 or contains U+0000"))
	}
	return s
}

func (r *reader) str(what string) string {
	return string(r.strBytes(what))
}

func validUTF8(s []byte) bool {
	for i, c := range s {
		if c >= 0x80 {
			return utf8.Valid(s[i:]) && noNUL(s[i:])
		}
		if c == 0 {
			return false
		}
	}
	return true
}

func noNUL(s []byte) bool {
	for _, c := range s {
		if c == 0 {
			return false
		}
	}
	return true
}

func validUTF8String(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			return false
		}
		if c >= 0x80 {
			return utf8.ValidString(s[i:]) && noNULString(s[i:])
		}
	}
	return true
}

func noNULString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

func varintLen(x uint32) int {
	switch {
	case x < 1<<7:
		return 1
	case x < 1<<14:
		return 2
	case x < 1<<21:
		return 3
	}
	return 4
}

func appendVarint(dst []byte, x uint32) []byte {
	for {
		c := byte(x & 0x7F)
		x >>= 7
		if x == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendU16(dst []byte, x uint16) []byte { return append(dst, byte(x>>8), byte(x)) }

func appendU32(dst []byte, x uint32) []byte {
	return append(dst, byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
}

func appendStr(dst []byte, s string) []byte {
	return append(appendU16(dst, uint16(len(s))), s...)
}

func appendBin(dst []byte, b []byte) []byte {
	return append(appendU16(dst, uint16(len(b))), b...)
}
