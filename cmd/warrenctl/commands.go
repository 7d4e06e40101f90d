package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// listKind is what `list KIND` reads: the API path for every vhost and for one (empty: not
// per vhost), and the table's default columns.
type listKind struct {
	all, perVhost string
	cols          []string
}

var listKinds = map[string]listKind{
	"queues":      {"/api/queues", "/api/queues/%s", []string{"vhost", "name", "type", "durable", "auto_delete", "messages", "messages_ready", "messages_unacknowledged", "consumers", "state"}},
	"exchanges":   {"/api/exchanges", "/api/exchanges/%s", []string{"vhost", "name", "type", "durable", "auto_delete", "internal"}},
	"bindings":    {"/api/bindings", "/api/bindings/%s", []string{"vhost", "source", "destination", "destination_type", "routing_key", "arguments"}},
	"connections": {"/api/connections", "/api/vhosts/%s/connections", []string{"name", "user", "vhost", "protocol", "channels", "state"}},
	"channels":    {"/api/channels", "/api/vhosts/%s/channels", []string{"name", "user", "vhost", "number", "consumer_count", "messages_unacknowledged", "prefetch_count", "state"}},
	"consumers":   {"/api/consumers", "/api/consumers/%s", []string{"queue.vhost", "queue.name", "consumer_tag", "channel_details.name", "ack_required", "prefetch_count", "exclusive", "active"}},
	"vhosts":      {"/api/vhosts", "", []string{"name", "description", "tags", "messages", "messages_ready", "messages_unacknowledged"}},
	"users":       {"/api/users", "", []string{"name", "tags"}},
	"policies":    {"/api/policies", "/api/policies/%s", []string{"vhost", "name", "pattern", "apply-to", "priority", "definition"}},
	"permissions": {"/api/permissions", "/api/vhosts/%s/permissions", []string{"user", "vhost", "configure", "write", "read"}},
	// nodes: the cluster's members and whether this node reaches each (cluster_status).
	"nodes": {"/api/nodes", "", []string{"name", "type", "running"}},
}

// noFlags is a command without flags of its own.
func noFlags(do func(c *cli, args []string) error) func(*flag.FlagSet) func(*cli, []string) error {
	return func(*flag.FlagSet) func(*cli, []string) error { return do }
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"declare queue":      {1, 1, declareQueue},
		"declare exchange":   {1, 1, declareExchange},
		"declare binding":    {2, 2, declareBinding},
		"declare vhost":      {1, 1, declareVhost},
		"declare user":       {1, 1, declareUser},
		"declare permission": {1, 1, declarePermission},
		"delete queue":       {1, 1, deleteQueue},
		"delete exchange":    {1, 1, deleteExchange},
		"delete binding":     {2, 2, deleteBinding},
		"delete vhost":       {1, 1, noFlags(deleteVhost)},
		"delete user":        {1, 1, noFlags(deleteUser)},
		"purge queue":        {1, 1, noFlags(purgeQueue)},
		"publish":            {0, 1, publish},
		"get":                {1, 1, get},
		"export":             {1, 1, noFlags(exportDefs)},
		"import":             {1, 1, noFlags(importDefs)},
		"status":             {0, 0, noFlags(status)},
		"health":             {0, 0, noFlags(health)},
		"close connection":   {1, 1, closeConnection},
	}
	commands["declare super-stream"] = command{1, 1, declareSuperStream}
	for kind := range listKinds {
		commands["list "+kind] = command{0, 0, noFlags(func(c *cli, _ []string) error { return c.list(kind) })}
	}
}

// done reports a change in table format (json format prints nothing for a change: the API
// answers it with no body).
func (c *cli) done(format string, args ...any) {
	if c.format == "table" {
		fmt.Fprintf(c.stdout, format+"\n", args...)
	}
}

// vhostPhrase names the current vhost for messages.
func (c *cli) vhostPhrase() string { return fmt.Sprintf("in vhost %q", c.vhost) }

func (c *cli) list(kind string) error {
	k := listKinds[kind]
	path := k.all
	if c.vhostGiven && k.perVhost != "" {
		path = fmt.Sprintf(k.perVhost, esc(c.vhost))
	}
	v, raw, err := c.getJSON(path)
	if err != nil {
		return err
	}
	if c.format == "json" {
		return writeJSON(c.stdout, raw)
	}
	rows, ok := v.([]any)
	if !ok {
		return fmt.Errorf("GET %s: expected a JSON array", path)
	}
	cols := k.cols
	if c.columns != "" {
		cols = strings.Split(c.columns, ",")
	}
	return writeTable(c.stdout, cols, rows)
}

// jsonFlag is a flag holding a JSON object (arguments, properties).
type jsonFlag struct{ v map[string]any }

func (j *jsonFlag) String() string { return "" }
func (j *jsonFlag) Set(s string) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&j.v); err != nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	return nil
}

// object returns the flag's object, {} when not given.
func (j *jsonFlag) object() map[string]any {
	if j.v == nil {
		return map[string]any{}
	}
	return j.v
}

func declareQueue(fs *flag.FlagSet) func(*cli, []string) error {
	durable := fs.Bool("durable", true, "survive a broker restart")
	autoDelete := fs.Bool("auto-delete", false, "delete when its last consumer goes")
	var args jsonFlag
	fs.Var(&args, "arguments", `queue arguments as a JSON object, e.g. '{"x-max-length": 10}'`)
	return func(c *cli, a []string) error {
		body := map[string]any{"durable": *durable, "auto_delete": *autoDelete, "arguments": args.object()}
		if _, _, err := c.request(http.MethodPut, "/api/queues/"+esc(c.vhost)+"/"+esc(a[0]), body, nil); err != nil {
			return err
		}
		c.done("queue %q declared %s", a[0], c.vhostPhrase())
		return nil
	}
}

func declareExchange(fs *flag.FlagSet) func(*cli, []string) error {
	typ := fs.String("type", "direct", "direct, fanout, topic or headers")
	durable := fs.Bool("durable", true, "survive a broker restart")
	autoDelete := fs.Bool("auto-delete", false, "delete when its last binding goes")
	internal := fs.Bool("internal", false, "only other exchanges may publish to it")
	var args jsonFlag
	fs.Var(&args, "arguments", `exchange arguments as a JSON object, e.g. '{"alternate-exchange": "ae"}'`)
	return func(c *cli, a []string) error {
		body := map[string]any{"type": *typ, "durable": *durable, "auto_delete": *autoDelete, "internal": *internal, "arguments": args.object()}
		if _, _, err := c.request(http.MethodPut, "/api/exchanges/"+esc(c.vhost)+"/"+esc(a[0]), body, nil); err != nil {
			return err
		}
		c.done("exchange %q declared %s", a[0], c.vhostPhrase())
		return nil
	}
}

// bindingPath is the API path of the bindings from source to destination.
func (c *cli) bindingPath(source, destType, dest string) (string, error) {
	var d string
	switch destType {
	case "queue", "q":
		d = "q"
	case "exchange", "e":
		d = "e"
	default:
		return "", usagef("--destination-type must be queue or exchange, not %q", destType)
	}
	return "/api/bindings/" + esc(c.vhost) + "/e/" + esc(source) + "/" + d + "/" + esc(dest), nil
}

func declareBinding(fs *flag.FlagSet) func(*cli, []string) error {
	destType := fs.String("destination-type", "queue", "queue or exchange")
	key := fs.String("routing-key", "", "binding key")
	var args jsonFlag
	fs.Var(&args, "arguments", `binding arguments as a JSON object (headers exchanges: '{"x-match": "all", ...}')`)
	return func(c *cli, a []string) error {
		path, err := c.bindingPath(a[0], *destType, a[1])
		if err != nil {
			return err
		}
		body := map[string]any{"routing_key": *key, "arguments": args.object()}
		if _, _, err := c.request(http.MethodPost, path, body, nil); err != nil {
			return err
		}
		c.done("binding from %q to %s %q with key %q declared %s", a[0], *destType, a[1], *key, c.vhostPhrase())
		return nil
	}
}

func declareVhost(fs *flag.FlagSet) func(*cli, []string) error {
	desc := fs.String("description", "", "description")
	tags := fs.String("tags", "", "comma-separated tags")
	return func(c *cli, a []string) error {
		body := map[string]any{"description": *desc, "tags": *tags}
		if _, _, err := c.request(http.MethodPut, "/api/vhosts/"+esc(a[0]), body, nil); err != nil {
			return err
		}
		c.done("vhost %q declared", a[0])
		return nil
	}
}

func declareUser(fs *flag.FlagSet) func(*cli, []string) error {
	// Not "password": that is the global flag with the credentials warrenctl logs in with.
	password := fs.String("new-password", "", "the new user's password")
	hash := fs.String("password-hash", "", "the password's hash (base64, RabbitMQ's format) instead of --new-password")
	tags := fs.String("tags", "", "comma-separated tags: administrator, monitoring, management, policymaker")
	return func(c *cli, a []string) error {
		body := map[string]any{"tags": *tags}
		switch {
		case *password != "" && *hash != "":
			return usagef("declare user: give --new-password or --password-hash, not both")
		case *hash != "":
			body["password_hash"] = *hash
		case *password != "":
			body["password"] = *password
		default:
			return usagef("declare user: --new-password is required (or --password-hash)")
		}
		if _, _, err := c.request(http.MethodPut, "/api/users/"+esc(a[0]), body, nil); err != nil {
			return err
		}
		c.done("user %q declared", a[0])
		return nil
	}
}

func declarePermission(fs *flag.FlagSet) func(*cli, []string) error {
	conf := fs.String("configure", ".*", "configure permission (regular expression)")
	write := fs.String("write", ".*", "write permission (regular expression)")
	read := fs.String("read", ".*", "read permission (regular expression)")
	return func(c *cli, a []string) error {
		body := map[string]any{"configure": *conf, "write": *write, "read": *read}
		if _, _, err := c.request(http.MethodPut, "/api/permissions/"+esc(c.vhost)+"/"+esc(a[0]), body, nil); err != nil {
			return err
		}
		c.done("permission of user %q declared %s", a[0], c.vhostPhrase())
		return nil
	}
}

func deleteQueue(fs *flag.FlagSet) func(*cli, []string) error {
	ifUnused := fs.Bool("if-unused", false, "only if it has no consumers")
	ifEmpty := fs.Bool("if-empty", false, "only if it has no messages")
	return func(c *cli, a []string) error {
		path := "/api/queues/" + esc(c.vhost) + "/" + esc(a[0])
		var q []string
		if *ifUnused {
			q = append(q, "if-unused=true")
		}
		if *ifEmpty {
			q = append(q, "if-empty=true")
		}
		if len(q) > 0 {
			path += "?" + strings.Join(q, "&")
		}
		if _, _, err := c.request(http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		c.done("queue %q deleted %s", a[0], c.vhostPhrase())
		return nil
	}
}

func deleteExchange(fs *flag.FlagSet) func(*cli, []string) error {
	ifUnused := fs.Bool("if-unused", false, "only if it has no bindings")
	return func(c *cli, a []string) error {
		path := "/api/exchanges/" + esc(c.vhost) + "/" + esc(a[0])
		if *ifUnused {
			path += "?if-unused=true"
		}
		if _, _, err := c.request(http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		c.done("exchange %q deleted %s", a[0], c.vhostPhrase())
		return nil
	}
}

func deleteBinding(fs *flag.FlagSet) func(*cli, []string) error {
	destType := fs.String("destination-type", "queue", "queue or exchange")
	key := fs.String("routing-key", "", "binding key")
	return func(c *cli, a []string) error {
		path, err := c.bindingPath(a[0], *destType, a[1])
		if err != nil {
			return err
		}
		// A binding is addressed by its properties_key, which the API computes (from the key and
		// the arguments): find it among the bindings between the two.
		v, _, err := c.getJSON(path)
		if err != nil {
			return err
		}
		list, _ := v.([]any)
		var props []string
		for _, b := range list {
			m, _ := b.(map[string]any)
			if rk, _ := m["routing_key"].(string); rk == *key {
				if pk, ok := m["properties_key"].(string); ok {
					props = append(props, pk)
				}
			}
		}
		switch len(props) {
		case 0:
			return &apiError{status: http.StatusNotFound, reason: fmt.Sprintf("no binding from %q to %s %q with key %q %s", a[0], *destType, a[1], *key, c.vhostPhrase())}
		case 1:
		default:
			return fmt.Errorf("%d bindings from %q to %q have the key %q (they differ by arguments); delete them with the API: %s/{properties_key} with one of %q",
				len(props), a[0], a[1], *key, path, props)
		}
		if _, _, err := c.request(http.MethodDelete, path+"/"+esc(props[0]), nil, nil); err != nil {
			return err
		}
		c.done("binding from %q to %s %q with key %q deleted %s", a[0], *destType, a[1], *key, c.vhostPhrase())
		return nil
	}
}

func deleteVhost(c *cli, a []string) error {
	if _, _, err := c.request(http.MethodDelete, "/api/vhosts/"+esc(a[0]), nil, nil); err != nil {
		return err
	}
	c.done("vhost %q deleted", a[0])
	return nil
}

func deleteUser(c *cli, a []string) error {
	if _, _, err := c.request(http.MethodDelete, "/api/users/"+esc(a[0]), nil, nil); err != nil {
		return err
	}
	c.done("user %q deleted", a[0])
	return nil
}

func purgeQueue(c *cli, a []string) error {
	if _, _, err := c.request(http.MethodDelete, "/api/queues/"+esc(c.vhost)+"/"+esc(a[0])+"/contents", nil, nil); err != nil {
		return err
	}
	c.done("queue %q purged %s", a[0], c.vhostPhrase())
	return nil
}

// headerFlag collects --header K=V.
type headerFlag map[string]any

func (h headerFlag) String() string { return "" }
func (h headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, not %q", s)
	}
	h[k] = v
	return nil
}

func publish(fs *flag.FlagSet) func(*cli, []string) error {
	exchange := fs.String("exchange", "", "exchange (default: the default exchange, which routes to the queue named by the key)")
	key := fs.String("routing-key", "", "routing key")
	var props jsonFlag
	fs.Var(&props, "properties", `message properties as the API takes them, e.g. '{"content_type": "text/plain", "delivery_mode": 2, "headers": {"k": "v"}}'`)
	headers := headerFlag{}
	fs.Var(headers, "header", "a header KEY=VALUE (string value); repeatable")
	persistent := fs.Bool("persistent", false, "delivery_mode 2")
	encoding := fs.String("payload-encoding", "string", "string, or base64 for a binary payload given in base64")
	return func(c *cli, a []string) error {
		var payload []byte
		if len(a) == 1 {
			payload = []byte(a[0])
		} else {
			var err error
			if payload, err = io.ReadAll(c.stdin); err != nil {
				return fmt.Errorf("reading the payload from standard input: %w", err)
			}
		}
		p := props.object()
		if len(headers) > 0 {
			h, _ := p["headers"].(map[string]any)
			if h == nil {
				h = map[string]any{}
			}
			for k, v := range headers {
				h[k] = v
			}
			p["headers"] = h
		}
		if *persistent {
			p["delivery_mode"] = 2
		}
		x := *exchange
		if x == "" {
			x = "amq.default"
		}
		body := map[string]any{"properties": p, "routing_key": *key, "payload": string(payload), "payload_encoding": *encoding}
		_, data, err := c.request(http.MethodPost, "/api/exchanges/"+esc(c.vhost)+"/"+esc(x)+"/publish", body, nil)
		if err != nil {
			return err
		}
		if c.format == "json" {
			return writeJSON(c.stdout, data)
		}
		var r struct {
			Routed bool `json:"routed"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("publish: the answer is not JSON: %w", err)
		}
		if r.Routed {
			fmt.Fprintln(c.stdout, "message published")
		} else {
			fmt.Fprintln(c.stdout, "message published but NOT routed")
		}
		return nil
	}
}

func get(fs *flag.FlagSet) func(*cli, []string) error {
	count := fs.Int("count", 1, "how many messages at most")
	ackmode := fs.String("ackmode", "ack_requeue_true", "ack_requeue_true (look, leave them), ack_requeue_false (take them), reject_requeue_true, reject_requeue_false")
	encoding := fs.String("encoding", "auto", "auto (text as is, binary as base64) or base64")
	truncate := fs.Int("truncate", 0, "return at most this many bytes of each payload (0: all)")
	return func(c *cli, a []string) error {
		switch *ackmode {
		case "ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false":
		default:
			return usagef("get: --ackmode %q is not one of ack_requeue_true, ack_requeue_false, reject_requeue_true, reject_requeue_false", *ackmode)
		}
		if *count < 1 {
			return usagef("get: --count must be at least 1")
		}
		body := map[string]any{"count": *count, "ackmode": *ackmode, "encoding": *encoding}
		if *truncate > 0 {
			body["truncate"] = *truncate
		}
		_, data, err := c.request(http.MethodPost, "/api/queues/"+esc(c.vhost)+"/"+esc(a[0])+"/get", body, nil)
		if err != nil {
			return err
		}
		if c.format == "json" {
			return writeJSON(c.stdout, data)
		}
		v, err := decode(data)
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		rows, _ := v.([]any)
		if len(rows) == 0 {
			fmt.Fprintln(c.stdout, "no messages")
			return nil
		}
		return writeTable(c.stdout, []string{"routing_key", "exchange", "message_count", "redelivered", "payload_bytes", "payload_encoding", "properties", "payload"}, rows)
	}
}

func (c *cli) defsPath() string {
	if c.vhostGiven {
		return "/api/definitions/" + esc(c.vhost)
	}
	return "/api/definitions"
}

func exportDefs(c *cli, a []string) error {
	_, data, err := c.request(http.MethodGet, c.defsPath(), nil, nil)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "  "); err != nil {
		return fmt.Errorf("export: the answer is not JSON: %w", err)
	}
	out.WriteByte('\n')
	if a[0] == "-" {
		_, err := c.stdout.Write(out.Bytes())
		return err
	}
	if err := os.WriteFile(a[0], out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(c.stderr, "definitions exported to %s\n", a[0])
	return nil
}

func importDefs(c *cli, a []string) error {
	var data []byte
	var err error
	if a[0] == "-" {
		data, err = io.ReadAll(c.stdin)
	} else {
		data, err = os.ReadFile(a[0])
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if !json.Valid(data) {
		return usagef("import: %s is not JSON", a[0])
	}
	if _, _, err := c.request(http.MethodPost, c.defsPath(), data, nil); err != nil {
		return err
	}
	c.done("definitions imported from %s", a[0])
	return nil
}

func status(c *cli, _ []string) error {
	v, raw, err := c.getJSON("/api/overview")
	if err != nil {
		return err
	}
	if c.format == "json" {
		return writeJSON(c.stdout, raw)
	}
	o, _ := v.(map[string]any)
	product := cell(lookup(o, "product_name"))
	if product == "" {
		product = "RabbitMQ"
	}
	version := cell(lookup(o, "product_version"))
	if version == "" {
		version = cell(lookup(o, "rabbitmq_version"))
	}
	rows := [][2]string{
		{"product", product + " " + version},
		{"rabbitmq_version", cell(lookup(o, "rabbitmq_version"))},
		{"node", cell(lookup(o, "node"))},
		{"cluster_name", cell(lookup(o, "cluster_name"))},
	}
	for _, k := range []string{"connections", "channels", "exchanges", "queues", "consumers"} {
		rows = append(rows, [2]string{k, cell(lookup(o, "object_totals."+k))})
	}
	for _, k := range []string{"messages", "messages_ready", "messages_unacknowledged"} {
		rows = append(rows, [2]string{k, cell(lookup(o, "queue_totals."+k))})
	}
	for _, k := range []string{"publish", "deliver_get", "ack", "redeliver"} {
		rows = append(rows, [2]string{k + "_rate", cell(lookup(o, "message_stats."+k+"_details.rate"))})
	}
	return writePairs(c.stdout, rows)
}

func health(c *cli, _ []string) error {
	code, data, err := c.request(http.MethodGet, "/api/health/checks/alarms", nil, nil, http.StatusServiceUnavailable)
	if err != nil {
		return err
	}
	if c.format == "json" {
		if err := writeJSON(c.stdout, data); err != nil {
			return err
		}
	}
	if code == http.StatusServiceUnavailable {
		reason := reasonOf(data)
		var r struct {
			Alarms []struct {
				Node     string `json:"node"`
				Resource string `json:"resource"`
			} `json:"alarms"`
		}
		json.Unmarshal(data, &r)
		var list []string
		for _, a := range r.Alarms {
			list = append(list, a.Resource+" on "+a.Node)
		}
		if len(list) > 0 {
			reason += ": " + strings.Join(list, ", ")
		}
		return fmt.Errorf("unhealthy: %s", reason)
	}
	c.done("ok")
	return nil
}

func closeConnection(fs *flag.FlagSet) func(*cli, []string) error {
	reason := fs.String("reason", "Closed via warrenctl", "the reason sent to the client (320 CONNECTION_FORCED)")
	return func(c *cli, a []string) error {
		h := http.Header{"X-Reason": {*reason}}
		if _, _, err := c.request(http.MethodDelete, "/api/connections/"+esc(a[0]), nil, h); err != nil {
			return err
		}
		c.done("connection %q closed", a[0])
		return nil
	}
}
