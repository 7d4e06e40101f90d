package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
)

// tlsListeners are the running TLS listeners and the SIGHUP reloader.
type tlsListeners struct {
	hs        *http.Server
	amqpsLn   net.Listener
	stompsLn  net.Listener
	mqttsLn   net.Listener
	webLns    []net.Listener
	streamsLn net.Listener
	cfg       *server.TLS // nil without TLS listeners
	log       *slog.Logger
	closeOnce sync.Once
	closing   atomic.Bool
	wg        sync.WaitGroup
}

// startTLS loads the certificates and starts the AMQPS, MQTTS, STOMPS, stream, Web MQTT and Web STOMP over TLS
// and HTTPS listeners f asks for (f was
// validated by loadConfig). Serve errors other than a clean close go to fail without blocking.
// With no TLS listener configured it returns a value whose reload and close do nothing.
func startTLS(f TLSConfig, log *slog.Logger, srv *server.Server, fail chan<- error, mopts []management.Option) (*tlsListeners, error) {
	t := &tlsListeners{log: log}
	if !f.anyListener() {
		return t, nil
	}
	cfg, err := server.LoadTLS(server.TLSFiles{
		CertFile: f.CertFile, KeyFile: f.KeyFile, CAFile: f.CACertFile,
		VerifyPeer: f.VerifyPeer, FailIfNoPeerCert: f.FailIfNoPeerCert,
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
	var amqpsLn, httpsLn, mqttsLn net.Listener
	if f.AMQPSAddr != "" {
		ln, err := net.Listen("tcp", f.AMQPSAddr)
		if err != nil {
			return nil, fmt.Errorf("amqps listener: %w", err)
		}
		amqpsLn = ln
		lns = append(lns, ln)
	}
	if f.HTTPSAddr != "" {
		ln, err := net.Listen("tcp", f.HTTPSAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("https listener: %w", err)
		}
		httpsLn = ln
		lns = append(lns, ln)
	}
	var stompsLn net.Listener
	if f.STOMPSAddr != "" {
		ln, err := net.Listen("tcp", f.STOMPSAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("stomps listener: %w", err)
		}
		stompsLn = ln
		lns = append(lns, ln)
	}
	if f.MQTTSAddr != "" {
		ln, err := net.Listen("tcp", f.MQTTSAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("mqtts listener: %w", err)
		}
		mqttsLn = ln
		lns = append(lns, ln)
	}
	type webListener struct {
		name  string
		ln    net.Listener
		serve func(net.Listener, *tls.Config, server.TLSFiles) error
	}
	var webLns []webListener
	for _, w := range []struct {
		name, addr string
		serve      func(net.Listener, *tls.Config, server.TLSFiles) error
	}{{"web_mqtt_tls", f.WebMQTTSAddr, srv.ServeWebMQTTTLS}, {"web_stomp_tls", f.WebSTOMPSAddr, srv.ServeWebSTOMPTLS}} {
		if w.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", w.addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s listener: %w", w.name, err)
		}
		webLns = append(webLns, webListener{w.name, ln, w.serve})
		lns = append(lns, ln)
	}
	var streamsLn net.Listener
	if f.StreamsAddr != "" {
		ln, err := net.Listen("tcp", f.StreamsAddr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("stream TLS listener: %w", err)
		}
		streamsLn = ln
		lns = append(lns, ln)
	}
	report := func(what string, err error) {
		select {
		case fail <- fmt.Errorf("%s: %w", what, err):
		default:
		}
	}
	attrs := []any{"cert", f.CertFile, "subject", cfg.Leaf().Subject.String(), "serial", cfg.Leaf().SerialNumber.String(),
		"not_after", cfg.Leaf().NotAfter.UTC().Format(time.RFC3339), "verify_peer", f.VerifyPeer, "fail_if_no_peer_cert", f.FailIfNoPeerCert}
	if amqpsLn != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := srv.ServeTLS(amqpsLn, tc, cfg.Files()); err != nil && !errors.Is(err, server.ErrServerClosed) && !t.closing.Load() {
				report("amqps", err)
			}
		}()
		t.amqpsLn = amqpsLn
		attrs = append(attrs, "amqps", amqpsLn.Addr().String())
	}
	if stompsLn != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := srv.ServeSTOMPTLS(stompsLn, tc, cfg.Files()); err != nil && !errors.Is(err, server.ErrServerClosed) && !t.closing.Load() {
				report("stomps", err)
			}
		}()
		t.stompsLn = stompsLn
		attrs = append(attrs, "stomps", stompsLn.Addr().String())
	}
	if mqttsLn != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := srv.ServeMQTTTLS(mqttsLn, tc, cfg.Files()); err != nil && !errors.Is(err, server.ErrServerClosed) && !t.closing.Load() {
				report("mqtts", err)
			}
		}()
		t.mqttsLn = mqttsLn
		attrs = append(attrs, "mqtts", mqttsLn.Addr().String())
	}
	for _, w := range webLns {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := w.serve(w.ln, tc, cfg.Files()); err != nil && !errors.Is(err, server.ErrServerClosed) && !t.closing.Load() {
				report(w.name, err)
			}
		}()
		t.webLns = append(t.webLns, w.ln)
		attrs = append(attrs, w.name, w.ln.Addr().String())
	}
	if streamsLn != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := srv.ServeStreamTLS(streamsLn, tc, cfg.Files()); err != nil && !errors.Is(err, server.ErrServerClosed) && !t.closing.Load() {
				report("stream/ssl", err)
			}
		}()
		t.streamsLn = streamsLn
		attrs = append(attrs, "stream/ssl", streamsLn.Addr().String())
	}
	if httpsLn != nil {
		t.hs = &http.Server{Handler: management.NewHandler(srv, log, mopts...), ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: tc, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			if err := t.hs.Serve(tls.NewListener(httpsLn, tc)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				report("https", err)
			}
		}()
		// Listed with the broker's own listeners, for /api/overview and the health checks.
		srv.AddListener(server.Listener{Protocol: server.ProtocolHTTPS, Addr: httpsLn.Addr(), Files: cfg.Files()})
		attrs = append(attrs, "https", httpsLn.Addr().String())
	}
	log.Info("TLS listeners started", attrs...)

	t.cfg = cfg
	return t, nil
}

// reload re-reads the certificate files for new handshakes (SIGHUP); on error the certificates
// in use stay.
func (t *tlsListeners) reload() error {
	if t.cfg == nil {
		return nil
	}
	if err := t.cfg.Reload(); err != nil {
		return fmt.Errorf("TLS certificates: %w", err)
	}
	l := t.cfg.Leaf()
	t.log.Info("TLS certificates reloaded", "subject", l.Subject.String(), "serial", l.SerialNumber.String(),
		"not_after", l.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// close stops the AMQPS, STOMPS, MQTTS and stream TLS listeners (the broker's Shutdown closes their connections)
// and the HTTPS server (waiting up to 10s for its requests), and waits for their goroutines. It
// may be called more than once.
func (t *tlsListeners) close() {
	t.closeOnce.Do(func() {
		t.closing.Store(true)
		if t.amqpsLn != nil {
			t.amqpsLn.Close()
		}
		if t.stompsLn != nil {
			t.stompsLn.Close()
		}
		if t.mqttsLn != nil {
			t.mqttsLn.Close()
		}
		for _, ln := range t.webLns {
			ln.Close()
		}
		if t.streamsLn != nil {
			t.streamsLn.Close()
		}
		if t.hs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t.hs.Shutdown(ctx)
			cancel()
		}
		t.wg.Wait()
	})
}
