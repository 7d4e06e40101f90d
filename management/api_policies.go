package management

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/server"
)

// Policies: /api/policies. Reading one policy and changes need the policymaker (or administrator)
// tag, as RabbitMQ's is_authorized_policies; a policymaker sees and changes only the vhosts it has
// a permission in.

func (a *api) policyRoutes(r *mux.Router) {
	a.handle(r, "/api/policies", resource{http.MethodGet: {fn: listPolicies}})
	a.handle(r, "/api/policies/{vhost}", resource{http.MethodGet: {vhost: true, fn: vhostPolicies}})
	a.handle(r, "/api/policies/{vhost}/{name}", resource{
		http.MethodGet:    {vhost: true, fn: getPolicy},
		http.MethodPut:    {vhost: true, fn: putPolicy},
		http.MethodDelete: {vhost: true, fn: deletePolicy},
	})

	// Operator policies: any management user lists those of the vhosts it sees; reading one and
	// changes are for administrators (as RabbitMQ 3.10.8 answers).
	a.handle(r, "/api/operator-policies", resource{http.MethodGet: {fn: listOperatorPolicies}})
	a.handle(r, "/api/operator-policies/{vhost}", resource{http.MethodGet: {vhost: true, fn: listOperatorPolicies}})
	a.handle(r, "/api/operator-policies/{vhost}/{name}", resource{
		http.MethodGet:    {level: lvlAdmin, vhost: true, fn: getOperatorPolicy},
		http.MethodPut:    {level: lvlAdmin, fn: putOperatorPolicy},
		http.MethodDelete: {level: lvlAdmin, vhost: true, fn: deleteOperatorPolicy},
	})
}

// policymaker answers 401 unless the user may manage policies.
func (c *call) policymaker() bool {
	if c.isAdmin() || c.user.HasTag("policymaker") {
		return true
	}
	c.notAuthorised("User not authorised to access object")
	return false
}

func policyDefinitionJSON(def map[string]any) map[string]any {
	out := make(map[string]any, len(def))
	for k, x := range def {
		out[k] = x
	}
	return out
}

func policyJSON(p server.Policy) map[string]any {
	return map[string]any{
		"vhost": p.Vhost, "name": p.Name, "pattern": p.Pattern, "apply-to": p.ApplyTo,
		"definition": policyDefinitionJSON(p.Definition), "priority": p.Priority,
	}
}

// policies lists the policies keep accepts in the vhosts the user sees; a user who is no
// policymaker gets an empty list, as from RabbitMQ.
func (c *call) policies(keep func(server.Policy) bool) error {
	out := []any{}
	if !c.isAdmin() && !c.user.HasTag("policymaker") {
		return c.list(out)
	}
	visible := c.visible()
	if c.isAdmin() {
		visible = nil
	}
	for _, p := range c.a.b.Policies() {
		if keep(p) && (visible == nil || visible(p.Vhost)) {
			out = append(out, policyJSON(p))
		}
	}
	return c.list(out)
}

func listPolicies(c *call) error { return c.policies(func(server.Policy) bool { return true }) }

func vhostPolicies(c *call) error {
	vh := c.vars["vhost"]
	return c.policies(func(p server.Policy) bool { return p.Vhost == vh })
}

func getPolicy(c *call) error {
	if !c.policymaker() {
		return nil
	}
	p, err := c.a.b.Policy(c.vars["vhost"], c.vars["name"])
	if err != nil {
		return err
	}
	return c.ok(policyJSON(p))
}

// policyFromJSON reads a policy's fields from a request body or a definitions entry, with
// RabbitMQ's errors.
func policyFromJSON(m map[string]any, vhost, name string) (server.Policy, error) {
	f := fields(m)
	p := server.Policy{Vhost: vhost, Name: name}
	if err := f.require("pattern", "definition"); err != nil {
		return p, err
	}
	var err error
	if p.Pattern, err = f.string("pattern", ""); err != nil {
		return p, err
	}
	if p.ApplyTo, err = f.string("apply-to", "all"); err != nil {
		return p, err
	}
	switch x := m["priority"].(type) {
	case nil:
	case json.Number:
		if p.Priority, err = x.Int64(); err != nil {
			return p, badRequest("Validation failed\n\npriority should be a number, actually was %s\n", amqp.ErlangTermHTML(x))
		}
	case string: // RabbitMQ's UI sends the priority as a string
		if p.Priority, err = json.Number(x).Int64(); err != nil {
			return p, badRequest("Validation failed\n\npriority should be a number, actually was %s\n", amqp.ErlangTermHTML(x))
		}
	default:
		return p, badRequest("Validation failed\n\npriority should be a number, actually was %s\n", amqp.ErlangTermHTML(x))
	}
	def, ok := m["definition"].(map[string]any)
	if !ok {
		return p, badRequest("Validation failed\n\ndefinition must be a dictionary: %v\n", m["definition"])
	}
	p.Definition = make(map[string]any, len(def))
	for k, x := range def {
		v, err := jsonToValue(x)
		if err != nil {
			return p, err
		}
		p.Definition[k] = v
	}
	return p, nil
}

func putPolicy(c *call) error {
	if !c.policymaker() {
		return nil
	}
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	p, err := policyFromJSON(m, c.vars["vhost"], c.vars["name"])
	if err != nil {
		return err
	}
	created, err := c.a.b.PutPolicy(p)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deletePolicy(c *call) error {
	if !c.policymaker() {
		return nil
	}
	return c.deleted(c.a.b.DeletePolicy(c.vars["vhost"], c.vars["name"]))
}

// --- operator policies: administrator only; the same JSON as policies ---

func listOperatorPolicies(c *call) error {
	vh, one := c.vars["vhost"]
	visible := c.visible()
	out := []any{}
	for _, p := range c.a.b.OperatorPolicies() {
		if (!one || p.Vhost == vh) && (visible == nil || visible(p.Vhost)) {
			out = append(out, policyJSON(p))
		}
	}
	return c.list(out)
}

func getOperatorPolicy(c *call) error {
	p, err := c.a.b.OperatorPolicy(c.vars["vhost"], c.vars["name"])
	if err != nil {
		return err
	}
	return c.ok(policyJSON(p))
}

// putOperatorPolicy answers a missing vhost with RabbitMQ's 404 {"error":"not_found",
// "reason":"vhost_not_found"}.
func putOperatorPolicy(c *call) error {
	vh := c.vars["vhost"]
	if _, err := c.a.b.Vhost(vh); err != nil {
		return &apiError{status: http.StatusNotFound, kind: "not_found", reason: "vhost_not_found"}
	}
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	p, err := policyFromJSON(m, vh, c.vars["name"])
	if err != nil {
		return err
	}
	created, err := c.a.b.PutOperatorPolicy(p)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteOperatorPolicy(c *call) error {
	return c.deleted(c.a.b.DeleteOperatorPolicy(c.vars["vhost"], c.vars["name"]))
}
