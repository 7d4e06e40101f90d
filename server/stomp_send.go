package server

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/stomp"
)

// STOMP destinations, SEND, RabbitMQ's mapping of STOMP headers onto AMQP properties and back,
// and transactions.

// stompDest is a parsed destination header, as RabbitMQ's rabbit_routing_parser reads them.
type stompDest struct {
	kind string // "/exchange", "/queue", "/amq/queue", "/topic", "/temp-queue", "/reply-queue"
	name string // the exchange (/exchange) or queue name
	key  string // the routing key (/exchange's pattern, /topic's key)
}

// parseStompDest parses d; false if it is none of RabbitMQ's destination types.
func parseStompDest(d string) (stompDest, bool) {
	unesc := func(s string) string {
		if u, err := url.PathUnescape(s); err == nil {
			return u
		}
		return s
	}
	for _, kind := range []string{"/exchange/", "/amq/queue/", "/queue/", "/topic/", "/temp-queue/", "/reply-queue/"} {
		rest, ok := strings.CutPrefix(d, kind)
		if !ok {
			continue
		}
		kind = strings.TrimSuffix(kind, "/")
		switch kind {
		case "/exchange":
			name, key, _ := strings.Cut(rest, "/")
			if name == "" {
				return stompDest{}, false
			}
			return stompDest{kind: kind, name: unesc(name), key: unesc(key)}, true
		case "/topic":
			return stompDest{kind: kind, name: "amq.topic", key: unesc(rest)}, true
		default:
			if rest == "" || strings.Contains(rest, "/") {
				return stompDest{}, false
			}
			return stompDest{kind: kind, name: unesc(rest)}, true
		}
	}
	return stompDest{}, false
}

// unknownDest is RabbitMQ's ERROR for a destination it cannot parse.
func (sc *stompConn) unknownDest(f stomp.Frame, d string) error {
	return sc.fail(f, "Unknown destination", fmt.Sprintf("'%s' is not a valid destination.\n"+
		"Valid destination types are: /temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/.\n", d))
}

// stompQueueArgs are the headers RabbitMQ takes as queue arguments when a destination declares
// a queue, with their AMQP types.
var stompQueueArgs = map[string]byte{
	"x-dead-letter-exchange": 's', "x-dead-letter-routing-key": 's', "x-queue-type": 's',
	"x-overflow": 's', "x-queue-mode": 's', "x-queue-master-locator": 's',
	"x-expires": 'l', "x-max-length": 'l', "x-max-length-bytes": 'l', "x-max-priority": 'l',
	"x-message-ttl": 'l', "x-delivery-limit": 'l', "x-max-age": 's',
	"x-single-active-consumer": 't',
}

// queueArgs reads the queue arguments among f's headers.
func queueArgsFromHeaders(f stomp.Frame) amqp.Table {
	var args amqp.Table
	for _, h := range f.Headers {
		typ, ok := stompQueueArgs[string(h.Name)]
		if !ok {
			continue
		}
		if args == nil {
			args = amqp.Table{}
		}
		name, val := string(h.Name), string(h.Value)
		if _, dup := args[name]; dup {
			continue // the first occurrence wins
		}
		switch typ {
		case 'l':
			if n, err := strconv.ParseInt(val, 10, 64); err == nil {
				args[name] = n
			} else {
				args[name] = val // refused by the declare, with RabbitMQ's text
			}
		case 't':
			args[name] = val == "true"
		default:
			args[name] = val
		}
	}
	return args
}

// boolHeader reads a "true"/"false" header with a default.
func boolHeader(f stomp.Frame, name string, def bool) bool {
	v, ok := f.Get(name)
	if !ok {
		return def
	}
	switch string(v) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// declareStompQueue declares the queue a /queue destination names, as RabbitMQ does: durable,
// not auto-delete, not exclusive unless the frame's durable, auto-delete and exclusive headers
// say otherwise, with the queue arguments among its headers.
func (sc *stompConn) declareStompQueue(f stomp.Frame, name string) (*queue, error) {
	return sc.vhost.declareQueue(sc.owner, &amqp.QueueDeclare{
		Queue:      name,
		Durable:    boolHeader(f, "durable", true),
		AutoDelete: boolHeader(f, "auto-delete", false),
		Exclusive:  boolHeader(f, "exclusive", false),
		Arguments:  queueArgsFromHeaders(f),
	})
}

// send handles SEND: in a transaction it is held until COMMIT.
func (sc *stompConn) send(f stomp.Frame) error {
	if _, ok := f.Get("destination"); !ok {
		return sc.fail(f, "Missing destination", "\"SEND\" must include a 'destination' header\n")
	}
	if tx, ok := f.Get("transaction"); ok && !sc.committing {
		return sc.holdInTx(f, string(tx))
	}
	return sc.publish(f)
}

// publish routes a SEND's message through the core publish path (publish.go).
func (sc *stompConn) publish(f stomp.Frame) error {
	if !sc.waitPublishAllowed() {
		return net.ErrClosed
	}
	destB, _ := f.Get("destination")
	dest := string(destB)
	d, ok := parseStompDest(dest)
	if !ok {
		return sc.unknownDest(f, dest)
	}
	if _, ok := f.Get("message-id"); ok {
		return sc.fail(f, "Invalid header", "'message-id' is not allowed on 'SEND'.\n")
	}
	exName, key := "", d.name
	switch d.kind {
	case "/queue":
		if _, err := sc.declareStompQueue(f, d.name); err != nil {
			return sc.failAMQP(f, err)
		}
	case "/amq/queue", "/reply-queue":
	case "/topic", "/exchange":
		exName, key = d.name, d.key
	case "/temp-queue":
		return sc.fail(f, "Invalid destination", fmt.Sprintf("'%s' is not a valid destination for 'SEND'\n", dest))
	}
	v := sc.vhost
	ex, err := v.checkPublish(sc.user, exName, key, &sc.pubAccess) // publish.go
	if err != nil {
		return sc.failAMQP(f, err)
	}
	props, perr := stompProperties(f)
	if perr != nil {
		return sc.failAMQP(f, perr)
	}
	if name, ok := strings.CutPrefix(props.ReplyTo, "/temp-queue/"); ok {
		q, err := sc.tempQueue(name)
		if err != nil {
			return sc.failAMQP(f, err)
		}
		props.ReplyTo = q
	}
	if props.UserID != "" && props.UserID != sc.user.name {
		return sc.failAMQP(f, amqp.Errorf(amqp.PreconditionFailed, "user_id property set to '%s' but authenticated user was '%s'", props.UserID, sc.user.name))
	}
	var ttl int64
	if props.Expiration != "" {
		if ttl, err = parseExpiration(props.Expiration); err != nil {
			return sc.failAMQP(f, expirationError(props.Expiration, err))
		}
	}
	raw, err := props.Append(nil)
	if err != nil {
		return sc.failAMQP(f, amqp.Errorf(amqp.PreconditionFailed, "properties: %v", err))
	}
	// The message looks as one received from AMQP: its headers decoded from what was encoded.
	decoded, err := amqp.DecodeProperties(raw)
	if err != nil {
		return sc.failAMQP(f, amqp.Errorf(amqp.PreconditionFailed, "properties: %v", err))
	}
	// Properties and body in one allocation, as an AMQP publish has them.
	buf := make([]byte, len(raw)+len(f.Body))
	copy(buf, raw)
	copy(buf[len(raw):], f.Body)
	msg := &message{exchange: exName, routingKey: key, props: buf[:len(raw):len(raw)], body: buf[len(raw):],
		persistent: decoded.DeliveryMode == 2, headers: decoded.Headers, arrived: sc.readAt, ttl: ttl,
		hasTTL: props.Expiration != "", priority: decoded.Priority}
	sc.lastGroup = nil
	var qbuf [8]*queue
	qs, _ := v.publish(sc, ex, msg, nil, nil, qbuf[:0]) // publish.go
	countRoute(nil, v, ex, qs, sReturnUnroutable)
	g := sc.lastGroup
	if g != nil {
		sc.durable = g
	}
	sc.receipt(f, g)
	return nil
}

// stompPropertyHeaders are the SEND headers that become AMQP properties (or name the
// destination): RabbitMQ copies every other header, content-length, receipt and transaction
// included, into the AMQP headers table.
var stompPropertyHeaders = map[string]bool{
	"destination": true, "content-type": true, "content-encoding": true, "persistent": true, "priority": true,
	"correlation-id": true, "reply-to": true, "expiration": true, "amqp-message-id": true, "timestamp": true,
	"type": true, "user-id": true, "app-id": true,
}

// stompFrameHeaders are the headers a MESSAGE frame writes itself: an AMQP header of the same
// name is not copied.
var stompFrameHeaders = map[string]bool{
	"content-length": true, "subscription": true, "message-id": true, "redelivered": true, "ack": true,
}

// stompProperties maps a SEND's headers onto AMQP properties as RabbitMQ does: the property
// headers (persistent:true is delivery-mode 2), every other header as a string in the headers
// table. /temp-queue reply-to destinations are not supported (RabbitMQ makes them a queue).
func stompProperties(f stomp.Frame) (amqp.Properties, error) {
	var p amqp.Properties
	seen := map[string]bool{}
	for _, h := range f.Headers {
		name, val := string(h.Name), string(h.Value)
		if seen[name] {
			continue // the first occurrence wins
		}
		seen[name] = true
		switch name {
		case "content-type":
			p.ContentType = val
		case "content-encoding":
			p.ContentEncoding = val
		case "persistent":
			if val == "true" {
				p.DeliveryMode = 2
			}
		case "priority":
			n, err := strconv.ParseUint(val, 10, 8)
			if err != nil {
				return p, amqp.Errorf(amqp.PreconditionFailed, "invalid priority header '%s'", val)
			}
			p.Priority = uint8(n)
		case "correlation-id":
			p.CorrelationID = val
		case "reply-to":
			p.ReplyTo = val
		case "expiration":
			p.Expiration = val
		case "amqp-message-id":
			p.MessageID = val
		case "timestamp":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return p, amqp.Errorf(amqp.PreconditionFailed, "invalid timestamp header '%s'", val)
			}
			p.Timestamp = time.Unix(n, 0)
		case "type":
			p.Type = val
		case "user-id":
			p.UserID = val
		case "app-id":
			p.AppID = val
		default:
			if stompPropertyHeaders[name] {
				continue
			}
			if p.Headers == nil {
				p.Headers = amqp.Table{}
			}
			p.Headers[name] = val
		}
	}
	return p, nil
}

// stompMessageDest is the destination header of a MESSAGE for a message published to exchange
// with key, as RabbitMQ writes it.
func stompMessageDest(exchange, key string) string {
	switch exchange {
	case "":
		return "/queue/" + key
	case "amq.topic":
		return "/topic/" + key
	}
	if key == "" {
		return "/exchange/" + exchange
	}
	return "/exchange/" + exchange + "/" + key
}

// appendPropertyHeaders appends the STOMP headers for msg's AMQP properties, in RabbitMQ's
// order: the headers table (strings and integers; other types are dropped, as RabbitMQ drops
// them), then the properties.
func appendPropertyHeaders(hs []stomp.Header, p *amqp.Properties) []stomp.Header {
	if len(p.Headers) > 0 {
		names := make([]string, 0, len(p.Headers))
		for k := range p.Headers {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			var val string
			switch x := p.Headers[k].(type) {
			case string:
				val = x
			case []byte:
				val = string(x)
			case int8, int16, int32, int64, uint8, uint16, uint32, int:
				val = fmt.Sprint(x)
			default:
				continue
			}
			if stompFrameHeaders[k] || stompPropertyHeaders[k] {
				continue
			}
			hs = append(hs, stomp.H(k, val))
		}
	}
	add := func(name, val string) {
		if val != "" {
			hs = append(hs, stomp.H(name, val))
		}
	}
	add("app-id", p.AppID)
	add("user-id", p.UserID)
	add("type", p.Type)
	if !p.Timestamp.IsZero() {
		add("timestamp", strconv.FormatInt(p.Timestamp.Unix(), 10))
	}
	add("amqp-message-id", p.MessageID)
	add("expiration", p.Expiration)
	if p.ReplyTo != "" {
		if strings.HasPrefix(p.ReplyTo, "/") {
			add("reply-to", p.ReplyTo)
		} else {
			add("reply-to", "/reply-queue/"+p.ReplyTo)
		}
	}
	add("correlation-id", p.CorrelationID)
	if p.Priority != 0 {
		add("priority", strconv.Itoa(int(p.Priority)))
	}
	if p.DeliveryMode == 2 {
		add("persistent", "true")
	}
	add("content-encoding", p.ContentEncoding)
	add("content-type", p.ContentType)
	return hs
}

// tempQueue returns the queue a reply-to of /temp-queue/<name> stands for, as RabbitMQ makes it:
// the first use declares a server-named exclusive auto-delete queue ("amq.gen-...") and subscribes
// the connection to it (subscription "/temp-queue/<name>", automatic acks); later uses of the name
// on the connection reuse it.
func (sc *stompConn) tempQueue(name string) (string, error) {
	id := "/temp-queue/" + name
	if sub := sc.subs[id]; sub != nil {
		return sub.q.name, nil
	}
	q, err := sc.vhost.declareQueue(sc.owner, &amqp.QueueDeclare{Exclusive: true, AutoDelete: true})
	if err != nil {
		return "", err
	}
	sub := &stompSub{sc: sc, id: id, hasID: true, prefix: "T_" + id, q: q}
	sub.subscription = subscription{tag: sub.prefix, target: sub, noAck: true}
	sc.subs[id] = sub
	sc.mu.Lock()
	sc.mu.subs = append(sc.mu.subs, sub)
	sc.mu.Unlock()
	if err := q.addConsumer(&sub.subscription, func() {}); err != nil {
		sc.forget(sub)
		return "", err
	}
	return q.name, nil
}

// --- transactions ---

// holdInTx keeps a SEND, ACK or NACK of transaction tx until its COMMIT.
func (sc *stompConn) holdInTx(f stomp.Frame, tx string) error {
	frames, ok := sc.txs[tx]
	if !ok {
		return sc.badTx(f, tx)
	}
	sc.txs[tx] = append(frames, f.Clone()) // its receipt comes after the COMMIT's, as RabbitMQ's
	return nil
}

func (sc *stompConn) badTx(f stomp.Frame, tx string) error {
	return sc.fail(f, "Bad transaction", fmt.Sprintf("Invalid transaction identifier: %q\n", tx))
}

func (sc *stompConn) txHeader(f stomp.Frame) (string, bool) {
	tx, ok := f.Get("transaction")
	return string(tx), ok
}

func (sc *stompConn) begin(f stomp.Frame) error {
	tx, ok := sc.txHeader(f)
	if !ok {
		return sc.fail(f, "Missing transaction", "\"BEGIN\" must include a 'transaction' header\n")
	}
	if _, open := sc.txs[tx]; !open {
		sc.txs[tx] = nil
	}
	sc.receipt(f, nil)
	return nil
}

// commit replays the transaction's frames in order; its receipt waits for their publishes.
func (sc *stompConn) commit(f stomp.Frame) error {
	tx, ok := sc.txHeader(f)
	if !ok {
		return sc.fail(f, "Missing transaction", "\"COMMIT\" must include a 'transaction' header\n")
	}
	frames, open := sc.txs[tx]
	if !open {
		return sc.badTx(f, tx)
	}
	delete(sc.txs, tx)
	sc.committing = true
	defer func() { sc.committing = false }()
	var last *commitGroup
	var held []string // the held frames' receipts, sent after the COMMIT's as RabbitMQ does
	for _, tf := range frames {
		if r, ok := tf.Get("receipt"); ok {
			held = append(held, string(r))
			tf.Headers = withoutHeader(tf.Headers, "receipt")
		}
		var err error
		switch tf.Command {
		case stomp.CmdSend:
			err = sc.publish(tf)
			if sc.lastGroup != nil {
				last = sc.lastGroup
			}
		case stomp.CmdAck, stomp.CmdNack:
			err = sc.ackFrame(tf)
		}
		if err != nil {
			return err
		}
	}
	sc.receipt(f, last)
	for _, r := range held {
		sc.receipts <- stompReceipt{id: r, g: last}
	}
	return nil
}

func (sc *stompConn) abort(f stomp.Frame) error {
	tx, ok := sc.txHeader(f)
	if !ok {
		return sc.fail(f, "Missing transaction", "\"ABORT\" must include a 'transaction' header\n")
	}
	if _, open := sc.txs[tx]; !open {
		return sc.badTx(f, tx)
	}
	delete(sc.txs, tx)
	sc.receipt(f, nil)
	return nil
}

// withoutHeader returns hs without the headers called name.
func withoutHeader(hs []stomp.Header, name string) []stomp.Header {
	out := hs[:0:0]
	for _, h := range hs {
		if string(h.Name) != name {
			out = append(out, h)
		}
	}
	return out
}
