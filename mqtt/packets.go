package mqtt

import "fmt"

// PacketType is the control packet type in the high nibble of the first byte.
type PacketType byte

// The control packet types.
const (
	CONNECT     PacketType = 1
	CONNACK     PacketType = 2
	PUBLISH     PacketType = 3
	PUBACK      PacketType = 4
	PUBREC      PacketType = 5
	PUBREL      PacketType = 6
	PUBCOMP     PacketType = 7
	SUBSCRIBE   PacketType = 8
	SUBACK      PacketType = 9
	UNSUBSCRIBE PacketType = 10
	UNSUBACK    PacketType = 11
	PINGREQ     PacketType = 12
	PINGRESP    PacketType = 13
	DISCONNECT  PacketType = 14
	AUTH        PacketType = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", byte(t))
}

// Packet is one decoded control packet: *Connect, *Connack, *Publish, *PubAck, *PubRec, *PubRel,
// *PubComp, *Subscribe, *Suback, *Unsubscribe, *Unsuback, *Pingreq, *Pingresp, *Disconnect, *Auth.
type Packet interface {
	Type() PacketType
}

// Connect is CONNECT. Version is the protocol level the client asked for (decoding takes it from
// the packet, not from the version argument; Append encodes the version it is given).
type Connect struct {
	Version     Version
	CleanStart  bool // Clean Session in 3.1/3.1.1
	KeepAlive   uint16
	ClientID    string
	Will        *Will
	HasUsername bool
	Username    string
	HasPassword bool
	Password    []byte
	Properties  Properties
}

// Will is the will message in a CONNECT.
type Will struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties Properties // MQTT 5 will properties
}

// Connack is CONNACK. ReasonCode is the 3.1/3.1.1 return code (0-5) or the MQTT 5 reason code.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Publish is PUBLISH. Payload aliases the decoded bytes.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string
	PacketID   uint16 // QoS 1 and 2 only
	Properties Properties
	Payload    []byte
}

// PubAck is PUBACK; PubRec, PubRel and PubComp have the same fields.
type PubAck struct {
	PacketID   uint16
	ReasonCode ReasonCode // MQTT 5
	Properties Properties
}

// PubRec is PUBREC.
type PubRec PubAck

// PubRel is PUBREL.
type PubRel PubAck

// PubComp is PUBCOMP.
type PubComp PubAck

// Subscription is one topic filter of a SUBSCRIBE with its options.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool // MQTT 5
	RetainAsPublished bool // MQTT 5
	RetainHandling    byte // MQTT 5: 0, 1 or 2
}

// Subscribe is SUBSCRIBE.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Suback is SUBACK: one reason code (return code in 3.1.1) per subscription.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is UNSUBSCRIBE.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Unsuback is UNSUBACK; ReasonCodes are MQTT 5 only.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Pingreq is PINGREQ.
type Pingreq struct{}

// Pingresp is PINGRESP.
type Pingresp struct{}

// Disconnect is DISCONNECT; the reason code and properties are MQTT 5 only.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Auth is AUTH (MQTT 5 only).
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

func (*Connect) Type() PacketType     { return CONNECT }
func (*Connack) Type() PacketType     { return CONNACK }
func (*Publish) Type() PacketType     { return PUBLISH }
func (*PubAck) Type() PacketType      { return PUBACK }
func (*PubRec) Type() PacketType      { return PUBREC }
func (*PubRel) Type() PacketType      { return PUBREL }
func (*PubComp) Type() PacketType     { return PUBCOMP }
func (*Subscribe) Type() PacketType   { return SUBSCRIBE }
func (*Suback) Type() PacketType      { return SUBACK }
func (*Unsubscribe) Type() PacketType { return UNSUBSCRIBE }
func (*Unsuback) Type() PacketType    { return UNSUBACK }
func (*Pingreq) Type() PacketType     { return PINGREQ }
func (*Pingresp) Type() PacketType    { return PINGRESP }
func (*Disconnect) Type() PacketType  { return DISCONNECT }
func (*Auth) Type() PacketType        { return AUTH }

// reasonSet is a set of reason codes.
type reasonSet [4]uint64

func reasons(codes ...ReasonCode) reasonSet {
	var s reasonSet
	for _, c := range codes {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *reasonSet) has(c ReasonCode) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// The reason codes each MQTT 5 packet may carry (MQTT 5.0 chapter 3).
var (
	connackReasons = reasons(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
		0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	pubackReasons  = reasons(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
	pubrelReasons  = reasons(0x00, 0x92)
	subackReasons  = reasons(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	subackReasons3 = reasons(0x00, 0x01, 0x02, 0x80)
	unsubReasons   = reasons(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	discReasons    = reasons(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
		0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
	authReasons = reasons(0x00, 0x18, 0x19)
)

// PacketLength parses the fixed header at the start of b and returns the whole packet's length
// (fixed header included). It checks the remaining length's encoding (at most four bytes) and, when
// maxPacketSize > 0, the size against it (PacketTooLarge) as soon as the header is complete, before
// the rest has been read or any buffer allocated for it. ErrNeedMore when b ends inside the header.
func PacketLength(v Version, b []byte, maxPacketSize int) (int, error) {
	if len(b) < 2 {
		return 0, ErrNeedMore
	}
	rem, n, e := decodeVarint(b[1:], v)
	if e != nil {
		e.Type = PacketType(b[0] >> 4)
		e.Text = "remaining length: " + e.Text
		return 0, e
	}
	if n == 0 {
		return 0, ErrNeedMore
	}
	total := 1 + n + int(rem)
	if maxPacketSize > 0 && total > maxPacketSize {
		return 0, &Error{Code: PacketTooLarge, Close: true, Type: PacketType(b[0] >> 4),
			Text: fmt.Sprintf("packet of %d bytes exceeds the maximum packet size %d", total, maxPacketSize)}
	}
	return total, nil
}

// Decoder decodes packets of one connection. The packets it returns for the hot path (PUBLISH and
// the acknowledgements) are values it owns and reuses: valid until the next Decode, with binary
// fields aliasing the input. A PUBLISH keeps the previous topic string when the bytes are the same,
// so decoding a stream of publishes to one topic does not allocate.
type Decoder struct {
	Version       Version // the connection's protocol level, set after its CONNECT
	MaxPacketSize int     // 0: the protocol maximum

	publish Publish
	puback  PubAck
	pubrec  PubRec
	pubrel  PubRel
	pubcomp PubComp
}

// Decode decodes the first packet in b, returning it and the bytes it took. A partial packet
// returns ErrNeedMore (and 0). Other errors are *Error; when its Close is false the packet is
// returned too. CONNECT is decoded whatever the version (its own protocol level says which).
func (d *Decoder) Decode(b []byte) (Packet, int, error) {
	return decode(d, d.Version, b, d.MaxPacketSize)
}

// Decode decodes the first packet in b as Decoder.Decode does with no maximum packet size beyond
// the protocol's, into newly allocated packets (whose binary fields still alias b).
func Decode(v Version, b []byte) (Packet, int, error) {
	return decode(nil, v, b, 0)
}

func decode(d *Decoder, v Version, b []byte, maxSize int) (Packet, int, error) {
	total, err := PacketLength(v, b, maxSize)
	if err != nil {
		return nil, 0, err
	}
	if len(b) < total {
		return nil, 0, ErrNeedMore
	}
	t, flags := PacketType(b[0]>>4), b[0]&0x0F
	body := b[total-remLen(b, total) : total]
	r := &reader{b: body, t: t, v: v}
	var p Packet
	switch t {
	case CONNECT:
		r.flags(flags, 0)
		p = r.connect()
	case CONNACK:
		r.flags(flags, 0)
		p = r.connack()
	case PUBLISH:
		var pub *Publish
		if d != nil {
			pub = &d.publish
		} else {
			pub = new(Publish)
		}
		r.publish(pub, flags)
		p = pub
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		var a *PubAck
		switch {
		case d == nil:
			a = new(PubAck)
		case t == PUBACK:
			a = &d.puback
		case t == PUBREC:
			a = (*PubAck)(&d.pubrec)
		case t == PUBREL:
			a = (*PubAck)(&d.pubrel)
		default:
			a = (*PubAck)(&d.pubcomp)
		}
		r.ack(a, flags)
		switch t {
		case PUBACK:
			p = a
		case PUBREC:
			p = (*PubRec)(a)
		case PUBREL:
			p = (*PubRel)(a)
		default:
			p = (*PubComp)(a)
		}
	case SUBSCRIBE:
		r.flags(flags, 2)
		p = r.subscribe()
	case SUBACK:
		r.flags(flags, 0)
		p = r.suback()
	case UNSUBSCRIBE:
		r.flags(flags, 2)
		p = r.unsubscribe()
	case UNSUBACK:
		r.flags(flags, 0)
		p = r.unsuback()
	case PINGREQ, PINGRESP:
		r.flags(flags, 0)
		if len(r.b) != 0 {
			r.fail(malformed(t, "remaining length must be 0"))
		}
		if t == PINGREQ {
			p = &Pingreq{}
		} else {
			p = &Pingresp{}
		}
	case DISCONNECT:
		r.flags(flags, 0)
		p = r.disconnect()
	case AUTH:
		if v != V5 {
			return nil, 0, malformed(t, "reserved packet type 15 before MQTT 5")
		}
		r.flags(flags, 0)
		p = r.auth()
	default:
		return nil, 0, malformed(t, "reserved packet type 0")
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail(malformed(t, fmt.Sprintf("%d bytes after the last field", len(r.b))))
	}
	if r.err != nil {
		if !r.err.Close {
			return p, total, r.err
		}
		return nil, 0, r.err
	}
	return p, total, nil
}

// remLen returns the remaining length of the complete packet of total bytes at the start of b.
func remLen(b []byte, total int) int {
	n := 1
	for b[n]&0x80 != 0 {
		n++
	}
	return total - 1 - n
}

// flags checks the fixed header's flag nibble. 3.1 set DUP on retransmitted PUBREL, SUBSCRIBE and
// UNSUBSCRIBE, so for it the DUP bit is ignored there.
func (r *reader) flags(got, want byte) {
	if r.v == V31 && want == 2 {
		got &^= 8
	}
	if got != want {
		r.fail(malformed(r.t, fmt.Sprintf("reserved flags 0x%X, must be 0x%X", got, want)))
	}
}

func (r *reader) packetID() uint16 {
	id := r.u16("packet identifier")
	if r.err == nil && id == 0 {
		r.fail(protocolErr(r.t, "packet identifier 0"))
	}
	return id
}

func (r *reader) connect() *Connect {
	c := &Connect{}
	name := r.strBytes("protocol name")
	level := Version(r.u8("protocol level"))
	if r.err != nil {
		return nil
	}
	switch {
	case string(name) == "MQTT" && (level == V311 || level == V5), string(name) == "MQIsdp" && level == V31:
	default:
		r.fail(&Error{Code: UnsupportedProtocolVersion, Close: true, Type: CONNECT,
			Text: fmt.Sprintf("protocol %q level %d not supported", name, level)})
		return nil
	}
	c.Version = level
	r.v = level
	flags := r.u8("connect flags")
	c.KeepAlive = r.u16("keep alive")
	if r.err != nil {
		return nil
	}
	if flags&1 != 0 {
		r.fail(malformed(CONNECT, "reserved connect flag set"))
		return nil
	}
	c.CleanStart = flags&0x02 != 0
	willFlag, willQoS, willRetain := flags&0x04 != 0, (flags>>3)&3, flags&0x20 != 0
	c.HasPassword, c.HasUsername = flags&0x40 != 0, flags&0x80 != 0
	if willQoS == 3 {
		r.fail(malformed(CONNECT, "will QoS 3"))
		return nil
	}
	if !willFlag && (willQoS != 0 || willRetain) {
		r.fail(malformed(CONNECT, "will QoS or will retain set without the will flag"))
		return nil
	}
	if level == V311 && c.HasPassword && !c.HasUsername {
		// [MQTT-3.1.2-22]; 3.1 said nothing of it and MQTT 5 allows it.
		r.fail(malformed(CONNECT, "password flag set without the user name flag"))
		return nil
	}
	if level == V5 {
		r.props(&c.Properties, connectProps, false)
		if r.err == nil && c.Properties.Has(PropAuthData) && !c.Properties.Has(PropAuthMethod) {
			r.fail(protocolErr(CONNECT, "authentication data without an authentication method"))
		}
	}
	c.ClientID = r.str("client identifier")
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if level == V5 {
			r.props(&w.Properties, willProps, false)
		}
		topic := r.strBytes("will topic")
		if r.err == nil {
			if err := validTopicName(topic); err != nil {
				r.fail(malformed(CONNECT, "will topic: "+err.Error()))
			}
		}
		w.Topic = string(topic)
		w.Payload = r.bin("will payload")
		c.Will = w
	}
	if c.HasUsername {
		c.Username = r.str("user name")
	}
	if c.HasPassword {
		c.Password = r.bin("password")
	}
	if r.err == nil && c.ClientID == "" && (level == V31 || (level == V311 && !c.CleanStart)) {
		// 3.1 requires 1 to 23 characters; 3.1.1 allows none only with a clean session
		// (section 3.1.3.1); MQTT 5 lets the server assign one.
		r.fail(&Error{Code: ClientIdentifierNotValid, Close: true, Type: CONNECT, Text: "empty client identifier"})
	}
	return c
}

func (r *reader) connack() *Connack {
	c := &Connack{}
	flags := r.u8("connect acknowledge flags")
	c.ReasonCode = ReasonCode(r.u8("reason code"))
	if r.err != nil {
		return nil
	}
	switch r.v {
	case V31:
		if c.ReasonCode > 5 {
			r.fail(malformed(CONNACK, fmt.Sprintf("return code %d", c.ReasonCode)))
		}
		return c
	case V311:
		if flags&^1 != 0 {
			r.fail(malformed(CONNACK, "reserved acknowledge flags set"))
		}
		if c.ReasonCode > 5 {
			r.fail(malformed(CONNACK, fmt.Sprintf("return code %d", c.ReasonCode)))
		}
	default:
		if flags&^1 != 0 {
			r.fail(malformed(CONNACK, "reserved acknowledge flags set"))
		}
		if !connackReasons.has(c.ReasonCode) {
			r.fail(protocolErr(CONNACK, fmt.Sprintf("reason code 0x%02X not valid in CONNACK", byte(c.ReasonCode))))
		}
		r.props(&c.Properties, connackProps, false)
	}
	c.SessionPresent = flags&1 != 0
	if r.err == nil && c.SessionPresent && c.ReasonCode != 0 {
		r.fail(protocolErr(CONNACK, "session present with a non-zero reason code"))
	}
	return c
}

func (r *reader) publish(p *Publish, flags byte) {
	p.Dup, p.QoS, p.Retain = flags&8 != 0, (flags>>1)&3, flags&1 != 0
	if p.QoS == 3 {
		r.fail(malformed(PUBLISH, "QoS 3"))
		return
	}
	if p.QoS == 0 && p.Dup {
		r.fail(malformed(PUBLISH, "DUP set on a QoS 0 message"))
		return
	}
	topic := r.strBytes("topic name")
	if r.err != nil {
		return
	}
	for _, c := range topic {
		if c == '+' || c == '#' {
			r.fail(&Error{Code: TopicNameInvalid, Close: true, Type: PUBLISH, Text: "topic name contains a wildcard"})
			return
		}
	}
	if string(topic) != p.Topic {
		p.Topic = string(topic)
	}
	p.PacketID = 0
	if p.QoS > 0 {
		p.PacketID = r.packetID()
	}
	p.Properties.reset()
	if r.v == V5 {
		r.props(&p.Properties, publishProps, true)
	}
	if r.err != nil {
		return
	}
	if len(topic) == 0 && !p.Properties.Has(PropTopicAlias) {
		if r.v == V5 {
			r.fail(protocolErr(PUBLISH, "empty topic name without a topic alias"))
		} else {
			r.fail(malformed(PUBLISH, "empty topic name"))
		}
		return
	}
	p.Payload = r.b[:len(r.b):len(r.b)]
	r.b = nil
}

func (r *reader) ack(a *PubAck, flags byte) {
	want := byte(0)
	valid := &pubackReasons
	if r.t == PUBREL {
		want = 2
	}
	if r.t == PUBREL || r.t == PUBCOMP {
		valid = &pubrelReasons
	}
	r.flags(flags, want)
	a.PacketID = r.packetID()
	a.ReasonCode = Success
	a.Properties.reset()
	if r.v != V5 || r.err != nil || len(r.b) == 0 {
		return
	}
	a.ReasonCode = ReasonCode(r.u8("reason code"))
	if !valid.has(a.ReasonCode) {
		r.fail(protocolErr(r.t, fmt.Sprintf("reason code 0x%02X not valid", byte(a.ReasonCode))))
		return
	}
	if len(r.b) > 0 {
		r.props(&a.Properties, ackProps, false)
	}
}

func (r *reader) subscribe() *Subscribe {
	s := &Subscribe{PacketID: r.packetID()}
	if r.v == V5 {
		r.props(&s.Properties, subscribeProps, false)
	}
	if r.err == nil && len(r.b) == 0 {
		r.fail(protocolErr(SUBSCRIBE, "no topic filter"))
	}
	var bad *Error
	for len(r.b) > 0 && r.err == nil {
		f := r.str("topic filter")
		opts := r.u8("subscription options")
		if r.err != nil {
			break
		}
		sub := Subscription{Filter: f, QoS: opts & 3}
		if sub.QoS == 3 {
			r.fail(malformed(SUBSCRIBE, "requested QoS 3"))
			break
		}
		if r.v == V5 {
			sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling = opts&4 != 0, opts&8 != 0, (opts>>4)&3
			if opts&0xC0 != 0 {
				r.fail(malformed(SUBSCRIBE, "reserved subscription option bits set"))
				break
			}
			if sub.RetainHandling == 3 {
				r.fail(protocolErr(SUBSCRIBE, "retain handling 3"))
				break
			}
			if sub.NoLocal && IsShared(f) {
				r.fail(protocolErr(SUBSCRIBE, "no local on a shared subscription"))
				break
			}
		} else if opts&0xFC != 0 {
			r.fail(malformed(SUBSCRIBE, "reserved subscription option bits set"))
			break
		}
		if err := ValidTopicFilter(f); err != nil && bad == nil {
			bad = &Error{Code: TopicFilterInvalid, Close: r.v != V5, Type: SUBSCRIBE, Text: fmt.Sprintf("topic filter %q: %v", f, err)}
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if bad != nil {
		r.fail(bad)
	}
	return s
}

func (r *reader) suback() *Suback {
	s := &Suback{PacketID: r.packetID()}
	valid := &subackReasons3
	if r.v == V5 {
		r.props(&s.Properties, ackProps, false)
		valid = &subackReasons
	}
	if r.err == nil && len(r.b) == 0 {
		r.fail(protocolErr(SUBACK, "no return codes"))
	}
	for _, c := range r.b {
		if r.err == nil && !valid.has(ReasonCode(c)) {
			r.fail(protocolErr(SUBACK, fmt.Sprintf("return code 0x%02X not valid", c)))
		}
		s.ReasonCodes = append(s.ReasonCodes, ReasonCode(c))
	}
	r.b = nil
	return s
}

func (r *reader) unsubscribe() *Unsubscribe {
	u := &Unsubscribe{PacketID: r.packetID()}
	if r.v == V5 {
		r.props(&u.Properties, unsubscribeProps, false)
	}
	if r.err == nil && len(r.b) == 0 {
		r.fail(protocolErr(UNSUBSCRIBE, "no topic filter"))
	}
	var bad *Error
	for len(r.b) > 0 && r.err == nil {
		f := r.str("topic filter")
		if r.err != nil {
			break
		}
		if err := ValidTopicFilter(f); err != nil && bad == nil {
			bad = &Error{Code: TopicFilterInvalid, Close: r.v != V5, Type: UNSUBSCRIBE, Text: fmt.Sprintf("topic filter %q: %v", f, err)}
		}
		u.Filters = append(u.Filters, f)
	}
	if bad != nil {
		r.fail(bad)
	}
	return u
}

func (r *reader) unsuback() *Unsuback {
	u := &Unsuback{PacketID: r.packetID()}
	if r.v != V5 {
		return u
	}
	r.props(&u.Properties, ackProps, false)
	if r.err == nil && len(r.b) == 0 {
		r.fail(protocolErr(UNSUBACK, "no reason codes"))
	}
	for _, c := range r.b {
		if r.err == nil && !unsubReasons.has(ReasonCode(c)) {
			r.fail(protocolErr(UNSUBACK, fmt.Sprintf("reason code 0x%02X not valid", c)))
		}
		u.ReasonCodes = append(u.ReasonCodes, ReasonCode(c))
	}
	r.b = nil
	return u
}

func (r *reader) disconnect() *Disconnect {
	d := &Disconnect{}
	if r.v != V5 || len(r.b) == 0 {
		return d
	}
	d.ReasonCode = ReasonCode(r.u8("reason code"))
	if !discReasons.has(d.ReasonCode) {
		r.fail(protocolErr(DISCONNECT, fmt.Sprintf("reason code 0x%02X not valid", byte(d.ReasonCode))))
		return d
	}
	if len(r.b) > 0 {
		r.props(&d.Properties, disconnectProps, false)
	}
	return d
}

func (r *reader) auth() *Auth {
	a := &Auth{}
	if len(r.b) == 0 {
		return a
	}
	a.ReasonCode = ReasonCode(r.u8("reason code"))
	if !authReasons.has(a.ReasonCode) {
		r.fail(protocolErr(AUTH, fmt.Sprintf("reason code 0x%02X not valid", byte(a.ReasonCode))))
		return a
	}
	if len(r.b) > 0 {
		r.props(&a.Properties, authProps, false)
	}
	return a
}
