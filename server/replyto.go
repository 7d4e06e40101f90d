package server

import (
	"strings"
	"sync"

	"github.com/warrenmq/warren/amqp"
)

// Direct reply-to (amq.rabbitmq.reply-to), as RabbitMQ implements it: a channel consumes from the
// pseudo-queue with no-ack; a publish on that channel with reply_to "amq.rabbitmq.reply-to" gets a
// generated reply_to naming the channel; a publish to the default exchange with that name as routing
// key goes straight to the consumer, with no queue in between (so a reply to a consumer that is gone
// is dropped).

const (
	replyToQueue  = "amq.rabbitmq.reply-to"
	replyToPrefix = replyToQueue + "."
)

// replyConsumer is a channel's direct reply-to consumer.
type replyConsumer struct {
	tag   string
	token string // the suffix of the generated reply_to
	ch    *channel
}

// replyRegistry maps reply tokens to their consumers. mu is a leaf lock.
type replyRegistry struct {
	mu struct {
		sync.Mutex
		m map[string]*replyConsumer
	}
}

func (r *replyRegistry) add(rc *replyConsumer) {
	r.mu.Lock()
	if r.mu.m == nil {
		r.mu.m = map[string]*replyConsumer{}
	}
	r.mu.m[rc.token] = rc
	r.mu.Unlock()
}

func (r *replyRegistry) remove(rc *replyConsumer) {
	r.mu.Lock()
	if r.mu.m[rc.token] == rc {
		delete(r.mu.m, rc.token)
	}
	r.mu.Unlock()
}

func (r *replyRegistry) lookup(token string) *replyConsumer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.m[token]
}

// consumeReplyTo subscribes the channel to its direct replies.
func (ch *channel) consumeReplyTo(m *amqp.BasicConsume) error {
	tag := m.ConsumerTag
	ch.mu.Lock()
	_, dup := ch.mu.consumers[tag]
	if tag != "" && (dup || (ch.mu.reply != nil && ch.mu.reply.tag == tag)) {
		ch.mu.Unlock()
		return amqp.Errorf(amqp.NotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	has := ch.mu.reply != nil
	ch.mu.Unlock()
	if !m.NoAck {
		return amqp.Errorf(amqp.PreconditionFailed, "reply consumer cannot acknowledge")
	}
	if has {
		return amqp.Errorf(amqp.PreconditionFailed, "reply consumer already set")
	}
	if tag == "" {
		tag = "amq.ctag-" + randomName()
	}
	rc := &replyConsumer{tag: tag, token: randomName() + "." + randomName(), ch: ch}
	ch.mu.Lock()
	ch.mu.reply = rc
	ch.mu.Unlock()
	ch.conn.srv.replies.add(rc)
	return ch.replyUnless(m.NoWait, &amqp.BasicConsumeOk{ConsumerTag: tag})
}

// cancelReplyTo ends the channel's direct reply-to consumer if it is called tag (or, with all, in
// any case) and reports whether there was one.
func (ch *channel) cancelReplyTo(tag string, all bool) bool {
	ch.mu.Lock()
	rc := ch.mu.reply
	if rc == nil || (!all && rc.tag != tag) {
		ch.mu.Unlock()
		return false
	}
	ch.mu.reply = nil
	ch.mu.Unlock()
	ch.conn.srv.replies.remove(rc)
	return true
}

// setReplyTo rewrites a reply_to of "amq.rabbitmq.reply-to" to the channel's generated one; without
// a reply consumer on the channel it is RabbitMQ's 406.
func (ch *channel) setReplyTo(props []byte) ([]byte, error) {
	ch.mu.Lock()
	rc := ch.mu.reply
	ch.mu.Unlock()
	if rc == nil {
		return nil, amqp.Errorf(amqp.PreconditionFailed, "fast reply consumer does not exist")
	}
	p, err := amqp.DecodeProperties(props)
	if err != nil {
		return nil, err
	}
	p.ReplyTo = replyToPrefix + rc.token
	return p.Append(nil)
}

// deliverReply hands a message published to the default exchange with routing key
// "amq.rabbitmq.reply-to.<token>" to its consumer, and reports whether there was one.
func (s *Server) deliverReply(key string, msg *message) bool {
	token, ok := strings.CutPrefix(key, replyToPrefix)
	if !ok {
		return false
	}
	rc := s.replies.lookup(token)
	if rc == nil {
		return false
	}
	ch := rc.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.mu.closed || ch.mu.reply != rc {
		return false
	}
	ch.mu.deliveryTag++
	ch.writeContent(&amqp.BasicDeliver{
		ConsumerTag: rc.tag, DeliveryTag: ch.mu.deliveryTag, Exchange: msg.exchange, RoutingKey: msg.routingKey,
	}, msg)
	return true
}
