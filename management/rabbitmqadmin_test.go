package management

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RabbitMQ's own API client, rabbitmqadmin 3.10.8 (testdata/rabbitmqadmin, MPL 2.0, see
// testdata/rabbitmqadmin.NOTICE), run against Warren: declare, list, publish, get, bindings,
// export and import.
func TestRabbitmqadmin(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("rabbitmqadmin needs %s, which is missing: %v", python, err)
	}
	e := startEnv(t, nil)
	u, err := url.Parse(e.api)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("testdata/rabbitmqadmin")
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		full := append([]string{script, "-H", u.Hostname(), "-P", u.Port(), "-u", "guest", "-p", "guest"}, args...)
		out, err := exec.CommandContext(ctx, python, full...).CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqadmin %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	expect := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}

	expect(run("declare", "queue", "name=ra.q", "durable=true"), "queue declared")
	expect(run("declare", "exchange", "name=ra.x", "type=topic"), "exchange declared")
	expect(run("declare", "binding", "source=ra.x", "destination=ra.q", "routing_key=a.#"), "binding declared")
	expect(run("publish", "exchange=ra.x", "routing_key=a.b", "payload=hello warren"), "Message published")
	expect(run("publish", "routing_key=nowhere", "payload=x"), "Message published but NOT routed")
	expect(run("list", "queues", "name", "messages"), "| ra.q | 1        |")
	expect(run("-f", "tsv", "list", "bindings", "source", "destination", "routing_key"), "ra.x\tra.q\ta.#")
	expect(run("list", "exchanges", "name", "type"), "| ra.x        | topic   |", "| amq.headers | headers |")
	expect(run("get", "queue=ra.q", "ackmode=ack_requeue_false"), "hello warren", "a.b")
	expect(run("list", "queues", "name", "messages"), "| ra.q | 0        |")
	expect(run("show", "overview"), "3.10.8")
	expect(run("list", "users"), "guest", "administrator")
	expect(run("list", "vhosts"), "/")
	expect(run("list", "nodes"), e.srv.NodeName())

	defs := filepath.Join(t.TempDir(), "defs.json")
	expect(run("export", defs), "Exported definitions")
	b, err := os.ReadFile(defs)
	if err != nil {
		t.Fatal(err)
	}
	expect(string(b), `"ra.q"`, `"ra.x"`, `"a.#"`, "rabbit_password_hashing_sha256")
	expect(run("delete", "binding", "source=ra.x", "destination=ra.q", "destination_type=queue", "properties_key=a.%23"), "binding deleted")
	expect(run("delete", "queue", "name=ra.q"), "queue deleted")
	expect(run("delete", "exchange", "name=ra.x"), "exchange deleted")
	expect(run("list", "queues", "name"), "No items")
	expect(run("import", defs), "Uploaded definitions")
	expect(run("-f", "tsv", "list", "bindings", "source", "destination", "routing_key"), "ra.x\tra.q\ta.#")
	expect(run("list", "queues", "name"), "ra.q")
}
