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
	q := &classicQueue{}
	q.limits.Store(&queueLimits{msgTTL: 500})
	if at := q.expiryOf(got); at != got.arrived+500 {
		t.Fatalf("expiry %d, want arrival+500", at)
	}
}

// RabbitMQ's is_cycle: the queue is in the history with no rejection up to its first entry.
func TestIsDeathCycle(t *testing.T) {
	d := func(q, reason string) amqp.Table { return amqp.Table{"queue": q, "reason": reason} }
	for _, c := range []struct {
		deaths []any
		queue  string
		want   bool
	}{
		{nil, "a", false},
		{[]any{d("a", "expired")}, "a", true},
		{[]any{d("b", "expired"), d("a", "expired")}, "a", true},
		{[]any{d("b", "rejected"), d("a", "expired")}, "a", false},
		{[]any{d("a", "rejected")}, "a", false},
		{[]any{d("b", "maxlen")}, "a", false},
		{[]any{d("a", "expired"), d("b", "rejected")}, "a", true},
	} {
		if got := isDeathCycle(c.queue, c.deaths); got != c.want {
			t.Errorf("%v / %s: %v, want %v", c.deaths, c.queue, got, c.want)
		}
	}
}

// Priority levels: highest first, FIFO within a level, requeue to its place, counts kept.
func TestReadyQueuePriorities(t *testing.T) {
	var r readyQueue
	r.init(3)
	e := func(seq uint64, prio uint8) *qentry {
		return &qentry{seq: seq, prio: prio, msg: &message{body: make([]byte, 1)}}
	}
	for _, x := range []*qentry{e(1, 0), e(2, 3), e(3, 1), e(4, 3), e(5, 0)} {
		r.push(x)
	}
	first := r.pop()
	r.insertSorted(first)
	var got []uint64
	for r.len() > 0 {
		got = append(got, r.pop().seq)
	}
	want := []uint64{2, 4, 3, 1, 5}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	if r.bytes != 0 || r.n != 0 {
		t.Fatalf("bytes %d n %d", r.bytes, r.n)
	}
}
