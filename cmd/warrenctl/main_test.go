package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/warrentest"
)

// The tests run warrenctl in process against a Warren started with warrentest (management on
// 127.0.0.1:0). Set WARRENCTL_TEST_URL (e.g. http://127.0.0.1:15672) and WARRENCTL_TEST_AMQP_URL
// (amqp://guest:guest@127.0.0.1:5672/) to run them against another broker, such as the reference
// RabbitMQ; tests that need a Warren option are skipped then. They create and delete objects
// whose names start with "ctl".

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type target struct {
	http, amqp string
}

func startTarget(t *testing.T, opts ...warrentest.Option) target {
	t.Helper()
	if u := os.Getenv("WARRENCTL_TEST_URL"); u != "" {
		if len(opts) > 0 {
			t.Skip("needs Warren options; WARRENCTL_TEST_URL points at another broker")
		}
		return target{http: u, amqp: os.Getenv("WARRENCTL_TEST_AMQP_URL")}
	}
	b := warrentest.StartBroker(t, append([]warrentest.Option{warrentest.WithManagement()}, opts...)...)
	return target{http: b.HTTPURL(), amqp: b.AMQPURL()}
}

func external() bool { return os.Getenv("WARRENCTL_TEST_URL") != "" }

// result is one run of warrenctl.
type result struct {
	code           int
	stdout, stderr string
}

// ctl runs warrenctl against tg with stdin (may be "") and args.
func (tg target) ctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"--url", tg.http}, args...), strings.NewReader(stdin), &out, &errOut)
	t.Logf("warrenctl %q -> %d\n%s%s", args, code, out.String(), errOut.String())
	return result{code, out.String(), errOut.String()}
}

// must runs warrenctl and fails the test unless it exits with code.
func (tg target) must(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := tg.ctl(t, "", args...)
	if r.code != code {
		t.Fatalf("warrenctl %q exited %d, want %d\nstdout: %s\nstderr: %s", args, r.code, code, r.stdout, r.stderr)
	}
	return r
}

// objects decodes a json-format answer that is an array of objects.
func objects(t *testing.T, s string) []map[string]any {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not a JSON array of objects (%v): %s", err, s)
	}
	return v
}

func find(list []map[string]any, key, value string) map[string]any {
	for _, m := range list {
		if m[key] == value {
			return m
		}
	}
	return nil
}

// tableRow returns the line of a table whose first columns are the given cells, nil if none.
func tableRow(table string, first ...string) []string {
	for _, line := range strings.Split(table, "\n") {
		// Cells are separated by two or more spaces; a cell may hold single spaces.
		var cells []string
		for _, c := range strings.Split(line, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				cells = append(cells, c)
			}
		}
		if len(cells) >= len(first) && equal(cells[:len(first)], first) {
			return cells
		}
	}
	return nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestUsageErrors(t *testing.T) {
	tg := target{http: "http://127.0.0.1:1"} // never reached: usage is checked first
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"list"},
		{"list", "widgets"},
		{"declare", "queue"},
		{"declare", "queue", "a", "b"},
		{"declare", "queue", "q", "--arguments", "{not json"},
		{"declare", "queue", "q", "--no-such-flag"},
		{"declare", "user", "u"},
		{"declare", "user", "u", "--new-password", "p", "--password-hash", "h"},
		{"declare", "binding", "x", "q", "--destination-type", "topic"},
		{"delete", "policy", "p"},
		{"get", "q", "--ackmode", "eat"},
		{"get", "q", "--count", "0"},
		{"publish", "--header", "novalue", "x"},
		{"--format", "xml", "list", "queues"},
		{"list", "queues", "--format", "yaml"},
		{"--url", "ftp://x", "status"},
		{"export"},
		{"status", "extra"},
	} {
		r := tg.ctl(t, "", args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "warrenctl:") {
			t.Errorf("warrenctl %q: exit %d, stderr %q; want %d and a message", args, r.code, r.stderr, exitUsage)
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"list", "queues", "-h"}} {
		r := tg.ctl(t, "", args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Exit codes:") || !strings.Contains(r.stdout, "4  authentication") {
			t.Errorf("warrenctl %q: exit %d, stdout %q; want the usage with the exit codes", args, r.code, r.stdout)
		}
	}
}

func TestUnreachable(t *testing.T) {
	r := target{http: "http://127.0.0.1:1"}.ctl(t, "", "status")
	if r.code != exitError || !strings.Contains(r.stderr, "cannot reach") {
		t.Fatalf("exit %d, stderr %q; want 1, cannot reach", r.code, r.stderr)
	}
}

func TestEnvironment(t *testing.T) {
	tg := startTarget(t)
	t.Setenv("WARREN_URL", tg.http)
	t.Setenv("WARREN_USER", "guest")
	t.Setenv("WARREN_PASSWORD", "wrong")
	var out, errOut bytes.Buffer
	if code := run([]string{"list", "vhosts"}, strings.NewReader(""), &out, &errOut); code != exitAuth {
		t.Fatalf("with WARREN_PASSWORD=wrong: exit %d (%s), want %d", code, errOut.String(), exitAuth)
	}
	t.Setenv("WARREN_PASSWORD", "guest")
	if code := run([]string{"list", "vhosts"}, strings.NewReader(""), &out, &errOut); code != exitOK {
		t.Fatalf("with WARREN_URL and credentials from the environment: exit %d (%s)", code, errOut.String())
	}
	if tableRow(out.String(), "/") == nil {
		t.Fatalf("list vhosts: no /:\n%s", out.String())
	}
}

// TestQueues: a queue whose name has spaces and dots in vhost "/": declare, list in both formats,
// publish (argument and stdin), get, purge, delete, and 404s.
func TestQueues(t *testing.T) {
	tg := startTarget(t)
	const q = "ctl orders.eu west"
	tg.must(t, 0, "declare", "queue", q, "--arguments", `{"x-max-length": 10}`)
	t.Cleanup(func() { tg.ctl(t, "", "delete", "queue", q) })
	// Redeclaring with other arguments is refused with RabbitMQ's reason: exit 1.
	r := tg.must(t, exitError, "declare", "queue", q, "--arguments", `{"x-max-length": 11}`)
	if !strings.Contains(r.stderr, "inequivalent arg 'x-max-length'") {
		t.Fatalf("stderr %q, want RabbitMQ's reason", r.stderr)
	}
	r = tg.must(t, 0, "publish", "--routing-key", q, "--properties", `{"content_type": "text/plain"}`, "--header", "k=v", "--persistent", "first message")
	if !strings.Contains(r.stdout, "message published") || strings.Contains(r.stdout, "NOT") {
		t.Fatalf("publish: %q", r.stdout)
	}
	r = tg.ctl(t, "second\tmessage\n", "publish", "--routing-key", q)
	if r.code != 0 {
		t.Fatalf("publish from stdin: exit %d %s", r.code, r.stderr)
	}
	r = tg.must(t, 0, "publish", "--format", "json", "--routing-key", "ctl no such queue", "x")
	var routed map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &routed); err != nil || routed["routed"] != false {
		t.Fatalf("publish --format json of an unroutable message: %q", r.stdout)
	}

	// get, table: the first message stays (ack_requeue_true is the default).
	r = tg.must(t, 0, "get", q)
	if row := tableRow(r.stdout, q); row == nil || !strings.Contains(r.stdout, "first message") {
		t.Fatalf("get: %q", r.stdout)
	}
	// get, json, both messages, taken.
	r = tg.must(t, 0, "get", q, "--count", "5", "--ackmode", "ack_requeue_false", "--format", "json")
	msgs := objects(t, r.stdout)
	if len(msgs) != 2 || msgs[0]["payload"] != "first message" || msgs[1]["payload"] != "second\tmessage\n" {
		t.Fatalf("get json: %v", msgs)
	}
	props, _ := msgs[0]["properties"].(map[string]any)
	if props["content_type"] != "text/plain" || props["delivery_mode"] != float64(2) || lookup(props, "headers.k") != "v" {
		t.Fatalf("properties of the first message: %v", props)
	}
	if r := tg.must(t, 0, "get", q); !strings.Contains(r.stdout, "no messages") {
		t.Fatalf("get of an empty queue: %q", r.stdout)
	}

	tg.must(t, 0, "publish", "--routing-key", q, "a")
	tg.must(t, 0, "purge", "queue", q)
	if r := tg.must(t, 0, "get", q); !strings.Contains(r.stdout, "no messages") {
		t.Fatalf("get after purge: %q", r.stdout)
	}

	// list, table and json, all vhosts and one.
	r = tg.must(t, 0, "list", "queues")
	if row := tableRow(r.stdout, "/", q); row == nil {
		t.Fatalf("list queues: no row for %q:\n%s", q, r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "vhost ") {
		t.Fatalf("list queues: no header:\n%s", r.stdout)
	}
	r = tg.must(t, 0, "list", "queues", "--vhost", "/", "--columns", "name,arguments.x-max-length,durable")
	if row := tableRow(r.stdout, q, "10", "true"); row == nil {
		t.Fatalf("list queues --columns: %s", r.stdout)
	}
	r = tg.must(t, 0, "--format", "json", "list", "queues", "--vhost", "/")
	if m := find(objects(t, r.stdout), "name", q); m == nil || m["vhost"] != "/" || lookup(m, "arguments.x-max-length") != float64(10) {
		t.Fatalf("list queues json: %v", m)
	}

	tg.must(t, exitNotFound, "delete", "queue", q, "--vhost", "ctl no vhost")
	tg.must(t, 0, "publish", "--routing-key", q, "a")
	r = tg.must(t, exitError, "delete", "queue", q, "--if-empty", "--if-unused")
	if !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("delete --if-empty of a queue with a message: stderr %q", r.stderr)
	}
	tg.must(t, 0, "purge", "queue", q)
	tg.must(t, 0, "delete", "queue", q, "--if-empty")
	tg.must(t, exitNotFound, "delete", "queue", q)
	tg.must(t, exitNotFound, "purge", "queue", q)
	tg.must(t, exitNotFound, "get", q)
}

// TestExchangesAndBindings in a vhost whose name has a slash, a space and a dot.
func TestExchangesAndBindings(t *testing.T) {
	tg := startTarget(t)
	const vh = "ctl v/1 test.x"
	tg.must(t, 0, "declare", "vhost", vh, "--description", "for warrenctl", "--tags", "a,b")
	t.Cleanup(func() { tg.ctl(t, "", "delete", "vhost", vh) })
	r := tg.must(t, 0, "list", "vhosts")
	if row := tableRow(r.stdout, vh, "for warrenctl", "a,b"); row == nil {
		t.Fatalf("list vhosts: %s", r.stdout)
	}
	in := []string{"--vhost", vh}
	tg.must(t, 0, append(in, "declare", "exchange", "ctl.events topic", "--type", "topic")...)
	tg.must(t, 0, append(in, "declare", "exchange", "ctl.fan", "--type", "fanout", "--durable=false", "--auto-delete")...)
	tg.must(t, 0, append(in, "declare", "queue", "ctl q.1", "--durable=false")...)
	tg.must(t, 0, append(in, "declare", "binding", "ctl.events topic", "ctl q.1", "--routing-key", "order.*")...)
	tg.must(t, 0, append(in, "declare", "binding", "ctl.events topic", "ctl.fan", "--destination-type", "exchange", "--routing-key", "#")...)
	tg.must(t, exitNotFound, append(in, "declare", "binding", "ctl no exchange", "ctl q.1")...)

	r = tg.must(t, 0, append(in, "list", "exchanges")...)
	if tableRow(r.stdout, vh, "ctl.events topic", "topic", "true") == nil || tableRow(r.stdout, vh, "ctl.fan", "fanout", "false", "true") == nil {
		t.Fatalf("list exchanges: %s", r.stdout)
	}
	r = tg.must(t, 0, append(in, "list", "bindings")...)
	if tableRow(r.stdout, vh, "ctl.events topic", "ctl q.1", "queue", "order.*") == nil ||
		tableRow(r.stdout, vh, "ctl.events topic", "ctl.fan", "exchange", "#") == nil {
		t.Fatalf("list bindings: %s", r.stdout)
	}
	r = tg.must(t, 0, append(in, "list", "bindings", "--format", "json")...)
	if find(objects(t, r.stdout), "destination", "ctl q.1") == nil {
		t.Fatalf("list bindings json: %s", r.stdout)
	}

	r = tg.must(t, 0, append(in, "publish", "--exchange", "ctl.events topic", "--routing-key", "order.created", "o1")...)
	if strings.Contains(r.stdout, "NOT") {
		t.Fatalf("publish through the binding: %q", r.stdout)
	}
	tg.must(t, 0, append(in, "delete", "binding", "ctl.events topic", "ctl q.1", "--routing-key", "order.*")...)
	tg.must(t, exitNotFound, append(in, "delete", "binding", "ctl.events topic", "ctl q.1", "--routing-key", "order.*")...)
	tg.must(t, 0, append(in, "delete", "binding", "ctl.events topic", "ctl.fan", "--destination-type", "exchange", "--routing-key", "#")...)
	r = tg.must(t, 0, append(in, "publish", "--exchange", "ctl.events topic", "--routing-key", "order.created", "o2")...)
	if !strings.Contains(r.stdout, "NOT routed") {
		t.Fatalf("publish after the binding's delete: %q", r.stdout)
	}
	r = tg.must(t, 0, append(in, "get", "ctl q.1", "--format", "json", "--count", "10")...)
	if got := objects(t, r.stdout); len(got) != 1 || got[0]["payload"] != "o1" {
		t.Fatalf("messages in the queue: %v", got)
	}
	tg.must(t, 0, append(in, "delete", "exchange", "ctl.events topic", "--if-unused")...)
	tg.must(t, exitNotFound, append(in, "delete", "exchange", "ctl.events topic")...)
	// Publishing to a missing exchange is a 400 whose reason is the AMQP 404 (RabbitMQ's too).
	r = tg.must(t, exitError, append(in, "publish", "--exchange", "ctl.events topic", "x")...)
	if !strings.Contains(r.stderr, "NOT_FOUND - no exchange 'ctl.events topic' in vhost '"+vh+"'") {
		t.Fatalf("publish to a missing exchange: %q", r.stderr)
	}
	tg.must(t, 0, "delete", "vhost", vh)
	tg.must(t, exitNotFound, "delete", "vhost", vh)
	tg.must(t, exitNotFound, append(in, "list", "queues")...)
}

func TestUsersAndPermissions(t *testing.T) {
	tg := startTarget(t)
	const user = "ctl app.user 1"
	tg.must(t, 0, "declare", "user", user, "--new-password", "pw", "--tags", "management")
	t.Cleanup(func() { tg.ctl(t, "", "delete", "user", user) })
	r := tg.must(t, 0, "list", "users")
	if tableRow(r.stdout, user, "management") == nil || tableRow(r.stdout, "guest", "administrator") == nil {
		t.Fatalf("list users: %s", r.stdout)
	}
	tg.must(t, 0, "declare", "permission", user, "--configure", "^ctl", "--write", ".*", "--read", "")
	r = tg.must(t, 0, "list", "permissions", "--vhost", "/")
	if tableRow(r.stdout, user, "/", "^ctl", ".*") == nil {
		t.Fatalf("list permissions: %s", r.stdout)
	}
	r = tg.must(t, 0, "list", "permissions", "--format", "json")
	if m := find(objects(t, r.stdout), "user", user); m == nil || m["read"] != "" {
		t.Fatalf("list permissions json: %v", m)
	}

	as := []string{"--user", user, "--password", "pw"}
	tg.must(t, 0, append(as, "list", "queues", "--vhost", "/")...)
	// A management user may not list users (administrator only): 401, exit 4.
	r = tg.must(t, exitAuth, append(as, "list", "users")...)
	if !strings.Contains(r.stderr, "40") {
		t.Fatalf("stderr %q", r.stderr)
	}
	tg.must(t, exitAuth, "--user", user, "--password", "wrong", "list", "queues")
	tg.must(t, exitAuth, "--user", "ctl nobody", "list", "queues")

	tg.must(t, 0, "declare", "user", user, "--password-hash", "bm90IGEgcmVhbCBoYXNoIGJ1dCBiYXNlNjQ=")
	tg.must(t, 0, "delete", "user", user)
	tg.must(t, exitNotFound, "delete", "user", user)
}

// waitConn polls list connections until one appears (RabbitMQ lists connections only after its
// statistics interval; Warren at once).
func waitConn(t *testing.T, tg target) map[string]any {
	t.Helper()
	var list []map[string]any
	// Every 100 ms: an external broker's statistics change no faster.
	if !wait.Until(20*time.Second, 100*time.Millisecond, func() bool {
		list = objects(t, tg.must(t, 0, "list", "connections", "--format", "json").stdout)
		return len(list) > 0
	}) {
		t.Fatal("no connection listed")
	}
	return list[0]
}

func TestConnectionsChannelsConsumers(t *testing.T) {
	tg := startTarget(t)
	if tg.amqp == "" {
		t.Skip("WARRENCTL_TEST_AMQP_URL is not set")
	}
	conn, err := amqp.DialConfig(tg.amqp, amqp.Config{Properties: amqp.Table{"connection_name": "ctl test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume(q.Name, "ctl consumer.1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	c := waitConn(t, tg)
	name, _ := c["name"].(string)
	if !strings.Contains(name, " -> ") {
		t.Fatalf("connection name %q", name)
	}
	r := tg.must(t, 0, "list", "connections")
	if tableRow(r.stdout, name, "guest", "/") == nil {
		t.Fatalf("list connections: %s", r.stdout)
	}
	tg.must(t, 0, "list", "connections", "--vhost", "/")
	for _, kind := range []string{"channels", "consumers"} {
		if !wait.Until(20*time.Second, 100*time.Millisecond, func() bool {
			return len(objects(t, tg.must(t, 0, "list", kind, "--format", "json").stdout)) > 0
		}) {
			t.Fatalf("list %s: none", kind)
		}
	}
	r = tg.must(t, 0, "list", "consumers", "--vhost", "/")
	if tableRow(r.stdout, "/", q.Name, "ctl consumer.1") == nil {
		t.Fatalf("list consumers: %s", r.stdout)
	}
	r = tg.must(t, 0, "list", "channels")
	if tableRow(r.stdout, name+" (1)", "guest", "/") == nil {
		t.Fatalf("list channels: %s", r.stdout)
	}

	tg.must(t, 0, "close", "connection", name, "--reason", "ctl maintenance")
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced || !strings.Contains(e.Reason, "ctl maintenance") {
			t.Fatalf("closed with %v, want 320 with the reason", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed")
	}
	tg.must(t, exitNotFound, "close", "connection", "127.0.0.1:1 -> 127.0.0.1:2")
}

func TestExportImport(t *testing.T) {
	tg := startTarget(t)
	tg.must(t, 0, "declare", "queue", "ctl exported.q", "--arguments", `{"x-message-ttl": 60000}`)
	t.Cleanup(func() { tg.ctl(t, "", "delete", "queue", "ctl exported.q") })
	file := filepath.Join(t.TempDir(), "defs.json")
	r := tg.must(t, 0, "export", file)
	if !strings.Contains(r.stderr, file) {
		t.Fatalf("export: %q", r.stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var defs map[string]any
	if err := json.Unmarshal(data, &defs); err != nil {
		t.Fatalf("exported file: %v", err)
	}
	if _, ok := defs["users"]; !ok {
		t.Fatalf("export of every vhost has no users: %s", data)
	}
	tg.must(t, 0, "delete", "queue", "ctl exported.q")
	tg.must(t, 0, "import", file)
	r = tg.must(t, 0, "list", "queues", "--vhost", "/", "--format", "json")
	if m := find(objects(t, r.stdout), "name", "ctl exported.q"); m == nil || lookup(m, "arguments.x-message-ttl") != float64(60000) {
		t.Fatalf("after import: %v", m)
	}

	// One vhost's definitions, to stdout and back from stdin.
	r = tg.must(t, 0, "export", "-", "--vhost", "/")
	defs = nil
	if err := json.Unmarshal([]byte(r.stdout), &defs); err != nil {
		t.Fatalf("export -: %v", err)
	}
	if _, ok := defs["users"]; ok {
		t.Fatal("a vhost's export has users")
	}
	tg.must(t, 0, "delete", "queue", "ctl exported.q")
	if r := tg.ctl(t, r.stdout, "import", "-", "--vhost", "/"); r.code != 0 {
		t.Fatalf("import - from stdin: exit %d %s", r.code, r.stderr)
	}
	tg.must(t, 0, "list", "queues", "--vhost", "/", "--columns", "name")

	if r := tg.ctl(t, "{not json", "import", "-"); r.code != exitUsage {
		t.Fatalf("import of a non-JSON file: exit %d", r.code)
	}
	r = tg.ctl(t, `{"queues": [{"name": "ctl q", "vhost": "ctl no vhost", "durable": true}]}`, "import", "-")
	if r.code != exitError || !strings.Contains(r.stderr, "no_such_vhost") {
		t.Fatalf("import into a missing vhost: exit %d %q", r.code, r.stderr)
	}
	tg.must(t, exitError, "import", filepath.Join(t.TempDir(), "missing.json"))
	tg.must(t, exitError, "export", filepath.Join(t.TempDir(), "no", "dir.json"))
}

func TestStatusAndHealth(t *testing.T) {
	tg := startTarget(t)
	r := tg.must(t, 0, "status")
	for _, k := range []string{"product", "rabbitmq_version", "queues", "messages", "publish_rate"} {
		if !strings.Contains(r.stdout, k) {
			t.Fatalf("status: no %s:\n%s", k, r.stdout)
		}
	}
	if !external() && !strings.Contains(r.stdout, "Warren "+server.Version) {
		t.Fatalf("status: no version:\n%s", r.stdout)
	}
	r = tg.must(t, 0, "status", "--format", "json")
	var o map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &o); err != nil || o["rabbitmq_version"] == nil {
		t.Fatalf("status json: %v %s", err, r.stdout)
	}
	if r := tg.must(t, 0, "health"); strings.TrimSpace(r.stdout) != "ok" {
		t.Fatalf("health: %q", r.stdout)
	}
	tg.must(t, 0, "health", "--format", "json")
}

func TestHealthAlarm(t *testing.T) {
	tg := startTarget(t, warrentest.WithServerOptions(func(o *server.Options) {
		o.DiskFree = func() (uint64, error) { return 1, nil } // below the free-disk limit
	}))
	// The disk alarm is raised by the broker's first check, right after it starts.
	var r result
	wait.Until(20*time.Second, 10*time.Millisecond, func() bool {
		r = tg.ctl(t, "", "health")
		return r.code != exitOK
	})
	if r.code != exitError {
		t.Fatalf("health: exit %d, want 1 once the alarm is raised", r.code)
	}
	if !strings.Contains(r.stderr, "unhealthy") || !strings.Contains(r.stderr, "disk") {
		t.Fatalf("health with an alarm: %q", r.stderr)
	}
	r = tg.ctl(t, "", "health", "--format", "json")
	if r.code != exitError || !strings.Contains(r.stdout, `"status": "failed"`) {
		t.Fatalf("health json: %d %q", r.code, r.stdout)
	}
}

// TestListEveryKind: every list command in both formats; json is an array.
func TestListEveryKind(t *testing.T) {
	tg := startTarget(t)
	for kind, k := range listKinds {
		for _, format := range []string{"table", "json"} {
			for _, scope := range [][]string{nil, {"--vhost", "/"}} {
				args := append([]string{"list", kind, "--format", format}, scope...)
				r := tg.must(t, 0, args...)
				if format == "json" {
					objects(t, r.stdout)
				} else if first := strings.SplitN(r.stdout, "\n", 2)[0]; !strings.HasPrefix(first, k.cols[0]) {
					t.Fatalf("warrenctl %q: header %q", args, first)
				}
			}
		}
	}
}

// TestHTTPS: --cacert trusts a server's CA, --insecure skips verification, and without either an
// unknown certificate is refused (exit 1).
func TestHTTPS(t *testing.T) {
	if external() {
		t.Skip("starts its own HTTPS server")
	}
	b := warrentest.StartBroker(t)
	hs := httptest.NewTLSServer(management.NewHandler(b.Server(), nil))
	defer hs.Close()
	tg := target{http: hs.URL}
	r := tg.must(t, exitError, "status")
	if !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("an unknown certificate: %q", r.stderr)
	}
	tg.must(t, 0, "--insecure", "status")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw})
	if err := os.WriteFile(ca, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	tg.must(t, 0, "--cacert", ca, "list", "vhosts")
	t.Setenv("WARREN_CACERT", ca)
	tg.must(t, 0, "health")
	tg.must(t, exitUsage, "--cacert", filepath.Join(t.TempDir(), "missing.pem"), "status")
}

// TestListNodes: list nodes shows the node (every member on a cluster) with running true.
func TestListNodes(t *testing.T) {
	tg := startTarget(t)
	r := tg.must(t, 0, "list", "nodes")
	if !strings.Contains(r.stdout, "running") || !strings.Contains(r.stdout, "true") {
		t.Fatalf("list nodes: %s", r.stdout)
	}
}
