package management

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/warrenmq/warren/server"
)

// Definitions export and import, in RabbitMQ's format.

func exportDefinitions(c *call) error {
	vh, one := c.vars["vhost"]
	if one {
		if _, err := c.a.b.Vhost(vh); err != nil {
			return badRequest("vhost_not_found")
		}
	}
	d, err := c.a.b.ExportDefinitions(vh, !one)
	if err != nil {
		return err
	}
	queues, exchanges, bindings := []any{}, []any{}, []any{}
	for _, q := range d.Queues {
		m := map[string]any{"name": q.Name, "durable": q.Durable, "auto_delete": q.AutoDelete, "arguments": tableJSON(q.Arguments)}
		if !one {
			m["vhost"] = q.Vhost
		}
		queues = append(queues, m)
	}
	for _, x := range d.Exchanges {
		m := map[string]any{"name": x.Name, "type": x.Type, "durable": x.Durable, "auto_delete": x.AutoDelete,
			"internal": x.Internal, "arguments": tableJSON(x.Arguments)}
		if !one {
			m["vhost"] = x.Vhost
		}
		exchanges = append(exchanges, m)
	}
	for _, b := range d.Bindings {
		m := map[string]any{"source": b.Source, "destination": b.Destination, "destination_type": b.DestinationType,
			"routing_key": b.RoutingKey, "arguments": tableJSON(b.Arguments)}
		if !one {
			m["vhost"] = b.Vhost
		}
		bindings = append(bindings, m)
	}
	policies := []any{}
	for _, p := range d.Policies {
		policies = append(policies, policyJSON(p)) // with its vhost, even in a vhost's export, as RabbitMQ
	}
	params := limitParameters(d.Limits, one)
	for _, p := range d.OperatorPolicies {
		params = append(params, operatorPolicyParameter(p))
	}
	out := map[string]any{
		"rabbit_version": server.RabbitMQVersion, "parameters": append(params, parametersJSON(d.Parameters, one)...), "policies": policies,
		"queues": queues, "exchanges": exchanges, "bindings": bindings,
	}
	if !one {
		out["rabbitmq_version"] = server.RabbitMQVersion
		out["product_name"], out["product_version"] = "Warren", server.Version
		users, vhosts, perms := []any{}, []any{}, []any{}
		for _, u := range d.Users {
			users = append(users, userJSON(u))
		}
		for _, v := range d.Vhosts {
			vhosts = append(vhosts, map[string]any{"name": v.Name, "description": v.Description, "tags": tagsJSON(v.Tags),
				"metadata": map[string]any{"description": v.Description, "tags": tagsJSON(v.Tags)}})
		}
		for _, p := range d.Permissions {
			perms = append(perms, permissionJSON(p))
		}
		out["users"], out["vhosts"], out["permissions"] = users, vhosts, perms
		tps := []any{}
		for _, p := range d.TopicPerms {
			tps = append(tps, topicPermissionJSON(p))
		}
		out["topic_permissions"] = tps
		globals := []any{}
		for _, g := range d.GlobalParameters {
			globals = append(globals, globalParameterJSON(g))
		}
		out["global_parameters"] = globals
	}
	if c.r.URL.Query().Has("download") {
		c.w.Header().Set("Content-Disposition", `attachment; filename="`+c.r.URL.Query().Get("download")+`"`)
	}
	return c.ok(out)
}

func importDefinitions(c *call) error {
	m, err := c.body(maxDefinitionsBody)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusBadRequest {
			return badRequest("failed_to_parse_json")
		}
		return err
	}
	vh, one := c.vars["vhost"]
	if one {
		if _, err := c.a.b.Vhost(vh); err != nil {
			return badRequest("vhost_not_found")
		}
	}
	var d server.Definitions
	if err := decodeDefinitions(m, vh, one, &d); err != nil {
		return err
	}
	if err := c.a.b.ImportDefinitions(d, c.user.Name); err != nil {
		return err
	}
	return c.noContent()
}

// ParseDefinitions reads a definitions export of every vhost, in RabbitMQ's JSON format (as
// GET /api/definitions writes it and load_definitions reads it), for Server.ImportDefinitions.
func ParseDefinitions(data []byte) (server.Definitions, error) {
	var d server.Definitions
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return d, fmt.Errorf("not a JSON object: %w", err)
	}
	if m == nil || dec.More() {
		return d, errors.New("not a single JSON object")
	}
	if err := decodeDefinitions(m, "", false, &d); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return d, fmt.Errorf("%v", ae.reason)
		}
		return d, err
	}
	return d, nil
}

// decodeDefinitions fills d from a decoded definitions document: every vhost's, or vhost vh's
// alone when one is true.
func decodeDefinitions(m map[string]any, vh string, one bool, d *server.Definitions) error {
	var err error
	objects := func(key string) ([]fields, error) {
		v, ok := m[key]
		if !ok || v == nil {
			return nil, nil
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, badRequest("%s must be an array", key)
		}
		out := make([]fields, 0, len(arr))
		for _, x := range arr {
			o, ok := x.(map[string]any)
			if !ok {
				return nil, badRequest("%s must be an array of objects", key)
			}
			out = append(out, fields(o))
		}
		return out, nil
	}
	vhostOf := func(f fields) (string, error) {
		if one {
			return vh, nil
		}
		return f.string("vhost", "/")
	}
	if !one {
		users, err := objects("users")
		if err != nil {
			return err
		}
		for _, f := range users {
			u, err := importUser(f)
			if err != nil {
				return err
			}
			d.Users = append(d.Users, u)
		}
		vhosts, err := objects("vhosts")
		if err != nil {
			return err
		}
		for _, f := range vhosts {
			v := server.VhostInfo{}
			if v.Name, err = f.string("name", ""); err != nil {
				return err
			}
			if v.Description, err = f.string("description", ""); err != nil {
				return err
			}
			if v.Tags, err = f.tags("tags"); err != nil {
				return err
			}
			if md, ok := f["metadata"].(map[string]any); ok {
				mf := fields(md)
				if v.Description == "" {
					v.Description, _ = mf.string("description", "")
				}
				if v.Tags == nil {
					v.Tags, _ = mf.tags("tags")
				}
			}
			d.Vhosts = append(d.Vhosts, v)
		}
		perms, err := objects("permissions")
		if err != nil {
			return err
		}
		for _, f := range perms {
			if err := f.require("user", "vhost", "configure", "write", "read"); err != nil {
				return err
			}
			var p server.Permission
			p.User, _ = f.string("user", "")
			p.Vhost, _ = f.string("vhost", "")
			p.Configure, _ = f.string("configure", "")
			p.Write, _ = f.string("write", "")
			p.Read, _ = f.string("read", "")
			d.Permissions = append(d.Permissions, p)
		}
		tps, err := objects("topic_permissions")
		if err != nil {
			return err
		}
		globals, err := objects("global_parameters")
		if err != nil {
			return err
		}
		for _, f := range globals {
			var g server.GlobalParameter
			if g.Name, err = f.string("name", ""); err != nil {
				return err
			}
			if g.Value, err = json.Marshal(f["value"]); err != nil {
				return badRequest("not_json")
			}
			d.GlobalParameters = append(d.GlobalParameters, g)
		}
		for _, f := range tps {
			if err := f.require("user", "vhost", "exchange", "write", "read"); err != nil {
				return err
			}
			var p server.TopicPermission
			p.User, _ = f.string("user", "")
			p.Vhost, _ = f.string("vhost", "")
			p.Exchange, _ = f.string("exchange", "")
			p.Write, _ = f.string("write", "")
			p.Read, _ = f.string("read", "")
			d.TopicPerms = append(d.TopicPerms, p)
		}
	}
	params, err := objects("parameters")
	if err != nil {
		return err
	}
	for _, f := range params {
		comp, _ := f.string("component", "")
		if comp == "operator_policy" {
			p, err := operatorPolicyFromParameter(f, vhostOf)
			if err != nil {
				return err
			}
			d.OperatorPolicies = append(d.OperatorPolicies, p)
			continue
		}
		if comp != server.ParameterVhostLimits {
			p, err := parameterFromDefinitions(f, vhostOf)
			if err != nil {
				return err
			}
			d.Parameters = append(d.Parameters, p)
			continue
		}
		l := server.VhostLimits{Limits: map[string]int64{}}
		if l.Vhost, err = vhostOf(f); err != nil {
			return err
		}
		value, _ := f["value"].(map[string]any)
		for name := range value {
			if l.Limits[name], err = fields(value).int(name, 0); err != nil {
				return err
			}
		}
		d.Limits = append(d.Limits, l)
	}
	policies, err := objects("policies")
	if err != nil {
		return err
	}
	for _, f := range policies {
		vhost, err := vhostOf(f)
		if err != nil {
			return err
		}
		name, err := f.string("name", "")
		if err != nil {
			return err
		}
		p, err := policyFromJSON(f, vhost, name)
		if err != nil {
			return err
		}
		d.Policies = append(d.Policies, p)
	}
	exchanges, err := objects("exchanges")
	if err != nil {
		return err
	}
	for _, f := range exchanges {
		var x server.ExchangeDef
		if x.Vhost, err = vhostOf(f); err != nil {
			return err
		}
		if x.Name, err = f.string("name", ""); err != nil {
			return err
		}
		if x.Type, err = f.string("type", "direct"); err != nil {
			return err
		}
		if x.Durable, err = f.bool("durable", true); err != nil {
			return err
		}
		if x.AutoDelete, err = f.bool("auto_delete", false); err != nil {
			return err
		}
		if x.Internal, err = f.bool("internal", false); err != nil {
			return err
		}
		if x.Arguments, err = f.table("arguments"); err != nil {
			return err
		}
		d.Exchanges = append(d.Exchanges, x)
	}
	queues, err := objects("queues")
	if err != nil {
		return err
	}
	for _, f := range queues {
		var q server.QueueDef
		if q.Vhost, err = vhostOf(f); err != nil {
			return err
		}
		if q.Name, err = f.string("name", ""); err != nil {
			return err
		}
		if q.Durable, err = f.bool("durable", true); err != nil {
			return err
		}
		if q.AutoDelete, err = f.bool("auto_delete", false); err != nil {
			return err
		}
		if q.Arguments, err = f.table("arguments"); err != nil {
			return err
		}
		d.Queues = append(d.Queues, q)
	}
	bindings, err := objects("bindings")
	if err != nil {
		return err
	}
	for _, f := range bindings {
		var b server.BindingInfo
		if b.Vhost, err = vhostOf(f); err != nil {
			return err
		}
		if b.Source, err = f.string("source", ""); err != nil {
			return err
		}
		if b.Destination, err = f.string("destination", ""); err != nil {
			return err
		}
		if b.DestinationType, err = f.string("destination_type", "queue"); err != nil {
			return err
		}
		if b.RoutingKey, err = f.string("routing_key", ""); err != nil {
			return err
		}
		if b.Arguments, err = f.table("arguments"); err != nil {
			return err
		}
		d.Bindings = append(d.Bindings, b)
	}
	return nil
}

func importUser(f fields) (server.UserInfo, error) {
	var u server.UserInfo
	var err error
	if u.Name, err = f.string("name", ""); err != nil {
		return u, err
	}
	if u.Tags, err = f.tags("tags"); err != nil {
		return u, err
	}
	if u.HashingAlgorithm, err = f.string("hashing_algorithm", server.HashSHA256); err != nil {
		return u, err
	}
	h, err := f.string("password_hash", "")
	if err != nil {
		return u, err
	}
	if u.PasswordHash, err = base64.StdEncoding.DecodeString(h); err != nil {
		return u, badRequestTerm("not_base64", h)
	}
	if u.Limits, err = userLimitsField(f); err != nil {
		return u, err
	}
	return u, nil
}

// limitParameters renders vhost limits as RabbitMQ's definitions hold them: runtime parameters of
// component vhost-limits named limits.
func limitParameters(ls []server.VhostLimits, one bool) []any {
	out := []any{}
	for _, l := range ls {
		m := map[string]any{"component": "vhost-limits", "name": "limits", "value": l.Limits}
		if !one {
			m["vhost"] = l.Vhost
		}
		out = append(out, m)
	}
	return out
}

// operatorPolicyParameter renders an operator policy as RabbitMQ's definitions hold it: a runtime
// parameter of component operator_policy, with its vhost even in a vhost's export.
func operatorPolicyParameter(p server.Policy) map[string]any {
	return map[string]any{"component": "operator_policy", "vhost": p.Vhost, "name": p.Name,
		"value": map[string]any{"pattern": p.Pattern, "apply-to": p.ApplyTo, "priority": p.Priority,
			"definition": policyDefinitionJSON(p.Definition)}}
}

// operatorPolicyFromParameter reads an operator_policy parameter of a definitions document.
func operatorPolicyFromParameter(f fields, vhostOf func(fields) (string, error)) (server.Policy, error) {
	vhost, err := vhostOf(f)
	if err != nil {
		return server.Policy{}, err
	}
	name, err := f.string("name", "")
	if err != nil {
		return server.Policy{}, err
	}
	value, ok := f["value"].(map[string]any)
	if !ok {
		return server.Policy{}, badRequest("operator policy %s: value must be an object", name)
	}
	return policyFromJSON(value, vhost, name)
}
