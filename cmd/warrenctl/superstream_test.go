package main

import "testing"

func TestSuperStream(t *testing.T) {
	if external() {
		t.Skip("RabbitMQ 3.10.8 has no super stream endpoint")
	}
	tg := startTarget(t)
	tg.must(t, 0, "declare", "super-stream", "ctl.orders", "--partitions", "2", "--arguments", `{"max-age": "1h"}`)
	tg.must(t, 0, "declare", "super-stream", "ctl.regions", "--binding-keys", "eu,us")
	r := tg.must(t, 0, "list", "bindings")
	for _, row := range [][]string{
		{"/", "ctl.orders", "ctl.orders-0", "queue", "0"}, {"/", "ctl.orders", "ctl.orders-1", "queue", "1"},
		{"/", "ctl.regions", "ctl.regions-eu", "queue", "eu"}, {"/", "ctl.regions", "ctl.regions-us", "queue", "us"},
	} {
		if tableRow(r.stdout, row...) == nil {
			t.Fatalf("list bindings: no %v in\n%s", row, r.stdout)
		}
	}
	r = tg.must(t, 0, "list", "queues")
	if tableRow(r.stdout, "/", "ctl.orders-1", "stream") == nil {
		t.Fatalf("list queues: %s", r.stdout)
	}
	tg.must(t, exitError, "declare", "super-stream", "ctl.orders", "--partitions", "2")
	tg.must(t, exitError, "declare", "super-stream", "ctl.none")
	tg.must(t, exitNotFound, "--vhost", "no such vhost", "declare", "super-stream", "x", "--partitions", "1")
	tg.must(t, exitUsage, "declare", "super-stream")
}
