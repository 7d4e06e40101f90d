package integration

import (
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// After answering the client's connection.close, Warren waits briefly for the client to close the
// socket (so the client reads close-ok, not a reset) but does not keep a connection whose client
// never closes: the socket is closed within about a second, whatever the heartbeat.
func TestClientCloseThenLingeringSocketIsClosed(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.Heartbeat = 60 * time.Second })
	w := wireHandshake(t, b)
	w.send(wireConnectionClose(200, "bye", 0, 0))
	w.expect(0, wireConnection, 51)
	start := time.Now()
	w.expectEOF() // within wireTimeout
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("socket closed after %v, want about 1s", d)
	}
}
