package integration

import (
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
)

// MQTT 5 with a real client: Eclipse paho.golang (github.com/eclipse/paho.golang/paho). RabbitMQ
// 3.10.8's plugin speaks MQTT 3.1 and 3.1.1 only, so these are skipped against it.

// paho5Client is a connected paho.golang client and the messages it received.
type paho5Client struct {
	*paho5.Client
	msgs chan *paho5.Publish
}

// paho5Connect connects a paho.golang client (MQTT 5, clean start) to addr and disconnects it
// when the test ends (waiting for its goroutines).
func paho5Connect(t *testing.T, addr, id string, props *paho5.ConnectProperties) (*paho5Client, *paho5.Connack) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pc := &paho5Client{msgs: make(chan *paho5.Publish, 100)}
	pc.Client = paho5.NewClient(paho5.ClientConfig{
		Conn: nc,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			pc.msgs <- pr.Packet
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := pc.Connect(ctx, &paho5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30, Properties: props,
		UsernameFlag: true, Username: "guest", PasswordFlag: true, Password: []byte("guest")})
	if err != nil {
		nc.Close()
		t.Fatalf("paho.golang connect: %v (CONNACK %+v)", err, ack)
	}
	t.Cleanup(func() {
		pc.Disconnect(&paho5.Disconnect{ReasonCode: 0})
		select {
		case <-pc.Done():
		case <-time.After(10 * time.Second):
			t.Error("paho.golang client did not stop")
		}
	})
	return pc, ack
}

func (pc *paho5Client) subscribe(t *testing.T, subID int, opts ...paho5.SubscribeOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := &paho5.Subscribe{Subscriptions: opts}
	if subID != 0 {
		s.Properties = &paho5.SubscribeProperties{SubscriptionIdentifier: &subID}
	}
	sa, err := pc.Subscribe(ctx, s)
	if err != nil {
		t.Fatalf("paho.golang subscribe: %v (%+v)", err, sa)
	}
	for i, r := range sa.Reasons {
		if r != opts[i].QoS {
			t.Fatalf("SUBACK %v for %+v", sa.Reasons, opts)
		}
	}
}

func (pc *paho5Client) publish(t *testing.T, p *paho5.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := pc.Publish(ctx, p); err != nil {
		t.Fatalf("paho.golang publish %s: %v (%+v)", p.Topic, err, r)
	}
}

func (pc *paho5Client) next(t *testing.T) *paho5.Publish {
	t.Helper()
	select {
	case p := <-pc.msgs:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("paho.golang: no message within 10s")
		return nil
	}
}

// paho.golang: CONNACK properties; MQTT 5 properties end to end (content type, response topic,
// correlation data, user properties, message expiry) in a request/response exchange; a
// subscription identifier and No Local on the subscriber; shared subscriptions split a stream
// between two members.
func TestMQTT5PahoGolang(t *testing.T) {
	mqttSkipExternal(t, "RabbitMQ 3.10.8's MQTT plugin has no MQTT 5")
	b := startMQTTBroker(t)
	expiry := uint32(0)
	requester, ack := paho5Connect(t, b.MQTT, "paho5-requester", &paho5.ConnectProperties{SessionExpiryInterval: &expiry})
	if p := ack.Properties; p == nil || !p.SubIDAvailable || !p.SharedSubAvailable || !p.RetainAvailable ||
		p.TopicAliasMaximum == nil || *p.TopicAliasMaximum == 0 {
		t.Fatalf("CONNACK properties %+v", ack.Properties)
	}
	responder, _ := paho5Connect(t, b.MQTT, "paho5-responder", nil)
	responder.subscribe(t, 0, paho5.SubscribeOptions{Topic: "p5/requests/+", QoS: 1})
	requester.subscribe(t, 17, paho5.SubscribeOptions{Topic: "p5/replies/#", QoS: 1, NoLocal: true})

	msgExpiry := uint32(120)
	requester.publish(t, &paho5.Publish{Topic: "p5/requests/add", QoS: 1, Payload: []byte("2+3"),
		Properties: &paho5.PublishProperties{ContentType: "text/plain", ResponseTopic: "p5/replies/requester",
			CorrelationData: []byte{0, 1, 2, 0xff}, MessageExpiry: &msgExpiry,
			User: paho5.UserProperties{{Key: "app", Value: "calc"}}}})
	req := responder.next(t)
	rp := req.Properties
	if string(req.Payload) != "2+3" || rp == nil || rp.ContentType != "text/plain" || rp.ResponseTopic != "p5/replies/requester" ||
		string(rp.CorrelationData) != "\x00\x01\x02\xff" || rp.User.Get("app") != "calc" || rp.MessageExpiry == nil ||
		*rp.MessageExpiry == 0 || *rp.MessageExpiry > 120 {
		t.Fatalf("request as received: %+v properties %+v", req, rp)
	}
	// The requester's own publish to its reply topic is not sent back to it (No Local).
	requester.publish(t, &paho5.Publish{Topic: "p5/replies/requester", QoS: 1, Payload: []byte("own")})
	responder.publish(t, &paho5.Publish{Topic: rp.ResponseTopic, QoS: 1, Payload: []byte("5"),
		Properties: &paho5.PublishProperties{CorrelationData: rp.CorrelationData}})
	reply := requester.next(t)
	if string(reply.Payload) != "5" || reply.Properties == nil || string(reply.Properties.CorrelationData) != "\x00\x01\x02\xff" ||
		reply.Properties.SubscriptionIdentifier == nil || *reply.Properties.SubscriptionIdentifier != 17 {
		t.Fatalf("reply %+v properties %+v", reply, reply.Properties)
	}

	// Shared subscription: each message to one member.
	m1, _ := paho5Connect(t, b.MQTT, "paho5-member-1", nil)
	m2, _ := paho5Connect(t, b.MQTT, "paho5-member-2", nil)
	m1.subscribe(t, 0, paho5.SubscribeOptions{Topic: "$share/workers/p5/jobs", QoS: 1})
	m2.subscribe(t, 0, paho5.SubscribeOptions{Topic: "$share/workers/p5/jobs", QoS: 1})
	const n = 20
	for i := range n {
		requester.publish(t, &paho5.Publish{Topic: "p5/jobs", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	var got []string
	per := map[string]int{}
	for len(got) < n {
		select {
		case p := <-m1.msgs:
			got, per["1"] = append(got, string(p.Payload)), per["1"]+1
		case p := <-m2.msgs:
			got, per["2"] = append(got, string(p.Payload)), per["2"]+1
		case <-time.After(10 * time.Second):
			t.Fatalf("shared subscription: %d of %d messages (%v)", len(got), n, got)
		}
	}
	sort.Slice(got, func(i, j int) bool { return len(got[i]) < len(got[j]) || len(got[i]) == len(got[j]) && got[i] < got[j] })
	for i, s := range got {
		if s != fmt.Sprint(i) {
			t.Fatalf("shared subscription got %v, want each of 0..%d once", got, n-1)
		}
	}
	t.Logf("shared subscription split: %v", per)
}
