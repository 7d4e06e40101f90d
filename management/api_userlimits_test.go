package management

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/storage"
)

// badReq checks a 400 answer and its reason, a string or an Erlang term as a JSON array.
func badReq(t *testing.T, r resp, what string, reason any) {
	t.Helper()
	if r.status != 400 {
		t.Errorf("%s: status %d, want 400: %s", what, r.status, r.body)
		return
	}
	m := r.obj(t)
	want, _ := json.Marshal(reason)
	got, _ := json.Marshal(m["reason"])
	if m["error"] != "bad_request" || string(got) != string(want) {
		t.Errorf("%s: %s, want reason %s", what, r.body, want)
	}
}

// User limits: RabbitMQ 3.10.8's paths, statuses, bodies and errors (taken from it), the limits on
// the user in /api/users and in the definitions, and kept across a restart.
func TestUserLimits(t *testing.T) {
	e := startEnv(t, storage.NewMemStore())
	fields := loadSampleFields(t)
	e.must(201, "PUT", "/api/users/research-user", map[string]any{"password": "s3cret", "tags": "monitoring"})
	if l := e.must(200, "GET", "/api/user-limits/research-user", nil).list(t); len(l) != 0 {
		t.Errorf("limits of a user without any: %v", l)
	}
	e.must(204, "PUT", "/api/user-limits/research-user/max-channels", map[string]any{"value": 50})
	for _, c := range []struct{ sample, path string }{
		{"user-limits.json", "/api/user-limits"},
		{"user-limits-user.json", "/api/user-limits/research-user"},
	} {
		r := e.must(200, "GET", c.path, nil)
		checkFields(t, fields, c.sample, r.json(t), nil)
		sameJSON(t, r.body, c.sample)
	}
	e.must(204, "PUT", "/api/user-limits/research-user/max-channels", map[string]any{"value": -1})
	e.must(204, "PUT", "/api/user-limits/research-user/max-connections", map[string]any{"value": 1})
	if got := compactJSON(t, e.must(200, "GET", "/api/user-limits/research-user", nil).body); got != `[{"user":"research-user","value":{"max-channels":-1,"max-connections":1}}]` {
		t.Errorf("limits: %s", got)
	}
	if u := e.must(200, "GET", "/api/users/research-user", nil).obj(t); compactJSONValue(t, u["limits"]) != `{"max-channels":-1,"max-connections":1}` {
		t.Errorf("user's limits: %v", u["limits"])
	}
	badReq(t, e.do("PUT", "/api/user-limits/research-user/max-queues", guest, map[string]any{"value": 1}), "max-queues", `Unrecognised terms [{<<"max-queues">>,1}] in user-limits`)
	badReq(t, e.do("PUT", "/api/user-limits/research-user/max-channels", guest, map[string]any{"value": "x"}), "string", `max-channels should be a number, actually was <<"x">>`)
	badReq(t, e.do("PUT", "/api/user-limits/research-user/max-channels", guest, `{"value":1.5}`), "float", `max-channels should be a number, actually was 1.5`)
	badReq(t, e.do("PUT", "/api/user-limits/research-user/max-channels", guest, map[string]any{}), "no value", `[{key_missing,value}]`)
	badReq(t, e.do("PUT", "/api/user-limits/nosuch/max-channels", guest, map[string]any{"value": 2}), "no user", []any{"no_such_user", "nosuch"})
	e.must(404, "GET", "/api/user-limits/nosuch", nil)
	e.must(405, "GET", "/api/user-limits/research-user/max-channels", nil)
	e.must(204, "DELETE", "/api/user-limits/research-user/max-channels", nil)
	e.must(204, "DELETE", "/api/user-limits/research-user/max-channels", nil) // none left: still 204
	// Any management user reads them (research-user is monitoring); only an administrator
	// changes them.
	if r := e.do("GET", "/api/user-limits", "research-user:s3cret", nil); r.status != 200 {
		t.Errorf("a monitoring user reads user limits: %d", r.status)
	}
	if r := e.do("PUT", "/api/user-limits/research-user/max-channels", "research-user:s3cret", map[string]any{"value": 1}); r.status != 401 {
		t.Errorf("a monitoring user sets a user limit: %d", r.status)
	}

	// PUT /api/users with "limits" sets those given and keeps the others, as RabbitMQ's put_user.
	e.must(204, "PUT", "/api/users/research-user", map[string]any{"password": "s3cret", "tags": "monitoring", "limits": map[string]any{"max-channels": 9}})
	if got := compactJSON(t, e.must(200, "GET", "/api/user-limits/research-user", nil).body); got != `[{"user":"research-user","value":{"max-channels":9,"max-connections":1}}]` {
		t.Errorf("limits after PUT user: %s", got)
	}
	badReq(t, e.do("PUT", "/api/users/research-user", guest, map[string]any{"password": "s3cret", "limits": map[string]any{"max-queues": 1}}), "PUT user max-queues", `Unrecognised terms [{<<"max-queues">>,1}] in user-limits`)
	e.must(204, "PUT", "/api/users/research-user", map[string]any{"password": "s3cret", "tags": "monitoring"}) // no limits: kept
	e.must(204, "DELETE", "/api/user-limits/research-user/max-channels", nil)

	// Definitions carry them on the user, as RabbitMQ's; a restart keeps them.
	d := e.must(200, "GET", "/api/definitions", nil).obj(t)
	var exported map[string]any
	for _, u := range d["users"].([]any) {
		if u.(map[string]any)["name"] == "research-user" {
			exported = u.(map[string]any)
		}
	}
	if exported == nil || compactJSONValue(t, exported["limits"]) != `{"max-connections":1}` {
		t.Errorf("exported user: %v", exported)
	}
	e.stop()
	e2 := startEnv(t, e.store.Reopen())
	if got := compactJSON(t, e2.must(200, "GET", "/api/user-limits", nil).body); got != `[{"user":"research-user","value":{"max-connections":1}}]` {
		t.Errorf("limits after a restart: %s", got)
	}
	// Importing an export with other limits sets them.
	exported["limits"] = map[string]any{"max-channels": 7}
	e2.must(204, "POST", "/api/definitions", map[string]any{"users": []any{exported}})
	if got := compactJSON(t, e2.must(200, "GET", "/api/user-limits/research-user", nil).body); got != `[{"user":"research-user","value":{"max-channels":7,"max-connections":1}}]` {
		t.Errorf("limits after an import: %s", got)
	}
	e2.must(204, "DELETE", "/api/users/research-user", nil)
	if l := e2.must(200, "GET", "/api/user-limits", nil).list(t); len(l) != 0 {
		t.Errorf("limits of a deleted user: %v", l)
	}
}

func compactJSONValue(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return compactJSON(t, b)
}

// Operator policies: RabbitMQ 3.10.8's answers (taken from it), only its operator keys, the
// stricter of policy and operator policy applied to queues and shown on them, in the definitions
// as operator_policy parameters, kept across a restart.
func TestOperatorPolicies(t *testing.T) {
	e := startEnv(t, storage.NewMemStore())
	sameJSON(t, e.must(200, "GET", "/api/operator-policies", nil).body, "operator-policies.json")
	e.must(404, "GET", "/api/operator-policies/nosuch", nil)
	e.must(404, "GET", "/api/operator-policies/%2F/op", nil)
	e.must(404, "DELETE", "/api/operator-policies/%2F/op", nil)
	if r := e.do("PUT", "/api/operator-policies/nosuch/op", guest, map[string]any{"pattern": "x", "definition": map[string]any{"max-length": 5}}); r.status != 404 || compactJSON(t, r.body) != `{"error":"not_found","reason":"vhost_not_found"}` {
		t.Errorf("missing vhost: %d %s", r.status, r.body)
	}
	body := map[string]any{"pattern": "^op-", "definition": map[string]any{"max-length": 5, "message-ttl": 1000}, "priority": 0, "apply-to": "queues"}
	e.must(201, "PUT", "/api/operator-policies/%2F/op", body)
	e.must(204, "PUT", "/api/operator-policies/%2F/op", body)
	want := `{"apply-to":"queues","definition":{"max-length":5,"message-ttl":1000},"name":"op","pattern":"^op-","priority":0,"vhost":"/"}`
	if got := compactJSON(t, e.must(200, "GET", "/api/operator-policies/%2F/op", nil).body); got != want {
		t.Errorf("operator policy:\n got  %s\n want %s", got, want)
	}
	for _, p := range []string{"/api/operator-policies", "/api/operator-policies/%2F"} {
		if got := compactJSON(t, e.must(200, "GET", p, nil).body); got != "["+want+"]" {
			t.Errorf("%s: %s", p, got)
		}
	}
	for _, x := range []struct{ def, reason string }{
		{`{"queue-mode":"lazy"}`, "Validation failed\n\n[{<<\"queue-mode\">>,<<\"lazy\">>}] are not recognised policy settings\n"},
		{`{"overflow":"reject-publish"}`, "Validation failed\n\n[{<<\"overflow\">>,<<\"reject-publish\">>}] are not recognised policy settings\n"},
		{`{"dead-letter-exchange":"x"}`, "Validation failed\n\n[{<<\"dead-letter-exchange\">>,<<\"x\">>}] are not recognised policy settings\n"},
		{`{"max-priority":3}`, "Validation failed\n\n[{<<\"max-priority\">>,3}] are not recognised policy settings\n"},
		{`{"max-length":"a"}`, "Validation failed\n\n<<\"a\">> is not a valid maximum length\n"},
		{`{"max-in-memory-length":"a"}`, "Validation failed\n\n<<\"a\">> is not a valid maximum memory in bytes\n"},
		{`{"max-in-memory-bytes":-1}`, "Validation failed\n\n-1 is not a valid maximum memory in bytes\n"},
		{`{"delivery-limit":-1}`, "Validation failed\n\n-1 is not a valid delivery limit\n"},
		{`{}`, "Validation failed\n\nno policy provided\n"},
	} {
		badReq(t, e.do("PUT", "/api/operator-policies/%2F/bad", guest, `{"pattern":"x","definition":`+x.def+`}`), x.def, x.reason)
	}
	for _, def := range []string{`{"expires":1000}`, `{"max-in-memory-length":3}`, `{"max-in-memory-bytes":3}`, `{"delivery-limit":3}`, `{"max-length-bytes":100}`} {
		e.must(201, "PUT", "/api/operator-policies/%2F/ok", `{"pattern":"^nothing$","definition":`+def+`}`)
		e.must(204, "DELETE", "/api/operator-policies/%2F/ok", nil)
	}
	e.must(201, "PUT", "/api/users/pm", map[string]any{"password": "p", "tags": "policymaker"})
	if r := e.do("GET", "/api/operator-policies/%2F/op", "pm:p", nil); r.status != 401 {
		t.Errorf("a policymaker reads an operator policy: %d", r.status)
	}
	if r := e.do("PUT", "/api/operator-policies/%2F/op", "pm:p", body); r.status != 401 {
		t.Errorf("a policymaker sets an operator policy: %d", r.status)
	}
	if r := e.do("GET", "/api/operator-policies", "pm:p", nil); r.status != 200 || len(r.list(t)) != 0 {
		t.Errorf("a policymaker without permissions lists operator policies: %d %s", r.status, r.body)
	}

	// A policy and the operator policy: the lower numeric value wins, on the queue and in
	// effective_policy_definition; the policy's own keys stay.
	e.must(201, "PUT", "/api/policies/%2F/up", map[string]any{"pattern": "^op-", "apply-to": "queues",
		"definition": map[string]any{"max-length": 10, "message-ttl": 500, "expires": 100000, "overflow": "reject-publish"}})
	e.must(201, "PUT", "/api/queues/%2F/op-q", map[string]any{"durable": true})
	e.must(201, "PUT", "/api/queues/%2F/other", map[string]any{"durable": true})
	q := e.must(200, "GET", "/api/queues/%2F/op-q", nil).obj(t)
	if q["policy"] != "up" || q["operator_policy"] != "op" ||
		compactJSONValue(t, q["effective_policy_definition"]) != `{"expires":100000,"max-length":5,"message-ttl":500,"overflow":"reject-publish"}` {
		t.Errorf("queue: policy %v operator_policy %v effective %v", q["policy"], q["operator_policy"], q["effective_policy_definition"])
	}
	if q := e.must(200, "GET", "/api/queues/%2F/other", nil).obj(t); q["policy"] != nil || q["operator_policy"] != nil || compactJSONValue(t, q["effective_policy_definition"]) != `{}` {
		t.Errorf("queue without policies: %v %v %v", q["policy"], q["operator_policy"], q["effective_policy_definition"])
	}
	conn := e.dial(nil)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if err := ch.Publish("", "op-q", false, false, amqp.Publishing{Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	// overflow reject-publish (the policy's) with max-length 5 (the operator policy's): 5 kept.
	wait.For(t, waitTimeout, "5 messages in op-q", func() bool {
		return e.must(200, "GET", "/api/queues/%2F/op-q", nil).obj(t)["messages"] == json.Number("5")
	})
	// Without the policy the operator policy alone applies.
	e.must(204, "DELETE", "/api/policies/%2F/up", nil)
	q = e.must(200, "GET", "/api/queues/%2F/op-q", nil).obj(t)
	if q["policy"] != nil || q["operator_policy"] != "op" || compactJSONValue(t, q["effective_policy_definition"]) != `{"max-length":5,"message-ttl":1000}` {
		t.Errorf("queue with the operator policy alone: %v %v %v", q["policy"], q["operator_policy"], q["effective_policy_definition"])
	}

	// In the definitions, as RabbitMQ: a parameter of component operator_policy.
	wantParam := `{"component":"operator_policy","name":"op","value":{"apply-to":"queues","definition":{"max-length":5,"message-ttl":1000},"pattern":"^op-","priority":0},"vhost":"/"}`
	for _, p := range []string{"/api/definitions", "/api/definitions/%2F"} {
		d := e.must(200, "GET", p, nil).obj(t)
		if got := compactJSONValue(t, d["parameters"]); got != "["+wantParam+"]" {
			t.Errorf("%s parameters: %s", p, got)
		}
	}
	e.stop()
	e2 := startEnv(t, e.store.Reopen())
	if got := compactJSON(t, e2.must(200, "GET", "/api/operator-policies", nil).body); got != "["+want+"]" {
		t.Errorf("after a restart: %s", got)
	}
	if q := e2.must(200, "GET", "/api/queues/%2F/op-q", nil).obj(t); q["operator_policy"] != "op" {
		t.Errorf("queue after a restart: %v", q["operator_policy"])
	}
	e2.must(204, "DELETE", "/api/operator-policies/%2F/op", nil)
	if q := e2.must(200, "GET", "/api/queues/%2F/op-q", nil).obj(t); q["operator_policy"] != nil {
		t.Errorf("queue after the delete: %v", q["operator_policy"])
	}
	e2.must(204, "POST", "/api/definitions", `{"parameters":[`+wantParam+`]}`)
	if got := compactJSON(t, e2.must(200, "GET", "/api/operator-policies/%2F/op", nil).body); got != want {
		t.Errorf("imported: %s", got)
	}
	// Deleting the vhost deletes its operator policies.
	e2.must(201, "PUT", "/api/vhosts/v2", nil)
	e2.must(201, "PUT", "/api/operator-policies/v2/op2", map[string]any{"pattern": ".*", "definition": map[string]any{"expires": 5000}})
	e2.must(204, "DELETE", "/api/vhosts/v2", nil)
	if got := compactJSON(t, e2.must(200, "GET", "/api/operator-policies", nil).body); got != "["+want+"]" {
		t.Errorf("after deleting v2: %s", got)
	}
}

// Global parameters and the cluster name: RabbitMQ 3.10.8's answers (taken from it), an
// internal_cluster_id in RabbitMQ's form made once, the cluster name kept as cluster_name, all
// in the definitions and kept across a restart.
func TestGlobalParameters(t *testing.T) {
	e := startEnv(t, storage.NewMemStore())
	fields := loadSampleFields(t)
	r := e.must(200, "GET", "/api/global-parameters", nil)
	checkFields(t, fields, "global-parameters.json", r.json(t), nil)
	l := r.list(t)
	if len(l) != 1 || l[0].(map[string]any)["name"] != "internal_cluster_id" {
		t.Fatalf("global parameters: %s", r.body)
	}
	id, _ := l[0].(map[string]any)["value"].(string)
	if !regexp.MustCompile(`^rabbitmq-cluster-id-[A-Za-z0-9_-]{22}$`).MatchString(id) {
		t.Errorf("internal_cluster_id %q", id)
	}
	if got := compactJSON(t, e.must(200, "GET", "/api/global-parameters/internal_cluster_id", nil).body); got != `{"name":"internal_cluster_id","value":"`+id+`"}` {
		t.Errorf("one parameter: %s", got)
	}
	// Prometheus' identity carries it as rabbitmq_cluster_permanent_id, as rabbitmq_prometheus does.
	if m := e.do("GET", "/metrics", "", nil); !strings.Contains(string(m.body), `rabbitmq_cluster_permanent_id="`+id+`"`) {
		t.Errorf("/metrics has no rabbitmq_cluster_permanent_id %q", id)
	}
	e.must(404, "GET", "/api/global-parameters/cluster_name", nil)
	e.must(404, "GET", "/api/global-parameters/nosuch", nil)
	e.must(404, "DELETE", "/api/global-parameters/nosuch", nil)
	e.must(201, "PUT", "/api/global-parameters/gp", map[string]any{"value": map[string]any{"a": 1}})
	e.must(204, "PUT", "/api/global-parameters/gp", map[string]any{"name": "gp", "value": []any{1, "two", nil}})
	badReq(t, e.do("PUT", "/api/global-parameters/gp", guest, map[string]any{}), "no value", "[{key_missing,value}]")
	if got := compactJSON(t, e.must(200, "GET", "/api/global-parameters/gp", nil).body); got != `{"name":"gp","value":[1,"two",null]}` {
		t.Errorf("gp: %s", got)
	}

	node := e.srv.NodeName()
	if got := compactJSON(t, e.must(200, "GET", "/api/cluster-name", nil).body); got != `{"name":"`+node+`"}` {
		t.Errorf("cluster name before any is set: %s", got)
	}
	e.must(204, "PUT", "/api/cluster-name", map[string]any{"name": "warren-test"})
	badReq(t, e.do("PUT", "/api/cluster-name", guest, map[string]any{}), "no name", "[{key_missing,name}]")
	if got := compactJSON(t, e.must(200, "GET", "/api/global-parameters/cluster_name", nil).body); got != `{"name":"cluster_name","value":"warren-test"}` {
		t.Errorf("cluster_name: %s", got)
	}
	if ov := e.must(200, "GET", "/api/overview", nil).obj(t); ov["cluster_name"] != "warren-test" {
		t.Errorf("overview cluster_name %v", ov["cluster_name"])
	}
	d := e.must(200, "GET", "/api/definitions", nil).obj(t)
	wantGlobals := `[{"name":"cluster_name","value":"warren-test"},{"name":"gp","value":[1,"two",null]},{"name":"internal_cluster_id","value":"` + id + `"}]`
	if got := compactJSONValue(t, d["global_parameters"]); got != wantGlobals {
		t.Errorf("definitions global_parameters:\n got  %s\n want %s", got, wantGlobals)
	}

	e.stop()
	e2 := startEnv(t, e.store.Reopen())
	if got := compactJSON(t, e2.must(200, "GET", "/api/global-parameters", nil).body); got != wantGlobals {
		t.Errorf("after a restart: %s", got)
	}
	if got := compactJSON(t, e2.must(200, "GET", "/api/cluster-name", nil).body); got != `{"name":"warren-test"}` {
		t.Errorf("cluster name after a restart: %s", got)
	}
	// Deleting cluster_name brings back the node name; setting it as a parameter renames.
	e2.must(204, "DELETE", "/api/global-parameters/cluster_name", nil)
	if got := compactJSON(t, e2.must(200, "GET", "/api/cluster-name", nil).body); got != `{"name":"`+node+`"}` {
		t.Errorf("cluster name after the delete: %s", got)
	}
	e2.must(201, "PUT", "/api/global-parameters/cluster_name", map[string]any{"value": "via-gp"})
	if got := compactJSON(t, e2.must(200, "GET", "/api/cluster-name", nil).body); got != `{"name":"via-gp"}` {
		t.Errorf("cluster name set as a parameter: %s", got)
	}
	e2.must(204, "POST", "/api/definitions", `{"global_parameters":[{"name":"imported","value":{"k":"v"}}]}`)
	if got := compactJSON(t, e2.must(200, "GET", "/api/global-parameters/imported", nil).body); got != `{"name":"imported","value":{"k":"v"}}` {
		t.Errorf("imported: %s", got)
	}
	// Policymakers and administrators only, as in RabbitMQ.
	e2.must(201, "PUT", "/api/users/pm", map[string]any{"password": "p", "tags": "policymaker"})
	e2.must(201, "PUT", "/api/users/mon", map[string]any{"password": "p", "tags": "monitoring"})
	if r := e2.do("GET", "/api/global-parameters", "pm:p", nil); r.status != 200 {
		t.Errorf("a policymaker: %d", r.status)
	}
	if r := e2.do("GET", "/api/global-parameters", "mon:p", nil); r.status != 401 || compactJSON(t, r.body) != `{"error":"not_authorised","reason":"User not authorised to access object"}` {
		t.Errorf("a monitoring user: %d %s", r.status, r.body)
	}
}

// DELETE /api/topic-permissions/{vhost}/{user}/{exchange} removes that exchange's alone; as in
// RabbitMQ, 404 only when the user has none in the vhost, and GET on the path lists them all.
func TestDeleteOneTopicPermission(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/users/tp", map[string]any{"password": "p", "tags": ""})
	e.must(404, "DELETE", "/api/topic-permissions/%2F/tp/amq.topic", nil)
	e.must(201, "PUT", "/api/topic-permissions/%2F/tp", map[string]any{"exchange": "amq.topic", "write": "a", "read": "b"})
	e.must(201, "PUT", "/api/topic-permissions/%2F/tp", map[string]any{"exchange": "x2", "write": "c", "read": "d"})
	if l := e.must(200, "GET", "/api/topic-permissions/%2F/tp/amq.topic", nil).list(t); len(l) != 2 {
		t.Errorf("GET with an exchange: %v", l)
	}
	e.must(204, "DELETE", "/api/topic-permissions/%2F/tp/amq.topic", nil)
	if got := compactJSON(t, e.must(200, "GET", "/api/topic-permissions/%2F/tp", nil).body); got != `[{"exchange":"x2","read":"d","user":"tp","vhost":"/","write":"c"}]` {
		t.Errorf("left: %s", got)
	}
	e.must(204, "DELETE", "/api/topic-permissions/%2F/tp/nosuchx", nil)
	e.must(404, "DELETE", "/api/topic-permissions/%2F/nosuchu/x2", nil)
	e.must(204, "DELETE", "/api/topic-permissions/%2F/tp/x2", nil)
	e.must(404, "GET", "/api/topic-permissions/%2F/tp", nil)
}

// POST /api/queues/{vhost}/{name}/actions: sync and cancel_sync are 204 (nothing to synchronise,
// as RabbitMQ answers for a classic queue without mirrors); other actions 400 as RabbitMQ.
func TestQueueActions(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/qa", map[string]any{"durable": false})
	for _, a := range []string{"sync", "cancel_sync"} {
		if r := e.must(204, "POST", "/api/queues/%2F/qa/actions", map[string]any{"action": a}); len(r.body) != 0 {
			t.Errorf("%s: body %q", a, r.body)
		}
	}
	badReq(t, e.do("POST", "/api/queues/%2F/qa/actions", guest, map[string]any{"action": "foo"}), "foo", []any{"unknown", "foo"})
	badReq(t, e.do("POST", "/api/queues/%2F/qa/actions", guest, map[string]any{"action": 5}), "5", []any{"unknown", 5})
	badReq(t, e.do("POST", "/api/queues/%2F/qa/actions", guest, map[string]any{}), "none", "[{key_missing,action}]")
	badReq(t, e.do("POST", "/api/queues/%2F/qa/actions", guest, "notjson"), "not JSON", "not_json")
	e.must(405, "GET", "/api/queues/%2F/qa/actions", nil)
	e.must(404, "POST", "/api/queues/%2F/nosuch/actions", map[string]any{"action": "sync"})
	e.must(404, "POST", "/api/queues/nosuch/qa/actions", map[string]any{"action": "sync"})
	e.must(201, "PUT", "/api/users/mon", map[string]any{"password": "p", "tags": "monitoring"})
	e.must(201, "PUT", "/api/permissions/%2F/mon", map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	if r := e.do("POST", "/api/queues/%2F/qa/actions", "mon:p", map[string]any{"action": "sync"}); r.status != 401 || !strings.Contains(string(r.body), "not_authorised") {
		t.Errorf("a monitoring user: %d %s", r.status, r.body)
	}
}

// connection.start carries the cluster name in its server properties, as RabbitMQ's does.
func TestClusterNameInServerProperties(t *testing.T) {
	e := startEnv(t, nil)
	e.must(204, "PUT", "/api/cluster-name", map[string]any{"name": "props-cluster"})
	c := e.dial(nil)
	if got := c.Properties["cluster_name"]; got != "props-cluster" {
		t.Errorf("cluster_name %v", got)
	}
}
