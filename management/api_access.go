package management

import (
	"encoding/base64"
	"net/http"
	"slices"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// Users, vhosts and permissions.

func (a *api) accessRoutes(r *mux.Router) {
	a.handle(r, "/api/whoami", resource{http.MethodGet: {fn: whoami}})

	a.handle(r, "/api/users", resource{http.MethodGet: {level: lvlAdmin, fn: listUsers}})
	a.handle(r, "/api/users/without-permissions", resource{http.MethodGet: {level: lvlAdmin, fn: usersWithoutPermissions}})
	a.handle(r, "/api/users/{user}", resource{
		http.MethodGet:    {level: lvlAdmin, fn: getUser},
		http.MethodPut:    {level: lvlAdmin, fn: putUser},
		http.MethodDelete: {level: lvlAdmin, fn: deleteUser},
	})
	a.handle(r, "/api/users/{user}/permissions", resource{http.MethodGet: {level: lvlAdmin, fn: userPermissions}})

	a.handle(r, "/api/vhosts", resource{http.MethodGet: {fn: listVhosts}})
	a.handle(r, "/api/vhosts/{vhost}", resource{
		http.MethodGet:    {vhost: true, fn: getVhost},
		http.MethodPut:    {level: lvlAdmin, fn: putVhost},
		http.MethodDelete: {level: lvlAdmin, fn: deleteVhost},
	})
	a.handle(r, "/api/vhosts/{vhost}/permissions", resource{http.MethodGet: {level: lvlAdmin, vhost: true, fn: vhostPermissions}})

	a.handle(r, "/api/permissions", resource{http.MethodGet: {level: lvlAdmin, fn: listPermissions}})
	a.handle(r, "/api/permissions/{vhost}/{user}", resource{
		http.MethodGet:    {level: lvlAdmin, fn: getPermission},
		http.MethodPut:    {level: lvlAdmin, fn: putPermission},
		http.MethodDelete: {level: lvlAdmin, fn: deletePermission},
	})

	a.handle(r, "/api/topic-permissions", resource{http.MethodGet: {level: lvlAdmin, fn: listTopicPermissions}})
	a.handle(r, "/api/topic-permissions/{vhost}/{user}", resource{
		http.MethodGet:    {level: lvlAdmin, fn: getTopicPermissions},
		http.MethodPut:    {level: lvlAdmin, fn: putTopicPermission},
		http.MethodDelete: {level: lvlAdmin, fn: deleteTopicPermissions},
	})
	// One exchange's: GET lists all of the user's in the vhost, as RabbitMQ (which ignores the
	// exchange there); DELETE removes that exchange's.
	a.handle(r, "/api/topic-permissions/{vhost}/{user}/{exchange}", resource{
		http.MethodGet:    {level: lvlAdmin, fn: getTopicPermissions},
		http.MethodDelete: {level: lvlAdmin, fn: deleteTopicPermissions},
	})
	a.handle(r, "/api/users/{user}/topic-permissions", resource{http.MethodGet: {level: lvlAdmin, fn: userTopicPermissions}})
	a.handle(r, "/api/vhosts/{vhost}/topic-permissions", resource{http.MethodGet: {level: lvlAdmin, vhost: true, fn: vhostTopicPermissions}})

	a.handle(r, "/api/vhost-limits", resource{http.MethodGet: {level: lvlAdmin, fn: listVhostLimits}})
	a.handle(r, "/api/vhost-limits/{vhost}", resource{http.MethodGet: {level: lvlAdmin, vhost: true, fn: listVhostLimits}})
	a.handle(r, "/api/vhost-limits/{vhost}/{name}", resource{
		http.MethodPut:    {level: lvlAdmin, vhost: true, fn: putVhostLimit},
		http.MethodDelete: {level: lvlAdmin, vhost: true, fn: deleteVhostLimit},
	})
}

func whoami(c *call) error {
	return c.ok(map[string]any{"name": c.user.Name, "tags": tagsJSON(c.user.Tags)})
}

func tagsJSON(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

func userJSON(u server.UserInfo) map[string]any {
	return map[string]any{
		"name": u.Name, "password_hash": base64.StdEncoding.EncodeToString(u.PasswordHash),
		"hashing_algorithm": u.HashingAlgorithm, "tags": tagsJSON(u.Tags), "limits": limitsJSON(u.Limits),
	}
}

func listUsers(c *call) error {
	us := c.a.b.Users()
	out := make([]any, 0, len(us))
	for _, u := range us {
		out = append(out, userJSON(u))
	}
	return c.list(out)
}

func usersWithoutPermissions(c *call) error {
	with := map[string]bool{}
	for _, p := range c.a.b.Permissions() {
		with[p.User] = true
	}
	out := []any{}
	for _, u := range c.a.b.Users() {
		if !with[u.Name] {
			out = append(out, userJSON(u))
		}
	}
	return c.list(out)
}

func getUser(c *call) error {
	u, err := c.a.b.User(c.vars["user"])
	if err != nil {
		return err
	}
	return c.ok(userJSON(u))
}

func putUser(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	spec := server.UserSpec{Name: c.vars["user"]}
	if spec.Tags, err = f.tags("tags"); err != nil {
		return err
	}
	if _, ok := m["password"]; ok {
		pw, err := f.string("password", "")
		if err != nil {
			return err
		}
		spec.Password = &pw
	} else if _, ok := m["password_hash"]; ok {
		h, err := f.string("password_hash", "")
		if err != nil {
			return err
		}
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			return badRequestTerm("not_base64", h)
		}
		spec.PasswordHash = b
		if spec.HashingAlgorithm, err = f.string("hashing_algorithm", server.HashSHA256); err != nil {
			return err
		}
	} else if _, err := c.a.b.User(spec.Name); err != nil {
		spec.PasswordHash = []byte{} // a new user without a password cannot log in with one
	}
	if spec.Limits, err = userLimitsField(f); err != nil {
		return err
	}
	created, err := c.a.b.PutUser(spec)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteUser(c *call) error { return c.deleted(c.a.b.DeleteUser(c.vars["user"])) }

func permissionJSON(p server.Permission) map[string]any {
	return map[string]any{"user": p.User, "vhost": p.Vhost, "configure": p.Configure, "write": p.Write, "read": p.Read}
}

func permissionsJSON(ps []server.Permission, keep func(server.Permission) bool) []any {
	out := []any{}
	for _, p := range ps {
		if keep(p) {
			out = append(out, permissionJSON(p))
		}
	}
	return out
}

func listPermissions(c *call) error {
	return c.list(permissionsJSON(c.a.b.Permissions(), func(server.Permission) bool { return true }))
}

func userPermissions(c *call) error {
	name := c.vars["user"]
	if _, err := c.a.b.User(name); err != nil {
		return err
	}
	return c.list(permissionsJSON(c.a.b.Permissions(), func(p server.Permission) bool { return p.User == name }))
}

func vhostPermissions(c *call) error {
	vh := c.vars["vhost"]
	return c.list(permissionsJSON(c.a.b.Permissions(), func(p server.Permission) bool { return p.Vhost == vh }))
}

func getPermission(c *call) error {
	p, err := c.a.b.Permission(c.vars["vhost"], c.vars["user"])
	if err != nil {
		return err
	}
	return c.ok(permissionJSON(p))
}

func putPermission(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	if err := f.require("configure", "write", "read"); err != nil {
		return err
	}
	p := server.Permission{User: c.vars["user"], Vhost: c.vars["vhost"]}
	if p.Configure, err = f.string("configure", ""); err != nil {
		return err
	}
	if p.Write, err = f.string("write", ""); err != nil {
		return err
	}
	if p.Read, err = f.string("read", ""); err != nil {
		return err
	}
	created, err := c.a.b.PutPermission(p)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deletePermission(c *call) error {
	return c.deleted(c.a.b.DeletePermission(c.vars["vhost"], c.vars["user"]))
}

// --- vhosts ---

func (a *api) vhostJSON(v server.VhostInfo) map[string]any {
	tags := tagsJSON(v.Tags)
	m := map[string]any{
		"name": v.Name, "description": v.Description, "tags": tags, "default_queue_type": v.DefaultQueueType,
		"metadata":      map[string]any{"description": v.Description, "tags": tags},
		"tracing":       v.Tracing,
		"cluster_state": map[string]any{a.b.NodeName(): "running"},
	}
	st, err := a.b.VhostStats(v.Name)
	if err != nil {
		return m // deleted meanwhile
	}
	m["message_stats"] = messageStats(st.Stats, vhostStatKeys)
	putStat(m, "messages", st.Totals.Messages)
	putStat(m, "messages_ready", st.Totals.Ready)
	putStat(m, "messages_unacknowledged", st.Totals.Unacked)
	putStat(m, "recv_oct", st.RecvOct)
	putStat(m, "send_oct", st.SendOct)
	return m
}

func listVhosts(c *call) error {
	vs := c.a.b.Vhosts()
	visible := c.visible()
	out := make([]any, 0, len(vs))
	for _, v := range vs {
		if visible == nil || visible(v.Name) {
			out = append(out, c.a.vhostJSON(v))
		}
	}
	return c.list(out)
}

func getVhost(c *call) error {
	v, err := c.a.b.Vhost(c.vars["vhost"])
	if err != nil {
		return err
	}
	return c.ok(c.a.vhostJSON(v))
}

func putVhost(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	info := server.VhostInfo{Name: c.vars["vhost"]}
	if info.Description, err = f.string("description", ""); err != nil {
		return err
	}
	if info.Tags, err = f.tags("tags"); err != nil {
		return err
	}
	if info.DefaultQueueType, err = f.string("default_queue_type", ""); err != nil {
		return err
	}
	if info.Tracing, err = f.bool("tracing", false); err != nil {
		return err
	}
	if old, err := c.a.b.Vhost(info.Name); err == nil {
		// An update keeps what the body does not mention.
		if _, ok := m["description"]; !ok {
			info.Description = old.Description
		}
		if _, ok := m["tags"]; !ok {
			info.Tags = slices.Clone(old.Tags)
		}
		if _, ok := m["default_queue_type"]; !ok {
			info.DefaultQueueType = old.DefaultQueueType
		}
	}
	created, err := c.a.b.PutVhost(info, c.user.Name)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteVhost(c *call) error { return c.deleted(c.a.b.DeleteVhost(c.vars["vhost"])) }

// --- topic permissions ---

func topicPermissionJSON(p server.TopicPermission) map[string]any {
	return map[string]any{"user": p.User, "vhost": p.Vhost, "exchange": p.Exchange, "write": p.Write, "read": p.Read}
}

func (c *call) topicPermissions(keep func(server.TopicPermission) bool) error {
	out := []any{}
	for _, p := range c.a.b.TopicPermissions() {
		if keep(p) {
			out = append(out, topicPermissionJSON(p))
		}
	}
	return c.list(out)
}

func listTopicPermissions(c *call) error {
	return c.topicPermissions(func(server.TopicPermission) bool { return true })
}

func userTopicPermissions(c *call) error {
	name := c.vars["user"]
	if _, err := c.a.b.User(name); err != nil {
		return err
	}
	return c.topicPermissions(func(p server.TopicPermission) bool { return p.User == name })
}

func vhostTopicPermissions(c *call) error {
	vh := c.vars["vhost"]
	return c.topicPermissions(func(p server.TopicPermission) bool { return p.Vhost == vh })
}

// getTopicPermissions lists a user's topic permissions in a vhost; 404 if there are none, as in
// RabbitMQ.
func getTopicPermissions(c *call) error {
	vh, user := c.vars["vhost"], c.vars["user"]
	var out []any
	for _, p := range c.a.b.TopicPermissions() {
		if p.Vhost == vh && p.User == user {
			out = append(out, topicPermissionJSON(p))
		}
	}
	if len(out) == 0 {
		return server.ErrNotFound
	}
	return c.list(out)
}

func putTopicPermission(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	if err := f.require("exchange", "write", "read"); err != nil {
		return err
	}
	p := server.TopicPermission{User: c.vars["user"], Vhost: c.vars["vhost"]}
	if p.Exchange, err = f.string("exchange", ""); err != nil {
		return err
	}
	if p.Write, err = f.string("write", ""); err != nil {
		return err
	}
	if p.Read, err = f.string("read", ""); err != nil {
		return err
	}
	created, err := c.a.b.PutTopicPermission(p)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteTopicPermissions(c *call) error {
	return c.deleted(c.a.b.DeleteTopicPermissions(c.vars["vhost"], c.vars["user"], c.vars["exchange"]))
}

// --- vhost limits ---

func listVhostLimits(c *call) error {
	vh, one := c.vars["vhost"]
	out := []any{}
	for _, l := range c.a.b.AllVhostLimits() {
		if !one || l.Vhost == vh {
			out = append(out, map[string]any{"vhost": l.Vhost, "value": l.Limits})
		}
	}
	return c.list(out)
}

// putVhostLimit sets one limit from {"value": N}; RabbitMQ answers 204 whether it is new or not.
func putVhostLimit(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	if err := f.require("value"); err != nil {
		return err
	}
	name := c.vars["name"]
	v, err := f.int("value", 0)
	if err != nil {
		return badRequest("Validation failed\n\n%s should be a number, actually was %v\n", name, m["value"])
	}
	if err := c.a.b.PutVhostLimit(c.vars["vhost"], name, v); err != nil {
		return err
	}
	return c.noContent()
}

func deleteVhostLimit(c *call) error {
	return c.deleted(c.a.b.DeleteVhostLimit(c.vars["vhost"], c.vars["name"]))
}
