package mqtt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

var allProps = Properties{
	Present: ^PropSet(0), PayloadFormat: 1, MessageExpiry: 60, ContentType: "text/plain", ResponseTopic: "reply/to",
	CorrelationData: []byte{1, 2}, SubscriptionIDs: []uint32{1, 268435455}, SessionExpiry: 0xFFFFFFFF,
	AssignedClientID: "assigned", ServerKeepAlive: 30, AuthMethod: "SCRAM-SHA-1", AuthData: []byte("data"),
	RequestProblemInfo: 0, WillDelay: 5, RequestResponseInfo: 1, ResponseInfo: "resp", ServerReference: "other:1883",
	ReasonString: "why", ReceiveMaximum: 10, TopicAliasMaximum: 20, TopicAlias: 3, MaximumQoS: 1, RetainAvailable: 0,
	UserProperties: []UserProperty{{"k", "v1"}, {"k", "v2"}, {"a", ""}}, MaximumPacketSize: 1 << 20,
	WildcardSubAvailable: 1, SubscriptionIDAvailable: 0, SharedSubAvailable: 1,
}

// only keeps the properties of allowed (what a decoder of that packet sees).
func only(allowed PropSet, oneSubID bool) Properties {
	p := allProps
	p.Present &= allowed
	if allowed&(1<<PropUserProperty) == 0 {
		p.UserProperties = nil
	}
	if allowed&(1<<PropSubscriptionID) == 0 {
		p.SubscriptionIDs = nil
	} else if oneSubID {
		p.SubscriptionIDs = p.SubscriptionIDs[:1]
	}
	p.Present &^= 1<<PropUserProperty | 1<<PropSubscriptionID
	if len(p.UserProperties) > 0 {
		p.Present |= 1 << PropUserProperty
	}
	if len(p.SubscriptionIDs) > 0 {
		p.Present |= 1 << PropSubscriptionID
	}
	for id := PropID(1); id < PropID(len(propKinds)); id++ {
		if propKinds[id] == kNone {
			p.Present &^= 1 << id
		}
	}
	if allowed&(1<<PropAuthData) == 0 {
		p.AuthData = nil
	}
	if allowed&(1<<PropCorrelationData) == 0 {
		p.CorrelationData = nil
	}
	clear := func(id PropID, s *string) {
		if allowed&(1<<id) == 0 {
			*s = ""
		}
	}
	clear(PropContentType, &p.ContentType)
	clear(PropResponseTopic, &p.ResponseTopic)
	clear(PropAssignedClientID, &p.AssignedClientID)
	clear(PropAuthMethod, &p.AuthMethod)
	clear(PropResponseInfo, &p.ResponseInfo)
	clear(PropServerReference, &p.ServerReference)
	clear(PropReasonString, &p.ReasonString)
	if allowed&(1<<PropPayloadFormat) == 0 {
		p.PayloadFormat = 0
	}
	if allowed&(1<<PropMessageExpiry) == 0 {
		p.MessageExpiry = 0
	}
	if allowed&(1<<PropSessionExpiry) == 0 {
		p.SessionExpiry = 0
	}
	if allowed&(1<<PropServerKeepAlive) == 0 {
		p.ServerKeepAlive = 0
	}
	if allowed&(1<<PropWillDelay) == 0 {
		p.WillDelay = 0
	}
	if allowed&(1<<PropRequestResponseInfo) == 0 {
		p.RequestResponseInfo = 0
	}
	if allowed&(1<<PropReceiveMaximum) == 0 {
		p.ReceiveMaximum = 0
	}
	if allowed&(1<<PropTopicAliasMaximum) == 0 {
		p.TopicAliasMaximum = 0
	}
	if allowed&(1<<PropTopicAlias) == 0 {
		p.TopicAlias = 0
	}
	if allowed&(1<<PropMaximumQoS) == 0 {
		p.MaximumQoS = 0
	}
	if allowed&(1<<PropMaximumPacketSize) == 0 {
		p.MaximumPacketSize = 0
	}
	if allowed&(1<<PropWildcardSubAvailable) == 0 {
		p.WildcardSubAvailable = 0
	}
	if allowed&(1<<PropSharedSubAvailable) == 0 {
		p.SharedSubAvailable = 0
	}
	return p
}

// samples returns one or more packets of every type valid for version v, with every property
// the packet may carry in MQTT 5.
func samples(v Version) []Packet {
	props := func(allowed PropSet, oneSubID bool) Properties {
		if v != V5 {
			return Properties{}
		}
		return only(allowed, oneSubID)
	}
	code := func(c5, c3 ReasonCode) ReasonCode {
		if v == V5 {
			return c5
		}
		return c3
	}
	ps := []Packet{
		&Connect{Version: v, CleanStart: true, KeepAlive: 60, ClientID: "client-1", Properties: props(connectProps, false)},
		&Connect{Version: v, KeepAlive: 0, ClientID: "c", HasUsername: true, Username: "vhost:user", HasPassword: true,
			Password: []byte{0, 1, 2}, Will: &Will{Topic: "will/topic", Payload: []byte("gone"), QoS: 2, Retain: true,
				Properties: props(willProps, false)}, Properties: props(connectProps, false)},
		&Connack{ReasonCode: code(NotAuthorized, 5), Properties: props(connackProps, false)},
		&Publish{Topic: "a/b/c", Payload: []byte("payload"), Properties: props(publishProps, false)},
		&Publish{QoS: 1, Retain: true, Topic: "a", PacketID: 1, Payload: []byte{}, Properties: props(publishProps, false)},
		&Publish{QoS: 2, Dup: true, Topic: "é/ü/\U0002A6D4", PacketID: 65535, Payload: bytes.Repeat([]byte{0xAB}, 300)},
		&PubAck{PacketID: 7, ReasonCode: code(QuotaExceeded, 0), Properties: props(ackProps, false)},
		&PubRec{PacketID: 8, ReasonCode: code(NoMatchingSubscribers, 0), Properties: props(ackProps, false)},
		&PubRel{PacketID: 9, ReasonCode: code(PacketIdentifierNotFound, 0), Properties: props(ackProps, false)},
		&PubComp{PacketID: 10, Properties: props(ackProps, false)},
		&PubAck{PacketID: 11},
		&Subscribe{PacketID: 12, Properties: props(subscribeProps, true), Subscriptions: []Subscription{
			{Filter: "a/+/c", QoS: 1}, {Filter: "#", QoS: 2}, {Filter: "$share/g/x/#"}}},
		&Suback{PacketID: 12, Properties: props(ackProps, false), ReasonCodes: []ReasonCode{0, 1, 2, 0x80}},
		&Unsubscribe{PacketID: 13, Properties: props(unsubscribeProps, false), Filters: []string{"a/+/c", "#"}},
		&Pingreq{},
		&Pingresp{},
		&Disconnect{},
	}
	if v == V31 {
		// 3.1 has no session present; MQTT 3.1.1 and 5 do.
		ps = append(ps, &Connack{})
	} else {
		ps = append(ps, &Connack{SessionPresent: true, Properties: props(connackProps, false)})
	}
	if v == V5 {
		ps = append(ps,
			&Unsuback{PacketID: 13, Properties: props(ackProps, false), ReasonCodes: []ReasonCode{0, 0x11}},
			&Subscribe{PacketID: 14, Subscriptions: []Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
			&Suback{PacketID: 14, ReasonCodes: []ReasonCode{0x8F, 0x9E, 0xA1, 0xA2}},
			&Publish{Topic: "", Payload: []byte("by alias"), Properties: Properties{Present: propSet(PropTopicAlias), TopicAlias: 2}},
			&Disconnect{ReasonCode: DisconnectWithWill},
			&Disconnect{ReasonCode: ServerMoved, Properties: props(disconnectProps, false)},
			&Auth{},
			&Auth{ReasonCode: ReAuthenticate, Properties: props(authProps, false)},
		)
	} else {
		ps = append(ps, &Unsuback{PacketID: 13})
	}
	return ps
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []Version{V31, V311, V5} {
		var stream []byte
		ps := samples(v)
		for _, p := range ps {
			b, err := Append(nil, p, v)
			if err != nil {
				t.Fatalf("%s %T: Append: %v", v, p, err)
			}
			got, n, err := Decode(v, b)
			if err != nil || n != len(b) {
				t.Fatalf("%s %T: Decode: %d of %d, %v", v, p, n, len(b), err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Fatalf("%s %T: round trip\n got %#v\nwant %#v", v, p, got, p)
			}
			stream = append(stream, b...)
		}
		// The same packets back to back through one Decoder.
		d := &Decoder{Version: v}
		for i, p := range ps {
			got, n, err := d.Decode(stream)
			if err != nil {
				t.Fatalf("%s stream packet %d: %v", v, i, err)
			}
			if !reflect.DeepEqual(normalized(got), normalized(p)) {
				t.Fatalf("%s stream packet %d: got %#v want %#v", v, i, got, p)
			}
			stream = stream[n:]
		}
		if len(stream) != 0 {
			t.Fatalf("%s: %d bytes left", v, len(stream))
		}
	}
}

// normalized returns a copy of a Publish or acknowledgement with empty property slices made nil:
// the Decoder keeps its slices' storage between packets.
func normalized(p Packet) Packet {
	norm := func(pr *Properties) {
		if len(pr.UserProperties) == 0 {
			pr.UserProperties = nil
		}
		if len(pr.SubscriptionIDs) == 0 {
			pr.SubscriptionIDs = nil
		}
	}
	switch p := p.(type) {
	case *Publish:
		c := *p
		norm(&c.Properties)
		return &c
	case *PubAck:
		c := *p
		norm(&c.Properties)
		return &c
	case *PubRec:
		c := *p
		norm(&c.Properties)
		return &c
	case *PubRel:
		c := *p
		norm(&c.Properties)
		return &c
	case *PubComp:
		c := *p
		norm(&c.Properties)
		return &c
	}
	return p
}

// TestDecoderReuse checks that the Decoder's publish does not keep the previous publish's fields.
func TestDecoderReuse(t *testing.T) {
	d := &Decoder{Version: V5}
	b1, _ := Append(nil, &Publish{QoS: 1, PacketID: 5, Topic: "a", Payload: []byte("x"),
		Properties: Properties{Present: propSet(PropMessageExpiry), MessageExpiry: 9, UserProperties: []UserProperty{{"k", "v"}}}}, V5)
	b2, _ := Append(nil, &Publish{Topic: "b", Payload: []byte("y")}, V5)
	if _, _, err := d.Decode(b1); err != nil {
		t.Fatal(err)
	}
	p, _, err := d.Decode(b2)
	if err != nil {
		t.Fatal(err)
	}
	pub := p.(*Publish)
	if pub.Topic != "b" || pub.PacketID != 0 || pub.Properties.Has(PropMessageExpiry) || len(pub.Properties.UserProperties) != 0 || string(pub.Payload) != "y" {
		t.Fatalf("stale fields: %#v", pub)
	}
	// A PUBACK after a PUBACK with properties.
	a1, _ := Append(nil, &PubAck{PacketID: 1, ReasonCode: QuotaExceeded, Properties: Properties{Present: propSet(PropReasonString), ReasonString: "r"}}, V5)
	a2, _ := Append(nil, &PubAck{PacketID: 2}, V5)
	d.Decode(a1)
	p, _, _ = d.Decode(a2)
	if a := p.(*PubAck); a.ReasonCode != Success || a.Properties.Has(PropReasonString) || a.PacketID != 2 {
		t.Fatalf("stale ack: %#v", a)
	}
	if _, _, err := d.Decode(b1[:len(b1)-1]); !errors.Is(err, ErrNeedMore) {
		t.Fatal(err)
	}
}
