package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
)

// writeTestPKI writes a CA certificate and a server certificate for 127.0.0.1 signed by it, with
// the server's key, to dir.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "healthcheck test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

// warren healthcheck checks an HTTPS management listener, verifying its certificate against the
// CA file given with --cacert (or --ca), and by default against the configured CA when only
// HTTPS is on.
func TestHealthcheckHTTPS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	srv := testbroker.Start(t).Srv
	cfg, err := server.LoadTLS(server.TLSFiles{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: management.NewHandler(srv, slog.New(slog.DiscardHandler)), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(tls.NewListener(ln, cfg.Config())) }()
	defer func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("management server: %v", err)
		}
	}()
	url := "https://" + ln.Addr().String()
	check := func(lookup func(string) (string, bool), args ...string) error {
		return healthcheck(args, lookup, io.Discard, io.Discard)
	}
	if err := check(env(), "--url", url, "--cacert", caFile); err != nil {
		t.Fatalf("--cacert: %v", err)
	}
	if err := check(env(), "--url", url, "--ca", caFile); err != nil {
		t.Fatalf("--ca: %v", err)
	}
	// Without the CA, the certificate is not trusted.
	if err := check(env(), "--url", url); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("no CA: %v, want a certificate error", err)
	}
	// Another CA's file does not verify it either.
	otherCA, _, _ := writeTestPKI(t, t.TempDir())
	if err := check(env(), "--url", url, "--cacert", otherCA); err == nil {
		t.Fatal("a certificate of another CA was trusted")
	}
	if err := check(env(), "--url", url, "--cacert", filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("missing CA file: %v", err)
	}
	if err := check(env(), "--url", url, "--cacert", keyFile); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("CA file without a certificate: %v", err)
	}
	// With only HTTPS configured, the default URL is it and the default CA the configured one.
	only := env("WARREN_HTTP_ADDR", "", "WARREN_HTTPS_ADDR", ln.Addr().String(), "WARREN_TLS_CERT", certFile,
		"WARREN_TLS_KEY", keyFile, "WARREN_TLS_CA", caFile)
	o, err := parseHealthcheck(nil, only, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.url != url || o.cacert != caFile {
		t.Errorf("defaults with only HTTPS: url %q cacert %q, want %q and %q", o.url, o.cacert, url, caFile)
	}
	if err := check(only); err != nil {
		t.Errorf("defaults with only HTTPS: %v", err)
	}
}

// The TLS listeners startTLS opens are listed as RabbitMQ lists them: AMQPS as "amqp/ssl" and
// HTTPS as "https" (overview, contexts, health checks, certificate expiry), and a failed TLS
// handshake on AMQPS is counted in /metrics.
func TestTLSListenersListed(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	srv := testbroker.Start(t).Srv
	fail := make(chan error, 2)
	tl, err := startTLS(TLSConfig{AMQPSAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", MQTTSAddr: "127.0.0.1:0", WebMQTTSAddr: "127.0.0.1:0", WebSTOMPSAddr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, CACertFile: caFile},
		slog.New(slog.DiscardHandler), srv, fail, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.close()
	var amqps, https, mqtts, webMQTTS, webSTOMPS string
	// The AMQPS and MQTTS listeners are listed by their Serve goroutines.
	wait.For(t, 10*time.Second, "the amqp/ssl, https and mqtt/ssl listeners listed", func() bool {
		for _, l := range srv.AllListeners() {
			switch l.Protocol {
			case server.ProtocolAMQPS:
				amqps = l.Addr.String()
			case server.ProtocolHTTPS:
				https = l.Addr.String()
			case server.ProtocolMQTTS:
				mqtts = l.Addr.String()
			case server.ProtocolWebMQTTS:
				webMQTTS = l.Addr.String()
			case server.ProtocolWebSTOMPS:
				webSTOMPS = l.Addr.String()
			}
		}
		return amqps != "" && https != "" && mqtts != "" && webMQTTS != "" && webSTOMPS != ""
	})
	client, err := healthClient(caFile)
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseIdleConnections()
	get := func(path string, want int) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+https+path, nil)
		req.SetBasicAuth("guest", "guest")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d: %s", path, resp.StatusCode, want, b)
		}
		return string(b)
	}
	ov := get("/api/overview", 200)
	for _, want := range []string{`"protocol":"amqp/ssl"`, `"protocol":"https"`, `"protocol":"mqtt/ssl"`, `"protocol":"https/web-mqtt"`, `"protocol":"https/web-stomp"`, `"ssl":"true"`, `"certfile":"` + certFile + `"`} {
		if !strings.Contains(ov, want) {
			t.Errorf("overview has no %s: %s", want, ov)
		}
	}
	get("/api/health/checks/protocol-listener/amqps", 200)
	get("/api/health/checks/protocol-listener/https", 200)
	get("/api/health/checks/protocol-listener/web-mqtt+tls", 200)
	get("/api/health/checks/protocol-listener/web-stomp+tls", 200)
	get("/api/health/checks/certificate-expiration/1/days", 503) // the test certificates last an hour
	// A plain-TCP client on the AMQPS port fails the TLS handshake.
	c, err := net.Dial("tcp", amqps)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("AMQP\x00\x00\x09\x01"))
	io.Copy(io.Discard, c) // the broker closes it
	c.Close()
	if m := get("/metrics", 200); !strings.Contains(m, "\nwarren_tls_handshake_failures_total 1\n") {
		t.Errorf("no failed handshake counted in /metrics")
	}
}
