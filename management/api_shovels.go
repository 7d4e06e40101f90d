package management

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/shovel"
)

// Shovel status: /api/shovels, /api/shovels/{vhost} and /api/shovels/vhost/{vhost}/{name}[/restart],
// as RabbitMQ 3.10's rabbit_shovel_mgmt answers them: every method needs the monitoring (or
// administrator) tag; GET on one shovel lists its vhost's shovels (404 if it does not exist);
// DELETE on it deletes the shovel (its parameter), DELETE on .../restart restarts it.

// Shovels is the shovel engine, as the API needs it; *shovel.Engine implements it.
type Shovels interface {
	Statuses() []shovel.Status
	Restart(vhost, name string) error
}

var _ Shovels = (*shovel.Engine)(nil)

// Option adds to the API what is not the broker's own.
type Option func(*api)

// WithShovels serves /api/shovels from s (without it, those paths are 404, as on a RabbitMQ
// without rabbitmq_shovel_management).
func WithShovels(s Shovels) Option { return func(a *api) { a.shovels = s } }

func (a *api) shovelRoutes(r *mux.Router) {
	if a.shovels == nil {
		return
	}
	a.handle(r, "/api/shovels", resource{http.MethodGet: {level: lvlMonitoring, fn: listShovels}})
	a.handle(r, "/api/shovels/{vhost}", resource{http.MethodGet: {level: lvlMonitoring, vhost: true, fn: listShovels}})
	a.handle(r, "/api/shovels/vhost/{vhost}/{name}", resource{
		http.MethodGet:    {level: lvlMonitoring, vhost: true, fn: getShovel},
		http.MethodDelete: {level: lvlMonitoring, vhost: true, fn: deleteShovel},
	})
	a.handle(r, "/api/shovels/vhost/{vhost}/{name}/restart", resource{
		http.MethodGet:    {level: lvlMonitoring, vhost: true, fn: getShovel},
		http.MethodDelete: {level: lvlMonitoring, vhost: true, fn: restartShovel},
	})
}

func (c *call) shovelJSON(s shovel.Status) map[string]any {
	m := map[string]any{
		"node": c.a.b.NodeName(), "timestamp": s.Timestamp.Local().Format(time.DateTime),
		"name": s.Name, "vhost": s.Vhost, "type": "dynamic", "state": s.State,
	}
	if s.State == shovel.StateTerminated && s.Reason != "" {
		m["reason"] = s.Reason
	}
	if !s.Runs {
		return m
	}
	m["src_uri"], m["dest_uri"] = s.SrcURI, s.DestURI
	m["src_protocol"], m["dest_protocol"] = "amqp091", "amqp091"
	if s.SrcQueue != "" {
		m["src_queue"] = s.SrcQueue
	} else {
		m["src_exchange"], m["src_exchange_key"] = s.SrcExchange, s.SrcExchangeKey
	}
	switch {
	case s.DestQueue != "":
		m["dest_queue"] = s.DestQueue
	case s.DestExchange != "":
		m["dest_exchange"] = s.DestExchange
		if s.HasDestExchangeKey {
			m["dest_exchange_key"] = s.DestExchangeKey
		}
	}
	return m
}

// shovelsIn lists the shovels of vhost ("" with all), and reports whether name (if not "") is one.
func (c *call) shovelsIn(vhost string, all bool, name string) ([]any, bool) {
	out := []any{}
	found := false
	for _, s := range c.a.shovels.Statuses() {
		if !all && s.Vhost != vhost {
			continue
		}
		found = found || s.Name == name
		out = append(out, c.shovelJSON(s))
	}
	return out, found
}

func listShovels(c *call) error {
	vh, one := c.vars["vhost"]
	out, _ := c.shovelsIn(vh, !one, "")
	return c.list(out)
}

func getShovel(c *call) error {
	out, found := c.shovelsIn(c.vars["vhost"], false, c.vars["name"])
	if !found {
		writeNotFound(c.w)
		return nil
	}
	return c.list(out)
}

func deleteShovel(c *call) error {
	if _, found := c.shovelsIn(c.vars["vhost"], false, c.vars["name"]); !found {
		writeNotFound(c.w)
		return nil
	}
	return c.deleted(c.a.b.DeleteParameter(shovel.Component, c.vars["vhost"], c.vars["name"]))
}

func restartShovel(c *call) error {
	err := c.a.shovels.Restart(c.vars["vhost"], c.vars["name"])
	if errors.Is(err, shovel.ErrNotFound) {
		writeNotFound(c.w)
		return nil
	}
	return c.deleted(err)
}
