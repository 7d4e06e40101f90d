package server

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

// Message records. A message routed to a queue is stored under storage.MessageKey(queue id, seq)
// when it is persistent and the queue durable (synced before the publish is confirmed), or when
// the queue pages it out because its in-memory window is full (then unsynced, and for a transient
// message dropped at the next start, as RabbitMQ drops transient messages on restart).
//
// Record: a version byte, flags (bit 0: persistent), in version 2 the time the message arrived
// (int64 Unix milliseconds, from which a queue derives its expiry), exchange and routing key
// (shortstr), the raw content-header properties (uint32 length + bytes, exactly as received) and
// the body as received. Version 1 (storage.RecordVersion, no arrival time) is still read: its
// messages count as arrived when they are read, so a TTL runs from then.

const (
	recPersistent = 1
	msgRecordV2   = 2 // version 1 plus the arrival time
)

// encodeMessage builds m's record.
func encodeMessage(m *message) []byte {
	return appendMessage(make([]byte, 0, messageRecordSize(m)), m)
}

// messageRecordSize is the length of m's record.
func messageRecordSize(m *message) int {
	return 1 + 1 + 8 + 1 + len(m.exchange) + 1 + len(m.routingKey) + 4 + len(m.props) + len(m.body)
}

// appendMessage appends m's record to b.
func appendMessage(b []byte, m *message) []byte {
	var flags byte
	if m.persistent {
		flags |= recPersistent
	}
	b = append(b, msgRecordV2, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.arrived))
	b = append(b, byte(len(m.exchange)))
	b = append(b, m.exchange...)
	b = append(b, byte(len(m.routingKey)))
	b = append(b, m.routingKey...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.props)))
	b = append(b, m.props...)
	return append(b, m.body...)
}

var errBadRecord = errors.New("malformed message record")

// decodeMessage parses a record. The message keeps its own copies (rec may be reused).
func decodeMessage(rec []byte) (*message, error) {
	hdr, propsLen, err := messageHeader(rec)
	if err != nil {
		return nil, err
	}
	m := &message{persistent: rec[1]&recPersistent != 0}
	p := 2
	if rec[0] == msgRecordV2 {
		m.arrived = int64(binary.BigEndian.Uint64(rec[2:]))
		p += 8
	} else {
		m.arrived = nowMillis()
	}
	m.exchange = string(rec[p+1 : p+1+int(rec[p])])
	p += 1 + int(rec[p])
	m.routingKey = string(rec[p+1 : p+1+int(rec[p])])
	// One allocation for properties and body.
	data := append([]byte(nil), rec[hdr:]...)
	m.props, m.body = data[:propsLen:propsLen], data[propsLen:]
	if len(m.props) > 2 {
		props, err := amqp.DecodeProperties(m.props)
		if err != nil {
			return nil, fmt.Errorf("%w: properties: %v", errBadRecord, err)
		}
		m.headers, m.priority = props.Headers, props.Priority
		if props.Expiration != "" {
			if ttl, err := parseExpiration(props.Expiration); err == nil {
				m.ttl, m.hasTTL = ttl, true
			}
		}
	}
	return m, nil
}

// messageHeader validates rec's layout and returns the offset of the properties and their length.
func messageHeader(rec []byte) (hdr, propsLen int, err error) {
	if len(rec) < 2 || rec[0] != storage.RecordVersion && rec[0] != msgRecordV2 {
		return 0, 0, fmt.Errorf("%w: unknown version", errBadRecord)
	}
	p := 2
	if rec[0] == msgRecordV2 {
		if len(rec) < p+8 {
			return 0, 0, fmt.Errorf("%w: truncated", errBadRecord)
		}
		p += 8
	}
	for range 2 { // exchange, routing key
		if p >= len(rec) || p+1+int(rec[p]) > len(rec) {
			return 0, 0, fmt.Errorf("%w: truncated", errBadRecord)
		}
		p += 1 + int(rec[p])
	}
	if p+4 > len(rec) {
		return 0, 0, fmt.Errorf("%w: truncated", errBadRecord)
	}
	n := binary.BigEndian.Uint32(rec[p:])
	p += 4
	if uint64(p)+uint64(n) > uint64(len(rec)) {
		return 0, 0, fmt.Errorf("%w: truncated properties", errBadRecord)
	}
	return p, int(n), nil
}

// recordBodySize is the body size of a record, without decoding it.
func recordBodySize(rec []byte) (int64, bool, error) {
	hdr, propsLen, err := messageHeader(rec)
	if err != nil {
		return 0, false, err
	}
	return int64(len(rec) - hdr - propsLen), rec[1]&recPersistent != 0, nil
}
