package amqp

import (
	"encoding/json"
	"testing"
)

func TestErlangFloat(t *testing.T) {
	for f, want := range map[float64]string{
		1.5: "1.5", 1: "1.0", -2: "-2.0", 0: "0.0", 100: "100.0", 0.25: "0.25",
		123456.789: "123456.789", 1e6: "1.0e6", 1.5e20: "1.5e20", 0.001: "0.001", 1.5e-10: "1.5e-10",
	} {
		if got := ErlangTerm(f); got != want {
			t.Errorf("ErlangTerm(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestErlangTermIntegers(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{int8(-5), "-5"}, {uint8(200), "200"}, {int16(-300), "-300"}, {uint16(65535), "65535"},
		{int32(-1 << 31), "-2147483648"}, {uint32(1 << 31), "2147483648"}, {int64(-1 << 63), "-9223372036854775808"},
		{int(7), "7"}, {uint64(1<<64 - 1), "18446744073709551615"}, {uint(9), "9"}, {struct{}{}, "undefined"},
	} {
		if got := ErlangTerm(tc.v); got != tc.want {
			t.Errorf("ErlangTerm(%T %v) = %q, want %q", tc.v, tc.v, got, tc.want)
		}
	}
}

// The expected texts are RabbitMQ 3.10.8's reasons for these values as a policy's max-length or
// priority (PUT /api/policies/%2F/p), JSON-decoded.
func TestErlangTermHTML(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"x", `&lt;&lt;"x"&gt;&gt;`}, {nil, "null"}, {int64(3), "3"}, {int64(-3), "-3"}, {true, "true"},
		{`a<b>&"c\\`, `&lt;&lt;"a&lt;b&gt;&amp;\"c\\\\"&gt;&gt;`},
		{"tab\there\nnl", `&lt;&lt;"tab\there\nnl"&gt;&gt;`},
		{"\x01x", "&lt;&lt;1,120&gt;&gt;"},
		{"ü", `&lt;&lt;"ü"&gt;&gt;`},
		{"ü€", "&lt;&lt;195,188,226,130,172&gt;&gt;"},
		{"", "&lt;&lt;&gt;&gt;"},
		{1.5, "1.5"}, {100.0, "100.0"}, {json.Number("1.5"), "1.5"}, {json.Number("7"), "7"},
		{[]any{int64(1), "x", 1.5, true, nil}, `[1,&lt;&lt;"x"&gt;&gt;,1.5,true,null]`},
		{[]any{json.Number("1"), "a"}, `[1,&lt;&lt;"a"&gt;&gt;]`},
		{[]any{}, "[]"},
		{map[string]any{"b": int64(1), "a": []any{int64(2)}, "A": "z"},
			`#{&lt;&lt;"A"&gt;&gt; =&gt; &lt;&lt;"z"&gt;&gt;,&lt;&lt;"a"&gt;&gt; =&gt; [2],&lt;&lt;"b"&gt;&gt; =&gt; 1}`},
		{Table{"a": []any{int64(1)}}, `#{&lt;&lt;"a"&gt;&gt; =&gt; [1]}`},
		{map[string]any{}, "#{}"},
	} {
		if got := ErlangTermHTML(tc.v); got != tc.want {
			t.Errorf("ErlangTermHTML(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// ErlangProplist is ErlangTermHTML's term with objects as proplists and no HTML escaping (the shovel
// plugin's validation texts; shovel/TestValidate checks RabbitMQ's own texts through it).
func TestErlangProplist(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"x", `<<"x">>`}, {nil, "null"}, {json.Number("5"), "5"},
		{map[string]any{"b": "y", "a": []any{true, 1.5}}, `[{<<"a">>,[true,1.5]},{<<"b">>,<<"y">>}]`},
		{map[string]any{}, "[]"},
		{[]any{map[string]any{"k": nil}}, `[[{<<"k">>,null}]]`},
	} {
		if got := ErlangProplist(tc.v); got != tc.want {
			t.Errorf("ErlangProplist(%#v) = %s, want %s", tc.v, got, tc.want)
		}
	}
}
