package storage

import (
	"encoding/binary"
	"fmt"
)

// Key spaces: one prefix byte, then length-prefixed names (so "a"+"bc" and "ab"+"c" differ and a
// vhost's keys form one range) and big-endian ids (so numeric order is byte order).
const (
	prefixExchange = 'E'
	prefixQueue    = 'Q'
	prefixBinding  = 'B'
	prefixMessage  = 'M'
	prefixState    = 'S'
)

// StateKey is the key of a broker-wide state record (such as the clean-shutdown mark).
func StateKey(name string) []byte { return append([]byte{prefixState}, name...) }

// DeliveredKey marks message seq of queue queueID as delivered before (it comes back with
// redelivered=true). It sorts right after the message's own key, inside MessageRange.
func DeliveredKey(queueID, seq uint64) []byte { return append(MessageKey(queueID, seq), 'd') }

// IsDeliveredKey reports whether a key under MessagePrefix is a DeliveredKey.
func IsDeliveredKey(key []byte) bool {
	return len(key) == 18 && key[0] == prefixMessage && key[17] == 'd'
}

// MessageKey is the key of message seq in the queue with id queueID. A queue's messages sort by
// seq, and MessageRange covers all of them.
func MessageKey(queueID, seq uint64) []byte {
	k := make([]byte, 0, 17)
	k = append(k, prefixMessage)
	k = binary.BigEndian.AppendUint64(k, queueID)
	return binary.BigEndian.AppendUint64(k, seq)
}

// MessageRange is [start, end) over every message of queue queueID.
func MessageRange(queueID uint64) (start, end []byte) {
	return MessageKey(queueID, 0), MessageKey(queueID+1, 0)
}

// MessagePrefix selects every message record of every queue.
func MessagePrefix() []byte { return []byte{prefixMessage} }

// ParseMessageKey splits a message key (or a DeliveredKey) into queue id and seq.
func ParseMessageKey(key []byte) (queueID, seq uint64, err error) {
	if (len(key) != 17 && !IsDeliveredKey(key)) || key[0] != prefixMessage {
		return 0, 0, fmt.Errorf("storage: malformed message key %x", key)
	}
	return binary.BigEndian.Uint64(key[1:9]), binary.BigEndian.Uint64(key[9:17]), nil
}

func appendName(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// ExchangeKey is the key of a durable exchange's record.
func ExchangeKey(vhost, name string) []byte {
	return appendName(appendName([]byte{prefixExchange}, vhost), name)
}

// QueueKey is the key of a durable queue's record.
func QueueKey(vhost, name string) []byte {
	return appendName(appendName([]byte{prefixQueue}, vhost), name)
}

// BindingKey is the key of a binding from exchange src to the queue or exchange dst (destKind 'q'
// or 'e'), with its routing key and canonically encoded arguments.
func BindingKey(vhost, src string, destKind byte, dst, routingKey string, args []byte) []byte {
	k := appendName(appendName([]byte{prefixBinding}, vhost), src)
	k = append(k, destKind)
	k = appendName(appendName(k, dst), routingKey)
	return append(k, args...)
}

// ExchangePrefix, QueuePrefix and BindingPrefix select every record of one kind.
func ExchangePrefix() []byte { return []byte{prefixExchange} }
func QueuePrefix() []byte    { return []byte{prefixQueue} }
func BindingPrefix() []byte  { return []byte{prefixBinding} }

// ParseName reads a length-prefixed name from b and returns it and the rest.
func ParseName(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, fmt.Errorf("storage: truncated name length")
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, fmt.Errorf("storage: name length %d exceeds key", n)
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

// ParseEntityKey splits an exchange or queue key into vhost and name.
func ParseEntityKey(key []byte) (vhost, name string, err error) {
	if len(key) < 1 {
		return "", "", fmt.Errorf("storage: empty key")
	}
	vhost, rest, err := ParseName(key[1:])
	if err != nil {
		return "", "", err
	}
	name, _, err = ParseName(rest)
	return vhost, name, err
}
