package streamclient

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/message"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"

	"github.com/warrenmq/warren/internal/wait"
)

// Super streams and single active consumer need RabbitMQ 3.11 (3.13 for creating super streams
// over the protocol): these tests run against Warren only.
func startSuper(t *testing.T) target {
	t.Helper()
	if externalURL != "" {
		t.Skip("RabbitMQ 3.10.8 has no single active consumer nor super stream commands")
	}
	return startStream(t, nil)
}

func partitionNames(name string, keys ...string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = name + "-" + k
	}
	return out
}

// TestSuperStreamTopology: declare with partitions and with binding keys, partitions and route
// queries, delete, and the refusals.
func TestSuperStreamTopology(t *testing.T) {
	b := startSuper(t)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareSuperStream(name, stream.NewPartitionsOptions(3).SetMaxAge(time.Hour)); err != nil {
		t.Fatalf("DeclareSuperStream: %v", err)
	}
	parts, err := e.QueryPartitions(name)
	if want := partitionNames(name, "0", "1", "2"); err != nil || !slices.Equal(parts, want) {
		t.Fatalf("partitions: %v %v, want %v", parts, err, want)
	}
	for _, p := range parts {
		if ok, err := e.StreamExists(p); err != nil || !ok {
			t.Fatalf("partition %s: exists %v %v", p, ok, err)
		}
	}
	if r, err := e.QueryRoute(name, "2"); err != nil || !slices.Equal(r, []string{name + "-2"}) {
		t.Fatalf("route 2: %v %v", r, err)
	}
	if r, err := e.QueryRoute(name, "no-such-key"); err != nil || len(r) != 0 {
		t.Fatalf("route to nowhere: %v %v", r, err)
	}
	missing := streamName(t)
	if _, err := e.QueryPartitions(missing); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("partitions of a missing super stream: %v", err)
	}
	if _, err := e.QueryRoute(missing, "0"); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("route of a missing super stream: %v", err)
	}

	keyed := streamName(t)
	if err := e.DeclareSuperStream(keyed, stream.NewBindingsOptions([]string{"emea", "amer", "apac"})); err != nil {
		t.Fatalf("DeclareSuperStream with binding keys: %v", err)
	}
	parts, err = e.QueryPartitions(keyed)
	if want := partitionNames(keyed, "emea", "amer", "apac"); err != nil || !slices.Equal(parts, want) {
		t.Fatalf("keyed partitions: %v %v, want %v", parts, err, want)
	}
	if r, err := e.QueryRoute(keyed, "amer"); err != nil || !slices.Equal(r, []string{keyed + "-amer"}) {
		t.Fatalf("route amer: %v %v", r, err)
	}

	// A partition that exists already: the whole declaration is refused and nothing is left.
	clash := streamName(t)
	if err := e.DeclareStream(clash+"-1", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.DeclareSuperStream(clash, stream.NewPartitionsOptions(2)); err != nil {
		// The client takes "already exists" for success; the refusal shows in the topology.
		t.Logf("declare over an existing partition: %v", err)
	}
	if _, err := e.QueryPartitions(clash); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("super stream made over an existing partition: %v", err)
	}
	if ok, _ := e.StreamExists(clash + "-0"); ok {
		t.Fatal("partition 0 left behind by a refused declaration")
	}
	if err := e.DeclareSuperStream("amq.reserved", stream.NewPartitionsOptions(1)); !errors.Is(err, stream.PreconditionFailed) {
		t.Fatalf("amq. name: %v", err)
	}
	if err := e.DeclareSuperStream(streamName(t), stream.NewBindingsOptions([]string{"a", "a"})); !errors.Is(err, stream.StreamAlreadyExists) && err != nil {
		t.Fatalf("duplicate binding keys: %v", err)
	}

	if err := e.DeleteSuperStream(name); err != nil {
		t.Fatalf("DeleteSuperStream: %v", err)
	}
	if _, err := e.QueryPartitions(name); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("partitions after delete: %v", err)
	}
	for _, p := range partitionNames(name, "0", "1", "2") {
		if ok, _ := e.StreamExists(p); ok {
			t.Fatalf("partition %s survived the delete", p)
		}
	}
	if err := e.DeleteSuperStream(name); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("second delete: %v", err)
	}
	if err := e.DeleteSuperStream(keyed); err != nil {
		t.Fatal(err)
	}
}

// countPartitions reads every partition from first and returns each one's bodies.
func countPartitions(t *testing.T, e *stream.Environment, parts []string, total int) map[string][]string {
	t.Helper()
	var mu sync.Mutex
	got := map[string][]string{}
	n := 0
	for _, p := range parts {
		c, err := e.NewConsumer(p, func(cc stream.ConsumerContext, m *amqp.Message) {
			mu.Lock()
			got[cc.Consumer.GetStreamName()] = append(got[cc.Consumer.GetStreamName()], string(m.GetData()))
			n++
			mu.Unlock()
		}, stream.NewConsumerOptions().SetOffset(stream.OffsetSpecification{}.First()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if !wait.Until(20*time.Second, wait.Interval, func() bool { mu.Lock(); defer mu.Unlock(); return n >= total }) {
		t.Fatalf("read %d of %d messages from the partitions", n, total)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

func sendSuper(t *testing.T, p *stream.SuperStreamProducer, msgs []message.StreamMessage) {
	t.Helper()
	ch := p.NotifyPublishConfirmation(len(msgs))
	for _, m := range msgs {
		if err := p.Send(m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	confirmed := 0
	timeout := time.After(20 * time.Second)
	for confirmed < len(msgs) {
		select {
		case pc := <-ch:
			for _, s := range pc.ConfirmationStatus {
				if !s.IsConfirmed() {
					t.Fatalf("not confirmed on %s", pc.Partition)
				}
				confirmed++
			}
		case <-timeout:
			t.Fatalf("%d of %d confirmed", confirmed, len(msgs))
		}
	}
}

// TestSuperStreamProducers: hash routing spreads messages over the partitions (each where the
// client's murmur3 put it, all of them read back); key routing asks the broker (route) and puts
// each message in the partition bound to its key; an unknown key is not routed.
func TestSuperStreamProducers(t *testing.T) {
	b := startSuper(t)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareSuperStream(name, stream.NewPartitionsOptions(3)); err != nil {
		t.Fatal(err)
	}
	parts := partitionNames(name, "0", "1", "2")
	hp, err := e.NewSuperStreamProducer(name, stream.NewSuperStreamProducerOptions(
		stream.NewHashRoutingStrategy(func(m message.StreamMessage) string { return m.GetMessageProperties().MessageID.(string) })))
	if err != nil {
		t.Fatalf("NewSuperStreamProducer: %v", err)
	}
	var msgs []message.StreamMessage
	for i := range 60 {
		m := amqp.NewMessage(fmt.Appendf(nil, "h-%d", i))
		m.Properties = &amqp.MessageProperties{MessageID: fmt.Sprintf("id-%d", i)}
		msgs = append(msgs, m)
	}
	sendSuper(t, hp, msgs)
	// Not closed: SuperStreamProducer.Close leaves a goroutine sleeping 2 s; the environment
	// closes its producers.
	got := countPartitions(t, e, parts, 60)
	total := 0
	for _, p := range parts {
		if len(got[p]) == 0 {
			t.Errorf("hash routing left %s empty: %v", p, got)
		}
		total += len(got[p])
	}
	if total != 60 {
		t.Fatalf("%d messages in the partitions, want 60", total)
	}

	keyed := streamName(t)
	if err := e.DeclareSuperStream(keyed, stream.NewBindingsOptions([]string{"red", "green", "blue"})); err != nil {
		t.Fatal(err)
	}
	kp, err := e.NewSuperStreamProducer(keyed, stream.NewSuperStreamProducerOptions(
		stream.NewKeyRoutingStrategy(func(m message.StreamMessage) string { return m.GetApplicationProperties()["colour"].(string) })))
	if err != nil {
		t.Fatalf("NewSuperStreamProducer (key): %v", err)
	}
	colours := []string{"red", "green", "blue", "green", "blue", "blue"}
	msgs = nil
	for i, c := range colours {
		m := amqp.NewMessage(fmt.Appendf(nil, "%s-%d", c, i))
		m.ApplicationProperties = map[string]any{"colour": c}
		msgs = append(msgs, m)
	}
	sendSuper(t, kp, msgs)
	unrouted := amqp.NewMessage([]byte("nowhere"))
	unrouted.ApplicationProperties = map[string]any{"colour": "purple"}
	if err := kp.Send(unrouted); !errors.Is(err, stream.ErrMessageRouteNotFound) {
		t.Fatalf("key without a partition: %v", err)
	}
	got = countPartitions(t, e, partitionNames(keyed, "red", "green", "blue"), len(colours))
	for _, c := range []string{"red", "green", "blue"} {
		var want []string
		for i, x := range colours {
			if x == c {
				want = append(want, fmt.Sprintf("%s-%d", c, i))
			}
		}
		if !slices.Equal(got[keyed+"-"+c], want) {
			t.Errorf("partition %s: %v, want %v", c, got[keyed+"-"+c], want)
		}
	}
}

// TestSuperStreamConsumer: a super stream consumer reads every partition.
func TestSuperStreamConsumer(t *testing.T) {
	b := startSuper(t)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareSuperStream(name, stream.NewPartitionsOptions(2)); err != nil {
		t.Fatal(err)
	}
	for i, p := range partitionNames(name, "0", "1") {
		pr, err := e.NewProducer(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		publishConfirmed(t, pr, bodies(fmt.Sprint("p", i), 5))
		pr.Close()
	}
	var mu sync.Mutex
	got := map[string]int{}
	// Closed with the environment: SuperStreamConsumer.Close leaves a goroutine sleeping 2 s.
	_, err := e.NewSuperStreamConsumer(name, func(cc stream.ConsumerContext, m *amqp.Message) {
		mu.Lock()
		got[cc.Consumer.GetStreamName()]++
		mu.Unlock()
	}, stream.NewSuperStreamConsumerOptions().SetOffset(stream.OffsetSpecification{}.First()))
	if err != nil {
		t.Fatalf("NewSuperStreamConsumer: %v", err)
	}
	if !wait.Until(20*time.Second, wait.Interval, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got[name+"-0"] == 5 && got[name+"-1"] == 5
	}) {
		mu.Lock()
		t.Fatalf("super stream consumer read %v", got)
	}
}

// sacRecorder collects what a single active consumer sees.
type sacRecorder struct {
	mu      sync.Mutex
	offsets []int64
	updates []string // "stream:true" / "stream:false"
}

func (r *sacRecorder) handler(cc stream.ConsumerContext, m *amqp.Message) {
	r.mu.Lock()
	r.offsets = append(r.offsets, cc.Consumer.GetOffset())
	r.mu.Unlock()
}

func (r *sacRecorder) update(spec func(string) stream.OffsetSpecification) stream.ConsumerUpdate {
	return func(s string, active bool) stream.OffsetSpecification {
		r.mu.Lock()
		r.updates = append(r.updates, fmt.Sprintf("%s:%v", s, active))
		r.mu.Unlock()
		return spec(s)
	}
}

func (r *sacRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.offsets)
}

func (r *sacRecorder) snapshot() ([]int64, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.offsets), slices.Clone(r.updates)
}

// TestSingleActiveConsumerFailover: of two consumers named alike only the first reads; when it
// unsubscribes the second is activated (consumer update) and reads from the offset the first
// stored; when the second's connection closes, a third takes over the same way.
func TestSingleActiveConsumerFailover(t *testing.T) {
	b := startSuper(t)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	p, err := e.NewProducer(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	publishConfirmed(t, p, bodies("a", 30))

	const app = "invoices"
	fromStored := func(s string) stream.OffsetSpecification {
		off, err := e.QueryOffset(app, s)
		if err != nil {
			return stream.OffsetSpecification{}.First()
		}
		return stream.OffsetSpecification{}.Offset(off + 1)
	}
	sac := func(r *sacRecorder) *stream.ConsumerOptions {
		return stream.NewConsumerOptions().SetConsumerName(app).SetManualCommit().
			SetSingleActiveConsumer(stream.NewSingleActiveConsumer(r.update(fromStored)))
	}
	var r1, r2, r3 sacRecorder
	c1, err := e.NewConsumer(name, r1.handler, sac(&r1))
	if err != nil {
		t.Fatalf("first consumer: %v", err)
	}
	e2 := env(t, b.streamURI)
	if _, err := e2.NewConsumer(name, r2.handler, sac(&r2)); err != nil {
		t.Fatalf("second consumer: %v", err)
	}
	e3 := env(t, b.streamURI)
	if _, err := e3.NewConsumer(name, r3.handler, sac(&r3)); err != nil {
		t.Fatalf("third consumer: %v", err)
	}
	if !wait.Until(20*time.Second, wait.Interval, func() bool { return r1.count() == 30 }) {
		t.Fatalf("active consumer read %d of 30", r1.count())
	}
	if err := c1.StoreCustomOffset(19); err != nil {
		t.Fatal(err)
	}
	if !wait.Until(10*time.Second, wait.Interval, func() bool { off, err := e.QueryOffset(app, name); return err == nil && off == 19 }) {
		t.Fatal("stored offset not visible")
	}
	publishConfirmed(t, p, bodies("b", 10))
	if !wait.Until(20*time.Second, wait.Interval, func() bool { return r1.count() == 40 }) {
		t.Fatalf("active consumer read %d of 40", r1.count())
	}
	if n2, n3 := r2.count(), r3.count(); n2 != 0 || n3 != 0 {
		t.Fatalf("inactive consumers read %d and %d messages", n2, n3)
	}
	if _, u := r1.snapshot(); !slices.Equal(u, []string{name + ":true"}) {
		t.Fatalf("first consumer's updates: %v", u)
	}

	// Unsubscribe: the second is activated and resumes after the stored offset 19.
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if !wait.Until(20*time.Second, wait.Interval, func() bool { return r2.count() == 20 }) {
		offs, u := r2.snapshot()
		t.Fatalf("second consumer after failover: offsets %v updates %v", offs, u)
	}
	offs, u := r2.snapshot()
	if offs[0] != 20 || offs[19] != 39 || !slices.Equal(u, []string{name + ":true"}) {
		t.Fatalf("second consumer: offsets %d..%d, updates %v", offs[0], offs[len(offs)-1], u)
	}
	if r3.count() != 0 {
		t.Fatalf("third consumer read while the second was active")
	}

	// Connection closed: the third takes over; the second stored nothing, so 20 onwards again.
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	if !wait.Until(20*time.Second, wait.Interval, func() bool { return r3.count() == 20 }) {
		offs, u := r3.snapshot()
		t.Fatalf("third consumer after failover: offsets %v updates %v", offs, u)
	}
	if offs, _ := r3.snapshot(); offs[0] != 20 {
		t.Fatalf("third consumer started at %d", offs[0])
	}
}

// TestSuperStreamSingleActiveConsumer: two super stream consumers of one group spread over three
// partitions as RabbitMQ does (partition index mod consumers: the first keeps 0 and 2, the
// second gets 1, the first stepping down there); when the second goes, the first takes 1 back.
func TestSuperStreamSingleActiveConsumer(t *testing.T) {
	b := startSuper(t)
	e := env(t, b.streamURI)
	name := streamName(t)
	if err := e.DeclareSuperStream(name, stream.NewPartitionsOptions(3)); err != nil {
		t.Fatal(err)
	}
	parts := partitionNames(name, "0", "1", "2")
	type seen struct {
		mu      sync.Mutex
		got     map[string]int
		updates []string
	}
	newConsumer := func(e *stream.Environment, s *seen) {
		s.got = map[string]int{}
		_, err := e.NewSuperStreamConsumer(name, func(cc stream.ConsumerContext, m *amqp.Message) {
			s.mu.Lock()
			s.got[cc.Consumer.GetStreamName()]++
			s.mu.Unlock()
		}, stream.NewSuperStreamConsumerOptions().SetConsumerName("group").SetOffset(stream.OffsetSpecification{}.First()).
			SetSingleActiveConsumer(stream.NewSingleActiveConsumer(func(p string, active bool) stream.OffsetSpecification {
				s.mu.Lock()
				s.updates = append(s.updates, fmt.Sprintf("%s:%v", p, active))
				s.mu.Unlock()
				return stream.OffsetSpecification{}.First()
			})))
		if err != nil {
			t.Fatalf("NewSuperStreamConsumer: %v", err)
		}
	}
	var a, bb seen
	newConsumer(e, &a)
	e2 := env(t, b.streamURI)
	newConsumer(e2, &bb)
	has := func(s *seen, want ...string) func() bool {
		return func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, w := range want {
				if !slices.Contains(s.updates, w) {
					return false
				}
			}
			return true
		}
	}
	if !wait.Until(20*time.Second, wait.Interval, has(&bb, parts[1]+":true")) {
		t.Fatalf("second consumer's updates: %v", bb.updates)
	}
	if !wait.Until(20*time.Second, wait.Interval, has(&a, parts[0]+":true", parts[1]+":true", parts[2]+":true", parts[1]+":false")) {
		t.Fatalf("first consumer's updates: %v", a.updates)
	}
	for i, pn := range parts {
		pr, err := e.NewProducer(pn, nil)
		if err != nil {
			t.Fatal(err)
		}
		publishConfirmed(t, pr, bodies(fmt.Sprint("m", i), 4))
		pr.Close()
	}
	counts := func(s *seen) map[string]int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return maps(s.got)
	}
	if !wait.Until(20*time.Second, wait.Interval, func() bool {
		ca, cb := counts(&a), counts(&bb)
		return ca[parts[0]] == 4 && ca[parts[2]] == 4 && cb[parts[1]] == 4
	}) {
		t.Fatalf("first read %v, second read %v", counts(&a), counts(&bb))
	}
	if ca, cb := counts(&a), counts(&bb); ca[parts[1]] != 0 || cb[parts[0]] != 0 || cb[parts[2]] != 0 {
		t.Fatalf("an inactive member read: first %v, second %v", ca, cb)
	}
	bb.mu.Lock()
	if slices.Contains(bb.updates, parts[0]+":true") || slices.Contains(bb.updates, parts[2]+":true") {
		t.Errorf("second consumer activated beyond partition 1: %v", bb.updates)
	}
	bb.mu.Unlock()

	// The second goes: the first is activated on partition 1 again and reads it from first.
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	if !wait.Until(20*time.Second, wait.Interval, func() bool { return counts(&a)[parts[1]] == 4 }) {
		t.Fatalf("first consumer after the second left: %v, updates %v", counts(&a), a.updates)
	}
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestSuperStreamQueries: route and partitions over a super stream declared through AMQP 0-9-1
// as RabbitMQ's rabbitmq-streams add_super_stream makes one (bound here in reverse order: the
// partitions come back in x-stream-partition-order). Runs against RabbitMQ 3.10.8 too.
func TestSuperStreamQueries(t *testing.T) {
	b := startStream(t, nil)
	conn, err := amqp091.Dial(b.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // after the deletes below (cleanups run last first)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	name := streamName(t)
	if err := ch.ExchangeDeclare(name, "direct", true, false, false, false, amqp091.Table{"x-super-stream": true}); err != nil {
		t.Fatal(err)
	}
	parts := partitionNames(name, "0", "1", "2")
	t.Cleanup(func() {
		ch.ExchangeDelete(name, false, false)
		for _, p := range parts {
			ch.QueueDelete(p, false, false, false)
		}
	})
	for _, p := range parts {
		if _, err := ch.QueueDeclare(p, true, false, false, false, amqp091.Table{"x-queue-type": "stream"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if err := ch.QueueBind(parts[i], fmt.Sprint(i), name, false, amqp091.Table{"x-stream-partition-order": int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	e := env(t, b.streamURI)
	if got, err := e.QueryPartitions(name); err != nil || !slices.Equal(got, parts) {
		t.Fatalf("partitions: %v %v, want %v", got, err, parts)
	}
	if got, err := e.QueryRoute(name, "2"); err != nil || !slices.Equal(got, parts[2:]) {
		t.Fatalf("route 2: %v %v", got, err)
	}
	if got, err := e.QueryRoute(name, "nope"); err != nil || len(got) != 0 {
		t.Fatalf("route to nowhere: %v %v", got, err)
	}
	if got, err := e.QueryPartitions("amq.direct"); err != nil || len(got) != 0 {
		t.Fatalf("partitions of amq.direct: %v %v", got, err)
	}
	if _, err := e.QueryPartitions(streamName(t)); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("partitions of a missing exchange: %v", err)
	}
	if _, err := e.QueryRoute(streamName(t), "0"); !errors.Is(err, stream.StreamDoesNotExist) {
		t.Fatalf("route of a missing exchange: %v", err)
	}
}
