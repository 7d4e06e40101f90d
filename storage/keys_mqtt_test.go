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
