package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MQTT with real command-line and Python clients: Eclipse Paho's Python client (Debian's
// python3-paho-mqtt, integration/clients/python/mqtt_roundtrip.py) and Eclipse Mosquitto's
// mosquitto_pub and mosquitto_sub (Debian's mosquitto-clients). With WARREN_TEST_URL they run
// against that broker's MQTT listener (WARREN_TEST_MQTT_ADDR; RabbitMQ 3.10.8 with rabbitmq_mqtt),
// leaving out MQTT 5, which RabbitMQ 3.10.8 does not speak, and QoS 2, which it takes as QoS 1.
// A missing client fails the test (CI installs them: integration/clients/install.sh), or skips
// it under WARREN_SKIP_CLIENTS=1.

func TestClientPahoMQTTPython(t *testing.T) {
	clientRequirePython(t, "paho.mqtt.client", "python3-paho-mqtt")
	b := startMQTTBroker(t)
	args := []string{clientScript(t, "python/mqtt_roundtrip.py"), b.MQTT, "10"}
	if externalURL == "" {
		args = append(args, "--v5")
	} else {
		t.Log("MQTT 5 part left out: RabbitMQ 3.10.8's MQTT plugin speaks 3.1 and 3.1.1 only")
	}
	clientRun(t, 2*time.Minute, clientPython, args...)
}

// mosquitto runs one mosquitto_pub or mosquitto_sub (from Debian's mosquitto-clients) against
// addr with the guest login and returns its standard output; a failure or a time-out fails the
// test.
func mosquitto(t *testing.T, addr, tool string, stdin []byte, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		clientMissing(t, tool+" not found on PATH: install the Debian package mosquitto-clients")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-h", host, "-p", port, "-u", "guest", "-P", "guest"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("%s %v timed out; stdout %q stderr %q", tool, args, out.String(), errb.String())
		}
		t.Fatalf("%s %v: %v; stdout %q stderr %q", tool, args, err, out.String(), errb.String())
	}
	return out.String()
}

// mosquitto_pub and mosquitto_sub: a persistent session (made with -c -E, then fed while away)
// gets text, binary (from a file, checked as hex) and empty messages at the lower QoS; a retained
// message with its retain flag; then, against Warren only, QoS 2 end to end and MQTT 5 properties
// (-V mqttv5 -D) with a subscription identifier.
func TestClientMosquitto(t *testing.T) {
	b := startMQTTBroker(t)
	base := "mosq/" + strings.ReplaceAll(uniqueTopic(t), "/", "-")
	id := fmt.Sprintf("mosq-sub-%d", time.Now().UnixNano())
	// The session and its subscription exist once -E exits.
	mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-c", "-i", id, "-q", "1", "-t", base+"/#", "-E")
	t.Cleanup(func() { mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-i", id, "-t", base+"/none", "-E") }) // clean session: gone

	bin := []byte{0, 1, 2, 0xfe, 0xff, 0, 'x'}
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	mosquitto(t, b.MQTT, "mosquitto_pub", nil, "-q", "1", "-t", base+"/text", "-m", "hello mosquitto")
	mosquitto(t, b.MQTT, "mosquitto_pub", nil, "-q", "1", "-t", base+"/bin", "-f", file)
	mosquitto(t, b.MQTT, "mosquitto_pub", []byte("from stdin"), "-q", "0", "-t", base+"/stdin", "-s")
	mosquitto(t, b.MQTT, "mosquitto_pub", nil, "-q", "1", "-t", base+"/empty", "-n")
	got := mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-c", "-i", id, "-q", "1", "-t", base+"/#", "-C", "4", "-W", "20",
		"-F", "%t|%q|%x")
	want := fmt.Sprintf("%[1]s/text|1|%[2]x\n%[1]s/bin|1|%[3]x\n%[1]s/stdin|0|%[4]x\n%[1]s/empty|1|\n",
		base, "hello mosquitto", bin, "from stdin")
	if got != want {
		t.Fatalf("persistent session got\n%s\nwant\n%s", got, want)
	}

	// Retained.
	mosquitto(t, b.MQTT, "mosquitto_pub", nil, "-q", "1", "-r", "-t", base+"/ret", "-m", "kept")
	got = mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-q", "1", "-t", base+"/ret", "-C", "1", "-W", "20", "-F", "%r|%t|%p")
	mosquitto(t, b.MQTT, "mosquitto_pub", nil, "-q", "1", "-r", "-t", base+"/ret", "-n")
	if want := "1|" + base + "/ret|kept\n"; got != want {
		t.Fatalf("retained: got %q, want %q", got, want)
	}

	if externalURL != "" {
		t.Log("QoS 2 and MQTT 5 parts left out: RabbitMQ 3.10.8 answers a QoS 2 PUBLISH with PUBACK (it " +
			"takes QoS 2 as 1), which mosquitto_pub rejects as a protocol error, and speaks no MQTT 5")
		return
	}
	// QoS 2 through a persistent session, granted and delivered at 2.
	id2 := id + "-q2"
	mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-c", "-i", id2, "-q", "2", "-t", base+"/q2", "-E")
	t.Cleanup(func() { mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-i", id2, "-t", base+"/none", "-E") })
	mosquitto(t, b.MQTT, "mosquitto_pub", nil, "-q", "2", "-t", base+"/q2", "-m", "exactly once")
	got = mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-c", "-i", id2, "-q", "2", "-t", base+"/q2", "-C", "1", "-W", "20", "-F", "%q|%p")
	if want := "2|exactly once\n"; got != want {
		t.Fatalf("QoS 2: got %q, want %q", got, want)
	}

	id5 := id + "-v5"
	mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-V", "mqttv5", "-c", "-x", "600", "-i", id5, "-q", "1", "-t", base+"/v5/#",
		"-D", "subscribe", "subscription-identifier", "99", "-E")
	mosquitto(t, b.MQTT, "mosquitto_pub", nil, "-V", "mqttv5", "-q", "1", "-t", base+"/v5/a", "-m", "props",
		"-D", "publish", "user-property", "app", "mosquitto", "-D", "publish", "content-type", "text/plain",
		"-D", "publish", "response-topic", base+"/reply", "-D", "publish", "correlation-data", "corr-1",
		"-D", "publish", "message-expiry-interval", "300")
	got = mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-V", "mqttv5", "-c", "-x", "600", "-i", id5, "-q", "1", "-t", base+"/v5/#",
		"-D", "subscribe", "subscription-identifier", "99", "-C", "1", "-W", "20", "-F", "%t|%p|%C|%R|%D|%P|%S")
	mosquitto(t, b.MQTT, "mosquitto_sub", nil, "-V", "mqttv5", "-i", id5, "-t", base+"/none", "-E") // clean start, expiry 0: gone
	if want := base + "/v5/a|props|text/plain|" + base + "/reply|corr-1|app:mosquitto|99\n"; got != want {
		t.Fatalf("MQTT 5: got %q, want %q", got, want)
	}
}
