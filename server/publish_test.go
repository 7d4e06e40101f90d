package server

import (
	"context"
	"testing"

	"github.com/warrenmq/warren/amqp"
)

// fakeSource is a publishSource that is not an AMQP connection (as an MQTT session would be).
type fakeSource struct {
	paused []*queue
	groups []*commitGroup
}

func (f *fakeSource) batch() *writeBatch                   { return nil }
func (f *fakeSource) flowID() any                          { return f }
func (f *fakeSource) pause(q *queue, wake <-chan struct{}) { f.paused = append(f.paused, q) }
func (f *fakeSource) joined(g *commitGroup)                { f.groups = append(f.groups, g) }

// The core publish path serves a publisher without an AMQP connection: it routes, enqueues,
// hands the publisher the commit group its confirm waits for, and pauses it (flow control) when
// a queue that a consumer on another connection drains is over its high mark.
func TestCorePublishWithoutConn(t *testing.T) {
	s, err := New(Options{QueueWindow: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	v := s.vhost("/")
	q, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: "core", Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	ex := v.exchange("")
	src := &fakeSource{}

	// A persistent message on a durable queue: the confirm waits for its commit group.
	m := &message{routingKey: "core", body: []byte("p"), persistent: true, arrived: nowMillis()}
	qs, refused := v.publish(src, ex, m, nil, nil, nil)
	if len(qs) != 1 || qs[0] != q || refused {
		t.Fatalf("routed to %v, refused %v", qs, refused)
	}
	if len(src.groups) != 1 {
		t.Fatalf("joined %d commit groups, want 1", len(src.groups))
	}
	if err := (&groupCollector{groups: src.groups}).wait(); err != nil {
		t.Fatal(err)
	}

	// A consumer elsewhere that takes nothing: past half the window the publisher is paused.
	f := &fakeTarget{q: q}
	f.sub = subscription{tag: "slow", target: f}
	if err := q.addConsumer(&f.sub, func() {}); err != nil {
		t.Fatal(err)
	}
	for i := 0; len(src.paused) == 0; i++ {
		if i == 8 {
			t.Fatal("not paused after a window of messages")
		}
		v.publish(src, ex, &message{routingKey: "core", body: []byte("t"), arrived: nowMillis()}, nil, nil, nil)
	}
	if n, _ := q.lengths(); n != 4 {
		t.Fatalf("paused at %d ready, want 4 (half the window)", n)
	}

	// Unroutable: no queue, nothing joined or paused.
	src = &fakeSource{}
	if qs, _ := v.publish(src, ex, &message{routingKey: "nowhere", body: []byte("x")}, nil, nil, nil); len(qs) != 0 || len(src.groups)+len(src.paused) != 0 {
		t.Fatalf("unroutable publish reached %v", qs)
	}
}

// The core permission check serves any front end: write on the exchange (remembered until the
// permissions change), the exchange exists and is not internal, topic permission.
func TestCorePublishChecks(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	v := s.vhost("/")
	pw := "pw"
	if _, err := s.PutUser(UserSpec{Name: "mqtt", Password: &pw}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPermission(Permission{User: "mqtt", Vhost: "/", Configure: ".*", Write: "^amq\\.topic$", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	u := &user{name: "mqtt"}
	var cache publishAccess
	wantErr := func(err error, text string) {
		t.Helper()
		e, ok := err.(*amqp.Error)
		if !ok || e.Text != text {
			t.Fatalf("got %v, want %q", err, text)
		}
	}
	if ex, err := v.checkPublish(u, "amq.topic", "a.b", &cache); err != nil || ex == nil || ex.name != "amq.topic" {
		t.Fatalf("amq.topic: %v %v", ex, err)
	}
	_, err = v.checkPublish(u, "amq.direct", "k", &cache)
	wantErr(err, "ACCESS_REFUSED - access to exchange 'amq.direct' in vhost '/' refused for user 'mqtt'")
	_, err = v.checkPublish(u, "", "k", &cache)
	wantErr(err, "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'mqtt'")
	if _, err := s.PutTopicPermission(TopicPermission{User: "mqtt", Vhost: "/", Exchange: "amq.topic", Write: "^sensors\\.", Read: ".*"}); err != nil {
		t.Fatal(err)
	}
	_, err = v.checkPublish(u, "amq.topic", "a.b", &cache)
	wantErr(err, "ACCESS_REFUSED - access to topic 'a.b' in exchange 'amq.topic' in vhost '/' refused for user 'mqtt'")
	if _, err := v.checkPublish(u, "amq.topic", "sensors.1", &cache); err != nil {
		t.Fatal(err)
	}
	// The broker's own publishes (no user) are not checked, but the exchange still must exist.
	_, err = v.checkPublish(nil, "nowhere", "k", &cache)
	wantErr(err, "NOT_FOUND - no exchange 'nowhere' in vhost '/'")
}
