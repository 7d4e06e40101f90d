package management

import (
	"encoding/json"
	"testing"
)

// A stream is reported as RabbitMQ 3.10.8 reports one: type stream, this node as its member and
// online, its readers, and its messages all ready.
func TestStreamQueueReported(t *testing.T) {
	e := startEnv(t, nil)
	e.must(201, "PUT", "/api/queues/%2F/sq", map[string]any{"durable": true, "arguments": map[string]any{"x-queue-type": "stream"}})
	if r := e.do("PUT", "/api/queues/%2F/sq2", guest, map[string]any{"durable": false, "arguments": map[string]any{"x-queue-type": "stream"}}); r.status != 400 {
		t.Errorf("non-durable stream: %d %s", r.status, r.body)
	}
	for range 3 {
		if r := e.must(200, "POST", "/api/exchanges/%2F/amq.default/publish", map[string]any{
			"routing_key": "sq", "payload": "m", "payload_encoding": "string", "properties": map[string]any{}}).obj(t); r["routed"] != true {
			t.Fatalf("publish: %v", r)
		}
	}
	q := e.must(200, "GET", "/api/queues/%2F/sq", nil).obj(t)
	node := e.srv.NodeName()
	members, _ := q["members"].([]any)
	online, _ := q["online"].([]any)
	readers, _ := q["readers"].(map[string]any)
	if q["type"] != "stream" || len(members) != 1 || members[0] != node || len(online) != 1 || online[0] != node || readers[node] != json.Number("0") {
		t.Errorf("stream: type %v members %v online %v readers %v", q["type"], q["members"], q["online"], q["readers"])
	}
	if q["messages"] != json.Number("3") || q["messages_ready"] != json.Number("3") || q["messages_unacknowledged"] != json.Number("0") {
		t.Errorf("stream counts: messages %v ready %v unacked %v", q["messages"], q["messages_ready"], q["messages_unacknowledged"])
	}
	if _, ok := q["message_bytes_paged_out"]; ok {
		t.Error("a stream shows a classic queue's paging figures")
	}
}
