package management

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// User limits (/api/user-limits), global parameters (/api/global-parameters) and queue actions
// (/api/queues/{vhost}/{name}/actions). As in RabbitMQ 3.10.8 (checked against it): any management
// user reads the user limits, an administrator changes them; global parameters are for
// policymakers and administrators; queue actions for administrators.

func (a *api) userLimitRoutes(r *mux.Router) {
	a.handle(r, "/api/user-limits", resource{http.MethodGet: {fn: listUserLimits}})
	a.handle(r, "/api/user-limits/{user}", resource{http.MethodGet: {fn: listUserLimits}})
	a.handle(r, "/api/user-limits/{user}/{name}", resource{
		http.MethodPut:    {level: lvlAdmin, fn: putUserLimit},
		http.MethodDelete: {level: lvlAdmin, fn: deleteUserLimit},
	})

	a.handle(r, "/api/global-parameters", resource{http.MethodGet: {fn: listGlobalParameters}})
	a.handle(r, "/api/global-parameters/{name}", resource{
		http.MethodGet:    {fn: getGlobalParameter},
		http.MethodPut:    {fn: putGlobalParameter},
		http.MethodDelete: {fn: deleteGlobalParameter},
	})

	a.handle(r, "/api/queues/{vhost}/{name}/actions", resource{http.MethodPost: {level: lvlAdmin, vhost: true, fn: queueAction}})
}

// limitsJSON is a user's limits as RabbitMQ shows them (an empty object for none).
func limitsJSON(ls map[string]int64) map[string]any {
	out := make(map[string]any, len(ls))
	for k, v := range ls {
		out[k] = v
	}
	return out
}

// userLimitsField reads a user's "limits" object (PUT /api/users, definitions): each limit given is
// set, the user's others kept, as RabbitMQ's put_user does. nil if absent or empty. (RabbitMQ
// fails with an empty 500 on a bad one; Warren answers 400.)
func userLimitsField(f fields) (map[string]int64, error) {
	x, ok := f["limits"]
	if !ok || x == nil {
		return nil, nil
	}
	ls, ok := x.(map[string]any)
	if !ok {
		return nil, badRequest("limits must be an object")
	}
	if len(ls) == 0 {
		return nil, nil
	}
	out := make(map[string]int64, len(ls))
	for name, v := range ls {
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil {
			return nil, badRequest("%s should be a number, actually was %s", name, erlangJSONTerm(v))
		}
		out[name] = i
	}
	return out, nil
}

// listUserLimits lists every user's limits, or one user's (404 for a user that does not exist;
// an empty list for one without limits).
func listUserLimits(c *call) error {
	name, one := c.vars["user"]
	if one {
		if _, err := c.a.b.User(name); err != nil {
			return err
		}
	}
	out := []any{}
	for _, l := range c.a.b.AllUserLimits() {
		if !one || l.User == name {
			out = append(out, map[string]any{"user": l.User, "value": limitsJSON(l.Limits)})
		}
	}
	return c.list(out)
}

// putUserLimit sets one limit from {"value": N}; RabbitMQ answers 204 whether it is new or not,
// and 400 ["no_such_user", name] for a user that does not exist.
func putUserLimit(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	if err := fields(m).require("value"); err != nil {
		return err
	}
	name := c.vars["name"]
	n, ok := m["value"].(json.Number)
	v, err := n.Int64()
	if !ok || err != nil {
		return badRequest("%s should be a number, actually was %s", name, erlangJSONTerm(m["value"]))
	}
	if err := c.a.b.PutUserLimit(c.vars["user"], name, v); err != nil {
		return err
	}
	return c.noContent()
}

// erlangJSONTerm renders a decoded JSON value as RabbitMQ prints it in a validation error.
func erlangJSONTerm(x any) string {
	switch x := x.(type) {
	case string:
		b, _ := json.Marshal(x)
		return "<<" + string(b) + ">>"
	case json.Number:
		return x.String()
	case nil:
		return "null"
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	b, _ := json.Marshal(x)
	return string(b)
}

// deleteUserLimit removes one limit; 204 even if the user had none of that name. For a user that
// does not exist RabbitMQ fails with an empty 500; Warren answers 404.
func deleteUserLimit(c *call) error {
	user := c.vars["user"]
	if _, err := c.a.b.User(user); err != nil {
		return err
	}
	return c.deleted(c.a.b.DeleteUserLimit(user, c.vars["name"]))
}

// --- global parameters ---

func globalParameterJSON(g server.GlobalParameter) map[string]any {
	return map[string]any{"name": g.Name, "value": g.Value}
}

func listGlobalParameters(c *call) error {
	if !c.policymaker() {
		return nil
	}
	out := []any{}
	for _, g := range c.a.b.GlobalParameters() {
		out = append(out, globalParameterJSON(g))
	}
	return c.list(out)
}

func getGlobalParameter(c *call) error {
	if !c.policymaker() {
		return nil
	}
	g, err := c.a.b.GlobalParameter(c.vars["name"])
	if err != nil {
		return err
	}
	return c.ok(globalParameterJSON(g))
}

// putGlobalParameter sets a parameter from {"value": any JSON}; the body's "name", if any, is
// ignored for the path's, as RabbitMQ does.
func putGlobalParameter(c *call) error {
	if !c.policymaker() {
		return nil
	}
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	if err := fields(m).require("value"); err != nil {
		return err
	}
	raw, err := json.Marshal(m["value"])
	if err != nil {
		return badRequest("not_json")
	}
	created, err := c.a.b.PutGlobalParameter(c.vars["name"], raw)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteGlobalParameter(c *call) error {
	if !c.policymaker() {
		return nil
	}
	return c.deleted(c.a.b.DeleteGlobalParameter(c.vars["name"]))
}

// --- queue actions ---

// queueAction runs sync or cancel_sync on a queue. Warren's queues have no mirrors, so there is
// never anything to synchronise: RabbitMQ answers 204 for such a queue, and so does Warren. An
// unknown action is 400 ["unknown", action]. For a queue that does not exist RabbitMQ fails with
// an empty 500; Warren answers 404.
func queueAction(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	if err := fields(m).require("action"); err != nil {
		return err
	}
	act := m["action"]
	if act != "sync" && act != "cancel_sync" {
		if n, ok := act.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				act = i
			}
		}
		return badRequestTerm("unknown", act)
	}
	if _, err := c.a.b.Queue(c.vars["vhost"], c.vars["name"]); err != nil {
		return err
	}
	return c.noContent()
}
