package amqp

import "encoding/binary"

// MethodDecoder decodes method frame payloads as DecodeMethod does, but without allocating for the
// methods a busy connection receives most: basic.publish and basic.ack decode into values the
// decoder owns and reuses, and a publish keeps the previous publish's exchange and routing-key
// strings when their bytes are the same. A method it returns is valid only until the next call
// to Decode; copy what must outlive it. The zero value is ready to use.
type MethodDecoder struct {
	publish BasicPublish
	ack     BasicAck
}

// Decode decodes one method frame payload; errors are DecodeMethod's.
func (d *MethodDecoder) Decode(payload []byte) (Method, error) {
	if len(payload) < 4 || binary.BigEndian.Uint16(payload) != ClassBasic {
		return DecodeMethod(payload)
	}
	args := payload[4:]
	switch methodID := binary.BigEndian.Uint16(payload[2:]); methodID {
	case MethodBasicPublish:
		m := &d.publish
		r := decoder{b: args}
		m.Ticket = r.short("ticket")
		ex := r.shortstrBytes("exchange")
		key := r.shortstrBytes("routing-key")
		bits := r.octet("mandatory")
		if !r.ok() || len(r.b) != 0 {
			return nil, methodDecodeError(args, ClassBasic, methodID)
		}
		if string(ex) != m.Exchange {
			m.Exchange = string(ex)
		}
		if string(key) != m.RoutingKey {
			m.RoutingKey = string(key)
		}
		m.Mandatory, m.Immediate = bits&(1<<0) != 0, bits&(1<<1) != 0
		return m, nil
	case MethodBasicAck:
		m := &d.ack
		r := decoder{b: args}
		m.DeliveryTag = r.longlong("delivery-tag")
		bits := r.octet("multiple")
		if !r.ok() || len(r.b) != 0 {
			return nil, methodDecodeError(args, ClassBasic, methodID)
		}
		m.Multiple = bits&(1<<0) != 0
		return m, nil
	}
	return DecodeMethod(payload)
}

// AppendDeliverFrame is AppendMethodFrame for basic.deliver, the method a broker sends most; m is
// not boxed in an interface, so it can live on the caller's stack.
func AppendDeliverFrame(dst []byte, channel uint16, m *BasicDeliver) ([]byte, error) {
	start := len(dst)
	dst = append(dst, FrameMethod, byte(channel>>8), byte(channel), 0, 0, 0, 0, 0, ClassBasic, 0, MethodBasicDeliver)
	dst, err := m.AppendArgs(dst)
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(dst[start+3:], uint32(len(dst)-start-frameHeaderSize))
	return append(dst, FrameEnd), nil
}
