package management

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// The smaller resources of RabbitMQ 3.10's endpoint list that a side-by-side walk
// (walk_test.go) found missing: the deprecated /api/all-configuration, a user's connections,
// /api/auth, /api/feature-flags, and the two cluster operations a single node answers at once.

func (a *api) miscRoutes(r *mux.Router) {
	// The definitions under their pre-3.x name, which RabbitMQ still serves.
	a.handle(r, "/api/all-configuration", resource{
		http.MethodGet:  {level: lvlAdmin, fn: exportDefinitions},
		http.MethodPost: {level: lvlAdmin, fn: importDefinitions},
	})
	a.handle(r, "/api/connections/username/{user}", resource{
		http.MethodGet:    {fn: userConnections},
		http.MethodDelete: {fn: closeUserConnections},
	})
	// Before /api/users/{user}, which would take "bulk-delete" for a user's name.
	a.handle(r, "/api/users/bulk-delete", resource{http.MethodPost: {level: lvlAdmin, fn: bulkDeleteUsers}})
	a.handle(r, "/api/auth", resource{http.MethodGet: {open: true, fn: authSettings}})
	a.handle(r, "/api/feature-flags", resource{http.MethodGet: {level: lvlAdmin, fn: featureFlags}})
	// Warren is one node: there is nothing to rebalance, which RabbitMQ answers 204 for too.
	a.handle(r, "/api/rebalance/queues", resource{http.MethodPost: {level: lvlAdmin, fn: func(c *call) error { return c.noContent() }}})
	a.handle(r, "/api/vhosts/{vhost}/start/{node}", resource{http.MethodPost: {level: lvlAdmin, fn: startVhost}})
	a.handle(r, "/api/auth/attempts/{node}", resource{
		http.MethodGet:    {level: lvlMonitoring, fn: authAttempts},
		http.MethodDelete: {level: lvlMonitoring, fn: resetAuthAttempts},
	})
	// By source address and user: RabbitMQ tracks those only with track_auth_attempt_source
	// (default off); Warren does not track them, so the list is always empty.
	a.handle(r, "/api/auth/attempts/{node}/source", resource{
		http.MethodGet:    {level: lvlMonitoring, fn: authAttemptsBySource},
		http.MethodDelete: {level: lvlMonitoring, fn: authAttemptsBySource},
	})
}

func authAttempts(c *call) error {
	if c.vars["node"] != c.a.b.NodeName() {
		return server.ErrNotFound
	}
	out := []any{}
	for _, a := range c.a.b.AuthAttempts() {
		out = append(out, map[string]any{"protocol": a.Protocol, "auth_attempts": a.Succeeded + a.Failed,
			"auth_attempts_failed": a.Failed, "auth_attempts_succeeded": a.Succeeded})
	}
	return c.ok(out)
}

func resetAuthAttempts(c *call) error {
	if c.vars["node"] != c.a.b.NodeName() {
		return server.ErrNotFound
	}
	c.a.b.ResetAuthAttempts()
	return c.noContent()
}

func authAttemptsBySource(c *call) error {
	if c.vars["node"] != c.a.b.NodeName() {
		return server.ErrNotFound
	}
	if c.r.Method == http.MethodDelete {
		return c.noContent()
	}
	return c.ok([]any{})
}

// userConnections lists a user's connections in RabbitMQ's short form. A user that is neither
// administrator nor monitoring may only ask for its own (RabbitMQ's is_authorized_user).
func userConnections(c *call) error {
	user := c.vars["user"]
	if !c.ownsConnection(user) {
		c.notAuthorised("User not authorised to access object")
		return nil
	}
	out := []any{}
	for _, ci := range c.a.b.Connections() {
		if ci.User == user {
			out = append(out, map[string]any{"name": ci.Name, "vhost": ci.Vhost, "user": ci.User, "node": c.a.b.NodeName()})
		}
	}
	return c.ok(out)
}

// closeUserConnections closes every connection of the user (X-Reason as for one connection).
func closeUserConnections(c *call) error {
	user := c.vars["user"]
	if !c.ownsConnection(user) {
		c.notAuthorised("User not authorised to access object")
		return nil
	}
	reason := c.r.Header.Get("X-Reason")
	if reason == "" {
		reason = "Closed via management plugin"
	}
	for _, ci := range c.a.b.Connections() {
		if ci.User != user {
			continue
		}
		// A connection that closed meanwhile is not an error: it is gone, as asked.
		if err := c.a.b.CloseConnection(ci.Name, reason); err != nil && !errors.Is(err, server.ErrNotFound) {
			return err
		}
	}
	return c.noContent()
}

// authSettings is RabbitMQ's OAuth 2 (UAA) configuration: Warren logs users in with their
// passwords only, as RabbitMQ without the OAuth 2 plugin. As RabbitMQ's, it needs no credentials
// (a login page reads it before logging in) and names no secret.
func authSettings(c *call) error {
	return c.ok(map[string]any{"enable_uaa": false, "uaa_client_id": "", "uaa_location": ""})
}

// featureFlag is one of RabbitMQ 3.10.8's feature flags, with its state for Warren: "enabled" if
// Warren has the behaviour the flag turns on, "unavailable" (RabbitMQ's state for a flag some
// node does not support) if it does not.
type featureFlag struct{ name, desc, providedBy, state string }

var featureFlagList = []featureFlag{
	// Mirrored classic queues do not exist in Warren.
	{"classic_mirrored_queue_version", "Support setting version for classic mirrored queues", "rabbit", "unavailable"},
	// Warren counts unroutable drops (drop_unroutable) and empty basic.gets (get_empty).
	{"drop_unroutable_metric", "Count unroutable publishes to be dropped in stats", "rabbitmq_management_agent", "enabled"},
	{"empty_basic_get_metric", "Count AMQP `basic.get` on empty queues in stats", "rabbitmq_management_agent", "enabled"},
	// The default exchange's bindings are implicit: never stored, listed as RabbitMQ lists them.
	{"implicit_default_bindings", "Default bindings are now implicit, instead of being stored in the database", "rabbit", "enabled"},
	// Warren has no maintenance mode (drain, rabbitmq-upgrade).
	{"maintenance_mode_status", "Maintenance mode status", "rabbit", "unavailable"},
	// x-queue-type quorum is accepted with quorum queues' rules, on one node (no replication).
	{"quorum_queue", "Support queues of type `quorum`", "rabbit", "enabled"},
	// Streams are not built.
	{"stream_queue", "Support queues of type `stream`", "rabbit", "unavailable"},
	// Per-user connection and channel limits: see /api/user-limits.
	{"user_limits", "Configure connection and channel limits for a user", "rabbit", "enabled"},
	// Vhosts keep a description, tags and a default queue type.
	{"virtual_host_metadata", "Virtual host metadata (description, tags, etc)", "rabbit", "enabled"},
}

func featureFlags(c *call) error {
	out := make([]any, 0, len(featureFlagList))
	for _, f := range featureFlagList {
		out = append(out, map[string]any{"name": f.name, "desc": f.desc, "doc_url": "", "state": f.state,
			"stability": "stable", "provided_by": f.providedBy})
	}
	return c.ok(out)
}

// startVhost starts a vhost on a node: Warren's vhosts always run on its one node, so a request
// for an existing vhost on this node succeeds at once; errors are RabbitMQ's.
func startVhost(c *call) error {
	node := c.vars["node"]
	if node != c.a.b.NodeName() {
		return badRequest("Request to node %s failed with nodedown", node)
	}
	vh := c.vars["vhost"]
	if _, err := c.a.b.Vhost(vh); err != nil {
		return badRequest("Request to node %s failed with {no_such_vhost,<<\"%s\">>}", node, vh)
	}
	return c.noContent()
}

// bulkDeleteUsers deletes the users of {"users": [...]} in order, as RabbitMQ does: it stops at
// the first user that does not exist (400 ["no_such_user", name]), the ones before it deleted.
func bulkDeleteUsers(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	if err := f.require("users"); err != nil {
		return err
	}
	list, ok := m["users"].([]any)
	if !ok {
		return badRequest("users must be a list of user names")
	}
	names := make([]string, 0, len(list))
	for _, v := range list {
		name, ok := v.(string)
		if !ok {
			return badRequest("users must be a list of user names")
		}
		names = append(names, name)
	}
	for _, name := range names {
		if err := c.a.b.DeleteUser(name); err != nil {
			if errors.Is(err, server.ErrNotFound) {
				return badRequestTerm("no_such_user", name)
			}
			return err
		}
	}
	return c.noContent()
}
