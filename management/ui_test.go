package management

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/server"
)

// The browser test drives the web UI in a real headless Chromium against a real Warren: the pages
// call the real HTTP API, which acts on the real broker. It asserts on what the page shows.
//
// It needs Debian's Chromium (apt-get install -y chromium); WARREN_CHROMIUM names another binary,
// WARREN_SKIP_BROWSER=1 skips the test, and WARREN_UI_SCREENSHOTS names the directory for the
// screenshots it saves (default: warren-ui-screenshots in the system's temporary directory).
//
// With WARREN_UI_TEST_API set to a RabbitMQ management address (http://127.0.0.1:15672) and
// WARREN_TEST_URL to its AMQP URL, the same test runs the UI against that RabbitMQ instead (its API
// proxied behind the embedded UI), which shows the UI speaks RabbitMQ's API. Figures that other
// clients of a shared broker change (the overview totals) are then only checked for being numbers.

const stepTimeout = 20 * time.Second

func chromiumPath(t *testing.T) string {
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

// uiEnv is one broker, its management HTTP server and one browser tab on the UI.
type uiEnv struct {
	t        *testing.T
	ctx      context.Context // the tab
	base     string          // http://127.0.0.1:port/
	amqpURL  string
	shots    string    // screenshot directory
	external bool      // the API is a RabbitMQ's (WARREN_UI_TEST_API), not an in-process Warren's
	last     time.Time // see mark

	mu        sync.Mutex
	done      bool
	dialogs   []string
	exception []string
}

func startUI(t *testing.T) *uiEnv {
	t.Helper()
	chrome := chromiumPath(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last: after the browser and servers stop

	e := &uiEnv{t: t, shots: os.Getenv("WARREN_UI_SCREENSHOTS")}
	if api := os.Getenv("WARREN_UI_TEST_API"); api != "" {
		e.external = true
		e.base, e.amqpURL = proxyRabbitMQ(t, api)
	} else {
		e.base, e.amqpURL = startWarren(t)
	}
	if e.shots == "" {
		e.shots = filepath.Join(os.TempDir(), "warren-ui-screenshots")
	}
	if err := os.MkdirAll(e.shots, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox, // root in a container has no user namespace sandbox
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
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
		wg.Wait()     // the event loops below end with the tab
	})

	// Any alert (an XSS payload that ran) or uncaught exception fails the test. Events starts the
	// browser; the loops end when the tab's context is cancelled.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			e.mu.Lock()
			e.dialogs = append(e.dialogs, fmt.Sprintf("%s: %s", ev.Type, ev.Message))
			e.mu.Unlock()
			// Close it, so the page is not stuck behind it. (The event loop must not wait for a call.)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
		}
	}()
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
	return e
}

// startWarren starts a broker on 127.0.0.1:0 and its management handler (API and UI) on an
// httptest server, both stopped when the test ends. It returns the UI's and the broker's URLs.
func startWarren(t *testing.T) (base, amqpURL string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := testbroker.Start(t, func(o *server.Options) { o.Logger = log })
	hs := httptest.NewServer(NewHandler(b.Srv, log))
	t.Cleanup(hs.Close)
	// Say plainly when the handler does not serve the UI, rather than time out in the browser.
	res, err := http.Get(hs.URL + "/")
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / on the management handler: %d %s, want the UI's index.html (is uiHandler mounted at /?)",
			res.StatusCode, res.Header.Get("Content-Type"))
	}
	return hs.URL + "/", b.URL
}

// proxyRabbitMQ serves the embedded UI with /api proxied to the RabbitMQ management API at api.
func proxyRabbitMQ(t *testing.T, api string) (base, amqpURL string) {
	t.Helper()
	amqpURL = os.Getenv("WARREN_TEST_URL")
	if amqpURL == "" {
		t.Skip("WARREN_UI_TEST_API needs WARREN_TEST_URL, the same broker's AMQP URL")
	}
	u, err := url.Parse(api)
	if err != nil {
		t.Fatalf("WARREN_UI_TEST_API: %v", err)
	}
	transport := &http.Transport{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = transport
	mux := http.NewServeMux()
	mux.Handle("/api/", proxy)
	mux.Handle("/", uiHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.Close()
		transport.CloseIdleConnections()
	})
	return hs.URL + "/", amqpURL
}

// mark logs how long the part of the test that just ended took (seen with go test -v).
func (e *uiEnv) mark(part string) {
	now := time.Now()
	if !e.last.IsZero() {
		e.t.Logf("%-32s %v", part, now.Sub(e.last).Round(time.Millisecond))
	}
	e.last = now
}

func (e *uiEnv) logf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		e.t.Logf("chromedp: "+format, args...)
	}
}

// problems reports dialogs and uncaught exceptions seen so far.
func (e *uiEnv) problems() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var msgs []string
	for _, d := range e.dialogs {
		msgs = append(msgs, "dialog opened: "+d)
	}
	for _, x := range e.exception {
		msgs = append(msgs, "uncaught exception: "+x)
	}
	if msgs == nil {
		return nil
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// do runs browser steps with the step timeout and fails the test, with what the page shows, if
// one fails.
func (e *uiEnv) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		e.fail(what, err)
	}
}

// js evaluates a function in the page with JSON arguments and decodes its result into out.
func (e *uiEnv) js(what string, out any, fn string, args ...any) {
	e.t.Helper()
	expr := callExpr(fn, args...)
	ctx, cancel := context.WithTimeout(e.ctx, stepTimeout)
	defer cancel()
	if out == nil {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](expr, chromedp.EvalAwaitPromise)); err != nil {
			e.fail(what, err)
		}
		return
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		e.fail(what, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		e.fail(what, fmt.Errorf("decoding %s: %w", raw, err))
	}
}

func callExpr(fn string, args ...any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			panic(err)
		}
		parts[i] = string(b)
	}
	return fmt.Sprintf("(%s)(%s)", fn, strings.Join(parts, ", "))
}

// waitFor polls a JavaScript predicate (a function of args, truthy when done) until it holds.
func (e *uiEnv) waitFor(what string, fn string, args ...any) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, stepTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > time.Second {
			e.t.Logf("waited %v for %s", d.Round(time.Millisecond), what)
		}
	}()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](fn,
		chromedp.WithPollingArgs(args...),
		chromedp.WithPollingInterval(25*time.Millisecond),
		chromedp.WithPollingTimeout(stepTimeout)))
	if err != nil {
		e.fail(what, err)
	}
}

// waitText waits until the element sel shows exactly want (trimmed textContent).
func (e *uiEnv) waitText(what, sel, want string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s: %s should show %q", what, sel, want),
		`(sel, want) => { const el = document.querySelector(sel); return el && el.textContent.trim() === want; }`, sel, want)
}

// fail stops the test, saying what the page shows: its address, status lines and a screenshot.
func (e *uiEnv) fail(what string, err error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	var state struct {
		Hash   string   `json:"hash"`
		Status []string `json:"status"`
		Text   string   `json:"text"`
	}
	diag := ""
	if raw, derr := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`({hash: location.hash,
		status: [...document.querySelectorAll('.status')].map(s => s.textContent).filter(Boolean),
		text: document.body.innerText.slice(0, 1500)})`)); derr == nil && json.Unmarshal(raw, &state) == nil {
		diag = fmt.Sprintf("\npage %s\nstatus lines: %q\npage text:\n%s", state.Hash, state.Status, state.Text)
	}
	e.screenshot("failure")
	if p := e.problems(); p != nil {
		diag += "\n" + p.Error()
	}
	e.t.Fatalf("%s: %v%s", what, err, diag)
}

// screenshot saves the whole page as name.png in the screenshot directory.
func (e *uiEnv) screenshot(name string) {
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		e.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(e.shots, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		e.t.Logf("screenshot %s: %v", name, err)
	}
}

func (e *uiEnv) goTo(hash string) {
	e.t.Helper()
	e.js("go to "+hash, nil, `(h) => { location.hash = h; }`, hash)
}

// fill sets a form control's value as a user typing would (the input event fires).
func (e *uiEnv) fill(sel, value string) {
	e.t.Helper()
	e.js("fill "+sel, nil, `(sel, v) => {
		const el = document.querySelector(sel);
		if (!el) throw new Error('no element ' + sel);
		el.focus();
		el.value = v;
		el.dispatchEvent(new Event('input', {bubbles: true}));
		el.dispatchEvent(new Event('change', {bubbles: true}));
	}`, sel, value)
}

// clean fails the test if the page shows a value JavaScript made up (null, undefined, NaN or
// [object Object]: a rendering bug, say a missing field shown as is), or has a form control without
// a label or a button without text.
func (e *uiEnv) clean(what string) {
	e.t.Helper()
	var problems []string
	e.js("check "+what, &problems, `() => {
		const out = [];
		const m = document.querySelector('main').innerText.match(/\b(null|undefined|NaN)\b|\[object Object\]/);
		if (m) out.push('the page shows ' + JSON.stringify(m[0]));
		for (const c of document.querySelectorAll('main input, main select, main textarea')) {
			if (c.type !== 'hidden' && c.labels.length === 0 && !c.getAttribute('aria-label')) out.push('unlabelled ' + c.outerHTML);
		}
		for (const b of document.querySelectorAll('main button')) {
			if (b.textContent.trim() === '' && !b.getAttribute('aria-label')) out.push('button without text ' + b.outerHTML);
		}
		return out;
	}`)
	if len(problems) > 0 {
		e.fail(what, errors.New(strings.Join(problems, "; ")))
	}
}

// login fills in and sends the login form, and waits for the menu.
func (e *uiEnv) login(user, password string) {
	e.t.Helper()
	e.fill("#login-username", user)
	e.fill("#login-password", password)
	e.press("#login-form", "Log in")
	e.do("log in as "+user, chromedp.WaitVisible(chromedp.CSS("#nav")))
	e.waitText("logged-in user", "#session-user", user)
}

// press clicks the enabled button labelled label (its whole text) inside scope, waiting for it to
// appear, as a user would look for it.
func (e *uiEnv) press(scope, label string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("button %q in %s", label, scope), `(scope, label) => {
		const root = document.querySelector(scope);
		const b = root && [...root.querySelectorAll('button')].find(b => b.textContent.trim() === label && !b.disabled && b.offsetParent !== null);
		if (b) b.click();
		return !!b;
	}`, scope, label)
}

// pressInRow clicks the button labelled label in the row of table tableSel that has a cell showing
// exactly cell.
func (e *uiEnv) pressInRow(tableSel, cell, label string) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("button %q in the row of %q in %s", label, cell, tableSel), `(tsel, cell, label) => {
		for (const tr of document.querySelectorAll(tsel + ' tbody tr')) {
			if (![...tr.cells].some(td => td.textContent.trim() === cell)) continue;
			const b = [...tr.querySelectorAll('button')].find(b => b.textContent.trim() === label && !b.disabled);
			if (b) { b.click(); return true; }
		}
		return false;
	}`, tableSel, cell, label)
}

// waitRow waits until tableSel has (present) or has not (!present) a row with a cell showing cell.
func (e *uiEnv) waitRow(what, tableSel, cell string, present bool) {
	e.t.Helper()
	e.waitFor(what, `(tsel, cell, present) => {
		const t = document.querySelector(tsel);
		if (!t) return false;
		const found = [...t.querySelectorAll('tbody tr')].some(tr => [...tr.cells].some(td => td.textContent.trim() === cell));
		return found === present;
	}`, tableSel, cell, present)
}

func TestUIBrowser(t *testing.T) {
	start := time.Now()
	e := startUI(t)
	e.last = start

	// A client with one channel, for the overview totals and the Connections page.
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("ui-test-client")
	conn, err := amqp.DialConfig(e.amqpURL, amqp.Config{Properties: props})
	if err != nil {
		t.Fatalf("amqp dial: %v", err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("amqp channel: %v", err)
	}
	// A queue whose name is markup: it must show as text.
	const xssName = `<img src=x onerror=alert(1)>`
	if _, err := ch.QueueDeclare(xssName, false, false, false, false, nil); err != nil {
		t.Fatalf("declare %q: %v", xssName, err)
	}
	t.Cleanup(func() { deleteQueues(t, e.amqpURL, xssName) }) // the UI closes conn

	e.mark("browser start, client setup")

	// Log in: first with a wrong password, then as guest.
	e.do("open the UI", chromedp.Navigate(e.base), chromedp.WaitVisible(chromedp.CSS("#login-username")))
	e.screenshot("01-login")
	e.fill("#login-username", "guest")
	e.fill("#login-password", "wrong")
	e.press("#login-form", "Log in")
	e.waitFor("a wrong password is refused", `() => /Login failed/.test(document.querySelector('#login-status').textContent)`)
	e.login("guest", "guest")
	e.do("overview", chromedp.WaitVisible(chromedp.CSS("#totals")))

	e.mark("login")

	// Overview totals: our one connection, channel and queue.
	totals := map[string]string{"#total-connections": "1", "#total-channels": "1", "#total-queues": "1", "#msg-ready": "0", "#msg-unacked": "0"}
	for sel, want := range totals {
		if e.external { // a shared broker: just figures
			e.waitFor("overview "+sel, `(sel) => /^[0-9][0-9,]*$/.test(document.querySelector(sel).textContent)`, sel)
		} else {
			e.waitText("overview", sel, want)
		}
	}
	e.clean("overview")
	e.screenshot("02-overview")

	e.mark("overview")

	// Declare a queue through the form, with a name that needs encoding and one argument.
	const qName = "ui test.q#1?&/x"
	e.goTo("#/queues")
	e.do("queues page", chromedp.WaitVisible(chromedp.CSS("#declare-queue")))
	e.waitRow("the markup-named queue is listed", "#queues", xssName, true)
	e.fill("#declare-queue [name=name]", qName)
	e.press("#declare-queue", "Max length") // fills in the argument name x-max-length
	e.fill("#declare-queue .arg-row [name=arg-value]", "100")
	e.press("#declare-queue", "Add queue")
	e.waitText("declare queue", "#declare-queue .status", "Queue "+qName+" declared.")
	e.waitRow("the new queue is listed", "#queues", qName, true)
	e.clean("queue list")
	e.screenshot("03-queues")

	e.mark("declare queue")

	// Its page: details, publish, message count, get.
	e.js("open the queue", nil, `(name) => {
		const a = [...document.querySelectorAll('#queues a')].find(a => a.textContent === name);
		a.click();
	}`, qName)
	e.do("queue page", chromedp.WaitVisible(chromedp.CSS("#queue-details table")))
	e.waitText("queue page", "#queue-name", qName)
	e.waitFor("queue arguments", `() => document.querySelector('#queue-details').textContent.includes('{"x-max-length":100}')`)
	e.waitText("empty queue", "#queue-messages-ready", "0")

	const payload = `hello <b>warren</b> & "friends" ✓`
	e.fill("#queue-publish [name=payload]", payload)
	e.fill("#queue-publish fieldset:nth-of-type(2) [name=arg-key]", "content_type")
	e.fill("#queue-publish fieldset:nth-of-type(2) [name=arg-value]", "text/plain")
	e.press("#queue-publish", "Publish message")
	e.waitText("publish to the queue", "#queue-publish .status", "Message published.")
	e.waitText("message count after publishing", "#queue-messages-ready", "1")
	e.waitText("message count after publishing", "#queue-messages", "1")

	e.press("#queue-get", "Get messages")
	e.waitText("get", "#queue-get .status", "1 message fetched.")
	var got struct {
		Payload string `json:"payload"`
		Text    string `json:"text"`
	}
	e.js("read the fetched message", &got, `() => ({
		payload: document.querySelector('#get-results pre.payload').textContent,
		text: document.querySelector('#get-results').textContent,
	})`)
	if got.Payload != payload {
		t.Errorf("fetched payload shows %q, want %q", got.Payload, payload)
	}
	if !strings.Contains(got.Text, "text/plain") {
		t.Errorf("fetched message does not show its content_type: %q", got.Text)
	}
	// ack_requeue_true puts it back.
	e.waitText("message requeued after get", "#queue-messages-ready", "1")
	e.clean("queue page")
	e.screenshot("04-queue-get")

	e.mark("publish and get")

	// A stream's page has a browser: messages from an offset or a time, nothing consumed.
	if !e.external { // RabbitMQ's API has no browse endpoint
		sName := "ui-stream"
		if _, err := ch.QueueDeclare(sName, true, false, false, false, amqp.Table{"x-queue-type": "stream"}); err != nil {
			t.Fatalf("declare stream: %v", err)
		}
		t.Cleanup(func() { deleteQueues(t, e.amqpURL, sName) })
		// One confirm at a time, so each message is its own chunk ("last" is the newest).
		sch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			dc, err := sch.PublishWithDeferredConfirm("", sName, false, false, amqp.Publishing{Body: []byte(fmt.Sprintf("event %d <b>", i)),
				Headers: amqp.Table{"n": int32(i)}})
			if err != nil {
				t.Fatalf("publish to the stream: %v", err)
			}
			if !dc.Wait() {
				t.Fatal("publish to the stream nacked")
			}
		}
		if err := sch.Close(); err != nil {
			t.Fatal(err)
		}
		e.goTo("#/queues/%2F/" + sName)
		e.waitText("stream page", "#queue-name", sName)
		e.waitText("stream messages", "#queue-messages", "5")
		e.do("the stream browser shows", chromedp.WaitVisible(chromedp.CSS("#queue-browse")))
		e.js("browse from offset 2", nil, `() => {
			const f = document.querySelector('#queue-browse');
			f.querySelector('[name=from]').value = 'offset';
		}`)
		e.fill("#queue-browse [name=offset]", "2")
		e.fill("#queue-browse [name=count]", "2")
		e.press("#queue-browse", "Browse")
		e.waitText("browse", "#queue-browse .status", "2 messages read.")
		var browsed struct {
			Offsets  []string `json:"offsets"`
			Payloads []string `json:"payloads"`
			Text     string   `json:"text"`
		}
		e.js("read the browsed messages", &browsed, `() => ({
			offsets: [...document.querySelectorAll('#browse-results .offset')].map(e => e.textContent),
			payloads: [...document.querySelectorAll('#browse-results pre.payload')].map(e => e.textContent),
			text: document.querySelector('#browse-results').textContent,
		})`)
		if strings.Join(browsed.Offsets, ",") != "2,3" || strings.Join(browsed.Payloads, ",") != "event 2 <b>,event 3 <b>" {
			t.Errorf("browsed offsets %v payloads %v", browsed.Offsets, browsed.Payloads)
		}
		if !strings.Contains(browsed.Text, `{"n":2}`) {
			t.Errorf("browsed message does not show its headers: %q", browsed.Text)
		}
		// From a time before the first message: all five; from the last chunk: the newest.
		e.js("browse from a time", nil, `() => {
			document.querySelector('#queue-browse [name=from]').value = 'timestamp';
		}`)
		e.fill("#queue-browse [name=timestamp]", start.Add(-time.Minute).Format("2006-01-02T15:04:05"))
		e.fill("#queue-browse [name=count]", "20")
		e.press("#queue-browse", "Browse")
		e.waitText("browse by time", "#queue-browse .status", "5 messages read.")
		e.js("browse from last", nil, `() => {
			document.querySelector('#queue-browse [name=from]').value = 'last';
		}`)
		e.press("#queue-browse", "Browse")
		e.waitText("browse from last", "#queue-browse .status", "1 message read.")
		e.waitText("nothing consumed", "#queue-messages", "5")
		e.clean("stream browser")
		e.screenshot("04b-stream-browse")
		e.mark("stream browser")
		// Back to the classic queue's page, where the test goes on.
		e.goTo("#/queues/%2F/" + encodeURIComponent(qName))
		e.waitText("queue page", "#queue-name", qName)
		e.do("queue page", chromedp.WaitVisible(chromedp.CSS("#queue-bind")))
		e.waitFor("no stream browser on a classic queue", `() => document.querySelector('#queue-browse-panel').hidden`)
	}

	// Bind the queue to amq.topic from its page; a publish from the exchange's page reaches it.
	e.fill("#queue-bind [name=source]", "amq.topic")
	e.fill("#queue-bind [name=routing_key]", "ui.#")
	e.press("#queue-bind", "Bind")
	e.waitText("bind", "#queue-bind .status", "Binding added.")
	e.waitRow("the binding is listed", "#queue-bindings", "ui.#", true)

	e.goTo("#/exchanges/%2F/amq.topic")
	e.do("exchange page", chromedp.WaitVisible(chromedp.CSS("#exchange-details table")))
	e.waitRow("binding from amq.topic", "#exchange-bindings-source", qName, true)
	e.fill("#exchange-publish [name=routing_key]", "ui.test")
	e.fill("#exchange-publish [name=payload]", "via amq.topic")
	e.press("#exchange-publish", "Publish message")
	e.waitText("publish to amq.topic", "#exchange-publish .status", "Message published.")
	e.fill("#exchange-publish [name=routing_key]", "nobody.listens")
	e.press("#exchange-publish", "Publish message")
	e.waitText("unroutable publish", "#exchange-publish .status", "Message published, but not routed to any queue.")
	e.clean("exchange page")
	e.screenshot("05-exchange")

	e.goTo("#/exchanges/%2F/")
	e.waitText("default exchange page", "#exchange-name", "(AMQP default)")
	e.do("default exchange details", chromedp.WaitVisible(chromedp.CSS("#exchange-details table")))
	e.clean("default exchange page")

	e.goTo("#/queues/%2F/" + encodeURIComponent(qName))
	e.waitText("two messages after the exchange publish", "#queue-messages-ready", "2")
	e.pressInRow("#queue-bindings", "ui.#", "Unbind")
	e.press("#queue-bindings", "Yes, unbind")
	e.waitRow("the binding is gone", "#queue-bindings", "ui.#", false)

	e.mark("bindings and exchange publish")

	// Declare an exchange through the form, bind it to the queue from its page, delete it.
	const xName = "ui ex/1"
	e.goTo("#/exchanges")
	e.do("exchanges page", chromedp.WaitVisible(chromedp.CSS("#declare-exchange")))
	e.fill("#declare-exchange [name=name]", xName)
	e.fill("#declare-exchange [name=type]", "fanout")
	e.fill("#declare-exchange [name=durable]", "false")
	e.press("#declare-exchange", "Add exchange")
	e.waitText("declare exchange", "#declare-exchange .status", "Exchange "+xName+" declared.")
	e.waitRow("the new exchange is listed", "#exchanges", xName, true)
	e.clean("exchange list")
	e.js("open the exchange", nil, `(name) => [...document.querySelectorAll('#exchanges a')].find(a => a.textContent === name).click()`, xName)
	e.waitText("exchange page", "#exchange-name", xName)
	e.do("exchange details", chromedp.WaitVisible(chromedp.CSS("#exchange-details table")))
	e.waitFor("exchange type shown", `() => document.querySelector('#exchange-details').textContent.includes('fanout')`)
	e.fill("#exchange-bind [name=destination]", qName)
	e.press("#exchange-bind", "Bind")
	e.waitText("bind from the exchange", "#exchange-bind .status", "Binding added.")
	e.waitRow("binding from the new exchange", "#exchange-bindings-source", qName, true)
	e.press("main", "Delete exchange")
	e.press("main", "Yes, delete")
	e.waitText("exchange deleted", "h1 + .status", "Exchange "+xName+" deleted.")
	e.waitRow("the deleted exchange is not listed", "#exchanges", xName, false)

	e.mark("exchange declare, bind, delete")

	// An API error shows: a queue of the same name with other properties.
	e.goTo("#/queues")
	e.do("queues page", chromedp.WaitVisible(chromedp.CSS("#declare-queue")))
	e.fill("#declare-queue [name=name]", qName)
	e.fill("#declare-queue [name=durable]", "false")
	e.press("#declare-queue", "Add queue")
	e.waitFor("an inequivalent redeclare shows the API's error", `() => {
		const s = document.querySelector('#declare-queue .status');
		return s.classList.contains('error') && /400/.test(s.textContent) && /durable/.test(s.textContent);
	}`)

	e.mark("API error")

	// Delete the queue from its page.
	e.goTo("#/queues/%2F/" + encodeURIComponent(qName))
	e.do("queue page", chromedp.WaitVisible(chromedp.CSS("#queue-details table")))
	e.press("main", "Delete queue")
	e.press("main", "Yes, delete")
	e.waitText("queue deleted", "h1 + .status", "Queue "+qName+" deleted.")
	e.waitRow("the deleted queue is not listed", "#queues", xssName, true)
	e.waitRow("the deleted queue is not listed", "#queues", qName, false)

	e.mark("delete queue")

	// The markup-named queue is text everywhere.
	var xss struct {
		Imgs int    `json:"imgs"`
		Link string `json:"link"`
	}
	e.js("inspect the markup-named queue", &xss, `(name) => ({
		imgs: document.querySelectorAll('main img').length,
		link: ([...document.querySelectorAll('#queues a')].find(a => a.textContent === name) || {}).textContent || '',
	})`, xssName)
	if xss.Imgs != 0 || xss.Link != xssName {
		t.Errorf("markup-named queue: %d img elements on the page, link text %q; want 0 and %q", xss.Imgs, xss.Link, xssName)
	}
	e.goTo("#/queues/%2F/" + encodeURIComponent(xssName))
	e.waitText("markup-named queue page", "#queue-name", xssName)
	e.do("markup-named queue details", chromedp.WaitVisible(chromedp.CSS("#queue-details table")))
	e.screenshot("06-xss-queue")

	// On a phone-sized window the page does not scroll sideways (wide tables scroll in their box).
	e.do("narrow window", chromedp.EmulateViewport(390, 844))
	var overflow int
	e.js("page width", &overflow, `() => document.documentElement.scrollWidth - document.documentElement.clientWidth`)
	if overflow > 0 {
		t.Errorf("on a 390px wide window the queue page is %dpx too wide", overflow)
	}
	e.screenshot("06-narrow")
	e.do("wide window", chromedp.EmulateViewport(1280, 900))

	e.mark("markup-named queue")

	// Virtual hosts and users: add and delete.
	e.goTo("#/vhosts")
	e.do("vhosts page", chromedp.WaitVisible(chromedp.CSS("#add-vhost")))
	e.waitRow("default vhost listed", "#vhosts", "/", true)
	e.clean("vhosts page")
	e.fill("#add-vhost [name=name]", "ui vhost")
	e.press("#add-vhost", "Add virtual host")
	e.waitRow("the new vhost is listed", "#vhosts", "ui vhost", true)
	e.pressInRow("#vhosts", "ui vhost", "Delete")
	e.press("#vhosts", "Yes, delete")
	e.waitRow("the deleted vhost is not listed", "#vhosts", "ui vhost", false)

	e.goTo("#/users")
	e.do("users page", chromedp.WaitVisible(chromedp.CSS("#add-user")))
	e.fill("#add-user [name=username]", "ui-user")
	e.fill("#add-user [name=password]", "s3cret")
	e.press("#add-user", "monitoring")
	e.press("#add-user", "Add user")
	e.waitRow("the new user is listed", "#users", "ui-user", true)
	e.clean("users page")
	e.waitFor("the new user's tag", `() => [...document.querySelectorAll('#users tbody tr')]
		.some(tr => tr.cells[0].textContent === 'ui-user' && tr.cells[1].textContent === 'monitoring')`)

	// Log in as that monitoring user: no admin pages in the menu, and an action it may not do
	// shows the API's refusal without ending the session.
	e.press("#session", "Log out")
	e.do("login form after logging out", chromedp.WaitVisible(chromedp.CSS("#login-username")))
	e.login("ui-user", "s3cret")
	e.waitFor("no Users page for a monitoring user", `() => document.querySelector('#nav a[data-section=users]').parentElement.hidden`)
	e.goTo("#/queues")
	e.do("queues page", chromedp.WaitVisible(chromedp.CSS("#declare-queue")))
	e.fill("#declare-queue [name=name]", "ui-denied")
	e.press("#declare-queue", "Add queue")
	e.waitFor("a refused declare shows the API's error", `() => {
		const s = document.querySelector('#declare-queue .status');
		return s.classList.contains('error') && /^401/.test(s.textContent);
	}`)
	e.waitFor("still logged in after a refusal", `() => !document.querySelector('#nav').hidden && document.querySelector('#login').hidden`)
	e.press("#session", "Log out")
	e.do("login form after logging out", chromedp.WaitVisible(chromedp.CSS("#login-username")))
	e.login("guest", "guest")

	e.goTo("#/users")
	e.do("users page", chromedp.WaitVisible(chromedp.CSS("#add-user")))
	e.fill("#set-permission [name=user]", "ui-user")
	e.fill("#set-permission [name=read]", "^ui\\.")
	e.press("#set-permission", "Set permission")
	e.waitText("set permission", "#set-permission .status", "Permissions set for ui-user on /.")
	e.waitFor("the permission is listed", `() => [...document.querySelectorAll('#permissions tbody tr')]
		.some(tr => tr.cells[0].textContent === 'ui-user' && tr.cells[1].textContent === '/' && tr.cells[4].textContent === '^ui\\.')`)
	e.pressInRow("#users", "ui-user", "Delete")
	e.press("#users", "Yes, delete")
	e.waitRow("the deleted user is not listed", "#users", "ui-user", false)
	e.waitRow("the deleted user's permission is not listed", "#permissions", "ui-user", false)

	e.mark("vhosts, users, a monitoring user")

	// The client's channel is listed.
	local := conn.LocalAddr().String()
	e.goTo("#/channels")
	e.waitFor("the client's channel is listed", `(local) => [...document.querySelectorAll('#channels tbody tr')]
		.some(tr => (tr.dataset.name || '').includes(local))`, local)
	e.clean("channels page")

	e.mark("channels")

	// Close the client's connection from the Connections page; the client sees it closed.
	e.goTo("#/connections")
	e.waitFor("the client's connection is listed", `(local) => [...document.querySelectorAll('#connections tbody tr')]
		.some(tr => (tr.dataset.name || '').includes(local))`, local)
	e.clean("connections page")
	e.screenshot("07-connections")
	e.js("close the connection", nil, `(local) => {
		const tr = [...document.querySelectorAll('#connections tbody tr')].find(tr => (tr.dataset.name || '').includes(local));
		[...tr.querySelectorAll('button')].find(b => b.textContent === 'Close').click();
	}`, local)
	e.press("#connections", "Yes, close")
	e.waitFor("closed connection reported", `() => /^Connection .* closed\.$/.test(document.querySelector('h1 ~ .status.ok')?.textContent || '')`)
	select {
	case err := <-closed:
		if err == nil {
			t.Errorf("client saw a clean close, want a server-initiated close (320 CONNECTION_FORCED)")
		} else if err.Code != amqp.ConnectionForced {
			t.Errorf("client saw close %d %q, want 320 CONNECTION_FORCED", err.Code, err.Reason)
		}
	case <-time.After(stepTimeout):
		t.Errorf("the client did not see its connection closed")
	}
	e.waitFor("the closed connection is not listed", `(local) => document.querySelector('#connections') &&
		![...document.querySelectorAll('#connections tbody tr')].some(tr => (tr.dataset.name || '').includes(local))`, local)

	e.mark("close connection")

	// A session whose credentials stop working goes back to the login form.
	e.js("spoil the stored credentials", nil, `() => {
		const s = JSON.parse(sessionStorage.getItem('warren.credentials'));
		s.auth = btoa('guest:not-the-password');
		sessionStorage.setItem('warren.credentials', JSON.stringify(s));
		location.hash = '#/exchanges';
	}`)
	e.do("login form after a 401", chromedp.WaitVisible(chromedp.CSS("#login-username")))
	e.waitFor("session-ended message", `() => /session has ended/.test(document.querySelector('#login-status').textContent)`)

	e.mark("session end")

	if err := e.problems(); err != nil {
		t.Error(err)
	}
	t.Logf("browser test took %v; screenshots in %s", time.Since(start).Round(time.Millisecond), e.shots)
}

// deleteQueues deletes queues left behind (on an external broker they would stay).
func deleteQueues(t *testing.T, url string, names ...string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, n := range names {
		if _, err := ch.QueueDelete(n, false, false, false); err != nil {
			t.Errorf("cleanup: delete %q: %v", n, err)
			return
		}
	}
}

// encodeURIComponent is JavaScript's, for building hash routes in the test.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// The UI's static files are served by the management handler, with their types, revalidated on
// each load; directories are not listed.
func TestUIServed(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := testbroker.Start(t, func(o *server.Options) { o.Logger = log })
	hs := httptest.NewServer(NewHandler(b.Srv, log))
	defer hs.Close()
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		res, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}
	for path, ctype := range map[string]string{
		"/":                     "text/html",
		"/style.css":            "text/css",
		"/js/main.js":           "text/javascript",
		"/js/pages/queues.js":   "text/javascript",
		"/js/pages/overview.js": "text/javascript",
	} {
		res, body := get(path)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes; want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), len(body), ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", path, got)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
	}
	for _, path := range []string{"/js/", "/js/pages/", "/nope.js"} {
		if res, _ := get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}
