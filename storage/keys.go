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
)

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
