package storage

import (
	"bytes"
	"testing"
)

// FuzzParseKeys: every key parser takes any bytes without panicking, and whatever it accepts
// encodes back to the same key (so recovery never reads one record under two names). The
// two-name parsers (ParseEntityKey and those built on it) ignore trailing bytes, so for them the
// re-encoded key need only be a prefix.
func FuzzParseKeys(f *testing.F) {
	for _, k := range [][]byte{
		MessageKey(1, 2), DeliveredKey(3, 4), ExchangeKey("/", "amq.direct"), QueueKey("vh", "q"),
		BindingKey("/", "src", 'q', "dst", "a.b", []byte{0, 0, 0, 0}), VhostKey("/"), UserKey("guest"),
		PermissionKey("/", "guest"), TopicPermissionKey("/", "u", "x"), VhostLimitKey("v"), PolicyKey("/", "p"),
		MQTTQoS2Key("/", "c", MQTTQoS2In, 1), MQTTQoS2ExpiryKey("/", "c"),
		{}, {'E', 0xff, 0xff},
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		if v, c, kind, id, err := ParseMQTTQoS2Key(key); err == nil {
			want := MQTTQoS2ExpiryKey(v, c)
			if kind != MQTTQoS2Expiry {
				want = MQTTQoS2Key(v, c, kind, id)
			}
			if !bytes.Equal(want, key) {
				t.Fatalf("MQTT QoS 2 key %x parsed as (%q, %q, %c, %d)", key, v, c, kind, id)
			}
		}
		if q, s, err := ParseMessageKey(key); err == nil {
			want := MessageKey(q, s)
			if IsDeliveredKey(key) {
				want = DeliveredKey(q, s)
			}
			if !bytes.Equal(want, key) {
				t.Fatalf("message key %x parsed as (%d, %d)", key, q, s)
			}
		}
		if v, n, err := ParseEntityKey(key); err == nil && len(key) > 0 {
			switch key[0] {
			case prefixExchange:
				if !bytes.HasPrefix(key, ExchangeKey(v, n)) {
					t.Fatalf("exchange key %x parsed as (%q, %q)", key, v, n)
				}
			case prefixQueue:
				if !bytes.HasPrefix(key, QueueKey(v, n)) {
					t.Fatalf("queue key %x parsed as (%q, %q)", key, v, n)
				}
			}
		}
		if v, err := ParseVhostKey(key); err == nil && !bytes.Equal(VhostKey(v), key) {
			t.Fatalf("vhost key %x parsed as %q", key, v)
		}
		if u, err := ParseUserKey(key); err == nil && !bytes.Equal(UserKey(u), key) {
			t.Fatalf("user key %x parsed as %q", key, u)
		}
		if v, u, err := ParsePermissionKey(key); err == nil && !bytes.HasPrefix(key, PermissionKey(v, u)) {
			t.Fatalf("permission key %x parsed as (%q, %q)", key, v, u)
		}
		if v, u, x, err := ParseTopicPermissionKey(key); err == nil && !bytes.Equal(TopicPermissionKey(v, u, x), key) {
			t.Fatalf("topic permission key %x parsed as (%q, %q, %q)", key, v, u, x)
		}
		if v, err := ParseVhostLimitKey(key); err == nil && !bytes.Equal(VhostLimitKey(v), key) {
			t.Fatalf("vhost limit key %x parsed as %q", key, v)
		}
		if v, n, err := ParsePolicyKey(key); err == nil && !bytes.HasPrefix(key, PolicyKey(v, n)) {
			t.Fatalf("policy key %x parsed as (%q, %q)", key, v, n)
		}
		_, _, _ = ParseName(key)
	})
}
