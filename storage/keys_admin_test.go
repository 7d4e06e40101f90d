package storage

import (
	"bytes"
	"testing"
)

func TestAdminKeysRoundTrip(t *testing.T) {
	for _, name := range []string{"", "/", "a.b c", "ünï"} {
		if got, err := ParseVhostKey(VhostKey(name)); err != nil || got != name {
			t.Fatalf("vhost %q: %q %v", name, got, err)
		}
		if got, err := ParseUserKey(UserKey(name)); err != nil || got != name {
			t.Fatalf("user %q: %q %v", name, got, err)
		}
		v, u, err := ParsePermissionKey(PermissionKey(name, name+"x"))
		if err != nil || v != name || u != name+"x" {
			t.Fatalf("permission %q: %q %q %v", name, v, u, err)
		}
	}
	if !bytes.HasPrefix(VhostKey("a"), VhostPrefix()) || !bytes.HasPrefix(UserKey("a"), UserPrefix()) ||
		!bytes.HasPrefix(PermissionKey("a", "b"), PermissionPrefix()) {
		t.Fatal("prefixes")
	}
	// A vhost's permissions are one range, distinct from a vhost whose name extends it.
	if bytes.HasPrefix(PermissionKey("ab", "c"), PermissionKey("a", "")[:4]) {
		t.Fatal("length-prefixed names must not collide")
	}
	if _, err := ParseUserKey(VhostKey("a")); err == nil {
		t.Fatal("wrong prefix accepted")
	}
	if _, err := ParseVhostKey(append(VhostKey("a"), 'x')); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}

func TestTopicPermissionAndLimitKeysRoundTrip(t *testing.T) {
	for _, name := range []string{"", "/", "a.b c", "ünï"} {
		v, u, x, err := ParseTopicPermissionKey(TopicPermissionKey(name, name+"u", name+"x"))
		if err != nil || v != name || u != name+"u" || x != name+"x" {
			t.Fatalf("topic permission %q: %q %q %q %v", name, v, u, x, err)
		}
		if got, err := ParseVhostLimitKey(VhostLimitKey(name)); err != nil || got != name {
			t.Fatalf("vhost limit %q: %q %v", name, got, err)
		}
	}
	if !bytes.HasPrefix(TopicPermissionKey("a", "b", "c"), TopicPermissionPrefix()) || !bytes.HasPrefix(VhostLimitKey("a"), VhostLimitPrefix()) {
		t.Fatal("prefixes")
	}
	if _, _, _, err := ParseTopicPermissionKey(append(TopicPermissionKey("a", "b", "c"), 1)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	if _, _, _, err := ParseTopicPermissionKey(PermissionKey("a", "b")); err == nil {
		t.Fatal("wrong prefix accepted")
	}
}

func TestPolicyKeysRoundTrip(t *testing.T) {
	for _, name := range []string{"", "/", "a.b c", "ünï"} {
		v, n, err := ParsePolicyKey(PolicyKey(name, name+"p"))
		if err != nil || v != name || n != name+"p" {
			t.Fatalf("policy %q: %q %q %v", name, v, n, err)
		}
	}
	if !bytes.HasPrefix(PolicyKey("a", "b"), PolicyPrefix()) {
		t.Fatal("prefix")
	}
	if _, _, err := ParsePolicyKey(VhostLimitKey("a")); err == nil {
		t.Fatal("a vhost limit key parsed as a policy key")
	}
}
