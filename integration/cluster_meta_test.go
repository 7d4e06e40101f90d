package integration

// Replicated metadata (issue 16): definitions changed on one member of an in-process cluster
// (testbroker.StartCluster) are committed by the meta group and applied on every member.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// metaCluster is an in-process cluster under test, with each member's store kept by the test (so
// a member can be restarted from it) and a management API per member.
type metaCluster struct {
	t      *testing.T
	bs     []*testbroker.Broker
	stores []storage.Store
	apis   []string
	opts   func(i int, o *server.Options)
}

func startMetaCluster(t *testing.T, n int, tune func(o *server.ClusterOptions)) *metaCluster {
	t.Helper()
	if externalURL != "" {
		t.Skip("starts an in-process cluster; WARREN_TEST_URL points at an external broker")
	}
	mc := &metaCluster{t: t}
	for range n {
		st := storage.NewMemStore()
		t.Cleanup(func() { st.Close() })
		mc.stores = append(mc.stores, st)
	}
	mc.opts = func(i int, o *server.Options) {
		o.Store = mc.stores[i]
		o.Cluster.ProposeTimeout = 3 * time.Second
		if tune != nil {
			tune(o.Cluster)
		}
	}
	mc.bs = testbroker.StartCluster(t, n, mc.opts)
	for i := range mc.bs {
		mc.apis = append(mc.apis, mc.api(i))
	}
	mc.waitLeader()
	return mc
}

func (mc *metaCluster) api(i int) string {
	hs := httptest.NewServer(management.NewHandler(mc.bs[i].Srv, nil))
	mc.t.Cleanup(hs.Close)
	return hs.URL
}

func (mc *metaCluster) waitLeader() {
	mc.t.Helper()
	wait.For(mc.t, 20*time.Second, "the meta group to elect a leader every running member knows", func() bool {
		for _, b := range mc.bs {
			if b != nil && b.Srv.MetaLeader() == "" {
				return false
			}
		}
		return true
	})
}

func (mc *metaCluster) broker(i int) broker {
	b := mc.bs[i]
	return broker{URL: b.URL, Addr: b.Addr, Srv: b.Srv}
}

func (mc *metaCluster) stop(i int) {
	mc.t.Helper()
	if err := mc.bs[i].Stop(); err != nil {
		mc.t.Fatal(err)
	}
	mc.bs[i] = nil
}

func (mc *metaCluster) restart(i int) {
	mc.t.Helper()
	members := mc.bs[(i+1)%len(mc.bs)].Members
	mc.bs[i] = testbroker.RestartMember(mc.t, members, i, mc.opts)
	mc.apis[i] = mc.api(i)
}

// http sends a request as guest to member i's API and returns the status and body.
func (mc *metaCluster) http(i int, method, path string, body any) (int, string) {
	mc.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			mc.t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, mc.apis[i]+path, r)
	if err != nil {
		mc.t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		mc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (mc *metaCluster) mustHTTP(i int, method, path string, body any, want ...int) string {
	mc.t.Helper()
	code, b := mc.http(i, method, path, body)
	for _, w := range want {
		if code == w {
			return b
		}
	}
	mc.t.Fatalf("%s %s on member %d: %d %s, want %v", method, path, i, code, b, want)
	return ""
}

func hasQueue(b *testbroker.Broker, vhost, name string) bool {
	_, err := b.Srv.Queue(vhost, name)
	return err == nil
}

func hasExchange(b *testbroker.Broker, vhost, name string) bool {
	_, err := b.Srv.Exchange(vhost, name)
	return err == nil
}

func hasBinding(b *testbroker.Broker, vhost, src, dst string) bool {
	bs, err := b.Srv.VhostBindings(vhost)
	if err != nil {
		return false
	}
	for _, x := range bs {
		if x.Source == src && x.Destination == dst {
			return true
		}
	}
	return false
}

// passiveQueue declares name passively on a fresh channel of conn.
func passiveQueue(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(name, true, false, false, false, nil)
	return err
}

// A durable exchange, a classic and a quorum queue and their bindings declared over AMQP on one
// member exist on every member (a passive declare and the API there), with the quorum queue's
// group over the three members; a delete on another member removes them everywhere; exclusive
// and non-durable queues stay on their node.
func TestClusterMetaDeclareReplicates(t *testing.T) {
	mc := startMetaCluster(t, 3, nil)
	conn := amqpDial(t, mc.broker(0))
	ch := amqpChannel(t, conn)
	x, q, qq, tq := amqpName(t, "x"), amqpName(t, "q"), amqpName(t, "qq"), amqpName(t, "tq")
	if err := ch.ExchangeDeclare(x, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-max-length": int32(10)}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "a.#", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(qq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(tq, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Visible on this member at once (the declare returned once applied here).
	if !hasQueue(mc.bs[0], "/", q) || !hasExchange(mc.bs[0], "/", x) || !hasBinding(mc.bs[0], "/", x, q) {
		t.Fatal("the declares are not visible on the member they were made on")
	}
	for i := 1; i < 3; i++ {
		b := mc.bs[i]
		wait.For(t, 10*time.Second, fmt.Sprintf("member %d to apply the declares", i), func() bool {
			return hasQueue(b, "/", q) && hasQueue(b, "/", qq) && hasExchange(b, "/", x) && hasBinding(b, "/", x, q)
		})
		c := amqpDial(t, mc.broker(i))
		if err := passiveQueue(c, q); err != nil {
			t.Fatalf("member %d: passive declare of %s: %v", i, q, err)
		}
		if err := passiveQueue(c, qq); err != nil {
			t.Fatalf("member %d: passive declare of %s: %v", i, qq, err)
		}
		var ae *amqp.Error
		if err := passiveQueue(c, tq); !errors.As(err, &ae) || ae.Code != amqp.NotFound {
			t.Fatalf("member %d: the non-durable queue %s: %v, want 404 (node-local)", i, tq, err)
		}
		body := mc.mustHTTP(i, "GET", "/api/queues/%2F/"+url.PathEscape(q), nil, 200)
		if !strings.Contains(body, `"x-max-length":10`) {
			t.Fatalf("member %d: /api/queues: %s", i, body)
		}
		body = mc.mustHTTP(i, "GET", "/api/queues/%2F/"+url.PathEscape(qq), nil, 200)
		if !strings.Contains(body, `"type":"quorum"`) {
			t.Fatalf("member %d: /api/queues for the quorum queue: %s", i, body)
		}
	}
	// The quorum queue confirms and delivers through its three-member group.
	pch := amqpChannel(t, conn)
	for i, ok := range quorumPublishConfirmed(t, pch, qq, seqBodies("m", 0, 5)) {
		if !ok {
			t.Fatalf("publish %d to the replicated quorum queue nacked", i)
		}
	}
	// A redeclare that differs is refused as on a single node (406), on another member.
	c2 := amqpDial(t, mc.broker(2))
	ch2 := amqpChannel(t, c2)
	_, err := ch2.QueueDeclare(q, true, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("inequivalent redeclare on member 2: %v, want 406", err)
	}
	// Deletes on member 2 replicate.
	ch2 = amqpChannel(t, c2)
	if _, err := ch2.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch2.QueueDelete(qq, false, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch2.ExchangeDelete(x, false, false); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b := mc.bs[i]
		wait.For(t, 10*time.Second, fmt.Sprintf("member %d to apply the deletes", i), func() bool {
			return !hasQueue(b, "/", q) && !hasQueue(b, "/", qq) && !hasExchange(b, "/", x)
		})
	}
	if !hasQueue(mc.bs[0], "/", tq) {
		t.Fatal("the node-local queue is gone")
	}
}

// Vhosts, users, permissions and policies made through one member's API apply on every member: the
// user logs in on another member, the policy applies to a queue declared on a third, and
// /api/nodes lists every member.
func TestClusterMetaUsersPolicies(t *testing.T) {
	mc := startMetaCluster(t, 3, nil)
	vh := amqpName(t, "vh")
	mc.mustHTTP(0, "PUT", "/api/vhosts/"+url.PathEscape(vh), map[string]any{}, 201, 204)
	mc.mustHTTP(0, "PUT", "/api/users/alice", map[string]any{"password": "s3cret", "tags": "management"}, 201, 204)
	mc.mustHTTP(1, "PUT", "/api/permissions/"+url.PathEscape(vh)+"/alice",
		map[string]any{"configure": ".*", "write": ".*", "read": ".*"}, 201, 204)
	mc.mustHTTP(2, "PUT", "/api/policies/"+url.PathEscape(vh)+"/cap",
		map[string]any{"pattern": "^capped", "apply-to": "queues", "definition": map[string]any{"max-length": 2}}, 201, 204)
	for i := range 3 {
		b := mc.bs[i]
		wait.For(t, 10*time.Second, fmt.Sprintf("member %d to apply the definitions", i), func() bool {
			_, err := b.Srv.Permission(vh, "alice")
			_, perr := b.Srv.Policy(vh, "cap")
			return err == nil && perr == nil
		})
	}
	for i := range 3 {
		u := fmt.Sprintf("amqp://alice:s3cret@%s/%s", mc.bs[i].Addr, url.PathEscape(vh))
		c, err := amqp.Dial(u)
		if err != nil {
			t.Fatalf("member %d: alice cannot log in: %v", i, err)
		}
		c.Close()
	}
	// The policy applies to a queue declared (by alice) on member 1.
	c, err := amqp.Dial(fmt.Sprintf("amqp://alice:s3cret@%s/%s", mc.bs[1].Addr, url.PathEscape(vh)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch := amqpChannel(t, c)
	if _, err := ch.QueueDeclare("capped.q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b := mc.bs[i]
		wait.For(t, 10*time.Second, fmt.Sprintf("member %d to show the policy on the queue", i), func() bool {
			qi, err := b.Srv.Queue(vh, "capped.q")
			return err == nil && qi.Policy == "cap"
		})
	}
	// /api/nodes on any member lists the three, running.
	body := mc.mustHTTP(2, "GET", "/api/nodes", nil, 200)
	var nodes []map[string]any
	if err := json.Unmarshal([]byte(body), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("/api/nodes: %d members: %s", len(nodes), body)
	}
	for _, n := range nodes {
		if n["running"] != true {
			t.Fatalf("/api/nodes: %v not running", n["name"])
		}
	}
	// The definitions export of another member has the user, the vhost and the policy.
	defs := mc.mustHTTP(1, "GET", "/api/definitions", nil, 200)
	for _, want := range []string{`"alice"`, vh, `"cap"`, "capped.q"} {
		if !strings.Contains(defs, want) {
			t.Fatalf("member 1's definitions lack %s", want)
		}
	}
	// A definitions import on member 0 replicates.
	ivh := amqpName(t, "imported")
	mc.mustHTTP(0, "POST", "/api/definitions", map[string]any{
		"vhosts": []any{map[string]any{"name": ivh}},
		"users":  []any{map[string]any{"name": "carol", "password_hash": "", "tags": ""}},
		"queues": []any{map[string]any{"name": "iq", "vhost": ivh, "durable": true, "auto_delete": false, "arguments": map[string]any{}}},
		"exchanges": []any{map[string]any{"name": "ix", "vhost": ivh, "type": "fanout", "durable": true, "auto_delete": false,
			"internal": false, "arguments": map[string]any{}}},
		"bindings": []any{map[string]any{"source": "ix", "vhost": ivh, "destination": "iq", "destination_type": "queue",
			"routing_key": "", "arguments": map[string]any{}}},
	}, 201, 204)
	wait.For(t, 10*time.Second, "member 2 to apply the import", func() bool {
		_, err := mc.bs[2].Srv.User("carol")
		return err == nil && hasQueue(mc.bs[2], ivh, "iq") && hasBinding(mc.bs[2], ivh, "ix", "iq")
	})
	// Deleting the imported vhost on member 1 deletes it, with its queue, everywhere.
	mc.mustHTTP(1, "DELETE", "/api/vhosts/"+url.PathEscape(ivh), nil, 204)
	for i := range 3 {
		b := mc.bs[i]
		wait.For(t, 10*time.Second, fmt.Sprintf("member %d to delete the vhost", i), func() bool {
			_, err := b.Srv.Vhost(ivh)
			return err != nil && !hasQueue(b, ivh, "iq")
		})
	}
	// Deleting the user on member 2 refuses its logins everywhere.
	mc.mustHTTP(2, "DELETE", "/api/users/alice", nil, 204)
	for i := range 3 {
		b := mc.bs[i]
		wait.For(t, 10*time.Second, fmt.Sprintf("member %d to delete the user", i), func() bool {
			_, err := b.Srv.User("alice")
			return errors.Is(err, server.ErrNotFound)
		})
	}
}

// With two of three members stopped, a definition change fails within the propose timeout (AMQP
// 541, HTTP 503) instead of hanging; node-local declares still work; the stopped member shows
// running false.
func TestClusterMetaNoMajority(t *testing.T) {
	mc := startMetaCluster(t, 3, func(o *server.ClusterOptions) { o.ProposeTimeout = time.Second })
	mc.stop(1)
	mc.stop(2)
	conn := amqpDial(t, mc.broker(0))
	ch := amqpChannel(t, conn)
	start := time.Now()
	_, err := ch.QueueDeclare(amqpName(t, "q"), true, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.InternalError {
		t.Fatalf("durable declare without a majority: %v, want 541", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the refusal took %v", d)
	}
	ch = amqpChannel(t, amqpDial(t, mc.broker(0))) // 541 is a connection error
	if _, err := ch.QueueDeclare(amqpName(t, "local"), false, false, false, false, nil); err != nil {
		t.Fatalf("a non-durable (node-local) declare: %v", err)
	}
	code, body := mc.http(0, "PUT", "/api/vhosts/nomajority", map[string]any{})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("PUT vhost without a majority: %d %s, want 503", code, body)
	}
	body = mc.mustHTTP(0, "GET", "/api/nodes", nil, 200)
	var nodes []map[string]any
	if err := json.Unmarshal([]byte(body), &nodes); err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, n := range nodes {
		if n["running"] == true {
			running++
		}
	}
	if len(nodes) != 3 || running != 1 {
		t.Fatalf("/api/nodes with two members down: %s", body)
	}
}

// A member stopped while definitions change catches up when restarted from its store: from the
// log (few changes), then, with snapshots every 16 entries and many changes, from a snapshot,
// including deletes of what it had (tombstones).
func TestClusterMetaRestartRejoin(t *testing.T) {
	mc := startMetaCluster(t, 3, func(o *server.ClusterOptions) { o.SnapshotEntries = 16 })
	old := amqpName(t, "old")
	conn := amqpDial(t, mc.broker(0))
	ch := amqpChannel(t, conn)
	if _, err := ch.QueueDeclare(old, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "member 2 to have the queue", func() bool { return hasQueue(mc.bs[2], "/", old) })
	mc.stop(2)

	// Few changes: caught up from the log.
	first := amqpName(t, "first")
	if _, err := ch.QueueDeclare(first, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	mc.restart(2)
	wait.For(t, 20*time.Second, "member 2 to catch up from the log", func() bool { return hasQueue(mc.bs[2], "/", first) })

	// Many changes while it is down: caught up from a snapshot.
	mc.stop(2)
	if _, err := ch.QueueDelete(old, false, false, false); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 60 {
		n := fmt.Sprintf("%s-%d", first, i)
		names = append(names, n)
		if _, err := ch.QueueDeclare(n, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	mc.mustHTTP(1, "PUT", "/api/users/bob", map[string]any{"password": "pw", "tags": ""}, 201, 204)
	mc.mustHTTP(1, "PUT", "/api/permissions/%2F/bob", map[string]any{"configure": ".*", "write": ".*", "read": ".*"}, 201, 204)
	wait.For(t, 10*time.Second, "a snapshot of the meta group past the stopped member's log", func() bool {
		st, ok := metaStatus(mc.bs[0])
		return ok && st.Snapshot > 40
	})
	mc.restart(2)
	wait.For(t, 20*time.Second, "member 2 to catch up from a snapshot", func() bool {
		for _, n := range names {
			if !hasQueue(mc.bs[2], "/", n) {
				return false
			}
		}
		_, err := mc.bs[2].Srv.Permission("/", "bob")
		return err == nil && !hasQueue(mc.bs[2], "/", old)
	})
	c, err := amqp.Dial("amqp://bob:pw@" + mc.bs[2].Addr + "/")
	if err != nil {
		t.Fatalf("bob on the restarted member: %v", err)
	}
	c.Close()
	// The rejoined member proposes too.
	c2 := amqpDial(t, mc.broker(2))
	ch2 := amqpChannel(t, c2)
	last := amqpName(t, "last")
	if _, err := ch2.QueueDeclare(last, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "member 0 to see the rejoined member's declare", func() bool { return hasQueue(mc.bs[0], "/", last) })
}

func metaStatus(b *testbroker.Broker) (server.MetaStatus, bool) { return b.Srv.MetaStatus() }
