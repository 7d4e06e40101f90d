package integration

// AMQPS, SASL EXTERNAL, certificate reload and management over HTTPS, with certificates made by
// the test (an ECDSA CA, server and client certificates in t.TempDir()).

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	wire "github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
)

// testPKI is a throwaway certificate authority.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	pool   *x509.CertPool
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Warren Test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate signed by the CA: a server certificate for 127.0.0.1 and localhost,
// or a client certificate. It writes <name>.pem and <name>-key.pem and returns their paths and the
// pair for a client's tls.Config.
func (p *testPKI) issue(t testing.TB, name string, serial int64, subject pkix.Name, isServer bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isServer {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// tlsBroker is an in-process broker serving AMQPS only.
type tlsBroker struct {
	broker
	TLS *server.TLS
}

// startTLSBroker starts a broker on a TLS listener on 127.0.0.1:0 with the given files. Its URL is
// amqps://guest:guest@127.0.0.1:port/.
func startTLSBroker(t *testing.T, files server.TLSFiles, opts ...func(*server.Options)) tlsBroker {
	t.Helper()
	if externalURL != "" {
		t.Skip("needs an in-process broker with TLS")
	}
	cfg, err := server.LoadTLS(files)
	if err != nil {
		t.Fatalf("LoadTLS: %v", err)
	}
	tb := testbroker.StartTLS(t, cfg.Config(), opts...)
	return tlsBroker{broker: broker{URL: tb.URL, Addr: tb.Addr, Srv: tb.Srv}, TLS: cfg}
}

// serverFiles issues a server certificate and returns the files for LoadTLS.
func (p *testPKI) serverFiles(t testing.TB, serial int64) server.TLSFiles {
	cert, key, _ := p.issue(t, "server", serial, pkix.Name{CommonName: "localhost"}, true)
	return server.TLSFiles{CertFile: cert, KeyFile: key, CAFile: p.caFile}
}

func dialTLS(url string, cfg *tls.Config, sasl ...amqp.Authentication) (*amqp.Connection, error) {
	return amqp.DialConfig(url, amqp.Config{TLSClientConfig: cfg, SASL: sasl, Dial: amqp.DefaultDial(amqpTimeout)})
}

// An amqp091-go client publishes and consumes over TLS 1.2+ with the server's CA, as with RabbitMQ.
func TestTLSPublishConsume(t *testing.T) {
	pki := newTestPKI(t)
	b := startTLSBroker(t, pki.serverFiles(t, 10))
	conn, err := amqp.DialTLS(b.URL, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatalf("DialTLS: %v", err)
	}
	defer conn.Close()
	if st := conn.ConnectionState(); st.Version < tls.VersionTLS12 || !st.HandshakeComplete {
		t.Fatalf("TLS state: version %x, complete %v", st.Version, st.HandshakeComplete)
	}
	ch := amqpConfirmChannel(t, conn)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "", q.Name, "over tls")
	d := amqpGet(t, ch, q.Name, true)
	if string(d.Body) != "over tls" {
		t.Fatalf("got %q", d.Body)
	}
	// Plain AMQP on the TLS port is refused by the TLS layer, not read as a protocol header.
	raw, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("AMQP\x00\x00\x09\x01"))
	raw.SetReadDeadline(time.Now().Add(amqpTimeout))
	buf := make([]byte, 64)
	n, _ := raw.Read(buf)
	if n >= 4 && string(buf[:4]) == "AMQP" {
		t.Fatalf("the TLS port answered a plain protocol header: %q", buf[:n])
	}
	wait.For(t, amqpTimeout, "the failed TLS handshake to be counted", func() bool { return b.Srv.TLSHandshakeFailures() >= 1 })
}

// TLS 1.1 and older are refused in the handshake (TLS 1.2 is the minimum) and counted.
func TestTLSOldVersionRefused(t *testing.T) {
	pki := newTestPKI(t)
	b := startTLSBroker(t, pki.serverFiles(t, 11))
	c, err := tls.Dial("tcp", b.Addr, &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	wait.For(t, amqpTimeout, "the failed TLS handshake to be counted", func() bool { return b.Srv.TLSHandshakeFailures() == 1 })
	// A stalled client (TCP connected, no ClientHello) is dropped at the handshake timeout.
	b2 := startTLSBroker(t, pki.serverFiles(t, 12), func(o *server.Options) { o.HandshakeTimeout = 200 * time.Millisecond })
	raw, err := net.Dial("tcp", b2.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetReadDeadline(time.Now().Add(amqpTimeout))
	if _, err := raw.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a silent TLS client was not dropped: %v", err)
	}
	wait.For(t, amqpTimeout, "the timed-out TLS handshake to be counted", func() bool { return b2.Srv.TLSHandshakeFailures() == 1 })
}

// With verify_peer and fail_if_no_peer_cert, a client without a certificate (or with one from
// another CA) is refused in the TLS handshake; one with a certificate from the CA gets in.
func TestTLSFailIfNoPeerCert(t *testing.T) {
	pki := newTestPKI(t)
	files := pki.serverFiles(t, 20)
	files.VerifyPeer, files.FailIfNoPeerCert = true, true
	b := startTLSBroker(t, files)
	_, _, client := pki.issue(t, "client", 21, pkix.Name{CommonName: "app"}, false)
	other := newTestPKI(t)
	_, _, stranger := other.issue(t, "stranger", 22, pkix.Name{CommonName: "app"}, false)

	if conn, err := dialTLS(b.URL, &tls.Config{RootCAs: pki.pool}); err == nil {
		conn.Close()
		t.Fatal("connected without a client certificate")
	}
	if conn, err := dialTLS(b.URL, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{stranger}}); err == nil {
		conn.Close()
		t.Fatal("connected with a certificate from an unknown CA")
	}
	conn, err := dialTLS(b.URL, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{client}})
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	conn.Close()
	wait.For(t, amqpTimeout, "the refused handshakes to be counted", func() bool { return b.Srv.TLSHandshakeFailures() == 2 })
}

// externalAuth is SASL EXTERNAL as amqp091-go sends it.
var externalAuth = &amqp.ExternalAuth{}

// SASL EXTERNAL logs in as the user the verified client certificate names: its subject DN in
// RabbitMQ's form by default, its CN with ssl_cert_login_from = common_name. connection.start
// offers EXTERNAL first on TLS connections, as RabbitMQ with rabbitmq_auth_mechanism_ssl.
func TestTLSExternalAuth(t *testing.T) {
	pki := newTestPKI(t)
	files := pki.serverFiles(t, 30)
	files.VerifyPeer = true // certificates optional: password logins still work
	subject := pkix.Name{CommonName: "app1", Organization: []string{"Warren, Test"}, Country: []string{"NL"}}
	_, _, client := pki.issue(t, "client", 31, subject, false)
	const dn = `CN=app1,O=Warren\, Test,C=NL`

	for _, tc := range []struct{ from, user string }{
		{"", dn},
		{server.CertLoginCommonName, "app1"},
	} {
		t.Run("from="+tc.from, func(t *testing.T) {
			b := startTLSBroker(t, files, func(o *server.Options) { o.SSLCertLoginFrom = tc.from })
			if _, err := b.Srv.PutUser(server.UserSpec{Name: tc.user, Tags: []string{"management"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Srv.PutPermission(server.Permission{User: tc.user, Vhost: "/", Configure: ".*", Write: ".*", Read: ".*"}); err != nil {
				t.Fatal(err)
			}
			withCert := &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{client}}
			conn, err := dialTLS(b.URL, withCert, externalAuth)
			if err != nil {
				t.Fatalf("EXTERNAL: %v", err)
			}
			defer conn.Close()
			ch := amqpChannel(t, conn)
			if _, err := ch.QueueDeclare("", false, true, true, false, nil); err != nil {
				t.Fatalf("declare as %s: %v", tc.user, err)
			}
			var found bool
			for _, ci := range b.Srv.Connections() {
				if ci.User == tc.user && ci.AuthMechanism == "EXTERNAL" {
					found = true
					if ci.TLS == nil || ci.TLS.PeerCertSubject != dn || ci.TLS.PeerCertIssuer != "CN=Warren Test CA" || !strings.HasPrefix(ci.TLS.Protocol, "tlsv1.") {
						t.Fatalf("connection TLS info %+v", ci.TLS)
					}
				}
			}
			if !found {
				t.Fatalf("no EXTERNAL connection of %q in %+v", tc.user, b.Srv.Connections())
			}
			// PLAIN still works on the same listener, with or without a certificate.
			c2, err := dialTLS(b.URL, withCert)
			if err != nil {
				t.Fatalf("PLAIN with a certificate: %v", err)
			}
			c2.Close()
		})
	}
}

// EXTERNAL is refused with 403 ACCESS_REFUSED for a certificate naming no user, and for a client
// without a certificate; on plain TCP it is not offered at all.
func TestTLSExternalRefused(t *testing.T) {
	pki := newTestPKI(t)
	files := pki.serverFiles(t, 40)
	files.VerifyPeer = true
	b := startTLSBroker(t, files, func(o *server.Options) { o.SSLCertLoginFrom = server.CertLoginCommonName })
	_, _, nobody := pki.issue(t, "nobody", 41, pkix.Name{CommonName: "nobody"}, false)

	_, err := dialTLS(b.URL, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{nobody}}, externalAuth)
	amqpWantError(t, err, amqp.AccessRefused, "")
	_, err = dialTLS(b.URL, &tls.Config{RootCAs: pki.pool}, externalAuth)
	amqpWantError(t, err, amqp.AccessRefused, "")

	// The mechanisms connection.start offers: EXTERNAL first on TLS, as RabbitMQ; not on TCP.
	if got := startMechanisms(t, func() (net.Conn, error) { return tls.Dial("tcp", b.Addr, &tls.Config{RootCAs: pki.pool}) }); got != "EXTERNAL AMQPLAIN PLAIN" {
		t.Fatalf("TLS mechanisms %q", got)
	}
	plain := startBroker(t)
	if got := startMechanisms(t, func() (net.Conn, error) { return net.Dial("tcp", plain.Addr) }); got != "AMQPLAIN PLAIN" {
		t.Fatalf("TCP mechanisms %q", got)
	}
	_, err = amqp.DialConfig(plain.URL, amqp.Config{SASL: []amqp.Authentication{externalAuth}})
	if err == nil {
		t.Fatal("EXTERNAL accepted on plain TCP")
	}
}

// startMechanisms sends the protocol header and returns connection.start's mechanisms.
func startMechanisms(t *testing.T, dial func() (net.Conn, error)) string {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(amqpTimeout))
	if _, err := c.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		t.Fatal(err)
	}
	f, err := wire.NewFrameReader(bufio.NewReader(c)).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.DecodeMethod(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	start, ok := m.(*wire.ConnectionStart)
	if !ok {
		t.Fatalf("got %s, want connection.start", m.Name())
	}
	return start.Mechanisms
}

// Reload picks up a new server certificate for new connections; established ones keep theirs; a
// reload from a broken file fails and keeps the certificate in use.
func TestTLSReload(t *testing.T) {
	pki := newTestPKI(t)
	files := pki.serverFiles(t, 100)
	b := startTLSBroker(t, files)
	serial := func(c *amqp.Connection) int64 { return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64() }

	old, err := dialTLS(b.URL, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if s := serial(old); s != 100 {
		t.Fatalf("serial %d, want 100", s)
	}
	pki.issue(t, "server", 200, pkix.Name{CommonName: "localhost"}, true) // same files, new contents
	if err := b.TLS.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	c2, err := dialTLS(b.URL, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if s := serial(c2); s != 200 {
		t.Fatalf("after Reload: serial %d, want 200", s)
	}
	amqpAssertAlive(t, old)

	if err := os.WriteFile(files.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = b.TLS.Reload()
	if err == nil || !strings.Contains(err.Error(), files.KeyFile) {
		t.Fatalf("Reload of a broken key: %v, want an error naming %s", err, files.KeyFile)
	}
	c3, err := dialTLS(b.URL, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if s := serial(c3); s != 200 {
		t.Fatalf("after a failed Reload: serial %d, want 200", s)
	}
}

// The management API over HTTPS with the same certificates answers /api/overview with basic auth,
// and 401 without it.
func TestTLSManagementHTTPS(t *testing.T) {
	pki := newTestPKI(t)
	b := startTLSBroker(t, pki.serverFiles(t, 50))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: management.NewHandler(b.Srv, nil), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(tls.NewListener(ln, b.TLS.Config())) }()
	defer func() {
		hs.Close()
		<-done
	}()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: amqpTimeout}
	url := "https://" + ln.Addr().String() + "/api/overview"
	for _, auth := range []bool{true, false} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth {
			req.SetBasicAuth("guest", "guest")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusOK
		if !auth {
			want = http.StatusUnauthorized
		}
		if resp.StatusCode != want || resp.TLS == nil {
			t.Fatalf("auth=%v: status %d (want %d), TLS %v", auth, resp.StatusCode, want, resp.TLS != nil)
		}
	}
}
