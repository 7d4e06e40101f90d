package integration

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/warrenmq/warren/internal/wait"
)

var tlsReadyRe = regexp.MustCompile(`msg="TLS listeners started".* amqps=(\S+) https=(\S+)`)

// The binary's TLS flags: AMQPS and HTTPS listeners with the same certificates; SIGHUP reloads
// the certificates for new connections, and a failed reload (a broken key file) is logged and keeps
// the old ones; a certificate without a TLS listener is refused at start-up.
func TestBinaryTLSFlagsAndSIGHUP(t *testing.T) {
	persistSkipExternal(t)
	if testing.Short() {
		t.Skip("-short: builds and runs the broker binary")
	}
	pki := newTestPKI(t)
	files := pki.serverFiles(t, 300)
	p := startProc(t, t.TempDir(), "--amqps-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0",
		"--tls-cert", files.CertFile, "--tls-key", files.KeyFile, "--tls-ca", files.CAFile, "--tls-verify-peer")
	m := tlsReadyRe.FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("no TLS listeners line:\n%s", p.log)
	}
	amqpsURL := "amqps://guest:guest@" + m[1] + "/"
	serial := func() int64 {
		t.Helper()
		c, err := dialTLS(amqpsURL, &tls.Config{RootCAs: pki.pool})
		if err != nil {
			t.Fatalf("dial %s: %v", amqpsURL, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 300 {
		t.Fatalf("serial %d, want 300", s)
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+m[2]+"/api/overview", nil)
	req.SetBasicAuth("guest", "guest")
	res, err := (&http.Client{Transport: tr, Timeout: amqpTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTPS /api/overview: %d", res.StatusCode)
	}

	sighup := func(want string) {
		t.Helper()
		before := strings.Count(p.log.String(), want)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		wait.For(t, amqpTimeout, want, func() bool { return strings.Count(p.log.String(), want) > before })
	}
	pki.issue(t, "server", 301, pkix.Name{CommonName: "localhost"}, true)
	sighup("TLS certificates reloaded")
	if s := serial(); s != 301 {
		t.Fatalf("after SIGHUP: serial %d, want 301", s)
	}
	if err := os.WriteFile(files.KeyFile, []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup("step=tls") // "reload failed; keeping the previous settings"
	if s := serial(); s != 301 {
		t.Fatalf("after a failed reload: serial %d, want 301", s)
	}

	code, out := runProcUntilExit(t, "--amqp-addr", "127.0.0.1:0", "--http-addr", "", "--data-dir", t.TempDir(), "--tls-cert", files.CertFile)
	if code == 0 || !strings.Contains(out, "without --amqps-addr, --https-addr, --mqtts-addr, --stomps-addr, --streams-addr, --web-mqtts-addr or --web-stomps-addr") {
		t.Fatalf("--tls-cert alone: exit %d\n%s", code, out)
	}
	code, out = runProcUntilExit(t, "--amqp-addr", "127.0.0.1:0", "--http-addr", "", "--data-dir", t.TempDir(),
		"--amqps-addr", "127.0.0.1:0", "--tls-cert", files.CertFile, "--tls-key", files.KeyFile)
	if code == 0 || !strings.Contains(out, files.KeyFile) {
		t.Fatalf("broken key: exit %d, want an error naming %s\n%s", code, files.KeyFile, out)
	}
}
