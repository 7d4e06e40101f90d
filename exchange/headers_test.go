package exchange

import (
	"math"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp"
)

func TestHeadersMatch(t *testing.T) {
	ts := time.Unix(1700000000, 0).UTC()
	tests := []struct {
		name    string
		args    amqp.Table
		headers amqp.Table
		want    bool
	}{
		// x-match all (the default).
		{"all default both", amqp.Table{"a": "1", "b": "2"}, amqp.Table{"a": "1", "b": "2", "c": "3"}, true},
		{"all explicit both", amqp.Table{"x-match": "all", "a": "1", "b": "2"}, amqp.Table{"a": "1", "b": "2"}, true},
		{"all one differs", amqp.Table{"a": "1", "b": "2"}, amqp.Table{"a": "1", "b": "3"}, false},
		{"all one missing", amqp.Table{"a": "1", "b": "2"}, amqp.Table{"a": "1"}, false},
		{"all no headers", amqp.Table{"a": "1"}, nil, false},
		{"all no args", nil, nil, true},
		{"all only x-match", amqp.Table{"x-match": "all"}, amqp.Table{"q": 1}, true},
		{"all only x- args", amqp.Table{"x-foo": "1"}, nil, true},
		{"all ignores x- args", amqp.Table{"x-foo": "1", "a": "1"}, amqp.Table{"a": "1", "x-foo": "2"}, true},
		// x-match any.
		{"any one", amqp.Table{"x-match": "any", "a": "1", "b": "2"}, amqp.Table{"b": "2"}, true},
		{"any none", amqp.Table{"x-match": "any", "a": "1", "b": "2"}, amqp.Table{"a": "2", "c": "1"}, false},
		{"any no args", amqp.Table{"x-match": "any"}, amqp.Table{"a": "1"}, false},
		{"any only x- args", amqp.Table{"x-match": "any", "x-foo": "1"}, amqp.Table{"x-foo": "1"}, false},
		{"any ignores x- args", amqp.Table{"x-match": "any", "x-foo": "1", "a": "1"}, amqp.Table{"x-foo": "1"}, false},
		// The *-with-x modes consider x- arguments, but never x-match.
		{"all-with-x x arg matches", amqp.Table{"x-match": "all-with-x", "x-foo": "1", "a": "1"}, amqp.Table{"a": "1", "x-foo": "1"}, true},
		{"all-with-x x arg differs", amqp.Table{"x-match": "all-with-x", "x-foo": "1", "a": "1"}, amqp.Table{"a": "1", "x-foo": "2"}, false},
		{"all-with-x ignores x-match", amqp.Table{"x-match": "all-with-x", "a": "1"}, amqp.Table{"a": "1"}, true},
		{"all-with-x no args", amqp.Table{"x-match": "all-with-x"}, nil, true},
		{"any-with-x x arg alone", amqp.Table{"x-match": "any-with-x", "x-foo": "1", "a": "1"}, amqp.Table{"x-foo": "1"}, true},
		{"any-with-x none", amqp.Table{"x-match": "any-with-x", "x-foo": "1"}, amqp.Table{"x-foo": "2"}, false},
		{"any-with-x no args", amqp.Table{"x-match": "any-with-x"}, amqp.Table{"x-match": "any-with-x"}, false},
		// An x-match that is not a known string routes as all (RabbitMQ: "legacy; we didn't validate").
		{"unknown x-match is all", amqp.Table{"x-match": "ANY", "a": "1", "b": "2"}, amqp.Table{"a": "1"}, false},
		{"binary x-match is all", amqp.Table{"x-match": []byte("any"), "a": "1", "b": "2"}, amqp.Table{"a": "1"}, false},
		{"int x-match is all", amqp.Table{"x-match": int32(1), "a": "1"}, amqp.Table{"a": "1"}, true},
		// Void binding values match on presence.
		{"void present", amqp.Table{"a": nil}, amqp.Table{"a": int64(42)}, true},
		{"void present void", amqp.Table{"a": nil}, amqp.Table{"a": nil}, true},
		{"void absent", amqp.Table{"a": nil}, amqp.Table{"b": "1"}, false},
		{"void any", amqp.Table{"x-match": "any", "a": nil, "b": "2"}, amqp.Table{"a": false}, true},
		{"void with-x", amqp.Table{"x-match": "all-with-x", "x-a": nil}, amqp.Table{"x-a": "v"}, true},
		{"header void vs value", amqp.Table{"a": "1"}, amqp.Table{"a": nil}, false},
		// Integers compare by value whatever their type.
		{"int32 vs int64", amqp.Table{"n": int32(5)}, amqp.Table{"n": int64(5)}, true},
		{"uint8 vs int16", amqp.Table{"n": uint8(5)}, amqp.Table{"n": int16(5)}, true},
		{"int vs uint32", amqp.Table{"n": 7}, amqp.Table{"n": uint32(7)}, true},
		{"int8 negative vs int64", amqp.Table{"n": int8(-1)}, amqp.Table{"n": int64(-1)}, true},
		{"int differs", amqp.Table{"n": int32(5)}, amqp.Table{"n": int32(6)}, false},
		{"uint64 big vs int64", amqp.Table{"n": uint64(math.MaxUint64)}, amqp.Table{"n": int64(-1)}, false},
		{"uint64 big vs uint", amqp.Table{"n": uint64(math.MaxUint64)}, amqp.Table{"n": uint(math.MaxUint64)}, true},
		{"uint64 small vs int8", amqp.Table{"n": uint64(3)}, amqp.Table{"n": int8(3)}, true},
		// Integers never equal floats; floats compare as float64.
		{"int vs double", amqp.Table{"n": int64(5)}, amqp.Table{"n": 5.0}, false},
		{"double vs int", amqp.Table{"n": 5.0}, amqp.Table{"n": int32(5)}, false},
		{"float vs double exact", amqp.Table{"n": float32(1.5)}, amqp.Table{"n": 1.5}, true},
		{"float vs double inexact", amqp.Table{"n": float32(0.1)}, amqp.Table{"n": 0.1}, false},
		{"double vs double", amqp.Table{"n": 0.1}, amqp.Table{"n": 0.1}, true},
		// Strings and byte arrays are both Erlang binaries.
		{"string vs string", amqp.Table{"s": "abc"}, amqp.Table{"s": "abc"}, true},
		{"string vs bytes", amqp.Table{"s": "abc"}, amqp.Table{"s": []byte("abc")}, true},
		{"bytes vs string", amqp.Table{"s": []byte("abc")}, amqp.Table{"s": "abc"}, true},
		{"bytes vs bytes differ", amqp.Table{"s": []byte("abc")}, amqp.Table{"s": []byte("abd")}, false},
		{"string vs int", amqp.Table{"s": "5"}, amqp.Table{"s": int32(5)}, false},
		// Other scalars.
		{"bool", amqp.Table{"b": true}, amqp.Table{"b": true}, true},
		{"bool differs", amqp.Table{"b": true}, amqp.Table{"b": false}, false},
		{"bool vs int", amqp.Table{"b": true}, amqp.Table{"b": int8(1)}, false},
		{"decimal", amqp.Table{"d": amqp.Decimal{Scale: 2, Value: 150}}, amqp.Table{"d": amqp.Decimal{Scale: 2, Value: 150}}, true},
		{"decimal scale differs", amqp.Table{"d": amqp.Decimal{Scale: 1, Value: 15}}, amqp.Table{"d": amqp.Decimal{Scale: 2, Value: 150}}, false},
		{"timestamp", amqp.Table{"t": ts}, amqp.Table{"t": ts.Local()}, true},
		{"timestamp vs int", amqp.Table{"t": ts}, amqp.Table{"t": ts.Unix()}, false},
		// Containers compare element by element with the same rules.
		{"table", amqp.Table{"t": amqp.Table{"a": int32(1)}}, amqp.Table{"t": amqp.Table{"a": int64(1)}}, true},
		{"table vs map", amqp.Table{"t": map[string]any{"a": "x"}}, amqp.Table{"t": amqp.Table{"a": "x"}}, true},
		{"table differs", amqp.Table{"t": amqp.Table{"a": int32(1)}}, amqp.Table{"t": amqp.Table{"a": int32(1), "b": nil}}, false},
		{"array", amqp.Table{"a": []any{"x", int8(1), nil}}, amqp.Table{"a": []any{[]byte("x"), int64(1), nil}}, true},
		{"array order", amqp.Table{"a": []any{"x", "y"}}, amqp.Table{"a": []any{"y", "x"}}, false},
		{"array length", amqp.Table{"a": []any{"x"}}, amqp.Table{"a": []any{"x", "x"}}, false},
		{"unknown type", amqp.Table{"a": struct{}{}}, amqp.Table{"a": struct{}{}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New[string](Headers)
			r.Bind("q", "ignored", tc.args)
			got := r.Route("any.key", tc.headers, nil)
			if (len(got) == 1) != tc.want || len(got) > 1 {
				t.Errorf("args %v headers %v: routed %v, want match=%v", tc.args, tc.headers, got, tc.want)
			}
		})
	}
}

func TestHeadersIgnoresRoutingKeyAndDedupes(t *testing.T) {
	r := New[string](Headers)
	r.Bind("q1", "a", amqp.Table{"x-match": "any", "k": "v"})
	r.Bind("q1", "b", amqp.Table{"k": nil})
	r.Bind("q2", "c", amqp.Table{"k": "other"})
	for _, key := range []string{"", "a", "zzz"} {
		got := r.Route(key, amqp.Table{"k": "v"}, nil)
		if len(got) != 1 || got[0] != "q1" {
			t.Errorf("Route(%q) = %v, want [q1]", key, got)
		}
	}
}

func TestCheckBindArgs(t *testing.T) {
	tests := []struct {
		kind Kind
		args amqp.Table
		want string // "" for no error
	}{
		{Headers, nil, ""},
		{Headers, amqp.Table{"a": "b"}, ""},
		{Headers, amqp.Table{"x-match": "all"}, ""},
		{Headers, amqp.Table{"x-match": "any"}, ""},
		{Headers, amqp.Table{"x-match": "all-with-x"}, ""},
		{Headers, amqp.Table{"x-match": "any-with-x"}, ""},
		{Headers, amqp.Table{"x-match": "foo"}, `Invalid x-match field value <<"foo">>; expected all, any, all-with-x, or any-with-x`},
		{Headers, amqp.Table{"x-match": "ALL"}, `Invalid x-match field value <<"ALL">>; expected all, any, all-with-x, or any-with-x`},
		{Headers, amqp.Table{"x-match": ""}, `Invalid x-match field value <<>>; expected all, any, all-with-x, or any-with-x`},
		{Headers, amqp.Table{"x-match": `a"b`}, `Invalid x-match field value <<"a\"b">>; expected all, any, all-with-x, or any-with-x`},
		{Headers, amqp.Table{"x-match": "é"}, `Invalid x-match field value <<"é"/utf8>>; expected all, any, all-with-x, or any-with-x`},
		{Headers, amqp.Table{"x-match": "\x00\x01"}, `Invalid x-match field value <<0,1>>; expected all, any, all-with-x, or any-with-x`},
		{Headers, amqp.Table{"x-match": int32(5)}, `Invalid x-match field type signedint (value 5); expected longstr`},
		{Headers, amqp.Table{"x-match": int64(-5)}, `Invalid x-match field type long (value -5); expected longstr`},
		{Headers, amqp.Table{"x-match": []byte("any")}, `Invalid x-match field type binary (value <<"any">>); expected longstr`},
		{Headers, amqp.Table{"x-match": nil}, `Invalid x-match field type void (value undefined); expected longstr`},
		{Headers, amqp.Table{"x-match": true}, `Invalid x-match field type bool (value true); expected longstr`},
		{Headers, amqp.Table{"x-match": 1.5}, `Invalid x-match field type double (value 1.5); expected longstr`},
		{Headers, amqp.Table{"x-match": float32(2)}, `Invalid x-match field type float (value 2.0); expected longstr`},
		{Headers, amqp.Table{"x-match": amqp.Decimal{Scale: 2, Value: 150}}, `Invalid x-match field type decimal (value {2,150}); expected longstr`},
		{Headers, amqp.Table{"x-match": []any{"a", int8(1)}}, `Invalid x-match field type array (value [{longstr,<<"a">>},{byte,1}]); expected longstr`},
		{Headers, amqp.Table{"x-match": amqp.Table{"k": "v"}}, `Invalid x-match field type table (value [{<<"k">>,longstr,<<"v">>}]); expected longstr`},
		// Other kinds accept any arguments.
		{Direct, amqp.Table{"x-match": 5}, ""},
		{Fanout, amqp.Table{"x-match": "foo"}, ""},
		{Topic, amqp.Table{"x-match": nil}, ""},
	}
	for _, tc := range tests {
		err := CheckBindArgs(tc.kind, tc.args)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("CheckBindArgs(%v, %v) = %q, want %q", tc.kind, tc.args, got, tc.want)
		}
	}
}
