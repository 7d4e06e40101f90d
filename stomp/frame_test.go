package stomp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func hdr(f Frame) string {
	var sb strings.Builder
	for _, h := range f.Headers {
		fmt.Fprintf(&sb, "%q=%q;", h.Name, h.Value)
	}
	return sb.String()
}

func mustDecode(t *testing.T, v Version, in string) (Frame, int) {
	t.Helper()
	f, n, err := Decode(v, []byte(in))
	if err != nil {
		t.Fatalf("Decode(%s, %q): %v", v, in, err)
	}
	return f, n
}

// Examples from the STOMP 1.2 specification's text.
func TestSpecExamples(t *testing.T) {
	cases := []struct {
		v       Version
		in      string
		cmd     string
		headers string
		body    string
	}{
		{V12, "CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\x00", CmdConnect,
			`"accept-version"="1.2";"host"="stomp.github.org";`, ""},
		{V12, "SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\x00", CmdSend,
			`"destination"="/queue/a";"content-type"="text/plain";`, "hello queue a\n"},
		{V12, "SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\x00", CmdSubscribe,
			`"id"="0";"destination"="/queue/foo";"ack"="client";`, ""},
		{V12, "BEGIN\ntransaction:tx1\n\n\x00", CmdBegin, `"transaction"="tx1";`, ""},
		{V12, "NACK\nid:12345\ntransaction:tx1\n\n\x00", CmdNack, `"id"="12345";"transaction"="tx1";`, ""},
		{V12, "DISCONNECT\nreceipt:77\n\n\x00", CmdDisconnect, `"receipt"="77";`, ""},
		{V11, "STOMP\naccept-version:1.1\nhost:h\n\n\x00", CmdStomp, `"accept-version"="1.1";"host"="h";`, ""},
		// Repeated headers are kept in order; Get returns the first.
		{V12, "SEND\nfoo:World\nfoo:Hello\n\n\x00", CmdSend, `"foo"="World";"foo"="Hello";`, ""},
		// CRLF in 1.2.
		{V12, "SEND\r\ndestination:/queue/a\r\n\r\nbody\x00", CmdSend, `"destination"="/queue/a";`, "body"},
		// Values keep leading/trailing spaces and later colons (in 1.0 colons are allowed).
		{V10, "SEND\ndestination: /queue/a:b \n\nx\x00", CmdSend, `"destination"=" /queue/a:b ";`, "x"},
		// Escapes.
		{V12, "SEND\na\\cb:c\\\\d\\ne\\rf\n\n\x00", CmdSend, `"a:b"="c\\d\ne\rf";`, ""},
		{V11, "SEND\na\\cb:c\\\\d\\ne\n\n\x00", CmdSend, `"a:b"="c\\d\ne";`, ""},
		// No escaping in 1.0, nor in CONNECT in 1.2.
		{V10, "SEND\na:b\\tc\n\n\x00", CmdSend, `"a"="b\\tc";`, ""},
		{V12, "CONNECT\nlogin:a\\b\n\n\x00", CmdConnect, `"login"="a\\b";`, ""},
		// content-length with NUL in the body.
		{V12, "SEND\ncontent-length:3\n\na\x00b\x00", CmdSend, `"content-length"="3";`, "a\x00b"},
		// In 1.1 a CR before LF is part of the value.
		{V11, "SEND\na:b\r\n\n\x00", CmdSend, `"a"="b\r";`, ""},
	}
	for _, c := range cases {
		f, n := mustDecode(t, c.v, c.in)
		if n != len(c.in) || f.Command != c.cmd || hdr(f) != c.headers || string(f.Body) != c.body {
			t.Errorf("%s %q: got n=%d %s %s body %q", c.v, c.in, n, f.Command, hdr(f), f.Body)
		}
	}
	f, _ := mustDecode(t, V12, "SEND\nfoo:World\nfoo:Hello\n\n\x00")
	if v, ok := f.Get("foo"); !ok || string(v) != "World" {
		t.Errorf("Get(foo) = %q, %v; want the first occurrence", v, ok)
	}
	if _, ok := f.Get("bar"); ok {
		t.Error("Get(bar) found a header that is not there")
	}
}

func TestServerFrames(t *testing.T) {
	d := Decoder{FromServer: true}
	in := "MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\x00"
	f, n, err := d.Decode(V12, []byte(in))
	if err != nil || n != len(in) || f.Command != CmdMessage || string(f.Body) != "hello queue a" {
		t.Fatalf("got %v %d %v", f, n, err)
	}
	if _, _, err := d.Decode(V12, []byte("SEND\n\n\x00")); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("SEND from a server: %v", err)
	}
	if _, _, err := Decode(V12, []byte("MESSAGE\n\n\x00")); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("MESSAGE from a client: %v", err)
	}
	for _, c := range []string{CmdConnected, CmdMessage, CmdReceipt, CmdError} {
		if !IsServerCommand(c) || IsClientCommand(c, V12) {
			t.Errorf("%s: server %v client %v", c, IsServerCommand(c), IsClientCommand(c, V12))
		}
	}
}

func TestCommandsPerVersion(t *testing.T) {
	for _, c := range []string{CmdStomp, CmdNack} {
		if IsClientCommand(c, V10) || !IsClientCommand(c, V11) || !IsClientCommand(c, V12) {
			t.Errorf("%s should be a client command from 1.1 on", c)
		}
		if _, _, err := Decode(V10, []byte(c+"\n\n\x00")); !errors.Is(err, ErrUnknownCommand) {
			t.Errorf("%s in 1.0: %v", c, err)
		}
	}
	for _, c := range []string{CmdConnect, CmdSend, CmdSubscribe, CmdUnsubscribe, CmdBegin, CmdCommit, CmdAbort, CmdAck, CmdDisconnect} {
		for _, v := range []Version{V10, V11, V12} {
			f, _ := mustDecode(t, v, c+"\n\n\x00")
			if f.Command != c {
				t.Errorf("%s %s decoded as %s", v, c, f.Command)
			}
		}
	}
	// Commands are case-sensitive.
	if _, _, err := Decode(V12, []byte("send\n\n\x00")); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("lower-case send: %v", err)
	}
}

func TestHeartbeatsAndTrailingEOLs(t *testing.T) {
	in := []byte("\n\r\nSEND\n\nx\x00\n")
	var kinds []string
	for len(in) > 0 {
		f, n, err := Decode(V12, in)
		if err != nil {
			t.Fatal(err)
		}
		if f.Heartbeat {
			kinds = append(kinds, fmt.Sprintf("hb%d", n))
		} else {
			kinds = append(kinds, f.Command)
		}
		in = in[n:]
	}
	if got := strings.Join(kinds, ","); got != "hb1,hb2,SEND,hb1" {
		t.Fatalf("got %s", got)
	}
	if _, n, err := Decode(V12, []byte("\r")); err != ErrNeedMore || n != 0 {
		t.Fatalf("lone CR: %d %v", n, err)
	}
	if _, _, err := Decode(V12, []byte("\rX")); !errors.Is(err, ErrBetweenFrames) {
		t.Fatalf("CR X: %v", err)
	}
}

func TestNeedMoreAtEveryPrefix(t *testing.T) {
	for _, in := range []string{
		"SEND\ndestination:/queue/a\ncontent-length:5\n\nhe\x00lo\x00",
		"SEND\r\ndestination:/queue/a\r\n\r\nhello\x00",
		"SEND\na\\cb:c\\\\d\n\nx\x00",
	} {
		for i := 0; i < len(in); i++ {
			if _, n, err := Decode(V12, []byte(in[:i])); err != ErrNeedMore || n != 0 {
				t.Fatalf("%q prefix %d: n=%d err=%v", in, i, n, err)
			}
		}
		if _, n, err := Decode(V12, []byte(in+"SEND")); err != nil || n != len(in) {
			t.Fatalf("%q: n=%d err=%v", in, n, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		v    Version
		in   string
		kind Kind
		msg  string
	}{
		{V12, "FOO\n\n\x00", ErrUnknownCommand, `"FOO" is not a STOMP 1.2 client command`},
		{V12, "SEND\nnocolon\n\n\x00", ErrBadHeader, `header line "nocolon" has no colon`},
		{V12, "SEND\na:\\t\n\n\x00", ErrBadEscape, `undefined escape "\\t" in "\\t"`},
		{V12, "SEND\na:b\\\n\n\x00", ErrBadEscape, "lone backslash"},
		{V11, "SEND\na:\\r\n\n\x00", ErrBadEscape, "STOMP 1.1 has"},
		{V12, "SEND\ncontent-length:x\n\n\x00", ErrBadContentLength, `"x"`},
		{V12, "SEND\ncontent-length:-1\n\n\x00", ErrBadContentLength, `"-1"`},
		{V12, "SEND\ncontent-length:2\n\nabc\x00", ErrMissingNul, `followed by "c"`},
		// 1.0 and 1.1 do not accept CRLF: "SEND\r" is not a command.
		{V11, "SEND\r\n\r\n\x00", ErrUnknownCommand, `"SEND\r"`},
	}
	for _, c := range cases {
		_, n, err := Decode(c.v, []byte(c.in))
		var e *Error
		if !errors.As(err, &e) || e.Kind != c.kind || !errors.Is(err, c.kind) || n != 0 {
			t.Errorf("%s %q: got n=%d %v, want kind %v", c.v, c.in, n, err, c.kind)
			continue
		}
		if !strings.Contains(e.Detail, c.msg) || e.Message() != c.kind.Error() {
			t.Errorf("%s %q: detail %q lacks %q (message %q)", c.v, c.in, e.Detail, c.msg, e.Message())
		}
	}
}

func TestLimits(t *testing.T) {
	d := Decoder{Limits: Limits{MaxHeaders: 2, MaxHeaderLine: 20, MaxBody: 4}}
	ok := []string{
		"SEND\na:b\nc:d\n\n1234\x00",
		"SEND\n012345678:0123456789\n\n\x00",
		"SEND\r\n0123456789:012345678\r\n\r\n\x00",
		"SEND\ncontent-length:4\n\n1234\x00",
	}
	for _, in := range ok {
		if _, n, err := d.Decode(V12, []byte(in)); err != nil || n != len(in) {
			t.Errorf("%q within the limits: %d %v", in, n, err)
		}
	}
	bad := []struct {
		in   string
		kind Kind
	}{
		{"SEND\na:b\nc:d\ne:f\n\n\x00", ErrTooManyHeaders},
		{"SEND\n012345678:0123456789a\n\n\x00", ErrHeaderTooLong},
		{"SEND\r\n012345678:0123456789a\r\n\r\n\x00", ErrHeaderTooLong},
		// Detected before the line ends, so nothing more is buffered.
		{"SEND\n012345678:0123456789ab", ErrHeaderTooLong},
		{"SENDSENDSENDSENDSENDSEND", ErrHeaderTooLong},
		{"SEND\n\n12345\x00", ErrBodyTooLarge},
		{"SEND\n\n12345", ErrBodyTooLarge},
		// content-length is checked before the body arrives.
		{"SEND\ncontent-length:5\n\n", ErrBodyTooLarge},
		{"SEND\ncontent-length:99999\n\n", ErrBodyTooLarge},
	}
	for _, c := range bad {
		if _, _, err := d.Decode(V12, []byte(c.in)); !errors.Is(err, c.kind) {
			t.Errorf("%q: %v, want %v", c.in, err, c.kind)
		}
	}
	if _, _, err := d.Decode(V12, []byte("SEND\n012345678:0123456789\r")); err != ErrNeedMore {
		t.Errorf("a line at the limit without its EOL: %v", err)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	frames := []Frame{
		{Command: CmdSend, Headers: []Header{H("destination", "/queue/a"), H("a:b", "c\\d\ne\rf"), H("a:b", "second")}, Body: []byte("x\x00y")},
		{Command: CmdMessage, Headers: []Header{H("subscription", "0"), H("message-id", "1"), H("destination", "/topic/x")}, Body: []byte("hello")},
		{Command: CmdConnect, Headers: []Header{H("accept-version", "1.0,1.1,1.2"), H("login", "gu\\est")}},
		{Command: CmdConnected, Headers: []Header{H("version", "1.2"), H("server", "Warren/0")}},
		{Command: CmdAck, Headers: []Header{H("id", "9")}},
		{Command: CmdError, Headers: []Header{H("message", "Invalid header")}, Body: []byte("detail\n")},
	}
	for _, v := range []Version{V10, V11, V12} {
		for i, f := range frames {
			b, err := Append([]byte("prefix"), f, v)
			// The first frame's headers need escaping that only 1.2 has
			// (1.0 escapes nothing, 1.1 has no \r).
			if i == 0 && v < V12 {
				if !errors.Is(err, ErrEncode) || string(b) != "prefix" {
					t.Errorf("%s %s: unencodable headers encoded: %q %v", v, f.Command, b, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s %s: %v", v, f.Command, err)
			}
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("dst not appended to")
			}
			b = b[len("prefix"):]
			d := Decoder{FromServer: IsServerCommand(f.Command)}
			g, n, err := d.Decode(v, b)
			if err != nil || n != len(b) {
				t.Fatalf("%s %s: decode %q: %d %v", v, f.Command, b, n, err)
			}
			want := f
			if len(f.Body) > 0 {
				want.Headers = append(append([]Header(nil), f.Headers...), H("content-length", fmt.Sprint(len(f.Body))))
			}
			if g.Command != want.Command || hdr(g) != hdr(want) || !bytes.Equal(g.Body, want.Body) {
				t.Errorf("%s: round trip\n got %s %s %q\nwant %s %s %q", v, g.Command, hdr(g), g.Body, want.Command, hdr(want), want.Body)
			}
			b2, err := Append(nil, g, v)
			if err != nil || !bytes.Equal(b2, b) {
				t.Errorf("%s %s: re-encoding differs: %q vs %q (%v)", v, f.Command, b2, b, err)
			}
		}
	}
}

func TestAppendExact(t *testing.T) {
	b, err := Append(nil, Frame{Command: CmdSend, Headers: []Header{H("destination", "/queue/a:b")}, Body: []byte("hi")}, V12)
	if err != nil || string(b) != "SEND\ndestination:/queue/a\\cb\ncontent-length:2\n\nhi\x00" {
		t.Fatalf("%q %v", b, err)
	}
	b, err = Append(nil, Frame{Command: CmdSend, Headers: []Header{H("destination", "/queue/a:b")}}, V10)
	if err != nil || string(b) != "SEND\ndestination:/queue/a:b\n\n\x00" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := Append(nil, Frame{Command: CmdSend, Headers: []Header{H("content-length", "3")}, Body: []byte("hi")}, V12); !errors.Is(err, ErrEncode) {
		t.Fatalf("wrong content-length: %v", err)
	}
	if _, err := Append(nil, Frame{Command: CmdConnect, Headers: []Header{H("a:b", "c")}}, V12); !errors.Is(err, ErrEncode) {
		t.Fatalf("colon in a CONNECT header name: %v", err)
	}
	if _, err := Append(nil, Frame{}, V12); !errors.Is(err, ErrEncode) {
		t.Fatalf("empty command: %v", err)
	}
	if b, _ := Append(nil, Frame{Heartbeat: true}, V12); string(b) != "\n" {
		t.Fatalf("heartbeat %q", b)
	}
}

func TestCloneDoesNotAlias(t *testing.T) {
	in := []byte("SEND\na:b\\c\n\nbody\x00")
	var d Decoder
	f, _, err := d.Decode(V12, in)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Clone()
	for i := range in {
		in[i] = 'z'
	}
	if _, _, err := d.Decode(V12, []byte("SEND\nq:\\\\\\\\\\\\\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	if hdr(c) != `"a"="b:";` || string(c.Body) != "body" || c.Command != CmdSend {
		t.Fatalf("clone changed: %s %q", hdr(c), c.Body)
	}
}

func TestVersion(t *testing.T) {
	for _, v := range []Version{V10, V11, V12} {
		if p, ok := ParseVersion(v.String()); !ok || p != v {
			t.Errorf("%s", v)
		}
	}
	if _, ok := ParseVersion("1.3"); ok {
		t.Error("1.3 parsed")
	}
}

// TestResume: a frame fed a byte at a time decodes as it does whole, the
// decoder keeping its place (its scan positions move forward, never back),
// and a shorter input or Reset starts again.
func TestResume(t *testing.T) {
	in := []byte("SEND\r\ndestination:/queue/a\r\nx:\\cy\r\n\r\nhello\x00")
	var d Decoder
	for i := 1; i < len(in); i++ {
		before := d.st.pos + d.st.scan
		if _, n, err := d.Decode(V12, in[:i]); err != ErrNeedMore || n != 0 {
			t.Fatalf("prefix %d: %d %v", i, n, err)
		}
		if after := d.st.pos + d.st.scan; after < before || after > i {
			t.Fatalf("prefix %d: scanned to %d after %d", i, after, before)
		}
	}
	f, n, err := d.Decode(V12, in)
	if err != nil || n != len(in) || hdr(f) != `"destination"="/queue/a";"x"=":y";` || string(f.Body) != "hello" {
		t.Fatalf("%d %v %s %q", n, err, hdr(f), f.Body)
	}
	if d.st.active {
		t.Fatal("state kept after a whole frame")
	}

	// A shorter buffer than last time is another input: decoded afresh.
	if _, _, err := d.Decode(V12, []byte("SEND\nlong-header-name:abc")); err != ErrNeedMore {
		t.Fatal(err)
	}
	if f, _, err := d.Decode(V12, []byte("ACK\nid:1\n\n\x00")); err != nil || f.Command != CmdAck {
		t.Fatalf("%v %s", err, f.Command)
	}
	// Reset drops a partial frame.
	if _, _, err := d.Decode(V12, []byte("SEND\ndestination:/queue/a\n\nbody-without-nul")); err != ErrNeedMore {
		t.Fatal(err)
	}
	d.Reset()
	if f, _, err := d.Decode(V12, []byte("BEGIN\ntransaction:t1\n\n\x00")); err != nil || f.Command != CmdBegin {
		t.Fatalf("%v %s", err, f.Command)
	}
	// Errors found on a later read are the same as whole.
	d.Reset()
	if _, _, err := d.Decode(V12, []byte("SEND\na:b\n")); err != ErrNeedMore {
		t.Fatal(err)
	}
	if _, _, err := d.Decode(V12, []byte("SEND\na:b\nnocolon\n\n\x00")); !errors.Is(err, ErrBadHeader) {
		t.Fatal(err)
	}
}

// TestResumeLinear checks the work is linear: feeding a 1 MiB frame in
// 512-byte reads looks at each body byte a bounded number of times (the
// scan position only moves forward), so the total scanned equals the size.
func TestResumeLinear(t *testing.T) {
	in := bytes.Repeat([]byte("a"), 1<<20)
	in = append([]byte("SEND\n\n"), in...)
	in = append(in, 0)
	var d Decoder
	scanned := 0
	for end := 512; end < len(in); end += 512 {
		before := d.st.scan
		if _, _, err := d.Decode(V12, in[:end]); err != ErrNeedMore {
			t.Fatal(err)
		}
		if d.st.headers {
			scanned += d.st.scan - before
		}
	}
	if scanned > len(in) {
		t.Fatalf("scanned %d bytes of a %d-byte frame", scanned, len(in))
	}
	if _, n, err := d.Decode(V12, in); err != nil || n != len(in) {
		t.Fatal(n, err)
	}
}
