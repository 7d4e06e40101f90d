package storage

import (
	"encoding/binary"
	"fmt"
)

// Key space of the MQTT front end's QoS 2 session state: for a persistent session, the packet
// identifiers of the QoS 2 publishes received and acknowledged with PUBREC that await their PUBREL
// (MQTTQoS2In), those of the QoS 2 deliveries released with PUBREL that await their PUBCOMP
// (MQTTQoS2Out), and, while no connection holds the session, when it expires (MQTTQoS2Expiry).
const prefixMQTTQoS2 = 'I'

// The kinds of MQTT QoS 2 keys, after the vhost and the client id.
const (
	MQTTQoS2In     byte = 'i'
	MQTTQoS2Out    byte = 'o'
	MQTTQoS2Expiry byte = 'x'
)

// MQTTQoS2Key is the key of packet identifier id of kind MQTTQoS2In or MQTTQoS2Out of the session
// of clientID in vhost.
func MQTTQoS2Key(vhost, clientID string, kind byte, id uint16) []byte {
	k := append(MQTTQoS2SessionPrefix(vhost, clientID), kind)
	return binary.BigEndian.AppendUint16(k, id)
}

// MQTTQoS2ExpiryKey is the key of the session's expiry time.
func MQTTQoS2ExpiryKey(vhost, clientID string) []byte {
	return append(MQTTQoS2SessionPrefix(vhost, clientID), MQTTQoS2Expiry)
}

// MQTTQoS2SessionPrefix selects one session's keys; MQTTQoS2Prefix every session's.
func MQTTQoS2SessionPrefix(vhost, clientID string) []byte {
	return appendName(appendName([]byte{prefixMQTTQoS2}, vhost), clientID)
}

func MQTTQoS2Prefix() []byte { return []byte{prefixMQTTQoS2} }

// ParseMQTTQoS2Key splits a QoS 2 state key into vhost, client id, kind and (for MQTTQoS2In and
// MQTTQoS2Out) packet identifier.
func ParseMQTTQoS2Key(key []byte) (vhost, clientID string, kind byte, id uint16, err error) {
	if len(key) < 1 || key[0] != prefixMQTTQoS2 {
		return "", "", 0, 0, fmt.Errorf("storage: malformed MQTT QoS 2 key %q", key)
	}
	vhost, rest, err := ParseName(key[1:])
	if err == nil {
		clientID, rest, err = ParseName(rest)
	}
	if err != nil {
		return "", "", 0, 0, err
	}
	switch {
	case len(rest) == 3 && (rest[0] == MQTTQoS2In || rest[0] == MQTTQoS2Out):
		return vhost, clientID, rest[0], binary.BigEndian.Uint16(rest[1:]), nil
	case len(rest) == 1 && rest[0] == MQTTQoS2Expiry:
		return vhost, clientID, rest[0], 0, nil
	}
	return "", "", 0, 0, fmt.Errorf("storage: malformed MQTT QoS 2 key %q", key)
}
