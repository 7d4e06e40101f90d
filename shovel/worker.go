package shovel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// worker runs one shovel: sessions (connect both ends, move messages until something fails), with
// reconnect-delay between them.
type worker struct {
	e      *Engine
	k      key
	cfg    *config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu sync.Mutex // guards st
	st Status
}

func newWorker(e *Engine, k key, cfg *config) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{e: e, k: k, cfg: cfg, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		log: e.log.With("shovel", k.name, "vhost", k.vhost)}
	w.st = Status{Name: k.name, Vhost: k.vhost, State: StateStarting, Timestamp: time.Now()}
	return w
}

func (w *worker) status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st
}

func (w *worker) setState(state, reason string, running *Status) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := Status{Name: w.k.name, Vhost: w.k.vhost, State: state, Reason: reason, Timestamp: time.Now()}
	if running != nil {
		st = *running
		st.Name, st.Vhost, st.State, st.Timestamp, st.Runs = w.k.name, w.k.vhost, state, time.Now(), true
	}
	w.st = st
}

// errCompleted ends a shovel whose delete-after was reached.
var errCompleted = errors.New("shovel: delete-after reached")

func (w *worker) run() {
	defer close(w.done)
	for attempt := 0; ; attempt++ {
		w.setState(StateStarting, "", nil)
		err := w.session(attempt)
		switch {
		case w.ctx.Err() != nil:
			return
		case errors.Is(err, errCompleted):
			w.log.Info("shovel completed (delete-after reached); deleting it")
			w.setState(StateTerminated, "completed", nil)
			w.e.completed(w.k)
			return
		case w.cfg.reconnectDelay <= 0:
			w.log.Error("shovel failed; reconnect-delay is 0: not restarting", "err", err)
			w.setState(StateTerminated, err.Error(), nil)
			return
		}
		w.log.Warn("shovel failed; restarting after reconnect-delay", "err", err, "delay", w.cfg.reconnectDelay)
		t := time.NewTimer(w.cfg.reconnectDelay)
		select {
		case <-w.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// directAuth is the EXTERNAL login of a direct connection.
type directAuth struct{}

func (directAuth) Mechanism() string { return "EXTERNAL" }
func (directAuth) Response() string  { return "" }

// dial connects to one of eps, trying them in turn from attempt's.
func (w *worker) dial(eps []endpoint, attempt int) (*amqp.Connection, endpoint, error) {
	if len(eps) == 0 {
		return nil, endpoint{}, errors.New("no URI")
	}
	var errs []error
	for i := range eps {
		ep := eps[(attempt+i)%len(eps)]
		cfg := amqp.Config{
			Properties: amqp.Table{"connection_name": "Shovel " + w.k.name},
			Heartbeat:  10 * time.Second,
			Locale:     "en_US",
		}
		uri := ep.raw
		if ep.direct {
			cfg.Vhost, cfg.SASL = ep.vhost, []amqp.Authentication{directAuth{}}
			cfg.Dial = func(string, string) (net.Conn, error) { return w.e.b.DialDirect() }
			uri = "amqp://localhost/"
		} else if u, err := url.Parse(ep.raw); err == nil && u.Scheme == "amqps" {
			cfg.TLSClientConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		}
		c, err := amqp.DialConfig(uri, cfg)
		if err == nil {
			return c, ep, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", redact(ep.raw), err))
	}
	return nil, endpoint{}, errors.Join(errs...)
}

func closeConn(c *amqp.Connection) {
	if c != nil && !c.IsClosed() {
		c.CloseDeadline(time.Now().Add(2 * time.Second))
	}
}

// declareQueue makes sure a queue exists: a passive declare, then a durable declare (with args)
// if it is missing, on a new channel since the 404 closed the first. It returns the channel to
// use and the queue's message count.
func declareQueue(c *amqp.Connection, ch *amqp.Channel, name string, args amqp.Table, predeclared bool) (*amqp.Channel, int, error) {
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err == nil {
		return ch, q.Messages, nil
	}
	var ae *amqp.Error
	if predeclared || !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		return nil, 0, fmt.Errorf("queue %q: %w", name, err)
	}
	if ch, err = c.Channel(); err != nil {
		return nil, 0, err
	}
	if q, err = ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return nil, 0, fmt.Errorf("declaring queue %q: %w", name, err)
	}
	return ch, q.Messages, nil
}

// session connects both ends and moves messages until an error, the worker's end, or the
// delete-after limit (errCompleted).
func (w *worker) session(attempt int) error {
	cfg := w.cfg
	src, srcEP, err := w.dial(cfg.src, attempt)
	if err != nil {
		return fmt.Errorf("connecting to the source: %w", err)
	}
	defer closeConn(src)
	dst, dstEP, err := w.dial(cfg.dest, attempt)
	if err != nil {
		return fmt.Errorf("connecting to the destination: %w", err)
	}
	defer closeConn(dst)
	// Cancelling the worker closes both connections, which ends whatever call is blocked.
	stopClose := context.AfterFunc(w.ctx, func() { closeConn(src); closeConn(dst) })
	defer stopClose()

	srcCh, err := src.Channel()
	if err != nil {
		return fmt.Errorf("source channel: %w", err)
	}
	dstCh, err := dst.Channel()
	if err != nil {
		return fmt.Errorf("destination channel: %w", err)
	}
	st := Status{SrcURI: redact(srcEP.raw), DestURI: redact(dstEP.raw)}

	// The source: the queue, or a server-named exclusive queue bound to the exchange.
	queue, length := cfg.srcQueue, 0
	if queue != "" {
		if srcCh, length, err = declareQueue(src, srcCh, queue, cfg.srcQueueArgs, cfg.srcPredeclared); err != nil {
			return fmt.Errorf("source: %w", err)
		}
		st.SrcQueue = queue
	} else {
		q, err := srcCh.QueueDeclare("", false, false, true, false, nil)
		if err != nil {
			return fmt.Errorf("source: declaring the shovel's queue: %w", err)
		}
		if err := srcCh.QueueBind(q.Name, cfg.srcExchangeKey, cfg.srcExchange, false, nil); err != nil {
			return fmt.Errorf("source: binding to exchange %q: %w", cfg.srcExchange, err)
		}
		queue = q.Name
		st.SrcExchange, st.SrcExchangeKey, st.HasSrcExchangeKey = cfg.srcExchange, cfg.srcExchangeKey, true
	}
	// The destination.
	switch {
	case cfg.destQueue != "":
		if dstCh, _, err = declareQueue(dst, dstCh, cfg.destQueue, cfg.destQueueArgs, cfg.destPredeclared); err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		st.DestQueue = cfg.destQueue
	case cfg.destExchange != "":
		st.DestExchange = cfg.destExchange
		if cfg.destExchangeKey != nil {
			st.DestExchangeKey, st.HasDestExchangeKey = *cfg.destExchangeKey, true
		}
	}

	limit := cfg.deleteAfter
	if cfg.queueLength {
		limit = int64(length)
		if limit == 0 {
			return errCompleted
		}
	}
	if cfg.ackMode == "on-confirm" {
		if err := dstCh.Confirm(false); err != nil {
			return fmt.Errorf("destination: confirm.select: %w", err)
		}
	}
	if cfg.prefetch > 0 && cfg.ackMode != "no-ack" {
		if err := srcCh.Qos(cfg.prefetch, 0, false); err != nil {
			return fmt.Errorf("source: basic.qos: %w", err)
		}
	}
	srcClosed := srcCh.NotifyClose(make(chan *amqp.Error, 1))
	dstClosed := dstCh.NotifyClose(make(chan *amqp.Error, 1))
	const tag = "shovel"
	deliveries, err := srcCh.Consume(queue, tag, cfg.ackMode == "no-ack", false, false, false, cfg.consumerArgs)
	if err != nil {
		return fmt.Errorf("source: basic.consume: %w", err)
	}
	w.setState(StateRunning, "", &st)
	w.log.Info("shovel running", "src", st.SrcURI, "dest", st.DestURI)

	// On-confirm: the acker acks each message at the source once the destination confirmed it,
	// in publish order.
	type inflight struct {
		dc  *amqp.DeferredConfirmation
		tag uint64
	}
	sctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	pending := make(chan inflight, 1024)
	ackErr := make(chan error, 1)
	ackerDone := make(chan struct{})
	go func(pending <-chan inflight) {
		defer close(ackerDone)
		for p := range pending {
			select {
			case <-p.dc.Done():
			case <-sctx.Done():
				return
			}
			var err error
			switch {
			case p.dc.Acked():
				err = srcCh.Ack(p.tag, false)
			case dstCh.IsClosed():
				err = errors.New("destination channel closed with messages unconfirmed")
			default: // nacked by the destination: back to the source queue
				err = srcCh.Nack(p.tag, false, true)
			}
			if err != nil {
				ackErr <- err
				return
			}
		}
	}(pending)
	stopAcker := func() {
		if pending != nil {
			close(pending)
			pending = nil
		}
	}
	defer func() {
		stopAcker()
		cancel()
		<-ackerDone
	}()

	var moved int64
	for {
		select {
		case <-w.ctx.Done():
			return w.ctx.Err()
		case e := <-srcClosed:
			return fmt.Errorf("source channel closed: %v", e)
		case e := <-dstClosed:
			return fmt.Errorf("destination channel closed: %v", e)
		case err := <-ackErr:
			return fmt.Errorf("acknowledging at the source: %w", err)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("source consumer ended")
			}
			ex, rk := w.route(d)
			dc, err := dstCh.PublishWithDeferredConfirm(ex, rk, false, false, w.publishing(d, srcEP, dstEP))
			if err != nil {
				return fmt.Errorf("publishing to the destination: %w", err)
			}
			switch cfg.ackMode {
			case "on-confirm":
				select {
				case pending <- inflight{dc, d.DeliveryTag}:
				case err := <-ackErr:
					return fmt.Errorf("acknowledging at the source: %w", err)
				case <-w.ctx.Done():
					return w.ctx.Err()
				}
			case "on-publish":
				if err := d.Ack(false); err != nil {
					return fmt.Errorf("acknowledging at the source: %w", err)
				}
			}
			moved++
			if limit >= 0 && moved >= limit {
				return w.finish(srcCh, tag, stopAcker, ackerDone, ackErr)
			}
		}
	}
}

// finish ends a shovel at its delete-after limit: no more deliveries, and every moved message
// acked at the source before the shovel is deleted (those delivered past the limit go back to
// the queue when the channel closes).
func (w *worker) finish(srcCh *amqp.Channel, tag string, stopAcker func(), ackerDone <-chan struct{}, ackErr <-chan error) error {
	if err := srcCh.Cancel(tag, false); err != nil {
		return fmt.Errorf("source: basic.cancel: %w", err)
	}
	stopAcker()
	select {
	case <-ackerDone:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	select {
	case err := <-ackErr:
		return fmt.Errorf("acknowledging at the source: %w", err)
	default:
	}
	return errCompleted
}

// route is where a message goes at the destination.
func (w *worker) route(d amqp.Delivery) (exchange, key string) {
	switch {
	case w.cfg.destQueue != "":
		return "", w.cfg.destQueue
	case w.cfg.destExchange != "":
		if w.cfg.destExchangeKey != nil {
			return w.cfg.destExchange, *w.cfg.destExchangeKey
		}
		return w.cfg.destExchange, d.RoutingKey
	}
	return d.Exchange, d.RoutingKey
}

// publishing is the message republished: its properties, the forward and timestamp headers if
// asked, and dest-publish-properties over them.
func (w *worker) publishing(d amqp.Delivery, src, dst endpoint) amqp.Publishing {
	p := amqp.Publishing{
		Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId,
		ReplyTo: d.ReplyTo, Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp,
		Type: d.Type, UserId: d.UserId, AppId: d.AppId, Body: d.Body,
	}
	if w.cfg.forwardHeaders || w.cfg.timestamp {
		h := make(amqp.Table, len(d.Headers)+2)
		for k, v := range d.Headers {
			h[k] = v
		}
		if w.cfg.forwardHeaders {
			info := amqp.Table{"shovelled-by": w.e.b.NodeName(), "shovel-type": "dynamic", "shovel-name": w.k.name,
				"shovel-vhost": w.k.vhost, "src-uri": redact(src.raw), "dest-uri": redact(dst.raw)}
			if w.cfg.srcQueue != "" {
				info["src-queue"] = w.cfg.srcQueue
			} else {
				info["src-exchange"], info["src-exchange-key"] = w.cfg.srcExchange, w.cfg.srcExchangeKey
			}
			if w.cfg.destQueue != "" {
				info["dest-queue"] = w.cfg.destQueue
			} else if w.cfg.destExchange != "" {
				info["dest-exchange"] = w.cfg.destExchange
			}
			prev, _ := h["x-shovelled"].([]any)
			h["x-shovelled"] = append(append([]any{}, prev...), info)
		}
		if w.cfg.timestamp {
			h["x-shovelled-timestamp"] = time.Now().Unix()
		}
		p.Headers = h
	}
	for k, v := range w.cfg.publishProps {
		setProperty(&p, k, field(v))
	}
	return p
}

func setProperty(p *amqp.Publishing, k string, v any) {
	s, _ := v.(string)
	n, _ := v.(int64)
	if f, ok := v.(float64); ok {
		n = int64(f)
	}
	switch k {
	case "content_type":
		p.ContentType = s
	case "content_encoding":
		p.ContentEncoding = s
	case "headers":
		if t, ok := v.(amqp.Table); ok {
			p.Headers = t
		}
	case "delivery_mode":
		p.DeliveryMode = uint8(n)
	case "priority":
		p.Priority = uint8(n)
	case "correlation_id":
		p.CorrelationId = s
	case "reply_to":
		p.ReplyTo = s
	case "expiration":
		p.Expiration = s
	case "message_id":
		p.MessageId = s
	case "timestamp":
		p.Timestamp = time.Unix(n, 0)
	case "type":
		p.Type = s
	case "user_id":
		p.UserId = s
	case "app_id":
		p.AppId = s
	}
}
