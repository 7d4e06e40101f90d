package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// The browser libraries in a real browser: MQTT.js (npm mqtt, its browser build dist/mqtt.min.js)
// and @stomp/stompjs (its UMD bundle, with the browser's own WebSocket) loaded by a page in
// headless Chromium, driven by the test through the DevTools protocol (chromedp), talking to Web
// MQTT and Web STOMP at ws://.../ws, with amqp091-go on the other side. The test serves the page
// and the bundles itself (from integration/clients/node/node_modules, installed by
// integration/clients/install.sh). With WARREN_TEST_URL set, against that broker's Web MQTT and Web
// STOMP (RabbitMQ 3.10.8's rabbitmq_web_mqtt on 15675 and rabbitmq_web_stomp on 15674, or
// WARREN_TEST_WEB_MQTT_ADDR / WARREN_TEST_WEB_STOMP_ADDR).
//
// Like the web UI's browser test (management/ui_test.go) it needs Chromium (WARREN_CHROMIUM names
// another binary) and is skipped only under WARREN_SKIP_BROWSER=1.

const browserStep = 20 * time.Second

// browserChromium returns the Chromium binary, as management/ui_test.go's chromiumPath finds it.
func browserChromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("WARREN_SKIP_BROWSER") == "1" {
		t.Skip("WARREN_SKIP_BROWSER=1: browser test skipped")
	}
	if p := os.Getenv("WARREN_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("WARREN_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the browser test needs Chromium, and none was found: install it with `apt-get install -y chromium` " +
		"(Debian), point WARREN_CHROMIUM at a Chrome or Chromium binary, or set WARREN_SKIP_BROWSER=1 to skip this test")
	return ""
}

// browserPage is the page's script: small promise-returning helpers over MQTT.js and stompjs that
// the test calls, keeping every client's received messages for the test to read.
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>warren web clients</title>
<script src="/mqtt.min.js"></script>
<script src="/stomp.umd.min.js"></script>
<script>
'use strict';
const W = window.W = { clients: {}, msgs: {}, frames: {} };
const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (s) => new Uint8Array(s.match(/../g).map((h) => parseInt(h, 16)));

// MQTT.js over the browser's WebSocket. Resolves {ok, sessionPresent} or {ok: false, err, code}.
W.mqttConnect = (name, url, opts) => new Promise((res) => {
  const c = mqtt.connect(url, Object.assign({ protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10000 }, opts));
  W.clients[name] = c;
  W.msgs[name] = [];
  c.on('message', (topic, payload, packet) => {
    W.msgs[name].push({ topic, hex: hex(payload), text: new TextDecoder().decode(payload), qos: packet.qos, retain: packet.retain });
  });
  c.once('connect', (ack) => res({ ok: true, sessionPresent: !!ack.sessionPresent }));
  c.once('error', (e) => { c.end(true); res({ ok: false, err: String(e && e.message || e), code: e && e.code }); });
  c.once('close', () => res({ ok: false, err: 'closed before CONNACK' }));
});
W.mqttSubscribe = async (name, filter, qos) => (await W.clients[name].subscribeAsync(filter, { qos })).map((g) => g.qos);
W.mqttPublish = async (name, topic, payloadHex, qos) => {
  await W.clients[name].publishAsync(topic, unhex(payloadHex), { qos });
  return true;
};
W.mqttEnd = async (name) => { await W.clients[name].endAsync(); return true; };

// stompjs over the browser's WebSocket, offering STOMP 1.0 to 1.2. Resolves {ok, version,
// subprotocol} or {ok: false, err}.
W.stompConnect = (name, url, headers) => new Promise((res) => {
  let ws;
  const c = new StompJs.Client({
    webSocketFactory: () => (ws = new WebSocket(url, ['v10.stomp', 'v11.stomp', 'v12.stomp'])),
    connectHeaders: headers, reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
  });
  W.clients[name] = c;
  W.msgs[name] = [];
  W.frames[name] = [];
  c.onConnect = (f) => res({ ok: true, version: f.headers.version, subprotocol: ws.protocol });
  c.onStompError = (f) => res({ ok: false, err: 'ERROR ' + f.headers.message });
  c.onWebSocketClose = (e) => res({ ok: false, err: 'WebSocket closed ' + e.code });
  c.activate();
});
W.stompSubscribe = (name, dest, headers) => new Promise((res) => {
  const c = W.clients[name];
  const receipt = 'sub-' + Math.random().toString(36).slice(2);
  c.watchForReceipt(receipt, () => res(true));
  c.subscribe(dest, (m) => {
    W.frames[name].push(m);
    W.msgs[name].push({ body: m.body, headers: m.headers });
  }, Object.assign({ receipt }, headers));
});
W.stompSend = (name, dest, body, headers) => new Promise((res) => {
  const c = W.clients[name];
  const receipt = 'send-' + Math.random().toString(36).slice(2);
  c.watchForReceipt(receipt, () => res(true));
  c.publish({ destination: dest, body, headers: Object.assign({ receipt }, headers) });
});
W.stompAck = (name, i) => { W.frames[name][i].ack(); return true; };
W.stompNack = (name, i, headers) => { W.frames[name][i].nack(headers || {}); return true; };
W.stompClose = async (name) => { await W.clients[name].deactivate(); return true; };
</script></head><body>warren web clients</body></html>`

// browserEnv is one headless Chromium with one tab on the test's page.
type browserEnv struct {
	t   *testing.T
	ctx context.Context

	mu        sync.Mutex
	done      bool
	exception []string
}

// startBrowser serves the page and the two bundles, starts Chromium (with extra options) and
// opens the page.
func startBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browserEnv {
	t.Helper()
	chrome := browserChromium(t)
	files := map[string]string{
		"/mqtt.min.js":      clientScript(t, "node/node_modules/mqtt/dist/mqtt.min.js"),
		"/stomp.umd.min.js": clientScript(t, "node/node_modules/@stomp/stompjs/bundles/stomp.umd.min.js"),
	}
	for _, p := range files {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the browser test serves the npm packages' browser bundles: %v; run integration/clients/install.sh", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(browserPage))
	})
	for path, file := range files {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			http.ServeFile(w, r, file)
		})
	}
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	e := &browserEnv{t: t}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // root in a container has no user namespace sandbox
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(e.logf), chromedp.WithErrorf(e.logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	e.ctx = ctx
	var wg sync.WaitGroup
	t.Cleanup(func() {
		e.mu.Lock()
		e.done = true
		e.mu.Unlock()
		cancelTimeout()
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		wg.Wait()
	})
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown) // starts the browser
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			text := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil && ev.ExceptionDetails.Exception.Description != "" {
				text = ev.ExceptionDetails.Exception.Description
			}
			e.mu.Lock()
			e.exception = append(e.exception, text)
			e.mu.Unlock()
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(hs.URL+"/")); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	var loaded bool
	e.js("the bundles loaded", &loaded, `() => typeof mqtt === 'object' && typeof StompJs === 'object' && typeof W === 'object'`)
	if !loaded {
		t.Fatal("the page has no mqtt, StompJs or W: the bundles did not load")
	}
	return e
}

func (e *browserEnv) logf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		e.t.Logf("chromedp: "+format, args...)
	}
}

// js calls fn (a JavaScript function, possibly async) with JSON arguments in the page, awaits it
// and decodes its result into out (if not nil).
func (e *browserEnv) js(what string, out any, fn string, args ...any) {
	e.t.Helper()
	parts := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			e.t.Fatal(err)
		}
		parts[i] = string(b)
	}
	expr := fmt.Sprintf("(%s)(%s)", fn, strings.Join(parts, ", "))
	ctx, cancel := context.WithTimeout(e.ctx, browserStep)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		e.t.Fatalf("%s: %v%s", what, err, e.problems())
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s: decoding %s: %v", what, raw, err)
		}
	}
}

// call calls W[name] with args.
func (e *browserEnv) call(out any, name string, args ...any) {
	e.t.Helper()
	e.js(name, out, "(...a) => W."+name+"(...a)", args...)
}

// waitMsgs waits until client name has received at least n messages and returns them.
func (e *browserEnv) waitMsgs(name string, n int, out any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, browserStep)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](`(name, n) => W.msgs[name].length >= n`,
		chromedp.WithPollingArgs(name, n),
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(browserStep)))
	if err != nil {
		var got any
		e.js("messages so far", &got, `(name) => W.msgs[name]`, name)
		e.t.Fatalf("%s: waiting for %d messages: %v; got %v%s", name, n, err, got, e.problems())
	}
	e.js("messages", out, `(name) => W.msgs[name]`, name)
}

func (e *browserEnv) problems() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.exception) == 0 {
		return ""
	}
	return "\nuncaught exceptions in the page:\n" + strings.Join(e.exception, "\n")
}

type browserConnect struct {
	OK             bool   `json:"ok"`
	Err            string `json:"err"`
	Code           int    `json:"code"`
	SessionPresent bool   `json:"sessionPresent"`
	Version        string `json:"version"`
	Subprotocol    string `json:"subprotocol"`
}

type browserMQTTMsg struct {
	Topic  string `json:"topic"`
	Hex    string `json:"hex"`
	Text   string `json:"text"`
	QoS    int    `json:"qos"`
	Retain bool   `json:"retain"`
}

type browserSTOMPMsg struct {
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
}

func hexOf(b []byte) string { return fmt.Sprintf("%x", b) }

// amqpRecvTimeout receives one delivery or fails.
func amqpRecvTimeout(t *testing.T, d <-chan amqp.Delivery, what string) amqp.Delivery {
	t.Helper()
	select {
	case m, ok := <-d:
		if !ok {
			t.Fatalf("%s: the consumer was cancelled", what)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no delivery in 10s", what)
	}
	return amqp.Delivery{}
}

// MQTT.js in Chromium: a bad login refused; QoS 1 subscribe and publish both ways with AMQP
// (binary payloads with every byte value); a persistent session keeping a QoS 1 message published
// while its client was away.
func TestBrowserMQTTjs(t *testing.T) {
	b := startWebBroker(t)
	e := startBrowser(t)
	url := "ws://" + b.WebMQTT + "/ws"
	id := fmt.Sprintf("browser-mqtt-%d", time.Now().UnixNano())
	topic := "warren/" + id
	key := strings.ReplaceAll(topic, "/", ".")
	ac, ch := dialAMQP(t, b.URL)
	defer ac.Close()

	// A bad password: the CONNACK refuses it and MQTT.js reports it.
	var bad browserConnect
	e.call(&bad, "mqttConnect", "bad", url, map[string]any{"clientId": id + "-bad", "username": "guest", "password": "wrong", "clean": true})
	t.Logf("bad login: %+v", bad)
	// Warren answers with CONNACK 4 (bad user name or password), as MQTT 3.1.1 says; RabbitMQ
	// 3.10.8's Web MQTT closes the WebSocket (1002 "unauthenticated") without a CONNACK.
	switch {
	case bad.OK:
		t.Fatalf("a bad password was accepted: %+v", bad)
	case externalURL == "" && (!strings.Contains(bad.Err, "Connection refused") || bad.Code != 4):
		t.Fatalf("a bad password: %+v, want a refused CONNACK 4", bad)
	}

	var c browserConnect
	e.call(&c, "mqttConnect", "m", url, map[string]any{"clientId": id, "username": "guest", "password": "guest", "clean": true})
	if !c.OK {
		t.Fatalf("connect: %+v", c)
	}
	var granted []int
	e.call(&granted, "mqttSubscribe", "m", topic+"/in/#", 1)
	if len(granted) != 1 || granted[0] != 1 {
		t.Fatalf("SUBACK granted %v, want [1]", granted)
	}

	// AMQP -> MQTT: a persistent AMQP message reaches the QoS 1 subscription as a QoS 1 PUBLISH.
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	for _, p := range [][]byte{[]byte("from amqp ✓"), bin} {
		if err := ch.Publish("amq.topic", key+".in.a", false, false, amqp.Publishing{Body: p, DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatal(err)
		}
	}
	var got []browserMQTTMsg
	e.waitMsgs("m", 2, &got)
	if got[0].Topic != topic+"/in/a" || got[0].Text != "from amqp ✓" || got[0].QoS != 1 || got[0].Retain {
		t.Fatalf("first message %+v", got[0])
	}
	if got[1].Hex != hexOf(bin) || got[1].QoS != 1 {
		t.Fatalf("binary message %+v, want every byte value at QoS 1", got[1])
	}

	// MQTT -> AMQP at QoS 1: publishAsync resolves on the PUBACK; the AMQP consumer gets the bytes.
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, key+".out", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{[]byte("héllo from the browser"), bin} {
		e.call(nil, "mqttPublish", "m", topic+"/out", hexOf(p), 1)
		m := amqpRecvTimeout(t, d, "the MQTT publish over AMQP")
		if hexOf(m.Body) != hexOf(p) || m.RoutingKey != key+".out" {
			t.Fatalf("AMQP got %q on %q, want %q on %q", m.Body, m.RoutingKey, p, key+".out")
		}
		if m.DeliveryMode != amqp.Persistent {
			t.Fatalf("a QoS 1 publish arrived with delivery mode %d, want 2 (persistent)", m.DeliveryMode)
		}
	}
	e.call(nil, "mqttEnd", "m")

	// QoS 1 and a persistent session: a message published while the client is away is delivered
	// when it comes back with clean=false.
	sid := id + "-s"
	var s1 browserConnect
	e.call(&s1, "mqttConnect", "s1", url, map[string]any{"clientId": sid, "username": "guest", "password": "guest", "clean": false})
	if !s1.OK {
		t.Fatalf("connect clean=false: %+v", s1)
	}
	defer func() {
		// Drop the session (and its queue) again.
		var c browserConnect
		e.call(&c, "mqttConnect", "s3", url, map[string]any{"clientId": sid, "username": "guest", "password": "guest", "clean": true})
		if c.OK {
			e.call(nil, "mqttEnd", "s3")
		}
	}()
	e.call(&granted, "mqttSubscribe", "s1", topic+"/s", 1)
	if len(granted) != 1 || granted[0] != 1 {
		t.Fatalf("SUBACK granted %v, want [1]", granted)
	}
	e.call(nil, "mqttEnd", "s1")
	if err := ch.Publish("amq.topic", key+".s", false, false, amqp.Publishing{Body: []byte("while away"), DeliveryMode: amqp.Persistent}); err != nil {
		t.Fatal(err)
	}
	var s2 browserConnect
	e.call(&s2, "mqttConnect", "s2", url, map[string]any{"clientId": sid, "username": "guest", "password": "guest", "clean": false})
	if !s2.OK || !s2.SessionPresent {
		t.Fatalf("reconnect clean=false: %+v, want session present", s2)
	}
	e.waitMsgs("s2", 1, &got)
	if got[0].Topic != topic+"/s" || got[0].Text != "while away" || got[0].QoS != 1 {
		t.Fatalf("after reconnecting: %+v", got[0])
	}
	e.call(nil, "mqttEnd", "s2")
	if p := e.problems(); p != "" {
		t.Fatal(p)
	}
}

// stompjs in Chromium: a bad login refused; STOMP 1.2 over v12.stomp; /topic and /exchange
// destinations both ways with AMQP; ack modes client-individual (with NACK) and client on an AMQP
// queue, whose unacknowledged messages go back to the queue when the browser disconnects.
func TestBrowserStompjs(t *testing.T) {
	b := startWebBroker(t)
	e := startBrowser(t)
	url := "ws://" + b.WebSTOMP + "/ws"
	ac, ch := dialAMQP(t, b.URL)
	defer ac.Close()
	id := amqpName(t, "k")

	var bad browserConnect
	e.call(&bad, "stompConnect", "bad", url, map[string]string{"login": "guest", "passcode": "wrong", "host": "/"})
	t.Logf("bad login: %+v", bad)
	if bad.OK || !strings.HasPrefix(bad.Err, "ERROR ") {
		t.Fatalf("a bad passcode: %+v, want an ERROR frame", bad)
	}
	e.call(nil, "stompClose", "bad")

	var c browserConnect
	e.call(&c, "stompConnect", "s", url, map[string]string{"login": "guest", "passcode": "guest", "host": "/"})
	if !c.OK || c.Version != "1.2" || c.Subprotocol != "v12.stomp" {
		t.Fatalf("connect: %+v, want STOMP 1.2 over v12.stomp", c)
	}

	// AMQP -> STOMP through /topic (auto ack).
	e.call(nil, "stompSubscribe", "s", "/topic/"+id, map[string]string{})
	if err := ch.Publish("amq.topic", id, false, false, amqp.Publishing{Body: []byte("from amqp ✓"), ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	var got []browserSTOMPMsg
	e.waitMsgs("s", 1, &got)
	if got[0].Body != "from amqp ✓" || got[0].Headers["content-type"] != "text/plain" {
		t.Fatalf("MESSAGE %+v", got[0])
	}

	// STOMP -> AMQP through /exchange/amq.topic/<key>, with a header.
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, id+".out", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.call(nil, "stompSend", "s", "/exchange/amq.topic/"+id+".out", "héllo from the browser", map[string]string{"x-test": "yes", "content-type": "text/plain"})
	m := amqpRecvTimeout(t, d, "the STOMP SEND over AMQP")
	if string(m.Body) != "héllo from the browser" || m.Headers["x-test"] != "yes" || m.ContentType != "text/plain" {
		t.Fatalf("AMQP got %q %v %q", m.Body, m.Headers, m.ContentType)
	}
	e.call(nil, "stompClose", "s")

	// Ack modes on an AMQP queue (/amq/queue/<q>: the queue is the test's).
	work := amqpName(t, "q")
	if _, err := ch.QueueDeclare(work, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = ch.QueueDelete(work, false, false, false) }()
	publish := func(bodies ...string) {
		for _, body := range bodies {
			if err := ch.Publish("", work, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// drain takes what the queue holds once the broker has requeued the browser's unacked
	// messages: want bodies, in order, each redelivered or not as want says.
	drain := func(want ...string) {
		t.Helper()
		var bodies []string
		wait.For(t, 10*time.Second, fmt.Sprintf("%d messages back in %s", len(want), work), func() bool {
			for {
				m, ok, err := ch.Get(work, true)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					return len(bodies) >= len(want)
				}
				if !m.Redelivered {
					t.Fatalf("%q came back without the redelivered flag", m.Body)
				}
				bodies = append(bodies, string(m.Body))
			}
		})
		if strings.Join(bodies, ",") != strings.Join(want, ",") {
			t.Fatalf("the queue holds %q, want %q", bodies, want)
		}
	}

	// client-individual: ack the second only, NACK the third (requeued and redelivered), ack its
	// redelivery; on disconnect the first goes back to the queue.
	publish("i1", "i2", "i3")
	e.call(&c, "stompConnect", "ci", url, map[string]string{"login": "guest", "passcode": "guest", "host": "/"})
	e.call(nil, "stompSubscribe", "ci", "/amq/queue/"+work, map[string]string{"ack": "client-individual", "prefetch-count": "10"})
	e.waitMsgs("ci", 3, &got)
	for i, want := range []string{"i1", "i2", "i3"} {
		if got[i].Body != want || got[i].Headers["ack"] == "" {
			t.Fatalf("client-individual message %d: %+v, want %q with an ack header", i, got[i], want)
		}
	}
	e.call(nil, "stompAck", "ci", 1)
	e.call(nil, "stompNack", "ci", 2)
	e.waitMsgs("ci", 4, &got)
	if got[3].Body != "i3" || got[3].Headers["redelivered"] != "true" {
		t.Fatalf("after NACK: %+v, want i3 redelivered", got[3])
	}
	e.call(nil, "stompAck", "ci", 3)
	e.call(nil, "stompClose", "ci")
	drain("i1")

	// client: an ACK acknowledges the message and every earlier one of the subscription.
	publish("c1", "c2", "c3")
	e.call(&c, "stompConnect", "cl", url, map[string]string{"login": "guest", "passcode": "guest", "host": "/"})
	e.call(nil, "stompSubscribe", "cl", "/amq/queue/"+work, map[string]string{"ack": "client", "prefetch-count": "10"})
	e.waitMsgs("cl", 3, &got)
	for i, want := range []string{"c1", "c2", "c3"} {
		if got[i].Body != want {
			t.Fatalf("client message %d: %+v, want %q", i, got[i], want)
		}
	}
	e.call(nil, "stompAck", "cl", 1)
	e.call(nil, "stompClose", "cl")
	drain("c3")

	// auto: nothing comes back.
	publish("a1", "a2")
	e.call(&c, "stompConnect", "au", url, map[string]string{"login": "guest", "passcode": "guest", "host": "/"})
	e.call(nil, "stompSubscribe", "au", "/amq/queue/"+work, map[string]string{"ack": "auto"})
	e.waitMsgs("au", 2, &got)
	e.call(nil, "stompClose", "au")
	wait.For(t, 10*time.Second, "the auto subscription gone from "+work, func() bool {
		_, consumers := amqpReady(t, ac, work)
		return consumers == 0
	})
	if n, _ := amqpReady(t, ac, work); n != 0 {
		t.Fatalf("%d messages back after ack mode auto, want 0", n)
	}
	if p := e.problems(); p != "" {
		t.Fatal(p)
	}
}

// The same libraries over wss:// (ServeWebMQTTTLS, ServeWebSTOMPTLS) in Chromium, which is told to
// accept the test's certificate authority-less certificate (--ignore-certificate-errors): MQTT.js
// and stompjs exchange messages with AMQP; the connections are listed with their TLS.
func TestBrowserWebSocketTLS(t *testing.T) {
	if externalURL != "" {
		t.Skip("needs an in-process broker with TLS")
	}
	pki := newTestPKI(t)
	cfg, err := server.LoadTLS(pki.serverFiles(t, 41))
	if err != nil {
		t.Fatal(err)
	}
	tb := testbroker.Start(t)
	mqttAddr := tb.StartWebMQTTTLS(t, cfg.Config())
	stompAddr := tb.StartWebSTOMPTLS(t, cfg.Config())
	e := startBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	ac, ch := dialAMQP(t, "amqp://guest:guest@"+tb.Addr+"/")
	defer ac.Close()

	var c browserConnect
	e.call(&c, "mqttConnect", "m", "wss://"+mqttAddr+"/ws", map[string]any{"clientId": "browser-wss", "username": "guest", "password": "guest", "clean": true})
	if !c.OK {
		t.Fatalf("MQTT.js over wss://: %+v", c)
	}
	var granted []int
	e.call(&granted, "mqttSubscribe", "m", "wss/browser", 1)
	if err := ch.Publish("amq.topic", "wss.browser", false, false, amqp.Publishing{Body: []byte("to the browser over TLS")}); err != nil {
		t.Fatal(err)
	}
	var got []browserMQTTMsg
	e.waitMsgs("m", 1, &got)
	if got[0].Topic != "wss/browser" || got[0].Text != "to the browser over TLS" {
		t.Fatalf("MQTT.js got %+v", got[0])
	}

	e.call(&c, "stompConnect", "s", "wss://"+stompAddr+"/ws", map[string]string{"login": "guest", "passcode": "guest", "host": "/"})
	if !c.OK || c.Version != "1.2" {
		t.Fatalf("stompjs over wss://: %+v", c)
	}
	q := amqpName(t, "q")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	e.call(nil, "stompSend", "s", "/amq/queue/"+q, "from the browser over TLS", map[string]string{})
	if d := getOne(t, ch, q); string(d.Body) != "from the browser over TLS" {
		t.Fatalf("AMQP got %q", d.Body)
	}
	for _, p := range []string{"Web MQTT 3.1.1", "Web STOMP 1.2"} {
		if ci := findConnByProtocol(t, tb.Srv, p); ci.TLS == nil {
			t.Fatalf("%s connection listed without TLS: %+v", p, ci)
		}
	}
	e.call(nil, "mqttEnd", "m")
	e.call(nil, "stompClose", "s")
	if p := e.problems(); p != "" {
		t.Fatal(p)
	}
}
