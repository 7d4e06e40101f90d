package management

import (
	"encoding/json"
	"testing"

	"github.com/warrenmq/warren/storage"
)

// The policy endpoints answer RabbitMQ 3.10.8's statuses and reasons (taken from it), queues and
// exchanges report the policy that applies, and policies survive a restart.
func TestPolicies(t *testing.T) {
	store := storage.NewMemStore()
	e := startEnv(t, store)
	e.must(404, "GET", "/api/policies/%2F/p1", nil)
	e.must(404, "DELETE", "/api/policies/%2F/p1", nil)
	e.must(404, "PUT", "/api/policies/nope/p1", map[string]any{"pattern": "x", "definition": map[string]any{"expires": 1}})
	e.must(404, "GET", "/api/policies/nope", nil)

	body := map[string]any{"pattern": `^pq\.`, "definition": map[string]any{"max-length": 10, "message-ttl": 5000}, "priority": 1, "apply-to": "queues"}
	e.must(201, "PUT", "/api/policies/%2F/p1", body)
	e.must(204, "PUT", "/api/policies/%2F/p1", body)
	want := `{"apply-to":"queues","definition":{"max-length":10,"message-ttl":5000},"name":"p1","pattern":"^pq\\.","priority":1,"vhost":"/"}`
	if got := compactJSON(t, e.must(200, "GET", "/api/policies/%2F/p1", nil).body); got != want {
		t.Errorf("policy:\n got  %s\n want %s", got, want)
	}
	if got := compactJSON(t, e.must(200, "GET", "/api/policies", nil).body); got != "["+want+"]" {
		t.Errorf("policies: %s", got)
	}
	if got := compactJSON(t, e.must(200, "GET", "/api/policies/%2F", nil).body); got != "["+want+"]" {
		t.Errorf("vhost policies: %s", got)
	}
	// apply-to defaults to all, priority to 0.
	e.must(201, "PUT", "/api/policies/%2F/p2", map[string]any{"pattern": "^px$", "definition": map[string]any{"alternate-exchange": "amq.fanout"}})
	if p := e.must(200, "GET", "/api/policies/%2F/p2", nil).obj(t); p["apply-to"] != "all" || p["priority"] != json.Number("0") {
		t.Errorf("defaults: %v", p)
	}

	for _, x := range []struct {
		body   string
		reason string
	}{
		{`{"pattern":"x","definition":{"foo":1,"max-length":"a"}}`, "Validation failed\n\n&lt;&lt;\"a\"&gt;&gt; is not a valid maximum length\n"},
		{`{"pattern":"x","definition":{"max-priority":3}}`, "Validation failed\n\n[{&lt;&lt;\"max-priority\"&gt;&gt;,3}] are not recognised policy settings\n"},
		{`{"pattern":"x","definition":{"foo":"bar","zed":1}}`, "Validation failed\n\n[{&lt;&lt;\"foo\"&gt;&gt;,&lt;&lt;\"bar\"&gt;&gt;},{&lt;&lt;\"zed\"&gt;&gt;,1}] are not recognised policy settings\n"},
		{`{"pattern":"x","definition":{}}`, "Validation failed\n\nno policy provided\n"},
		{`{"definition":{"max-length":1}}`, "[{key_missing,pattern}]"},
		{`{"pattern":"x"}`, "[{key_missing,definition}]"},
		{`{"pattern":"x","definition":{"max-length":1},"apply-to":"foo"}`, "Validation failed\n\napply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'\n"},
		{`{"pattern":"x","definition":{"max-length":1},"priority":"a"}`, "Validation failed\n\npriority should be a number, actually was &lt;&lt;\"a\"&gt;&gt;\n"},
		// RabbitMQ 3.10.8's reasons for values that need Erlang's escapes, lists and maps.
		{`{"pattern":"x","definition":{"max-length":1},"priority":"a<b>&\"c"}`, "Validation failed\n\npriority should be a number, actually was &lt;&lt;\"a&lt;b&gt;&amp;\\\"c\"&gt;&gt;\n"},
		{`{"pattern":"x","definition":{"max-length":1},"priority":true}`, "Validation failed\n\npriority should be a number, actually was true\n"},
		{`{"pattern":"x","definition":{"max-length":1},"priority":[1,"a"]}`, "Validation failed\n\npriority should be a number, actually was [1,&lt;&lt;\"a\"&gt;&gt;]\n"},
		{`{"pattern":"x","definition":{"max-length":1},"priority":{"a":1}}`, "Validation failed\n\npriority should be a number, actually was #{&lt;&lt;\"a\"&gt;&gt; =&gt; 1}\n"},
		{`{"pattern":"x","definition":{"max-length":[1,"x",1.5,true,null]}}`, "Validation failed\n\n[1,&lt;&lt;\"x\"&gt;&gt;,1.5,true,null] is not a valid maximum length\n"},
		{`{"pattern":"x","definition":{"max-length":{"b":1,"a":[2],"A":"z"}}}`, "Validation failed\n\n#{&lt;&lt;\"A\"&gt;&gt; =&gt; &lt;&lt;\"z\"&gt;&gt;,&lt;&lt;\"a\"&gt;&gt; =&gt; [2],&lt;&lt;\"b\"&gt;&gt; =&gt; 1} is not a valid maximum length\n"},
		{`{"pattern":"x","definition":{"max-length":"ü€"}}`, "Validation failed\n\n&lt;&lt;195,188,226,130,172&gt;&gt; is not a valid maximum length\n"},
		{`{"pattern":"x","definition":{"f<&o":{"a":[1]},"bar":"\u0001x"}}`, "Validation failed\n\n[{&lt;&lt;\"bar\"&gt;&gt;,&lt;&lt;1,120&gt;&gt;},{&lt;&lt;\"f&lt;&amp;o\"&gt;&gt;,#{&lt;&lt;\"a\"&gt;&gt; =&gt; [1]}}] are not recognised policy settings\n"},
		{`{"pattern":"x","definition":{"expires":0,"overflow":"x"}}`, "Validation failed\n\n0 is not a valid queue expiry\n"},
		{`{"pattern":"x","definition":{"message-ttl":-1}}`, "Validation failed\n\n-1 is not a valid message TTL\n"},
		{`{"pattern":"x","definition":{"queue-mode":"x"}}`, "Validation failed\n\n&lt;&lt;\"x\"&gt;&gt; is not a valid queue-mode value\n"},
	} {
		r := e.do("PUT", "/api/policies/%2F/bad", guest, x.body)
		if m := r.obj(t); r.status != 400 || m["error"] != "bad_request" || m["reason"] != x.reason {
			t.Errorf("%s: %d %s, want 400 reason %q", x.body, r.status, r.body, x.reason)
		}
	}
	e.must(404, "GET", "/api/policies/%2F/bad", nil)

	// Queues and exchanges report the policy that applies.
	e.must(201, "PUT", "/api/queues/%2F/pq.a", map[string]any{"durable": true})
	e.must(201, "PUT", "/api/queues/%2F/other", map[string]any{})
	e.must(201, "PUT", "/api/exchanges/%2F/px", map[string]any{"type": "fanout"})
	q := e.must(200, "GET", "/api/queues/%2F/pq.a", nil).obj(t)
	if q["policy"] != "p1" || compactJSON(t, mustJSON(t, q["effective_policy_definition"])) != `{"max-length":10,"message-ttl":5000}` {
		t.Errorf("queue policy %v %v", q["policy"], q["effective_policy_definition"])
	}
	if q := e.must(200, "GET", "/api/queues/%2F/other", nil).obj(t); q["policy"] != nil || len(q["effective_policy_definition"].(map[string]any)) != 0 {
		t.Errorf("unmatched queue policy %v %v", q["policy"], q["effective_policy_definition"])
	}
	if x := e.must(200, "GET", "/api/exchanges/%2F/px", nil).obj(t); x["policy"] != "p2" {
		t.Errorf("exchange policy %v", x["policy"])
	}
	if _, ok := e.must(200, "GET", "/api/exchanges/%2F/amq.direct", nil).obj(t)["policy"]; ok {
		t.Error("an exchange without a policy has the policy key")
	}
	// A higher priority policy takes over; deleting it gives the queue back to p1.
	e.must(201, "PUT", "/api/policies/%2F/p3", map[string]any{"pattern": "^pq", "priority": 5, "definition": map[string]any{"expires": 100000}})
	if q := e.must(200, "GET", "/api/queues/%2F/pq.a", nil).obj(t); q["policy"] != "p3" {
		t.Errorf("after p3: policy %v", q["policy"])
	}
	e.must(204, "DELETE", "/api/policies/%2F/p3", nil)
	if q := e.must(200, "GET", "/api/queues/%2F/pq.a", nil).obj(t); q["policy"] != "p1" {
		t.Errorf("after deleting p3: policy %v", q["policy"])
	}

	// Tags: a management user lists nothing and may not change policies; a policymaker may.
	e.must(201, "PUT", "/api/users/mg", map[string]any{"password": "mg", "tags": "management"})
	e.must(201, "PUT", "/api/users/pm", map[string]any{"password": "pm", "tags": "policymaker"})
	for _, u := range []string{"mg", "pm"} {
		e.must(201, "PUT", "/api/permissions/%2F/"+u, map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	}
	if r := e.do("GET", "/api/policies", "mg:mg", nil); r.status != 200 || len(r.list(t)) != 0 {
		t.Errorf("management user's list: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/policies/%2F/z", "mg:mg", `{"pattern":"x","definition":{"expires":5}}`); r.status != 401 ||
		r.obj(t)["reason"] != "User not authorised to access object" {
		t.Errorf("management user's put: %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/api/policies/%2F/z", "pm:pm", `{"pattern":"x","definition":{"expires":5}}`); r.status != 201 {
		t.Errorf("policymaker's put: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/policies/%2F/z", "pm:pm", nil); r.status != 204 {
		t.Errorf("policymaker's delete: %d %s", r.status, r.body)
	}

	// Durable: back after a restart, and applied to the recovered queue.
	e.stop()
	e2 := startEnv(t, store.Reopen())
	if got := compactJSON(t, e2.must(200, "GET", "/api/policies/%2F/p1", nil).body); got != want {
		t.Errorf("after restart: %s", got)
	}
	if q := e2.must(200, "GET", "/api/queues/%2F/pq.a", nil).obj(t); q["policy"] != "p1" {
		t.Errorf("after restart: queue policy %v", q["policy"])
	}
	// Deleting the vhost deletes its policies.
	e2.must(201, "PUT", "/api/vhosts/gone", nil)
	e2.must(201, "PUT", "/api/policies/gone/p", map[string]any{"pattern": ".*", "definition": map[string]any{"expires": 5000}})
	e2.must(204, "DELETE", "/api/vhosts/gone", nil)
	e2.must(201, "PUT", "/api/vhosts/gone", nil)
	if l := e2.must(200, "GET", "/api/policies/gone", nil).list(t); len(l) != 0 {
		t.Errorf("a deleted vhost's policies came back: %v", l)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compactJSON re-encodes JSON with sorted keys.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}
