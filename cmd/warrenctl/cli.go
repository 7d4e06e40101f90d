package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const usageText = `Usage: warrenctl [global flags] COMMAND [ARGS] [flags]

Administers Warren or RabbitMQ over the management HTTP API (RabbitMQ's /api paths).

Commands:
  list queues|exchanges|bindings|connections|channels|consumers|vhosts|users|policies|permissions|nodes
  declare queue NAME [--durable=true] [--auto-delete] [--arguments JSON]
  declare exchange NAME [--type direct] [--durable=true] [--auto-delete] [--internal] [--arguments JSON]
  declare binding SOURCE DESTINATION [--destination-type queue|exchange] [--routing-key KEY] [--arguments JSON]
  declare vhost NAME [--description TEXT] [--tags a,b]
  declare user NAME --new-password PASSWORD [--tags administrator,...]
  declare permission USER [--configure RE] [--write RE] [--read RE]      (in --vhost)
  declare super-stream NAME --partitions N | --binding-keys a,b [--arguments JSON]
  delete queue NAME [--if-unused] [--if-empty]
  delete exchange NAME [--if-unused]
  delete binding SOURCE DESTINATION [--destination-type queue|exchange] [--routing-key KEY]
  delete vhost NAME | delete user NAME
  purge queue NAME
  publish [--exchange NAME] [--routing-key KEY] [--properties JSON] [--header K=V]... [--persistent] [PAYLOAD]
          (without PAYLOAD the payload is read from standard input)
  get QUEUE [--count N] [--ackmode ack_requeue_true|ack_requeue_false|reject_requeue_true|reject_requeue_false]
  export FILE|-        definitions (of --vhost only if --vhost is given)
  import FILE|-        definitions (into --vhost only if --vhost is given)
  status               overview: version, object counts, messages and rates
  health               alarms check: exit 1 if an alarm is in effect
  close connection NAME [--reason TEXT]

Global flags (before or after the command):
  --url URL            management API (env WARREN_URL; default http://127.0.0.1:15672)
  --user NAME          (env WARREN_USER; default guest)
  --password PASS      (env WARREN_PASSWORD; default guest)
  --vhost NAME         virtual host (default /); list and export cover every vhost unless given
  --format table|json  table: aligned columns; json: the API's objects
  --columns a,b.c      list: the table's columns (dotted paths into the API's objects)
  --timeout DURATION   per HTTP request (default 60s)
  --cacert FILE        https: CA certificates (PEM) to trust (env WARREN_CACERT)
  --insecure           https: do not verify the server's certificate

Exit codes:
  0  success
  1  API or server error (RabbitMQ's reason is printed), broker unreachable, or health found an alarm
  2  usage error
  3  not found (HTTP 404)
  4  authentication or authorization refused (HTTP 401/403)
`

// cli holds one invocation's settings and streams.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	url, user, password, vhost, format, columns string
	cacert                                      string
	insecure                                    bool
	timeout                                     time.Duration
	vhostGiven                                  bool // --vhost was on the command line
	http                                        *http.Client
}

func newCLI(stdin io.Reader, stdout, stderr io.Writer) *cli {
	return &cli{stdin: stdin, stdout: stdout, stderr: stderr}
}

// usageError is a bad command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// apiError is an HTTP error answer of the management API.
type apiError struct {
	status int
	reason string // RabbitMQ's "reason" (or the body)
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.reason)
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue *usageError
	var ae *apiError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		return exitNotFound
	case errors.As(err, &ae) && (ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden):
		return exitAuth
	}
	return exitError
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// flags returns a flag set with the global flags bound to c, so they are accepted on either side
// of the command.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.url, "url", c.url, "management API base URL (env WARREN_URL)")
	fs.StringVar(&c.user, "user", c.user, "user name (env WARREN_USER)")
	fs.StringVar(&c.password, "password", c.password, "password (env WARREN_PASSWORD)")
	fs.Func("vhost", "virtual host (default /)", func(v string) error {
		c.vhost, c.vhostGiven = v, true
		return nil
	})
	fs.StringVar(&c.format, "format", c.format, "output format: table or json")
	fs.StringVar(&c.columns, "columns", c.columns, "list: columns of the table, comma-separated")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "timeout of each HTTP request")
	fs.StringVar(&c.cacert, "cacert", c.cacert, "https: PEM file of the CA certificates to trust (env WARREN_CACERT)")
	fs.BoolVar(&c.insecure, "insecure", c.insecure, "https: do not verify the server's certificate")
	return fs
}

// parse parses flags and positional arguments in any order ("delete queue q --if-empty" and
// "delete queue --if-empty q" alike); "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil // everything after "--" is positional
		}
		// fs.Parse stopped at a positional argument: keep it and parse on.
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c *cli) run(args []string) int {
	c.url = envOr("WARREN_URL", "http://127.0.0.1:15672")
	c.user = envOr("WARREN_USER", "guest")
	c.password = envOr("WARREN_PASSWORD", "guest")
	c.cacert = envOr("WARREN_CACERT", "")
	c.vhost, c.format, c.timeout = "/", "table", 60*time.Second
	err := c.dispatch(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, usageText)
		return exitOK
	}
	code := exitCode(err)
	if err != nil {
		fmt.Fprintln(c.stderr, "warrenctl:", err)
		if code == exitUsage {
			fmt.Fprintln(c.stderr, "Run 'warrenctl --help' for usage.")
		}
	}
	return code
}

// commands maps "verb" or "verb kind" to its implementation and the number of positional
// arguments it takes after them (min, max; max -1: any).
type command struct {
	min, max int
	flags    func(fs *flag.FlagSet) func(c *cli, args []string) error
}

func (c *cli) dispatch(args []string) error {
	// Global flags before the command.
	fs := c.flags("warrenctl")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	args = fs.Args()
	if len(args) == 0 {
		return usagef("no command given")
	}
	verb := args[0]
	if verb == "help" {
		return flag.ErrHelp
	}
	key := verb
	rest := args[1:]
	if _, ok := commands[verb]; !ok {
		if len(rest) == 0 {
			if _, ok := kinds[verb]; ok {
				return usagef("%s: say what to %s (%s)", verb, verb, strings.Join(kinds[verb], ", "))
			}
			return usagef("unknown command %q", verb)
		}
		key = verb + " " + rest[0]
		rest = rest[1:]
	}
	cmd, ok := commands[key]
	if !ok {
		if ks, ok := kinds[verb]; ok {
			return usagef("cannot %s %q (one of: %s)", verb, strings.TrimPrefix(key, verb+" "), strings.Join(ks, ", "))
		}
		return usagef("unknown command %q", verb)
	}
	sub := c.flags("warrenctl " + key)
	do := cmd.flags(sub)
	pos, err := parse(sub, rest)
	if err != nil {
		return err
	}
	if len(pos) < cmd.min || cmd.max >= 0 && len(pos) > cmd.max {
		return usagef("%s: wrong number of arguments (%d); see warrenctl --help", key, len(pos))
	}
	if c.format != "table" && c.format != "json" {
		return usagef("--format must be table or json, not %q", c.format)
	}
	u, err := url.Parse(c.url)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return usagef("--url %q is not an http(s) URL", c.url)
	}
	c.url = strings.TrimSuffix(c.url, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.cacert != "" || c.insecure {
		tc := &tls.Config{InsecureSkipVerify: c.insecure}
		if c.cacert != "" {
			pem, err := os.ReadFile(c.cacert)
			if err != nil {
				return usagef("--cacert: %v", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return usagef("--cacert: no PEM certificate in %s", c.cacert)
			}
		}
		tr.TLSClientConfig = tc
	}
	c.http = &http.Client{Timeout: c.timeout, Transport: tr}
	defer tr.CloseIdleConnections()
	if err := do(c, pos); err != nil {
		// Say which command and object the API refused: "delete queue "q": 404 Not Found: ...".
		what := key
		for _, p := range pos {
			what += fmt.Sprintf(" %q", p)
		}
		if c.vhostGiven && !globalCommands[key] || inVhost[key] {
			what += fmt.Sprintf(" in vhost %q", c.vhost)
		}
		var ae *apiError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s: %w", what, err)
		}
		return err
	}
	return nil
}

// inVhost are the commands that act in --vhost (given or not); globalCommands never do.
var inVhost = map[string]bool{
	"declare queue": true, "declare exchange": true, "declare binding": true, "declare permission": true,
	"delete queue": true, "delete exchange": true, "delete binding": true, "purge queue": true,
	"publish": true, "get": true, "declare super-stream": true,
}

var globalCommands = map[string]bool{
	"declare vhost": true, "declare user": true, "delete vhost": true, "delete user": true,
	"list users": true, "list vhosts": true, "list nodes": true, "status": true, "health": true, "close connection": true,
}

// kinds lists what each two-word verb applies to, for its usage errors.
var kinds = map[string][]string{
	"list":    {"queues", "exchanges", "bindings", "connections", "channels", "consumers", "vhosts", "users", "policies", "permissions"},
	"declare": {"queue", "exchange", "binding", "vhost", "user", "permission", "super-stream"},
	"delete":  {"queue", "exchange", "binding", "vhost", "user"},
	"purge":   {"queue"},
	"close":   {"connection"},
}

// esc escapes one path segment of the API: "/" becomes %2F, a space %20.
func esc(s string) string { return url.PathEscape(s) }

// request sends a request to the API and returns the answer's status and body. An answer of 400
// or more is an *apiError with RabbitMQ's reason, unless accept lists its status.
func (c *cli) request(method, path string, body any, header http.Header, accept ...int) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.url+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.user, c.password)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach the management API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 400 {
		return resp.StatusCode, data, nil
	}
	for _, a := range accept {
		if a == resp.StatusCode {
			return resp.StatusCode, data, nil
		}
	}
	return resp.StatusCode, data, &apiError{status: resp.StatusCode, reason: reasonOf(data)}
}

// reasonOf extracts RabbitMQ's reason from an error body ({"error": ..., "reason": ...}).
func reasonOf(body []byte) string {
	var e struct {
		Error  any `json:"error"`
		Reason any `json:"reason"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Reason == nil && e.Error == nil {
		return strings.TrimSpace(string(body))
	}
	str := func(v any) string {
		if s, ok := v.(string); ok {
			return s
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	if e.Reason == nil {
		return str(e.Error)
	}
	return str(e.Reason)
}

// getJSON GETs path and decodes its JSON (numbers kept as json.Number).
func (c *cli) getJSON(path string) (any, []byte, error) {
	_, data, err := c.request(http.MethodGet, path, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	v, err := decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return v, data, nil
}

func decode(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("the answer is not JSON: %w", err)
	}
	return v, nil
}
