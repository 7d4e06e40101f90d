package amqp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Table is an AMQP field table. Keys are shortstrs (at most 255 bytes).
//
// Decoded values have these Go types, per RabbitMQ's field-type chart
// (https://www.rabbitmq.com/amqp-0-9-1-errata.html, "field types"):
//
//	't' bool      'b' int8     'B' uint8    's' int16    'u' uint16
//	'I' int32     'i' uint32   'l' int64    'f' float32  'd' float64
//	'D' Decimal   'S' string   'x' []byte   'T' time.Time (UTC, seconds)
//	'F' Table     'A' []any    'V' nil
//
// A zero-length nested table decodes as a nil Table and a zero-length array
// as a nil []any; Equal and ValueEqual treat nil and empty as equal.
type Table map[string]any

// Decimal is an AMQP decimal: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// maxDepth bounds the nesting of tables and arrays, on decode (so hostile
// input cannot exhaust the stack) and on encode (so a cyclic []any fails
// instead of recursing forever).
const maxDepth = 64

// AppendTable appends t as a field table: a 4-byte length, then the entries.
// Entries are written in sorted key order, so equal tables encode to equal
// bytes. A nil table encodes as an empty one. On error dst is returned
// unchanged.
func AppendTable(dst []byte, t Table) ([]byte, error) {
	return appendTable(dst, t, 0)
}

// DecodeTable decodes a field table (4-byte length, then entries) from the
// start of b and returns it with the bytes that follow it. An empty table
// decodes as nil. Malformed input yields an *Error with code SyntaxError.
func DecodeTable(b []byte) (Table, []byte, error) {
	return decodeTable(b, 0)
}

// AppendFieldValue appends v as a type octet and value. See Table for the
// accepted types; in addition int and uint64/uint (when they fit in int64)
// encode as 'l', and map[string]any encodes as 'F'. Any other type is an
// error. On error dst is returned unchanged.
func AppendFieldValue(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

// DecodeFieldValue decodes one type octet and value from the start of b and
// returns it with the remaining bytes.
func DecodeFieldValue(b []byte) (any, []byte, error) {
	return decodeValue(b, 0)
}

func appendTable(dst []byte, t Table, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, fmt.Errorf("amqp: field table nested deeper than %d", maxDepth)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	var stack [32]string
	keys := stack[:0]
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var err error
	for _, k := range keys {
		if dst, err = appendShortstr(dst, k); err != nil {
			return dst[:start], fmt.Errorf("amqp: field table key %.40q: %w", k, err)
		}
		if dst, err = appendValue(dst, t[k], depth); err != nil {
			return dst[:start], fmt.Errorf("amqp: field table key %q: %w", k, err)
		}
	}
	n := len(dst) - start - 4
	if uint64(n) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("amqp: field table of %d bytes exceeds 4 GiB", n)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

func appendArray(dst []byte, a []any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, fmt.Errorf("amqp: field array nested deeper than %d", maxDepth)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	var err error
	for i, v := range a {
		if dst, err = appendValue(dst, v, depth); err != nil {
			return dst[:start], fmt.Errorf("amqp: field array element %d: %w", i, err)
		}
	}
	n := len(dst) - start - 4
	if uint64(n) > math.MaxUint32 {
		return dst[:start], fmt.Errorf("amqp: field array of %d bytes exceeds 4 GiB", n)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// appendValue appends a type octet and v. depth is the nesting depth of the
// table or array that holds v.
func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	be := binary.BigEndian
	switch v := v.(type) {
	case nil:
		return append(dst, 'V'), nil
	case bool:
		if v {
			return append(dst, 't', 1), nil
		}
		return append(dst, 't', 0), nil
	case int8:
		return append(dst, 'b', byte(v)), nil
	case uint8:
		return append(dst, 'B', v), nil
	case int16:
		return be.AppendUint16(append(dst, 's'), uint16(v)), nil
	case uint16:
		return be.AppendUint16(append(dst, 'u'), v), nil
	case int32:
		return be.AppendUint32(append(dst, 'I'), uint32(v)), nil
	case uint32:
		return be.AppendUint32(append(dst, 'i'), v), nil
	case int64:
		return be.AppendUint64(append(dst, 'l'), uint64(v)), nil
	case int:
		return be.AppendUint64(append(dst, 'l'), uint64(int64(v))), nil
	case uint64:
		if v > math.MaxInt64 {
			return dst, fmt.Errorf("amqp: uint64 %d does not fit in a signed 64-bit field", v)
		}
		return be.AppendUint64(append(dst, 'l'), v), nil
	case uint:
		if uint64(v) > math.MaxInt64 {
			return dst, fmt.Errorf("amqp: uint %d does not fit in a signed 64-bit field", v)
		}
		return be.AppendUint64(append(dst, 'l'), uint64(v)), nil
	case float32:
		return be.AppendUint32(append(dst, 'f'), math.Float32bits(v)), nil
	case float64:
		return be.AppendUint64(append(dst, 'd'), math.Float64bits(v)), nil
	case Decimal:
		return be.AppendUint32(append(dst, 'D', v.Scale), uint32(v.Value)), nil
	case string:
		start := len(dst)
		out, err := appendLongstr(append(dst, 'S'), v)
		if err != nil {
			return dst[:start], err
		}
		return out, nil
	case []byte:
		if uint64(len(v)) > math.MaxUint32 {
			return dst, fmt.Errorf("amqp: byte array of %d bytes exceeds 4 GiB", len(v))
		}
		dst = be.AppendUint32(append(dst, 'x'), uint32(len(v)))
		return append(dst, v...), nil
	case time.Time:
		return appendTimestamp(append(dst, 'T'), v), nil
	case Table:
		start := len(dst)
		out, err := appendTable(append(dst, 'F'), v, depth+1)
		if err != nil {
			return dst[:start], err
		}
		return out, nil
	case map[string]any:
		start := len(dst)
		out, err := appendTable(append(dst, 'F'), Table(v), depth+1)
		if err != nil {
			return dst[:start], err
		}
		return out, nil
	case []any:
		start := len(dst)
		out, err := appendArray(append(dst, 'A'), v, depth+1)
		if err != nil {
			return dst[:start], err
		}
		return out, nil
	default:
		return dst, fmt.Errorf("amqp: unsupported field value type %T", v)
	}
}

// errDetail returns the text of an *Error without its "CODE_NAME - " prefix,
// so nested decode errors read as one sentence.
func errDetail(err error) string {
	if e, ok := err.(*Error); ok {
		return strings.TrimPrefix(e.Text, CodeName(e.Code)+" - ")
	}
	return err.Error()
}

func decodeTable(b []byte, depth int) (Table, []byte, error) {
	if depth > maxDepth {
		return nil, b, malformed("field table nested deeper than %d", maxDepth)
	}
	if len(b) < 4 {
		return nil, b, malformed("truncated field table length")
	}
	n := uint64(binary.BigEndian.Uint32(b))
	if n > uint64(len(b)-4) {
		return nil, b, malformed("field table length %d exceeds remaining %d bytes", n, len(b)-4)
	}
	body, rest := b[4:4+n], b[4+n:]
	if n == 0 {
		return nil, rest, nil
	}
	t := make(Table)
	for len(body) > 0 {
		kn := int(body[0])
		if len(body)-1 < kn {
			return nil, b, malformed("field table key length %d exceeds remaining %d bytes", kn, len(body)-1)
		}
		key := string(body[1 : 1+kn])
		v, r, err := decodeValue(body[1+kn:], depth)
		if err != nil {
			return nil, b, malformed("field table key %q: %s", key, errDetail(err))
		}
		t[key] = v
		body = r
	}
	return t, rest, nil
}

func decodeArray(b []byte, depth int) ([]any, []byte, error) {
	if depth > maxDepth {
		return nil, b, malformed("field array nested deeper than %d", maxDepth)
	}
	if len(b) < 4 {
		return nil, b, malformed("truncated field array length")
	}
	n := uint64(binary.BigEndian.Uint32(b))
	if n > uint64(len(b)-4) {
		return nil, b, malformed("field array length %d exceeds remaining %d bytes", n, len(b)-4)
	}
	body, rest := b[4:4+n], b[4+n:]
	var a []any
	for len(body) > 0 {
		v, r, err := decodeValue(body, depth)
		if err != nil {
			return nil, b, malformed("field array element %d: %s", len(a), errDetail(err))
		}
		a = append(a, v)
		body = r
	}
	return a, rest, nil
}

// fixedSize is the value size of each fixed-width field type (0 = variable).
var fixedSize = [256]uint8{
	't': 1, 'b': 1, 'B': 1, 's': 2, 'u': 2, 'I': 4, 'i': 4,
	'l': 8, 'f': 4, 'd': 8, 'D': 5, 'T': 8,
}

// decodeValue decodes a type octet and value. depth is the nesting depth of
// the table or array that holds the value.
func decodeValue(b []byte, depth int) (any, []byte, error) {
	if len(b) < 1 {
		return nil, b, malformed("truncated field value type")
	}
	typ, p := b[0], b[1:]
	if sz := int(fixedSize[typ]); sz > len(p) {
		return nil, b, malformed("truncated field value of type '%c'", typ)
	}
	be := binary.BigEndian
	switch typ {
	case 't':
		return p[0] != 0, p[1:], nil
	case 'b':
		return int8(p[0]), p[1:], nil
	case 'B':
		return p[0], p[1:], nil
	case 's':
		return int16(be.Uint16(p)), p[2:], nil
	case 'u':
		return be.Uint16(p), p[2:], nil
	case 'I':
		return int32(be.Uint32(p)), p[4:], nil
	case 'i':
		return be.Uint32(p), p[4:], nil
	case 'l':
		return int64(be.Uint64(p)), p[8:], nil
	case 'f':
		return math.Float32frombits(be.Uint32(p)), p[4:], nil
	case 'd':
		return math.Float64frombits(be.Uint64(p)), p[8:], nil
	case 'D':
		return Decimal{Scale: p[0], Value: int32(be.Uint32(p[1:]))}, p[5:], nil
	case 'T':
		return timestampFromWire(be.Uint64(p)), p[8:], nil
	case 'S', 'x':
		if len(p) < 4 {
			return nil, b, malformed("truncated length of field value of type '%c'", typ)
		}
		n := uint64(be.Uint32(p))
		if n > uint64(len(p)-4) {
			return nil, b, malformed("field value of type '%c' length %d exceeds remaining %d bytes", typ, n, len(p)-4)
		}
		v, rest := p[4:4+n], p[4+n:]
		if typ == 'S' {
			return string(v), rest, nil
		}
		return bytes.Clone(v), rest, nil
	case 'F':
		t, rest, err := decodeTable(p, depth+1)
		if err != nil {
			return nil, b, err
		}
		return t, rest, nil
	case 'A':
		a, rest, err := decodeArray(p, depth+1)
		if err != nil {
			return nil, b, err
		}
		return a, rest, nil
	case 'V':
		return nil, p, nil
	default:
		return nil, b, malformed("unknown field value type 0x%02x", typ)
	}
}

// Equal reports deep equality of two tables (for binding and argument
// equivalence). A nil and an empty table are equal. Values compare as
// ValueEqual does.
func (t Table) Equal(u Table) bool { return tableEqual(t, u, 0) }

// ValueEqual reports deep equality of two field values. Types must match
// exactly, except that Table and map[string]any are interchangeable and a nil
// slice equals an empty one. Floats compare by bit pattern (so NaN equals the
// same NaN), times by instant, byte arrays by content. Values nested deeper
// than the decoder allows, and types the codec does not know, are unequal.
func ValueEqual(a, b any) bool { return valueEqual(a, b, 0) }

func tableEqual(t, u Table, depth int) bool {
	if depth > maxDepth || len(t) != len(u) {
		return false
	}
	for k, tv := range t {
		uv, ok := u[k]
		if !ok || !valueEqual(tv, uv, depth) {
			return false
		}
	}
	return true
}

func asTable(v any) (Table, bool) {
	switch v := v.(type) {
	case Table:
		return v, true
	case map[string]any:
		return Table(v), true
	}
	return nil, false
}

func valueEqual(a, b any, depth int) bool {
	switch av := a.(type) {
	case nil:
		return b == nil
	case Table, map[string]any:
		at, _ := asTable(a)
		bt, ok := asTable(b)
		return ok && tableEqual(at, bt, depth+1)
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) || depth > maxDepth {
			return false
		}
		for i := range av {
			if !valueEqual(av[i], bv[i], depth+1) {
				return false
			}
		}
		return true
	case []byte:
		bv, ok := b.([]byte)
		return ok && bytes.Equal(av, bv)
	case time.Time:
		bv, ok := b.(time.Time)
		return ok && av.Equal(bv)
	case float32:
		bv, ok := b.(float32)
		return ok && math.Float32bits(av) == math.Float32bits(bv)
	case float64:
		bv, ok := b.(float64)
		return ok && math.Float64bits(av) == math.Float64bits(bv)
	case bool, int8, uint8, int16, uint16, int32, uint32, int64, int, uint64, uint, string, Decimal:
		return a == b // dynamic types are comparable; differing types compare unequal
	default:
		return false
	}
}

// FieldTypeName returns RabbitMQ's name for the field type of a decoded value (rabbit_binary_parser's
// atoms: "longstr", "signedint", ...), as RabbitMQ's error texts print it.
func FieldTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "void"
	case bool:
		return "bool"
	case int8:
		return "byte"
	case uint8:
		return "unsignedbyte"
	case int16:
		return "short"
	case uint16:
		return "unsignedshort"
	case int32:
		return "signedint"
	case uint32:
		return "unsignedint"
	case int64, int, uint64, uint:
		return "long"
	case float32:
		return "float"
	case float64:
		return "double"
	case Decimal:
		return "decimal"
	case string:
		return "longstr"
	case []byte:
		return "binary"
	case time.Time:
		return "timestamp"
	case Table, map[string]any:
		return "table"
	case []any:
		return "array"
	}
	return "unknown"
}
