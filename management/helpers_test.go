package management

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// TestMain checks that no test leaves a goroutine behind (the browser test in ui_test.go checks
// its own too).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a broker on 127.0.0.1:0 with the management handler on an httptest server.
type env struct {
	t       *testing.T
	b       *testbroker.Broker
	srv     *server.Server
	store   *storage.MemStore
	api     string // http://127.0.0.1:port
	amqpURL string // amqp://guest:guest@127.0.0.1:port/
	addr    string
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startEnv starts a broker (on store, a fresh one if nil) and its management API; both stop when
// the test ends. opts adjust the broker's options.
func startEnv(t *testing.T, store *storage.MemStore, opts ...func(*server.Options)) *env {
	t.Helper()
	if store == nil {
		store = storage.NewMemStore()
	}
	log := testLog(t)
	o := server.Options{Logger: log, Store: store, StatsInterval: 20 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	b := testbroker.Start(t, func(so *server.Options) { *so = o })
	hs := httptest.NewServer(NewHandler(b.Srv, log))
	t.Cleanup(hs.Close) // before the broker's own cleanup stops it
	return &env{t: t, b: b, srv: b.Srv, store: store, api: hs.URL, addr: b.Addr, amqpURL: b.URL}
}

// stop stops the broker before the test ends (its cleanup then does nothing more).
func (e *env) stop() {
	if err := e.b.Stop(); err != nil {
		e.t.Errorf("testbroker: %v", err)
	}
}

// resp is an HTTP response, read.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) any {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(r.body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("response is not JSON (%v): %q", err, r.body)
	}
	return v
}

func (r resp) obj(t *testing.T) map[string]any {
	t.Helper()
	m, ok := r.json(t).(map[string]any)
	if !ok {
		t.Fatalf("response is not a JSON object: %s", r.body)
	}
	return m
}

func (r resp) list(t *testing.T) []any {
	t.Helper()
	l, ok := r.json(t).([]any)
	if !ok {
		t.Fatalf("response is not a JSON array: %s", r.body)
	}
	return l
}

const guest = "guest:guest"

// do sends a request as user ("name:password"; "" sends no credentials). body is sent as is when it
// is a string or []byte, else encoded as JSON.
func (e *env) do(method, path, user string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.api+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		name, pass, _ := strings.Cut(user, ":")
		req.SetBasicAuth(name, pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// must sends a request as guest and fails the test unless the status is want.
func (e *env) must(want int, method, path string, body any) resp {
	e.t.Helper()
	r := e.do(method, path, guest, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

func (e *env) dial(props amqp.Table) *amqp.Connection {
	e.t.Helper()
	c, err := amqp.DialConfig(e.amqpURL, amqp.Config{Properties: props})
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// waitTimeout bounds how long a test waits (wait.For) for the broker's state or statistics to
// show a change.
const waitTimeout = 15 * time.Second

// --- FIELDS.txt: field names and JSON types from RabbitMQ 3.10.8's responses ---

// sampleFields maps a sample file name to its flattened paths and the JSON types seen there.
type sampleFields map[string]map[string][]string

func loadSampleFields(t *testing.T) sampleFields {
	t.Helper()
	f, err := os.Open("testdata/rabbitmq-3.10.8-fields.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := sampleFields{}
	var cur map[string][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "### "):
			cur = map[string][]string{}
			out[strings.TrimSpace(line[4:])] = cur
		default:
			path, typ, ok := strings.Cut(line, ": ")
			if !ok { // "x{}" or "x[]": an empty object or array
				path, typ = line, ""
			}
			cur[path] = append(cur[path], typ)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// flatten lists v's paths as FIELDS.txt writes them: "a.b: int", "a[]: str", and "a{}" / "a[]" for
// every object and array (FIELDS.txt has those only for empty ones; flatten has them for all).
func flatten(v any) map[string][]string {
	out := map[string][]string{}
	var walk func(prefix string, v any)
	add := func(p, typ string) {
		for _, x := range out[p] {
			if x == typ {
				return
			}
		}
		out[p] = append(out[p], typ)
	}
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			add(prefix+"{}", "")
			for k, x := range v {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, x)
			}
		case []any:
			if len(v) == 0 {
				add(prefix+"[]", "")
			}
			for _, x := range v {
				walk(prefix+"[]", x)
			}
		case json.Number:
			if strings.ContainsAny(string(v), ".eE") {
				add(prefix, "float")
			} else {
				add(prefix, "int")
			}
		case string:
			add(prefix, "str")
		case bool:
			add(prefix, "bool")
		case nil:
			add(prefix, "NoneType")
		}
	}
	walk("", v)
	return out
}

// checkFields checks that got has every path of the sample (except those skip accepts) with one of
// the sample's JSON types.
func checkFields(t *testing.T, fields sampleFields, sample string, got any, skip func(path string) bool) {
	t.Helper()
	want, ok := fields[sample]
	if !ok {
		t.Fatalf("no sample %s in FIELDS.txt", sample)
	}
	have := flatten(got)
	var problems []string
	for path, types := range want {
		if skip != nil && skip(path) {
			continue
		}
		gotTypes, ok := have[path]
		if !ok {
			if strings.HasSuffix(path, "{}") || strings.HasSuffix(path, "[]") {
				problems = append(problems, "missing "+path)
				continue
			}
			problems = append(problems, "missing "+path+" ("+strings.Join(types, "|")+")")
			continue
		}
		if contains(types, "") {
			continue // an empty object or array in the sample: any content will do
		}
		for _, g := range gotTypes {
			if !contains(types, g) {
				problems = append(problems, path+": got "+g+", RabbitMQ has "+strings.Join(types, "|"))
			}
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("%s: %d differences from RabbitMQ 3.10.8:\n  %s", sample, len(problems), strings.Join(problems, "\n  "))
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// erlangOnly accepts the paths of figures that only an Erlang VM has (reductions, garbage
// collection of processes, the classic queue's backing store, Mnesia, Raft, quorum queues' extra
// fields) and of values that depend on the sample's data (arguments, headers, node names, limits,
// policies), which Warren does not report or reports under its own names.
func erlangOnly(path string) bool {
	for _, seg := range []string{"garbage_collection", "reductions", "backing_queue_status", "metrics_gc_queue_length",
		"mnesia_", "ra_open_file_metrics", "msg_store_", "queue_index_", "io_read_count", "io_write_count", "io_reopen",
		"io_seek", "io_sync", "io_read_avg", "io_write_avg", "user_who_performed_action", "idle_since",
		"open_files", "members", "online", "leader", "messages_dlx", "message_bytes_dlx", "single_active_consumer_ctag",
		"limits.", "arguments.", "headers.", "value.", "definition.", "effective_policy_definition.", "cluster_state.",
		"client_properties.", "db_dir", "proc_total", "memory."} {
		if strings.Contains(path, seg) {
			return true
		}
	}
	return false
}
