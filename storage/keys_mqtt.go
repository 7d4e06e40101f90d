package storage

import "fmt"

// Key space of the MQTT front end: retained messages, one per vhost and topic. The topic is at
// most 65535 bytes (MQTT's limit), so it fits a name's length prefix.
const prefixRetained = 'H'

// RetainedKey is the key of the message retained on topic in vhost. A vhost's retained messages
// form one range (RetainedPrefix).
func RetainedKey(vhost, topic string) []byte {
	return appendName(appendName([]byte{prefixRetained}, vhost), topic)
}

// RetainedPrefix selects the retained messages of vhost.
func RetainedPrefix(vhost string) []byte { return appendName([]byte{prefixRetained}, vhost) }

// ParseRetainedKey splits a retained message's key into vhost and topic.
func ParseRetainedKey(key []byte) (vhost, topic string, err error) {
	if len(key) < 1 || key[0] != prefixRetained {
		return "", "", fmt.Errorf("storage: malformed retained message key %q", key)
	}
	vhost, rest, err := ParseName(key[1:])
	if err != nil {
		return "", "", err
	}
	topic, rest, err = ParseName(rest)
	if err != nil {
		return "", "", err
	}
	if len(rest) != 0 {
		return "", "", fmt.Errorf("storage: trailing bytes in retained message key %q", key)
	}
	return vhost, topic, nil
}
