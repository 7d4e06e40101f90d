//go:build unix

package integration

import (
	"testing"
	"time"
)

// TestClientStompPy: Debian's stomp.py (python3-stomp) speaks STOMP 1.0, 1.1 and 1.2 to the
// broker, with pika on the AMQP side (integration/clients/python/stomp_roundtrip.py).
func TestClientStompPy(t *testing.T) {
	clientRequirePython(t, "stomp", "python3-stomp")
	clientRequirePython(t, "pika", "python3-pika")
	sb := startSTOMP(t)
	clientRun(t, 2*time.Minute, clientPython, clientScript(t, "python/stomp_roundtrip.py"), sb.STOMP, sb.URL, "20")
}
