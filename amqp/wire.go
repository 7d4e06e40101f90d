package amqp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// This file holds the primitive encoders and the bounds-checked decoder used
// by the generated method code, tables and properties.

// errNilMethod is returned when a nil Method (or a nil pointer inside one)
// is encoded.
var errNilMethod = errors.New("amqp: nil method")

// appendShortstr appends s as a shortstr (1-byte length). It fails if s is
// longer than 255 bytes.
func appendShortstr(dst []byte, s string) ([]byte, error) {
	if len(s) > 255 {
		return dst, fmt.Errorf("amqp: shortstr of %d bytes exceeds 255", len(s))
	}
	dst = append(dst, byte(len(s)))
	return append(dst, s...), nil
}

// appendLongstr appends s as a longstr (4-byte length).
func appendLongstr(dst []byte, s string) ([]byte, error) {
	if uint64(len(s)) > 0xFFFFFFFF {
		return dst, fmt.Errorf("amqp: longstr of %d bytes exceeds 4 GiB", len(s))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...), nil
}

// appendTimestamp appends t as a 64-bit count of seconds since the Unix epoch.
func appendTimestamp(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t.Unix()))
}

// timestampFromWire converts wire seconds to a UTC time.Time.
func timestampFromWire(v uint64) time.Time { return time.Unix(int64(v), 0).UTC() }

// decoder reads AMQP primitives from b. Every read checks the remaining
// length first; the first failure is recorded (field and reason) and every
// later read returns a zero value, so generated code can decode a whole
// argument list and check once at the end.
//
// Invariant: no read allocates more than len(b) bytes, whatever a length
// prefix claims.
type decoder struct {
	b      []byte
	field  string // field that failed
	reason string // why it failed; "" while ok
	err    error  // underlying table error, if any
}

func (r *decoder) fail(field, reason string) {
	if r.reason == "" {
		r.field, r.reason = field, reason
	}
	r.b = nil
}

func (r *decoder) ok() bool { return r.reason == "" }

func (r *decoder) octet(field string) uint8 {
	if !r.ok() {
		return 0
	}
	if len(r.b) < 1 {
		r.fail(field, "truncated octet")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *decoder) short(field string) uint16 {
	if !r.ok() {
		return 0
	}
	if len(r.b) < 2 {
		r.fail(field, "truncated short")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *decoder) long(field string) uint32 {
	if !r.ok() {
		return 0
	}
	if len(r.b) < 4 {
		r.fail(field, "truncated long")
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *decoder) longlong(field string) uint64 {
	if !r.ok() {
		return 0
	}
	if len(r.b) < 8 {
		r.fail(field, "truncated longlong")
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *decoder) timestamp(field string) time.Time {
	if !r.ok() {
		return time.Time{}
	}
	if len(r.b) < 8 {
		r.fail(field, "truncated timestamp")
		return time.Time{}
	}
	return timestampFromWire(r.longlong(field))
}

// shortstrBytes returns the next shortstr without copying (aliases b).
func (r *decoder) shortstrBytes(field string) []byte {
	if !r.ok() {
		return nil
	}
	if len(r.b) < 1 {
		r.fail(field, "truncated shortstr length")
		return nil
	}
	n := int(r.b[0])
	if len(r.b)-1 < n {
		r.fail(field, fmt.Sprintf("shortstr length %d exceeds remaining %d bytes", n, len(r.b)-1))
		return nil
	}
	v := r.b[1 : 1+n]
	r.b = r.b[1+n:]
	return v
}

func (r *decoder) shortstr(field string) string {
	v := r.shortstrBytes(field)
	if len(v) == 0 {
		return ""
	}
	return string(v)
}

// longstrBytes returns the next longstr without copying (aliases b).
func (r *decoder) longstrBytes(field string) []byte {
	if !r.ok() {
		return nil
	}
	if len(r.b) < 4 {
		r.fail(field, "truncated longstr length")
		return nil
	}
	n := uint64(binary.BigEndian.Uint32(r.b))
	if uint64(len(r.b)-4) < n {
		r.fail(field, fmt.Sprintf("longstr length %d exceeds remaining %d bytes", n, len(r.b)-4))
		return nil
	}
	v := r.b[4 : 4+n]
	r.b = r.b[4+n:]
	return v
}

func (r *decoder) longstr(field string) string {
	v := r.longstrBytes(field)
	if len(v) == 0 {
		return ""
	}
	return string(v)
}

func (r *decoder) table(field string) Table {
	if !r.ok() {
		return nil
	}
	t, rest, err := decodeTable(r.b, 0)
	if err != nil {
		r.fail(field, "bad table")
		r.err = err
		return nil
	}
	r.b = rest
	return t
}

// encodeError wraps an encoding failure of one method argument.
func encodeError(name, field string, err error) error {
	return fmt.Errorf("amqp: encode %s field '%s': %w", name, field, err)
}
