package amqp

import (
	"encoding/binary"
	"time"
)

// Properties are the basic class content-header properties. Zero-valued fields are absent on the wire.
//
// Headers is present on the wire when it is non-nil (so a received empty
// headers table survives a decode/encode round trip); DeliveryMode and
// Priority are absent when 0; Timestamp is absent when IsZero().
type Properties struct {
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string
	MessageID       string
	Timestamp       time.Time // zero = absent; seconds resolution
	Type            string
	UserID          string
	AppID           string
	ClusterID       string
}

// Property flag bits: the first property is the most significant bit of the
// first 16-bit flag word; bit 0 of each word says another word follows.
const (
	flagContentType     = 1 << 15
	flagContentEncoding = 1 << 14
	flagHeaders         = 1 << 13
	flagDeliveryMode    = 1 << 12
	flagPriority        = 1 << 11
	flagCorrelationID   = 1 << 10
	flagReplyTo         = 1 << 9
	flagExpiration      = 1 << 8
	flagMessageID       = 1 << 7
	flagTimestamp       = 1 << 6
	flagType            = 1 << 5
	flagUserID          = 1 << 4
	flagAppID           = 1 << 3
	flagClusterID       = 1 << 2
	flagReserved        = 1 << 1 // no 15th basic property exists
	flagContinuation    = 1 << 0
)

// decodeFlags reads the property flag words from raw and returns the first
// word's property bits and the property list that follows. Continuation words
// are accepted only if they set no property bits (basic has 14 properties).
func decodeFlags(raw []byte) (uint16, []byte, error) {
	if len(raw) < 2 {
		return 0, nil, malformed("truncated property flags")
	}
	flags := binary.BigEndian.Uint16(raw)
	raw = raw[2:]
	if flags&flagReserved != 0 {
		return 0, nil, malformed("unknown property flag 0x%04x", flags&flagReserved)
	}
	for more := flags&flagContinuation != 0; more; {
		if len(raw) < 2 {
			return 0, nil, malformed("truncated property flags continuation")
		}
		w := binary.BigEndian.Uint16(raw)
		raw = raw[2:]
		if w&^flagContinuation != 0 {
			return 0, nil, malformed("unknown property flags 0x%04x in continuation word", w&^flagContinuation)
		}
		more = w&flagContinuation != 0
	}
	return flags &^ (flagReserved | flagContinuation), raw, nil
}

// propError turns a decoder failure into an *Error naming the property.
func propError(r *decoder) error {
	if r.err != nil {
		return malformed("property '%s': %s", r.field, errDetail(r.err))
	}
	return malformed("property '%s': %s", r.field, r.reason)
}

// DecodeProperties parses raw = property flags (16-bit words, continuation bit 0) + property list.
// Malformed input yields an *Error with code SyntaxError. Trailing bytes after
// the last present property are ignored.
func DecodeProperties(raw []byte) (Properties, error) {
	var p Properties
	flags, list, err := decodeFlags(raw)
	if err != nil {
		return p, err
	}
	r := decoder{b: list}
	if flags&flagContentType != 0 {
		p.ContentType = r.shortstr("content-type")
	}
	if flags&flagContentEncoding != 0 {
		p.ContentEncoding = r.shortstr("content-encoding")
	}
	if flags&flagHeaders != 0 {
		p.Headers = r.table("headers")
		if p.Headers == nil && r.ok() {
			p.Headers = Table{} // present but empty: keep it present
		}
	}
	if flags&flagDeliveryMode != 0 {
		p.DeliveryMode = r.octet("delivery-mode")
	}
	if flags&flagPriority != 0 {
		p.Priority = r.octet("priority")
	}
	if flags&flagCorrelationID != 0 {
		p.CorrelationID = r.shortstr("correlation-id")
	}
	if flags&flagReplyTo != 0 {
		p.ReplyTo = r.shortstr("reply-to")
	}
	if flags&flagExpiration != 0 {
		p.Expiration = r.shortstr("expiration")
	}
	if flags&flagMessageID != 0 {
		p.MessageID = r.shortstr("message-id")
	}
	if flags&flagTimestamp != 0 {
		p.Timestamp = r.timestamp("timestamp")
	}
	if flags&flagType != 0 {
		p.Type = r.shortstr("type")
	}
	if flags&flagUserID != 0 {
		p.UserID = r.shortstr("user-id")
	}
	if flags&flagAppID != 0 {
		p.AppID = r.shortstr("app-id")
	}
	if flags&flagClusterID != 0 {
		p.ClusterID = r.shortstr("cluster-id")
	}
	if !r.ok() {
		return Properties{}, propError(&r)
	}
	return p, nil
}

// Append encodes flags + list (the same raw form DecodeProperties reads).
// It fails if a shortstr property exceeds 255 bytes or Headers holds a value
// the table codec cannot encode; on error dst is returned unchanged.
func (p *Properties) Append(dst []byte) ([]byte, error) {
	start := len(dst)
	var flags uint16
	set := func(cond bool, bit uint16) {
		if cond {
			flags |= bit
		}
	}
	set(p.ContentType != "", flagContentType)
	set(p.ContentEncoding != "", flagContentEncoding)
	set(p.Headers != nil, flagHeaders)
	set(p.DeliveryMode != 0, flagDeliveryMode)
	set(p.Priority != 0, flagPriority)
	set(p.CorrelationID != "", flagCorrelationID)
	set(p.ReplyTo != "", flagReplyTo)
	set(p.Expiration != "", flagExpiration)
	set(p.MessageID != "", flagMessageID)
	set(!p.Timestamp.IsZero(), flagTimestamp)
	set(p.Type != "", flagType)
	set(p.UserID != "", flagUserID)
	set(p.AppID != "", flagAppID)
	set(p.ClusterID != "", flagClusterID)
	dst = binary.BigEndian.AppendUint16(dst, flags)

	var err error
	str := func(bit uint16, name, s string) {
		if err == nil && flags&bit != 0 {
			if dst, err = appendShortstr(dst, s); err != nil {
				err = encodeError("basic properties", name, err)
			}
		}
	}
	str(flagContentType, "content-type", p.ContentType)
	str(flagContentEncoding, "content-encoding", p.ContentEncoding)
	if err == nil && flags&flagHeaders != 0 {
		if dst, err = AppendTable(dst, p.Headers); err != nil {
			err = encodeError("basic properties", "headers", err)
		}
	}
	if flags&flagDeliveryMode != 0 {
		dst = append(dst, p.DeliveryMode)
	}
	if flags&flagPriority != 0 {
		dst = append(dst, p.Priority)
	}
	str(flagCorrelationID, "correlation-id", p.CorrelationID)
	str(flagReplyTo, "reply-to", p.ReplyTo)
	str(flagExpiration, "expiration", p.Expiration)
	str(flagMessageID, "message-id", p.MessageID)
	if flags&flagTimestamp != 0 {
		dst = appendTimestamp(dst, p.Timestamp)
	}
	str(flagType, "type", p.Type)
	str(flagUserID, "user-id", p.UserID)
	str(flagAppID, "app-id", p.AppID)
	str(flagClusterID, "cluster-id", p.ClusterID)
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// skipToHeaders returns the flags and the property list positioned at the
// headers property (content-type and content-encoding skipped, not copied).
func skipToHeaders(raw []byte) (uint16, decoder, error) {
	flags, list, err := decodeFlags(raw)
	if err != nil {
		return 0, decoder{}, err
	}
	r := decoder{b: list}
	if flags&flagContentType != 0 {
		r.shortstrBytes("content-type")
	}
	if flags&flagContentEncoding != 0 {
		r.shortstrBytes("content-encoding")
	}
	if !r.ok() {
		return 0, r, propError(&r)
	}
	return flags, r, nil
}

// RawDeliveryMode reads the delivery-mode property from raw property bytes
// without decoding the others (the headers table is skipped by its length,
// not parsed). It returns 0 if the property is absent.
func RawDeliveryMode(raw []byte) (uint8, error) {
	flags, r, err := skipToHeaders(raw)
	if err != nil || flags&flagDeliveryMode == 0 {
		return 0, err
	}
	if flags&flagHeaders != 0 {
		r.longstrBytes("headers") // a table is a 4-byte length and that many bytes
	}
	mode := r.octet("delivery-mode")
	if !r.ok() {
		return 0, propError(&r)
	}
	return mode, nil
}

// RawHeaders decodes only the headers property from raw property bytes.
// It returns nil if the property is absent (or present and empty).
func RawHeaders(raw []byte) (Table, error) {
	flags, r, err := skipToHeaders(raw)
	if err != nil || flags&flagHeaders == 0 {
		return nil, err
	}
	t := r.table("headers")
	if !r.ok() {
		return nil, propError(&r)
	}
	return t, nil
}
