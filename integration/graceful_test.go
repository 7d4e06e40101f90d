package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// SIGTERM on the real binary: publishers' connections are closed with 320 CONNECTION_FORCED, the
// process exits 0, and a restart on the same data directory has every confirmed message.
func TestGracefulShutdownKeepsConfirmedMessages(t *testing.T) {
	if externalURL != "" {
		t.Skip("runs the warren binary")
	}
	dir := t.TempDir()
	p := startProc(t, dir)
	conn, err := amqp.Dial(p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("graceful", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 500
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var pending []*amqp.DeferredConfirmation
	for i := range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "graceful", false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, dc)
	}
	confirmed := map[string]bool{}
	for i, dc := range pending {
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("confirm %d: %v %v", i, ok, err)
		}
		confirmed[fmt.Sprintf("m%d", i)] = true
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced || !e.Server {
			t.Fatalf("connection closed with %v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("connection not closed after SIGTERM:\n%s", p.log)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("broker still running 30s after SIGTERM:\n%s", p.log)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, p.log)
	}
	if !strings.Contains(p.log.String(), "broker stopped") {
		t.Fatalf("no clean stop logged:\n%s", p.log)
	}

	p2 := startProc(t, dir)
	conn2, err := amqp.Dial(p2.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	ch2, err := conn2.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for len(confirmed) > 0 {
		m, ok, err := ch2.Get("graceful", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Fatalf("%d confirmed messages lost after a graceful restart", len(confirmed))
		}
		if !confirmed[string(m.Body)] {
			t.Fatalf("unexpected or duplicated message %q", m.Body)
		}
		delete(confirmed, string(m.Body))
	}
	if _, ok, _ := ch2.Get("graceful", true); ok {
		t.Fatal("more messages than were published")
	}
	p2.cmd.Process.Signal(syscall.SIGTERM)
	<-p2.done
	if code := p2.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("second broker exit code %d:\n%s", code, p2.log)
	}
}

// A version set with -ldflags -X is the one `warren --version`, /api/overview and connection.start
// report; the health endpoint answers 200 once the broker is ready.
func TestVersionLdflagsAndHealth(t *testing.T) {
	if externalURL != "" {
		t.Skip("runs the warren binary")
	}
	const version = "9.8.7-test"
	bin := filepath.Join(t.TempDir(), "warren")
	out, err := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/warrenmq/warren/server.Version="+version, "../cmd/warren").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").Output()
	if err != nil || string(out) != "warren "+version+"\n" {
		t.Fatalf("--version: %q %v", out, err)
	}

	cmd := exec.Command(bin, "--amqp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "WARREN_DEFAULT_USER=admin", "WARREN_DEFAULT_PASS=pw", "WARREN_LOOPBACK_USERS=none")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	done := make(chan struct{})
	var logged strings.Builder
	go func() {
		defer close(done)
		re := regexp.MustCompile(`msg="warren ready".* amqp=(\S+) http=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logged.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1:]
			}
		}
		cmd.Wait()
	}()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}()
	var amqpAddr, httpAddr string
	select {
	case a := <-ready:
		amqpAddr, httpAddr = a[0], a[1]
	case <-done:
		t.Fatalf("broker exited:\n%s", logged.String())
	case <-time.After(60 * time.Second):
		t.Fatal("broker not ready after 60s")
	}

	conn, err := amqp.Dial("amqp://admin:pw@" + amqpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	if v := conn.Properties["version"]; v != version {
		t.Errorf("connection.start version %v, want %s", v, version)
	}
	conn.Close()

	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+path, nil)
		req.SetBasicAuth("admin", "pw")
		req.Close = true // no idle connection outlives the test (goleak)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, body := get("/api/overview")
	var ov struct {
		ProductVersion string `json:"product_version"`
	}
	if err := json.Unmarshal(body, &ov); code != 200 || err != nil || ov.ProductVersion != version {
		t.Errorf("/api/overview: %d product_version %q (%v)", code, ov.ProductVersion, err)
	}
	if code, body := get("/api/health/checks/alarms"); code != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("health check: %d %s", code, body)
	}
	// warren healthcheck, as the Docker healthcheck runs it, with the broker's environment.
	hc := exec.Command(bin, "healthcheck", "--url", "http://"+httpAddr)
	hc.Env = cmd.Env
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("warren healthcheck: %v\n%s", err, out)
	}
	hc = exec.Command(bin, "healthcheck", "--url", "http://"+httpAddr, "--password", "wrong")
	hc.Env = cmd.Env
	if out, err := hc.CombinedOutput(); err == nil {
		t.Errorf("warren healthcheck passed with a wrong password:\n%s", out)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("warren healthcheck: %v, want exit code 1", err)
	}
}

// The binary reads a rabbitmq.conf-style file and imports load_definitions before it is ready;
// default_user and default_vhost shape a fresh store; a bad file stops it with FILE:LINE and exit 1.
func TestConfigFileAndDefinitionsAtBoot(t *testing.T) {
	if externalURL != "" {
		t.Skip("runs the warren binary")
	}
	dir := t.TempDir()
	defs := filepath.Join(dir, "defs.json")
	if err := os.WriteFile(defs, []byte(`{"queues": [{"name": "from-defs", "vhost": "app", "durable": true, "auto_delete": false, "arguments": {}}],
		"vhosts": [{"name": "app"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "warren.conf")
	if err := os.WriteFile(conf, []byte("# test\ndefault_user = admin\ndefault_pass = pw\ndefault_vhost = app\n"+
		"loopback_users = none\nload_definitions = "+defs+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, filepath.Join(dir, "data"), "--config", conf)
	conn, err := amqp.Dial(strings.Replace(p.url, "guest:guest@", "admin:pw@", 1) + "app")
	if err != nil {
		t.Fatalf("dial admin@app: %v\n%s", err, p.log)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive("from-defs", true, false, false, false, nil); err != nil {
		t.Fatalf("queue from load_definitions: %v", err)
	}
	if c, err := amqp.Dial(p.url); err == nil { // guest does not exist: default_user replaced it
		c.Close()
		t.Fatal("guest logged in on a broker whose default user is admin")
	}

	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("heartbeat = 30\nheart_beat = 30\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(warrenBinary(t), "--config", bad, "--data-dir", filepath.Join(dir, "data2")).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), bad+":2: heart_beat: unknown key") {
		t.Fatalf("bad config: %v\n%s", err, out)
	}
}
