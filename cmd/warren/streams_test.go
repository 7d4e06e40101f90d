package main

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// stream.listeners.ssl.1 (--streams-addr) serves the stream protocol over TLS with the AMQPS
// certificates, listed as RabbitMQ's "stream/ssl": the Go stream client declares a stream,
// publishes with a confirm and consumes it over TLS; without the CA the handshake fails.
func TestStreamTLSListener(t *testing.T) {
	caFile, certFile, keyFile := writeTestPKI(t, t.TempDir())
	srv := testbroker.Start(t).Srv
	fail := make(chan error, 1)
	tl, err := startTLS(TLSConfig{StreamsAddr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, CACertFile: caFile},
		slog.New(slog.DiscardHandler), srv, fail, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.close()
	var addr string
	wait.For(t, 5*time.Second, "the stream/ssl listener listed", func() bool {
		for _, l := range srv.AllListeners() {
			if l.Protocol == server.ProtocolStreamTLS {
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
	uri := "rabbitmq-stream+tls://guest:guest@" + addr + "/"

	// The listener speaks TLS with the broker's certificate: not trusted without its CA.
	if nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}); err == nil {
		nc.Close()
		t.Fatal("TLS handshake without trusting the broker's CA")
	}

	e, err := stream.NewEnvironment(stream.NewEnvironmentOptions().SetUri(uri).SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const name = "tls-stream"
	if err := e.DeclareStream(name, nil); err != nil {
		t.Fatal(err)
	}
	p, err := e.NewProducer(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	confirms := p.NotifyPublishConfirmation()
	if err := p.Send(amqp.NewMessage([]byte("over tls"))); err != nil {
		t.Fatal(err)
	}
	select {
	case cs := <-confirms:
		if len(cs) != 1 || !cs[0].IsConfirmed() {
			t.Fatalf("confirms %v", cs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no confirm")
	}
	p.Close()
	got := make(chan string, 1)
	c, err := e.NewConsumer(name, func(_ stream.ConsumerContext, m *amqp.Message) {
		select {
		case got <- string(m.GetData()):
		default:
		}
	}, stream.NewConsumerOptions().SetOffset(stream.OffsetSpecification{}.First()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case body := <-got:
		if body != "over tls" {
			t.Fatalf("consumed %q", body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing consumed")
	}
}
