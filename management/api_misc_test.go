package management

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
)

// The resources the endpoint walk found missing answer as RabbitMQ 3.10.8 does (each checked live
// against it).
func TestMiscEndpoints(t *testing.T) {
	e := startEnv(t, nil)
	node := e.srv.NodeName()

	jsonEq(t, "auth", e.must(200, "GET", "/api/auth", nil).body, map[string]any{"enable_uaa": false, "uaa_client_id": "", "uaa_location": ""})
	// Without credentials too, as RabbitMQ's (its login page reads it).
	if r := e.do("GET", "/api/auth", "", nil); r.status != 200 {
		t.Errorf("/api/auth without credentials: %d", r.status)
	}
	e.must(201, "PUT", "/api/users/mon", map[string]any{"password": "pw", "tags": "monitoring"})
	if r := e.do("GET", "/api/feature-flags", "mon:pw", nil); r.status != 401 {
		t.Errorf("feature flags for a monitoring user: %d, want 401 (administrators only)", r.status)
	}
	ff := e.must(200, "GET", "/api/feature-flags", nil).list(t)
	states := map[string]string{}
	for _, f := range ff {
		f := f.(map[string]any)
		states[f["name"].(string)] = f["state"].(string)
	}
	if states["quorum_queue"] != "enabled" || states["stream_queue"] != "unavailable" || len(states) != 9 {
		t.Errorf("feature flags: %v", states)
	}

	e.must(204, "POST", "/api/rebalance/queues", nil)
	e.must(405, "GET", "/api/rebalance/queues", nil)
	e.must(204, "POST", "/api/vhosts/%2F/start/"+node, nil)
	jsonEq(t, "start on another node", e.must(400, "POST", "/api/vhosts/%2F/start/rabbit@nope", nil).body,
		map[string]any{"error": "bad_request", "reason": "Request to node rabbit@nope failed with nodedown"})
	jsonEq(t, "start a missing vhost", e.must(400, "POST", "/api/vhosts/nope/start/"+node, nil).body,
		map[string]any{"error": "bad_request", "reason": "Request to node " + node + " failed with {no_such_vhost,<<\"nope\">>}"})

	// /api/all-configuration is /api/definitions.
	jsonEq(t, "all-configuration", e.must(200, "GET", "/api/all-configuration", nil).body, e.must(200, "GET", "/api/definitions", nil).obj(t))

	// bulk-delete: in order, stopping at the first user that does not exist.
	for _, u := range []string{"bd1", "bd2", "bd3", "bd4"} {
		e.must(201, "PUT", "/api/users/"+u, map[string]any{"password": "x", "tags": ""})
	}
	e.must(204, "POST", "/api/users/bulk-delete", map[string]any{"users": []string{"bd1", "bd2"}})
	e.must(404, "GET", "/api/users/bd1", nil)
	jsonEq(t, "bulk-delete with a missing user", e.must(400, "POST", "/api/users/bulk-delete", map[string]any{"users": []string{"bd3", "nobody", "bd4"}}).body,
		map[string]any{"error": "bad_request", "reason": []string{"no_such_user", "nobody"}})
	e.must(404, "GET", "/api/users/bd3", nil)
	e.must(200, "GET", "/api/users/bd4", nil)
	jsonEq(t, "bulk-delete without users", e.must(400, "POST", "/api/users/bulk-delete", map[string]any{}).body,
		map[string]any{"error": "bad_request", "reason": "[{key_missing,users}]"})
	e.must(400, "POST", "/api/users/bulk-delete", map[string]any{"users": "bd4"})
	e.must(405, "GET", "/api/users/bulk-delete", nil)

	// A user's connections: listed in RabbitMQ's short form, and closed by DELETE.
	e.must(201, "PUT", "/api/users/conn-user", map[string]any{"password": "pw", "tags": "management"})
	e.must(201, "PUT", "/api/permissions/%2F/conn-user", map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	jsonEq(t, "no connections", e.must(200, "GET", "/api/connections/username/conn-user", nil).body, []any{})
	var conns []*amqp.Connection
	for range 2 {
		c, err := amqp.Dial("amqp://conn-user:pw@" + e.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	guestConn := e.dial(nil)
	wait.For(t, waitTimeout, "the connections to be listed", func() bool {
		return len(e.must(200, "GET", "/api/connections/username/conn-user", nil).list(t)) == 2
	})
	for _, c := range e.must(200, "GET", "/api/connections/username/conn-user", nil).list(t) {
		c := c.(map[string]any)
		if len(c) != 4 || c["user"] != "conn-user" || c["vhost"] != "/" || c["node"] != node || c["name"] == "" {
			t.Errorf("connection %v", c)
		}
	}
	// Another management user may not list or close them.
	e.must(201, "PUT", "/api/users/other", map[string]any{"password": "pw", "tags": "management"})
	if r := e.do("GET", "/api/connections/username/conn-user", "other:pw", nil); r.status != 401 {
		t.Errorf("another user's connections: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/connections/username/conn-user", "other:pw", nil); r.status != 401 {
		t.Errorf("closing another user's connections: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/connections/username/conn-user", "conn-user:pw", nil); r.status != 200 {
		t.Errorf("the user's own connections: %d %s", r.status, r.body)
	}
	closed := conns[0].NotifyClose(make(chan *amqp.Error, 1))
	e.must(204, "DELETE", "/api/connections/username/conn-user", nil)
	if err := <-closed; err == nil || err.Code != 320 {
		t.Errorf("connection closed with %v, want 320 CONNECTION_FORCED", err)
	}
	wait.For(t, waitTimeout, "the user's connections to close", func() bool {
		return len(e.must(200, "GET", "/api/connections/username/conn-user", nil).list(t)) == 0
	})
	if guestConn.IsClosed() {
		t.Error("guest's connection was closed too")
	}

	// Login attempts per protocol: reset, then one failed and two good HTTP logins, one failed
	// and one good AMQP login.
	attempts := "/api/auth/attempts/" + node
	e.must(204, "DELETE", attempts, nil)
	if _, err := amqp.Dial("amqp://guest:wrong@" + e.addr + "/"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	e.dial(nil)
	e.do("GET", "/api/whoami", "guest:wrong", nil)
	// The reset and the login above it count: the GET's own login is counted before it answers.
	got := e.must(200, "GET", attempts, nil).body
	jsonEq(t, "auth attempts", got, []any{
		map[string]any{"protocol": "http", "auth_attempts": 2, "auth_attempts_failed": 1, "auth_attempts_succeeded": 1},
		map[string]any{"protocol": "amqp091", "auth_attempts": 2, "auth_attempts_failed": 1, "auth_attempts_succeeded": 1},
	})
	jsonEq(t, "by source", e.must(200, "GET", attempts+"/source", nil).body, []any{})
	e.must(404, "GET", "/api/auth/attempts/rabbit@nope", nil)
	if r := e.do("GET", attempts, "other:pw", nil); r.status != 401 {
		t.Errorf("a management user read the attempts: %d", r.status)
	}
	// Since the reset: HTTP 5 logins (1 failed), AMQP 2 (1 failed).
	fams := scrapeMetrics(t, e)
	for name, want := range map[string]float64{"rabbitmq_auth_attempts_total": 7, "rabbitmq_auth_attempts_failed_total": 2} {
		if f := fams[name]; f == nil || sumValues(f) != want {
			t.Errorf("%s: %v, want %v in all", name, f, want)
		}
	}
}
