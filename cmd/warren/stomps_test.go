package main

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// stomp.listeners.ssl.1 (--stomps-addr) serves STOMP over TLS with the AMQPS certificates, listed
// as RabbitMQ's "stomp/ssl".
func TestSTOMPSListener(t *testing.T) {
	caFile, certFile, keyFile := writeTestPKI(t, t.TempDir())
	srv := testbroker.Start(t).Srv
	fail := make(chan error, 1)
	tl, err := startTLS(TLSConfig{STOMPSAddr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, CACertFile: caFile},
		slog.New(slog.DiscardHandler), srv, fail, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.close()
	var addr string
	wait.For(t, 5*time.Second, "the stomp/ssl listener listed", func() bool {
		for _, l := range srv.AllListeners() {
			if l.Protocol == server.ProtocolSTOMPS {
				addr = l.Addr.String()
				return true
			}
		}
		return false
	})
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := nc.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "CONNECTED\n") {
		t.Fatalf("%q %v", buf[:n], err)
	}
}
