// Package management serves Warren's HTTP API in RabbitMQ's shapes. For now it answers the
// overview and a health check; the full API is built on the Broker interface it declares.
package management

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/warrenmq/warren/server"
)

// Broker is what the management API needs from the broker.
type Broker interface {
	// Overview returns the figures /api/overview reports.
	Overview() server.Overview
}

// NewHandler returns the management HTTP handler.
func NewHandler(b Broker, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/overview", func(w http.ResponseWriter, r *http.Request) {
		o := b.Overview()
		writeJSON(w, log, map[string]any{"product_name": "Warren", "product_version": server.Version,
			"object_totals": map[string]int{"connections": o.Connections, "queues": o.Queues, "exchanges": o.Exchanges}})
	})
	mux.HandleFunc("GET /api/health/checks/alarms", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, log, map[string]any{"status": "ok"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, log *slog.Logger, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Debug("writing response", "err", err)
	}
}
