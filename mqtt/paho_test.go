package mqtt

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestPahoEncodesWeDecode has a real client's encoder (paho.mqtt.golang, the Go MQTT 3.1.1 client)
// write every packet type and checks what Decode makes of it.
func TestPahoEncodesWeDecode(t *testing.T) {
	connect := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	connect.ProtocolName, connect.ProtocolVersion = "MQTT", 4
	connect.CleanSession, connect.Keepalive, connect.ClientIdentifier = true, 30, "paho-1"
	connect.WillFlag, connect.WillQos, connect.WillRetain, connect.WillTopic, connect.WillMessage = true, 1, true, "w/t", []byte("bye")
	connect.UsernameFlag, connect.Username, connect.PasswordFlag, connect.Password = true, "guest", true, []byte("secret")

	connack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	connack.SessionPresent, connack.ReturnCode = true, 0

	pub0 := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub0.TopicName, pub0.Payload = "sensors/1/temp", []byte("21.5")
	pub1 := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub1.Qos, pub1.Retain, pub1.TopicName, pub1.MessageID, pub1.Payload = 1, true, "a/b", 17, bytes.Repeat([]byte("x"), 300)
	pub2 := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub2.Qos, pub2.Dup, pub2.TopicName, pub2.MessageID, pub2.Payload = 2, true, "a", 65535, []byte{}

	puback := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	puback.MessageID = 17
	pubrec := packets.NewControlPacket(packets.Pubrec).(*packets.PubrecPacket)
	pubrec.MessageID = 18
	pubrel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	pubrel.MessageID = 19
	pubcomp := packets.NewControlPacket(packets.Pubcomp).(*packets.PubcompPacket)
	pubcomp.MessageID = 20

	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 21, []string{"a/+", "b/#", "$share/g/c"}, []byte{0, 1, 2}
	suback := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	suback.MessageID, suback.ReturnCodes = 21, []byte{0, 1, 0x80}
	unsub := packets.NewControlPacket(packets.Unsubscribe).(*packets.UnsubscribePacket)
	unsub.MessageID, unsub.Topics = 22, []string{"a/+", "b/#"}
	unsuback := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
	unsuback.MessageID = 22

	cases := []struct {
		paho packets.ControlPacket
		want Packet
	}{
		{connect, &Connect{Version: V311, CleanStart: true, KeepAlive: 30, ClientID: "paho-1",
			Will:        &Will{Topic: "w/t", Payload: []byte("bye"), QoS: 1, Retain: true},
			HasUsername: true, Username: "guest", HasPassword: true, Password: []byte("secret")}},
		{connack, &Connack{SessionPresent: true}},
		{pub0, &Publish{Topic: "sensors/1/temp", Payload: []byte("21.5")}},
		{pub1, &Publish{QoS: 1, Retain: true, Topic: "a/b", PacketID: 17, Payload: bytes.Repeat([]byte("x"), 300)}},
		{pub2, &Publish{QoS: 2, Dup: true, Topic: "a", PacketID: 65535, Payload: []byte{}}},
		{puback, &PubAck{PacketID: 17}},
		{pubrec, &PubRec{PacketID: 18}},
		{pubrel, &PubRel{PacketID: 19}},
		{pubcomp, &PubComp{PacketID: 20}},
		{sub, &Subscribe{PacketID: 21, Subscriptions: []Subscription{{Filter: "a/+"}, {Filter: "b/#", QoS: 1}, {Filter: "$share/g/c", QoS: 2}}}},
		{suback, &Suback{PacketID: 21, ReasonCodes: []ReasonCode{0, 1, 0x80}}},
		{unsub, &Unsubscribe{PacketID: 22, Filters: []string{"a/+", "b/#"}}},
		{unsuback, &Unsuback{PacketID: 22}},
		{packets.NewControlPacket(packets.Pingreq), &Pingreq{}},
		{packets.NewControlPacket(packets.Pingresp), &Pingresp{}},
		{packets.NewControlPacket(packets.Disconnect), &Disconnect{}},
	}
	var stream bytes.Buffer
	for _, c := range cases {
		var buf bytes.Buffer
		if err := c.paho.Write(&buf); err != nil {
			t.Fatal(err)
		}
		stream.Write(buf.Bytes())
		got, n, err := Decode(V311, buf.Bytes())
		if err != nil || n != buf.Len() {
			t.Fatalf("%v: Decode(% X): %d, %v", c.paho, buf.Bytes(), n, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Fatalf("paho %v\ndecoded %#v\nwant    %#v", c.paho, got, c.want)
		}
		// And our encoding of the same packet is byte for byte paho's.
		enc, err := Append(nil, c.want, V311)
		if err != nil || !bytes.Equal(enc, buf.Bytes()) {
			t.Fatalf("%v: Append = % X, paho wrote % X (%v)", c.paho, enc, buf.Bytes(), err)
		}
	}
	// All of them back to back, as a connection's reads would see them.
	d := &Decoder{Version: V311}
	b := stream.Bytes()
	for i := range cases {
		_, n, err := d.Decode(b)
		if err != nil {
			t.Fatalf("stream packet %d: %v", i, err)
		}
		b = b[n:]
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
}

// TestPahoReadsWhatWeEncode has paho's packet reader parse Append's output for every 3.1.1
// packet type.
func TestPahoReadsWhatWeEncode(t *testing.T) {
	for _, p := range samples(V311) {
		b, err := Append(nil, p, V311)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := packets.ReadPacket(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%T: paho ReadPacket(% X): %v", p, b, err)
		}
		ok := true
		switch p := p.(type) {
		case *Connect:
			c := cp.(*packets.ConnectPacket)
			ok = c.ProtocolName == "MQTT" && c.ProtocolVersion == 4 && c.CleanSession == p.CleanStart &&
				c.Keepalive == p.KeepAlive && c.ClientIdentifier == p.ClientID && c.UsernameFlag == p.HasUsername &&
				c.Username == p.Username && c.PasswordFlag == p.HasPassword && bytes.Equal(c.Password, p.Password) &&
				c.WillFlag == (p.Will != nil) && c.Validate() == packets.Accepted
			if p.Will != nil {
				ok = ok && c.WillTopic == p.Will.Topic && bytes.Equal(c.WillMessage, p.Will.Payload) &&
					c.WillQos == p.Will.QoS && c.WillRetain == p.Will.Retain
			}
		case *Connack:
			c := cp.(*packets.ConnackPacket)
			ok = c.SessionPresent == p.SessionPresent && c.ReturnCode == byte(p.ReasonCode)
		case *Publish:
			c := cp.(*packets.PublishPacket)
			ok = c.TopicName == p.Topic && c.Qos == p.QoS && c.Dup == p.Dup && c.Retain == p.Retain &&
				c.MessageID == p.PacketID && bytes.Equal(c.Payload, p.Payload)
		case *PubAck:
			ok = cp.(*packets.PubackPacket).MessageID == p.PacketID
		case *PubRec:
			ok = cp.(*packets.PubrecPacket).MessageID == p.PacketID
		case *PubRel:
			c := cp.(*packets.PubrelPacket)
			ok = c.MessageID == p.PacketID && c.Qos == 1
		case *PubComp:
			ok = cp.(*packets.PubcompPacket).MessageID == p.PacketID
		case *Subscribe:
			c := cp.(*packets.SubscribePacket)
			ok = c.MessageID == p.PacketID && len(c.Topics) == len(p.Subscriptions)
			for i, s := range p.Subscriptions {
				ok = ok && c.Topics[i] == s.Filter && c.Qoss[i] == s.QoS
			}
		case *Suback:
			c := cp.(*packets.SubackPacket)
			ok = c.MessageID == p.PacketID && len(c.ReturnCodes) == len(p.ReasonCodes)
			for i, rc := range p.ReasonCodes {
				ok = ok && c.ReturnCodes[i] == byte(rc)
			}
		case *Unsubscribe:
			c := cp.(*packets.UnsubscribePacket)
			ok = c.MessageID == p.PacketID && reflect.DeepEqual(c.Topics, p.Filters)
		case *Unsuback:
			ok = cp.(*packets.UnsubackPacket).MessageID == p.PacketID
		case *Pingreq:
			_, ok = cp.(*packets.PingreqPacket)
		case *Pingresp:
			_, ok = cp.(*packets.PingrespPacket)
		case *Disconnect:
			_, ok = cp.(*packets.DisconnectPacket)
		default:
			t.Fatalf("no check for %T", p)
		}
		if !ok {
			t.Fatalf("paho read % X as %v, we encoded %#v", b, cp, p)
		}
	}
}

// TestPahoConnect31 checks a 3.1 CONNECT ("MQIsdp", level 3) both ways with paho.
func TestPahoConnect31(t *testing.T) {
	c := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion, c.CleanSession, c.Keepalive, c.ClientIdentifier = "MQIsdp", 3, true, 10, "old-device"
	var buf bytes.Buffer
	if err := c.Write(&buf); err != nil {
		t.Fatal(err)
	}
	want := &Connect{Version: V31, CleanStart: true, KeepAlive: 10, ClientID: "old-device"}
	got, n, err := Decode(V31, buf.Bytes())
	if err != nil || n != buf.Len() || !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode: %#v, %d, %v", got, n, err)
	}
	enc, err := Append(nil, want, V31)
	if err != nil || !bytes.Equal(enc, buf.Bytes()) {
		t.Fatalf("Append = % X, paho wrote % X (%v)", enc, buf.Bytes(), err)
	}
	cp, err := packets.ReadPacket(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	if r := cp.(*packets.ConnectPacket); r.ProtocolName != "MQIsdp" || r.ProtocolVersion != 3 || r.Validate() != packets.Accepted {
		t.Fatalf("paho read %v", r)
	}
}
