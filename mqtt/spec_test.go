package mqtt

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// pkt joins byte pieces: strings as their bytes, ints as one byte.
func pkt(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case int:
			b = append(b, byte(p))
		case []byte:
			b = append(b, p...)
		default:
			panic(p)
		}
	}
	return b
}

// TestRemainingLengthSpecExamples is the table in 3.1.1 section 2.2.3 (and MQTT 5 section 1.5.5).
func TestRemainingLengthSpecExamples(t *testing.T) {
	for _, c := range []struct {
		n   uint32
		enc []byte
	}{
		{0, []byte{0x00}}, {127, []byte{0x7F}}, {128, []byte{0x80, 0x01}}, {16383, []byte{0xFF, 0x7F}},
		{16384, []byte{0x80, 0x80, 0x01}}, {2097151, []byte{0xFF, 0xFF, 0x7F}},
		{2097152, []byte{0x80, 0x80, 0x80, 0x01}}, {268435455, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	} {
		if got := appendVarint(nil, c.n); !bytes.Equal(got, c.enc) {
			t.Errorf("encode %d = % X, want % X", c.n, got, c.enc)
		}
		for _, v := range []Version{V311, V5} {
			x, n, err := decodeVarint(c.enc, v)
			if err != nil || x != c.n || n != len(c.enc) {
				t.Errorf("decode % X = %d, %d, %v", c.enc, x, n, err)
			}
		}
		if varintLen(c.n) != len(c.enc) {
			t.Errorf("varintLen(%d) = %d", c.n, varintLen(c.n))
		}
	}
	// A fifth byte is malformed, checked from the header alone.
	_, err := PacketLength(V311, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, 0)
	wantCode(t, err, MalformedPacket, true)
	// MQTT 5 requires the shortest form.
	_, err = PacketLength(V5, []byte{0x30, 0x80, 0x00}, 0)
	wantCode(t, err, MalformedPacket, true)
	if n, err := PacketLength(V311, []byte{0x30, 0x80, 0x00}, 0); err != nil || n != 3 {
		t.Errorf("3.1.1 non-minimal length: %d %v", n, err)
	}
}

func wantCode(t *testing.T, err error, code ReasonCode, close bool) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error with code 0x%02X", err, err, byte(code))
	}
	if e.Code != code || e.Close != close {
		t.Fatalf("error %v: code 0x%02X close %v, want 0x%02X close %v", e, byte(e.Code), e.Close, byte(code), close)
	}
}

// TestSpecExamples decodes packets built from the specifications' example bytes and checks that
// Append produces the same bytes.
func TestSpecExamples(t *testing.T) {
	cases := []struct {
		name string
		v    Version
		enc  []byte
		want Packet
	}{
		{
			// 3.1.1 figure 3.6 variable header (flags 0xCE, keep alive 10) with its payload.
			"connect 3.1.1", V311,
			pkt(0x10, 38, 0, 4, "MQTT", 4, 0xCE, 0, 10, 0, 3, "cid", 0, 3, "a/b", 0, 4, "will", 0, 4, "user", 0, 4, "pass"),
			&Connect{Version: V311, CleanStart: true, KeepAlive: 10, ClientID: "cid",
				Will: &Will{Topic: "a/b", Payload: []byte("will"), QoS: 1}, HasUsername: true, Username: "user",
				HasPassword: true, Password: []byte("pass")},
		},
		{
			"connect 3.1", V31,
			pkt(0x10, 17, 0, 6, "MQIsdp", 3, 0x02, 0, 60, 0, 3, "cid"),
			&Connect{Version: V31, CleanStart: true, KeepAlive: 60, ClientID: "cid"},
		},
		{
			// MQTT 5 figure 3-7: flags 0xCE, keep alive 10, properties length 5, session expiry 10.
			"connect 5", V5,
			pkt(0x10, 45, 0, 4, "MQTT", 5, 0xCE, 0, 10, 5, 0x11, 0, 0, 0, 10, 0, 3, "cid", 0, 0, 3, "a/b", 0, 4, "will", 0, 4, "user", 0, 4, "pass"),
			&Connect{Version: V5, CleanStart: true, KeepAlive: 10, ClientID: "cid",
				Will: &Will{Topic: "a/b", Payload: []byte("will"), QoS: 1}, HasUsername: true, Username: "user",
				HasPassword: true, Password: []byte("pass"), Properties: Properties{Present: propSet(PropSessionExpiry), SessionExpiry: 10}},
		},
		{"connack 3.1.1 session present", V311, pkt(0x20, 2, 1, 0), &Connack{SessionPresent: true}},
		{"connack 3.1 refused", V31, pkt(0x20, 2, 0, 5), &Connack{ReasonCode: 5}},
		{"connack 5 not authorized", V5, pkt(0x20, 3, 0, 0x87, 0), &Connack{ReasonCode: NotAuthorized}},
		{
			// 3.1.1 figure 3.11: topic "a/b", packet identifier 10.
			"publish 3.1.1 qos1", V311, pkt(0x32, 9, 0, 3, "a/b", 0, 10, "hi"),
			&Publish{QoS: 1, Topic: "a/b", PacketID: 10, Payload: []byte("hi")},
		},
		{"publish 3.1.1 qos0 retain", V311, pkt(0x31, 5, 0, 3, "a/b"), &Publish{Retain: true, Topic: "a/b", Payload: []byte{}}},
		{
			"publish 5 qos2 dup with properties", V5,
			pkt(0x3C, 24, 0, 3, "a/b", 0, 10, 14, 0x01, 1, 0x0B, 7, 0x23, 0, 5, 0x26, 0, 1, "k", 0, 1, "v", "hi"),
			&Publish{Dup: true, QoS: 2, Topic: "a/b", PacketID: 10, Payload: []byte("hi"), Properties: Properties{
				Present: propSet(PropPayloadFormat, PropTopicAlias, PropUserProperty, PropSubscriptionID), PayloadFormat: 1, TopicAlias: 5,
				UserProperties: []UserProperty{{"k", "v"}}, SubscriptionIDs: []uint32{7}}},
		},
		{"puback", V311, pkt(0x40, 2, 0, 10), &PubAck{PacketID: 10}},
		{"pubrec", V311, pkt(0x50, 2, 0, 10), &PubRec{PacketID: 10}},
		{"pubrel", V311, pkt(0x62, 2, 0, 10), &PubRel{PacketID: 10}},
		{"pubcomp", V311, pkt(0x70, 2, 0, 10), &PubComp{PacketID: 10}},
		{"puback 5 short success", V5, pkt(0x40, 2, 0, 10), &PubAck{PacketID: 10}},
		{"puback 5 no subscribers", V5, pkt(0x40, 3, 0, 10, 0x10), &PubAck{PacketID: 10, ReasonCode: NoMatchingSubscribers}},
		{"pubrel 5 not found", V5, pkt(0x62, 3, 0, 10, 0x92), &PubRel{PacketID: 10, ReasonCode: PacketIdentifierNotFound}},
		{
			"puback 5 reason string", V5, pkt(0x40, 8, 0, 10, 0x80, 4, 0x1F, 0, 1, "x"),
			&PubAck{PacketID: 10, ReasonCode: UnspecifiedError, Properties: Properties{Present: propSet(PropReasonString), ReasonString: "x"}},
		},
		{
			// 3.1.1 figures 3.21/3.22: packet identifier 10, "a/b" QoS 1, "c/d" QoS 2.
			"subscribe 3.1.1", V311, pkt(0x82, 14, 0, 10, 0, 3, "a/b", 1, 0, 3, "c/d", 2),
			&Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}},
		},
		{
			"subscribe 5 options", V5, pkt(0x82, 17, 0, 10, 2, 0x0B, 1, 0, 3, "a/+", 0x2D, 0, 3, "c/#", 0x18),
			&Subscribe{PacketID: 10, Properties: Properties{Present: propSet(PropSubscriptionID), SubscriptionIDs: []uint32{1}},
				Subscriptions: []Subscription{{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
					{Filter: "c/#", RetainAsPublished: true, RetainHandling: 1}}},
		},
		{
			// 3.1.1 figure 3.26: return codes 0, 1, 2, 0x80.
			"suback 3.1.1", V311, pkt(0x90, 6, 0, 10, 0, 1, 2, 0x80),
			&Suback{PacketID: 10, ReasonCodes: []ReasonCode{0, 1, 2, 0x80}},
		},
		{"suback 5", V5, pkt(0x90, 5, 0, 10, 0, 0x8F, 0xA2), &Suback{PacketID: 10, ReasonCodes: []ReasonCode{0x8F, 0xA2}}},
		{
			// 3.1.1 figure 3.30: "a/b", "c/d".
			"unsubscribe 3.1.1", V311, pkt(0xA2, 12, 0, 10, 0, 3, "a/b", 0, 3, "c/d"),
			&Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}},
		},
		{"unsubscribe 5", V5, pkt(0xA2, 8, 0, 10, 0, 0, 3, "a/b"), &Unsubscribe{PacketID: 10, Filters: []string{"a/b"}}},
		{"unsuback 3.1.1", V311, pkt(0xB0, 2, 0, 10), &Unsuback{PacketID: 10}},
		{"unsuback 5", V5, pkt(0xB0, 5, 0, 10, 0, 0, 0x11), &Unsuback{PacketID: 10, ReasonCodes: []ReasonCode{0, 0x11}}},
		{"pingreq", V311, pkt(0xC0, 0), &Pingreq{}},
		{"pingresp", V5, pkt(0xD0, 0), &Pingresp{}},
		{"disconnect 3.1.1", V311, pkt(0xE0, 0), &Disconnect{}},
		{"disconnect 5 normal", V5, pkt(0xE0, 0), &Disconnect{}},
		{"disconnect 5 with will", V5, pkt(0xE0, 1, 0x04), &Disconnect{ReasonCode: DisconnectWithWill}},
		{
			"disconnect 5 session expiry", V5, pkt(0xE0, 7, 0x00, 5, 0x11, 0, 0, 0x0E, 0x10),
			&Disconnect{Properties: Properties{Present: propSet(PropSessionExpiry), SessionExpiry: 3600}},
		},
		{
			"auth 5 continue", V5, pkt(0xF0, 16, 0x18, 14, 0x15, 0, 5, "SCRAM", 0x16, 0, 3, 1, 2, 3),
			&Auth{ReasonCode: ContinueAuthentication, Properties: Properties{Present: propSet(PropAuthMethod, PropAuthData),
				AuthMethod: "SCRAM", AuthData: []byte{1, 2, 3}}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Trailing bytes of the next packet are not consumed.
			in := append(append([]byte{}, c.enc...), 0xC0, 0)
			got, n, err := Decode(c.v, in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(c.enc) {
				t.Fatalf("consumed %d, want %d", n, len(c.enc))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, c.want)
			}
			enc, err := Append([]byte("prefix"), c.want, c.v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(enc[6:], c.enc) || string(enc[:6]) != "prefix" {
				t.Fatalf("Append = % X\nwant       % X", enc[6:], c.enc)
			}
			// Every proper prefix needs more.
			for i := 0; i < len(c.enc); i++ {
				if _, n, err := Decode(c.v, c.enc[:i]); err != ErrNeedMore || n != 0 {
					t.Fatalf("prefix of %d bytes: %d, %v", i, n, err)
				}
			}
		})
	}
}

// TestUTF8Example is 3.1.1 figure 1.3 / MQTT 5 figure 1-1: "A\U0002A6D4" as 00 05 41 F0 AA 9B 94.
func TestUTF8Example(t *testing.T) {
	enc := pkt(0x30, 9, 0, 5, 0x41, 0xF0, 0xAA, 0x9B, 0x94, "x", "y")
	p, _, err := Decode(V311, enc)
	if err != nil {
		t.Fatal(err)
	}
	if p.(*Publish).Topic != "A\U0002A6D4" {
		t.Fatalf("topic %q", p.(*Publish).Topic)
	}
	if got := appendStr(nil, "A\U0002A6D4"); !bytes.Equal(got, enc[2:9]) {
		t.Fatalf("% X", got)
	}
}
