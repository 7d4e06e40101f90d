// Command warren runs the Warren AMQP 0-9-1 broker.
//
//	go run ./cmd/warren [--amqp-addr :5672] [--http-addr :15672] [--data-dir ./warren-data]
//
// Each flag can also be set with an environment variable (WARREN_AMQP_ADDR, WARREN_HTTP_ADDR,
// WARREN_DATA_DIR); a flag given on the command line wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "warren:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("warren", flag.ContinueOnError)
	amqpAddr := fs.String("amqp-addr", envOr("WARREN_AMQP_ADDR", ":5672"), "AMQP listen address (env WARREN_AMQP_ADDR)")
	httpAddr := fs.String("http-addr", envOr("WARREN_HTTP_ADDR", ":15672"), "management HTTP listen address, empty to disable (env WARREN_HTTP_ADDR)")
	dataDir := fs.String("data-dir", envOr("WARREN_DATA_DIR", "./warren-data"), "data directory (env WARREN_DATA_DIR)")
	debugAddr := fs.String("debug-addr", envOr("WARREN_DEBUG_ADDR", ""), "serve Go's pprof profiles on this address, e.g. 127.0.0.1:6060 (env WARREN_DEBUG_ADDR; default off)")
	consumerTimeout := fs.Duration("consumer-timeout", server.DefaultConsumerTimeout, "close a channel holding a delivery unacknowledged this long (RabbitMQ's consumer_timeout; negative: never)")
	version := fs.Bool("version", false, "print the version and exit")
	tlsf := addTLSFlags(fs) // AMQPS, HTTPS, SASL EXTERNAL (tls.go)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version {
		fmt.Println("warren", server.Version)
		return nil
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if *debugAddr != "" {
		dln, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			return fmt.Errorf("debug listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ds := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go ds.Serve(dln)
		defer ds.Close()
		log.Info("pprof listener started", "addr", dln.Addr().String())
	}
	start := time.Now()
	store, err := storage.OpenPebble(*dataDir, storage.PebbleOptions{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	dir := *dataDir

	srv, err := server.New(server.Options{
		Logger:   log,
		Store:    store,
		DiskFree: func() (uint64, error) { return storage.DiskFree(dir) },

		ConsumerTimeout:  *consumerTimeout,
		SSLCertLoginFrom: tlsf.certLoginFrom,
	})
	if err != nil {
		return err
	}
	log.Info("store recovered", "data_dir", *dataDir, "took", time.Since(start).Round(time.Millisecond).String())
	serveErr := make(chan error, 4)
	tl, err := startTLS(tlsf, log, srv, serveErr)
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	defer tl.close()
	ln, err := net.Listen("tcp", *amqpAddr)
	if err != nil {
		return fmt.Errorf("amqp listener: %w", err)
	}
	go func() { serveErr <- srv.Serve(ln) }()

	var hs *http.Server
	if *httpAddr != "" {
		hln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			ln.Close()
			<-serveErr
			return fmt.Errorf("http listener: %w", err)
		}
		hs = &http.Server{Handler: management.NewHandler(srv, log), ReadHeaderTimeout: 10 * time.Second}
		log.Info("management listener started", "addr", hln.Addr().String())
		go func() { serveErr <- hs.Serve(hln) }()
	}
	log.Info("warren ready", "version", server.Version, "amqp", ln.Addr().String(), "data_dir", *dataDir)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-serveErr:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if hs != nil {
		hs.Shutdown(ctx)
	}
	tl.close()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
