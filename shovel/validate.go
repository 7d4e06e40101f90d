package shovel

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	wamqp "github.com/warrenmq/warren/amqp"

	"github.com/warrenmq/warren/server"
)

// Validation of a shovel's definition as RabbitMQ 3.10's rabbit_shovel_parameters does it, with
// its texts: the source and destination checks first, then rabbit_parameter_validation:proplist
// over the known keys (whose errors come out last key first, the unrecognised terms before them).
// The one deliberate difference: only the amqp091 protocol is built in, so src-protocol and
// dest-protocol accept "amqp091" alone.

// validate returns RabbitMQ's "Validation failed" error for a bad definition, or nil.
// mayConnect (nil: no check) refuses a direct URI's vhost to the user setting the shovel.
func validate(name string, v any, mayConnect func(vhost string) error) error {
	var errs []string
	errs = append(errs, validateEnds(v)...)
	keys := definitionKeys
	if mayConnect != nil {
		keys = slices.Clone(definitionKeys)
		for i, c := range keys {
			if c.key == "src-uri" || c.key == "dest-uri" {
				keys[i].check = uriCheckAs(mayConnect)
			}
		}
	}
	errs = append(errs, proplist(name, keys, v)...)
	if len(errs) == 0 {
		return nil
	}
	reason := "Validation failed\n\n" + strings.Join(errs, "\n") + "\n"
	return &server.BadRequestError{Reason: strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(reason)}
}

// validateEnds is rabbit_shovel_parameters' validate_src and validate_dest for amqp091.
func validateEnds(v any) []string {
	m, _ := v.(map[string]any)
	var errs []string
	_, q := m["src-queue"]
	_, x := m["src-exchange"]
	switch {
	case !q && !x:
		errs = append(errs, "Must specify 'src-exchange' or 'src-queue'")
	case q && x:
		errs = append(errs, "Cannot specify 'src-exchange' and 'src-queue'")
	}
	after, ok := m["src-delete-after"]
	if !ok {
		after = m["delete-after"]
	}
	if n, isNum := after.(json.Number); isNum && m["ack-mode"] == "no-ack" {
		if _, err := n.Int64(); err == nil {
			errs = append(errs, "Cannot specify 'no-ack' and numerical 'delete-after'")
		}
	}
	_, dq := m["dest-queue"]
	_, dx := m["dest-exchange"]
	if dq && dx {
		errs = append(errs, "Cannot specify 'dest-exchange' and 'dest-queue'")
	}
	return errs
}

type check func(key string, v any) []string

type constraint struct {
	key       string
	check     check
	mandatory bool
}

// definitionKeys are the keys of an amqp091 shovel, in rabbit_shovel_parameters' order.
var definitionKeys = []constraint{
	{"reconnect-delay", number, false},
	{"ack-mode", enum("no-ack", "on-publish", "on-confirm"), false},
	{"src-protocol", enum("amqp091"), false},
	{"dest-protocol", enum("amqp091"), false},
	{"src-uri", uriCheck, true},
	{"src-exchange", binary, false},
	{"src-exchange-key", binary, false},
	{"src-queue", binary, false},
	{"src-queue-args", mapCheck, false},
	{"src-consumer-args", nested([]constraint{{"x-priority", anything, false}, {"x-cancel-on-ha-failover", anything, false}}), false},
	{"prefetch-count", number, false},
	{"src-prefetch-count", number, false},
	{"delete-after", deleteAfter, false},
	{"src-delete-after", deleteAfter, false},
	{"src-predeclared", boolean, false},
	{"dest-uri", uriCheck, true},
	{"dest-exchange", binary, false},
	{"dest-exchange-key", binary, false},
	{"dest-queue", queueName, false},
	{"dest-queue-args", mapCheck, false},
	{"add-forward-headers", boolean, false},
	{"add-timestamp-header", boolean, false},
	{"dest-add-forward-headers", boolean, false},
	{"dest-add-timestamp-header", boolean, false},
	{"publish-properties", nested(propertyKeys), false},
	{"dest-publish-properties", nested(propertyKeys), false},
	{"dest-predeclared", boolean, false},
}

var propertyKeys = []constraint{
	{"content_type", binary, false}, {"content_encoding", binary, false}, {"headers", anything, false},
	{"delivery_mode", number, false}, {"priority", number, false}, {"correlation_id", binary, false},
	{"reply_to", binary, false}, {"expiration", binary, false}, {"message_id", binary, false},
	{"timestamp", number, false}, {"type", binary, false}, {"user_id", binary, false},
	{"app_id", binary, false}, {"cluster_id", binary, false},
}

// proplist is rabbit_parameter_validation:proplist.
func proplist(name string, cs []constraint, term any) []string {
	var rest []string // the unrecognised terms, as Erlang prints them
	var m map[string]any
	switch t := term.(type) {
	case map[string]any:
		m = t
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !slices.ContainsFunc(cs, func(c constraint) bool { return c.key == k }) {
				rest = append(rest, "{"+wamqp.ErlangProplist(k)+","+wamqp.ErlangProplist(t[k])+"}")
			}
		}
	case []any:
		for _, x := range t {
			rest = append(rest, wamqp.ErlangProplist(x))
		}
	default:
		return []string{fmt.Sprintf("%s not a list %s", name, wamqp.ErlangProplist(term))}
	}
	var results [][]string
	seen := map[string]bool{}
	for _, c := range cs {
		x, ok := m[c.key]
		switch {
		case ok && !seen[c.key]:
			seen[c.key] = true
			results = append(results, c.check(c.key, x))
		case !ok && c.mandatory:
			results = append(results, []string{fmt.Sprintf("Key \"%s\" not found in %s", c.key, name)})
		}
	}
	var out []string
	if rest != nil {
		out = append(out, fmt.Sprintf("Unrecognised terms [%s] in %s", strings.Join(rest, ","), name))
	}
	for i := len(results) - 1; i >= 0; i-- {
		out = append(out, results[i]...)
	}
	return out
}

func fail(format string, args ...any) []string { return []string{fmt.Sprintf(format, args...)} }

func anything(string, any) []string { return nil }

func number(key string, v any) []string {
	if _, ok := v.(json.Number); ok {
		return nil
	}
	return fail("%s should be a number, actually was %s", key, wamqp.ErlangProplist(v))
}

func binary(key string, v any) []string {
	if _, ok := v.(string); ok {
		return nil
	}
	return fail("%s should be binary, actually was %s", key, wamqp.ErlangProplist(v))
}

func boolean(key string, v any) []string {
	if _, ok := v.(bool); ok {
		return nil
	}
	return fail("%s should be boolean, actually was %s", key, wamqp.ErlangProplist(v))
}

func enum(values ...string) check {
	return func(key string, v any) []string {
		s, ok := v.(string)
		if !ok {
			return binary(key, v)
		}
		if slices.Contains(values, s) {
			return nil
		}
		opts := make([]string, len(values))
		for i, o := range values {
			opts[i] = wamqp.ErlangProplist(o)
		}
		return fail("%s should be one of [%s], actually was %s", key, strings.Join(opts, ","), wamqp.ErlangProplist(v))
	}
}

func mapCheck(key string, v any) []string {
	if _, ok := v.(map[string]any); ok {
		return nil
	}
	return fail("%s not a list %s", key, wamqp.ErlangProplist(v))
}

func nested(cs []constraint) check {
	return func(key string, v any) []string { return proplist(key, cs, v) }
}

func queueName(key string, v any) []string {
	s, ok := v.(string)
	if !ok {
		return binary(key, v)
	}
	if len(s) > 255 {
		return fail("%s should be less than 255 bytes, actually was %d", key, len(s))
	}
	return nil
}

func deleteAfter(key string, v any) []string {
	switch x := v.(type) {
	case string:
		if x == "never" || x == "queue-length" {
			return nil
		}
	case json.Number:
		if n, err := x.Int64(); err == nil && n >= 0 {
			return nil
		}
	}
	return fail("%s should be a number greater than or equal to 0, \"never\" or \"queue-length\", actually was %s", key, wamqp.ErlangProplist(v))
}

func uriCheck(key string, v any) []string { return uriCheckAs(nil)(key, v) }

// uriCheckAs is rabbit_shovel_parameters' validate_uri: a URI or a list of them (the first bad one
// reported), a direct one's vhost open to the user (mayConnect, if not nil).
func uriCheckAs(mayConnect func(vhost string) error) check {
	var c check
	c = func(key string, v any) []string {
		switch x := v.(type) {
		case string:
			ep, err := parseURI(x)
			if err != nil {
				return fail("\"%s\" not a valid URI: %s", x, err.Error())
			}
			if ep.direct && mayConnect != nil {
				if err := mayConnect(ep.vhost); err != nil {
					return fail("%s", err.Error())
				}
			}
			return nil
		case []any:
			for _, u := range x {
				if errs := c(key, u); errs != nil {
					return errs
				}
			}
			return nil
		}
		return fail("%s should be list, actually was %s", key, wamqp.ErlangProplist(v))
	}
	return c
}

// endpoint is a parsed shovel URI: direct (no host: this broker, as the user "none") or a broker
// to dial.
type endpoint struct {
	raw    string
	direct bool
	vhost  string
}

// parseURI parses an AMQP URI as amqp_uri:parse does; the error is the Erlang term RabbitMQ
// reports.
func parseURI(s string) (endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("{{unable_to_parse_uri,%q},%q}", err.Error(), s)
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return endpoint{}, fmt.Errorf("{{unexpected_uri_scheme,%q},%q}", u.Scheme, s)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return endpoint{}, fmt.Errorf("{{unable_to_parse_uri,{malformed_uri,%q}},%q}", s, s)
		}
	}
	e := endpoint{raw: s, direct: u.Hostname() == "", vhost: "/"}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		e.vhost = p
	}
	if e.direct && u.Scheme == "amqps" {
		return endpoint{}, fmt.Errorf("{{unable_to_parse_uri,{ssl_direct_connection}},%q}", s)
	}
	return e, nil
}

// redact drops the credentials and query of a URI, as RabbitMQ shows shovel URIs.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery = nil, "", false
	if u.Host == "" { // the direct connection: "amqp://", "amqp:///vhost"
		return u.Scheme + "://" + u.EscapedPath()
	}
	return u.String()
}

// config is a validated definition.
type config struct {
	src, dest                  []endpoint
	srcQueue, srcExchange      string
	srcExchangeKey             string
	srcQueueArgs, consumerArgs amqp.Table
	srcPredeclared             bool
	destQueue, destExchange    string
	destExchangeKey            *string // nil: the message's own routing key
	destQueueArgs              amqp.Table
	destPredeclared            bool
	ackMode                    string
	prefetch                   int
	deleteAfter                int64 // -1: never; 0 with queueLength: the length at start
	queueLength                bool
	reconnectDelay             time.Duration
	forwardHeaders, timestamp  bool
	publishProps               map[string]any
}

// Defaults, as RabbitMQ's.
const (
	defaultPrefetch       = 1000
	defaultReconnectDelay = 5 * time.Second
)

// parse reads a definition that validate accepted.
func parse(v any) (*config, error) {
	m, _ := v.(map[string]any)
	c := &config{ackMode: "on-confirm", prefetch: defaultPrefetch, deleteAfter: -1, reconnectDelay: defaultReconnectDelay, srcExchangeKey: "#"}
	var err error
	if c.src, err = endpoints(m["src-uri"]); err != nil {
		return nil, err
	}
	if c.dest, err = endpoints(m["dest-uri"]); err != nil {
		return nil, err
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	flag := func(k string) bool { b, _ := m[k].(bool); return b }
	c.srcQueue, c.srcExchange = str("src-queue"), str("src-exchange")
	if k, ok := m["src-exchange-key"].(string); ok {
		c.srcExchangeKey = k
	}
	c.destQueue, c.destExchange = str("dest-queue"), str("dest-exchange")
	if k, ok := m["dest-exchange-key"].(string); ok {
		c.destExchangeKey = &k
	}
	if s := str("ack-mode"); s != "" {
		c.ackMode = s
	}
	for _, k := range []string{"prefetch-count", "src-prefetch-count"} {
		if n, ok := m[k].(json.Number); ok {
			f, _ := n.Float64()
			c.prefetch = int(max(0, min(f, 65535)))
		}
	}
	for _, k := range []string{"delete-after", "src-delete-after"} {
		switch x := m[k].(type) {
		case string:
			c.deleteAfter, c.queueLength = -1, x == "queue-length"
			if c.queueLength {
				c.deleteAfter = 0
			}
		case json.Number:
			c.deleteAfter, _ = x.Int64()
			c.queueLength = false
		}
	}
	if n, ok := m["reconnect-delay"].(json.Number); ok {
		f, _ := n.Float64()
		c.reconnectDelay = time.Duration(max(0, f) * float64(time.Second))
	}
	c.forwardHeaders = flag("add-forward-headers") || flag("dest-add-forward-headers")
	c.timestamp = flag("add-timestamp-header") || flag("dest-add-timestamp-header")
	c.srcPredeclared, c.destPredeclared = flag("src-predeclared"), flag("dest-predeclared")
	c.srcQueueArgs = table(m["src-queue-args"])
	c.destQueueArgs = table(m["dest-queue-args"])
	c.consumerArgs = table(m["src-consumer-args"])
	c.publishProps, _ = m["publish-properties"].(map[string]any)
	if p, ok := m["dest-publish-properties"].(map[string]any); ok {
		c.publishProps = p
	}
	return c, nil
}

func endpoints(v any) ([]endpoint, error) {
	var raw []string
	switch x := v.(type) {
	case string:
		raw = []string{x}
	case []any:
		for _, u := range x {
			s, _ := u.(string)
			raw = append(raw, s)
		}
	}
	out := make([]endpoint, 0, len(raw))
	for _, s := range raw {
		e, err := parseURI(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// table converts a JSON object into AMQP field values (nil for anything else).
func table(v any) amqp.Table {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	t := make(amqp.Table, len(m))
	for k, x := range m {
		t[k] = field(x)
	}
	return t
}

func field(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		return table(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = field(e)
		}
		return out
	}
	return v
}
