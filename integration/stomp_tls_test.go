package integration

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/stomp"
)

// TestSTOMPTLS: ServeSTOMPTLS serves STOMP over TLS, listed as "stomp/ssl".
func TestSTOMPTLS(t *testing.T) {
	if externalURL != "" {
		t.Skip("needs an in-process broker with TLS")
	}
	pki := newTestPKI(t)
	cfg, err := server.LoadTLS(pki.serverFiles(t, 30))
	if err != nil {
		t.Fatal(err)
	}
	tb := testbroker.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- tb.Srv.ServeSTOMPTLS(ln, cfg.Config(), server.TLSFiles{}) }()
	t.Cleanup(func() {
		if err := tb.Stop(); err != nil {
			t.Error(err)
		}
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("ServeSTOMPTLS: %v", err)
		}
	})
	wait.For(t, 5*time.Second, "the stomp/ssl listener listed", func() bool {
		for _, l := range tb.Srv.AllListeners() {
			if l.Protocol == "stomp/ssl" {
				return true
			}
		}
		return false
	})
	nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &stompClient{t: t, nc: nc, v: stomp.V12, dec: stomp.Decoder{FromServer: true}}
	c.connect()
	q := amqpName(t, "q")
	c.frame(stomp.CmdSubscribe, "", "id:s", "destination:/queue/"+q, "auto-delete:true", "durable:false")
	c.frame(stomp.CmdSend, "over tls", "destination:/queue/"+q, "auto-delete:true", "durable:false")
	if m := c.expect(stomp.CmdMessage); string(m.Body) != "over tls" {
		t.Fatalf("%q", m.Body)
	}
}
