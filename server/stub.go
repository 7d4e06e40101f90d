//go:build !wip

// Package server is a placeholder until the broker compiles; see the wip build tag.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("warren: server closed")

// Options configure a Server.
type Options struct {
	Logger         *slog.Logger
	Heartbeat      time.Duration
	FrameMax       uint32
	ChannelMax     uint16
	MaxMessageSize int
	DefaultUser    string
	DefaultPass    string
	LoopbackUsers  []string
}

// Server is an AMQP broker.
type Server struct{}

// New returns a server.
func New(opts Options) (*Server, error) { return nil, errors.New("not implemented") }

// Serve accepts connections on ln.
func (s *Server) Serve(ln net.Listener) error { return errors.New("not implemented") }

// Shutdown stops the server.
func (s *Server) Shutdown(ctx context.Context) error { return nil }
