package streamproto

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The messages of the stream protocol are AMQP 1.0 messages (a sequence of
// described sections). Message is the part of one a broker maps to and from
// AMQP 0-9-1: the header's durable, priority and ttl, the properties, the
// application properties (simple values only) and the body as data
// sections or an amqp-value. Delivery and message annotations and the
// footer are skipped on decode.

// Symbol is an AMQP 1.0 symbol.
type Symbol string

// Timestamp is an AMQP 1.0 timestamp: milliseconds since the Unix epoch.
type Timestamp int64

// UUID is an AMQP 1.0 uuid.
type UUID [16]byte

// AppProperty is one application property. Value is nil, bool, int64,
// uint64, float64, string, Symbol, []byte, Timestamp or UUID.
type AppProperty struct {
	Key   string
	Value any
}

// Message is a decoded AMQP 1.0 message.
type Message struct {
	HasHeader   bool
	Durable     bool
	Priority    uint8
	HasPriority bool
	TTL         uint32 // milliseconds, if HasTTL
	HasTTL      bool

	// Properties; MessageID and CorrelationID hold a string, uint64, UUID or []byte (nil: absent).
	MessageID       any
	UserID          []byte
	To              string
	Subject         string
	ReplyTo         string
	CorrelationID   any
	ContentType     string
	ContentEncoding string
	AbsoluteExpiry  Timestamp // 0: absent
	CreationTime    Timestamp // 0: absent
	GroupID         string

	AppProperties []AppProperty

	Data     [][]byte // data sections (aliasing the input)
	Value    any      // an amqp-value body if HasValue
	HasValue bool
}

const (
	secHeader      = 0x70
	secDeliveryAnn = 0x71
	secMessageAnn  = 0x72
	secProperties  = 0x73
	secAppProps    = 0x74
	secData        = 0x75
	secSequence    = 0x76
	secValue       = 0x77
	secFooter      = 0x78
)

// maxDepth bounds nested compound values while skipping them.
const maxDepth = 32

type a10 struct {
	b   []byte
	err error
}

func (d *a10) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("amqp 1.0 message: "+format, args...)
	}
	d.b = nil
}

func (d *a10) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail("need %d bytes, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *a10) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

// value decodes one value (a constructor and its data). Described values
// decode as their value; compound values (lists, maps, arrays) as nil,
// skipped.
func (d *a10) value(depth int) any {
	if depth > maxDepth {
		d.fail("values nested too deep")
		return nil
	}
	c := d.u8()
	if d.err != nil {
		return nil
	}
	switch c {
	case 0x00: // described: descriptor, then the value
		d.value(depth + 1)
		return d.value(depth + 1)
	case 0x40:
		return nil
	case 0x41:
		return true
	case 0x42:
		return false
	case 0x56:
		return d.u8() != 0
	case 0x43, 0x44:
		return uint64(0)
	case 0x50, 0x52, 0x53:
		return uint64(d.u8())
	case 0x60:
		if v := d.take(2); v != nil {
			return uint64(binary.BigEndian.Uint16(v))
		}
	case 0x70:
		if v := d.take(4); v != nil {
			return uint64(binary.BigEndian.Uint32(v))
		}
	case 0x80:
		if v := d.take(8); v != nil {
			return binary.BigEndian.Uint64(v)
		}
	case 0x51, 0x54, 0x55:
		return int64(int8(d.u8()))
	case 0x61:
		if v := d.take(2); v != nil {
			return int64(int16(binary.BigEndian.Uint16(v)))
		}
	case 0x71:
		if v := d.take(4); v != nil {
			return int64(int32(binary.BigEndian.Uint32(v)))
		}
	case 0x81:
		if v := d.take(8); v != nil {
			return int64(binary.BigEndian.Uint64(v))
		}
	case 0x72:
		if v := d.take(4); v != nil {
			return float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
		}
	case 0x82:
		if v := d.take(8); v != nil {
			return math.Float64frombits(binary.BigEndian.Uint64(v))
		}
	case 0x73: // char (UTF-32)
		if v := d.take(4); v != nil {
			return string(rune(binary.BigEndian.Uint32(v)))
		}
	case 0x83:
		if v := d.take(8); v != nil {
			return Timestamp(int64(binary.BigEndian.Uint64(v)))
		}
	case 0x98:
		if v := d.take(16); v != nil {
			var u UUID
			copy(u[:], v)
			return u
		}
	case 0x74, 0x84, 0x94: // decimals: skipped
		d.take(map[byte]int{0x74: 4, 0x84: 8, 0x94: 16}[c])
	case 0xa0, 0xa1, 0xa3:
		v := d.take(int(d.u8()))
		return variable(c, v)
	case 0xb0, 0xb1, 0xb3:
		var n int
		if v := d.take(4); v != nil {
			n = int(binary.BigEndian.Uint32(v))
		}
		return variable(c, d.take(n))
	case 0x45: // empty list
	case 0xc0, 0xc1, 0xe0: // list8, map8, array8: size, then the rest
		d.take(int(d.u8()))
	case 0xd0, 0xd1, 0xf0:
		var n int
		if v := d.take(4); v != nil {
			n = int(binary.BigEndian.Uint32(v))
		}
		d.take(n)
	default:
		d.fail("unknown constructor %#02x", c)
	}
	return nil
}

func variable(c byte, v []byte) any {
	if v == nil {
		v = []byte{}
	}
	switch c & 0x0f {
	case 0x0:
		return v
	case 0x1:
		return string(v)
	}
	return Symbol(v)
}

// compound reads a list or map constructor and returns its count and a
// decoder over its elements.
func (d *a10) compound(list bool) (int, *a10) {
	c := d.u8()
	if d.err != nil {
		return 0, nil
	}
	var size, count int
	switch {
	case list && c == 0x45:
		return 0, &a10{}
	case list && c == 0xc0, !list && c == 0xc1:
		size = int(d.u8())
		if size < 1 {
			d.fail("compound of size %d", size)
			return 0, nil
		}
		body := d.take(size)
		if body == nil {
			return 0, nil
		}
		return int(body[0]), &a10{b: body[1:]}
	case list && c == 0xd0, !list && c == 0xd1:
		h := d.take(8)
		if h == nil {
			return 0, nil
		}
		size, count = int(binary.BigEndian.Uint32(h)), int(binary.BigEndian.Uint32(h[4:]))
		if size < 4 {
			d.fail("compound of size %d", size)
			return 0, nil
		}
		body := d.take(size - 4)
		if body == nil {
			return 0, nil
		}
		return count, &a10{b: body}
	}
	d.fail("constructor %#02x where a %s was expected", c, map[bool]string{true: "list", false: "map"}[list])
	return 0, nil
}

// DecodeMessage decodes an AMQP 1.0 message. Byte fields alias b.
func DecodeMessage(b []byte) (*Message, error) {
	m := &Message{}
	d := &a10{b: b}
	for d.err == nil && len(d.b) > 0 {
		if d.u8() != 0x00 {
			d.fail("a section must be a described value")
			break
		}
		desc := d.value(1)
		code, ok := desc.(uint64)
		if !ok {
			if s, isSym := desc.(Symbol); isSym {
				code = map[Symbol]uint64{"amqp:header:list": secHeader, "amqp:properties:list": secProperties,
					"amqp:application-properties:map": secAppProps, "amqp:data:binary": secData, "amqp:amqp-value:*": secValue}[s]
			}
		}
		switch code {
		case secHeader:
			n, l := d.compound(true)
			for i := 0; l != nil && i < n && l.err == nil; i++ {
				v := l.value(1)
				switch i {
				case 0:
					m.Durable, _ = v.(bool)
				case 1:
					if p, ok := v.(uint64); ok {
						m.Priority, m.HasPriority = uint8(min(p, 255)), true
					}
				case 2:
					if t, ok := v.(uint64); ok {
						m.TTL, m.HasTTL = uint32(min(t, math.MaxUint32)), true
					}
				}
			}
			m.HasHeader = true
			if l != nil && l.err != nil {
				d.fail("header: %v", l.err)
			}
		case secProperties:
			n, l := d.compound(true)
			for i := 0; l != nil && i < n && l.err == nil; i++ {
				v := l.value(1)
				s, _ := v.(string)
				if sym, ok := v.(Symbol); ok {
					s = string(sym)
				}
				ts, _ := v.(Timestamp)
				switch i {
				case 0:
					m.MessageID = v
				case 1:
					m.UserID, _ = v.([]byte)
				case 2:
					m.To = s
				case 3:
					m.Subject = s
				case 4:
					m.ReplyTo = s
				case 5:
					m.CorrelationID = v
				case 6:
					m.ContentType = s
				case 7:
					m.ContentEncoding = s
				case 8:
					m.AbsoluteExpiry = ts
				case 9:
					m.CreationTime = ts
				case 10:
					m.GroupID = s
				}
			}
			if l != nil && l.err != nil {
				d.fail("properties: %v", l.err)
			}
		case secAppProps:
			n, l := d.compound(false)
			for i := 0; l != nil && i+1 < n+1 && i < n && l.err == nil; i += 2 {
				k := l.value(1)
				v := l.value(1)
				ks, ok := k.(string)
				if !ok {
					if sym, isSym := k.(Symbol); isSym {
						ks, ok = string(sym), true
					}
				}
				if ok && l.err == nil {
					m.AppProperties = append(m.AppProperties, AppProperty{ks, v})
				}
			}
			if l != nil && l.err != nil {
				d.fail("application properties: %v", l.err)
			}
		case secData:
			v := d.value(1)
			bin, ok := v.([]byte)
			if !ok && d.err == nil {
				d.fail("a data section must hold binary")
			}
			if m.HasValue && d.err == nil {
				// AMQP 1.0 3.2: the body is data sections, or sequences, or ONE amqp-value.
				d.fail("a data section after an amqp-value body")
			}
			m.Data = append(m.Data, bin)
		case secValue:
			if (m.HasValue || len(m.Data) > 0) && d.err == nil {
				d.fail("an amqp-value section after another body section")
			}
			m.Value, m.HasValue = d.value(1), true
		default: // annotations, sequences, footer, unknown: skipped
			d.value(1)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// Body is the message's body as bytes: its data sections joined, or an
// amqp-value string or binary.
func (m *Message) Body() []byte {
	if len(m.Data) == 1 {
		return m.Data[0]
	}
	if len(m.Data) > 1 {
		var out []byte
		for _, d := range m.Data {
			out = append(out, d...)
		}
		return out
	}
	switch v := m.Value.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

// AppendMessage appends m encoded as an AMQP 1.0 message: header (if
// HasHeader), properties (if any is set), application properties (if any),
// then the data sections (one, empty, if none and no amqp-value).
func AppendMessage(dst []byte, m *Message) []byte {
	dst = AppendMessageHead(dst, m)
	if m.HasValue {
		return appendValue(append(dst, 0x00, 0x53, secValue), m.Value)
	}
	if len(m.Data) == 0 {
		return AppendDataSection(dst, []byte{})
	}
	for _, d := range m.Data {
		dst = AppendDataSection(dst, d)
	}
	return dst
}

// AppendDataSection appends a data section holding d (AppendMessage's body).
func AppendDataSection(dst, d []byte) []byte {
	return appendVar(append(dst, 0x00, 0x53, secData), 0xa0, 0xb0, d)
}

// AppendMessageHead appends the sections of m that come before its body (header, properties,
// application properties), as AppendMessage does: a message is its head and then its body's
// sections, so the head of many messages with the same properties can be encoded once.
func AppendMessageHead(dst []byte, m *Message) []byte {
	if m.HasHeader {
		var l []byte
		l = appendValue(l, m.Durable)
		n := 1
		if m.HasPriority || m.HasTTL {
			if m.HasPriority {
				l = append(l, 0x50, m.Priority)
			} else {
				l = append(l, 0x40)
			}
			n++
		}
		if m.HasTTL {
			l = append(l, 0x70)
			l = binary.BigEndian.AppendUint32(l, m.TTL)
			n++
		}
		dst = appendList(append(dst, 0x00, 0x53, secHeader), n, l)
	}
	props := []any{m.MessageID, nilIfEmpty(m.UserID), addr(m.To), str(m.Subject), addr(m.ReplyTo), m.CorrelationID,
		sym(m.ContentType), sym(m.ContentEncoding), ts(m.AbsoluteExpiry), ts(m.CreationTime), str(m.GroupID)}
	n := len(props)
	for n > 0 && props[n-1] == nil {
		n--
	}
	if n > 0 {
		var l []byte
		for _, v := range props[:n] {
			l = appendValue(l, v)
		}
		dst = appendList(append(dst, 0x00, 0x53, secProperties), n, l)
	}
	if len(m.AppProperties) > 0 {
		var l []byte
		for _, p := range m.AppProperties {
			l = appendValue(l, p.Key)
			l = appendValue(l, p.Value)
		}
		dst = append(dst, 0x00, 0x53, secAppProps, 0xd1)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(l)+4))
		dst = binary.BigEndian.AppendUint32(dst, uint32(2*len(m.AppProperties)))
		dst = append(dst, l...)
	}
	return dst
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func str(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type address string

func addr(s string) any {
	if s == "" {
		return nil
	}
	return address(s)
}

func sym(s string) any {
	if s == "" {
		return nil
	}
	return Symbol(s)
}

func ts(t Timestamp) any {
	if t == 0 {
		return nil
	}
	return t
}

func appendList(dst []byte, n int, l []byte) []byte {
	dst = append(dst, 0xd0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(l)+4))
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	return append(dst, l...)
}

func appendVar(dst []byte, small, large byte, b []byte) []byte {
	if len(b) < 256 {
		return append(append(dst, small, byte(len(b))), b...)
	}
	dst = binary.BigEndian.AppendUint32(append(dst, large), uint32(len(b)))
	return append(dst, b...)
}

func appendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, 0x40)
	case bool:
		if x {
			return append(dst, 0x41)
		}
		return append(dst, 0x42)
	case uint64:
		return binary.BigEndian.AppendUint64(append(dst, 0x80), x)
	case int64:
		return binary.BigEndian.AppendUint64(append(dst, 0x81), uint64(x))
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, 0x82), math.Float64bits(x))
	case Timestamp:
		return binary.BigEndian.AppendUint64(append(dst, 0x83), uint64(x))
	case UUID:
		return append(append(dst, 0x98), x[:]...)
	case []byte:
		return appendVar(dst, 0xa0, 0xb0, x)
	case string:
		return appendVar(dst, 0xa1, 0xb1, []byte(x))
	case address:
		return appendVar(dst, 0xa1, 0xb1, []byte(x))
	case Symbol:
		return appendVar(dst, 0xa3, 0xb3, []byte(x))
	}
	return append(dst, 0x40) // other types are not produced by DecodeMessage
}
