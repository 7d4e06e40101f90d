package management

import (
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/shovel"
	"github.com/warrenmq/warren/storage"
)

// startShovelEnv is startEnv with the shovel engine and /api/shovels.
func startShovelEnv(t *testing.T) (*env, *shovel.Engine) {
	t.Helper()
	store := storage.NewMemStore()
	log := testLog(t)
	b := testbroker.Start(t, func(o *server.Options) { o.Logger, o.Store = log, store })
	eng := shovel.New(b.Srv, shovel.Options{Logger: log})
	t.Cleanup(eng.Close) // before the broker stops
	hs := httptest.NewServer(NewHandler(b.Srv, log, WithShovels(eng)))
	t.Cleanup(hs.Close)
	return &env{t: t, b: b, srv: b.Srv, store: store, api: hs.URL, addr: b.Addr, amqpURL: b.URL}, eng
}

// /api/shovels in RabbitMQ 3.10.8's shapes (captured from it with rabbitmq_shovel_management):
// the status fields of a running shovel, its URIs without credentials or query, one shovel's GET
// listing its vhost, restart and delete, monitoring needed, 404 on what does not exist.
func TestShovelEndpoints(t *testing.T) {
	e, _ := startShovelEnv(t)
	e.must(200, "GET", "/api/shovels", nil)
	e.must(404, "GET", "/api/shovels/nov", nil)
	e.must(404, "GET", "/api/shovels/vhost/%2F/nope", nil)
	e.must(404, "DELETE", "/api/shovels/vhost/%2F/nope/restart", nil)
	e.must(404, "DELETE", "/api/shovels/vhost/nov/nope/restart", nil)
	e.must(404, "DELETE", "/api/shovels/vhost/%2F/nope", nil)

	// Validation goes through the parameter: RabbitMQ's text.
	r := e.do("PUT", "/api/parameters/shovel/%2F/s1", guest, `{"value":{"max-queues":3}}`)
	if m := r.obj(t); r.status != 400 || m["reason"] != "Validation failed\n\nMust specify 'src-exchange' or 'src-queue'\nUnrecognised terms [{&lt;&lt;\"max-queues\"&gt;&gt;,3}] in s1\nKey \"dest-uri\" not found in s1\nKey \"src-uri\" not found in s1\n" {
		t.Errorf("validation: %d %s", r.status, r.body)
	}
	// A direct URI's vhost must be open to the user setting the shovel (RabbitMQ's text, captured
	// with "dest-uri":"amqp://u@/nov" and "src-uri":"amqp://h:notaport").
	r = e.do("PUT", "/api/parameters/shovel/%2F/s1", guest, `{"value":{"src-uri":"amqp://h:1","dest-uri":"amqp://u@/nov","src-queue":"a"}}`)
	if m := r.obj(t); r.status != 400 || m["reason"] != "Validation failed\n\nuser \"guest\" may not connect to vhost \"nov\"\n" {
		t.Errorf("direct URI to a missing vhost: %d %s", r.status, r.body)
	}
	e.must(201, "PUT", "/api/vhosts/other", nil)
	e.must(204, "DELETE", "/api/permissions/other/guest", nil)
	r = e.do("PUT", "/api/parameters/shovel/%2F/s1", guest, `{"value":{"src-uri":["amqp://","amqp:///other"],"dest-uri":"amqp://","src-queue":"a"}}`)
	if m := r.obj(t); r.status != 400 || m["reason"] != "Validation failed\n\nuser \"guest\" may not connect to vhost \"other\"\n" {
		t.Errorf("direct URI to a vhost without permission: %d %s", r.status, r.body)
	}
	src := "amqp://guest:guest@" + e.addr + "/%2F?heartbeat=5"
	e.must(201, "PUT", "/api/parameters/shovel/%2F/s1", map[string]any{"value": map[string]any{
		"src-uri": src, "src-queue": "sa", "dest-uri": []string{"amqp://"}, "dest-queue": "sb"}})
	e.must(201, "PUT", "/api/parameters/shovel/%2F/s3", map[string]any{"value": map[string]any{
		"src-uri": "amqp://", "src-exchange": "amq.fanout", "src-exchange-key": "k", "dest-uri": "amqp://", "dest-exchange": "amq.topic", "dest-exchange-key": "kk"}})
	var list []any
	wait.For(t, 10*time.Second, "both shovels running", func() bool {
		list = e.must(200, "GET", "/api/shovels", nil).list(t)
		return len(list) == 2 && list[0].(map[string]any)["state"] == "running" && list[1].(map[string]any)["state"] == "running"
	})
	s1 := list[0].(map[string]any)
	ts, _ := s1["timestamp"].(string)
	if _, err := time.ParseInLocation(time.DateTime, ts, time.Local); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
	delete(s1, "timestamp")
	want := `{"dest_protocol":"amqp091","dest_queue":"sb","dest_uri":"amqp://","name":"s1","node":"` + e.srv.NodeName() +
		`","src_protocol":"amqp091","src_queue":"sa","src_uri":"amqp://` + e.addr + `/%2F","state":"running","type":"dynamic","vhost":"/"}`
	if got := compactJSON(t, mustJSON(t, s1)); got != want {
		t.Errorf("running shovel:\n got  %s\n want %s", got, want)
	}
	s3 := list[1].(map[string]any)
	delete(s3, "timestamp")
	want3 := `{"dest_exchange":"amq.topic","dest_exchange_key":"kk","dest_protocol":"amqp091","dest_uri":"amqp://","name":"s3","node":"` + e.srv.NodeName() +
		`","src_exchange":"amq.fanout","src_exchange_key":"k","src_protocol":"amqp091","src_uri":"amqp://","state":"running","type":"dynamic","vhost":"/"}`
	if got := compactJSON(t, mustJSON(t, s3)); got != want3 {
		t.Errorf("exchange shovel:\n got  %s\n want %s", got, want3)
	}
	// One shovel's GET lists its vhost, as RabbitMQ 3.10 does.
	if l := e.must(200, "GET", "/api/shovels/vhost/%2F/s1", nil).list(t); len(l) != 2 {
		t.Errorf("GET one shovel: %v", l)
	}
	if l := e.must(200, "GET", "/api/shovels/%2F", nil).list(t); len(l) != 2 {
		t.Errorf("GET vhost shovels: %v", l)
	}
	e.must(405, "POST", "/api/shovels/vhost/%2F/s1/restart", nil)
	e.must(204, "DELETE", "/api/shovels/vhost/%2F/s1/restart", nil)
	wait.For(t, 10*time.Second, "s1 running after its restart", func() bool {
		l := e.must(200, "GET", "/api/shovels/vhost/%2F/s1", nil).list(t)
		return l[0].(map[string]any)["state"] == "running"
	})

	// Monitoring is needed, for listing too.
	e.must(201, "PUT", "/api/users/mg", map[string]any{"password": "mg", "tags": "management"})
	e.must(201, "PUT", "/api/permissions/%2F/mg", map[string]any{"configure": ".*", "write": ".*", "read": ".*"})
	for _, m := range [][2]string{{"GET", "/api/shovels"}, {"GET", "/api/shovels/%2F"}, {"DELETE", "/api/shovels/vhost/%2F/s1/restart"}, {"DELETE", "/api/shovels/vhost/%2F/s1"}} {
		if r := e.do(m[0], m[1], "mg:mg", nil); r.status != 401 || r.obj(t)["reason"] != "Not monitor user" {
			t.Errorf("management user %v: %d %s", m, r.status, r.body)
		}
	}

	// DELETE on the shovel deletes its parameter.
	e.must(204, "DELETE", "/api/shovels/vhost/%2F/s1", nil)
	e.must(404, "GET", "/api/parameters/shovel/%2F/s1", nil)
	if l := e.must(200, "GET", "/api/shovels", nil).list(t); len(l) != 1 {
		t.Errorf("after delete: %v", l)
	}
}

// rabbit-hole's own shovel and runtime parameter calls against Warren.
func TestRabbitHoleShovelsAndParameters(t *testing.T) {
	e, _ := startShovelEnv(t)
	rmq, err := rabbithole.NewClient(e.api, "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	must := func(what string, status int, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if status/100 != 2 {
			t.Fatalf("%s: status %d", what, status)
		}
	}
	def := rabbithole.ShovelDefinition{
		SourceURI: rabbithole.URISet{"amqp://"}, SourceQueue: "rh.src", DestinationURI: rabbithole.URISet{"amqp://guest:guest@" + e.addr + "/"},
		DestinationQueue: "rh.dst", AckMode: "on-confirm", SourcePrefetchCount: 10, ReconnectDelay: 1,
		DestinationAddForwardHeaders: true, SourceDeleteAfter: "never",
	}
	res, err := rmq.DeclareShovel("/", "rh-shovel", def)
	must("DeclareShovel", code(res), err)
	shovels, err := rmq.ListShovels()
	if err != nil || len(shovels) != 1 || shovels[0].Name != "rh-shovel" || shovels[0].Component != "shovel" ||
		shovels[0].Definition.SourceQueue != "rh.src" || !slices.Equal(shovels[0].Definition.DestinationURI, def.DestinationURI) ||
		shovels[0].Definition.SourceDeleteAfter != "never" || shovels[0].Definition.SourcePrefetchCount != 10 {
		t.Errorf("ListShovels: %+v %v", shovels, err)
	}
	if in, err := rmq.ListShovelsIn("/"); err != nil || len(in) != 1 {
		t.Errorf("ListShovelsIn: %+v %v", in, err)
	}
	if one, err := rmq.GetShovel("/", "rh-shovel"); err != nil || one.Vhost != "/" || one.Definition.AckMode != "on-confirm" {
		t.Errorf("GetShovel: %+v %v", one, err)
	}
	wait.For(t, 10*time.Second, "ListShovelStatus running", func() bool {
		st, err := rmq.ListShovelStatus("/")
		return err == nil && len(st) == 1 && st[0].State == "running" && st[0].Type == "dynamic" && st[0].Timestamp != ""
	})
	res, err = rmq.DeleteShovel("/", "rh-shovel")
	must("DeleteShovel", code(res), err)
	if s, err := rmq.ListShovels(); err != nil || len(s) != 0 {
		t.Errorf("after DeleteShovel: %+v %v", s, err)
	}
	if _, err := rmq.GetShovel("/", "rh-shovel"); err == nil {
		t.Error("GetShovel of a deleted shovel succeeded")
	} else if re, ok := err.(rabbithole.ErrorResponse); !ok || re.StatusCode != 404 {
		t.Errorf("GetShovel of a deleted shovel: %#v", err)
	}

	// The generic runtime parameter calls, with a shovel and the vhost limits.
	value := map[string]any{"src-uri": "amqp://", "src-queue": "p.src", "dest-uri": "amqp://", "dest-queue": "p.dst"}
	res, err = rmq.PutRuntimeParameter("shovel", "/", "p1", value)
	must("PutRuntimeParameter", code(res), err)
	res, err = rmq.PutRuntimeParameter("vhost-limits", "/", "limits", map[string]any{"max-connections": 100})
	must("PutRuntimeParameter vhost-limits", code(res), err)
	if ps, err := rmq.ListRuntimeParameters(); err != nil || len(ps) != 2 {
		t.Errorf("ListRuntimeParameters: %+v %v", ps, err)
	}
	if ps, err := rmq.ListRuntimeParametersFor("shovel"); err != nil || len(ps) != 1 || ps[0].Name != "p1" {
		t.Errorf("ListRuntimeParametersFor: %+v %v", ps, err)
	}
	if ps, err := rmq.ListRuntimeParametersIn("vhost-limits", "/"); err != nil || len(ps) != 1 || ps[0].Value.(map[string]any)["max-connections"] != float64(100) {
		t.Errorf("ListRuntimeParametersIn: %+v %v", ps, err)
	}
	if p, err := rmq.GetRuntimeParameter("shovel", "/", "p1"); err != nil || p.Component != "shovel" || p.Value.(map[string]any)["src-queue"] != "p.src" {
		t.Errorf("GetRuntimeParameter: %+v %v", p, err)
	}
	if _, err := rmq.PutRuntimeParameter("no-such-component", "/", "x", value); err == nil {
		t.Error("PutRuntimeParameter of an unknown component succeeded")
	} else if re, ok := err.(rabbithole.ErrorResponse); !ok || re.StatusCode != 400 || re.Reason != "Validation failed\n\ncomponent no-such-component not found\n" {
		t.Errorf("unknown component: %#v", err)
	}
	res, err = rmq.DeleteRuntimeParameter("shovel", "/", "p1")
	must("DeleteRuntimeParameter", code(res), err)
	if err := rmq.DeleteAllRuntimeParameters(); err != nil {
		t.Errorf("DeleteAllRuntimeParameters: %v", err)
	}
	if ps, err := rmq.ListRuntimeParameters(); err != nil || len(ps) != 0 {
		t.Errorf("after DeleteAllRuntimeParameters: %+v %v", ps, err)
	}
}
