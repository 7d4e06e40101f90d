package integration

// Policies: the same settings as x-arguments, applied to the queues and exchanges whose names match
// a pattern, when they are declared and when the policy is added, changed or deleted.
//
// Against an external broker (WARREN_TEST_URL) the policies are set through its management API:
// WARREN_TEST_MGMT_URL, default http://guest:guest@127.0.0.1:15672. RabbitMQ applies a policy to
// existing queues asynchronously, so the tests poll for its effect.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// policyMgmtURL is the external broker's management API.
func policyMgmtURL() string {
	if u := os.Getenv("WARREN_TEST_MGMT_URL"); u != "" {
		return u
	}
	return "http://guest:guest@127.0.0.1:15672"
}

// setPolicy creates or replaces policy name in vhost "/", deleted when the test ends.
func setPolicy(t testing.TB, b broker, name, pattern, applyTo string, priority int64, def map[string]any) {
	t.Helper()
	if b.Srv != nil {
		if _, err := b.Srv.PutPolicy(server.Policy{Vhost: "/", Name: name, Pattern: pattern, ApplyTo: applyTo,
			Priority: priority, Definition: def}); err != nil {
			t.Fatalf("put policy %s: %v", name, err)
		}
	} else {
		body, _ := json.Marshal(map[string]any{"pattern": pattern, "apply-to": applyTo, "priority": priority, "definition": def})
		policyHTTP(t, http.MethodPut, name, body)
	}
	t.Cleanup(func() {
		if b.Srv != nil {
			_ = b.Srv.DeletePolicy("/", name)
		} else {
			policyHTTP(t, http.MethodDelete, name, nil)
		}
	})
}

// deletePolicy deletes policy name of vhost "/".
func deletePolicy(t testing.TB, b broker, name string) {
	t.Helper()
	if b.Srv != nil {
		if err := b.Srv.DeletePolicy("/", name); err != nil {
			t.Fatalf("delete policy %s: %v", name, err)
		}
		return
	}
	policyHTTP(t, http.MethodDelete, name, nil)
}

func policyHTTP(t testing.TB, method, name string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, policyMgmtURL()+"/api/policies/%2F/"+url.PathEscape(name), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(policyMgmtURL()); err == nil && u.User != nil {
		p, _ := u.User.Password()
		req.SetBasicAuth(u.User.Username(), p)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Close = true // no idle connection outlives the test (goleak)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s policy %s: %v", method, name, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 && !(method == http.MethodDelete && resp.StatusCode == http.StatusNotFound) {
		t.Fatalf("%s policy %s: %s", method, name, resp.Status)
	}
}

// exact is a pattern matching name alone.
func exact(name string) string { return "^" + regexp.QuoteMeta(name) + "$" }

func publishN(t testing.TB, ch *amqp.Channel, queue string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		ttlPublish(t, ch, queue, fmt.Sprintf("m%d", i), "")
	}
}

// getBodies takes every ready message of queue (auto-ack) and returns the bodies.
func getBodies(t testing.TB, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var out []string
	for {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %q: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, string(m.Body))
	}
}

func wantBodies(t testing.TB, got []string, want ...string) {
	t.Helper()
	if !equalStrings(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A max-length policy limits a queue declared before it (the excess is dropped from the head at
// once) and one declared after it.
func TestAMQPPolicyMaxLength(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	before := ttlDeclare(t, b, ch, "before", nil)
	publishN(t, ch, before, 0, 5)
	prefix := amqpName(t, "q")
	after := prefix + ".after"
	setPolicy(t, b, amqpName(t, "pol"), "^"+regexp.QuoteMeta(before)+"$|^"+regexp.QuoteMeta(prefix), "queues", 0,
		map[string]any{"max-length": int64(2)})
	ttlWaitReady(t, conn, before, 2)
	wantBodies(t, getBodies(t, ch, before), "m3", "m4")

	if _, err := ch.QueueDeclare(after, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", after)
	publishN(t, ch, after, 0, 5)
	wantBodies(t, getBodies(t, ch, after), "m3", "m4")
}

// message-ttl and dead-letter-exchange from a policy make a retry queue: the expired message is
// dead-lettered to the work queue with x-death.
func TestAMQPPolicyRetryQueue(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	work := amqpQueue(t, b, ch, "work")
	retry := amqpName(t, "retry")
	setPolicy(t, b, amqpName(t, "pol"), exact(retry), "queues", 0, map[string]any{
		"message-ttl": int64(50), "dead-letter-exchange": "", "dead-letter-routing-key": work})
	if _, err := ch.QueueDeclare(retry, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", retry)
	ttlPublish(t, ch, retry, "again", "")
	m := dlxGet(t, conn, ch, work)
	if string(m.Body) != "again" {
		t.Fatalf("got %q", m.Body)
	}
	dlxDeath(t, m, 0, "expired", retry, "", 1, retry)
	dlxFirst(t, m, "expired", retry, "")
}

// Where an argument and a policy both set a limit the lower wins; the argument's dead-letter
// exchange wins over the policy's.
func TestAMQPPolicyArgumentPrecedence(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	prefix := amqpName(t, "q")
	setPolicy(t, b, amqpName(t, "pol"), "^"+regexp.QuoteMeta(prefix), "queues", 0, map[string]any{"max-length": int64(2)})
	declare := func(suffix string, args amqp.Table) string {
		name := prefix + suffix
		if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		amqpCleanup(t, b, "queue", name)
		return name
	}
	argLower := declare(".arg1", amqp.Table{"x-max-length": int32(1)})
	policyLower := declare(".arg3", amqp.Table{"x-max-length": int32(3)})
	publishN(t, ch, argLower, 0, 4)
	publishN(t, ch, policyLower, 0, 4)
	wantBodies(t, getBodies(t, ch, argLower), "m3")
	wantBodies(t, getBodies(t, ch, policyLower), "m2", "m3")

	dlxArg := amqpExchange(t, b, ch, "fanout", "dlxarg")
	dlxPol := amqpExchange(t, b, ch, "fanout", "dlxpol")
	deadArg := amqpQueue(t, b, ch, "deadarg")
	deadPol := amqpQueue(t, b, ch, "deadpol")
	if err := ch.QueueBind(deadArg, "", dlxArg, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(deadPol, "", dlxPol, false, nil); err != nil {
		t.Fatal(err)
	}
	src := amqpName(t, "src")
	setPolicy(t, b, amqpName(t, "dlxpol"), exact(src), "queues", 1, map[string]any{"dead-letter-exchange": dlxPol})
	if _, err := ch.QueueDeclare(src, false, false, false, false, amqp.Table{"x-dead-letter-exchange": dlxArg}); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", src)
	ttlPublish(t, ch, src, "r", "")
	if err := amqpGet(t, ch, src, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	m := dlxGet(t, conn, ch, deadArg)
	dlxDeath(t, m, 0, "rejected", src, "", 1, src)
	amqpGetEmpty(t, ch, deadPol)
}

// Of two matching policies the one with the higher priority applies, whichever came first.
func TestAMQPPolicyPriority(t *testing.T) {
	b, _, ch := amqpSetup(t)
	q := amqpName(t, "q")
	setPolicy(t, b, amqpName(t, "high"), exact(q), "queues", 10, map[string]any{"max-length": int64(3)})
	setPolicy(t, b, amqpName(t, "low"), "^"+regexp.QuoteMeta(q), "all", 1, map[string]any{"max-length": int64(1)})
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", q)
	publishN(t, ch, q, 0, 5)
	wantBodies(t, getBodies(t, ch, q), "m2", "m3", "m4")
}

// Deleting the policy lifts its limit; a policy for exchanges only does not apply to queues.
func TestAMQPPolicyDeleteLiftsLimit(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	name := amqpName(t, "pol")
	setPolicy(t, b, name, exact(q), "queues", 0, map[string]any{"max-length": int64(1)})
	setPolicy(t, b, amqpName(t, "xpol"), exact(q), "exchanges", 5, map[string]any{"alternate-exchange": "amq.fanout"})
	publishN(t, ch, q, 0, 3)
	ttlWaitReady(t, conn, q, 1)
	deletePolicy(t, b, name)
	// RabbitMQ applies the deletion asynchronously: publish until the queue grows past the limit.
	i := 3
	if !wait.Until(amqpTimeout, 10*time.Millisecond, func() bool {
		publishN(t, ch, q, i, i+1)
		i++
		n, _ := amqpReady(t, conn, q)
		return n > 1
	}) {
		t.Fatal("the limit stayed after the policy was deleted")
	}
	n, _ := amqpReady(t, conn, q)
	publishN(t, ch, q, 100, 103)
	ttlWaitReady(t, conn, q, n+3)
}

// An alternate-exchange policy on an exchange gets its unroutable messages.
func TestAMQPPolicyAlternateExchange(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	ae := amqpExchange(t, b, ch, "fanout", "ae")
	caught := amqpQueue(t, b, ch, "caught")
	if err := ch.QueueBind(caught, "", ae, false, nil); err != nil {
		t.Fatal(err)
	}
	x := amqpName(t, "x")
	setPolicy(t, b, amqpName(t, "pol"), exact(x), "exchanges", 0, map[string]any{"alternate-exchange": ae})
	if err := ch.ExchangeDeclare(x, "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", x)
	amqpPublish(t, ch, x, "nowhere", "lost")
	m := dlxGet(t, conn, ch, caught)
	if string(m.Body) != "lost" || m.Exchange != x || m.RoutingKey != "nowhere" {
		t.Fatalf("got %q via %q/%q", m.Body, m.Exchange, m.RoutingKey)
	}
}

// Policies survive a restart and apply to the recovered queues and to new ones.
func TestAMQPPolicyRestart(t *testing.T) {
	persistSkipExternal(t)
	forEachRestartableStore(t, func(t *testing.T, store restartable) {
		b1 := startBroker(t, func(o *server.Options) { o.Store = store })
		ch := amqpChannel(t, amqpDial(t, b1))
		if _, err := ch.QueueDeclare("pol.durable", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b1.Srv.PutPolicy(server.Policy{Vhost: "/", Name: "limit", Pattern: "^pol\\.", ApplyTo: "queues",
			Priority: 2, Definition: map[string]any{"max-length": int64(1)}}); err != nil {
			t.Fatal(err)
		}
		shutdown(t, b1.Srv)

		b2 := startBroker(t, func(o *server.Options) { o.Store = store.reopen(t) })
		ps := b2.Srv.Policies()
		if len(ps) != 1 || ps[0].Name != "limit" || ps[0].Pattern != "^pol\\." || ps[0].Priority != 2 ||
			ps[0].ApplyTo != "queues" || ps[0].Definition["max-length"] != int64(1) {
			t.Fatalf("recovered policies %+v", ps)
		}
		ch = amqpChannel(t, amqpDial(t, b2))
		if _, err := ch.QueueDeclare("pol.new", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"pol.durable", "pol.new"} {
			publishN(t, ch, q, 0, 3)
			wantBodies(t, getBodies(t, ch, q), "m2")
		}
	})
}

// A limit set by a policy on a queue whose backlog is paged out drops the oldest messages, paged
// ones included, and keeps limiting later publishes.
func TestAMQPPolicyPagedQueue(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.QueueWindow = 4 })
	conn := amqpDial(t, b)
	ch := amqpConfirmChannel(t, conn)
	q := ttlDeclare(t, b, ch, "paged", nil)
	publishN(t, ch, q, 0, 20)
	setPolicy(t, b, amqpName(t, "pol"), exact(q), "queues", 0, map[string]any{"max-length": int64(3)})
	ttlWaitReady(t, conn, q, 3)
	publishN(t, ch, q, 20, 22)
	wantBodies(t, getBodies(t, ch, q), "m19", "m20", "m21")

	// A limit above the window: messages past the window are paged, and the head is still dropped.
	q2 := ttlDeclare(t, b, ch, "paged2", nil)
	setPolicy(t, b, amqpName(t, "pol2"), exact(q2), "queues", 0, map[string]any{"max-length": int64(10)})
	publishN(t, ch, q2, 0, 30)
	ttlWaitReady(t, conn, q2, 10)
	want := seqBodies("m", 20, 30)
	wantBodies(t, getBodies(t, ch, q2), want...)
}

// An expires policy deletes an unused queue, declared before the policy.
func TestAMQPPolicyExpires(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	setPolicy(t, b, amqpName(t, "pol"), exact(q), "queues", 0, map[string]any{"expires": int64(100)})
	ttlWaitGone(t, conn, q)
}

// Policies changing while messages are published, rejected and dead-lettered (for -race): nothing
// fails, and the queue ends within the final policy's limit.
func TestAMQPPolicyChangesUnderLoad(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	if b.Srv == nil {
		t.Skip("changes policies through the in-process broker's API")
	}
	dead := amqpQueue(t, b, ch, "dead")
	q := amqpQueue(t, b, ch, "q")
	name := amqpName(t, "pol")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			def := map[string]any{"max-length": int64(i % 7), "dead-letter-exchange": "", "dead-letter-routing-key": dead,
				"message-ttl": int64(1 + i%5)}
			if i%3 == 0 {
				_ = b.Srv.DeletePolicy("/", name)
				continue
			}
			if _, err := b.Srv.PutPolicy(server.Policy{Vhost: "/", Name: name, Pattern: exact(q), ApplyTo: "queues", Definition: def}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	pub := amqpChannel(t, amqpDial(t, b))
	for i := 0; ; i++ {
		select {
		case <-done:
			setPolicy(t, b, name, exact(q), "queues", 0, map[string]any{"max-length": int64(2)})
			publishN(t, ch, q, 0, 5)
			ttlWaitReady(t, conn, q, 2)
			return
		default:
		}
		if err := pub.Publish("", q, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if m, ok, err := ch.Get(q, false); err != nil {
				t.Fatal(err)
			} else if ok {
				_ = m.Reject(false)
			}
		}
	}
}
