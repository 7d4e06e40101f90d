package server

import (
	"bytes"
	"fmt"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/mqtt"
)

// Administration through the management API. Declares, deletes, binds and publishes go through the
// same vhost code an AMQP client's methods use, so they are validated the same way and fail with the
// same *amqp.Error codes and texts; ErrNotFound means the vhost (or the named object, where AMQP
// would not complain) does not exist.

// shortstrMax is the longest AMQP short string: names and routing keys.
const shortstrMax = 255

func (s *Server) mustVhost(name string) (*vhost, error) {
	v := s.vhost(name)
	if v == nil {
		return nil, ErrNotFound
	}
	return v, nil
}

func checkName(what, name string) error {
	if len(name) > shortstrMax {
		return badRequest("%s name is longer than %d bytes", what, shortstrMax)
	}
	return nil
}

// QueueSpec is a queue declaration from the API.
type QueueSpec struct {
	Durable, AutoDelete bool
	Arguments           amqp.Table
}

// DeclareQueue declares a queue as queue.declare does (an existing queue must be equivalent) and
// reports whether it was created.
func (s *Server) DeclareQueue(vhost, name string, spec QueueSpec) (created bool, err error) {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return false, err
	}
	if name == "" {
		return false, badRequest("queue name must not be empty")
	}
	if err := checkName("queue", name); err != nil {
		return false, err
	}
	v.mu.RLock()
	existed := v.mu.queues[name] != nil
	v.mu.RUnlock()
	q, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: name, Durable: spec.Durable, AutoDelete: spec.AutoDelete, Arguments: spec.Arguments})
	if err == nil {
		q.declared() // arms its timers
	}
	if err != nil {
		return false, err
	}
	return !existed, nil
}

func (v *vhost) queueNamed(name string) (*queue, error) {
	v.mu.RLock()
	q := v.mu.queues[name]
	v.mu.RUnlock()
	if q == nil {
		return nil, ErrNotFound
	}
	return q, nil
}

// DeleteQueue deletes a queue (an exclusive one too: the API acts as an administrator).
func (s *Server) DeleteQueue(vhost, name string, ifUnused, ifEmpty bool) error {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return err
	}
	q, err := v.queueNamed(name)
	if err != nil {
		return err
	}
	_, err = v.deleteQueue(q, ifUnused, ifEmpty)
	return err
}

// PurgeQueue drops a queue's ready messages and returns how many.
func (s *Server) PurgeQueue(vhost, name string) (int, error) {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return 0, err
	}
	q, err := v.queueNamed(name)
	if err != nil {
		return 0, err
	}
	return int(q.purge()), nil
}

// ExchangeSpec is an exchange declaration from the API.
type ExchangeSpec struct {
	Type                          string
	Durable, AutoDelete, Internal bool
	Arguments                     amqp.Table
}

// DeclareExchange declares an exchange as exchange.declare does and reports whether it was created.
func (s *Server) DeclareExchange(vhost, name string, spec ExchangeSpec) (created bool, err error) {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return false, err
	}
	if err := checkName("exchange", name); err != nil {
		return false, err
	}
	existed := v.exchange(name) != nil
	err = v.declareExchange(&amqp.ExchangeDeclare{Exchange: name, Type: spec.Type, Durable: spec.Durable,
		AutoDelete: spec.AutoDelete, Internal: spec.Internal, Arguments: spec.Arguments})
	if err != nil {
		return false, err
	}
	return !existed, nil
}

// DeleteExchange deletes an exchange as exchange.delete does, but a missing one is ErrNotFound.
func (s *Server) DeleteExchange(vhost, name string, ifUnused bool) error {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return err
	}
	if name != "" && v.exchange(name) == nil {
		return ErrNotFound
	}
	return v.deleteExchange(name, ifUnused)
}

// destination resolves a binding's destination: destType is "queue" or "exchange".
func (v *vhost) destination(destType, name string) (destination, error) {
	switch destType {
	case "queue":
		v.mu.RLock()
		q := v.mu.queues[name]
		v.mu.RUnlock()
		if q == nil {
			return nil, v.errNoQueue(name)
		}
		return q, nil
	case "exchange":
		if name == "" {
			return nil, errDefaultExchange
		}
		x := v.exchange(name)
		if x == nil {
			return nil, v.errNoExchange(name)
		}
		return x, nil
	}
	return nil, badRequest("unknown destination type '%s'", destType)
}

// Bind binds source to a queue or exchange as queue.bind and exchange.bind do.
func (s *Server) Bind(vhost, source, destType, dest, key string, args amqp.Table) error {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return err
	}
	if err := checkName("routing key", key); err != nil {
		return err
	}
	if v.exchange(source) == nil {
		return v.errNoExchange(source)
	}
	d, err := v.destination(destType, dest)
	if err != nil {
		return err
	}
	return v.bind(source, d, key, args, nil)
}

// Unbind removes a binding as queue.unbind and exchange.unbind do.
func (s *Server) Unbind(vhost, source, destType, dest, key string, args amqp.Table) error {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return err
	}
	if v.exchange(source) == nil {
		return v.errNoExchange(source) // queue.unbind would answer unbind-ok; the API says 404
	}
	d, err := v.destination(destType, dest)
	if err != nil {
		return err
	}
	return v.unbind(source, d, key, args, nil)
}

// Publish publishes a message as basic.publish with mandatory set would, on behalf of user (the
// user-id property must name that user), and reports whether any queue received it.
func (s *Server) Publish(vhost, exchangeName, routingKey string, props amqp.Properties, body []byte, user string) (routed bool, err error) {
	routed, confirmed, err := s.publishAsync(vhost, exchangeName, routingKey, props, body, user)
	if err != nil {
		return false, err
	}
	if err := confirmed(); err != nil {
		return false, err
	}
	return routed, nil
}

// publishAsync is Publish without the wait: confirmed waits for what a confirm would (federation
// links pipeline their publishes with it).
func (s *Server) publishAsync(vhost, exchangeName, routingKey string, props amqp.Properties, body []byte, user string) (routed bool, confirmed func() error, err error) {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return false, nil, err
	}
	if err := checkName("routing key", routingKey); err != nil {
		return false, nil, err
	}
	x := v.exchange(exchangeName)
	if x == nil {
		return false, nil, v.errNoExchange(exchangeName)
	}
	if x.internal {
		return false, nil, amqp.Errorf(amqp.AccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", exchangeName, v.name)
	}
	if props.UserID != "" && props.UserID != user {
		return false, nil, amqp.Errorf(amqp.PreconditionFailed, "user_id property set to '%s' but authenticated user was '%s'", props.UserID, user)
	}
	if len(body) > s.opts.MaxMessageSize {
		return false, nil, amqp.Errorf(amqp.PreconditionFailed, "message size %d is larger than configured max size %d", len(body), s.opts.MaxMessageSize)
	}
	raw, err := props.Append(nil)
	if err != nil {
		return false, nil, badRequest("properties: %v", err)
	}
	// The message must look exactly as one received from the wire: decode what was encoded.
	decoded, err := amqp.DecodeProperties(raw)
	if err != nil {
		return false, nil, badRequest("properties: %v", err)
	}
	var ttl int64
	if decoded.Expiration != "" {
		if ttl, err = parseExpiration(decoded.Expiration); err != nil {
			return false, nil, badRequest("%s", expirationError(decoded.Expiration, err).Text)
		}
	}
	routes, err := senderRoutes(decoded.Headers)
	if err != nil {
		return false, nil, badRequest("%v", err)
	}
	if raw, decoded.Headers, err = stripBCC(raw, decoded.Headers); err != nil {
		return false, nil, badRequest("properties: %v", err)
	}
	msg := &message{exchange: exchangeName, routingKey: routingKey, props: raw, body: bytes.Clone(body),
		persistent: decoded.DeliveryMode == 2, headers: decoded.Headers, arrived: nowMillis(), ttl: ttl, hasTTL: decoded.Expiration != "",
		priority: decoded.Priority}
	var buf [8]*queue
	var gc groupCollector
	qs, _ := v.publish(&gc, x, msg, routes, nil, buf[:0]) // publish.go
	countRoute(nil, v, x, qs, sReturnUnroutable)
	// Answer as a confirm would: once a persistent message is on disk in every durable queue.
	return len(qs) > 0, func() error {
		if err := gc.wait(); err != nil {
			return amqp.Errorf(amqp.InternalError, "storage write failed: %v", err)
		}
		return nil
	}, nil
}

// AckMode is what a Get does with the messages it took.
type AckMode int

// The management API's ack modes.
const (
	AckRequeueTrue     AckMode = iota // ack_requeue_true: put them back (redelivered)
	AckRequeueFalse                   // ack_requeue_false: acknowledge them
	RejectRequeueTrue                 // reject_requeue_true: put them back (redelivered)
	RejectRequeueFalse                // reject_requeue_false: drop them
)

// GotMessage is a message taken by Get.
type GotMessage struct {
	Exchange, RoutingKey string
	Redelivered          bool
	Remaining            int // messages left in the queue after this one was taken
	Properties           amqp.Properties
	Body                 []byte
}

// Get takes up to count messages from a queue as basic.get does, then settles all of them as mode
// says (requeued messages come back in their places, marked redelivered).
func (s *Server) Get(vhost, queueName string, count int, mode AckMode) ([]GotMessage, error) {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return nil, err
	}
	q, err := v.queueNamed(queueName)
	if err != nil {
		return nil, v.errNoQueue(queueName)
	}
	if q.owner != nil {
		return nil, v.errLocked(queueName)
	}
	var taken []*qentry
	out := []GotMessage{}
	for len(taken) < count {
		e, remaining := q.get(true)
		(*channel)(nil).countGet(q, e, false)
		if e == nil {
			break
		}
		taken = append(taken, e)
		props, err := amqp.DecodeProperties(e.msg.props)
		if err != nil {
			// Every message's properties were validated when it was published.
			return nil, fmt.Errorf("decoding stored properties: %w", err)
		}
		out = append(out, GotMessage{Exchange: e.msg.exchange, RoutingKey: e.msg.routingKey, Redelivered: e.redelivered,
			Remaining: int(remaining), Properties: props, Body: e.msg.body})
	}
	switch mode {
	case AckRequeueTrue, RejectRequeueTrue:
		q.requeue(taken)
	default:
		q.settle(taken)
		if mode == AckRequeueFalse && len(taken) > 0 {
			q.stats.add(sAck, int64(len(taken)))
			v.stats.add(sAck, int64(len(taken)))
			s.adm.stats.add(sAck, int64(len(taken)))
		}
	}
	return out, nil
}

// CloseConnection closes the named connection with 320 CONNECTION_FORCED and reason.
func (s *Server) CloseConnection(name, reason string) error {
	c := s.findConn(name)
	if c == nil {
		if mc := s.findMQTTConn(name); mc != nil {
			mc.closeFromOutside(mqtt.AdministrativeAction)
			return nil
		}
		if sc := s.findSTOMPConn(name); sc != nil {
			// RabbitMQ 3.10.8 sends "AMQP channel died" with an Erlang term as the body; Warren
			// says it as it does for a deleted vhost.
			sc.closeFromOutside("connection_forced", "CONNECTION_FORCED - "+reason+"\n")
			return nil
		}
		return ErrNotFound
	}
	c.closeFromOutside(amqp.ConnectionForced, "CONNECTION_FORCED - "+reason)
	return nil
}

// AlivenessTest declares the queue "aliveness-test" in vhost, publishes a message to it through the
// default exchange and gets it back, as RabbitMQ's aliveness test does.
func (s *Server) AlivenessTest(vhost string) error {
	if _, err := s.DeclareQueue(vhost, "aliveness-test", QueueSpec{}); err != nil {
		return err
	}
	if _, err := s.Publish(vhost, "", "aliveness-test", amqp.Properties{}, []byte("test_message"), ""); err != nil {
		return err
	}
	msgs, err := s.Get(vhost, "aliveness-test", 1, AckRequeueFalse)
	if err != nil {
		return err
	}
	if len(msgs) != 1 || string(msgs[0].Body) != "test_message" {
		return fmt.Errorf("aliveness test: the test message did not come back")
	}
	return nil
}
