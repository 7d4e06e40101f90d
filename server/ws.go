package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Web MQTT and Web STOMP (issue 18): the MQTT and STOMP front ends over WebSockets, as RabbitMQ
// 3.10.8's rabbitmq_web_mqtt and rabbitmq_web_stomp plugins serve them: HTTP on their own
// listeners, the WebSocket endpoint at /ws (a trailing slash and a query are ignored, as Cowboy's
// router ignores them; any other path is a bare 404), no origin check (browsers connect from any
// page). Each WebSocket is adapted to a net.Conn (wsConn) and served by the same per-connection
// code as a TCP connection (serveMQTTConn, serveSTOMPConn): it is counted, listed and closed as
// those are.
//
// Goroutines: the listener's http.Server runs its accept loop on the ServeWebMQTT/ServeWebSTOMP
// call (counted in Server.wg) and a goroutine per HTTP connection until the handshake, which that
// call waits for (handlers) after the listener closes. An accepted WebSocket has, besides the
// front end's goroutines, its reader (wsConn.pump, counted in Server.wg), which reads messages and
// hands their bytes to the front end's read loop through a synchronous pipe (so a read loop that
// stops reading, as flow control does, stops the reader too, and a read deadline only wakes the
// read loop, as on a socket), and, once closed, its closer (the close handshake, at most
// wsCloseWait; counted in Server.wg).

// The Web MQTT and Web STOMP listeners' protocols, as RabbitMQ's /api/overview names them; the
// TLS ones (wss://) are web_mqtt.ssl.port's and web_stomp.ssl.port's.
const (
	ProtocolWebMQTT   = "http/web-mqtt"
	ProtocolWebSTOMP  = "http/web-stomp"
	ProtocolWebMQTTS  = "https/web-mqtt"
	ProtocolWebSTOMPS = "https/web-stomp"
)

// wsPath is the WebSocket endpoint of both plugins (web_mqtt.ws_path, web_stomp.ws_path).
const wsPath = "/ws"

// The subprotocols each endpoint negotiates, the server's preference first, as RabbitMQ 3.10.8
// answers them: Web STOMP picks the highest STOMP version offered; a client that offers none of
// them is still accepted, with no Sec-WebSocket-Protocol in the answer (a browser then fails the
// connection itself, as it does with RabbitMQ's Web STOMP).
var (
	webMQTTSubprotocols  = []string{"mqtt", "mqttv3.1"}
	webSTOMPSubprotocols = []string{"v12.stomp", "v11.stomp", "v10.stomp"}
)

// wsReadLimitSlack is what a WebSocket message may carry beyond the largest message body
// (Options.MaxMessageSize): a frame's or a packet's headers.
const wsReadLimitSlack = 1 << 20

// ServeWebMQTT serves Web MQTT (MQTT over WebSockets at /ws, binary messages) on ln until
// Shutdown, as ServeMQTT does on TCP; the listener is listed as RabbitMQ's "http/web-mqtt". It
// always returns a non-nil error, ErrServerClosed after Shutdown.
func (s *Server) ServeWebMQTT(ln net.Listener) error {
	return s.serveWS(ln, Listener{Protocol: ProtocolWebMQTT}, true)
}

// ServeWebMQTTTLS is ServeWebMQTT over TLS (wss://), listed as RabbitMQ's "https/web-mqtt", with
// files as for ServeTLS. The TLS handshake runs on the HTTP connection's goroutine, within the
// handshake timeout (the HTTP server's header timeout bounds it).
func (s *Server) ServeWebMQTTTLS(ln net.Listener, cfg *tls.Config, files TLSFiles) error {
	return s.serveWS(tls.NewListener(ln, cfg), Listener{Protocol: ProtocolWebMQTTS, Files: files}, true)
}

// ServeWebSTOMP serves Web STOMP (STOMP over WebSockets at /ws; the broker writes text messages,
// and reads text and binary ones) on ln until Shutdown, as ServeSTOMP does on TCP; the listener is
// listed as RabbitMQ's "http/web-stomp".
func (s *Server) ServeWebSTOMP(ln net.Listener) error {
	return s.serveWS(ln, Listener{Protocol: ProtocolWebSTOMP}, false)
}

// ServeWebSTOMPTLS is ServeWebSTOMP over TLS (wss://), listed as RabbitMQ's "https/web-stomp", as
// ServeWebMQTTTLS is ServeWebMQTT.
func (s *Server) ServeWebSTOMPTLS(ln net.Listener, cfg *tls.Config, files TLSFiles) error {
	return s.serveWS(tls.NewListener(ln, cfg), Listener{Protocol: ProtocolWebSTOMPS, Files: files}, false)
}

// serveWS serves l (a Web MQTT listener if mqtt, else a Web STOMP one) on ln.
func (s *Server) serveWS(ln net.Listener, l Listener, mqtt bool) error {
	protocol := l.Protocol
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	l.Addr = ln.Addr()
	s.mu.listeners[ln] = l
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.mu.listeners, ln)
		s.mu.Unlock()
	}()

	h := &wsHandler{srv: s, protocol: protocol, mqtt: mqtt}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.opts.HandshakeTimeout,
		IdleTimeout:       s.opts.HandshakeTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.log.Info("listener started", "protocol", protocol, "addr", ln.Addr().String())
	s.startSampler()
	err := hs.Serve(ln)
	// The listener is closed (Shutdown) or failed: close the HTTP connections that are not
	// WebSockets yet. Their handlers are counted in Server.wg: Shutdown waits for them.
	hs.Close()
	if s.isClosed() {
		return ErrServerClosed
	}
	return fmt.Errorf("warren: %s: %w", protocol, err)
}

// wsHandler answers a Web MQTT or Web STOMP listener's HTTP requests.
type wsHandler struct {
	srv      *Server
	protocol string
	mqtt     bool // Web MQTT, else Web STOMP
}

func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p != wsPath && p != wsPath+"/" {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNotFound)
		return
	}
	s := h.srv
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1) // Shutdown waits for the handshake and the hand-over
	s.mu.Unlock()
	defer s.wg.Done()
	subprotocols, typ := webMQTTSubprotocols, websocket.MessageBinary
	if !h.mqtt {
		subprotocols, typ = webSTOMPSubprotocols, websocket.MessageText
	}
	hj := &hijackRecorder{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		Subprotocols:       subprotocols,
		InsecureSkipVerify: true, // RabbitMQ checks no Origin
	})
	if err != nil {
		s.log.Debug("WebSocket handshake refused", "protocol", h.protocol, "remote", r.RemoteAddr, "err", err)
		return // Accept answered the request
	}
	ws.SetReadLimit(int64(s.opts.MaxMessageSize) + wsReadLimitSlack)
	wc := newWSConn(ws, hj.conn, typ, h.mqtt, &s.wg)
	nc := s.meter(wc)
	// The reader runs before the front end reads; it ends when the WebSocket closes.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		wc.pump()
	}()
	var served bool
	if h.mqtt {
		served = s.serveMQTTConn(newMQTTConn(s, nc))
	} else {
		served = s.serveSTOMPConn(newStompConn(s, nc))
	}
	if !served { // Shutdown began: close at once, without a close handshake
		wc.closeNow()
		nc.Close() // counted as closed; wc is already
	}
}

// hijackRecorder keeps the connection websocket.Accept hijacks, so that wsConn can close it at
// once and report its addresses.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, brw, err
}

// wsCloseWait bounds the close handshake of a WebSocket the broker closes: past it the TCP
// connection is closed without the client's close frame.
const wsCloseWait = closeOkTimeout

// wsConn adapts a WebSocket to the net.Conn the front ends serve. Write sends one message of
// type typ per call (the write loop writes whole frames or packets, several per call when they
// are queued together). Reads come through a net.Pipe that pump fills with the payload of every
// message received (messages are a byte stream to the front ends, as the MQTT and STOMP
// WebSocket bindings specify), so that read deadlines behave as a socket's: websocket.NetConn's
// would close the WebSocket, losing the DISCONNECT or ERROR a front end writes after waking its
// read loop.
type wsConn struct {
	ws         *websocket.Conn
	raw        net.Conn // the hijacked TCP connection (a *tls.Conn, handshake done, on wss://)
	typ        websocket.MessageType
	binaryOnly bool     // Web MQTT: text messages are ignored, as RabbitMQ ignores them
	pr, pw     net.Conn // pump writes pw; Read reads pr

	wmu       sync.Mutex
	wdeadline time.Time // under wmu

	closes atomic.Int32    // Close calls: the first closes with a handshake, later ones do nothing
	wg     *sync.WaitGroup // Server.wg: counts the closer goroutine
}

// webConn reports whether nc, a connection as a front end holds it (metered), is a WebSocket, and
// its TLS connection if it came over wss://.
func webConn(nc net.Conn) (web bool, tc *tls.Conn) {
	if m, ok := nc.(*meteredConn); ok {
		nc = m.Conn
	}
	w, ok := nc.(*wsConn)
	if !ok {
		return false, nil
	}
	tc, _ = w.raw.(*tls.Conn)
	return true, tc
}

func newWSConn(ws *websocket.Conn, raw net.Conn, typ websocket.MessageType, binaryOnly bool, wg *sync.WaitGroup) *wsConn {
	pr, pw := net.Pipe()
	return &wsConn{ws: ws, raw: raw, typ: typ, binaryOnly: binaryOnly, pr: pr, pw: pw, wg: wg}
}

// pump reads the WebSocket's messages and writes their payload to the pipe until the WebSocket
// or the pipe closes; then the front end's Read gets io.EOF, as from a socket the client closed
// (a protocol error of the client's, such as a message past the read limit, is answered by the
// WebSocket library with its close frame).
func (c *wsConn) pump() {
	defer c.pw.Close()
	var buf [4096]byte
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			return
		}
		if c.binaryOnly && typ != websocket.MessageBinary {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			continue
		}
		for {
			n, err := r.Read(buf[:])
			if n > 0 {
				if _, werr := c.pw.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
	}
}

// Read reads the messages' bytes; after Close, net.ErrClosed as a closed socket's.
func (c *wsConn) Read(p []byte) (int, error) {
	n, err := c.pr.Read(p)
	if errors.Is(err, io.ErrClosedPipe) {
		err = net.ErrClosed
	}
	return n, err
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	dl := c.wdeadline
	c.wmu.Unlock()
	ctx := context.Background()
	if !dl.IsZero() {
		if !time.Now().Before(dl) {
			return 0, fmt.Errorf("websocket write: %w", os.ErrDeadlineExceeded)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	if err := c.ws.Write(ctx, c.typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the WebSocket with a close handshake (status 1000) without waiting for it: the
// closer goroutine (counted in wg) waits at most wsCloseWait for the client's close frame, then
// closes the TCP connection. Later calls do nothing. Close never blocks, so Shutdown may call it
// holding Server.mu.
func (c *wsConn) Close() error {
	if c.closes.Add(1) > 1 {
		return nil
	}
	c.pr.Close() // the read loop's Read ends; the pump stops if it waits for it
	c.wg.Add(1)  // the connection's serve goroutine, calling this or waiting for it, is counted
	go func() {
		defer c.wg.Done()
		t := time.AfterFunc(wsCloseWait, func() { c.raw.Close() })
		defer t.Stop()
		// An error is a client that did not answer in time or had gone: closed all the same.
		_ = c.ws.Close(websocket.StatusNormalClosure, "")
		c.raw.Close()
	}()
	return nil
}

// closeNow closes the TCP connection without a close handshake, before anyone else closes c.
func (c *wsConn) closeNow() {
	c.closes.Add(1)
	c.pr.Close()
	c.raw.Close()
}

func (c *wsConn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.pr.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	c.wdeadline = t
	c.wmu.Unlock()
	return nil
}
