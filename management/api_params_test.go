package management

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// hookLog records a test component's Set and Clear calls.
type hookLog struct {
	mu    sync.Mutex
	calls []string
}

func (h *hookLog) add(s string) {
	h.mu.Lock()
	h.calls = append(h.calls, s)
	h.mu.Unlock()
}

func (h *hookLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

func registerTestComponent(srv *server.Server, h *hookLog) {
	srv.RegisterParameterComponent("test-comp", server.ParameterComponent{
		Validate: func(vhost, name string, v any) error {
			if _, ok := v.(map[string]any); !ok {
				return &server.BadRequestError{Reason: "Validation failed\n\nnot a map\n"}
			}
			return nil
		},
		Set: func(p server.Parameter) {
			h.add(fmt.Sprintf("set %s %s %s", p.Vhost, p.Name, jsonString(p.Value)))
		},
		Clear: func(vhost, name string) { h.add("clear " + vhost + " " + name) },
	})
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// The parameter endpoints answer RabbitMQ 3.10.8's statuses and bodies (taken from it), a
// component's hooks see every change, parameters survive a restart (replayed to the component
// when it registers), leave with their vhost and travel in definitions.
func TestParameters(t *testing.T) {
	store := storage.NewMemStore()
	e := startEnv(t, store)
	h := &hookLog{}
	registerTestComponent(e.srv, h)

	e.must(200, "GET", "/api/parameters", nil)
	if l := e.must(200, "GET", "/api/parameters/foo", nil).list(t); len(l) != 0 {
		t.Errorf("unknown component lists %v", l)
	}
	e.must(404, "GET", "/api/parameters/foo/nov", nil)
	e.must(404, "GET", "/api/parameters/foo/%2F/x", nil)
	e.must(404, "DELETE", "/api/parameters/foo/%2F/x", nil)
	for _, x := range []struct {
		path, body string
		status     int
		err        string
		reason     string
	}{
		{"/api/parameters/foo/%2F/x", `{"value":{"a":1}}`, 400, "bad_request", "Validation failed\n\ncomponent foo not found\n"},
		{"/api/parameters/foo/nov/x", `{"value":{"a":1}}`, 404, "not_found", "vhost_not_found"},
		{"/api/parameters/test-comp/%2F/x", `{"valu":{}}`, 400, "bad_request", "[{key_missing,value}]"},
		{"/api/parameters/test-comp/%2F/x", ``, 400, "bad_request", "[{key_missing,value}]"},
		{"/api/parameters/test-comp/%2F/x", `garbage`, 400, "bad_request", "not_json"},
		{"/api/parameters/test-comp/%2F/x", `[1]`, 400, "bad_request", "not_json"},
		{"/api/parameters/test-comp/%2F/x", `{"value":5}`, 400, "bad_request", "Validation failed\n\nnot a map\n"},
		{"/api/parameters/vhost-limits/%2F/limits", `{"value":5}`, 400, "bad_request", "Validation failed\n\nlimits not a list 5\n"},
	} {
		r := e.do("PUT", x.path, guest, x.body)
		if m := r.obj(t); r.status != x.status || m["error"] != x.err || m["reason"] != x.reason {
			t.Errorf("PUT %s %s: %d %s, want %d %s %q", x.path, x.body, r.status, r.body, x.status, x.err, x.reason)
		}
	}
	if c := h.take(); len(c) != 0 {
		t.Errorf("refused puts reached the component: %v", c)
	}

	// The body's component, vhost and name are ignored: the path names the parameter.
	e.must(201, "PUT", "/api/parameters/test-comp/%2F/p1", `{"value":{"b":[1,"x"],"a":1.5},"component":"zz","vhost":"qq","name":"y"}`)
	e.must(204, "PUT", "/api/parameters/test-comp/%2F/p1", `{"value":{"b":[1,"x"],"a":2}}`)
	want := `{"component":"test-comp","name":"p1","value":{"a":2,"b":[1,"x"]},"vhost":"/"}`
	if got := compactJSON(t, e.must(200, "GET", "/api/parameters/test-comp/%2F/p1", nil).body); got != want {
		t.Errorf("parameter:\n got  %s\n want %s", got, want)
	}
	for _, p := range []string{"/api/parameters", "/api/parameters/test-comp", "/api/parameters/test-comp/%2F"} {
		if got := compactJSON(t, e.must(200, "GET", p, nil).body); got != "["+want+"]" {
			t.Errorf("%s: %s", p, got)
		}
	}
	if c := h.take(); !slices.Equal(c, []string{`set / p1 {"a":1.5,"b":[1,"x"]}`, `set / p1 {"a":2,"b":[1,"x"]}`}) {
		t.Errorf("hooks: %v", c)
	}

	// Vhost limits are the component vhost-limits.
	e.must(201, "PUT", "/api/parameters/vhost-limits/%2F/limits", `{"value":{"max-queues":3}}`)
	e.must(204, "PUT", "/api/parameters/vhost-limits/%2F/limits", `{"value":{"max-queues":4}}`)
	if got := compactJSON(t, e.must(200, "GET", "/api/vhost-limits/%2F", nil).body); got != `[{"value":{"max-queues":4},"vhost":"/"}]` {
		t.Errorf("vhost limits set through parameters: %s", got)
	}
	if got := compactJSON(t, e.must(200, "GET", "/api/parameters/vhost-limits", nil).body); got != `[{"component":"vhost-limits","name":"limits","value":{"max-queues":4},"vhost":"/"}]` {
		t.Errorf("vhost-limits parameters: %s", got)
	}
	e.must(204, "DELETE", "/api/parameters/vhost-limits/%2F/limits", nil)
	e.must(404, "GET", "/api/parameters/vhost-limits/%2F/limits", nil)

	// Tags: a management user may do nothing, even list; a policymaker may.
	e.must(201, "PUT", "/api/users/mg", map[string]any{"password": "mg", "tags": "management"})
	e.must(201, "PUT", "/api/users/pm", map[string]any{"password": "pm", "tags": "policymaker"})
	for _, u := range []string{"mg", "pm"} {
		e.must(201, "PUT", "/api/permissions/%2F/"+u, map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	}
	for _, m := range []string{"GET /api/parameters", "GET /api/parameters/test-comp/%2F", "GET /api/parameters/test-comp/%2F/p1", "PUT /api/parameters/test-comp/%2F/z", "DELETE /api/parameters/test-comp/%2F/p1"} {
		var method, path string
		fmt.Sscan(m, &method, &path)
		if r := e.do(method, path, "mg:mg", `{"value":{}}`); r.status != 401 || r.obj(t)["reason"] != "User not authorised to access object" {
			t.Errorf("management user: %s: %d %s", m, r.status, r.body)
		}
	}
	if r := e.do("PUT", "/api/parameters/test-comp/%2F/z", "pm:pm", `{"value":{}}`); r.status != 201 {
		t.Errorf("policymaker's put: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/api/parameters/test-comp/%2F/z", "pm:pm", nil); r.status != 204 {
		t.Errorf("policymaker's delete: %d %s", r.status, r.body)
	}
	if c := h.take(); !slices.Equal(c, []string{`set / z {}`, `clear / z`}) {
		t.Errorf("hooks: %v", c)
	}

	// Definitions carry them, with the vhost limits.
	e.must(204, "PUT", "/api/vhost-limits/%2F/max-connections", `{"value":7}`)
	defs := e.must(200, "GET", "/api/definitions", nil).obj(t)
	if got := compactJSON(t, mustJSON(t, defs["parameters"])); got != `[{"component":"vhost-limits","name":"limits","value":{"max-connections":7},"vhost":"/"},`+want+`]` {
		t.Errorf("definitions' parameters: %s", got)
	}
	one := e.must(200, "GET", "/api/definitions/%2F", nil).obj(t)
	if got := compactJSON(t, mustJSON(t, one["parameters"])); got != `[{"component":"vhost-limits","name":"limits","value":{"max-connections":7}},{"component":"test-comp","name":"p1","value":{"a":2,"b":[1,"x"]}}]` {
		t.Errorf("vhost definitions' parameters: %s", got)
	}
	e.must(201, "PUT", "/api/vhosts/imp", nil)
	e.must(204, "POST", "/api/definitions/imp", one)
	if got := compactJSON(t, e.must(200, "GET", "/api/parameters/test-comp/imp/p1", nil).body); got != `{"component":"test-comp","name":"p1","value":{"a":2,"b":[1,"x"]},"vhost":"imp"}` {
		t.Errorf("imported parameter: %s", got)
	}
	h.take()

	// Durable: back after a restart, replayed to the component when it registers.
	e.stop()
	e2 := startEnv(t, store.Reopen())
	if got := compactJSON(t, e2.must(200, "GET", "/api/parameters/test-comp/%2F/p1", nil).body); got != want {
		t.Errorf("after restart: %s", got)
	}
	registerTestComponent(e2.srv, h)
	if c := h.take(); !slices.Equal(c, []string{`set / p1 {"a":2,"b":[1,"x"]}`, `set imp p1 {"a":2,"b":[1,"x"]}`}) {
		t.Errorf("replay at registration: %v", c)
	}
	// Deleting the vhost clears its parameters.
	e2.must(204, "DELETE", "/api/vhosts/imp", nil)
	if c := h.take(); !slices.Equal(c, []string{`clear imp p1`}) {
		t.Errorf("hooks at vhost deletion: %v", c)
	}
	e2.must(201, "PUT", "/api/vhosts/imp", nil)
	if l := e2.must(200, "GET", "/api/parameters/test-comp/imp", nil).list(t); len(l) != 0 {
		t.Errorf("a deleted vhost's parameters came back: %v", l)
	}
}
