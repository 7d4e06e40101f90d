package management

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// writeCert writes a self-signed certificate valid from notBefore to notAfter (and its key
// after it, as a combined file holds them) to a PEM file and returns its path.
func writeCert(t *testing.T, name string, notBefore, notAfter time.Time, withKey bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if withKey {
		kd, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})...)
	}
	path := filepath.Join(t.TempDir(), name+".pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// jsonEq compares a response body with want, as JSON values.
func jsonEq(t *testing.T, what string, got []byte, want any) {
	t.Helper()
	var g any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: not JSON: %s", what, got)
	}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("%s:\n got  %s\n want %s", what, gj, wj)
	}
}

// The listener health checks answer as RabbitMQ 3.10.8 does (bodies checked live against it:
// docs/DESIGN.md, management API).
func TestHealthChecksListeners(t *testing.T) {
	e := startEnv(t, nil)
	amqpPort, httpPort := portOf(t, e.addr), portOf(t, e.api[len("http://"):])

	r := e.must(200, "GET", "/api/health/checks/port-listener/"+strconv.Itoa(amqpPort), nil)
	jsonEq(t, "port-listener amqp", r.body, map[string]any{"status": "ok", "port": amqpPort})
	e.must(200, "GET", "/api/health/checks/port-listener/"+strconv.Itoa(httpPort), nil)

	// A port nothing listens on: find one by binding and closing it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := portOf(t, ln.Addr().String())
	ln.Close()
	r = e.must(503, "GET", "/api/health/checks/port-listener/"+strconv.Itoa(closed), nil)
	jsonEq(t, "port-listener closed", r.body, map[string]any{"status": "failed", "reason": "No active listener", "missing": closed,
		"ports": []int{amqpPort, httpPort}})
	r = e.must(400, "GET", "/api/health/checks/port-listener/abc", nil)
	jsonEq(t, "port-listener abc", r.body, map[string]any{"error": "bad_request", "reason": "Invalid port"})

	for _, p := range []string{"amqp", "AMQP", "amqp091", "amqp0-9-1", "amqp10"} {
		r = e.must(200, "GET", "/api/health/checks/protocol-listener/"+p, nil)
		jsonEq(t, "protocol-listener "+p, r.body, map[string]any{"status": "ok", "protocol": "amqp"})
	}
	for _, p := range []string{"http", "management", "ui", "http1.1"} {
		r = e.must(200, "GET", "/api/health/checks/protocol-listener/"+p, nil)
		jsonEq(t, "protocol-listener "+p, r.body, map[string]any{"status": "ok", "protocol": "http"})
	}
	for p, missing := range map[string]string{"https": "https", "amqps": "amqp/ssl", "amqp%2Fssl": "amqp/ssl", "mqtt": "mqtt",
		"web-stomp": "http/web-stomp", "http%2Fprometheus": "http/prometheus"} {
		r = e.must(503, "GET", "/api/health/checks/protocol-listener/"+p, nil)
		jsonEq(t, "protocol-listener "+p, r.body, map[string]any{"status": "failed", "reason": "No active listener", "missing": missing,
			"protocols": []string{"amqp", "http"}})
	}

	for _, p := range []string{"node-is-mirror-sync-critical", "node-is-quorum-critical"} {
		r = e.must(200, "GET", "/api/health/checks/"+p, nil)
		jsonEq(t, p, r.body, map[string]any{"status": "ok", "reason": "single node cluster"})
	}
	jsonEq(t, "virtual-hosts", e.must(200, "GET", "/api/health/checks/virtual-hosts", nil).body, map[string]any{"status": "ok"})
	// A program that lists its HTTP listener on every interface: requests arrive on a concrete
	// address, and the listener is still listed once.
	e.srv.AddListener(server.Listener{Protocol: server.ProtocolHTTP, Addr: &net.TCPAddr{IP: net.IPv6unspecified, Port: httpPort}})
	var https []string
	for _, l := range e.must(200, "GET", "/api/overview", nil).obj(t)["listeners"].([]any) {
		if l := l.(map[string]any); l["protocol"] == "http" {
			https = append(https, l["ip_address"].(string))
		}
	}
	if !slices.Equal(https, []string{"::"}) {
		t.Errorf("http listeners listed: %v, want one on ::", https)
	}
	// Health checks need credentials, as every /api/ resource.
	if r := e.do("GET", "/api/health/checks/port-listener/1", "", nil); r.status != 401 {
		t.Errorf("port-listener without credentials: %d", r.status)
	}
}

// The certificate-expiration check reads the certificate and CA files of every TLS listener and
// fails for those expiring within the period (or not valid yet), with RabbitMQ's body.
func TestHealthCheckCertificateExpiration(t *testing.T) {
	e := startEnv(t, nil)
	jsonEq(t, "no TLS listener", e.must(200, "GET", "/api/health/checks/certificate-expiration/1/months", nil).body, map[string]any{"status": "ok"})
	for path, reason := range map[string]string{
		"1/fortnights": "Time unit not recognised. Supported units: days, weeks, months, years.",
		"x/days":       "Invalid expiration value.",
		"x/fortnights": "Invalid expiration value.",
		"1.5/days":     "Invalid expiration value.",
	} {
		r := e.must(400, "GET", "/api/health/checks/certificate-expiration/"+path, nil)
		jsonEq(t, path, r.body, map[string]any{"error": "bad_request", "reason": reason})
	}

	now := time.Now()
	expiry := now.Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	cert := writeCert(t, "server", now.Add(-time.Hour), expiry, true)
	ca := writeCert(t, "ca", now.Add(-time.Hour), now.Add(3*365*24*time.Hour), false)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5671}
	remove := e.srv.AddListener(server.Listener{Protocol: server.ProtocolAMQPS, Addr: addr, Files: server.TLSFiles{CertFile: cert, CAFile: ca}})
	for _, ok := range []string{"1/weeks", "9/days", "-1/years", "0/DAYS"} {
		e.must(200, "GET", "/api/health/checks/certificate-expiration/"+ok, nil)
	}
	expired := map[string]any{
		"node": e.srv.NodeName(), "protocol": "amqp/ssl", "interface": "127.0.0.1", "port": 5671, "certfile": cert, "cacertfile": ca,
		"certfile_expires_on": []string{fmt.Sprintf("%d-%02d-%02d %d:%02d:%02d", expiry.Year(), expiry.Month(), expiry.Day(),
			expiry.Hour(), expiry.Minute(), expiry.Second())},
		"cacertfile_expires_on": []string{},
	}
	for _, failing := range []string{"2/weeks", "11/days", "1/months", "1/years"} {
		r := e.must(503, "GET", "/api/health/checks/certificate-expiration/"+failing, nil)
		jsonEq(t, failing, r.body, map[string]any{"status": "failed", "reason": "Certificates expiring", "expired": []any{expired}})
	}
	// The listener shows in the overview and the other checks too.
	ov := e.must(200, "GET", "/api/overview", nil).obj(t)
	var protos []string
	for _, l := range ov["listeners"].([]any) {
		protos = append(protos, l.(map[string]any)["protocol"].(string))
	}
	if !slices.Equal(protos, []string{"amqp", "amqp/ssl", "http"}) {
		t.Errorf("overview listeners: %v", protos)
	}
	e.must(200, "GET", "/api/health/checks/protocol-listener/amqps", nil)
	e.must(200, "GET", "/api/health/checks/port-listener/5671", nil)
	remove()
	e.must(200, "GET", "/api/health/checks/certificate-expiration/1/years", nil)

	// A certificate not valid yet, and a file without a certificate, fail at once.
	future := writeCert(t, "future", now.Add(24*time.Hour), now.Add(48*time.Hour), false)
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("no PEM here"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv.AddListener(server.Listener{Protocol: server.ProtocolHTTPS, Addr: addr, Files: server.TLSFiles{CertFile: future, CAFile: empty}})
	r := e.must(503, "GET", "/api/health/checks/certificate-expiration/1/days", nil)
	got := r.obj(t)["expired"].([]any)[0].(map[string]any)
	jsonEq(t, "not yet valid", mustJSON(t, got["certfile_expires_on"]), []any{map[string]any{"error": "Certificate is not yet valid"}})
	jsonEq(t, "no PEM entry", mustJSON(t, got["cacertfile_expires_on"]),
		[]any{map[string]any{"error": "The certificate file provided does not contain any PEM entry."}})
}

// /api/nodes has every field RabbitMQ 3.10.8's has (nodes.json, node.json), the Erlang-only ones
// included, with the sample's JSON types.
func TestNodesHaveEveryField(t *testing.T) {
	e := startEnv(t, nil)
	fields := loadSampleFields(t)
	e.must(201, "PUT", "/api/queues/%2F/mem.q", map[string]any{"durable": false})
	e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{"properties": map[string]any{}, "routing_key": "mem.q",
		"payload": "some bytes held by the queue", "payload_encoding": "string"})
	for sample, path := range map[string]string{"nodes.json": "/api/nodes", "node.json": "/api/nodes/" + e.srv.NodeName(),
		"node-memory.json": "/api/nodes/" + e.srv.NodeName() + "?memory=true"} {
		got := flatten(e.must(200, "GET", path, nil).json(t))
		var missing []string
		for p, types := range fields[sample] {
			// log_files: Warren logs to the logger it is given, and has none; memory: only with
			// ?memory=true (node-memory.json, checked in TestFieldsMatchRabbitMQ).
			if skipPrefixes("[].log_files", "log_files", "[].config_files", "config_files")(p) {
				continue
			}
			gt, ok := got[p]
			if !ok {
				missing = append(missing, p)
				continue
			}
			if !slices.ContainsFunc(gt, func(x string) bool { return slices.Contains(types, x) }) {
				t.Errorf("%s %s: type %v, RabbitMQ's %v", sample, p, gt, types)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s: fields missing: %v", sample, missing)
		}
	}
	n := e.must(200, "GET", "/api/nodes/"+e.srv.NodeName()+"?memory=true", nil).obj(t)
	if pt, _ := n["proc_total"].(json.Number).Int64(); pt <= 0 {
		t.Errorf("proc_total %v", n["proc_total"])
	}
	// The memory breakdown's measured categories.
	mem := n["memory"].(map[string]any)
	for _, k := range []string{"queue_procs", "other_proc", "other_system", "code"} {
		if v, _ := mem[k].(json.Number).Int64(); v <= 0 {
			t.Errorf("memory.%s = %v", k, mem[k])
		}
	}
}
