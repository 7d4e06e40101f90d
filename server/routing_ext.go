package server

import (
	"github.com/warrenmq/warren/amqp"
)

// RabbitMQ's routing extensions: sender-selected distribution (CC and BCC headers) and alternate
// exchanges (vhost.route follows them).

// senderRoutes returns the routing keys a message's CC and BCC headers add (arrays of strings; other
// elements are ignored, as RabbitMQ ignores them). A CC or BCC of another type is RabbitMQ's 406.
func senderRoutes(headers amqp.Table) ([]string, error) {
	var keys []string
	for _, h := range [...]string{"CC", "BCC"} {
		v, ok := headers[h]
		if !ok {
			continue
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, amqp.Errorf(amqp.PreconditionFailed, "invalid message: {unacceptable_type_in_header,\"%s\",%s}", h, amqp.FieldTypeName(v))
		}
		for _, x := range arr {
			if s, ok := x.(string); ok {
				keys = append(keys, s)
			}
		}
	}
	return keys, nil
}

// stripBCC returns props and headers without the BCC header (RabbitMQ removes it before the message
// is stored or delivered), re-encoding the properties; unchanged if there is no BCC.
func stripBCC(props []byte, headers amqp.Table) ([]byte, amqp.Table, error) {
	if _, ok := headers["BCC"]; !ok {
		return props, headers, nil
	}
	p, err := amqp.DecodeProperties(props)
	if err != nil {
		return nil, nil, err
	}
	h := make(amqp.Table, len(headers))
	for k, v := range headers {
		if k != "BCC" {
			h[k] = v
		}
	}
	p.Headers = h
	out, err := p.Append(nil)
	if err != nil {
		return nil, nil, err
	}
	return out, h, nil
}

// alternateLocked returns e's alternate exchange, or nil (none, or it does not exist): its
// alternate-exchange argument, else its policy's (policy.go). Called with v.mu held.
func (v *vhost) alternateLocked(e *exchangeEntity) *exchangeEntity {
	name, ok := e.alternateExchange()
	if !ok {
		return nil
	}
	return v.mu.exchanges[name]
}
