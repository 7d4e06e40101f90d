package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/streamproto"
)

// Messages over the stream protocol are AMQP 1.0 messages; a stream keeps AMQP 0-9-1 records
// (msgstore.go) whatever the protocol that published them, so the front end converts both ways,
// as RabbitMQ converts between the two (rabbit_msg_record): the header's durable and priority
// and ttl are delivery-mode, priority and expiration; the properties map to the basic
// properties of the same name (creation-time to timestamp, in seconds); application properties
// are the headers table; the body is the data sections (or an amqp-value's string or binary).
// Delivery and message annotations and the footer are not kept.

// streamMessageIn converts an AMQP 1.0 message published over the stream protocol on stream
// (filter: its x-stream-filter-value, "" for none) into a message, copying what it keeps. A
// message that does not decode as AMQP 1.0 is kept whole as the body.
func streamMessageIn(raw []byte, stream, filter string, now int64) *message {
	msg := &message{routingKey: stream, persistent: true, arrived: now}
	m, err := streamproto.DecodeMessage(raw)
	if err != nil {
		msg.body = append([]byte(nil), raw...)
		msg.props = []byte{0x10, 0} // delivery-mode only
		msg.props = append(msg.props, 2)
		if filter != "" {
			msg.headers = amqp.Table{"x-stream-filter-value": filter}
		}
		return msg
	}
	var p amqp.Properties
	p.ContentType, p.ContentEncoding = m.ContentType, m.ContentEncoding
	p.DeliveryMode = 2
	if m.HasHeader && !m.Durable {
		p.DeliveryMode = 1
	}
	if m.HasPriority {
		p.Priority = m.Priority
	}
	if m.HasTTL {
		p.Expiration = strconv.FormatUint(uint64(m.TTL), 10)
	}
	p.MessageID = idString(m.MessageID)
	p.CorrelationID = idString(m.CorrelationID)
	p.ReplyTo = m.ReplyTo
	p.UserID = string(m.UserID)
	if m.CreationTime != 0 {
		p.Timestamp = time.Unix(int64(m.CreationTime)/1000, 0)
	}
	if len(m.AppProperties) > 0 || filter != "" {
		p.Headers = make(amqp.Table, len(m.AppProperties)+1)
		for _, ap := range m.AppProperties {
			if v, ok := headerValue(ap.Value); ok {
				p.Headers[ap.Key] = v
			}
		}
		if filter != "" {
			p.Headers["x-stream-filter-value"] = filter
		}
		msg.headers = p.Headers
	}
	msg.persistent = p.DeliveryMode == 2
	props, err := p.Append(nil)
	if err != nil { // a value the table cannot encode: keep the message without its headers
		p.Headers = nil
		props, _ = p.Append(nil)
	}
	msg.props = props
	msg.body = append([]byte(nil), m.Body()...)
	return msg
}

// idString is a message-id or correlation-id as AMQP 0-9-1's shortstr.
func idString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case uint64:
		return strconv.FormatUint(x, 10)
	case streamproto.UUID:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:])
	}
	return fmt.Sprint(v)
}

// headerValue is an application property's value as a headers table value.
func headerValue(v any) (any, bool) {
	switch x := v.(type) {
	case nil, bool, int64, float64, string:
		return x, true
	case uint64:
		if x > 1<<63-1 {
			return strconv.FormatUint(x, 10), true
		}
		return int64(x), true
	case streamproto.Symbol:
		return string(x), true
	case []byte:
		return append([]byte(nil), x...), true
	case streamproto.Timestamp:
		return time.UnixMilli(int64(x)), true
	case streamproto.UUID:
		return idString(x), true
	}
	return nil, false
}

// appendStreamMessageHead appends the AMQP 1.0 sections before the body (header, properties,
// application properties) of a message with the content-header properties props (an
// x-stream-offset header is left out); the body's data section follows them
// (streamproto.AppendDataSection).
func appendStreamMessageHead(dst, props []byte) []byte {
	var m streamproto.Message
	p, err := amqp.DecodeProperties(props)
	if err == nil {
		m.HasHeader = true
		m.Durable = p.DeliveryMode == 2
		if p.Priority != 0 {
			m.Priority, m.HasPriority = p.Priority, true
		}
		if ttl, err := strconv.ParseUint(p.Expiration, 10, 32); err == nil && p.Expiration != "" {
			m.TTL, m.HasTTL = uint32(ttl), true
		}
		if p.MessageID != "" {
			m.MessageID = p.MessageID
		}
		if p.CorrelationID != "" {
			m.CorrelationID = p.CorrelationID
		}
		m.UserID = []byte(p.UserID)
		m.ReplyTo = p.ReplyTo
		m.ContentType, m.ContentEncoding = p.ContentType, p.ContentEncoding
		if !p.Timestamp.IsZero() {
			m.CreationTime = streamproto.Timestamp(p.Timestamp.Unix() * 1000)
		}
		for k, v := range p.Headers {
			if k == "x-stream-offset" {
				continue
			}
			if av, ok := appValue(v); ok {
				m.AppProperties = append(m.AppProperties, streamproto.AppProperty{Key: k, Value: av})
			}
		}
		sortAppProperties(m.AppProperties)
	}
	return streamproto.AppendMessageHead(dst, &m)
}

// appValue is a headers table value as an application property's (simple types only).
func appValue(v any) (any, bool) {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, []byte:
		return x, true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case float32:
		return float64(x), true
	case time.Time:
		return streamproto.Timestamp(x.UnixMilli()), true
	}
	return nil, false
}

func sortAppProperties(ps []streamproto.AppProperty) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Key < ps[j-1].Key; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}
