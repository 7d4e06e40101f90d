package management

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// Runtime parameters: /api/parameters[/{component}[/{vhost}[/{name}]]], as RabbitMQ's
// rabbit_mgmt_wm_parameters and rabbit_mgmt_wm_parameter: every method needs the policymaker (or
// administrator) tag (401 otherwise, listings included); a policymaker sees and changes only the
// vhosts it has a permission in. A value is any JSON value, returned as it was stored.

func (a *api) parameterRoutes(r *mux.Router) {
	a.handle(r, "/api/parameters", resource{http.MethodGet: {fn: listParameters}})
	a.handle(r, "/api/parameters/{component}", resource{http.MethodGet: {fn: listParameters}})
	a.handle(r, "/api/parameters/{component}/{vhost}", resource{http.MethodGet: {vhost: true, fn: listParameters}})
	a.handle(r, "/api/parameters/{component}/{vhost}/{name}", resource{
		http.MethodGet:    {fn: getParameter},
		http.MethodPut:    {fn: putParameter},
		http.MethodDelete: {fn: deleteParameter},
	})
}

func parameterJSON(p server.Parameter, withVhost bool) map[string]any {
	m := map[string]any{"component": p.Component, "name": p.Name, "value": p.Value}
	if withVhost {
		m["vhost"] = p.Vhost
	}
	return m
}

// parametersJSON renders parameters for a definitions export (without their vhost in one vhost's).
func parametersJSON(ps []server.Parameter, one bool) []any {
	out := make([]any, 0, len(ps))
	for _, p := range ps {
		out = append(out, parameterJSON(p, !one))
	}
	return out
}

// parameterFromDefinitions reads one entry of a definitions file's "parameters".
func parameterFromDefinitions(f fields, vhostOf func(fields) (string, error)) (server.Parameter, error) {
	var p server.Parameter
	var err error
	if err = f.require("component", "name", "value"); err != nil {
		return p, err
	}
	if p.Component, err = f.string("component", ""); err != nil {
		return p, err
	}
	if p.Name, err = f.string("name", ""); err != nil {
		return p, err
	}
	if p.Vhost, err = vhostOf(f); err != nil {
		return p, err
	}
	p.Value = f["value"]
	return p, nil
}

// paramAccess answers 401 unless the user may manage parameters in vhost ("" for listings).
func (c *call) paramAccess(vhost string) bool {
	if !c.policymaker() {
		return false
	}
	if vhost != "" && !c.isAdmin() && !c.hasVhost(vhost) {
		c.notAuthorised("User not authorised to access virtual host")
		return false
	}
	return true
}

func listParameters(c *call) error {
	if !c.paramAccess("") {
		return nil
	}
	comp, hasComp := c.vars["component"]
	vh, hasVhost := c.vars["vhost"]
	visible := c.visible()
	if c.isAdmin() {
		visible = nil
	}
	out := []any{}
	for _, p := range c.a.b.Parameters() {
		if hasComp && p.Component != comp || hasVhost && p.Vhost != vh || visible != nil && !visible(p.Vhost) {
			continue
		}
		out = append(out, parameterJSON(p, true))
	}
	return c.list(out)
}

func getParameter(c *call) error {
	if !c.paramAccess(c.vars["vhost"]) {
		return nil
	}
	p, err := c.a.b.Parameter(c.vars["component"], c.vars["vhost"], c.vars["name"])
	if err != nil {
		return err
	}
	return c.ok(parameterJSON(p, true))
}

func putParameter(c *call) error {
	if !c.paramAccess(c.vars["vhost"]) {
		return nil
	}
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	if err := fields(m).require("value"); err != nil {
		return err
	}
	// The path names the parameter; RabbitMQ ignores component, vhost and name in the body.
	created, err := c.a.b.PutParameter(server.Parameter{Component: c.vars["component"], Vhost: c.vars["vhost"], Name: c.vars["name"], Value: m["value"], User: c.user.Name})
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteParameter(c *call) error {
	if !c.paramAccess(c.vars["vhost"]) {
		return nil
	}
	return c.deleted(c.a.b.DeleteParameter(c.vars["component"], c.vars["vhost"], c.vars["name"]))
}
