package federation

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp"
)

// receivedFrom is the header a federated message carries, one entry per hop (newest first).
const receivedFrom = "x-received-from"

// demandPoll is how often an idle federated-queue link asks whether its queue wants messages,
// and holdDemand how long it holds a fetched message waiting for demand before it gives it back.
const (
	demandPoll = 20 * time.Millisecond
	holdDemand = time.Second
)

// session is one connection of a link to its upstream.
type session struct {
	l     *link
	log   *slog.Logger
	uri   string
	conn  *amqp091.Connection
	ch    *amqp091.Channel
	close chan *amqp091.Error

	cluster string // the upstream's cluster_name (x-received-from)
	vhost   string // the upstream vhost
}

// runOnce runs the link over one connection to uri until it fails (the error says why) or the
// link is halted (nil).
func (l *link) runOnce(uri string, log *slog.Logger) error {
	if uri == "" {
		return errors.New("upstream has no URI")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("upstream URI: %w", err)
	}
	cfg := amqp091.Config{
		Heartbeat: 10 * time.Second,
		Dial:      amqp091.DefaultDial(10 * time.Second),
		Properties: amqp091.Table{
			"connection_name": l.connectionName(),
			"product":         "Warren federation",
		},
	}
	vhost := uriVhost(u)
	dialURI := uri
	if u.Host == "" { // this broker, through its direct connection
		cfg.Vhost, cfg.SASL = vhost, []amqp091.Authentication{directAuth{}}
		cfg.Dial = func(string, string) (net.Conn, error) { return l.m.cfg.Local.DialDirect() }
		dialURI = "amqp://localhost/"
	}
	conn, err := amqp091.DialConfig(dialURI, cfg)
	if err != nil {
		return fmt.Errorf("connecting to the upstream: %w", err)
	}
	s := &session{l: l, log: log, uri: uri, conn: conn, close: conn.NotifyClose(make(chan *amqp091.Error, 1))}
	defer func() {
		if err := conn.CloseDeadline(time.Now().Add(5 * time.Second)); err != nil && !errors.Is(err, amqp091.ErrClosed) {
			log.Debug("closing the upstream connection", "error", err)
		}
	}()
	s.cluster, _ = conn.Properties["cluster_name"].(string)
	s.vhost = vhost
	if s.ch, err = conn.Channel(); err != nil {
		return fmt.Errorf("opening a channel upstream: %w", err)
	}
	if l.spec.Type == TypeExchange {
		return s.runExchange()
	}
	return s.runQueue()
}

// directAuth is the EXTERNAL login of a direct connection.
type directAuth struct{}

func (directAuth) Mechanism() string { return "EXTERNAL" }
func (directAuth) Response() string  { return "" }

// connectionName names the link's upstream connection, as RabbitMQ names it.
func (l *link) connectionName() string {
	return fmt.Sprintf("Federation link (upstream: %s, policy: %s)", l.spec.Upstream.Name, l.spec.Policy)
}

// running marks the link running.
func (s *session) running(consumerTag, internal string) {
	s.l.setStatus(func(st *LinkStatus) {
		st.Status, st.Error = StatusRunning, ""
		st.LocalConnection = s.l.connectionName()
		st.ConsumerTag, st.UpstreamInternal = consumerTag, internal
	})
}

// closed turns a connection-close notification into the link's error.
func closed(e *amqp091.Error) error {
	if e == nil {
		return errors.New("upstream connection closed")
	}
	return fmt.Errorf("upstream connection closed: %w", e)
}

// haltedForGood reports whether the link was halted for good (and should clean up upstream).
func (s *session) haltedForGood() bool {
	select {
	case c := <-s.l.cleanup:
		s.l.cleanup <- c // the run loop may look again after this session
		return c
	default:
		return false
	}
}

// --- federated exchanges ---

// QueueName is the upstream queue an exchange link consumes from, as RabbitMQ 3.10 names it
// (rabbit_federation_link_util: "federation: X -> CLUSTER", then ":VHOST:DOWNX" when the vhosts
// differ, or ":DOWNX" when only the exchange names do).
func QueueName(upstreamExchange, upstreamVhost, cluster, downVhost, downExchange string) string {
	down := ""
	switch {
	case downVhost != upstreamVhost:
		down = ":" + downVhost + ":" + downExchange
	case downExchange != upstreamExchange:
		down = ":" + downExchange
	}
	return "federation: " + upstreamExchange + " -> " + cluster + down
}

type boundKey struct {
	key  string
	args string // the encoded arguments
}

func (s *session) runExchange() error {
	l := s.l
	up := l.spec.Upstream
	upX := l.upstreamName()
	local := l.m.cfg.Local
	qname := QueueName(upX, s.vhost, local.ClusterName(), l.spec.Vhost, l.spec.Name)
	args := amqp091.Table{"x-internal-purpose": "federation"}
	if up.Expires > 0 {
		args["x-expires"] = up.Expires
	}
	if up.MessageTTL > 0 {
		args["x-message-ttl"] = up.MessageTTL
	}
	if _, err := s.ch.QueueDeclare(qname, true, false, false, false, args); err != nil {
		return fmt.Errorf("declaring the upstream queue %q: %w", qname, err)
	}
	// The bindings go through an intermediate exchange declared afresh each time the link starts,
	// named as RabbitMQ names its own (the queue's name, then " A" or " B", alternately), so that
	// bindings the downstream dropped while the link was down go with the old one. It is a fanout
	// (RabbitMQ's is an x-federation-upstream, which only it and Warren have): hops are checked
	// here instead.
	xname, old := qname+" A", qname+" B"
	if s.exchangeExists(xname) {
		xname, old = old, xname
	}
	xargs := amqp091.Table{"x-internal-purpose": "federation"}
	if err := s.ch.ExchangeDeclare(xname, "fanout", true, true, true, false, xargs); err != nil {
		return fmt.Errorf("declaring the upstream exchange %q: %w", xname, err)
	}
	if err := s.ch.QueueBind(qname, "", xname, false, nil); err != nil {
		return fmt.Errorf("binding the upstream queue: %w", err)
	}
	bound := map[boundKey]Binding{}
	sync := func() error {
		bs, err := local.ExchangeBindings(l.spec.Vhost, l.spec.Name)
		if err != nil {
			return fmt.Errorf("reading the bindings of %q: %w", l.spec.Name, err)
		}
		want := map[boundKey]Binding{}
		for _, b := range bs {
			enc, err := amqp.AppendTable(nil, b.Args)
			if err != nil {
				continue // cannot be bound upstream either
			}
			want[boundKey{b.Key, string(enc)}] = b
		}
		for k, b := range want {
			if _, ok := bound[k]; !ok {
				if err := s.ch.ExchangeBind(xname, b.Key, upX, false, toClient(b.Args)); err != nil {
					return fmt.Errorf("binding upstream with key %q: %w", b.Key, err)
				}
				bound[k] = b
			}
		}
		for k, b := range bound {
			if _, ok := want[k]; !ok {
				if err := s.ch.ExchangeUnbind(xname, b.Key, upX, false, toClient(b.Args)); err != nil {
					return fmt.Errorf("unbinding upstream key %q: %w", b.Key, err)
				}
				delete(bound, k)
			}
		}
		return nil
	}
	if err := sync(); err != nil {
		return err
	}
	if err := s.ch.ExchangeDelete(old, false, false); err != nil {
		return fmt.Errorf("deleting the previous upstream exchange %q: %w", old, err)
	}
	deliveries, tag, err := s.consume(qname, up.PrefetchCount, nil)
	if err != nil {
		return err
	}
	s.running(tag, qname)
	for {
		select {
		case <-l.ctx.Done():
			if s.haltedForGood() && !up.NoCleanup {
				if _, err := s.ch.QueueDelete(qname, false, false, false); err != nil {
					s.log.Warn("deleting the upstream queue", "queue", qname, "error", err)
				} else if err := s.ch.ExchangeDelete(xname, false, false); err != nil {
					s.log.Warn("deleting the upstream exchange", "exchange", xname, "error", err)
				}
			}
			return nil
		case e := <-s.close:
			return closed(e)
		case <-l.wake:
			if err := sync(); err != nil {
				return err
			}
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("upstream consumer cancelled")
			}
			if err := s.forwardBatch(d, deliveries, upX); err != nil {
				return err
			}
		}
	}
}

// exchangeExists reports whether the upstream has the exchange name (a passive declare, on a
// channel of its own since a 404 closes it).
func (s *session) exchangeExists(name string) bool {
	ch, err := s.conn.Channel()
	if err != nil {
		return false
	}
	if err := ch.ExchangeDeclarePassive(name, "fanout", true, true, true, false, nil); err != nil {
		return false
	}
	_ = ch.Close()
	return true
}

// consume starts the link's consumer on the upstream queue.
func (s *session) consume(queue string, prefetch int, args amqp091.Table) (<-chan amqp091.Delivery, string, error) {
	up := s.l.spec.Upstream
	if err := s.ch.Qos(prefetch, 0, false); err != nil {
		return nil, "", fmt.Errorf("basic.qos upstream: %w", err)
	}
	tag := s.tag()
	d, err := s.ch.Consume(queue, tag, up.AckMode == "no-ack", false, false, false, args)
	if err != nil {
		return nil, "", fmt.Errorf("consuming from upstream queue %q: %w", queue, err)
	}
	return d, tag, nil
}

// tag is the link's upstream consumer tag: consumer-tag, else RabbitMQ's "federation-link-UPSTREAM".
func (s *session) tag() string {
	if t := s.l.spec.Upstream.ConsumerTag; t != "" {
		return t
	}
	return "federation-link-" + s.l.spec.Upstream.Name
}

// forward republishes d downstream (a queue link's message) and settles it upstream once it is
// confirmed, as the ack mode says.
func (s *session) forward(d amqp091.Delivery, upName, downName string) error {
	confirmed, err := s.publish(d, upName, downName, "", false)
	if err == nil && confirmed != nil {
		err = confirmed()
	}
	if err != nil {
		return s.giveBack(d, false, err)
	}
	return s.settle(d)
}

// forwardBatch republishes d and the deliveries already waiting behind it (up to prefetch-count)
// to the downstream exchange, then waits for their confirms and acks them upstream at once
// (basic.ack multiple): publishes are pipelined as RabbitMQ's link pipelines its confirms.
func (s *session) forwardBatch(d amqp091.Delivery, deliveries <-chan amqp091.Delivery, upName string) error {
	l := s.l
	var waits []func() error
	last := d
	add := func(d amqp091.Delivery) error {
		last = d
		confirmed, err := s.publish(d, upName, l.spec.Name, d.RoutingKey, true)
		if err != nil {
			return s.giveBack(d, true, err)
		}
		if confirmed != nil {
			waits = append(waits, confirmed)
		}
		return nil
	}
	if err := add(d); err != nil {
		return err
	}
	// amqp091-go hands deliveries over an unbuffered channel from its own goroutine, which must
	// run between two receives: a receive that finds none yields once before the batch ends.
	yielded := false
more:
	for n := 1; n < l.spec.Upstream.PrefetchCount; {
		select {
		case d, ok := <-deliveries:
			if !ok {
				break more // the caller sees the closed channel next
			}
			if err := add(d); err != nil {
				return err
			}
			n, yielded = n+1, false
			continue
		default:
		}
		if yielded {
			break
		}
		runtime.Gosched()
		yielded = true
	}
	for _, w := range waits {
		if err := w(); err != nil {
			return s.giveBack(last, true, err)
		}
	}
	if l.spec.Upstream.AckMode == "no-ack" {
		return nil
	}
	if err := last.Ack(true); err != nil {
		return fmt.Errorf("acknowledging upstream: %w", err)
	}
	return nil
}

// giveBack requeues d upstream (and, with multiple, every delivery before it not yet acked) after
// the downstream publish failed with err, which it returns.
func (s *session) giveBack(d amqp091.Delivery, multiple bool, err error) error {
	if s.l.spec.Upstream.AckMode != "no-ack" {
		_ = d.Nack(multiple, true)
	}
	return fmt.Errorf("publishing downstream: %w", err)
}

// publish republishes d downstream (to the exchange downName with key, or to the queue downName
// through the default exchange) and returns what waits for its confirm; nil: nothing was
// published, as an exchange link drops messages that went max-hops hops or came through this
// broker already.
func (s *session) publish(d amqp091.Delivery, upName, downName, key string, isExchange bool) (func() error, error) {
	l := s.l
	up := l.spec.Upstream
	props := fromDelivery(d)
	if !up.TrustUserID {
		props.UserID = ""
	}
	var hops []any
	if h, ok := props.Headers[receivedFrom].([]any); ok {
		hops = h
	}
	if isExchange && !s.shouldForward(props.Headers) {
		return nil, nil
	}
	if props.Headers == nil {
		props.Headers = amqp.Table{}
	}
	uri := RedactURI(s.uri)
	if isExchange {
		// rabbit_federation_exchange_link: the hop names the upstream exchange and broker.
		entry := amqp.Table{"uri": uri, "exchange": downName, "redelivered": d.Redelivered, "cluster-name": s.cluster, "vhost": s.vhost}
		props.Headers[receivedFrom] = append([]any{entry}, hops...)
	} else {
		// rabbit_federation_queue_link: the hop names the upstream queue and counts the visits
		// through it; the message keeps its original exchange and routing key in headers.
		visits := int64(1)
		rest := make([]any, 0, len(hops))
		for _, h := range hops {
			if t, ok := h.(amqp.Table); ok && t["uri"] == uri && t["queue"] == downName {
				if n, ok := t["visit-count"].(int64); ok {
					visits = n + 1
				}
				continue
			}
			rest = append(rest, h)
		}
		entry := amqp.Table{"uri": uri, "queue": downName, "redelivered": d.Redelivered, "visit-count": visits}
		props.Headers[receivedFrom] = append([]any{entry}, rest...)
		if _, ok := props.Headers["x-original-exchange"]; !ok {
			props.Headers["x-original-exchange"] = d.Exchange
		}
		if _, ok := props.Headers["x-original-routing-key"]; !ok {
			props.Headers["x-original-routing-key"] = d.RoutingKey
		}
	}
	exchange := downName
	if !isExchange {
		exchange, key = "", downName
	}
	return l.m.cfg.Local.Publish(l.spec.Vhost, exchange, key, props, d.Body)
}

func (s *session) settle(d amqp091.Delivery) error {
	if s.l.spec.Upstream.AckMode == "no-ack" {
		return nil
	}
	if err := d.Ack(false); err != nil {
		return fmt.Errorf("acknowledging upstream: %w", err)
	}
	return nil
}

// shouldForward is ShouldForward for this link's downstream.
func (s *session) shouldForward(headers amqp.Table) bool {
	return ShouldForward(headers, int64(s.l.spec.Upstream.MaxHops), s.l.m.cfg.Local.ClusterName(), s.l.spec.Vhost)
}

// --- federated queues ---

func (s *session) runQueue() error {
	l := s.l
	up := l.spec.Upstream
	upQ := l.upstreamName()
	if _, err := s.ch.QueueDeclarePassive(upQ, true, false, false, false, nil); err != nil {
		return fmt.Errorf("upstream queue %q: %w", upQ, err)
	}
	local := l.m.cfg.Local
	demand := func() (bool, error) { return local.QueueDemand(l.spec.Vhost, l.spec.Name) }
	s.running(s.tag(), "")
	tick := time.NewTicker(demandPoll)
	defer tick.Stop()
	for {
		// Idle: wait for the downstream queue to want messages.
		for {
			ok, err := demand()
			if err != nil {
				return err
			}
			if ok {
				break
			}
			select {
			case <-l.ctx.Done():
				return nil
			case e := <-s.close:
				return closed(e)
			case <-tick.C:
			}
		}
		deliveries, tag, err := s.consume(upQ, up.PrefetchCount, amqp091.Table{"x-priority": int32(-1)})
		if err != nil {
			return err
		}
		s.running(tag, "")
		if err := s.pull(deliveries, tag, upQ, demand, tick); err != nil || l.ctx.Err() != nil {
			return err
		}
	}
}

// pull forwards deliveries while the downstream queue wants them; once it has not wanted one for
// holdDemand, it gives the message back, cancels the consumer and returns.
func (s *session) pull(deliveries <-chan amqp091.Delivery, tag, upQ string, demand func() (bool, error), tick *time.Ticker) error {
	l := s.l
	for {
		var d amqp091.Delivery
		var ok bool
		select {
		case <-l.ctx.Done():
			return nil
		case e := <-s.close:
			return closed(e)
		case d, ok = <-deliveries:
			if !ok {
				return errors.New("upstream consumer cancelled")
			}
		}
		wanted, err := s.waitDemand(demand, tick)
		if err != nil || l.ctx.Err() != nil {
			return err
		}
		if wanted {
			if err := s.forward(d, upQ, l.spec.Name); err != nil {
				return err
			}
			continue
		}
		// Nobody downstream wants it: give back what the consumer holds.
		if err := s.ch.Cancel(tag, false); err != nil {
			return fmt.Errorf("cancelling the upstream consumer: %w", err)
		}
		if l.spec.Upstream.AckMode != "no-ack" {
			if err := d.Nack(false, true); err != nil {
				return fmt.Errorf("returning a message upstream: %w", err)
			}
			for { // the consumer's channel closes once what it buffered is handed over
				select {
				case <-l.ctx.Done():
					return nil
				case e := <-s.close:
					return closed(e)
				case rest, ok := <-deliveries:
					if !ok {
						return nil
					}
					if err := rest.Nack(false, true); err != nil {
						return fmt.Errorf("returning a message upstream: %w", err)
					}
				}
			}
		}
		return nil
	}
}

// waitDemand waits up to holdDemand for the downstream queue to want a message.
func (s *session) waitDemand(demand func() (bool, error), tick *time.Ticker) (bool, error) {
	deadline := time.Now().Add(holdDemand)
	for {
		ok, err := demand()
		if err != nil || ok {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-s.l.ctx.Done():
			return false, nil
		case <-tick.C:
		}
	}
}

// --- conversions between amqp091-go's types and Warren's ---

func fromDelivery(d amqp091.Delivery) amqp.Properties {
	p := amqp.Properties{
		ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, DeliveryMode: d.DeliveryMode,
		Priority: d.Priority, CorrelationID: d.CorrelationId, ReplyTo: d.ReplyTo, Expiration: d.Expiration,
		MessageID: d.MessageId, Timestamp: d.Timestamp, Type: d.Type, UserID: d.UserId, AppID: d.AppId,
	}
	if d.Headers != nil {
		p.Headers = fromClientTable(d.Headers)
	}
	return p
}

func fromClientTable(t amqp091.Table) amqp.Table {
	out := make(amqp.Table, len(t))
	for k, v := range t {
		out[k] = fromClient(v)
	}
	return out
}

func fromClient(v any) any {
	switch x := v.(type) {
	case amqp091.Table:
		return fromClientTable(x)
	case amqp091.Decimal:
		return amqp.Decimal{Scale: x.Scale, Value: x.Value}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromClient(e)
		}
		return out
	case []byte:
		return bytes.Clone(x)
	}
	return v
}

func toClient(t amqp.Table) amqp091.Table {
	if t == nil {
		return nil
	}
	out := make(amqp091.Table, len(t))
	for k, v := range t {
		out[k] = toClientValue(v)
	}
	return out
}

func toClientValue(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		return toClient(x)
	case amqp.Decimal:
		return amqp091.Decimal{Scale: x.Scale, Value: x.Value}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toClientValue(e)
		}
		return out
	}
	return v
}

// uriVhost is the vhost an upstream URI names ("/" when its path is empty).
func uriVhost(u *url.URL) string {
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		return p
	}
	return "/"
}

// DirectVhosts returns the vhosts of the URIs without a host (this broker's direct connection,
// which may reach any vhost) in a federation-upstream value's "uri" (a string or a list), so that
// the broker can refuse them to a user without access, as it refuses a shovel's.
func DirectVhosts(value any) []string {
	obj, _ := value.(map[string]any)
	var uris []string
	switch u := obj["uri"].(type) {
	case string:
		uris = []string{u}
	case []any:
		for _, x := range u {
			if s, ok := x.(string); ok {
				uris = append(uris, s)
			}
		}
	}
	var out []string
	for _, s := range uris {
		if u, err := url.Parse(s); err == nil && u.Host == "" {
			out = append(out, uriVhost(u))
		}
	}
	return out
}
