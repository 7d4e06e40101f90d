package mqtt

import (
	"errors"
	"fmt"
)

var errVersion = errors.New("mqtt: unknown protocol version")

// Append appends p encoded for protocol version v to dst. It refuses what the receiver would have
// to reject (QoS 3, a zero packet identifier where one is required, strings that are not valid,
// lengths that do not fit, AUTH before MQTT 5, a packet over the maximum remaining length). MQTT 5
// properties and reason codes are left out for 3.1 and 3.1.1. On error dst is returned unchanged.
func Append(dst []byte, p Packet, v Version) ([]byte, error) {
	if v != V31 && v != V311 && v != V5 {
		return dst, errVersion
	}
	switch p := p.(type) {
	case *Publish:
		return AppendPublish(dst, p, v)
	case *PubAck:
		return appendAck(dst, PUBACK, p, v)
	case *PubRec:
		return appendAck(dst, PUBREC, (*PubAck)(p), v)
	case *PubRel:
		return appendAck(dst, PUBREL, (*PubAck)(p), v)
	case *PubComp:
		return appendAck(dst, PUBCOMP, (*PubAck)(p), v)
	case *Connect:
		return appendConnect(dst, p, v)
	case *Connack:
		return appendConnack(dst, p, v)
	case *Subscribe:
		return appendSubscribe(dst, p, v)
	case *Suback:
		return appendSuback(dst, SUBACK, p.PacketID, &p.Properties, p.ReasonCodes, v)
	case *Unsubscribe:
		return appendUnsubscribe(dst, p, v)
	case *Unsuback:
		return appendSuback(dst, UNSUBACK, p.PacketID, &p.Properties, p.ReasonCodes, v)
	case *Pingreq:
		return append(dst, byte(PINGREQ)<<4, 0), nil
	case *Pingresp:
		return append(dst, byte(PINGRESP)<<4, 0), nil
	case *Disconnect:
		return appendReasonProps(dst, DISCONNECT, p.ReasonCode, &p.Properties, disconnectProps, &discReasons, v)
	case *Auth:
		if v != V5 {
			return dst, errors.New("mqtt: AUTH exists only in MQTT 5")
		}
		return appendReasonProps(dst, AUTH, p.ReasonCode, &p.Properties, authProps, &authReasons, v)
	}
	return dst, fmt.Errorf("mqtt: cannot encode %T", p)
}

func header(dst []byte, t PacketType, flags byte, rem int) ([]byte, error) {
	if rem > MaxRemainingLength {
		return dst, fmt.Errorf("mqtt: %s of %d bytes exceeds the maximum remaining length", t, rem)
	}
	return appendVarint(append(dst, byte(t)<<4|flags), uint32(rem)), nil
}

// propsLen returns the encoded size of p with its length prefix, 0 before MQTT 5.
func propsLen(p *Properties, allowed PropSet, v Version) (int, error) {
	if v != V5 {
		return 0, nil
	}
	if p.Present&allowed == 0 && len(p.UserProperties) == 0 && len(p.SubscriptionIDs) == 0 {
		return 1, nil
	}
	if err := p.check(allowed); err != nil {
		return 0, err
	}
	n := p.size(allowed)
	if n > MaxRemainingLength {
		return 0, errors.New("mqtt: properties too long")
	}
	return varintLen(uint32(n)) + n, nil
}

func appendProps(dst []byte, p *Properties, allowed PropSet, v Version, n int) []byte {
	if v != V5 {
		return dst
	}
	if n == 1 {
		return append(dst, 0)
	}
	return p.appendProps(dst, allowed, n-varintLen(uint32(n)))
}

func checkStr(what, s string) error {
	if len(s) > 65535 || !validUTF8String(s) {
		return fmt.Errorf("mqtt: %s is not a valid UTF-8 string of at most 65535 bytes", what)
	}
	return nil
}

// AppendPublish is Append for a PUBLISH (p is not boxed in an interface).
func AppendPublish(dst []byte, p *Publish, v Version) ([]byte, error) {
	if p.QoS > 2 {
		return dst, errors.New("mqtt: PUBLISH QoS 3")
	}
	if p.QoS > 0 && p.PacketID == 0 {
		return dst, errors.New("mqtt: PUBLISH QoS > 0 needs a non-zero packet identifier")
	}
	if p.QoS == 0 && p.Dup {
		return dst, errors.New("mqtt: PUBLISH DUP set at QoS 0")
	}
	if len(p.Topic) > 65535 || !validUTF8String(p.Topic) || (p.Topic == "" && (v != V5 || !p.Properties.Has(PropTopicAlias))) {
		return dst, fmt.Errorf("mqtt: PUBLISH topic %q not valid", p.Topic)
	}
	for i := 0; i < len(p.Topic); i++ {
		if p.Topic[i] == '+' || p.Topic[i] == '#' {
			return dst, fmt.Errorf("mqtt: PUBLISH topic %q contains a wildcard", p.Topic)
		}
	}
	pl, err := propsLen(&p.Properties, publishProps, v)
	if err != nil {
		return dst, err
	}
	rem := 2 + len(p.Topic) + pl + len(p.Payload)
	if p.QoS > 0 {
		rem += 2
	}
	flags := p.QoS << 1
	if p.Dup {
		flags |= 8
	}
	if p.Retain {
		flags |= 1
	}
	start := len(dst)
	dst, err = header(dst, PUBLISH, flags, rem)
	if err != nil {
		return dst[:start], err
	}
	dst = appendStr(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendU16(dst, p.PacketID)
	}
	dst = appendProps(dst, &p.Properties, publishProps, v, pl)
	return append(dst, p.Payload...), nil
}

func appendAck(dst []byte, t PacketType, a *PubAck, v Version) ([]byte, error) {
	if a.PacketID == 0 {
		return dst, fmt.Errorf("mqtt: %s needs a non-zero packet identifier", t)
	}
	flags := byte(0)
	valid := &pubackReasons
	if t == PUBREL {
		flags = 2
	}
	if t == PUBREL || t == PUBCOMP {
		valid = &pubrelReasons
	}
	if v != V5 {
		return appendU16(append(dst, byte(t)<<4|flags, 2), a.PacketID), nil
	}
	if !valid.has(a.ReasonCode) {
		return dst, fmt.Errorf("mqtt: reason code 0x%02X not valid in %s", byte(a.ReasonCode), t)
	}
	pl, err := propsLen(&a.Properties, ackProps, v)
	if err != nil {
		return dst, err
	}
	if pl == 1 {
		// The shortest forms (MQTT 5.0 section 3.4.2.1): no property length, no reason code if Success.
		if a.ReasonCode == Success {
			return appendU16(append(dst, byte(t)<<4|flags, 2), a.PacketID), nil
		}
		return append(appendU16(append(dst, byte(t)<<4|flags, 3), a.PacketID), byte(a.ReasonCode)), nil
	}
	start := len(dst)
	dst, err = header(dst, t, flags, 3+pl)
	if err != nil {
		return dst[:start], err
	}
	dst = append(appendU16(dst, a.PacketID), byte(a.ReasonCode))
	return appendProps(dst, &a.Properties, ackProps, v, pl), nil
}

func appendConnect(dst []byte, c *Connect, v Version) ([]byte, error) {
	name := "MQTT"
	if v == V31 {
		name = "MQIsdp"
	}
	if err := checkStr("client identifier", c.ClientID); err != nil {
		return dst, err
	}
	if c.HasUsername {
		if err := checkStr("user name", c.Username); err != nil {
			return dst, err
		}
	}
	if len(c.Password) > 65535 {
		return dst, errors.New("mqtt: password longer than 65535 bytes")
	}
	if v == V311 && c.HasPassword && !c.HasUsername {
		return dst, errors.New("mqtt: password without user name in 3.1.1")
	}
	flags := byte(0)
	if c.CleanStart {
		flags |= 0x02
	}
	if c.HasUsername {
		flags |= 0x80
	}
	if c.HasPassword {
		flags |= 0x40
	}
	pl, err := propsLen(&c.Properties, connectProps, v)
	if err != nil {
		return dst, err
	}
	rem := 2 + len(name) + 1 + 1 + 2 + pl + 2 + len(c.ClientID)
	wl := 0
	if w := c.Will; w != nil {
		if w.QoS > 2 {
			return dst, errors.New("mqtt: will QoS 3")
		}
		if err := ValidTopicName(w.Topic); err != nil {
			return dst, fmt.Errorf("mqtt: will topic: %w", err)
		}
		if len(w.Payload) > 65535 {
			return dst, errors.New("mqtt: will payload longer than 65535 bytes")
		}
		flags |= 0x04 | w.QoS<<3
		if w.Retain {
			flags |= 0x20
		}
		if wl, err = propsLen(&w.Properties, willProps, v); err != nil {
			return dst, err
		}
		rem += wl + 2 + len(w.Topic) + 2 + len(w.Payload)
	}
	if c.HasUsername {
		rem += 2 + len(c.Username)
	}
	if c.HasPassword {
		rem += 2 + len(c.Password)
	}
	start := len(dst)
	if dst, err = header(dst, CONNECT, 0, rem); err != nil {
		return dst[:start], err
	}
	dst = append(appendStr(dst, name), byte(v), flags)
	dst = appendU16(dst, c.KeepAlive)
	dst = appendProps(dst, &c.Properties, connectProps, v, pl)
	dst = appendStr(dst, c.ClientID)
	if w := c.Will; w != nil {
		dst = appendProps(dst, &w.Properties, willProps, v, wl)
		dst = appendBin(appendStr(dst, w.Topic), w.Payload)
	}
	if c.HasUsername {
		dst = appendStr(dst, c.Username)
	}
	if c.HasPassword {
		dst = appendBin(dst, c.Password)
	}
	return dst, nil
}

func appendConnack(dst []byte, c *Connack, v Version) ([]byte, error) {
	if v != V5 && c.ReasonCode > 5 {
		return dst, fmt.Errorf("mqtt: CONNACK return code %d (use ConnackReturnCode)", c.ReasonCode)
	}
	if v == V5 && !connackReasons.has(c.ReasonCode) {
		return dst, fmt.Errorf("mqtt: reason code 0x%02X not valid in CONNACK", byte(c.ReasonCode))
	}
	if c.SessionPresent && (c.ReasonCode != 0 || v == V31) {
		return dst, errors.New("mqtt: CONNACK session present needs 3.1.1 or later and success")
	}
	flags := byte(0)
	if c.SessionPresent {
		flags = 1
	}
	pl, err := propsLen(&c.Properties, connackProps, v)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	if dst, err = header(dst, CONNACK, 0, 2+pl); err != nil {
		return dst[:start], err
	}
	dst = append(dst, flags, byte(c.ReasonCode))
	return appendProps(dst, &c.Properties, connackProps, v, pl), nil
}

func appendSubscribe(dst []byte, s *Subscribe, v Version) ([]byte, error) {
	if s.PacketID == 0 {
		return dst, errors.New("mqtt: SUBSCRIBE needs a non-zero packet identifier")
	}
	if len(s.Subscriptions) == 0 {
		return dst, errors.New("mqtt: SUBSCRIBE needs at least one topic filter")
	}
	pl, err := propsLen(&s.Properties, subscribeProps, v)
	if err != nil {
		return dst, err
	}
	if len(s.Properties.SubscriptionIDs) > 1 {
		return dst, errors.New("mqtt: SUBSCRIBE carries at most one subscription identifier")
	}
	rem := 2 + pl
	for _, sub := range s.Subscriptions {
		if err := ValidTopicFilter(sub.Filter); err != nil {
			return dst, err
		}
		if sub.QoS > 2 || sub.RetainHandling > 2 {
			return dst, errors.New("mqtt: SUBSCRIBE QoS or retain handling out of range")
		}
		if v == V5 && sub.NoLocal && IsShared(sub.Filter) {
			return dst, errors.New("mqtt: no local on a shared subscription")
		}
		rem += 2 + len(sub.Filter) + 1
	}
	start := len(dst)
	if dst, err = header(dst, SUBSCRIBE, 2, rem); err != nil {
		return dst[:start], err
	}
	dst = appendU16(dst, s.PacketID)
	dst = appendProps(dst, &s.Properties, subscribeProps, v, pl)
	for _, sub := range s.Subscriptions {
		opts := sub.QoS
		if v == V5 {
			if sub.NoLocal {
				opts |= 4
			}
			if sub.RetainAsPublished {
				opts |= 8
			}
			opts |= sub.RetainHandling << 4
		}
		dst = append(appendStr(dst, sub.Filter), opts)
	}
	return dst, nil
}

func appendUnsubscribe(dst []byte, u *Unsubscribe, v Version) ([]byte, error) {
	if u.PacketID == 0 {
		return dst, errors.New("mqtt: UNSUBSCRIBE needs a non-zero packet identifier")
	}
	if len(u.Filters) == 0 {
		return dst, errors.New("mqtt: UNSUBSCRIBE needs at least one topic filter")
	}
	pl, err := propsLen(&u.Properties, unsubscribeProps, v)
	if err != nil {
		return dst, err
	}
	rem := 2 + pl
	for _, f := range u.Filters {
		if err := ValidTopicFilter(f); err != nil {
			return dst, err
		}
		rem += 2 + len(f)
	}
	start := len(dst)
	if dst, err = header(dst, UNSUBSCRIBE, 2, rem); err != nil {
		return dst[:start], err
	}
	dst = appendU16(dst, u.PacketID)
	dst = appendProps(dst, &u.Properties, unsubscribeProps, v, pl)
	for _, f := range u.Filters {
		dst = appendStr(dst, f)
	}
	return dst, nil
}

// appendSuback encodes SUBACK and UNSUBACK (whose 3.1/3.1.1 form has no codes).
func appendSuback(dst []byte, t PacketType, id uint16, props *Properties, codes []ReasonCode, v Version) ([]byte, error) {
	if id == 0 {
		return dst, fmt.Errorf("mqtt: %s needs a non-zero packet identifier", t)
	}
	valid := &subackReasons
	switch {
	case t == UNSUBACK && v != V5:
		return appendU16(append(dst, byte(t)<<4, 2), id), nil
	case t == UNSUBACK:
		valid = &unsubReasons
	case v != V5:
		valid = &subackReasons3
	}
	if len(codes) == 0 {
		return dst, fmt.Errorf("mqtt: %s needs at least one reason code", t)
	}
	for _, c := range codes {
		if !valid.has(c) {
			return dst, fmt.Errorf("mqtt: reason code 0x%02X not valid in %s", byte(c), t)
		}
	}
	pl, err := propsLen(props, ackProps, v)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	if dst, err = header(dst, t, 0, 2+pl+len(codes)); err != nil {
		return dst[:start], err
	}
	dst = appendProps(appendU16(dst, id), props, ackProps, v, pl)
	for _, c := range codes {
		dst = append(dst, byte(c))
	}
	return dst, nil
}

// appendReasonProps encodes DISCONNECT and AUTH: empty before MQTT 5, and in MQTT 5 as short as
// the reason code and properties allow.
func appendReasonProps(dst []byte, t PacketType, code ReasonCode, props *Properties, allowed PropSet, valid *reasonSet, v Version) ([]byte, error) {
	if v != V5 {
		return append(dst, byte(t)<<4, 0), nil
	}
	if !valid.has(code) {
		return dst, fmt.Errorf("mqtt: reason code 0x%02X not valid in %s", byte(code), t)
	}
	pl, err := propsLen(props, allowed, v)
	if err != nil {
		return dst, err
	}
	if pl == 1 {
		if code == Success {
			return append(dst, byte(t)<<4, 0), nil
		}
		return append(dst, byte(t)<<4, 1, byte(code)), nil
	}
	start := len(dst)
	if dst, err = header(dst, t, 0, 1+pl); err != nil {
		return dst[:start], err
	}
	return appendProps(append(dst, byte(code)), props, allowed, v, pl), nil
}
