package management

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// GET /api/queues/{vhost}/{name}/messages browses a stream from an offset or a timestamp without
// consuming anything: every message with its offset, timestamp, properties and payload.
func TestBrowseStream(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/bs", map[string]any{"durable": true, "arguments": map[string]any{"x-queue-type": "stream"}})
	e.must(201, "PUT", "/api/queues/%2F/classic", map[string]any{"durable": true})
	publish := func(payload, enc string, props map[string]any) {
		t.Helper()
		if r := e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{
			"routing_key": "bs", "payload": payload, "payload_encoding": enc, "properties": props}).obj(t); r["routed"] != true {
			t.Fatalf("publish: %v", r)
		}
	}
	before := time.Now().UnixMilli()
	for i := range 5 {
		publish(fmt.Sprintf("m%d", i), "string", map[string]any{"content_type": "text/plain", "headers": map[string]any{"n": i}})
	}
	publish("//4=", "base64", map[string]any{}) // offset 5: 0xff 0xfe, not UTF-8: shown as base64
	browse := func(query string) []any {
		t.Helper()
		return e.must(200, "GET", "/api/queues/%2F/bs/messages"+query, nil).list(t)
	}
	offsets := func(ms []any) (out []string) {
		for _, m := range ms {
			out = append(out, fmt.Sprint(m.(map[string]any)["offset"]))
		}
		return out
	}
	// Default: from first, up to 20.
	all := browse("")
	if got := strings.Join(offsets(all), ","); got != "0,1,2,3,4,5" {
		t.Fatalf("default browse offsets %s", got)
	}
	m1 := all[1].(map[string]any)
	props, _ := m1["properties"].(map[string]any)
	headers, _ := props["headers"].(map[string]any)
	ts, _ := m1["timestamp"].(json.Number).Int64()
	if m1["payload"] != "m1" || m1["payload_encoding"] != "string" || props["content_type"] != "text/plain" ||
		headers["n"] != json.Number("1") || m1["routing_key"] != "bs" || ts < before || ts > time.Now().UnixMilli() {
		t.Fatalf("message 1: %v", m1)
	}
	if m5 := all[5].(map[string]any); m5["payload_encoding"] != "base64" || m5["payload"] != "//4=" {
		t.Fatalf("binary message: %v", m5)
	}
	for q, want := range map[string]string{
		"?offset=2&count=2":     "2,3",
		"?offset=first&count=1": "0",
		"?offset=last":          "5",
		"?offset=99":            "",
		"?timestamp=" + fmt.Sprint(before) + "&count=3":                                                          "0,1,2",
		"?timestamp=" + url.QueryEscape(time.UnixMilli(time.Now().UnixMilli()+60000).UTC().Format(time.RFC3339)): "",
	} {
		if got := strings.Join(offsets(browse(q)), ","); got != want {
			t.Errorf("%s: offsets %q, want %q", q, got, want)
		}
	}
	if r := browse("?encoding=base64&count=1&truncate=1")[0].(map[string]any); r["payload"] != "bQ==" || r["payload_bytes"] != json.Number("2") {
		t.Errorf("base64, truncated: %v", r)
	}
	// Nothing was consumed: the stream still counts 6 and nothing is acked.
	if q := e.must(200, "GET", "/api/queues/%2F/bs", nil).obj(t); q["messages"] != json.Number("6") {
		t.Errorf("after browsing: %v messages", q["messages"])
	}

	for _, c := range []struct {
		path   string
		status int
		reason string
	}{
		{"/api/queues/%2F/bs/messages?offset=-1", 400, "offset must be"},
		{"/api/queues/%2F/bs/messages?offset=x", 400, "offset must be"},
		{"/api/queues/%2F/bs/messages?offset=1&timestamp=5", 400, "give offset or timestamp"},
		{"/api/queues/%2F/bs/messages?timestamp=yesterday", 400, "timestamp must be"},
		{"/api/queues/%2F/bs/messages?count=0", 400, "count must be"},
		{"/api/queues/%2F/bs/messages?count=1001", 400, "count must be"},
		{"/api/queues/%2F/bs/messages?encoding=zzz", 400, "Unsupported encoding"},
		{"/api/queues/%2F/classic/messages", 400, "stream queues only"},
		{"/api/queues/%2F/nope/messages", 404, "NOT_FOUND - no queue 'nope'"},
		{"/api/queues/nohost/bs/messages", 404, ""},
	} {
		r := e.do("GET", c.path, guest, nil)
		if r.status != c.status || !strings.Contains(string(r.body), c.reason) {
			t.Errorf("%s: %d %s, want %d %q", c.path, r.status, r.body, c.status, c.reason)
		}
	}

	// Permissions as get-messages: a management user without a permission in the vhost is refused.
	e.must(201, "PUT", "/api/users/browser", map[string]any{"password": "p", "tags": "management"})
	if r := e.do("GET", "/api/queues/%2F/bs/messages", "browser:p", nil); r.status != 401 {
		t.Errorf("without a permission in the vhost: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/queues/%2F/bs/get", "browser:p", map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}); r.status != 401 {
		t.Errorf("get-messages without a permission in the vhost: %d %s", r.status, r.body)
	}
	e.must(201, "PUT", "/api/permissions/%2F/browser", map[string]any{"configure": "", "write": "", "read": ".*"})
	if r := e.do("GET", "/api/queues/%2F/bs/messages?count=1", "browser:p", nil); r.status != 200 {
		t.Errorf("with a permission in the vhost: %d %s", r.status, r.body)
	}
}
