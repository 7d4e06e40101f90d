// Package integration holds black-box tests: real clients against a broker started on 127.0.0.1:0.
package integration

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/server"
)

// TestMain checks that no test leaves a goroutine behind.
//
// Set WARREN_TEST_URL (for example amqp://guest:guest@127.0.0.1:5672/) to run the suite against another
// broker, such as a reference RabbitMQ; tests that need a broker option Warren alone has are skipped then.
// Its MQTT and STOMP listeners are WARREN_TEST_MQTT_ADDR (default host:1883) and WARREN_TEST_STOMP_ADDR
// (default 127.0.0.1:61613).
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath)) // the broker binary crash_test.go built
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left behind: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// externalURL is the broker under test when it is not an in-process Warren.
var externalURL = os.Getenv("WARREN_TEST_URL")

// broker is one broker under test.
type broker struct {
	URL  string         // amqp://guest:guest@host:port/
	Addr string         // host:port
	Srv  *server.Server // the in-process broker; nil for an external one
}

// startBroker starts an in-process Warren on 127.0.0.1:0 and stops it when the test ends. Options may
// adjust server.Options. With WARREN_TEST_URL set it returns that broker instead (and skips the test if
// options were given, since an external broker cannot take them).
func startBroker(t testing.TB, opts ...func(*server.Options)) broker {
	t.Helper()
	if externalURL != "" {
		if len(opts) > 0 {
			t.Skip("needs broker options; WARREN_TEST_URL points at an external broker")
		}
		return broker{URL: externalURL, Addr: hostPort(t, externalURL)}
	}
	tb := testbroker.Start(t, opts...)
	// guest:guest whatever the options say, as against RabbitMQ: a test that changes the default
	// user dials with its own credentials (and checks that guest's are refused).
	return broker{URL: "amqp://guest:guest@" + tb.Addr + "/", Addr: tb.Addr, Srv: tb.Srv}
}

func hostPort(t testing.TB, url string) string {
	t.Helper()
	// amqp://user:pass@host:port/vhost
	s := url
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = s[i+1:]
	} else if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.Index(s, "/"); i >= 0 {
		s = s[:i]
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		s += ":5672"
	}
	return s
}

// testLogger logs through t.Log when -v is given, and discards otherwise.
func testLogger(t testing.TB) *slog.Logger { return testbroker.Logger(t) }
