//go:build unix

package integration

// Real, non-Go clients driving the broker as their users would: pika, kombu, Celery, amqplib
// (Node) and amqp-tools (librabbitmq's command-line tools). Each test runs one script from
// integration/clients/ against startBroker(t) and fails with the script's output when it exits
// non-zero. The scripts check their own round trips; see the header comment of each.
//
// A missing interpreter, module or tool fails the test with the package to install (all of
// them: integration/clients/install.sh), unless WARREN_SKIP_CLIENTS=1, which skips instead.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// clientPython is Debian's interpreter: python3-pika, python3-kombu and python3-celery install
// into its dist-packages, which another python3 first on PATH (pyenv, venv) does not see.
const clientPython = "/usr/bin/python3"

// clientProbeTimeout bounds one check that a tool or module is present.
const clientProbeTimeout = 30 * time.Second

// clientInstallHint says how to get every client these tests use.
const clientInstallHint = "run integration/clients/install.sh (or set WARREN_SKIP_CLIENTS=1 to skip the real-client tests)"

func TestClientPika(t *testing.T) {
	clientRequirePython(t, "pika", "python3-pika")
	b := startBroker(t)
	clientRun(t, 2*time.Minute, clientPython, clientScript(t, "python/pika_roundtrip.py"), b.URL, "10")
}

func TestClientKombu(t *testing.T) {
	clientRequirePython(t, "kombu", "python3-kombu")
	b := startBroker(t)
	clientRun(t, 2*time.Minute, clientPython, clientScript(t, "python/kombu_roundtrip.py"), b.URL, "10")
}

func TestClientCelery(t *testing.T) {
	clientRequirePython(t, "celery", "python3-celery")
	b := startBroker(t)
	// The script starts a worker subprocess (same process group, so a timeout kills it too).
	clientRun(t, 3*time.Minute, clientPython, clientScript(t, "python/celery_roundtrip.py"), b.URL)
}

func TestClientAmqplib(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		clientMissing(t, "node not found on PATH: install the Debian packages nodejs and npm")
	}
	if _, err := os.Stat(clientScript(t, "node/node_modules/amqplib/package.json")); err != nil {
		clientMissing(t, "amqplib is not installed: run `npm ci` in integration/clients/node (npm package amqplib)")
	}
	b := startBroker(t)
	clientRun(t, 2*time.Minute, node, clientScript(t, "node/roundtrip.js"), b.URL, "10")
}

func TestClientAmqpTools(t *testing.T) {
	for _, tool := range []string{"amqp-declare-queue", "amqp-publish", "amqp-get", "amqp-consume", "amqp-delete-queue"} {
		if _, err := exec.LookPath(tool); err != nil {
			clientMissing(t, tool+" not found on PATH: install the Debian package amqp-tools")
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		clientMissing(t, "bash not found on PATH: install the Debian package bash")
	}
	b := startBroker(t)
	clientRun(t, 2*time.Minute, bash, clientScript(t, "amqp-tools/roundtrip.sh"), b.URL)
}

// clientMissing fails the test (or skips it under WARREN_SKIP_CLIENTS=1) for a missing client.
func clientMissing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("WARREN_SKIP_CLIENTS") == "1" {
		t.Skipf("WARREN_SKIP_CLIENTS=1: %s", msg)
	}
	t.Fatalf("%s; %s", msg, clientInstallHint)
}

// clientRequirePython checks that Debian's python3 can import module (from Debian package pkg).
func clientRequirePython(t *testing.T, module, pkg string) {
	t.Helper()
	if _, err := os.Stat(clientPython); err != nil {
		clientMissing(t, clientPython+" not found: install the Debian packages python3 and "+pkg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, clientPython, "-c", "import "+module)
	cmd.Env = clientEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		clientMissing(t, clientPython+" cannot import "+module+" ("+strings.TrimSpace(string(out))+
			"): install the Debian package "+pkg)
	}
}

// clientScript returns the absolute path of a file under integration/clients.
func clientScript(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("clients", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("abs %s: %v", rel, err)
	}
	return p
}

// clientEnv is the environment for the scripts: this process's, less variables that would
// point Debian's python3 at another installation, and with no .pyc files written.
func clientEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "PYTHONPATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
}

// clientRun runs one client script with a timeout, in its own process group so that the
// timeout also ends any children (the Celery worker). It logs the output, and fails the test
// with it when the script exits non-zero or does not end with its OK line.
func clientRun(t *testing.T, timeout time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = filepath.Dir(args[0])
	cmd.Env = clientEnv()
	cmd.Stdin = nil
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		// Children left behind by a script that exited (normally none) go too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	text := strings.TrimRight(out.String(), "\n")
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		t.Fatalf("%s timed out after %v; output:\n%s", filepath.Base(args[0]), timeout, text)
	case err != nil:
		t.Fatalf("%s failed after %v: %v; output:\n%s", filepath.Base(args[0]), elapsed, err, text)
	}
	lines := strings.Split(text, "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, ": OK") {
		t.Fatalf("%s exited 0 after %v but its last line is %q, want its OK line; output:\n%s",
			filepath.Base(args[0]), elapsed, last, text)
	}
	t.Logf("%s passed in %v; output:\n%s", filepath.Base(args[0]), elapsed, text)
}
