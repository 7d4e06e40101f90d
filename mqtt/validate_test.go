package mqtt

import (
	"testing"
)

// TestValidation feeds packets the specifications say must be refused and checks the reason code
// and whether the connection closes.
func TestValidation(t *testing.T) {
	connect := func(v byte, name string, flags byte, rest ...any) []byte {
		body := pkt(append([]any{0, len(name), name, int(v), int(flags), 0, 60}, rest...)...)
		return append([]byte{0x10, byte(len(body))}, body...)
	}
	cases := []struct {
		name  string
		v     Version
		enc   []byte
		code  ReasonCode
		close bool
	}{
		{"reserved type 0", V311, pkt(0x00, 0), MalformedPacket, true},
		{"auth before 5", V311, pkt(0xF0, 0), MalformedPacket, true},
		{"pubrel flags 0", V311, pkt(0x60, 2, 0, 1), MalformedPacket, true},
		{"puback flags 2", V311, pkt(0x42, 2, 0, 1), MalformedPacket, true},
		{"subscribe flags 0", V311, pkt(0x80, 6, 0, 1, 0, 1, "a", 0), MalformedPacket, true},
		{"unsubscribe flags 0", V5, pkt(0xA0, 6, 0, 1, 0, 0, 1, "a"), MalformedPacket, true},
		{"pingreq flags", V311, pkt(0xC1, 0), MalformedPacket, true},
		{"pingreq body", V311, pkt(0xC0, 1, 0), MalformedPacket, true},
		{"disconnect flags", V5, pkt(0xE8, 0), MalformedPacket, true},
		{"publish qos 3", V311, pkt(0x36, 5, 0, 1, "a", 0, 1), MalformedPacket, true},
		{"publish dup qos 0", V311, pkt(0x38, 3, 0, 1, "a"), MalformedPacket, true},
		{"publish packet id 0", V311, pkt(0x32, 5, 0, 1, "a", 0, 0), ProtocolError, true},
		{"publish wildcard +", V311, pkt(0x30, 5, 0, 3, "a/+"), TopicNameInvalid, true},
		{"publish wildcard #", V5, pkt(0x30, 4, 0, 1, "#", 0), TopicNameInvalid, true},
		{"publish empty topic 3.1.1", V311, pkt(0x30, 2, 0, 0), MalformedPacket, true},
		{"publish empty topic no alias 5", V5, pkt(0x30, 3, 0, 0, 0), ProtocolError, true},
		{"publish topic NUL", V311, pkt(0x30, 4, 0, 2, "a", 0), MalformedPacket, true},
		{"publish topic surrogate", V311, pkt(0x30, 5, 0, 3, 0xED, 0xA0, 0x80), MalformedPacket, true},
		{"publish topic overlong", V311, pkt(0x30, 4, 0, 2, 0xC0, 0xAF), MalformedPacket, true},
		{"publish topic truncated", V311, pkt(0x30, 3, 0, 5, "a"), MalformedPacket, true},
		{"publish duplicate payload format", V5, pkt(0x30, 8, 0, 1, "a", 4, 1, 0, 1, 1), ProtocolError, true},
		{"publish payload format 2", V5, pkt(0x30, 6, 0, 1, "a", 2, 1, 2), ProtocolError, true},
		{"publish topic alias 0", V5, pkt(0x30, 7, 0, 1, "a", 3, 0x23, 0, 0), ProtocolError, true},
		{"publish unknown property", V5, pkt(0x30, 6, 0, 1, "a", 2, 0x7F, 0), MalformedPacket, true},
		{"publish property not allowed", V5, pkt(0x30, 9, 0, 1, "a", 5, 0x11, 0, 0, 0, 1), MalformedPacket, true},
		{"publish properties past end", V5, pkt(0x30, 5, 0, 1, "a", 9, 1), MalformedPacket, true},
		{"publish subscription id 0", V5, pkt(0x30, 6, 0, 1, "a", 2, 0x0B, 0), ProtocolError, true},
		{"publish response topic wildcard", V5, pkt(0x30, 9, 0, 1, "a", 5, 0x08, 0, 2, "a", "#"), ProtocolError, true},
		{"subscribe duplicate subscription id", V5, pkt(0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, "a", 0), ProtocolError, true},
		{"puback packet id 0", V311, pkt(0x40, 2, 0, 0), ProtocolError, true},
		{"puback bad reason", V5, pkt(0x40, 3, 0, 1, 0x92), ProtocolError, true},
		{"pubcomp bad reason", V5, pkt(0x70, 3, 0, 1, 0x10), ProtocolError, true},
		{"puback 3.1.1 extra byte", V311, pkt(0x40, 3, 0, 1, 0), MalformedPacket, true},
		{"subscribe empty", V311, pkt(0x82, 2, 0, 1), ProtocolError, true},
		{"subscribe qos 3", V311, pkt(0x82, 6, 0, 1, 0, 1, "a", 3), MalformedPacket, true},
		{"subscribe reserved option bits 3.1.1", V311, pkt(0x82, 6, 0, 1, 0, 1, "a", 4), MalformedPacket, true},
		{"subscribe reserved option bits 5", V5, pkt(0x82, 7, 0, 1, 0, 0, 1, "a", 0x40), MalformedPacket, true},
		{"subscribe retain handling 3", V5, pkt(0x82, 7, 0, 1, 0, 0, 1, "a", 0x30), ProtocolError, true},
		{"subscribe shared no local", V5, pkt(0x82, 17, 0, 1, 0, 0, 11, "$share/g/a/", 4), ProtocolError, true},
		{"subscribe bad filter 3.1.1", V311, pkt(0x82, 7, 0, 1, 0, 2, "a#", 0), TopicFilterInvalid, true},
		{"subscribe bad filter 5 keeps connection", V5, pkt(0x82, 8, 0, 1, 0, 0, 2, "a+", 0), TopicFilterInvalid, false},
		{"unsubscribe bad filter 5 keeps connection", V5, pkt(0xA2, 8, 0, 1, 0, 0, 3, "#/a"), TopicFilterInvalid, false},
		{"unsubscribe empty", V311, pkt(0xA2, 2, 0, 1), ProtocolError, true},
		{"suback bad return code", V311, pkt(0x90, 3, 0, 1, 3), ProtocolError, true},
		{"connack reserved flags", V311, pkt(0x20, 2, 2, 0), MalformedPacket, true},
		{"connack session present with error", V5, pkt(0x20, 3, 1, 0x80, 0), ProtocolError, true},
		{"disconnect bad reason", V5, pkt(0xE0, 1, 0x01), ProtocolError, true},
		{"auth bad reason", V5, pkt(0xF0, 1, 0x80), ProtocolError, true},
		{"connect reserved flag", V311, connect(4, "MQTT", 0x03, 0, 1, "c"), MalformedPacket, true},
		{"connect will qos without will", V311, connect(4, "MQTT", 0x0A, 0, 1, "c"), MalformedPacket, true},
		{"connect will retain without will", V5, connect(5, "MQTT", 0x22, 0, 0, 1, "c"), MalformedPacket, true},
		{"connect will qos 3", V311, connect(4, "MQTT", 0x1E, 0, 1, "c", 0, 1, "t", 0, 0), MalformedPacket, true},
		{"connect password without user 3.1.1", V311, connect(4, "MQTT", 0x42, 0, 1, "c", 0, 1, "p"), MalformedPacket, true},
		{"connect level 6", V311, connect(6, "MQTT", 0x02, 0, 1, "c"), UnsupportedProtocolVersion, true},
		{"connect MQIsdp level 4", V311, connect(4, "MQIsdp", 0x02, 0, 1, "c"), UnsupportedProtocolVersion, true},
		{"connect empty id without clean session", V311, connect(4, "MQTT", 0x00, 0, 0), ClientIdentifierNotValid, true},
		{"connect 3.1 empty id", V31, connect(3, "MQIsdp", 0x02, 0, 0), ClientIdentifierNotValid, true},
		{"connect will topic wildcard", V311, connect(4, "MQTT", 0x06, 0, 1, "c", 0, 1, "+", 0, 0), MalformedPacket, true},
		{"connect auth data without method", V5, connect(5, "MQTT", 0x02, 4, 0x16, 0, 1, "x", 0, 1, "c"), ProtocolError, true},
		{"connect duplicate session expiry", V5, connect(5, "MQTT", 0x02, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1, 0, 1, "c"), ProtocolError, true},
		{"connect receive maximum 0", V5, connect(5, "MQTT", 0x02, 3, 0x21, 0, 0, 0, 1, "c"), ProtocolError, true},
		{"connect maximum packet size 0", V5, connect(5, "MQTT", 0x02, 5, 0x27, 0, 0, 0, 0, 0, 1, "c"), ProtocolError, true},
		{"connect request problem info 2", V5, connect(5, "MQTT", 0x02, 2, 0x17, 2, 0, 1, "c"), ProtocolError, true},
		{"connect user property NUL", V5, connect(5, "MQTT", 0x02, 7, 0x26, 0, 1, 0, 0, 1, "v", 0, 1, "c"), MalformedPacket, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, n, err := Decode(c.v, c.enc)
			wantCode(t, err, c.code, c.close)
			if c.close && (p != nil || n != 0) {
				t.Fatalf("closing error returned packet %v, %d", p, n)
			}
			if !c.close && (p == nil || n != len(c.enc)) {
				t.Fatalf("non-closing error without its packet: %v, %d", p, n)
			}
		})
	}
}

// TestValidPassword5 checks that MQTT 5 (and 3.1, which has no such rule) allow a password
// without a user name, 3.1.1 does not.
func TestValidPassword5(t *testing.T) {
	c := &Connect{ClientID: "c", CleanStart: true, HasPassword: true, Password: []byte("p")}
	b, err := Append(nil, c, V5)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Decode(V5, b); err != nil {
		t.Fatal(err)
	}
	b, err = Append(nil, c, V31)
	if err != nil {
		t.Fatal(err)
	}
	if p, _, err := Decode(V31, b); err != nil || string(p.(*Connect).Password) != "p" {
		t.Fatal(p, err)
	}
	if _, err := Append(nil, c, V311); err == nil {
		t.Fatal("3.1.1 encoded a password without a user name")
	}
}

// TestMaxPacketSize checks that the size is refused from the fixed header alone, before the rest
// of the packet has arrived.
func TestMaxPacketSize(t *testing.T) {
	d := &Decoder{Version: V311, MaxPacketSize: 100}
	hdr := []byte{0x30, 0x80, 0x01} // remaining length 128, nothing after it
	_, n, err := d.Decode(hdr)
	wantCode(t, err, PacketTooLarge, true)
	if n != 0 {
		t.Fatal(n)
	}
	// Exactly at the limit is fine: 2 + 98.
	p := &Publish{Topic: "t", Payload: make([]byte, 95)}
	b, _ := Append(nil, p, V311)
	if len(b) != 100 {
		t.Fatal(len(b))
	}
	if _, n, err := d.Decode(b); err != nil || n != 100 {
		t.Fatal(n, err)
	}
	if l, err := PacketLength(V311, []byte{0x30}, 10); err != ErrNeedMore || l != 0 {
		t.Fatal(l, err)
	}
}

func TestAppendRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Packet
		v    Version
	}{
		{"qos 3", &Publish{Topic: "a", QoS: 3, PacketID: 1}, V311},
		{"packet id 0", &Publish{Topic: "a", QoS: 1}, V311},
		{"wildcard topic", &Publish{Topic: "a/#"}, V5},
		{"empty topic 3.1.1", &Publish{}, V311},
		{"empty topic no alias 5", &Publish{}, V5},
		{"NUL topic", &Publish{Topic: "a\x00"}, V311},
		{"bad filter", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/#/b"}}}, V311},
		{"no filters", &Subscribe{PacketID: 1}, V311},
		{"unsubscribe id 0", &Unsubscribe{Filters: []string{"a"}}, V311},
		{"auth 3.1.1", &Auth{}, V311},
		{"version 6", &Pingreq{}, 6},
		{"connack code 3.1.1", &Connack{ReasonCode: NotAuthorized}, V311},
		{"suback 0x8F in 3.1.1", &Suback{PacketID: 1, ReasonCodes: []ReasonCode{0x8F}}, V311},
		{"user property NUL", &Disconnect{Properties: Properties{UserProperties: []UserProperty{{"a\x00", "b"}}}}, V5},
		{"too large", &Publish{Topic: "a", Payload: make([]byte, MaxRemainingLength)}, V311},
	} {
		if b, err := Append([]byte("x"), c.p, c.v); err == nil || string(b) != "x" {
			t.Errorf("%s: Append = % X, %v", c.name, b, err)
		}
	}
}
