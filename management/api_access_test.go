package management

import "testing"

// Topic permissions over the HTTP API: set, listed, exported and imported in definitions, kept
// across a restart, removed with their user.
func TestTopicPermissions(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/users/tp", map[string]any{"password": "x", "tags": ""})
	e.must(404, "GET", "/api/topic-permissions/%2F/tp", nil)
	e.must(201, "PUT", "/api/topic-permissions/%2F/tp", map[string]any{"exchange": "amq.topic", "write": "^a", "read": "^b"})
	e.must(204, "PUT", "/api/topic-permissions/%2F/tp", map[string]any{"exchange": "amq.topic", "write": "^{username}", "read": "^c"})
	e.must(201, "PUT", "/api/topic-permissions/%2F/tp", map[string]any{"exchange": "other", "write": "", "read": ".*"})
	for _, body := range []map[string]any{
		{"write": "a", "read": "b"},
		{"exchange": "amq.topic", "write": "(", "read": "b"},
	} {
		if r := e.do("PUT", "/api/topic-permissions/%2F/tp", guest, body); r.status != 400 {
			t.Errorf("PUT %v: %d %s", body, r.status, r.body)
		}
	}
	if r := e.do("PUT", "/api/topic-permissions/%2F/nobody", guest, map[string]any{"exchange": "x", "write": "", "read": ""}); r.status != 400 {
		t.Errorf("PUT for a missing user: %d %s", r.status, r.body)
	}
	if ps := e.must(200, "GET", "/api/topic-permissions/%2F/tp", nil).list(t); len(ps) != 2 ||
		ps[0].(map[string]any)["exchange"] != "amq.topic" || ps[0].(map[string]any)["write"] != "^{username}" {
		t.Errorf("tp's topic permissions: %v", ps)
	}
	for _, path := range []string{"/api/topic-permissions", "/api/users/tp/topic-permissions", "/api/vhosts/%2F/topic-permissions"} {
		if ps := e.must(200, "GET", path, nil).list(t); len(ps) != 2 {
			t.Errorf("%s: %v", path, ps)
		}
	}
	defs := e.must(200, "GET", "/api/definitions", nil).obj(t)
	if tps := defs["topic_permissions"].([]any); len(tps) != 2 || tps[1].(map[string]any)["exchange"] != "other" {
		t.Errorf("definitions: %v", tps)
	}

	e.stop()
	e2 := startEnv(t, e.store.Reopen())
	if ps := e2.must(200, "GET", "/api/topic-permissions/%2F/tp", nil).list(t); len(ps) != 2 {
		t.Errorf("after restart: %v", ps)
	}
	e2.must(204, "DELETE", "/api/topic-permissions/%2F/tp", nil)
	e2.must(404, "DELETE", "/api/topic-permissions/%2F/tp", nil)
	// Imported from definitions (the user first).
	e2.must(204, "POST", "/api/definitions", map[string]any{
		"users":             []any{map[string]any{"name": "tp2", "password_hash": "Y4uvMYDhdhzbH1cNSd1q7VzrcB+HCH4xQfmBBMTU3/ayUJ/b", "tags": ""}},
		"topic_permissions": []any{map[string]any{"user": "tp2", "vhost": "/", "exchange": "amq.topic", "write": "w", "read": "r"}},
	})
	if ps := e2.must(200, "GET", "/api/topic-permissions/%2F/tp2", nil).list(t); len(ps) != 1 || ps[0].(map[string]any)["read"] != "r" {
		t.Errorf("imported: %v", ps)
	}
	e2.must(204, "DELETE", "/api/users/tp2", nil)
	e2.must(404, "GET", "/api/topic-permissions/%2F/tp2", nil)
}

// Vhost limits over the HTTP API: set, listed, validated, exported as vhost-limits parameters,
// imported, kept across a restart, removed with the vhost.
func TestVhostLimits(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/vhosts/lim", nil)
	e.must(204, "PUT", "/api/vhost-limits/lim/max-queues", map[string]any{"value": 10})
	e.must(204, "PUT", "/api/vhost-limits/lim/max-connections", map[string]any{"value": 2})
	e.must(204, "PUT", "/api/vhost-limits/lim/max-connections", map[string]any{"value": 3})
	for _, x := range []struct {
		path string
		body map[string]any
		want int
	}{
		{"/api/vhost-limits/lim/bogus", map[string]any{"value": 1}, 400},
		{"/api/vhost-limits/lim/max-queues", map[string]any{"value": "x"}, 400},
		{"/api/vhost-limits/lim/max-queues", map[string]any{}, 400},
		{"/api/vhost-limits/nope/max-queues", map[string]any{"value": 1}, 404},
	} {
		if r := e.do("PUT", x.path, guest, x.body); r.status != x.want {
			t.Errorf("PUT %s %v: %d %s, want %d", x.path, x.body, r.status, r.body, x.want)
		}
	}
	want := `[{"value":{"max-connections":3,"max-queues":10},"vhost":"lim"}]`
	for _, path := range []string{"/api/vhost-limits", "/api/vhost-limits/lim"} {
		if got := string(e.must(200, "GET", path, nil).body); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	if got := e.must(200, "GET", "/api/vhost-limits/%2F", nil).list(t); len(got) != 0 {
		t.Errorf("/ has no limits: %v", got)
	}
	params := e.must(200, "GET", "/api/definitions", nil).obj(t)["parameters"].([]any)
	if len(params) != 1 || params[0].(map[string]any)["component"] != "vhost-limits" || params[0].(map[string]any)["vhost"] != "lim" {
		t.Errorf("definitions parameters: %v", params)
	}

	e.stop()
	e2 := startEnv(t, e.store.Reopen())
	if got := string(e2.must(200, "GET", "/api/vhost-limits/lim", nil).body); got != want {
		t.Errorf("after restart: %s", got)
	}
	e2.must(204, "DELETE", "/api/vhost-limits/lim/max-queues", nil)
	if got := string(e2.must(200, "GET", "/api/vhost-limits/lim", nil).body); got != `[{"value":{"max-connections":3},"vhost":"lim"}]` {
		t.Errorf("after deleting max-queues: %s", got)
	}
	e2.must(204, "DELETE", "/api/vhosts/lim", nil)
	if got := e2.must(200, "GET", "/api/vhost-limits", nil).list(t); len(got) != 0 {
		t.Errorf("limits of a deleted vhost: %v", got)
	}
	// Imported from definitions.
	e2.must(204, "POST", "/api/definitions", map[string]any{
		"vhosts":     []any{map[string]any{"name": "lim2"}},
		"parameters": []any{map[string]any{"vhost": "lim2", "component": "vhost-limits", "name": "limits", "value": map[string]any{"max-queues": 5}}},
	})
	if got := string(e2.must(200, "GET", "/api/vhost-limits/lim2", nil).body); got != `[{"value":{"max-queues":5},"vhost":"lim2"}]` {
		t.Errorf("imported: %s", got)
	}
}

// A quorum queue is reported as one, with this node as its only member and leader.
func TestQuorumQueueReported(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/qq", map[string]any{"durable": true, "arguments": map[string]any{"x-queue-type": "quorum"}})
	if r := e.do("PUT", "/api/queues/%2F/qq2", guest, map[string]any{"durable": false, "arguments": map[string]any{"x-queue-type": "quorum"}}); r.status != 400 {
		t.Errorf("non-durable quorum queue: %d %s", r.status, r.body)
	}
	e.must(201, "PUT", "/api/queues/%2F/cq", map[string]any{"durable": true})
	q := e.must(200, "GET", "/api/queues/%2F/qq", nil).obj(t)
	node := e.srv.NodeName()
	if q["type"] != "quorum" || q["leader"] != node || len(q["members"].([]any)) != 1 || q["members"].([]any)[0] != node {
		t.Errorf("quorum queue: type %v leader %v members %v", q["type"], q["leader"], q["members"])
	}
	if c := e.must(200, "GET", "/api/queues/%2F/cq", nil).obj(t); c["type"] != "classic" || c["members"] != nil {
		t.Errorf("classic queue: type %v members %v", c["type"], c["members"])
	}
}
