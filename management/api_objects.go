package management

import (
	"encoding/base64"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/server"
)

// Queues, exchanges and bindings.

func (a *api) objectRoutes(r *mux.Router) {
	a.handle(r, "/api/queues", resource{http.MethodGet: {fn: listQueues}})
	a.handle(r, "/api/queues/{vhost}", resource{http.MethodGet: {vhost: true, fn: listQueues}})
	a.handle(r, "/api/queues/{vhost}/{name}", resource{
		http.MethodGet:    {vhost: true, fn: getQueue},
		http.MethodPut:    {vhost: true, write: true, fn: putQueue},
		http.MethodDelete: {vhost: true, write: true, fn: deleteQueue},
	})
	a.handle(r, "/api/queues/{vhost}/{name}/bindings", resource{http.MethodGet: {vhost: true, fn: queueBindings}})
	a.handle(r, "/api/queues/{vhost}/{name}/contents", resource{http.MethodDelete: {vhost: true, write: true, fn: purgeQueue}})
	a.handle(r, "/api/queues/{vhost}/{name}/get", resource{http.MethodPost: {vhost: true, write: true, fn: getMessages}})
	a.handle(r, "/api/queues/{vhost}/{name}/messages", resource{http.MethodGet: {vhost: true, write: true, fn: browseMessages}})

	a.handle(r, "/api/exchanges", resource{http.MethodGet: {fn: listExchanges}})
	a.handle(r, "/api/exchanges/{vhost}", resource{http.MethodGet: {vhost: true, fn: listExchanges}})
	a.handle(r, "/api/exchanges/{vhost}/{name}", resource{
		http.MethodGet:    {vhost: true, fn: getExchange},
		http.MethodPut:    {vhost: true, write: true, fn: putExchange},
		http.MethodDelete: {vhost: true, write: true, fn: deleteExchange},
	})
	a.handle(r, "/api/exchanges/{vhost}/{name}/bindings/source", resource{http.MethodGet: {vhost: true, fn: exchangeBindings("source")}})
	a.handle(r, "/api/exchanges/{vhost}/{name}/bindings/destination", resource{http.MethodGet: {vhost: true, fn: exchangeBindings("destination")}})
	a.handle(r, "/api/exchanges/{vhost}/{name}/publish", resource{http.MethodPost: {vhost: true, write: true, fn: publish}})

	a.handle(r, "/api/bindings", resource{http.MethodGet: {fn: listBindings}})
	a.handle(r, "/api/bindings/{vhost}", resource{http.MethodGet: {vhost: true, fn: listBindings}})
	for _, kind := range []string{"q", "e"} {
		a.handle(r, "/api/bindings/{vhost}/e/{source}/"+kind+"/{dest}", resource{
			http.MethodGet:  {vhost: true, fn: bindingsBetween(kind)},
			http.MethodPost: {vhost: true, write: true, fn: postBinding(kind)},
		})
		a.handle(r, "/api/bindings/{vhost}/e/{source}/"+kind+"/{dest}/{props}", resource{
			http.MethodGet:    {vhost: true, fn: getBinding(kind)},
			http.MethodDelete: {vhost: true, write: true, fn: deleteBinding(kind)},
		})
	}
}

// vhostFilter is the listing filter: the path's vhost, or the vhosts the user may see.
func (c *call) vhostFilter() func(string) bool {
	if vh, ok := c.vars["vhost"]; ok {
		return func(v string) bool { return v == vh }
	}
	return c.visible()
}

// --- queues ---

func (a *api) queueJSON(q server.QueueInfo, single bool) map[string]any {
	m := map[string]any{
		"name": q.Name, "vhost": q.Vhost, "durable": q.Durable, "auto_delete": q.AutoDelete, "exclusive": q.Exclusive,
		"arguments": tableJSON(q.Arguments), "node": a.b.NodeName(), "type": "classic", "state": "running",
		"consumers": q.Consumers, "memory": q.Memory,
		"policy": nil, "operator_policy": nil, "effective_policy_definition": map[string]any{},
		"exclusive_consumer_tag": nil, "single_active_consumer_tag": nil, "recoverable_slaves": nil,
		"head_message_timestamp":       nil,
		"message_bytes":                q.ReadyBytes + q.UnackedBytes,
		"message_bytes_ready":          q.ReadyBytes,
		"message_bytes_unacknowledged": q.UnackedBytes,
		"message_bytes_ram":            q.ReadyBytes - q.PagedOutBytes + q.UnackedBytes,
		"message_bytes_persistent":     q.PersistentBytes,
		"message_bytes_paged_out":      q.PagedOutBytes,
		"messages_ready_ram":           q.Ready - q.PagedOut,
		"messages_unacknowledged_ram":  q.Unacked,
		"messages_ram":                 q.Ready - q.PagedOut + q.Unacked,
		"messages_persistent":          q.Persistent,
		"messages_paged_out":           q.PagedOut,
		"message_stats":                messageStats(q.Stats, queueStatKeys),
	}
	if t, _ := q.Arguments["x-queue-type"].(string); t == "quorum" {
		// As RabbitMQ 3.10.8 shows a quorum queue: its leader (also as its node), members and
		// online members (a queue of one member: this node), open_files per online member, the
		// at-least-once dead letters, single_active_consumer_ctag, and no classic paging,
		// per-state RAM, mirror or exclusive-consumer fields.
		leader, members, online := q.Leader, q.Members, q.Online
		if len(members) == 0 {
			node := a.b.NodeName()
			leader, members, online = node, []string{node}, []string{node}
		}
		m["type"], m["members"], m["online"] = "quorum", members, online
		m["leader"] = nil
		if leader != "" {
			m["leader"], m["node"] = leader, leader
		}
		files := map[string]any{}
		for _, n := range online {
			files[n] = 0
		}
		m["open_files"] = files
		m["messages_dlx"], m["message_bytes_dlx"] = q.DeadLetterPending, q.DeadLetterBytes
		m["single_active_consumer_ctag"] = nil
		for _, k := range []string{"exclusive_consumer_tag", "head_message_timestamp", "message_bytes_paged_out", "messages_paged_out",
			"messages_ready_ram", "messages_unacknowledged_ram", "recoverable_slaves", "single_active_consumer_tag"} {
			delete(m, k)
		}
	}
	if t, _ := q.Arguments["x-queue-type"].(string); t == "stream" {
		// As RabbitMQ 3.10.8 shows a stream: its members and readers (this node's consumers), no
		// classic memory and paging figures; its messages stay after acks (all ready).
		node := a.b.NodeName()
		m["type"], m["members"], m["online"] = "stream", []string{node}, []string{node}
		m["readers"] = map[string]any{node: q.Consumers}
		for _, k := range []string{"message_bytes", "message_bytes_ready", "message_bytes_unacknowledged", "message_bytes_ram",
			"message_bytes_persistent", "message_bytes_paged_out", "messages_ready_ram", "messages_unacknowledged_ram",
			"messages_ram", "messages_persistent", "messages_paged_out", "head_message_timestamp", "exclusive_consumer_tag",
			"single_active_consumer_tag", "recoverable_slaves"} {
			delete(m, k)
		}
	}
	putStat(m, "messages", server.Stat{Count: q.Ready + q.Unacked, Rate: q.Totals.Messages.Rate})
	putStat(m, "messages_ready", server.Stat{Count: q.Ready, Rate: q.Totals.Ready.Rate})
	putStat(m, "messages_unacknowledged", server.Stat{Count: q.Unacked, Rate: q.Totals.Unacked.Rate})
	// Warren has no measure of how often a queue could deliver at once; with consumers it never
	// holds messages back for a consumer that has credit, so report full capacity, as RabbitMQ does
	// for an idle queue with consumers.
	if q.Consumers > 0 {
		m["consumer_capacity"], m["consumer_utilisation"] = rate(1), rate(1)
	} else {
		m["consumer_capacity"], m["consumer_utilisation"] = 0, 0
	}
	if q.Owner != "" {
		m["owner_pid_details"] = map[string]any{"name": q.Owner}
	}
	if q.Policy != "" {
		m["policy"] = q.Policy
	}
	if q.OperatorPolicy != "" {
		m["operator_policy"] = q.OperatorPolicy
	}
	if q.PolicyDefinition != nil {
		m["effective_policy_definition"] = policyDefinitionJSON(q.PolicyDefinition)
	}
	if single {
		cds := make([]any, 0, len(q.ConsumerDetails))
		for _, cd := range q.ConsumerDetails {
			cds = append(cds, a.consumerJSON(cd))
			if cd.Exclusive {
				m["exclusive_consumer_tag"] = cd.Tag
			}
		}
		m["consumer_details"] = cds
		m["deliveries"] = []any{}
		m["incoming"] = []any{}
	}
	return m
}

func listQueues(c *call) error {
	qs := c.a.b.Queues(c.vhostFilter())
	out := make([]any, 0, len(qs))
	for _, q := range qs {
		out = append(out, c.a.queueJSON(q, false))
	}
	return c.list(out)
}

func getQueue(c *call) error {
	q, err := c.a.b.Queue(c.vars["vhost"], c.vars["name"])
	if err != nil {
		return err
	}
	return c.ok(c.a.queueJSON(q, true))
}

func putQueue(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	durable, err := f.bool("durable", false)
	if err != nil {
		return err
	}
	autoDelete, err := f.bool("auto_delete", false)
	if err != nil {
		return err
	}
	args, err := f.table("arguments")
	if err != nil {
		return err
	}
	created, err := c.a.b.DeclareQueue(c.vars["vhost"], c.vars["name"], server.QueueSpec{Durable: durable, AutoDelete: autoDelete, Arguments: args})
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteQueue(c *call) error {
	q := c.r.URL.Query()
	return c.deleted(c.a.b.DeleteQueue(c.vars["vhost"], c.vars["name"], q.Get("if-unused") == "true", q.Get("if-empty") == "true"))
}

// deleted answers a DELETE: 204, or the error.
func (c *call) deleted(err error) error {
	if err != nil {
		return err
	}
	return c.noContent()
}

func purgeQueue(c *call) error {
	_, err := c.a.b.PurgeQueue(c.vars["vhost"], c.vars["name"])
	return c.deleted(err)
}

func queueBindings(c *call) error {
	vh, name := c.vars["vhost"], c.vars["name"]
	if _, err := c.a.b.Queue(vh, name); err != nil {
		return err
	}
	return c.listBindings(vh, func(b server.BindingInfo) bool {
		return b.DestinationType == "queue" && b.Destination == name
	})
}

// listBindings answers with vh's bindings that keep says to keep.
func (c *call) listBindings(vh string, keep func(server.BindingInfo) bool) error {
	bs, err := c.a.b.VhostBindings(vh)
	if err != nil {
		return err
	}
	out := []any{}
	for _, b := range bs {
		if keep(b) {
			out = append(out, bindingJSON(b))
		}
	}
	return c.list(out)
}

var ackModes = map[string]server.AckMode{
	"ack_requeue_true": server.AckRequeueTrue, "ack_requeue_false": server.AckRequeueFalse,
	"reject_requeue_true": server.RejectRequeueTrue, "reject_requeue_false": server.RejectRequeueFalse,
}

func getMessages(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	if err := f.require("count", "ackmode", "encoding"); err != nil {
		return err
	}
	count, err := f.int("count", 0)
	if err != nil {
		return err
	}
	modeName, err := f.string("ackmode", "")
	if err != nil {
		return err
	}
	mode, ok := ackModes[modeName]
	if !ok {
		return badRequestTerm("invalid_ackmode", modeName)
	}
	enc, err := f.string("encoding", "")
	if err != nil {
		return err
	}
	if enc != "auto" && enc != "base64" {
		return badRequest("Unsupported encoding. Please use auto or base64.")
	}
	truncate, err := f.int("truncate", -1)
	if err != nil {
		return err
	}
	if count < 0 {
		count = 0
	}
	msgs, err := c.a.b.Get(c.vars["vhost"], c.vars["name"], int(min(count, 1<<20)), mode)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return &apiError{status: http.StatusNotFound, kind: "not_found", reason: ae.Text}
		}
		return err
	}
	out := make([]any, 0, len(msgs))
	for _, msg := range msgs {
		body := msg.Body
		if truncate >= 0 && int64(len(body)) > truncate {
			body = body[:truncate]
		}
		payload, penc := string(body), "string"
		if enc == "base64" || !utf8.Valid(body) {
			payload, penc = base64.StdEncoding.EncodeToString(body), "base64"
		}
		out = append(out, map[string]any{
			"payload_bytes": len(msg.Body), "redelivered": msg.Redelivered, "exchange": msg.Exchange,
			"routing_key": msg.RoutingKey, "message_count": msg.Remaining, "properties": propertiesJSON(msg.Properties),
			"payload": payload, "payload_encoding": penc,
		})
	}
	return c.ok(out)
}

// --- exchanges ---

func exchangeJSON(x server.ExchangeInfo, single bool) map[string]any {
	m := map[string]any{
		"name": x.Name, "vhost": x.Vhost, "type": x.Type, "durable": x.Durable, "auto_delete": x.AutoDelete,
		"internal": x.Internal, "arguments": tableJSON(x.Arguments),
		"message_stats": messageStats(x.Stats, exchangeStatKeys),
	}
	if x.Policy != "" {
		m["policy"] = x.Policy // RabbitMQ shows the key only when a policy applies
	}
	if single {
		m["incoming"], m["outgoing"] = []any{}, []any{}
	}
	return m
}

func listExchanges(c *call) error {
	xs := c.a.b.Exchanges(c.vhostFilter())
	out := make([]any, 0, len(xs))
	for _, x := range xs {
		out = append(out, exchangeJSON(x, false))
	}
	return c.list(out)
}

func getExchange(c *call) error {
	x, err := c.a.b.Exchange(c.vars["vhost"], exchangeName(c.vars["name"]))
	if err != nil {
		return err
	}
	return c.ok(exchangeJSON(x, true))
}

func putExchange(c *call) error {
	m, err := c.body(maxBody)
	if err != nil {
		return err
	}
	f := fields(m)
	typ, err := f.string("type", "direct")
	if err != nil {
		return err
	}
	spec := server.ExchangeSpec{Type: typ}
	if spec.Durable, err = f.bool("durable", false); err != nil {
		return err
	}
	if spec.AutoDelete, err = f.bool("auto_delete", false); err != nil {
		return err
	}
	if spec.Internal, err = f.bool("internal", false); err != nil {
		return err
	}
	if spec.Arguments, err = f.table("arguments"); err != nil {
		return err
	}
	name := c.vars["name"]
	if name == "amq.default" {
		return amqpStatus(amqp.Errorf(amqp.AccessRefused, "operation not permitted on the default exchange"))
	}
	created, err := c.a.b.DeclareExchange(c.vars["vhost"], name, spec)
	if err != nil {
		return err
	}
	return c.created(created)
}

func deleteExchange(c *call) error {
	name := exchangeName(c.vars["name"])
	return c.deleted(c.a.b.DeleteExchange(c.vars["vhost"], name, c.r.URL.Query().Get("if-unused") == "true"))
}

func exchangeBindings(side string) func(c *call) error {
	return func(c *call) error {
		vh, name := c.vars["vhost"], exchangeName(c.vars["name"])
		if _, err := c.a.b.Exchange(vh, name); err != nil {
			return err
		}
		return c.listBindings(vh, func(b server.BindingInfo) bool {
			return side == "source" && b.Source == name || side == "destination" && b.DestinationType == "exchange" && b.Destination == name
		})
	}
}

func publish(c *call) error {
	limit := int64(c.a.b.MaxMessageSize())*4/3 + maxBody // base64 and the JSON around the payload
	m, err := c.body(limit)
	if err != nil {
		return err
	}
	f := fields(m)
	if err := f.require("properties", "routing_key", "payload", "payload_encoding"); err != nil {
		return err
	}
	pm, ok := m["properties"].(map[string]any)
	if !ok {
		if arr, isArr := m["properties"].([]any); !isArr || len(arr) != 0 {
			return badRequestTerm("not_table", "properties")
		}
		pm = map[string]any{}
	}
	props, err := jsonProperties(pm)
	if err != nil {
		return err
	}
	key, err := f.string("routing_key", "")
	if err != nil {
		return err
	}
	payload, err := f.string("payload", "")
	if err != nil {
		return err
	}
	encoding, err := f.string("payload_encoding", "")
	if err != nil {
		return err
	}
	var body []byte
	switch encoding {
	case "string":
		body = []byte(payload)
	case "base64":
		body, err = base64.StdEncoding.DecodeString(payload)
		if err != nil {
			return badRequestTerm("not_base64", payload)
		}
	default:
		return badRequestTerm("unsupported_encoding", encoding)
	}
	routed, err := c.a.b.Publish(c.vars["vhost"], exchangeName(c.vars["name"]), key, props, body, c.user.Name)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) {
			// RabbitMQ answers a publish its channel refused with 400 and the channel's close reason.
			return badRequest("%d %s", ae.Code, ae.Text)
		}
		return err
	}
	return c.ok(map[string]any{"routed": routed})
}

// --- bindings ---

func listBindings(c *call) error {
	bs := c.a.b.Bindings(c.vhostFilter())
	out := make([]any, 0, len(bs))
	for _, b := range bs {
		out = append(out, bindingJSON(b))
	}
	return c.list(out)
}

func destType(kind string) string {
	if kind == "q" {
		return "queue"
	}
	return "exchange"
}

// between lists the bindings from source to dest; 404 if either end is missing.
func (c *call) between(kind string) ([]server.BindingInfo, error) {
	vh, src, dst := c.vars["vhost"], exchangeName(c.vars["source"]), c.vars["dest"]
	if _, err := c.a.b.Exchange(vh, src); err != nil {
		return nil, err
	}
	if kind == "q" {
		if _, err := c.a.b.Queue(vh, dst); err != nil {
			return nil, err
		}
	} else if _, err := c.a.b.Exchange(vh, exchangeName(dst)); err != nil {
		return nil, err
	}
	bs, err := c.a.b.VhostBindings(vh)
	if err != nil {
		return nil, err
	}
	var out []server.BindingInfo
	for _, b := range bs {
		if b.Source == src && b.DestinationType == destType(kind) && b.Destination == dst {
			out = append(out, b)
		}
	}
	return out, nil
}

func bindingsBetween(kind string) func(c *call) error {
	return func(c *call) error {
		bs, err := c.between(kind)
		if err != nil {
			return err
		}
		out := make([]any, 0, len(bs))
		for _, b := range bs {
			out = append(out, bindingJSON(b))
		}
		return c.list(out)
	}
}

func postBinding(kind string) func(c *call) error {
	return func(c *call) error {
		m, err := c.body(maxBody)
		if err != nil {
			return err
		}
		f := fields(m)
		key, err := f.string("routing_key", "")
		if err != nil {
			return err
		}
		args, err := f.table("arguments")
		if err != nil {
			return err
		}
		vh, src, dst := c.vars["vhost"], exchangeName(c.vars["source"]), c.vars["dest"]
		if err := c.a.b.Bind(vh, src, destType(kind), dst, key, args); err != nil {
			return err
		}
		c.w.Header().Set("Location", bindingLocation(dst, key, args))
		c.w.WriteHeader(http.StatusCreated)
		return nil
	}
}

// findBinding resolves the {props} path segment to a binding.
func (c *call) findBinding(kind string) (server.BindingInfo, error) {
	bs, err := c.between(kind)
	if err != nil {
		return server.BindingInfo{}, err
	}
	for _, b := range bs {
		if propertiesKey(b.RoutingKey, b.Arguments) == c.vars["props"] {
			return b, nil
		}
	}
	return server.BindingInfo{}, server.ErrNotFound
}

func getBinding(kind string) func(c *call) error {
	return func(c *call) error {
		b, err := c.findBinding(kind)
		if err != nil {
			return err
		}
		return c.ok(bindingJSON(b))
	}
}

func deleteBinding(kind string) func(c *call) error {
	return func(c *call) error {
		b, err := c.findBinding(kind)
		if err != nil {
			return err
		}
		return c.deleted(c.a.b.Unbind(b.Vhost, b.Source, b.DestinationType, b.Destination, b.RoutingKey, b.Arguments))
	}
}
