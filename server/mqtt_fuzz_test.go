package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/warrenmq/warren/mqtt"
)

// mqttFuzzPackets are a well-formed MQTT session: CONNECT (3.1.1 or 5.0), then subscriptions,
// publishes of every QoS (retained too), acknowledgements, unsubscribe, ping and disconnect.
func mqttFuzzPackets(t testing.TB, v mqtt.Version) (connect []byte, session [][]byte) {
	enc := func(p mqtt.Packet) []byte {
		b, err := mqtt.Append(nil, p, v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var props mqtt.Properties
	if v == mqtt.V5 {
		props.SessionExpiry = 10
		props.Set(mqtt.PropSessionExpiry)
	}
	connect = enc(&mqtt.Connect{Version: v, ClientID: "fuzz", KeepAlive: 30, HasUsername: true, Username: "guest",
		HasPassword: true, Password: []byte("guest"), Properties: props,
		Will: &mqtt.Will{Topic: "fuzz/will", Payload: []byte("w"), QoS: 1}})
	var alias mqtt.Properties
	if v == mqtt.V5 {
		alias.TopicAlias = 1
		alias.Set(mqtt.PropTopicAlias)
		alias.UserProperties = []mqtt.UserProperty{{Key: "k", Value: "v"}}
	}
	session = [][]byte{
		enc(&mqtt.Subscribe{PacketID: 1, Subscriptions: []mqtt.Subscription{{Filter: "fuzz/#", QoS: 2}, {Filter: "$share/g/fuzz/+", QoS: 1}}}),
		enc(&mqtt.Subscribe{PacketID: 2, Subscriptions: []mqtt.Subscription{{Filter: "+/x", QoS: 0}}}),
		enc(&mqtt.Publish{Topic: "fuzz/a", Payload: []byte("q0")}),
		enc(&mqtt.Publish{Topic: "fuzz/b", QoS: 1, PacketID: 3, Retain: true, Payload: []byte("q1"), Properties: alias}),
		enc(&mqtt.Publish{Topic: "fuzz/c", QoS: 2, PacketID: 4, Payload: []byte("q2")}),
		enc(&mqtt.PubRel{PacketID: 4}),
		enc(&mqtt.PubAck{PacketID: 1}),
		enc(&mqtt.PubRec{PacketID: 2}),
		enc(&mqtt.PubComp{PacketID: 2}),
		enc(&mqtt.Unsubscribe{PacketID: 5, Filters: []string{"fuzz/#", "$share/g/fuzz/+"}}),
		enc(&mqtt.Pingreq{}),
		enc(&mqtt.Disconnect{}),
	}
	return connect, session
}

// FuzzMQTTConn feeds raw bytes to an MQTT connection over loopback TCP: it must not panic, must end
// once the client goes away, and must not allocate far beyond what it was sent. With the first
// octet's low bits 01 or 11 the input follows a valid 3.1.1 or 5.0 CONNECT.
func FuzzMQTTConn(f *testing.F) {
	c311, s311 := mqttFuzzPackets(f, mqtt.V311)
	c5, s5 := mqttFuzzPackets(f, mqtt.V5)
	f.Add(append([]byte{0}, c311...))
	for _, s := range s311 {
		f.Add(append([]byte{1}, s...))
	}
	for _, s := range s5 {
		f.Add(append([]byte{3}, s...))
	}
	f.Add([]byte{1, 0x30, 0xff, 0xff, 0xff, 0xff, 0x7f})

	// No failed-login delay: mutated credentials would each wait for it.
	srv, err := New(Options{HandshakeTimeout: 5 * time.Second, LoginFailureLimit: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			f.Errorf("shutdown: %v", err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		in := data[1:]
		switch data[0] & 3 {
		case 1:
			in = append(append([]byte(nil), c311...), in...)
		case 3:
			in = append(append([]byte(nil), c5...), in...)
		}
		fuzzServeOne(t, ln, in, func(nc net.Conn) { newMQTTConn(srv, nc).serve() })
	})
}
