package management

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// The stream protocol's connections, publishers and consumers, as rabbitmq_stream_management
// 3.10.8 serves them (/api/stream/...). Users who are not monitoring see their own connections'.

func (a *api) streamRoutes(r *mux.Router) {
	a.handle(r, "/api/stream/connections", resource{http.MethodGet: {fn: listStreamConnections}})
	a.handle(r, "/api/stream/connections/{vhost}", resource{http.MethodGet: {vhost: true, fn: listStreamConnections}})
	a.handle(r, "/api/stream/connections/{vhost}/{name}", resource{http.MethodGet: {vhost: true, fn: getStreamConnection}})
	a.handle(r, "/api/stream/connections/{vhost}/{name}/publishers", resource{http.MethodGet: {vhost: true, fn: listStreamPublishers}})
	a.handle(r, "/api/stream/connections/{vhost}/{name}/consumers", resource{http.MethodGet: {vhost: true, fn: listStreamConsumers}})
	a.handle(r, "/api/stream/publishers", resource{http.MethodGet: {fn: listStreamPublishers}})
	a.handle(r, "/api/stream/publishers/{vhost}", resource{http.MethodGet: {vhost: true, fn: listStreamPublishers}})
	a.handle(r, "/api/stream/consumers", resource{http.MethodGet: {fn: listStreamConsumers}})
	a.handle(r, "/api/stream/consumers/{vhost}", resource{http.MethodGet: {vhost: true, fn: listStreamConsumers}})
}

// streamConnectionJSON is connectionJSON for a stream connection: no type, no channels of its own.
func (a *api) streamConnectionJSON(ci server.ConnectionInfo, single bool) map[string]any {
	m := a.connectionJSON(ci, single)
	delete(m, "type")
	return m
}

func listStreamConnections(c *call) error {
	vh, byVhost := c.vars["vhost"]
	out := []any{}
	for _, ci := range c.a.b.StreamConnections() {
		if byVhost && ci.Vhost != vh || !c.ownsConnection(ci.User) {
			continue
		}
		out = append(out, c.a.streamConnectionJSON(ci, false))
	}
	return c.list(out)
}

func getStreamConnection(c *call) error {
	ci, err := c.a.b.StreamConnection(c.vars["vhost"], c.vars["name"])
	if err != nil || !c.ownsConnection(ci.User) {
		return server.ErrNotFound
	}
	return c.ok(c.a.streamConnectionJSON(ci, true))
}

// streamConnOwned checks the connection of a /api/stream/connections/{vhost}/{name}/... call
// (none for the listings): it must exist and be the user's, or the user must see all.
func (c *call) streamConnOwned() error {
	if c.vars["name"] == "" {
		return nil
	}
	ci, err := c.a.b.StreamConnection(c.vars["vhost"], c.vars["name"])
	if err != nil || !c.ownsConnection(ci.User) {
		return server.ErrNotFound
	}
	return nil
}

func (a *api) streamConnRefJSON(r server.StreamConnRef) map[string]any {
	return map[string]any{"name": r.Name, "node": a.b.NodeName(), "peer_host": r.PeerHost, "peer_port": r.PeerPort, "user": r.User}
}

func listStreamPublishers(c *call) error {
	if err := c.streamConnOwned(); err != nil {
		return err
	}
	vh, byVhost := c.vars["vhost"]
	pubs, err := c.a.b.StreamPublishers(vh, c.vars["name"])
	if err != nil {
		return err
	}
	out := []any{}
	for _, p := range pubs {
		if byVhost && p.Vhost != vh || !c.ownsConnection(p.Conn.User) {
			continue
		}
		out = append(out, map[string]any{
			"connection_details": c.a.streamConnRefJSON(p.Conn), "publisher_id": p.ID, "reference": p.Reference,
			"queue":     map[string]any{"name": p.Stream, "vhost": p.Vhost},
			"published": p.Published, "confirmed": p.Confirmed, "errored": p.Errored,
		})
	}
	return c.list(out)
}

func listStreamConsumers(c *call) error {
	if err := c.streamConnOwned(); err != nil {
		return err
	}
	vh, byVhost := c.vars["vhost"]
	cons, err := c.a.b.StreamConsumers(vh, c.vars["name"])
	if err != nil {
		return err
	}
	out := []any{}
	for _, s := range cons {
		if byVhost && s.Vhost != vh || !c.ownsConnection(s.Conn.User) {
			continue
		}
		props := map[string]any{}
		for k, v := range s.Properties {
			props[k] = v
		}
		out = append(out, map[string]any{
			"connection_details": c.a.streamConnRefJSON(s.Conn), "subscription_id": s.ID,
			"queue":    map[string]any{"name": s.Stream, "vhost": s.Vhost},
			"consumed": s.Consumed, "credits": s.Credits, "offset": s.Offset, "offset_lag": s.OffsetLag, "properties": props,
		})
	}
	return c.list(out)
}
