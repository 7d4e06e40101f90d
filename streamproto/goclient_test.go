package streamproto

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestGoClientCapture decodes every frame the real Go stream client
// (github.com/rabbitmq/rabbitmq-stream-go-client v1.8.3) sent in a session
// recorded by testdata/goclient-capture, and checks that Append re-encodes
// each byte for byte.
func TestGoClientCapture(t *testing.T) {
	data, err := os.ReadFile("testdata/goclient-1.8.3.bin")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var publish *Publish
	var subscribe *Subscribe
	var store *StoreOffset
	var create *Create
	for len(data) > 0 {
		f, n, err := ReadFrame(data, 0)
		if err != nil {
			t.Fatalf("ReadFrame: %v at %x", err, data[:min(len(data), 16)])
		}
		c, err := Decode(f)
		if err != nil {
			t.Fatalf("Decode %#x: %v", f.Key, err)
		}
		b, err := Append(nil, c)
		if err != nil || !bytes.Equal(b, data[:n]) {
			t.Fatalf("%T re-encodes as %x, the client sent %x (%v)", c, b, data[:n], err)
		}
		data = data[n:]
		name := strings.TrimPrefix(fmt.Sprintf("%T", c), "*streamproto.")
		seen[name]++
		switch m := c.(type) {
		case *Publish:
			publish = m
		case *Subscribe:
			subscribe = m
		case *StoreOffset:
			store = m
		case *Create:
			create = m
		case *SaslAuthenticate:
			if m.Mechanism != "PLAIN" || string(m.Data) != "\x00guest\x00guest" {
				t.Errorf("sasl %q %q", m.Mechanism, m.Data)
			}
		}
	}
	for _, want := range []string{"PeerProperties", "SaslHandshake", "SaslAuthenticate", "Tune", "Open", "Create", "MetadataQuery",
		"QueryPublisherSequence", "DeclarePublisher", "Publish", "DeletePublisher", "Subscribe", "StoreOffset", "QueryOffset",
		"Unsubscribe", "Delete", "Close"} {
		if seen[want] == 0 {
			t.Errorf("no %s in the capture (saw %v)", want, seen)
		}
	}
	if publish == nil || len(publish.Messages) != 3 || publish.Messages[2].PublishingID != 3 ||
		!bytes.HasSuffix(publish.Messages[2].Message, []byte("hello 2")) {
		t.Errorf("publish %+v", publish)
	}
	if subscribe == nil || subscribe.Offset != (OffsetSpec{Type: OffsetOffset, Value: 7}) || subscribe.Credit != 10 ||
		len(subscribe.Properties) != 1 || subscribe.Properties[0] != (KV{"name", "c1"}) {
		t.Errorf("subscribe %+v", subscribe)
	}
	if store == nil || *store != (StoreOffset{Reference: "c1", Stream: "s", Offset: 42}) {
		t.Errorf("store offset %+v", store)
	}
	if create == nil || create.Stream != "s" || len(create.Arguments) != 2 {
		t.Errorf("create %+v", create)
	}
}
