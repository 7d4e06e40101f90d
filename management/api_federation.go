package management

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/federation"
)

// The federation links' status, as rabbitmq_federation_management serves it: monitoring users
// see the links of the vhosts they can reach.
func (a *api) federationRoutes(r *mux.Router) {
	a.handle(r, "/api/federation-links", resource{http.MethodGet: {level: lvlMonitoring, fn: federationLinks}})
	a.handle(r, "/api/federation-links/{vhost}", resource{http.MethodGet: {level: lvlMonitoring, vhost: true, fn: federationLinks}})
}

func federationLinks(c *call) error {
	match := c.vhostFilter()
	out := []any{}
	for _, l := range c.a.b.FederationLinks(c.vars["vhost"]) {
		if match != nil && !match(l.Vhost) {
			continue
		}
		out = append(out, federationLinkJSON(c.a.b.NodeName(), l))
	}
	return c.list(out)
}

func federationLinkJSON(node string, l federation.LinkStatus) map[string]any {
	m := map[string]any{
		"node": node, "type": l.Type, "vhost": l.Vhost, "upstream": l.Upstream, "id": l.ID,
		"status": l.Status, "uri": l.URI, "timestamp": l.Timestamp.Format("2006-01-02 15:04:05"),
	}
	if l.Type == federation.TypeExchange {
		m["exchange"], m["upstream_exchange"] = l.Name, l.UpstreamName
	} else {
		m["queue"], m["upstream_queue"] = l.Name, l.UpstreamName
		if l.ConsumerTag != "" {
			m["consumer_tag"] = l.ConsumerTag
		}
	}
	switch l.Status {
	case federation.StatusRunning:
		m["local_connection"] = l.LocalConnection
	case federation.StatusError:
		m["error"] = l.Error
	}
	return m
}
