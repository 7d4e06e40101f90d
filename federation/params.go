package federation

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// The runtime parameters of rabbitmq_federation, validated as RabbitMQ 3.10's
// rabbit_federation_parameters validates them: a federation-upstream is a JSON object with a
// mandatory uri (a string or a list of strings) and the shared keys below; a
// federation-upstream-set is a list of objects, each with a mandatory upstream (a name) and the
// shared keys, which override the named upstream's.

// Component names, as RabbitMQ registers them.
const (
	ComponentUpstream    = "federation-upstream"
	ComponentUpstreamSet = "federation-upstream-set"
)

// Defaults, as rabbit_federation_upstream has them.
const (
	DefaultPrefetchCount  = 1000
	DefaultReconnectDelay = 5 * time.Second
	DefaultAckMode        = "on-confirm"
	DefaultMaxHops        = 1

	minReconnectDelay = 100 * time.Millisecond
)

type check func(key string, v any) string

// sharedKeys are the keys an upstream and an upstream-set member share, in RabbitMQ's order (the
// order its errors are listed in).
var sharedKeys = []struct {
	key string
	fn  check
}{
	{"exchange", binaryKey},
	{"queue", binaryKey},
	{"consumer-tag", binaryKey},
	{"prefetch-count", numberKey},
	{"reconnect-delay", numberKey},
	{"max-hops", numberKey},
	{"expires", numberKey},
	{"message-ttl", numberKey},
	{"trust-user-id", booleanKey},
	{"ack-mode", enumKey("no-ack", "on-publish", "on-confirm")},
	{"resource-cleanup-mode", enumKey("default", "never")},
	{"ha-policy", binaryKey},
	{"bind-nowait", booleanKey},
}

// ValidationError lists what is wrong with a parameter value, one line each, in RabbitMQ's words
// (HTML-escaped as its management API shows them).
type ValidationError struct{ Lines []string }

func (e *ValidationError) Error() string { return strings.Join(e.Lines, "\n") }

// ValidateUpstream checks the value of the federation-upstream parameter name.
func ValidateUpstream(name string, value any) error {
	return validateObject(name, value, "uri", checkURI)
}

// ValidateUpstreamSet checks the value of the federation-upstream-set parameter name.
func ValidateUpstreamSet(name string, value any) error {
	list, ok := value.([]any)
	if !ok {
		return &ValidationError{Lines: []string{fmt.Sprintf("%s should be a list of upstreams, actually was %s", name, amqp.ErlangTermHTML(value))}}
	}
	var lines []string
	for _, m := range list {
		if err := validateObject(name, m, "upstream", binaryKey); err != nil {
			lines = append(lines, err.(*ValidationError).Lines...)
		}
	}
	if lines != nil {
		return &ValidationError{Lines: lines}
	}
	return nil
}

func validateObject(name string, value any, mandatory string, mcheck check) error {
	obj, ok := value.(map[string]any)
	if !ok {
		return &ValidationError{Lines: []string{fmt.Sprintf("%s should be an object, actually was %s", name, amqp.ErlangTermHTML(value))}}
	}
	known := map[string]check{mandatory: mcheck}
	order := []string{mandatory}
	for _, k := range sharedKeys {
		known[k.key] = k.fn
		order = append(order, k.key)
	}
	var lines, unknown []string
	for k := range obj {
		if known[k] == nil {
			unknown = append(unknown, k)
		}
	}
	if unknown != nil {
		sort.Strings(unknown)
		terms := make([]string, len(unknown))
		for i, k := range unknown {
			terms[i] = "{" + amqp.ErlangTermHTML(k) + "," + amqp.ErlangTermHTML(obj[k]) + "}"
		}
		lines = append(lines, fmt.Sprintf("Unrecognised terms [%s] in %s", strings.Join(terms, ","), name))
	}
	for _, k := range order {
		v, ok := obj[k]
		if !ok {
			if k == mandatory {
				lines = append(lines, fmt.Sprintf("Key %q not found in %s", k, name))
			}
			continue
		}
		if msg := known[k](k, v); msg != "" {
			lines = append(lines, msg)
		}
	}
	if lines != nil {
		return &ValidationError{Lines: lines}
	}
	return nil
}

func binaryKey(key string, v any) string {
	if _, ok := v.(string); !ok {
		return fmt.Sprintf("%s should be binary, actually was %s", key, amqp.ErlangTermHTML(v))
	}
	return ""
}

func booleanKey(key string, v any) string {
	if _, ok := v.(bool); !ok {
		return fmt.Sprintf("%s should be boolean, actually was %s", key, amqp.ErlangTermHTML(v))
	}
	return ""
}

func numberKey(key string, v any) string {
	if _, ok := number(v); !ok {
		return fmt.Sprintf("%s should be a number, actually was %s", key, amqp.ErlangTermHTML(v))
	}
	return ""
}

func enumKey(values ...string) check {
	return func(key string, v any) string {
		if s, ok := v.(string); ok && slices.Contains(values, s) {
			return ""
		}
		quoted := make([]string, len(values))
		for i, x := range values {
			quoted[i] = amqp.ErlangTermHTML(x)
		}
		return fmt.Sprintf("%s should be one of [%s], actually was %s", key, strings.Join(quoted, ","), amqp.ErlangTermHTML(v))
	}
}

// number returns a JSON number as a float64, whatever Go type the decoder gave it.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case interface{ Float64() (float64, error) }: // json.Number
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// checkURI checks uri: a string or a list of strings, each an AMQP URI.
func checkURI(key string, v any) string {
	var uris []any
	switch u := v.(type) {
	case string:
		uris = []any{u}
	case []any:
		uris = u
	default:
		return fmt.Sprintf("%s should be list, actually was %s", key, amqp.ErlangTermHTML(v))
	}
	for _, x := range uris {
		s, ok := x.(string)
		if !ok {
			return fmt.Sprintf("%s should be list, actually was %s", key, amqp.ErlangTermHTML(x))
		}
		if reason := uriProblem(s); reason != "" {
			return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(fmt.Sprintf("%q not a valid URI: {%s,%q}", s, reason, s))
		}
	}
	return ""
}

// uriProblem returns why s is not an AMQP URI, in amqp_uri's terms, or "".
func uriProblem(s string) string {
	i := strings.Index(s, "://")
	if i <= 0 {
		return "{unable_to_parse_uri,no_scheme}"
	}
	if scheme := s[:i]; scheme != "amqp" && scheme != "amqps" {
		return fmt.Sprintf("{unexpected_uri_scheme,%q}", scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "{unable_to_parse_uri,invalid_uri}"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n > 65535 {
			return fmt.Sprintf("{port_out_of_range,%s}", p)
		}
	}
	return ""
}

// Upstream is a resolved upstream: a federation-upstream's settings, overridden by an
// upstream-set member's, with the defaults filled in.
type Upstream struct {
	Name           string
	URIs           []string
	PrefetchCount  int
	ReconnectDelay time.Duration
	AckMode        string // no-ack, on-publish or on-confirm
	TrustUserID    bool
	Exchange       string // the upstream exchange; "": the downstream exchange's name
	Queue          string // the upstream queue; "": the downstream queue's name
	ConsumerTag    string // the upstream consumer's tag (queue links); "": the link's own
	MaxHops        int
	Expires        int64 // x-expires of the upstream queue (exchange links); 0: none
	MessageTTL     int64 // x-message-ttl of the upstream queue (exchange links); 0: none
	NoCleanup      bool  // resource-cleanup-mode never: keep the upstream queue when the link goes
}

// ResolveUpstream builds the Upstream named name from its parameter value, with the keys of
// override (an upstream-set member, or nil) taking precedence. value must have passed
// ValidateUpstream.
func ResolveUpstream(name string, value, override map[string]any) Upstream {
	u := Upstream{Name: name, PrefetchCount: DefaultPrefetchCount, ReconnectDelay: DefaultReconnectDelay,
		AckMode: DefaultAckMode, MaxHops: DefaultMaxHops}
	switch x := value["uri"].(type) {
	case string:
		u.URIs = []string{x}
	case []any:
		for _, s := range x {
			if s, ok := s.(string); ok {
				u.URIs = append(u.URIs, s)
			}
		}
	}
	get := func(k string) (any, bool) {
		if v, ok := override[k]; ok {
			return v, true
		}
		v, ok := value[k]
		return v, ok
	}
	str := func(k string, dst *string) {
		if v, ok := get(k); ok {
			if s, ok := v.(string); ok {
				*dst = s
			}
		}
	}
	num := func(k string) (float64, bool) {
		if v, ok := get(k); ok {
			return number(v)
		}
		return 0, false
	}
	str("exchange", &u.Exchange)
	str("queue", &u.Queue)
	str("consumer-tag", &u.ConsumerTag)
	str("ack-mode", &u.AckMode)
	if n, ok := num("prefetch-count"); ok && n >= 1 {
		u.PrefetchCount = int(n)
	}
	if n, ok := num("reconnect-delay"); ok && n >= 0 {
		// Floored at minReconnectDelay: rabbit-hole sends 0 when unset, and a link failing at
		// once must not spin.
		u.ReconnectDelay = max(time.Duration(n*float64(time.Second)), minReconnectDelay)
	}
	if n, ok := num("max-hops"); ok {
		u.MaxHops = int(n)
	}
	if n, ok := num("expires"); ok && n >= 1 {
		u.Expires = int64(n)
	}
	if n, ok := num("message-ttl"); ok && n >= 0 {
		u.MessageTTL = int64(n)
	}
	if v, ok := get("trust-user-id"); ok {
		u.TrustUserID, _ = v.(bool)
	}
	var mode string
	str("resource-cleanup-mode", &mode)
	u.NoCleanup = mode == "never"
	return u
}

// RedactURI removes the credentials and query from uri, as RabbitMQ shows upstream URIs in link
// status.
func RedactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery = nil, "", false
	if u.Host == "" { // the direct connection: "amqp://", "amqp:///vhost"
		return u.Scheme + "://" + u.EscapedPath()
	}
	return u.String()
}
