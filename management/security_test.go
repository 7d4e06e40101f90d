package management

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// Every /api/ route refuses a request without credentials, or with wrong ones, with 401 for every
// method it serves: the test walks the router, so a route added later is covered too. (/metrics
// is open on purpose, as rabbitmq_prometheus's, and /api/auth, as RabbitMQ's.)
func TestEveryAPIRouteNeedsCredentials(t *testing.T) {
	e := startEnv(t, nil, func(o *server.Options) { o.LoginFailureLimit = -1 })
	r := mux.NewRouter()
	(&api{b: e.srv, log: testLog(t)}).routes(r)
	vars := regexp.MustCompile(`\{[^}]+\}`)
	var checked int
	err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tmpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		rh, ok := route.GetHandler().(*resourceHandler)
		if !ok {
			t.Errorf("%s: handler %T does not authenticate through resourceHandler", tmpl, route.GetHandler())
			return nil
		}
		path := vars.ReplaceAllStringFunc(tmpl, func(v string) string {
			if v == "{vhost}" {
				return "%2F"
			}
			return "x"
		})
		for method, o := range rh.res {
			if o.open { // /api/auth only, as RabbitMQ's: it must answer without credentials
				if tmpl != "/api/auth" {
					t.Errorf("%s: open without credentials", tmpl)
				}
				if res := e.do(method, path, "", nil); res.status != http.StatusOK {
					t.Errorf("%s %s without credentials: %d", method, path, res.status)
				}
				continue
			}
			for _, user := range []string{"", "guest:wrong", "nobody:guest"} {
				res := e.do(method, path, user, nil)
				if res.status != http.StatusUnauthorized {
					t.Errorf("%s %s as %q: status %d, want 401: %s", method, path, user, res.status, res.body)
				}
				checked++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("only %d requests checked: the walk missed routes", checked)
	}
	if res := e.do("GET", "/metrics", "", nil); res.status != http.StatusOK {
		t.Fatalf("/metrics without credentials: %d", res.status)
	}
}

// Names chosen by users (queues, exchanges, path segments) come back JSON-escaped in bodies typed
// application/json with X-Content-Type-Options: nosniff, in listings, single objects and errors.
func TestNoEndpointReflectsInputUnescaped(t *testing.T) {
	e := startEnv(t, nil)
	const evil = `<script>alert(1)</script>`
	esc := url.PathEscape(evil)
	e.must(http.StatusCreated, "PUT", "/api/queues/%2F/"+esc, map[string]any{"auto_delete": false, "durable": false})
	e.must(http.StatusCreated, "PUT", "/api/exchanges/%2F/"+esc, map[string]any{"type": "direct"})

	cases := []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/queues", nil, 200},
		{"GET", "/api/queues/%2F/" + esc, nil, 200},
		{"GET", "/api/exchanges/%2F/" + esc, nil, 200},
		{"GET", "/api/queues/%2F/" + esc + "x", nil, 404},
		{"GET", "/api/exchanges/" + esc + "/x", nil, 404},
		{"GET", "/api/no-such-thing/" + esc, nil, 404},
		{"PUT", "/api/queues/%2F/q", `{"arguments":{"x-queue-type":"` + evil + `"}}`, 400},
		{"PUT", "/api/exchanges/%2F/e", `{"type":"` + evil + `"}`, 400},
		{"PUT", "/api/queues/%2F/q", evil, 400},
		{"POST", "/api/exchanges/%2F/" + esc + "/publish", map[string]any{"routing_key": evil, "payload": evil, "payload_encoding": "string", "properties": map[string]any{}}, 200},
	}
	for _, c := range cases {
		res := e.do(c.method, c.path, guest, c.body)
		if res.status != c.want {
			t.Errorf("%s %s: status %d, want %d: %s", c.method, c.path, res.status, c.want, res.body)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
		}
		if ns := res.header.Get("X-Content-Type-Options"); ns != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options %q", c.method, c.path, ns)
		}
		if strings.Contains(string(res.body), "<") {
			t.Errorf("%s %s: a raw '<' in the body: %s", c.method, c.path, res.body)
		}
		res.json(t) // and it is JSON
	}
}
