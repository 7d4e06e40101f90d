package integration

import (
	"fmt"
	"slices"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The default exchange and the amq.* exchanges exist with their types and flags.
func TestExchangePredeclared(t *testing.T) {
	_, conn, ch := amqpSetup(t)
	for _, x := range []struct{ name, kind string }{
		{"amq.direct", "direct"}, {"amq.fanout", "fanout"}, {"amq.topic", "topic"},
		{"amq.headers", "headers"}, {"amq.match", "headers"},
	} {
		if err := ch.ExchangeDeclarePassive(x.name, x.kind, true, false, false, false, nil); err != nil {
			t.Fatalf("passive declare %s: %v", x.name, err)
		}
		// Redeclaring an existing amq.* exchange with the same attributes is allowed.
		if err := ch.ExchangeDeclare(x.name, x.kind, true, false, false, false, nil); err != nil {
			t.Fatalf("redeclare %s: %v", x.name, err)
		}
	}
	// The default exchange routes to the queue named by the routing key.
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "", q.Name, "via default")
	if m := amqpGet(t, ch, q.Name, true); string(m.Body) != "via default" || m.Exchange != "" || m.RoutingKey != q.Name {
		t.Fatalf("got %q exchange %q key %q", m.Body, m.Exchange, m.RoutingKey)
	}
	// amq.direct routes by binding.
	if err := ch.QueueBind(q.Name, "k", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "amq.direct", "k", "via amq.direct")
	if m := amqpGet(t, ch, q.Name, true); string(m.Body) != "via amq.direct" || m.Exchange != "amq.direct" {
		t.Fatalf("got %q from %q", m.Body, m.Exchange)
	}
	amqpAssertAlive(t, conn)
}

// Declaring is idempotent; passive declare checks existence; a redeclaration with different type,
// durable, auto-delete, internal or arguments is 406 PRECONDITION_FAILED naming the argument.
func TestExchangeDeclareEquivalence(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	ch := amqpChannel(t, conn)
	name := amqpName(t, "x")
	args := amqp.Table{"alternate-exchange": "ae"}
	if err := ch.ExchangeDeclare(name, "direct", false, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", name)
	if err := ch.ExchangeDeclare(name, "direct", false, false, false, false, args); err != nil {
		t.Fatalf("identical redeclare: %v", err)
	}
	if err := ch.ExchangeDeclarePassive(name, "direct", false, false, false, false, nil); err != nil {
		t.Fatalf("passive: %v", err)
	}
	// Passive declare ignores the other fields.
	if err := ch.ExchangeDeclarePassive(name, "fanout", true, true, true, false, nil); err != nil {
		t.Fatalf("passive with other attributes: %v", err)
	}
	vhost := " in vhost '/'"
	cases := []struct {
		name                        string
		kind                        string
		durable, autoDelete, intern bool
		args                        amqp.Table
		prefix                      string
	}{
		{"type", "fanout", false, false, false, args, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '" + name + "'" + vhost + ": received 'fanout' but current is 'direct'"},
		{"durable", "direct", true, false, false, args, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '" + name + "'" + vhost + ": received 'true' but current is 'false'"},
		{"auto_delete", "direct", false, true, false, args, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange '" + name + "'" + vhost + ": received 'true' but current is 'false'"},
		{"internal", "direct", false, false, true, args, "PRECONDITION_FAILED - inequivalent arg 'internal' for exchange '" + name + "'" + vhost + ": received 'true' but current is 'false'"},
		{"arguments", "direct", false, false, false, amqp.Table{"alternate-exchange": "other"}, "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '" + name + "'" + vhost},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := amqpChannel(t, conn)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			err := ch.ExchangeDeclare(name, c.kind, c.durable, c.autoDelete, c.intern, false, c.args)
			amqpAssertChannelError(t, conn, ch, closed, err, amqp.PreconditionFailed, c.prefix)
		})
	}
}

// Exchange declare and delete errors, each with its code and text.
func TestExchangeErrors(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	missing := amqpName(t, "missing")
	reserved := "amq." + amqpName(t, "x")
	soft := []struct {
		name   string
		code   int
		prefix string
		do     func(ch *amqp.Channel) error
	}{
		{"passive missing", amqp.NotFound, "NOT_FOUND - no exchange '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive(missing, "direct", false, false, false, false, nil)
		}},
		{"reserved amq. prefix", amqp.AccessRefused, "ACCESS_REFUSED - exchange name '" + reserved + "' contains reserved prefix 'amq.*'", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(reserved, "direct", false, false, false, false, nil)
		}},
		{"declare default exchange", amqp.AccessRefused, "ACCESS_REFUSED - operation not permitted on the default exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("", "direct", true, false, false, false, nil)
		}},
		{"delete default exchange", amqp.AccessRefused, "ACCESS_REFUSED - operation not permitted on the default exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDelete("", false, false)
		}},
		{"bind queue to default exchange", amqp.AccessRefused, "ACCESS_REFUSED - operation not permitted on the default exchange", func(ch *amqp.Channel) error {
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			return ch.QueueBind(q.Name, "k", "", false, nil)
		}},
		{"unbind queue from default exchange", amqp.AccessRefused, "ACCESS_REFUSED - operation not permitted on the default exchange", func(ch *amqp.Channel) error {
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			return ch.QueueUnbind(q.Name, q.Name, "", nil)
		}},
		{"exchange.bind missing source", amqp.NotFound, "NOT_FOUND - no exchange '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			return ch.ExchangeBind("amq.fanout", "k", missing, false, nil)
		}},
		{"queue.bind missing exchange", amqp.NotFound, "NOT_FOUND - no exchange '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				return fmt.Errorf("setup: %w", err)
			}
			return ch.QueueBind(q.Name, "k", missing, false, nil)
		}},
	}
	for _, c := range soft {
		t.Run(c.name, func(t *testing.T) {
			ch := amqpChannel(t, conn)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			amqpAssertChannelError(t, conn, ch, closed, c.do(ch), c.code, c.prefix)
		})
	}
	// Deleting an exchange that does not exist succeeds (RabbitMQ 3.10 is idempotent here).
	ch := amqpChannel(t, conn)
	if err := ch.ExchangeDelete(missing, false, false); err != nil {
		t.Fatalf("delete of a missing exchange: %v", err)
	}
	amqpAssertAlive(t, conn)
}

// An unknown exchange type is a connection error: 503 COMMAND_INVALID.
func TestExchangeUnknownType(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	ch := amqpChannel(t, conn)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	name := amqpName(t, "x")
	err := ch.ExchangeDeclare(name, "x-no-such-type", false, false, false, false, nil)
	amqpCleanup(t, b, "exchange", name)
	amqpAssertConnectionError(t, conn, closed, err, amqp.CommandInvalid, "COMMAND_INVALID - unknown exchange type 'x-no-such-type'")
}

// exchange.delete if-unused refuses an exchange with bindings (as source) with 406, deletes it once
// unbound; deleting an exchange removes its bindings.
func TestExchangeDeleteIfUnused(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	x := amqpExchange(t, b, ch, "direct", "x")
	q := amqpQueue(t, b, ch, "q")
	if err := ch.QueueBind(q, "k", x, false, nil); err != nil {
		t.Fatal(err)
	}
	ch2 := amqpChannel(t, conn)
	closed := ch2.NotifyClose(make(chan *amqp.Error, 1))
	amqpAssertChannelError(t, conn, ch2, closed, ch2.ExchangeDelete(x, true, false), amqp.PreconditionFailed,
		"PRECONDITION_FAILED - exchange '"+x+"' in vhost '/' in use")
	// Still there and still routing.
	amqpPublish(t, ch, x, "k", "m1")
	amqpGet(t, ch, q, true)
	if err := ch.QueueUnbind(q, "k", x, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(x, true, false); err != nil {
		t.Fatalf("if-unused delete of an unbound exchange: %v", err)
	}
	ch3 := amqpChannel(t, conn)
	closed3 := ch3.NotifyClose(make(chan *amqp.Error, 1))
	amqpAssertChannelError(t, conn, ch3, closed3, ch3.ExchangeDeclarePassive(x, "direct", false, false, false, false, nil),
		amqp.NotFound, "NOT_FOUND - no exchange '"+x+"' in vhost '/'")

	// A plain delete removes the exchange with its bindings: a new exchange of that name routes nowhere.
	y := amqpExchange(t, b, ch, "direct", "y")
	if err := ch.QueueBind(q, "k", y, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(y, false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(y, "direct", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, y, "k", "m2")
	amqpGetEmpty(t, ch, q)
}

// A message published to an internal exchange is refused with 403; the internal exchange still routes
// what reaches it through an exchange-to-exchange binding.
func TestExchangeInternal(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	internal := amqpName(t, "internal")
	if err := ch.ExchangeDeclare(internal, "fanout", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", internal)
	front := amqpExchange(t, b, ch, "fanout", "front")
	q := amqpQueue(t, b, ch, "q")
	if err := ch.QueueBind(q, "", internal, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeBind(internal, "", front, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, front, "", "through")
	if m := amqpGet(t, ch, q, true); string(m.Body) != "through" || m.Exchange != front {
		t.Fatalf("got %q from %q, want through from the front exchange", m.Body, m.Exchange)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	amqpPublish(t, ch, internal, "", "direct")
	e := amqpWaitClose(t, closed)
	amqpAssertChannelError(t, conn, ch, nil, e, amqp.AccessRefused,
		"ACCESS_REFUSED - cannot publish to internal exchange '"+internal+"' in vhost '/'")
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("%d messages reached the queue through the internal exchange", n)
	}
}

// Publishing to an exchange that does not exist closes the channel with 404.
func TestExchangePublishMissing(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	missing := amqpName(t, "missing")
	q := amqpQueue(t, b, ch, "q")
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	amqpPublish(t, ch, missing, q, "lost")
	e := amqpWaitClose(t, closed)
	amqpAssertChannelError(t, conn, ch, nil, e, amqp.NotFound, "NOT_FOUND - no exchange '"+missing+"' in vhost '/'")
}

// An auto-delete exchange goes when its last binding (as source) is removed, not before.
func TestExchangeAutoDelete(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	x := amqpName(t, "x")
	if err := ch.ExchangeDeclare(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", x)
	q1 := amqpQueue(t, b, ch, "q1")
	q2 := amqpQueue(t, b, ch, "q2")
	if err := ch.QueueBind(q1, "a", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q2, "b", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueUnbind(q1, "a", x, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclarePassive(x, "direct", false, true, false, false, nil); err != nil {
		t.Fatalf("auto-delete exchange gone while a binding remains: %v", err)
	}
	// Deleting the bound queue removes the last binding.
	if _, err := ch.QueueDelete(q2, false, false, false); err != nil {
		t.Fatal(err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	amqpAssertChannelError(t, conn, ch, closed, ch.ExchangeDeclarePassive(x, "direct", false, true, false, false, nil),
		amqp.NotFound, "NOT_FOUND - no exchange '"+x+"' in vhost '/'")
}

// amqpRoutes publishes one message per key to exchange x and reports, for each queue, the bodies it got
// (drained with basic.get).
func amqpRoutes(t *testing.T, ch *amqp.Channel, x string, pubs []amqp.Publishing, keys []string, queues []string) map[string][]string {
	t.Helper()
	for i, p := range pubs {
		if err := ch.Publish(x, keys[i], false, false, p); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string][]string{}
	for _, q := range queues {
		for {
			m, ok, err := ch.Get(q, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got[q] = append(got[q], string(m.Body))
		}
	}
	return got
}

// direct: exact key; several queues bound with the same key each get a copy; a queue bound twice with
// different keys gets one copy per matching message.
func TestExchangeDirectRouting(t *testing.T) {
	b, _, ch := amqpSetup(t)
	x := amqpExchange(t, b, ch, "direct", "x")
	q1, q2, q3 := amqpQueue(t, b, ch, "q1"), amqpQueue(t, b, ch, "q2"), amqpQueue(t, b, ch, "q3")
	for _, bd := range []struct{ q, k string }{{q1, "red"}, {q2, "red"}, {q3, "blue"}, {q3, "red"}, {q1, "red"}} {
		if err := ch.QueueBind(bd.q, bd.k, x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{"red", "blue", "green", "Red"}
	var pubs []amqp.Publishing
	for _, k := range keys {
		pubs = append(pubs, amqp.Publishing{Body: []byte(k)})
	}
	got := amqpRoutes(t, ch, x, pubs, keys, []string{q1, q2, q3})
	want := map[string][]string{q1: {"red"}, q2: {"red"}, q3: {"red", "blue"}}
	for q, w := range want {
		if !slices.Equal(got[q], w) {
			t.Errorf("queue %s got %q, want %q", q, got[q], w)
		}
	}
}

// fanout: every bound queue gets every message, whatever the key.
func TestExchangeFanoutRouting(t *testing.T) {
	b, _, ch := amqpSetup(t)
	x := amqpExchange(t, b, ch, "fanout", "x")
	q1, q2 := amqpQueue(t, b, ch, "q1"), amqpQueue(t, b, ch, "q2")
	if err := ch.QueueBind(q1, "", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q2, "ignored", x, false, nil); err != nil {
		t.Fatal(err)
	}
	keys := []string{"", "a.b", "anything"}
	pubs := []amqp.Publishing{{Body: []byte("1")}, {Body: []byte("2")}, {Body: []byte("3")}}
	got := amqpRoutes(t, ch, x, pubs, keys, []string{q1, q2})
	for _, q := range []string{q1, q2} {
		if !slices.Equal(got[q], []string{"1", "2", "3"}) {
			t.Errorf("queue %s got %q", q, got[q])
		}
	}
}

// topic: '*' is exactly one word, '#' zero or more words; a queue matching through several bindings
// gets one copy.
func TestExchangeTopicRouting(t *testing.T) {
	b, _, ch := amqpSetup(t)
	x := amqpExchange(t, b, ch, "topic", "x")
	patterns := []string{"a.*.c", "a.#", "#", "*", "a.#.c", "#.c", "*.*", "a.b.c", "", "*.b.#"}
	queues := make([]string, len(patterns))
	for i, p := range patterns {
		queues[i] = amqpQueue(t, b, ch, fmt.Sprint("p", i))
		if err := ch.QueueBind(queues[i], p, x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The "a.#" queue also binds "a.b.c": still one copy per message.
	if err := ch.QueueBind(queues[1], "a.b.c", x, false, nil); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a.b.c", "a", "a.c", "a.b.b.c", "b", "", "x.b", "a.b", "c", "x.b.y.z"}
	// matches[pattern index] = keys it must receive
	matches := map[int][]string{
		0: {"a.b.c"},
		1: {"a.b.c", "a", "a.c", "a.b.b.c", "a.b"},
		2: keys,
		3: {"a", "b", "c"},
		4: {"a.b.c", "a.c", "a.b.b.c"},
		5: {"a.b.c", "a.c", "a.b.b.c", "c"},
		6: {"a.c", "x.b", "a.b"},
		7: {"a.b.c"},
		8: {""},
		9: {"a.b.c", "a.b.b.c", "x.b", "a.b", "x.b.y.z"},
	}
	var pubs []amqp.Publishing
	for _, k := range keys {
		pubs = append(pubs, amqp.Publishing{Body: []byte(k)})
	}
	got := amqpRoutes(t, ch, x, pubs, keys, queues)
	for i, p := range patterns {
		if !slices.Equal(got[queues[i]], matches[i]) {
			t.Errorf("pattern %q got %q, want %q", p, got[queues[i]], matches[i])
		}
	}
}

// headers: x-match all (the default) needs every bound header equal, any needs one; x- arguments are
// not matched; a binding with no headers under all matches everything. Also through amq.match.
func TestExchangeHeadersRouting(t *testing.T) {
	b, _, ch := amqpSetup(t)
	for _, xname := range []string{"", "amq.match"} {
		x := xname
		if x == "" {
			x = amqpExchange(t, b, ch, "headers", "x")
		}
		qAll, qAny, qDefault, qEmpty := amqpQueue(t, b, ch, "all"), amqpQueue(t, b, ch, "any"), amqpQueue(t, b, ch, "default"), amqpQueue(t, b, ch, "empty")
		binds := []struct {
			q    string
			args amqp.Table
		}{
			{qAll, amqp.Table{"x-match": "all", "format": "pdf", "type": "report"}},
			{qAny, amqp.Table{"x-match": "any", "format": "pdf", "type": "report"}},
			{qDefault, amqp.Table{"format": "pdf", "type": "report"}},
			{qEmpty, amqp.Table{"x-match": "all"}},
		}
		for _, bd := range binds {
			if err := ch.QueueBind(bd.q, "ignored-key", x, false, bd.args); err != nil {
				t.Fatal(err)
			}
		}
		msgs := []amqp.Table{
			{"format": "pdf", "type": "report"},               // both
			{"format": "pdf", "type": "log"},                  // one
			{"format": "zip"},                                 // none
			{"format": "pdf", "type": "report", "extra": "1"}, // both plus another
			nil,
		}
		var pubs []amqp.Publishing
		var keys []string
		for i, h := range msgs {
			pubs = append(pubs, amqp.Publishing{Headers: h, Body: []byte(fmt.Sprint(i))})
			keys = append(keys, "k")
		}
		got := amqpRoutes(t, ch, x, pubs, keys, []string{qAll, qAny, qDefault, qEmpty})
		want := map[string][]string{
			qAll: {"0", "3"}, qAny: {"0", "1", "3"}, qDefault: {"0", "3"}, qEmpty: {"0", "1", "2", "3", "4"},
		}
		for q, w := range want {
			if !slices.Equal(got[q], w) {
				t.Errorf("%s: queue %s got %q, want %q", x, q, got[q], w)
			}
		}
		for _, bd := range binds { // leave amq.match clean
			if err := ch.QueueUnbind(bd.q, "ignored-key", x, bd.args); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Exchange-to-exchange bindings: routing follows them, a queue reachable by several paths (and through a
// cycle) gets a message once, and exchange.unbind stops the flow.
func TestExchangeToExchangeBindings(t *testing.T) {
	b, _, ch := amqpSetup(t)
	src := amqpExchange(t, b, ch, "topic", "src")
	left := amqpExchange(t, b, ch, "fanout", "left")
	right := amqpExchange(t, b, ch, "direct", "right")
	q := amqpQueue(t, b, ch, "q")
	qRight := amqpQueue(t, b, ch, "qright")
	for _, e := range []struct{ dst, key, src string }{
		{left, "a.*", src}, {right, "a.b", src}, {src, "", left}, // left -> src closes a cycle
	} {
		if err := ch.ExchangeBind(e.dst, e.key, e.src, false, nil); err != nil {
			t.Fatalf("exchange.bind %s -> %s: %v", e.src, e.dst, err)
		}
	}
	if err := ch.QueueBind(q, "", left, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, "a.b", right, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(qRight, "a.b", right, false, nil); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a.b", "a.c", "z"}
	pubs := []amqp.Publishing{{Body: []byte("a.b")}, {Body: []byte("a.c")}, {Body: []byte("z")}}
	got := amqpRoutes(t, ch, src, pubs, keys, []string{q, qRight})
	if want := []string{"a.b", "a.c"}; !slices.Equal(got[q], want) {
		t.Errorf("queue on two paths got %q, want %q (each once)", got[q], want)
	}
	if want := []string{"a.b"}; !slices.Equal(got[qRight], want) {
		t.Errorf("right queue got %q, want %q", got[qRight], want)
	}
	// Deliveries carry the exchange the message was published to.
	amqpPublish(t, ch, src, "a.b", "hop")
	if m := amqpGet(t, ch, qRight, true); m.Exchange != src || m.RoutingKey != "a.b" {
		t.Errorf("delivered with exchange %q key %q, want %q a.b", m.Exchange, m.RoutingKey, src)
	}
	amqpGet(t, ch, q, true)
	if err := ch.ExchangeUnbind(right, "a.b", src, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeUnbind(left, "a.*", src, false, nil); err != nil {
		t.Fatal(err)
	}
	got = amqpRoutes(t, ch, src, pubs, keys, []string{q, qRight})
	if len(got[q])+len(got[qRight]) != 0 {
		t.Errorf("after exchange.unbind got %v, want nothing", got)
	}
	// Unbinding a binding that does not exist succeeds.
	if err := ch.ExchangeUnbind(right, "no-such-key", src, false, nil); err != nil {
		t.Fatalf("exchange.unbind of a missing binding: %v", err)
	}
}
