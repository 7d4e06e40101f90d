// Command warren runs the Warren AMQP 0-9-1 broker.
//
//	go run ./cmd/warren [--config warren.conf] [--amqp-addr :5672] [--http-addr :15672] [--data-dir ./warren-data] ...
//	warren healthcheck [--url http://127.0.0.1:15672] [--cacert ca.pem]
//	warren --version
//
// Settings come from defaults, a rabbitmq.conf-style config file (--config or WARREN_CONFIG_FILE),
// environment variables (WARREN_*) and flags, each beating the previous (config.go). SIGHUP
// re-reads the config file and applies its log level; SIGINT and SIGTERM close every connection
// with 320 CONNECTION_FORCED, flush the store and exit 0.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/shovel"
	"github.com/warrenmq/warren/storage"
)

// minSoftMemoryLimit is the smallest memory watermark also set as the Go runtime's soft memory
// limit.
const minSoftMemoryLimit = 32 << 20

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "warren:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], os.LookupEnv, stdout, stderr)
	}
	cfg, cf, err := loadConfig(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	if *cf.version {
		fmt.Fprintln(stdout, "warren", server.Version)
		return nil
	}
	// Signals are taken from the start, so that SIGTERM during recovery still stops the broker
	// cleanly once it is up.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	log := newLogger(stderr, cfg.LogFormat, level)
	if cfg.File != "" {
		log.Info("config file read", "file", cfg.File)
	}
	memLimit, err := cfg.MemoryHighWatermark.limit(server.TotalMemory())
	if err != nil {
		return err
	}
	log.Info("memory high watermark", "limit_bytes", memLimit, "relative", cfg.MemoryHighWatermark.Relative,
		"absolute", cfg.MemoryHighWatermark.Absolute, "total_memory_bytes", server.TotalMemory())
	// The watermark is also the Go runtime's soft memory limit (unless GOMEMLIMIT says otherwise):
	// near it the GC collects more often, so garbage does not carry the resident memory far past
	// the watermark between two samples of the memory alarm. Not for a watermark so small that the
	// GC would run all the time (relative 0 keeps the alarm on).
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && memLimit >= minSoftMemoryLimit {
		debug.SetMemoryLimit(memLimit)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	serveErr := make(chan error, 10) // AMQP, HTTP, debug, AMQPS, HTTPS, MQTT, STOMP, Web MQTT, Web STOMP, stream
	if cfg.DebugAddr != "" {
		ds, err := startDebug(cfg.DebugAddr, serveErr, log)
		if err != nil {
			return err
		}
		defer ds.Close()
	}

	start := time.Now()
	store, err := storage.OpenPebble(cfg.DataDir, storage.PebbleOptions{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	opts := cfg.serverOptions()
	opts.Logger, opts.Store = log, store
	// The cluster settings (cluster.go) when --cluster-addr is set: the server owns the listener.
	if opts.Cluster, err = clusterOptions(&cfg); err != nil {
		return err
	}
	opts.DiskFree = func() (uint64, error) { return storage.DiskFree(cfg.DataDir) }
	opts.MemoryUsed, opts.MemoryLimit = server.ResidentMemory, memLimit
	srv, err := server.New(opts)
	if err != nil {
		return err
	}
	// stop stops the broker within 15s: it closes every connection with 320 CONNECTION_FORCED and
	// records a clean shutdown; the deferred store.Close then flushes Pebble.
	// Shovels run from here (stored ones start now; definitions may add more) until stop.
	shovels := shovel.New(srv, shovel.Options{Logger: log})
	mopts := []management.Option{management.WithShovels(shovels)}
	stop := func() error {
		shovels.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
	log.Info("store recovered", "data_dir", cfg.DataDir, "took", time.Since(start).Round(time.Millisecond).String())
	if cfg.LoadDefinitions != "" {
		if err := loadDefinitions(srv, cfg.LoadDefinitions); err != nil {
			stop()
			return err
		}
		log.Info("definitions imported", "file", cfg.LoadDefinitions)
	}

	tl, err := startTLS(cfg.TLS, log, srv, serveErr, mopts)
	if err != nil {
		stop()
		return err
	}
	defer tl.close()
	ln, err := net.Listen("tcp", cfg.AMQPAddr)
	if err != nil {
		stop()
		return fmt.Errorf("amqp listener: %w", err)
	}
	go func() { serveErr <- srv.Serve(ln) }()
	mqttAddr := ""
	if cfg.MQTTAddr != "" {
		mln, err := net.Listen("tcp", cfg.MQTTAddr)
		if err != nil {
			stop()
			return fmt.Errorf("mqtt listener: %w", err)
		}
		mqttAddr = mln.Addr().String()
		go func() { serveErr <- srv.ServeMQTT(mln) }()
	}
	stompAddr := ""
	if cfg.STOMPAddr != "" {
		sln, err := net.Listen("tcp", cfg.STOMPAddr)
		if err != nil {
			stop()
			return fmt.Errorf("stomp listener: %w", err)
		}
		stompAddr = sln.Addr().String()
		go func() { serveErr <- srv.ServeSTOMP(sln) }()
	}
	webAddrs := map[string]string{} // Web MQTT and Web STOMP listeners' addresses, for the log
	for _, w := range []struct {
		name, addr string
		serve      func(net.Listener) error
	}{{"web_mqtt", cfg.WebMQTTAddr, srv.ServeWebMQTT}, {"web_stomp", cfg.WebSTOMPAddr, srv.ServeWebSTOMP}} {
		if w.addr == "" {
			continue
		}
		wln, err := net.Listen("tcp", w.addr)
		if err != nil {
			stop()
			return fmt.Errorf("%s listener: %w", w.name, err)
		}
		webAddrs[w.name] = wln.Addr().String()
		go func() { serveErr <- w.serve(wln) }()
	}
	if cfg.StreamAddr != "" {
		sln, err := net.Listen("tcp", cfg.StreamAddr)
		if err != nil {
			stop()
			return fmt.Errorf("stream listener: %w", err)
		}
		go func() { serveErr <- srv.ServeStream(sln) }()
	}
	var hs *http.Server
	httpAddr := ""
	if cfg.HTTPAddr != "" {
		hln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			stop()
			return fmt.Errorf("http listener: %w", err)
		}
		httpAddr = hln.Addr().String()
		// Listed with the broker's own listeners, for /api/overview and the health checks.
		srv.AddListener(server.Listener{Protocol: server.ProtocolHTTP, Addr: hln.Addr()})
		hs = &http.Server{Handler: management.NewHandler(srv, log, mopts...), ReadHeaderTimeout: 10 * time.Second}
		log.Info("management listener started", "addr", httpAddr)
		go func() { serveErr <- hs.Serve(hln) }()
	}
	log.Info("warren ready", "version", server.Version, "amqp", ln.Addr().String(), "http", httpAddr, "mqtt", mqttAddr, "stomp", stompAddr, "web_mqtt", webAddrs["web_mqtt"], "web_stomp", webAddrs["web_stomp"], "data_dir", cfg.DataDir)

	// SIGHUP runs every reloader in order; tls.go appends its certificate reload here.
	reloaders := []reloader{{"config", configReloader(args, &cfg, level, log)}, {"tls", tl.reload}}
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				runReloads(reloaders, log)
				continue
			}
			log.Info("shutting down", "signal", s.String())
		case err := <-serveErr:
			stop()
			if hs != nil {
				hs.Close()
			}
			return err
		}
		break
	}
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		hs.Shutdown(ctx)
		cancel()
	}
	return stop()
}

// newLogger logs to w as text ("plain", slog's key=value) or JSON, at level's current level.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// reloader is one step of a SIGHUP reload.
type reloader struct {
	name string
	fn   func() error
}

func runReloads(rs []reloader, log *slog.Logger) {
	log.Info("SIGHUP: reloading", "steps", len(rs))
	for _, r := range rs {
		if err := r.fn(); err != nil {
			log.Error("reload failed; keeping the previous settings", "step", r.name, "err", err)
		}
	}
}

// configReloader re-reads the configuration as at start-up (file, environment, the same flags)
// and applies its log level; other changed settings are reported as needing a restart.
func configReloader(args []string, cur *Config, level *slog.LevelVar, log *slog.Logger) func() error {
	return func() error {
		next, _, err := loadConfig(args, os.LookupEnv, io.Discard)
		if err != nil {
			return err
		}
		if old := level.Level(); old != next.LogLevel {
			level.Set(next.LogLevel)
			log.Info("log level changed", "from", levelName(old), "to", levelName(next.LogLevel))
		} else {
			log.Info("log level unchanged", "level", levelName(old))
		}
		cur.LogLevel = next.LogLevel
		if changed := changedFields(*cur, next); len(changed) > 0 {
			log.Warn("changed settings take effect at the next start", "settings", changed)
		}
		return nil
	}
}

// loadDefinitions imports a definitions JSON file (RabbitMQ's format) into srv.
func loadDefinitions(srv *server.Server, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load_definitions: %w", err)
	}
	d, err := management.ParseDefinitions(data)
	if err != nil {
		return fmt.Errorf("load_definitions %s: %w", path, err)
	}
	if err := srv.ImportDefinitions(d, "rmq-internal"); err != nil {
		return fmt.Errorf("load_definitions %s: %w", path, err)
	}
	return nil
}

// startDebug serves Go's pprof profiles on addr; its Serve error goes to serveErr.
func startDebug(addr string, serveErr chan<- error, log *slog.Logger) (*http.Server, error) {
	dln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ds := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := ds.Serve(dln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	log.Info("pprof listener started", "addr", dln.Addr().String())
	return ds, nil
}

// healthcheckOptions are `warren healthcheck`'s settings.
type healthcheckOptions struct {
	url, user, pass string
	cacert          string // PEM CA certificates an https:// URL's server is verified against
	timeout         time.Duration
}

// parseHealthcheck reads healthcheck's flags. The defaults come from the broker's own
// configuration (file and environment): its management port and default user.
func parseHealthcheck(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (healthcheckOptions, error) {
	var o healthcheckOptions
	cfg, _, err := loadConfig(nil, lookupEnv, io.Discard)
	if err != nil {
		return o, err
	}
	fs := flag.NewFlagSet("warren healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defURL, defCA := healthURL(cfg.HTTPAddr), ""
	if defURL == "" && cfg.TLS.HTTPSAddr != "" {
		// Only HTTPS is on: check it, trusting the configured CA file.
		defURL, defCA = strings.Replace(healthURL(cfg.TLS.HTTPSAddr), "http://", "https://", 1), cfg.TLS.CACertFile
	}
	fs.StringVar(&o.url, "url", defURL, "the management API's base `URL` (http:// or https://)")
	cacertUsage := "PEM CA certificates `file` to verify an https:// URL's certificate against (default: the system's; with only HTTPS configured, its CA file)"
	fs.StringVar(&o.cacert, "cacert", defCA, cacertUsage)
	fs.StringVar(&o.cacert, "ca", defCA, "the same as --cacert")
	fs.StringVar(&o.user, "user", cfg.DefaultUser, "`user` to log in as (default: the configured default user)")
	fs.StringVar(&o.pass, "password", cfg.DefaultPass, "`password` (default: the configured default password)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	if o.url == "" {
		return o, errors.New("healthcheck: the management listener is disabled; give --url")
	}
	return o, nil
}

// healthcheck asks the management API whether the broker is healthy (no alarm in effect) and
// fails otherwise: `warren healthcheck` exits 0 or 1, for Docker's HEALTHCHECK.
func healthcheck(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	o, err := parseHealthcheck(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(o.url, "/")+"/api/health/checks/alarms", nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	req.SetBasicAuth(o.user, o.pass)
	client, err := healthClient(o.cacert)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: unhealthy: %s: %s", resp.Status, body)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// healthClient is the HTTP client of the healthcheck: with cacert, one that verifies servers
// against the CA certificates in that file only.
func healthClient(cacert string) (*http.Client, error) {
	if cacert == "" {
		return http.DefaultClient, nil
	}
	pem, err := os.ReadFile(cacert)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("healthcheck: CA file %s: no PEM certificate in it", cacert)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &http.Client{Transport: tr}, nil
}

// healthURL is the local URL of the management listener at addr ("" if it is disabled).
func healthURL(addr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
