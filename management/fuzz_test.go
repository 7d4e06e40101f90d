package management

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// fuzzEndpoints are the request bodies the API parses: definitions import (every object kind),
// queue and exchange arguments, bindings, publish properties, get options, policies, users,
// permissions and limits.
var fuzzEndpoints = []struct{ method, path string }{
	{http.MethodPost, "/api/definitions"},
	{http.MethodPost, "/api/definitions/%2F"},
	{http.MethodPut, "/api/queues/%2F/fq"},
	{http.MethodPut, "/api/exchanges/%2F/fx"},
	{http.MethodPost, "/api/bindings/%2F/e/amq.direct/q/fq"},
	{http.MethodPost, "/api/exchanges/%2F/amq.default/publish"},
	{http.MethodPost, "/api/queues/%2F/fq/get"},
	{http.MethodPut, "/api/policies/%2F/fp"},
	{http.MethodPut, "/api/users/fu"},
	{http.MethodPut, "/api/permissions/%2F/guest"},
	{http.MethodPut, "/api/vhost-limits/%2F/max-connections"},
	{http.MethodPut, "/api/vhosts/fv"},
}

// FuzzAPIBodies sends any JSON (or not) to every endpoint that parses a body: the answer is a 2xx or
// a 4xx with a reason, never a panic or a 5xx. Each input gets a fresh broker, so a crasher replays
// the same way.
func FuzzAPIBodies(f *testing.F) {
	for i, body := range []string{
		`{"queues":[{"name":"q","vhost":"/","durable":true,"arguments":{"x-max-length":10,"x-queue-type":"classic"}}],"exchanges":[{"name":"x","vhost":"/","type":"topic"}],"bindings":[{"source":"x","vhost":"/","destination":"q","destination_type":"queue","routing_key":"a.#","arguments":{}}],"users":[{"name":"u","password_hash":"","tags":"administrator"}],"vhosts":[{"name":"v"}],"permissions":[{"user":"u","vhost":"v","configure":".*","write":".*","read":".*"}],"policies":[{"vhost":"/","name":"p","pattern":"^q","apply-to":"queues","definition":{"max-length":5},"priority":1}],"parameters":[{"component":"vhost-limits","vhost":"/","name":"limits","value":{"max-connections":10}}]}`,
		`{"durable":true,"arguments":{"x-message-ttl":1000,"x-dead-letter-exchange":"dlx","x-max-priority":5}}`,
		`{"type":"headers","durable":false,"arguments":{"alternate-exchange":"ae"}}`,
		`{"routing_key":"k","arguments":{"x-match":"any","a":[1,2.5,"s",true,null,{"n":1}]}}`,
		`{"properties":{"delivery_mode":2,"headers":{"h":1},"priority":3,"expiration":"100","timestamp":1700000000},"routing_key":"fq","payload":"aGk=","payload_encoding":"base64"}`,
		`{"count":5,"ackmode":"ack_requeue_true","encoding":"auto","truncate":50000}`,
		`{"pattern":".*","definition":{"message-ttl":1,"dead-letter-exchange":"d","max-length-bytes":100},"priority":0,"apply-to":"all"}`,
		`{"password":"p","tags":"management,monitoring"}`,
		`{"configure":".*","write":"[","read":""}`,
		`{"value":-1}`,
		`{"description":"d","tags":["a","b"],"default_queue_type":"classic"}`,
		``, `null`, `[]`, `{"a":1e400}`, `{"arguments":{"x-max-length":9223372036854775808}}`,
	} {
		f.Add(uint8(i%len(fuzzEndpoints)), []byte(body))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		srv, err := server.New(server.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}()
		h := NewHandler(srv, nil)
		if _, err := srv.DeclareQueue("/", "fq", server.QueueSpec{}); err != nil {
			t.Fatal(err)
		}
		ep := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		req := httptest.NewRequest(ep.method, ep.path, bytes.NewReader(body))
		req.RemoteAddr = "127.0.0.1:40000"
		req.SetBasicAuth("guest", "guest")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("%s %s with %q: status %d: %s", ep.method, ep.path, body, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 400 && !bytes.Contains(rec.Body.Bytes(), []byte(`"reason"`)) {
			t.Fatalf("%s %s with %q: status %d without a reason: %s", ep.method, ep.path, body, rec.Code, rec.Body.Bytes())
		}
	})
}
