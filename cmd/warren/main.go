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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
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
	version := fs.Bool("version", false, "print the version and exit")
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
	srv, err := server.New(server.Options{Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *amqpAddr)
	if err != nil {
		return fmt.Errorf("amqp listener: %w", err)
	}
	serveErr := make(chan error, 2)
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
