package mqtt

import (
	"fmt"
	"math/bits"
)

// PropID is an MQTT 5 property identifier (MQTT 5.0 section 2.2.2.2).
type PropID byte

// The MQTT 5 properties.
const (
	PropPayloadFormat           PropID = 0x01 // byte
	PropMessageExpiry           PropID = 0x02 // four-byte integer
	PropContentType             PropID = 0x03 // UTF-8 string
	PropResponseTopic           PropID = 0x08 // UTF-8 string
	PropCorrelationData         PropID = 0x09 // binary
	PropSubscriptionID          PropID = 0x0B // variable byte integer
	PropSessionExpiry           PropID = 0x11 // four-byte integer
	PropAssignedClientID        PropID = 0x12 // UTF-8 string
	PropServerKeepAlive         PropID = 0x13 // two-byte integer
	PropAuthMethod              PropID = 0x15 // UTF-8 string
	PropAuthData                PropID = 0x16 // binary
	PropRequestProblemInfo      PropID = 0x17 // byte
	PropWillDelay               PropID = 0x18 // four-byte integer
	PropRequestResponseInfo     PropID = 0x19 // byte
	PropResponseInfo            PropID = 0x1A // UTF-8 string
	PropServerReference         PropID = 0x1C // UTF-8 string
	PropReasonString            PropID = 0x1F // UTF-8 string
	PropReceiveMaximum          PropID = 0x21 // two-byte integer
	PropTopicAliasMaximum       PropID = 0x22 // two-byte integer
	PropTopicAlias              PropID = 0x23 // two-byte integer
	PropMaximumQoS              PropID = 0x24 // byte
	PropRetainAvailable         PropID = 0x25 // byte
	PropUserProperty            PropID = 0x26 // UTF-8 string pair
	PropMaximumPacketSize       PropID = 0x27 // four-byte integer
	PropWildcardSubAvailable    PropID = 0x28 // byte
	PropSubscriptionIDAvailable PropID = 0x29 // byte
	PropSharedSubAvailable      PropID = 0x2A // byte
)

type propKind byte

const (
	kNone propKind = iota
	kByte
	kU16
	kU32
	kVarint
	kString
	kBinary
	kPair
)

var propKinds = [0x2B]propKind{
	PropPayloadFormat: kByte, PropMessageExpiry: kU32, PropContentType: kString, PropResponseTopic: kString,
	PropCorrelationData: kBinary, PropSubscriptionID: kVarint, PropSessionExpiry: kU32,
	PropAssignedClientID: kString, PropServerKeepAlive: kU16, PropAuthMethod: kString, PropAuthData: kBinary,
	PropRequestProblemInfo: kByte, PropWillDelay: kU32, PropRequestResponseInfo: kByte, PropResponseInfo: kString,
	PropServerReference: kString, PropReasonString: kString, PropReceiveMaximum: kU16, PropTopicAliasMaximum: kU16,
	PropTopicAlias: kU16, PropMaximumQoS: kByte, PropRetainAvailable: kByte, PropUserProperty: kPair,
	PropMaximumPacketSize: kU32, PropWildcardSubAvailable: kByte, PropSubscriptionIDAvailable: kByte,
	PropSharedSubAvailable: kByte,
}

// PropSet is a set of property identifiers.
type PropSet uint64

func propSet(ids ...PropID) PropSet {
	var s PropSet
	for _, id := range ids {
		s |= 1 << id
	}
	return s
}

// The properties each packet may carry (MQTT 5.0 table 2-4).
var (
	connectProps = propSet(PropSessionExpiry, PropReceiveMaximum, PropMaximumPacketSize, PropTopicAliasMaximum,
		PropRequestResponseInfo, PropRequestProblemInfo, PropUserProperty, PropAuthMethod, PropAuthData)
	willProps = propSet(PropWillDelay, PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropUserProperty)
	connackProps = propSet(PropSessionExpiry, PropReceiveMaximum, PropMaximumQoS, PropRetainAvailable,
		PropMaximumPacketSize, PropAssignedClientID, PropTopicAliasMaximum, PropReasonString, PropUserProperty,
		PropWildcardSubAvailable, PropSubscriptionIDAvailable, PropSharedSubAvailable, PropServerKeepAlive,
		PropResponseInfo, PropServerReference, PropAuthMethod, PropAuthData)
	publishProps = propSet(PropPayloadFormat, PropMessageExpiry, PropTopicAlias, PropResponseTopic,
		PropCorrelationData, PropUserProperty, PropSubscriptionID, PropContentType)
	ackProps         = propSet(PropReasonString, PropUserProperty)
	subscribeProps   = propSet(PropSubscriptionID, PropUserProperty)
	unsubscribeProps = propSet(PropUserProperty)
	disconnectProps  = propSet(PropSessionExpiry, PropReasonString, PropUserProperty, PropServerReference)
	authProps        = propSet(PropAuthMethod, PropAuthData, PropReasonString, PropUserProperty)
)

// UserProperty is one name/value pair; a packet's user properties keep their order and may repeat names.
type UserProperty struct {
	Key, Value string
}

// Properties holds an MQTT 5 packet's properties. Present says which single-valued ones were
// received or are to be sent (a zero MaximumQoS means something, an absent one does not); user
// properties and subscription identifiers are sent when their slices are non-empty. Binary values
// decoded by Decode alias the decoded bytes. 3.1 and 3.1.1 have no properties: Append ignores them.
type Properties struct {
	Present PropSet

	PayloadFormat           byte
	MessageExpiry           uint32
	ContentType             string
	ResponseTopic           string
	CorrelationData         []byte
	SubscriptionIDs         []uint32 // one in SUBSCRIBE; any number in PUBLISH to a client
	SessionExpiry           uint32
	AssignedClientID        string
	ServerKeepAlive         uint16
	AuthMethod              string
	AuthData                []byte
	RequestProblemInfo      byte
	WillDelay               uint32
	RequestResponseInfo     byte
	ResponseInfo            string
	ServerReference         string
	ReasonString            string
	ReceiveMaximum          uint16
	TopicAliasMaximum       uint16
	TopicAlias              uint16
	MaximumQoS              byte
	RetainAvailable         byte
	UserProperties          []UserProperty
	MaximumPacketSize       uint32
	WildcardSubAvailable    byte
	SubscriptionIDAvailable byte
	SharedSubAvailable      byte
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool {
	switch id {
	case PropUserProperty:
		return len(p.UserProperties) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return p.Present&(1<<id) != 0
}

// Set marks property id present (set its field too).
func (p *Properties) Set(id PropID) { p.Present |= 1 << id }

// reset empties p, keeping the slices' storage for reuse.
func (p *Properties) reset() {
	up, sid := p.UserProperties[:0], p.SubscriptionIDs[:0]
	*p = Properties{UserProperties: up, SubscriptionIDs: sid}
}

// props reads a property length and the properties after it into p; allowed is the packet's set.
// repeatSubID allows several subscription identifiers (a PUBLISH).
func (r *reader) props(p *Properties, allowed PropSet, repeatSubID bool) {
	n := r.varint("property length")
	if r.err != nil {
		return
	}
	if uint32(len(r.b)) < n {
		r.short("properties")
		return
	}
	pr := reader{b: r.b[:n], t: r.t, v: r.v}
	r.b = r.b[n:]
	for len(pr.b) > 0 && pr.err == nil {
		id32 := pr.varint("property identifier")
		if pr.err != nil {
			break
		}
		if id32 >= uint32(len(propKinds)) || propKinds[id32] == kNone {
			pr.fail(malformed(r.t, fmt.Sprintf("unknown property 0x%02X", id32)))
			break
		}
		id := PropID(id32)
		if allowed&(1<<id) == 0 {
			pr.fail(malformed(r.t, fmt.Sprintf("property 0x%02X not allowed in this packet", id32)))
			break
		}
		if id != PropUserProperty && !(id == PropSubscriptionID && repeatSubID) && p.Has(id) {
			pr.fail(protocolErr(r.t, fmt.Sprintf("property 0x%02X included more than once", id32)))
			break
		}
		p.Present |= 1 << id
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = pr.bool01(id)
		case PropMessageExpiry:
			p.MessageExpiry = pr.u32("message expiry interval")
		case PropContentType:
			p.ContentType = pr.str("content type")
		case PropResponseTopic:
			b := pr.strBytes("response topic")
			if pr.err == nil && validTopicName(b) != nil {
				pr.fail(protocolErr(r.t, "response topic is not a valid topic name"))
			}
			p.ResponseTopic = string(b)
		case PropCorrelationData:
			p.CorrelationData = pr.bin("correlation data")
		case PropSubscriptionID:
			x := pr.varint("subscription identifier")
			if pr.err == nil && x == 0 {
				pr.fail(protocolErr(r.t, "subscription identifier 0"))
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, x)
		case PropSessionExpiry:
			p.SessionExpiry = pr.u32("session expiry interval")
		case PropAssignedClientID:
			p.AssignedClientID = pr.str("assigned client identifier")
		case PropServerKeepAlive:
			p.ServerKeepAlive = pr.u16("server keep alive")
		case PropAuthMethod:
			p.AuthMethod = pr.str("authentication method")
		case PropAuthData:
			p.AuthData = pr.bin("authentication data")
		case PropRequestProblemInfo:
			p.RequestProblemInfo = pr.bool01(id)
		case PropWillDelay:
			p.WillDelay = pr.u32("will delay interval")
		case PropRequestResponseInfo:
			p.RequestResponseInfo = pr.bool01(id)
		case PropResponseInfo:
			p.ResponseInfo = pr.str("response information")
		case PropServerReference:
			p.ServerReference = pr.str("server reference")
		case PropReasonString:
			p.ReasonString = pr.str("reason string")
		case PropReceiveMaximum:
			p.ReceiveMaximum = pr.nonZero16(id)
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = pr.u16("topic alias maximum")
		case PropTopicAlias:
			p.TopicAlias = pr.nonZero16(id)
		case PropMaximumQoS:
			p.MaximumQoS = pr.bool01(id)
		case PropRetainAvailable:
			p.RetainAvailable = pr.bool01(id)
		case PropUserProperty:
			k := pr.str("user property name")
			v := pr.str("user property value")
			p.UserProperties = append(p.UserProperties, UserProperty{k, v})
		case PropMaximumPacketSize:
			x := pr.u32("maximum packet size")
			if pr.err == nil && x == 0 {
				pr.fail(protocolErr(r.t, "maximum packet size 0"))
			}
			p.MaximumPacketSize = x
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable = pr.bool01(id)
		case PropSubscriptionIDAvailable:
			p.SubscriptionIDAvailable = pr.bool01(id)
		case PropSharedSubAvailable:
			p.SharedSubAvailable = pr.bool01(id)
		}
	}
	if pr.err != nil {
		r.fail(pr.err)
	}
}

// bool01 reads a byte property whose only values are 0 and 1; others are a protocol error.
func (r *reader) bool01(id PropID) byte {
	c := r.u8("property value")
	if r.err == nil && c > 1 {
		r.fail(protocolErr(r.t, fmt.Sprintf("property 0x%02X has value %d (only 0 or 1 allowed)", byte(id), c)))
	}
	return c
}

func (r *reader) nonZero16(id PropID) uint16 {
	x := r.u16("property value")
	if r.err == nil && x == 0 {
		r.fail(protocolErr(r.t, fmt.Sprintf("property 0x%02X is 0", byte(id))))
	}
	return x
}

// toSend returns the identifiers of allowed to encode: the present single-valued ones, and user
// properties and subscription identifiers when their slices are non-empty.
func (p *Properties) toSend(allowed PropSet) PropSet {
	const multi = 1<<PropUserProperty | 1<<PropSubscriptionID
	m := p.Present &^ multi
	if len(p.UserProperties) > 0 {
		m |= 1 << PropUserProperty
	}
	if len(p.SubscriptionIDs) > 0 {
		m |= 1 << PropSubscriptionID
	}
	return m & allowed
}

// size returns the encoded length of p's properties without the property-length prefix.
func (p *Properties) size(allowed PropSet) int {
	n := 0
	for m := p.toSend(allowed); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(uint64(m)))
		switch propKinds[id] {
		case kPair:
			for _, u := range p.UserProperties {
				n += 1 + 2 + len(u.Key) + 2 + len(u.Value)
			}
		case kVarint:
			for _, x := range p.SubscriptionIDs {
				n += 1 + varintLen(x)
			}
		case kByte:
			n += 2
		case kU16:
			n += 3
		case kU32:
			n += 5
		case kString, kBinary:
			n += 3 + len(p.binValue(id))
		}
	}
	return n
}

func (p *Properties) binValue(id PropID) string {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropCorrelationData:
		return string(p.CorrelationData)
	case PropAssignedClientID:
		return p.AssignedClientID
	case PropAuthMethod:
		return p.AuthMethod
	case PropAuthData:
		return string(p.AuthData)
	case PropResponseInfo:
		return p.ResponseInfo
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return ""
}

func (p *Properties) intValue(id PropID) uint32 {
	switch id {
	case PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case PropWillDelay:
		return p.WillDelay
	case PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case PropSubscriptionIDAvailable:
		return uint32(p.SubscriptionIDAvailable)
	case PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

// check validates p for encoding: lengths that fit and strings that are valid.
func (p *Properties) check(allowed PropSet) error {
	for m := p.Present & allowed & (1<<len(propKinds) - 1); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(uint64(m)))
		switch propKinds[id] {
		case kString:
			if s := p.binValue(id); len(s) > 65535 || !validUTF8String(s) {
				return fmt.Errorf("mqtt: property 0x%02X: invalid UTF-8 string", byte(id))
			}
		case kBinary:
			if len(p.binValue(id)) > 65535 {
				return fmt.Errorf("mqtt: property 0x%02X: longer than 65535 bytes", byte(id))
			}
		}
	}
	if allowed&(1<<PropUserProperty) != 0 {
		for _, u := range p.UserProperties {
			if len(u.Key) > 65535 || len(u.Value) > 65535 || !validUTF8String(u.Key) || !validUTF8String(u.Value) {
				return fmt.Errorf("mqtt: user property %q: invalid UTF-8 string", u.Key)
			}
		}
	}
	if allowed&(1<<PropSubscriptionID) != 0 {
		for _, x := range p.SubscriptionIDs {
			if x == 0 || x > MaxRemainingLength {
				return fmt.Errorf("mqtt: subscription identifier %d out of range", x)
			}
		}
	}
	return nil
}

// appendProps appends the property length and the properties in identifier order.
func (p *Properties) appendProps(dst []byte, allowed PropSet, size int) []byte {
	dst = appendVarint(dst, uint32(size))
	for m := p.toSend(allowed); m != 0; m &= m - 1 {
		id := PropID(bits.TrailingZeros64(uint64(m)))
		switch propKinds[id] {
		case kPair:
			for _, u := range p.UserProperties {
				dst = appendStr(appendStr(append(dst, byte(id)), u.Key), u.Value)
			}
		case kVarint:
			for _, x := range p.SubscriptionIDs {
				dst = appendVarint(append(dst, byte(id)), x)
			}
		case kByte:
			dst = append(dst, byte(id), byte(p.intValue(id)))
		case kU16:
			dst = appendU16(append(dst, byte(id)), uint16(p.intValue(id)))
		case kU32:
			dst = appendU32(append(dst, byte(id)), p.intValue(id))
		case kString, kBinary:
			dst = appendStr(append(dst, byte(id)), p.binValue(id))
		}
	}
	return dst
}
