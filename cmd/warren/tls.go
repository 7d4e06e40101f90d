package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
)

// tlsFlags are the TLS listeners' settings, named after RabbitMQ's listeners.ssl.default (port
// 5671) and ssl_options.*.
type tlsFlags struct {
	amqpsAddr, httpsAddr         string
	cert, key, ca                string
	verifyPeer, failIfNoPeerCert bool
	certLoginFrom                string
}

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	f := &tlsFlags{}
	fs.StringVar(&f.amqpsAddr, "amqps-addr", envOr("WARREN_AMQPS_ADDR", ""), "AMQPS (AMQP over TLS) listen address, e.g. :5671; empty: off (env WARREN_AMQPS_ADDR)")
	fs.StringVar(&f.httpsAddr, "https-addr", envOr("WARREN_HTTPS_ADDR", ""), "management HTTPS listen address, with the same certificates; empty: off (env WARREN_HTTPS_ADDR)")
	fs.StringVar(&f.cert, "tls-cert", envOr("WARREN_TLS_CERT", ""), "PEM server certificate chain, leaf first (ssl_options.certfile; env WARREN_TLS_CERT)")
	fs.StringVar(&f.key, "tls-key", envOr("WARREN_TLS_KEY", ""), "PEM private key of --tls-cert (ssl_options.keyfile; env WARREN_TLS_KEY)")
	fs.StringVar(&f.ca, "tls-ca", envOr("WARREN_TLS_CA", ""), "PEM CA certificates client certificates are verified against (ssl_options.cacertfile; env WARREN_TLS_CA)")
	fs.BoolVar(&f.verifyPeer, "tls-verify-peer", envOr("WARREN_TLS_VERIFY_PEER", "") == "true", "ask clients for a certificate and verify it (ssl_options.verify = verify_peer); needed for SASL EXTERNAL")
	fs.BoolVar(&f.failIfNoPeerCert, "tls-fail-if-no-peer-cert", envOr("WARREN_TLS_FAIL_IF_NO_PEER_CERT", "") == "true", "refuse clients without a valid certificate (ssl_options.fail_if_no_peer_cert; needs --tls-verify-peer)")
	fs.StringVar(&f.certLoginFrom, "ssl-cert-login-from", envOr("WARREN_SSL_CERT_LOGIN_FROM", server.CertLoginDistinguishedName), "the user name SASL EXTERNAL takes from a client certificate: distinguished_name or common_name (ssl_cert_login_from)")
	return f
}

// tlsListeners are the running TLS listeners and the SIGHUP reloader.
type tlsListeners struct {
	hs        *http.Server
	amqpsLn   net.Listener
	stopHUP   chan struct{}
	closeOnce sync.Once
	closing   atomic.Bool
	wg        sync.WaitGroup
}

// startTLS loads the certificates and starts the AMQPS and HTTPS listeners the flags ask for, and
// reloads the certificates on SIGHUP (a failed reload is logged and keeps the old ones). Serve
// errors other than a clean close go to fail without blocking. With no TLS listener configured it
// returns a no-op value; a certificate flag without a listener is an error (it would do nothing).
func startTLS(f *tlsFlags, log *slog.Logger, srv *server.Server, fail chan<- error) (*tlsListeners, error) {
	t := &tlsListeners{}
	if f.amqpsAddr == "" && f.httpsAddr == "" {
		if f.cert != "" || f.key != "" || f.ca != "" {
			return nil, errors.New("--tls-cert/--tls-key/--tls-ca given without --amqps-addr or --https-addr")
		}
		return t, nil
	}
	cfg, err := server.LoadTLS(server.TLSFiles{
		CertFile: f.cert, KeyFile: f.key, CAFile: f.ca,
		VerifyPeer: f.verifyPeer, FailIfNoPeerCert: f.failIfNoPeerCert,
	})
	if err != nil {
		return nil, err
	}
	tc := cfg.Config()
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	var amqpsLn, httpsLn net.Listener
	if f.amqpsAddr != "" {
		ln, err := net.Listen("tcp", f.amqpsAddr)
		if err != nil {
			return nil, fmt.Errorf("amqps listener: %w", err)
		}
		amqpsLn = ln
		lns = append(lns, ln)
	}
	if f.httpsAddr != "" {
		ln, err := net.Listen("tcp", f.httpsAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("https listener: %w", err)
		}
		httpsLn = ln
		lns = append(lns, ln)
	}
	report := func(what string, err error) {
		select {
		case fail <- fmt.Errorf("%s: %w", what, err):
		default:
		}
	}
	attrs := []any{"cert", f.cert, "subject", cfg.Leaf().Subject.String(), "serial", cfg.Leaf().SerialNumber.String(),
		"not_after", cfg.Leaf().NotAfter.UTC().Format(time.RFC3339), "verify_peer", f.verifyPeer, "fail_if_no_peer_cert", f.failIfNoPeerCert}
	if amqpsLn != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := srv.Serve(tls.NewListener(amqpsLn, tc)); err != nil && !errors.Is(err, server.ErrServerClosed) && !t.closing.Load() {
				report("amqps", err)
			}
		}()
		t.amqpsLn = amqpsLn
		attrs = append(attrs, "amqps", amqpsLn.Addr().String())
	}
	if httpsLn != nil {
		t.hs = &http.Server{Handler: management.NewHandler(srv, log), ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: tc, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := t.hs.Serve(tls.NewListener(httpsLn, tc)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				report("https", err)
			}
		}()
		attrs = append(attrs, "https", httpsLn.Addr().String())
	}
	log.Info("TLS listeners started", attrs...)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	t.stopHUP = make(chan struct{})
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer signal.Stop(hup)
		for {
			select {
			case <-t.stopHUP:
				return
			case <-hup:
				if err := cfg.Reload(); err != nil {
					log.Error("TLS certificate reload failed; keeping the certificates in use", "err", err)
					continue
				}
				l := cfg.Leaf()
				log.Info("TLS certificates reloaded", "subject", l.Subject.String(), "serial", l.SerialNumber.String(),
					"not_after", l.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}()
	return t, nil
}

// close stops the reloader, the AMQPS listener (the broker's Shutdown closes its connections)
// and the HTTPS server (waiting up to 10s for its requests), and waits for their goroutines. It
// may be called more than once.
func (t *tlsListeners) close() {
	t.closeOnce.Do(func() {
		t.closing.Store(true)
		if t.stopHUP != nil {
			close(t.stopHUP)
		}
		if t.amqpsLn != nil {
			t.amqpsLn.Close()
		}
		if t.hs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t.hs.Shutdown(ctx)
			cancel()
		}
		t.wg.Wait()
	})
}
