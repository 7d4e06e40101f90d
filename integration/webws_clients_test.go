//go:build unix

package integration

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// The browser libraries over WebSockets, run by Node (integration/clients/node): MQTT.js (npm
// mqtt) against Web MQTT and @stomp/stompjs (with npm ws as its WebSocket) against Web STOMP, each
// exchanging messages with amqplib. Against RabbitMQ 3.10.8 too (WARREN_TEST_URL).

// clientNode returns node, failing (or skipping, WARREN_SKIP_CLIENTS=1) if it or one of the npm
// packages is missing.
func clientNode(t *testing.T, pkgs ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		clientMissing(t, "node not found on PATH: install the Debian packages nodejs and npm")
	}
	for _, p := range pkgs {
		if _, err := os.Stat(clientScript(t, "node/node_modules/"+p+"/package.json")); err != nil {
			clientMissing(t, p+" is not installed: run `npm ci` in integration/clients/node (npm package "+p+")")
		}
	}
	return node
}

func TestClientMQTTjsWebSocket(t *testing.T) {
	node := clientNode(t, "mqtt", "amqplib")
	b := startWebBroker(t)
	clientRun(t, 2*time.Minute, node, clientScript(t, "node/webmqtt.js"), b.URL, "ws://"+b.WebMQTT+"/ws")
}

func TestClientStompjsWebSocket(t *testing.T) {
	node := clientNode(t, "@stomp/stompjs", "ws", "amqplib")
	b := startWebBroker(t)
	clientRun(t, 2*time.Minute, node, clientScript(t, "node/webstomp.js"), b.URL, "ws://"+b.WebSTOMP+"/ws")
}
