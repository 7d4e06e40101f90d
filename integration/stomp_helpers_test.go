package integration

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/stomp"
)

// stompBroker is a broker under test with its STOMP listener.
type stompBroker struct {
	URL   string         // AMQP URL (guest)
	STOMP string         // host:port of the STOMP listener
	Srv   *server.Server // nil for the reference broker
}

// startSTOMP starts an in-process broker with a STOMP listener, or, with WARREN_TEST_URL set,
// returns the reference broker and its STOMP port (WARREN_TEST_STOMP_ADDR, default
// 127.0.0.1:61613).
func startSTOMP(t testing.TB, opts ...func(*server.Options)) stompBroker {
	t.Helper()
	if externalURL != "" {
		if len(opts) > 0 {
			t.Skip("needs broker options; WARREN_TEST_URL points at an external broker")
		}
		addr := os.Getenv("WARREN_TEST_STOMP_ADDR")
		if addr == "" {
			addr = "127.0.0.1:61613"
		}
		return stompBroker{URL: externalURL, STOMP: addr}
	}
	tb := testbroker.Start(t, opts...)
	return stompBroker{URL: "amqp://guest:guest@" + tb.Addr + "/", STOMP: tb.STOMP(t), Srv: tb.Srv}
}

// stompClient is a raw STOMP client: it writes frames as given and decodes what the server sends.
type stompClient struct {
	t   testing.TB
	nc  net.Conn
	v   stomp.Version
	dec stomp.Decoder
	buf []byte
}

func dialSTOMP(t testing.TB, addr string) *stompClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial STOMP %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &stompClient{t: t, nc: nc, v: stomp.V12, dec: stomp.Decoder{FromServer: true}}
}

// raw writes bytes as they are.
func (c *stompClient) raw(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// frame writes a frame: headers as "name:value" (escaped by the codec as the version needs).
func (c *stompClient) frame(cmd string, body string, headers ...string) {
	c.t.Helper()
	f := stomp.Frame{Command: cmd, Body: []byte(body)}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		f.Headers = append(f.Headers, stomp.H(k, v))
	}
	b, err := stomp.Append(nil, f, c.v)
	if err != nil {
		c.t.Fatalf("encode %s: %v", cmd, err)
	}
	c.raw(string(b))
}

// next returns the next frame that is not a heart-beat, or an error (io.EOF once closed).
func (c *stompClient) next(timeout time.Duration) (stomp.Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		if len(c.buf) > 0 {
			f, n, err := c.dec.Decode(c.v, c.buf)
			if err == nil {
				c.buf = c.buf[n:]
				if f.Heartbeat {
					continue
				}
				return f.Clone(), nil
			}
			if err != stomp.ErrNeedMore {
				return stomp.Frame{}, err
			}
		}
		c.nc.SetReadDeadline(deadline)
		var tmp [4096]byte
		n, err := c.nc.Read(tmp[:])
		c.buf = append(c.buf, tmp[:n]...)
		if n == 0 && err != nil {
			return stomp.Frame{}, err
		}
	}
}

// expect reads the next frame and fails unless it is cmd.
func (c *stompClient) expect(cmd string) stomp.Frame {
	c.t.Helper()
	f, err := c.next(10 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", cmd, err)
	}
	if f.Command != cmd {
		c.t.Fatalf("got %s %s %q, want %s", f.Command, hdrs(f), f.Body, cmd)
	}
	return f
}

// expectError reads an ERROR frame and checks its message header and that its body contains body.
func (c *stompClient) expectError(message, body string) stomp.Frame {
	c.t.Helper()
	f := c.expect(stomp.CmdError)
	if m := get(f, "message"); m != message || !strings.Contains(string(f.Body), body) {
		c.t.Fatalf("ERROR message %q body %q, want %q containing %q", m, f.Body, message, body)
	}
	return f
}

// expectClosed checks the server closes the connection (after what it still sends, which is
// skipped).
func (c *stompClient) expectClosed() {
	c.t.Helper()
	for {
		f, err := c.next(10 * time.Second)
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		if err != nil {
			c.t.Fatalf("waiting for the server to close: %v", err)
		}
		_ = f
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// connect sends CONNECT as guest to vhost "/" with the extra headers and returns CONNECTED.
func (c *stompClient) connect(extra ...string) stomp.Frame {
	c.t.Helper()
	hs := append([]string{"accept-version:1.0,1.1,1.2", "host:/", "login:guest", "passcode:guest"}, extra...)
	c.frame(stomp.CmdConnect, "", hs...)
	f := c.expect(stomp.CmdConnected)
	if v, ok := stomp.ParseVersion(get(f, "version")); ok {
		c.v = v
	}
	return f
}

func get(f stomp.Frame, name string) string {
	v, _ := f.Get(name)
	return string(v)
}

func hdrs(f stomp.Frame) string {
	var b strings.Builder
	for _, h := range f.Headers {
		b.WriteString(string(h.Name) + ":" + string(h.Value) + " ")
	}
	return b.String()
}
func ptr[T any](v T) *T { return &v }
