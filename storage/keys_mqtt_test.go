package storage

import (
	"bytes"
	"testing"
)

func TestRetainedKey(t *testing.T) {
	k := RetainedKey("/", "a/b/c")
	if !bytes.HasPrefix(k, RetainedPrefix("/")) {
		t.Fatalf("key %q lacks its vhost's prefix", k)
	}
	if bytes.HasPrefix(RetainedKey("/x", "a"), RetainedPrefix("/")) {
		t.Fatal("vhost /x's key falls in vhost /'s range")
	}
	v, topic, err := ParseRetainedKey(k)
	if err != nil || v != "/" || topic != "a/b/c" {
		t.Fatalf("ParseRetainedKey = %q, %q, %v", v, topic, err)
	}
	if _, _, err := ParseRetainedKey(append(k, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, _, err := ParseRetainedKey(QueueKey("/", "q")); err == nil {
		t.Fatal("queue key accepted")
	}
}

func TestMQTTQoS2Key(t *testing.T) {
	for _, c := range []struct {
		key  []byte
		kind byte
		id   uint16
	}{
		{MQTTQoS2Key("/", "client", MQTTQoS2In, 7), MQTTQoS2In, 7},
		{MQTTQoS2Key("/", "client", MQTTQoS2Out, 65535), MQTTQoS2Out, 65535},
		{MQTTQoS2ExpiryKey("/", "client"), MQTTQoS2Expiry, 0},
	} {
		if !bytes.HasPrefix(c.key, MQTTQoS2SessionPrefix("/", "client")) || !bytes.HasPrefix(c.key, MQTTQoS2Prefix()) {
			t.Fatalf("key %q lacks its session's prefix", c.key)
		}
		v, id, kind, n, err := ParseMQTTQoS2Key(c.key)
		if err != nil || v != "/" || id != "client" || kind != c.kind || n != c.id {
			t.Fatalf("ParseMQTTQoS2Key(%q) = %q, %q, %c, %d, %v", c.key, v, id, kind, n, err)
		}
		if _, _, _, _, err := ParseMQTTQoS2Key(append(c.key, 0)); err == nil {
			t.Fatalf("trailing byte accepted after %q", c.key)
		}
	}
	if bytes.HasPrefix(MQTTQoS2Key("/", "client2", MQTTQoS2In, 1), MQTTQoS2SessionPrefix("/", "client")) {
		t.Fatal("client2's key falls in client's range")
	}
	if _, _, _, _, err := ParseMQTTQoS2Key(RetainedKey("/", "t")); err == nil {
		t.Fatal("retained message key accepted")
	}
}
