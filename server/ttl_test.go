package server

import (
	"encoding/binary"
	"testing"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/storage"
)

func TestParseExpiration(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int64
		fail string
	}{
		{"0", 0, ""}, {"+5", 5, ""}, {"60000", 60000, ""}, {"-0", 0, ""},
		{"abc", 0, "no_integer"}, {"", 0, "no_integer"}, {"-", 0, "no_integer"}, {" 5", 0, "no_integer"},
		{"-1", 0, "{value_negative,-1}"}, {"12abc", 0, `{leftover_string,"abc"}`},
		{"99999999999999999999999", 1<<62 - 1, ""},
	} {
		n, err := parseExpiration(c.in)
		if c.fail != "" {
			if err == nil || err.Error() != c.fail {
				t.Errorf("%q: %v, want %s", c.in, err, c.fail)
			}
			continue
		}
		if err != nil || n != c.n {
			t.Errorf("%q: %d %v, want %d", c.in, n, err, c.n)
		}
	}
}

// Records keep the arrival time (version 2); version 1 records still decode.
func TestMessageRecordVersions(t *testing.T) {
	props, err := (&amqp.Properties{Expiration: "1000"}).Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &message{exchange: "x", routingKey: "k", props: props, body: []byte("body"), persistent: true, arrived: 1234567}
	rec := encodeMessage(m)
	got, err := decodeMessage(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.arrived != 1234567 || !got.hasTTL || got.ttl != 1000 || string(got.body) != "body" || got.routingKey != "k" || !got.persistent {
		t.Fatalf("decoded %+v", got)
	}
	if n, p, err := recordBodySize(rec); err != nil || n != 4 || !p {
		t.Fatalf("recordBodySize: %d %v %v", n, p, err)
	}
	// Version 1: no arrival time.
	v1 := []byte{storage.RecordVersion, recPersistent, 1, 'x', 1, 'k'}
	v1 = binary.BigEndian.AppendUint32(v1, uint32(len(props)))
	v1 = append(append(v1, props...), "body"...)
	before := nowMillis()
	got, err = decodeMessage(v1)
	if err != nil {
		t.Fatal(err)
	}
	if got.arrived < before || string(got.body) != "body" || got.ttl != 1000 {
		t.Fatalf("decoded v1 %+v", got)
	}
	q := &queue{limits: queueLimits{msgTTL: 500}}
	if at := q.expiryOf(got); at != got.arrived+500 {
		t.Fatalf("expiry %d, want arrival+500", at)
	}
}
