package management

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// superStreamBroker is the part of the broker that creates super streams (server.Server).
type superStreamBroker interface {
	DeclareSuperStream(vhost, name string, spec server.SuperStreamSpec) error
}

// superStreamRoutes registers rabbitmq_stream_management's super stream endpoint (RabbitMQ
// 3.11+): PUT /api/stream/super-streams/{vhost}/{name} with {"partitions": N} or
// {"binding_keys": "a,b,c"} and optional "arguments" (the partitions' stream arguments).
func (a *api) superStreamRoutes(r *mux.Router) {
	if _, ok := a.b.(superStreamBroker); !ok {
		return
	}
	a.handle(r, "/api/stream/super-streams/{vhost}/{name}", resource{
		http.MethodPut: {vhost: true, write: true, fn: putSuperStream},
	})
}

func putSuperStream(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	n, err := f.int("partitions", 0)
	if err != nil {
		return err
	}
	keysStr, err := f.string("binding_keys", "")
	if err != nil {
		return err
	}
	if keysStr == "" { // RabbitMQ's own spelling in some versions
		if keysStr, err = f.string("binding-keys", ""); err != nil {
			return err
		}
	}
	_, hasParts := m["partitions"]
	if hasParts && n < 1 {
		return badRequest("The partition number must be greater than 0")
	}
	var keys []string
	if keysStr != "" {
		for _, k := range strings.Split(keysStr, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return badRequest("Must specify partitions or binding keys")
		}
	}
	args := map[string]string{}
	if raw, ok := m["arguments"]; ok && raw != nil {
		obj, ok := raw.(map[string]any)
		if !ok {
			return badRequest("arguments must be an object")
		}
		for k, x := range obj {
			switch x := x.(type) {
			case string:
				args[k] = x
			case json.Number:
				args[k] = x.String()
			default:
				return badRequest("argument %s: %v is not a string or a number", k, x)
			}
		}
	}
	b := c.a.b.(superStreamBroker)
	if err := b.DeclareSuperStream(c.vars["vhost"], c.vars["name"], server.SuperStreamSpec{
		Partitions: int(n), BindingKeys: keys, Arguments: args}); err != nil {
		return err
	}
	return c.created(true)
}
