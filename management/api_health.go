package management

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// The health checks RabbitMQ 3.10 serves under /api/health/checks/ beyond alarms, local-alarms
// and virtual-hosts (api_node.go): 200 {"status":"ok",...} or 503 {"status":"failed",...} with
// RabbitMQ's bodies; a malformed path segment is 400.

func (a *api) healthRoutes(r *mux.Router) {
	a.handle(r, "/api/health/checks/certificate-expiration/{within}/{unit}", resource{http.MethodGet: {fn: healthCertificateExpiration}})
	a.handle(r, "/api/health/checks/port-listener/{port}", resource{http.MethodGet: {fn: healthPortListener}})
	a.handle(r, "/api/health/checks/protocol-listener/{protocol}", resource{http.MethodGet: {fn: healthProtocolListener}})
	// Warren has no mirrored classic queues: stopping a node never loses a mirror's sync, which
	// RabbitMQ answers for a single node cluster as below.
	a.handle(r, "/api/health/checks/node-is-mirror-sync-critical", resource{http.MethodGet: {fn: healthSingleNode}})
	a.handle(r, "/api/health/checks/node-is-quorum-critical", resource{http.MethodGet: {fn: healthQuorumCritical}})
}

// healthQuorumCritical is RabbitMQ 3.10's node-is-quorum-critical: on a single node "single node
// cluster"; in a cluster 200 {"status":"ok"} unless some quorum queue with a member here has no
// more online members than a bare majority: then 503 with those queues.
func healthQuorumCritical(c *call) error {
	single, qs := c.a.b.QuorumCritical()
	if single {
		return healthSingleNode(c)
	}
	if len(qs) == 0 {
		return c.ok(map[string]any{"status": "ok"})
	}
	list := make([]map[string]any, 0, len(qs))
	for _, q := range qs {
		list = append(list, map[string]any{"readable_name": fmt.Sprintf("queue '%s' in vhost '%s'", q.Name, q.Vhost),
			"name": q.Name, "virtual_host": q.Vhost, "type": "quorum"})
	}
	return healthFailed(c, map[string]any{"reason": "There are quorum queues that would lose their quorum if the target node is shut down",
		"queues": list})
}

func healthSingleNode(c *call) error {
	return c.ok(map[string]any{"status": "ok", "reason": "single node cluster"})
}

// healthFailed answers 503 with body, as RabbitMQ's failing health checks.
func healthFailed(c *call, body map[string]any) error {
	body["status"] = "failed"
	writeJSON(c.w, http.StatusServiceUnavailable, body)
	return nil
}

// listeners are the node's listeners (server.Listener), and the one the request came in on if the
// broker does not list it (a handler served by a program that did not add its listener).
func (c *call) listeners() []server.Listener {
	ls := c.a.b.AllListeners()
	la, ok := c.r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return ls
	}
	// By port: a listener on every interface ([::]:15672) gets requests on a concrete address.
	self := server.Listener{Addr: la}
	for _, l := range ls {
		if listenerPort(l) == listenerPort(self) {
			return ls
		}
	}
	proto := server.ProtocolHTTP
	if c.r.TLS != nil {
		proto = server.ProtocolHTTPS
	}
	return append(ls, server.Listener{Protocol: proto, Addr: la})
}

func listenerPort(l server.Listener) int {
	if ta, ok := l.Addr.(*net.TCPAddr); ok {
		return ta.Port
	}
	_, p, _ := net.SplitHostPort(l.Addr.String())
	n, _ := strconv.Atoi(p)
	return n
}

func healthPortListener(c *call) error {
	port, err := strconv.ParseInt(c.vars["port"], 10, 64)
	if err != nil {
		return badRequest("Invalid port")
	}
	ports := []int{}
	for _, l := range c.listeners() {
		if int64(listenerPort(l)) == port {
			return c.ok(map[string]any{"status": "ok", "port": port})
		}
		ports = append(ports, listenerPort(l))
	}
	return healthFailed(c, map[string]any{"reason": "No active listener", "missing": port, "ports": ports})
}

// protocolAliases are the other names RabbitMQ's protocol-listener check accepts for a protocol
// (rabbit_mgmt_wm_health_check_protocol_listener:normalize_protocol); any other name is looked
// up as given, lower-cased.
var protocolAliases = map[string]string{
	"amqp091": "amqp", "amqp0.9.1": "amqp", "amqp0-9-1": "amqp", "amqp0_9_1": "amqp",
	"amqp10": "amqp", "amqp1.0": "amqp", "amqp1-0": "amqp", "amqp1_0": "amqp",
	"amqps":   "amqp/ssl",
	"mqtt3.1": "mqtt", "mqtt3.1.1": "mqtt", "mqtt31": "mqtt", "mqtt311": "mqtt", "mqtt3_1": "mqtt", "mqtt3_1_1": "mqtt",
	"mqtts": "mqtt/ssl", "mqtt+tls": "mqtt/ssl", "mqtt+ssl": "mqtt/ssl",
	"stomp1.0": "stomp", "stomp1.1": "stomp", "stomp1.2": "stomp", "stomp10": "stomp", "stomp11": "stomp",
	"stomp12": "stomp", "stomp1_0": "stomp", "stomp1_1": "stomp", "stomp1_2": "stomp",
	"stomps": "stomp/ssl", "stomp+tls": "stomp/ssl", "stomp+ssl": "stomp/ssl",
	"http1": "http", "http1.1": "http", "http_api": "http", "management": "http", "management_ui": "http", "ui": "http",
	"cli": "clustering", "distribution": "clustering",
	"webmqtt": "http/web-mqtt", "web-mqtt": "http/web-mqtt", "web_mqtt": "http/web-mqtt",
	"webmqtt/tls": "https/web-mqtt", "web-mqtt/tls": "https/web-mqtt", "webmqtt/ssl": "https/web-mqtt",
	"web-mqtt/ssl": "https/web-mqtt", "webmqtt+tls": "https/web-mqtt", "web-mqtt+tls": "https/web-mqtt",
	"webmqtt+ssl": "https/web-mqtt", "web-mqtt+ssl": "https/web-mqtt",
	"webstomp": "http/web-stomp", "web-stomp": "http/web-stomp", "web_stomp": "http/web-stomp",
	"webstomp/tls": "https/web-stomp", "web-stomp/tls": "https/web-stomp", "webstomp/ssl": "https/web-stomp",
	"web-stomp/ssl": "https/web-stomp", "webstomp+tls": "https/web-stomp", "web-stomp+tls": "https/web-stomp",
	"webstomp+ssl": "https/web-stomp", "web-stomp+ssl": "https/web-stomp",
}

func healthProtocolListener(c *call) error {
	proto := strings.ToLower(c.vars["protocol"])
	if p, ok := protocolAliases[proto]; ok {
		proto = p
	}
	protocols := []string{}
	for _, l := range c.listeners() {
		if l.Protocol == proto {
			return c.ok(map[string]any{"status": "ok", "protocol": proto})
		}
		protocols = append(protocols, l.Protocol)
	}
	return healthFailed(c, map[string]any{"reason": "No active listener", "missing": proto, "protocols": protocols})
}

// Seconds per unit of the certificate-expiration check, as RabbitMQ counts them (a month is a
// twelfth of a 365-day year).
const daySeconds = 86400

var expiryUnits = map[string]float64{
	"days": daySeconds, "weeks": 7 * daySeconds, "months": daySeconds * 365.0 / 12, "years": 365 * daySeconds,
}

// healthCertificateExpiration fails if a certificate of a TLS listener (in its certificate file
// or its CA file) expires within the given time, or is not valid yet: as RabbitMQ, it reads the
// listeners' files at each check, so it sees a certificate replaced on disk but not reloaded yet.
func healthCertificateExpiration(c *call) error {
	within, err := strconv.ParseInt(c.vars["within"], 10, 64)
	if err != nil {
		return badRequest("Invalid expiration value.")
	}
	perUnit, ok := expiryUnits[strings.ToLower(c.vars["unit"])]
	if !ok {
		return badRequest("Time unit not recognised. Supported units: days, weeks, months, years.")
	}
	now := time.Now()
	deadline := now.Add(time.Duration(float64(within) * perUnit * float64(time.Second)))
	var expiring []any
	for _, l := range c.listeners() {
		if l.Files.CertFile == "" && l.Files.CAFile == "" {
			continue
		}
		cert, ca := expiringCerts(l.Files.CertFile, now, deadline), expiringCerts(l.Files.CAFile, now, deadline)
		if len(cert) == 0 && len(ca) == 0 {
			continue
		}
		host, _, _ := net.SplitHostPort(l.Addr.String())
		if host == "" || host == "0.0.0.0" {
			host = "::"
		}
		expiring = append(expiring, map[string]any{
			"node": c.a.b.NodeName(), "protocol": l.Protocol, "interface": host, "port": listenerPort(l),
			"certfile": l.Files.CertFile, "cacertfile": l.Files.CAFile,
			"certfile_expires_on": nonNil(cert), "cacertfile_expires_on": nonNil(ca),
		})
	}
	if len(expiring) == 0 {
		return c.ok(map[string]any{"status": "ok"})
	}
	return healthFailed(c, map[string]any{"reason": "Certificates expiring", "expired": expiring})
}

func nonNil(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// expiringCerts lists, for the PEM file path (none if ""), the expiry dates (RabbitMQ's
// "2026-12-01 0:00:00" form, UTC) of its certificates that expire before deadline, and an
// {"error": ...} entry for a certificate not valid yet, a file without certificates or a file that
// cannot be read.
func expiringCerts(path string, now, deadline time.Time) []any {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return []any{map[string]any{"error": fmt.Sprintf("reading the certificate file: %v", err)}}
	}
	var out []any
	entries := 0
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			// A key kept in the same file is not a certificate that expires. (RabbitMQ reports
			// such an entry as an error, so a combined file always fails its check.)
			continue
		}
		entries++
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			out = append(out, map[string]any{"error": fmt.Sprintf("parsing a certificate: %v", err)})
			continue
		}
		switch {
		case cert.NotBefore.After(now):
			out = append(out, map[string]any{"error": "Certificate is not yet valid"})
		case cert.NotAfter.Before(deadline):
			t := cert.NotAfter.UTC()
			out = append(out, fmt.Sprintf("%d-%02d-%02d %d:%02d:%02d", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()))
		}
	}
	if entries == 0 {
		return []any{map[string]any{"error": "The certificate file provided does not contain any PEM entry."}}
	}
	return out
}
