package server_test

// Quorum queues replicated over three in-process members (testbroker.StartCluster), each declared
// on every member with the DeclareQuorumReplica hook (the meta group's job in the broker).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

const qqTimeout = 20 * time.Second

type qqCluster struct {
	t      *testing.T
	bs     []*testbroker.Broker
	opts   []*server.Options
	stores []*storage.MemStore
	nodes  []server.ClusterNode
	voters []uint64
}

func startQQCluster(t *testing.T) *qqCluster {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // runs last: after the brokers stopped
	c := &qqCluster{t: t, stores: make([]*storage.MemStore, 3), opts: make([]*server.Options, 3)}
	for i := range c.stores {
		c.stores[i] = storage.NewMemStore()
	}
	c.bs = testbroker.StartCluster(t, 3, func(i int, o *server.Options) {
		o.Store = c.stores[i]
		c.opts[i] = o
	})
	c.nodes = c.opts[0].Cluster.Nodes
	for _, n := range c.nodes {
		c.voters = append(c.voters, server.NodeID(n.Name))
	}
	return c
}

// declare declares quorum queue q (group) on members idx (every member when none is given).
func (c *qqCluster) declare(q string, group uint64, idx ...int) {
	c.t.Helper()
	c.declareArgs(q, group, map[string]any{"x-queue-type": "quorum"}, idx...)
}

func (c *qqCluster) declareArgs(q string, group uint64, args map[string]any, idx ...int) {
	c.t.Helper()
	if len(idx) == 0 {
		idx = []int{0, 1, 2}
	}
	for _, i := range idx {
		if err := server.DeclareQuorumReplica(c.bs[i].Srv, "/", q, args, group, c.voters); err != nil {
			c.t.Fatalf("declare on %s: %v", c.nodes[i].Name, err)
		}
	}
}

// leader waits until the members in idx agree on q's leader and returns its index.
func (c *qqCluster) leader(q string, idx ...int) int {
	c.t.Helper()
	found := -1
	wait.For(c.t, qqTimeout, "the members to agree on a leader", func() bool {
		lead := ""
		for _, i := range idx {
			qi, err := c.bs[i].Srv.Queue("/", q)
			if err != nil || qi.Leader == "" || lead != "" && qi.Leader != lead {
				return false
			}
			lead = qi.Leader
		}
		for i, n := range c.nodes {
			if n.Name == lead {
				found = i
			}
		}
		return found >= 0
	})
	return found
}

// restart starts member i again from its store.
func (c *qqCluster) restart(i int) {
	c.t.Helper()
	ln, err := net.Listen("tcp", c.nodes[i].Addr)
	if err != nil {
		c.t.Fatal(err)
	}
	o := *c.opts[i]
	c.stores[i] = c.stores[i].Reopen()
	o.Store = c.stores[i]
	o.Cluster = &server.ClusterOptions{Listener: ln, Nodes: c.nodes, TickInterval: testbroker.ClusterTick}
	b, err := testbroker.New(o, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			c.t.Errorf("%s: %v", c.nodes[i].Name, err)
		}
	})
	c.bs[i] = b
}

func (c *qqCluster) channel(i int) *amqp.Channel {
	c.t.Helper()
	conn, err := amqp.Dial(c.bs[i].URL)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		c.t.Fatal(err)
	}
	return ch
}

// counts waits until member i shows q with ready and unacked messages.
func (c *qqCluster) counts(i int, q string, ready, unacked int64) {
	c.t.Helper()
	wait.For(c.t, qqTimeout, fmt.Sprintf("%s to show %d ready and %d unacked", c.nodes[i].Name, ready, unacked), func() bool {
		qi, err := c.bs[i].Srv.Queue("/", q)
		return err == nil && qi.Ready == ready && qi.Unacked == unacked
	})
}

// consumers waits until member i counts n consumers of q (every member's).
func (c *qqCluster) consumers(i int, q string, n int) {
	c.t.Helper()
	wait.For(c.t, qqTimeout, fmt.Sprintf("%s to count %d consumers", c.nodes[i].Name, n), func() bool {
		qi, err := c.bs[i].Srv.Queue("/", q)
		return err == nil && qi.Consumers == n
	})
}

func publishConfirmed(t *testing.T, ch *amqp.Channel, q string, bodies []string) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	cf := ch.NotifyPublish(make(chan amqp.Confirmation, len(bodies)+1))
	for _, b := range bodies {
		if err := ch.Publish("", q, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range bodies {
		select {
		case c := <-cf:
			if !c.Ack {
				t.Fatalf("publish %d nacked", i)
			}
		case <-time.After(qqTimeout):
			t.Fatalf("%d of %d confirms", i, len(bodies))
		}
	}
}

func consume(t *testing.T, ch *amqp.Channel, q string, prefetch int) <-chan amqp.Delivery {
	t.Helper()
	if err := ch.Qos(prefetch, 0, false); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func recv(t *testing.T, d <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case m, ok := <-d:
		if !ok {
			t.Fatal("deliveries closed")
		}
		return m
	case <-time.After(qqTimeout):
		t.Fatal("no delivery")
	}
	return amqp.Delivery{}
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// Published with confirms on one member, consumed and acked on another: in order, and every
// member applies the acks (the third shows the queue empty).
func TestQuorumReplicaPublishOnOneConsumeOnAnother(t *testing.T) {
	c := startQQCluster(t)
	c.declare("qq-r1", 1<<40|1)
	c.leader("qq-r1", 0, 1, 2)
	want := bodies("m", 100)
	publishConfirmed(t, c.channel(1), "qq-r1", want)
	c.counts(0, "qq-r1", 100, 0)
	cch := c.channel(2)
	d := consume(t, cch, "qq-r1", 10)
	for i := range want {
		m := recv(t, d)
		if string(m.Body) != want[i] || m.Redelivered {
			t.Fatalf("delivery %d: %q redelivered=%v, want %q first time", i, m.Body, m.Redelivered, want[i])
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		c.counts(i, "qq-r1", 0, 0)
	}
	// basic.get on the first member (the consumer gone).
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	c.consumers(0, "qq-r1", 0)
	publishConfirmed(t, c.channel(2), "qq-r1", []string{"got"})
	g, ok, err := c.channel(0).Get("qq-r1", true)
	if err != nil || !ok || string(g.Body) != "got" {
		t.Fatalf("basic.get on %s: %q %v %v", c.nodes[0].Name, g.Body, ok, err)
	}
	// Declaring again is idempotent; a different group under the same name is refused.
	c.declare("qq-r1", 1<<40|1)
	if err := server.DeclareQuorumReplica(c.bs[0].Srv, "/", "qq-r1", map[string]any{"x-queue-type": "quorum"}, 1<<40|2, c.voters); err == nil {
		t.Fatal("redeclared under another group")
	}
	for i := range 3 {
		qi, err := c.bs[i].Srv.Queue("/", "qq-r1")
		if err != nil || len(qi.Members) != 3 || len(qi.Online) != 3 {
			t.Fatalf("%s: members %v online %v (%v)", c.nodes[i].Name, qi.Members, qi.Online, err)
		}
	}
}

// The leader's broker stops while a publisher on another member publishes with confirms: a new
// leader takes over, and every confirmed message is consumed afterwards from a survivor, none
// twice unless flagged redelivered.
func TestQuorumReplicaLeaderStopsDuringConfirmedPublishing(t *testing.T) {
	c := startQQCluster(t)
	c.declare("qq-r2", 1<<40|3)
	lead := c.leader("qq-r2", 0, 1, 2)
	pub, cons := (lead+1)%3, (lead+2)%3
	ch := c.channel(pub)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	cf := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	var mu sync.Mutex
	var confirmed []string
	published := map[string]bool{}
	done := make(chan error, 1)
	go func() {
		for i := range 300 {
			body := fmt.Sprintf("p%d", i)
			mu.Lock()
			published[body] = true
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), qqTimeout)
			err := ch.PublishWithContext(ctx, "", "qq-r2", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
			cancel()
			if err != nil {
				done <- err
				return
			}
			select {
			case cnf := <-cf:
				if cnf.Ack {
					mu.Lock()
					confirmed = append(confirmed, body)
					mu.Unlock()
				}
			case <-time.After(qqTimeout):
				done <- fmt.Errorf("no confirm for %s", body)
				return
			}
		}
		done <- nil
	}()
	wait.For(t, qqTimeout, "50 confirms", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(confirmed) >= 50
	})
	start := time.Now()
	if err := c.bs[lead].Stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	newLead := c.leader("qq-r2", pub, cons)
	t.Logf("leader %s stopped; %s leads; publishing ended %v after the stop", c.nodes[lead].Name, c.nodes[newLead].Name, time.Since(start))
	mu.Lock()
	want := append([]string(nil), confirmed...)
	mu.Unlock()
	if len(want) < 250 {
		t.Fatalf("only %d of 300 confirmed", len(want))
	}
	d := consume(t, c.channel(cons), "qq-r2", 50)
	seen := map[string]bool{}
	for missing := len(want); missing > 0; {
		m := recv(t, d)
		b := string(m.Body)
		mu.Lock()
		known := published[b]
		mu.Unlock()
		switch {
		case !known:
			t.Fatalf("unexpected message %q", b)
		case seen[b] && !m.Redelivered:
			t.Fatalf("%q delivered twice, not flagged redelivered", b)
		}
		if !seen[b] && slicesContains(want, b) {
			missing--
		}
		seen[b] = true
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
}

func slicesContains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// A consumer's member is cut off: after the bound, the leader returns its unacked messages and a
// consumer on another member gets them, redelivered with x-delivery-count 1; healed, the cut-off
// member's consumer is reinstated and gets new messages.
func TestQuorumReplicaConsumerNodeCutOff(t *testing.T) {
	c := startQQCluster(t)
	c.declare("qq-r3", 1<<40|4)
	lead := c.leader("qq-r3", 0, 1, 2)
	x, y := (lead+1)%3, (lead+2)%3
	want := bodies("u", 10)
	publishConfirmed(t, c.channel(lead), "qq-r3", want)
	dx := consume(t, c.channel(x), "qq-r3", 10)
	var held []amqp.Delivery
	for i := range want {
		m := recv(t, dx)
		if string(m.Body) != want[i] {
			t.Fatalf("delivery %d on %s: %q", i, c.nodes[x].Name, m.Body)
		}
		held = append(held, m)
	}
	if err := server.SetClusterIsolated(c.bs[x].Srv, true); err != nil {
		t.Fatal(err)
	}
	chy := c.channel(y)
	dy := consume(t, chy, "qq-r3", 10)
	for i := range want {
		m := recv(t, dy)
		if string(m.Body) != want[i] || !m.Redelivered || m.Headers["x-delivery-count"] != int64(1) {
			t.Fatalf("redelivery %d on %s: %q redelivered=%v x-delivery-count=%v", i, c.nodes[y].Name, m.Body, m.Redelivered, m.Headers["x-delivery-count"])
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	c.counts(lead, "qq-r3", 0, 0)
	if err := server.SetClusterIsolated(c.bs[x].Srv, false); err != nil {
		t.Fatal(err)
	}
	if err := chy.Close(); err != nil {
		t.Fatal(err)
	}
	c.consumers(lead, "qq-r3", 1)
	c.counts(x, "qq-r3", 0, 0)
	// The cut-off consumer's late acks settle nothing (its messages went to y) but free its
	// channel's prefetch window.
	for _, m := range held {
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	publishConfirmed(t, c.channel(y), "qq-r3", []string{"after"})
	if m := recv(t, dx); string(m.Body) != "after" {
		t.Fatalf("after healing, %s's consumer got %q", c.nodes[x].Name, m.Body)
	}
}

// A member with a consumer holding unacked messages stops: another member's consumer gets them
// redelivered; messages published meanwhile reach the member when it restarts from its store, and
// it serves them.
func TestQuorumReplicaMemberStopsAndCatchesUp(t *testing.T) {
	c := startQQCluster(t)
	c.declare("qq-r4", 1<<40|5)
	lead := c.leader("qq-r4", 0, 1, 2)
	x, y := (lead+1)%3, (lead+2)%3
	want := bodies("s", 10)
	publishConfirmed(t, c.channel(y), "qq-r4", want)
	dx := consume(t, c.channel(x), "qq-r4", 10)
	for range want {
		recv(t, dx)
	}
	c.counts(lead, "qq-r4", 0, 10)
	if single, crit := c.bs[y].Srv.QuorumCritical(); single || len(crit) != 0 {
		t.Fatalf("every member up: quorum critical %v %v", single, crit)
	}
	if err := c.bs[x].Stop(); err != nil {
		t.Fatal(err)
	}
	// Two of three left: stopping either would lose the majority.
	wait.For(t, qqTimeout, "the survivors to be quorum critical", func() bool {
		for _, i := range []int{lead, y} {
			if _, crit := c.bs[i].Srv.QuorumCritical(); len(crit) != 1 || crit[0].Name != "qq-r4" || len(crit[0].Online) != 2 {
				return false
			}
		}
		return true
	})
	// The management API says so: node-is-quorum-critical 503 with the queue, and the queue's
	// members and online members.
	api := management.NewHandler(c.bs[lead].Srv, testbroker.Logger(t))
	get := func(path string) (int, map[string]any) {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		r.SetBasicAuth("guest", "guest")
		r.RemoteAddr = "127.0.0.1:40000" // guest logs in from loopback only
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v %s", path, err, w.Body)
		}
		return w.Code, m
	}
	code, crit := get("/api/health/checks/node-is-quorum-critical")
	qs, _ := crit["queues"].([]any)
	if code != 503 || crit["status"] != "failed" || len(qs) != 1 || qs[0].(map[string]any)["name"] != "qq-r4" ||
		qs[0].(map[string]any)["readable_name"] != "queue 'qq-r4' in vhost '/'" {
		t.Fatalf("node-is-quorum-critical: %d %v", code, crit)
	}
	code, qj := get("/api/queues/%2F/qq-r4")
	if members, _ := qj["members"].([]any); code != 200 || qj["type"] != "quorum" || qj["leader"] != c.nodes[lead].Name ||
		len(members) != 3 || len(qj["online"].([]any)) != 2 {
		t.Fatalf("/api/queues: %d type %v leader %v members %v online %v", code, qj["type"], qj["leader"], qj["members"], qj["online"])
	}
	chy := c.channel(y)
	dy := consume(t, chy, "qq-r4", 10)
	for i := range want {
		m := recv(t, dy)
		if string(m.Body) != want[i] || !m.Redelivered {
			t.Fatalf("redelivery %d: %q redelivered=%v", i, m.Body, m.Redelivered)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := chy.Close(); err != nil {
		t.Fatal(err)
	}
	// The consumer's detachment is a proposal of its own: wait for it, or the next messages may
	// go to it first and come back redelivered.
	c.consumers(lead, "qq-r4", 0)
	more := bodies("t", 20)
	publishConfirmed(t, c.channel(lead), "qq-r4", more)
	c.restart(x)
	c.declare("qq-r4", 1<<40|5, x) // the meta group declares again at a restart: idempotent
	c.counts(x, "qq-r4", 20, 0)
	dx2 := consume(t, c.channel(x), "qq-r4", 20)
	for i := range more {
		m := recv(t, dx2)
		if string(m.Body) != more[i] || m.Redelivered {
			t.Fatalf("delivery %d on the restarted %s: %q redelivered=%v", i, c.nodes[x].Name, m.Body, m.Redelivered)
		}
		if err := m.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	c.counts(lead, "qq-r4", 0, 0)
}

// Expiry (a Tick) and dead-lettering are the leader's: messages expired by x-message-ttl (the
// queue's configuration from its arguments on every member, with no Config entry) are
// republished once, by the leader's node, to its (node-local) dead-letter queue.
func TestQuorumReplicaDeadLettersOnceByTheLeader(t *testing.T) {
	c := startQQCluster(t)
	for i := range 3 {
		if _, err := c.bs[i].Srv.DeclareQueue("/", "qq-dlq", server.QueueSpec{Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	c.declareArgs("qq-r5", 1<<40|6, map[string]any{"x-queue-type": "quorum", "x-message-ttl": int32(100),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "qq-dlq"})
	lead := c.leader("qq-r5", 0, 1, 2)
	publishConfirmed(t, c.channel((lead+1)%3), "qq-r5", bodies("x", 5))
	c.counts(lead, "qq-dlq", 5, 0)
	for i := range 3 {
		c.counts(i, "qq-r5", 0, 0)
	}
	publishConfirmed(t, c.channel(lead), "qq-dlq", []string{"marker"}) // a round trip after the dead letters
	c.counts(lead, "qq-dlq", 6, 0)
	for i := range 3 {
		if i == lead {
			continue
		}
		if qi, err := c.bs[i].Srv.Queue("/", "qq-dlq"); err != nil || qi.Ready != 0 {
			t.Fatalf("%s (a follower) dead-lettered: %d messages in its dead-letter queue (%v)", c.nodes[i].Name, qi.Ready, err)
		}
	}
}

// x-dead-letter-strategy at-least-once (with reject-publish, as RabbitMQ requires): a rejected
// message whose dead-letter target does not exist yet stays in the queue, counted as a pending
// dead letter, until the target exists; then the leader's node republishes it once, confirmed,
// and it leaves. On a single node the same.
func TestQuorumReplicaDeadLetterAtLeastOnce(t *testing.T) {
	args := map[string]any{"x-queue-type": "quorum", "x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once",
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "qq-alo-target"}
	rejectOne := func(ch *amqp.Channel, q string) {
		t.Helper()
		m, ok, err := ch.Get(q, false)
		if err != nil || !ok {
			t.Fatalf("basic.get: %v %v", ok, err)
		}
		if err := m.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(s *server.Server, q string, n int64) {
		t.Helper()
		wait.For(t, qqTimeout, fmt.Sprintf("%d pending dead letters", n), func() bool {
			qi, err := s.Queue("/", q)
			return err == nil && qi.DeadLetterPending == n
		})
	}
	t.Run("cluster", func(t *testing.T) {
		c := startQQCluster(t)
		c.declareArgs("qq-r6", 1<<40|7, args)
		lead := c.leader("qq-r6", 0, 1, 2)
		other := (lead + 1) % 3
		ch := c.channel(other)
		publishConfirmed(t, ch, "qq-r6", []string{"d"})
		rejectOne(ch, "qq-r6")
		for i := range 3 {
			pending(c.bs[i].Srv, "qq-r6", 1)
		}
		for i := range 3 {
			if _, err := c.bs[i].Srv.DeclareQueue("/", "qq-alo-target", server.QueueSpec{Durable: true}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			pending(c.bs[i].Srv, "qq-r6", 0)
		}
		c.counts(lead, "qq-alo-target", 1, 0)
		for i := range 3 {
			if qi, err := c.bs[i].Srv.Queue("/", "qq-alo-target"); i != lead && (err != nil || qi.Ready != 0) {
				t.Fatalf("follower %s republished: %d (%v)", c.nodes[i].Name, qi.Ready, err)
			}
		}
	})
	t.Run("single", func(t *testing.T) {
		b := testbroker.Start(t)
		conn, err := amqp.Dial(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		table := amqp.Table{}
		for k, v := range args {
			table[k] = v
		}
		if _, err := ch.QueueDeclare("qq-alo", true, false, false, false, table); err != nil {
			t.Fatal(err)
		}
		publishConfirmed(t, ch, "qq-alo", []string{"d"})
		rejectOne(ch, "qq-alo")
		pending(b.Srv, "qq-alo", 1)
		if _, err := ch.QueueDeclare("qq-alo-target", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		pending(b.Srv, "qq-alo", 0)
		m, ok, err := ch.Get("qq-alo-target", true)
		if err != nil || !ok || string(m.Body) != "d" || m.Headers["x-death"] == nil {
			t.Fatalf("dead letter: %q %v %v x-death %v", m.Body, ok, err, m.Headers["x-death"])
		}
	})
}
