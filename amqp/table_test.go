package amqp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

// everyType holds one value of each type in RabbitMQ's chart, keyed by its type octet.
func everyType() Table {
	return Table{
		"t": true,
		"b": int8(-5),
		"B": uint8(250),
		"s": int16(-30000),
		"u": uint16(65000),
		"I": int32(-2000000000),
		"i": uint32(4000000000),
		"l": int64(-9000000000000000000),
		"f": float32(3.25),
		"d": float64(-1e300),
		"D": Decimal{Scale: 2, Value: -12345},
		"S": "longstr ✓",
		"x": []byte{0, 1, 0xFF},
		"T": time.Unix(1700000000, 0).UTC(),
		"F": Table{"inner": "yes", "n": int64(1)},
		"A": []any{int32(1), "two", []any{true, nil}, Table{"k": uint8(3)}},
		"V": nil,
	}
}

func TestTableRoundTripEveryType(t *testing.T) {
	in := everyType()
	in["nested"] = Table{"level1": Table{"level2": everyType()}, "arr": []any{everyType()}}
	b, err := AppendTable([]byte("prefix"), in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:6]) != "prefix" {
		t.Fatal("prefix clobbered")
	}
	out, rest, err := DecodeTable(append(b[6:], "rest"...))
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "rest" {
		t.Fatalf("rest = %q", rest)
	}
	if !in.Equal(out) || !out.Equal(in) {
		t.Fatalf("round trip mismatch:\n in %#v\nout %#v", in, out)
	}
	// Each type octet on the wire is the one the chart says.
	for key, v := range everyType() {
		enc, err := AppendFieldValue(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if string(enc[:1]) != key {
			t.Errorf("%T encoded as type %q, want %q", v, enc[:1], key)
		}
		got, rest, err := DecodeFieldValue(enc)
		if err != nil || len(rest) != 0 || !ValueEqual(v, got) {
			t.Errorf("%q: decoded %#v rest %d err %v", key, got, len(rest), err)
		}
	}
}

func TestTableDecodedGoTypes(t *testing.T) {
	b, err := AppendTable(nil, everyType())
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := DecodeTable(b)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"t": "bool", "b": "int8", "B": "uint8", "s": "int16", "u": "uint16", "I": "int32", "i": "uint32",
		"l": "int64", "f": "float32", "d": "float64", "D": "amqp.Decimal", "S": "string", "x": "[]uint8",
		"T": "time.Time", "F": "amqp.Table", "A": "[]interface {}",
	} {
		if got := typeOf(out[key]); got != want {
			t.Errorf("%q decodes as %s, want %s", key, got, want)
		}
	}
	if v, ok := out["V"]; !ok || v != nil {
		t.Errorf("V = %#v, %t", v, ok)
	}
	if ts := out["T"].(time.Time); ts.Location() != time.UTC {
		t.Errorf("timestamp location %v", ts.Location())
	}
}

func TestTableEncodeExtraGoTypes(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want any
	}{
		{int(-7), int64(-7)},
		{uint64(7), int64(7)},
		{uint(8), int64(8)},
		{map[string]any{"a": "b"}, Table{"a": "b"}},
	} {
		b, err := AppendFieldValue(nil, tc.in)
		if err != nil {
			t.Fatalf("%T: %v", tc.in, err)
		}
		got, _, err := DecodeFieldValue(b)
		if err != nil || !ValueEqual(got, tc.want) {
			t.Errorf("%T: decoded %#v, %v", tc.in, got, err)
		}
	}
}

func TestTableGoldenBytes(t *testing.T) {
	// Keys sorted; 's' is a signed 16-bit short and 'u' unsigned (RabbitMQ's chart).
	b, err := AppendTable(nil, Table{"b": int16(-2), "a": uint16(2), "c": []byte("hi"), "d": nil})
	if err != nil {
		t.Fatal(err)
	}
	want := "00000016" + "0161" + "75" + "0002" + "0162" + "73" + "fffe" + "0163" + "78" + "00000002" + "6869" + "0164" + "56"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	empty, _ := AppendTable(nil, nil)
	if !bytes.Equal(empty, []byte{0, 0, 0, 0}) {
		t.Fatalf("nil table = %x", empty)
	}
}

func TestTableDeterministic(t *testing.T) {
	in := Table{}
	for i := 0; i < 100; i++ {
		in[string(rune('A'+i%26))+strings.Repeat("k", i)] = int64(i)
	}
	first, _ := AppendTable(nil, in)
	for i := 0; i < 20; i++ {
		again, _ := AppendTable(nil, in)
		if !bytes.Equal(first, again) {
			t.Fatal("encoding depends on map iteration order")
		}
	}
}

func TestTableEncodeErrors(t *testing.T) {
	cyclic := make([]any, 1)
	cyclic[0] = cyclic
	for name, in := range map[string]Table{
		"long key":       {strings.Repeat("k", 256): true},
		"unsupported":    {"k": struct{}{}},
		"uint64 too big": {"k": uint64(math.MaxUint64)},
		"uint too big":   {"k": uint(math.MaxUint64)},
		"nested bad":     {"k": Table{"x": []any{1, complex(1, 2)}}},
		"cyclic array":   {"k": cyclic},
	} {
		out, err := AppendTable([]byte("keep"), in)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q", name, out)
		}
	}
}

func be32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// nest returns a table nested depth levels deep: {"a": {"a": ...}}.
func nest(depth int, typ byte) []byte {
	inner := []byte{0, 0, 0, 0}
	for i := 0; i < depth; i++ {
		var entry []byte
		if typ == 'F' {
			entry = append([]byte{1, 'a', 'F'}, inner...)
		} else {
			entry = append([]byte{1, 'a', 'A'}, be32(uint32(len(inner)+1))...)
			entry = append(entry, 'A')
			entry = append(entry, inner...)
		}
		inner = append(be32(uint32(len(entry))), entry...)
	}
	return inner
}

func TestDecodeTableMalformed(t *testing.T) {
	tbl := func(body ...byte) []byte { return append(be32(uint32(len(body))), body...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for name, in := range map[string][]byte{
		"empty":                 nil,
		"short length":          {0, 0, 1},
		"length overruns":       cat(be32(100), []byte{1, 'k', 'V'}),
		"length 4GiB":           cat(be32(0xFFFFFFFF), make([]byte, 100)),
		"key overruns":          tbl(5, 'k'),
		"missing type":          tbl(1, 'k'),
		"unknown type":          tbl(1, 'k', 'Z'),
		"0-9-1 spec type U":     tbl(1, 'k', 'U', 0, 1), // not in RabbitMQ's chart
		"truncated int":         tbl(1, 'k', 'I', 0, 0),
		"truncated decimal":     tbl(1, 'k', 'D', 1, 0, 0, 0),
		"truncated timestamp":   tbl(1, 'k', 'T', 0),
		"longstr 4GiB":          tbl(cat([]byte{1, 'k', 'S'}, be32(0xFFFFFFFF), []byte("abc"))...),
		"bytes 4GiB":            tbl(cat([]byte{1, 'k', 'x'}, be32(0xFFFFFFFF))...),
		"longstr short length":  tbl(1, 'k', 'S', 0, 0),
		"nested table overruns": tbl(cat([]byte{1, 'k', 'F'}, be32(50))...),
		"array overruns":        tbl(cat([]byte{1, 'k', 'A'}, be32(50))...),
		"array bad element":     tbl(cat([]byte{1, 'k', 'A'}, be32(1), []byte{'?'})...),
		"array truncated elem":  tbl(cat([]byte{1, 'k', 'A'}, be32(2), []byte{'s', 0})...),
		"array short length":    tbl(1, 'k', 'A', 0),
		"deep tables":           nest(200, 'F'),
		"deep arrays":           nest(200, 'A'),
	} {
		t.Run(name, func(t *testing.T) {
			out, _, err := DecodeTable(in)
			asError(t, err, SyntaxError)
			if out != nil {
				t.Errorf("table %v returned with error", out)
			}
		})
	}
	// Within the limit, deep nesting is fine.
	if _, _, err := DecodeTable(nest(maxDepth-1, 'F')); err != nil {
		t.Errorf("depth %d: %v", maxDepth-1, err)
	}
}

// TestDecodeTableHugeLengthDoesNotAllocate: a longstr claiming 4 GiB inside a
// 100-byte table is an error, not an allocation.
func TestDecodeTableHugeLengthDoesNotAllocate(t *testing.T) {
	in := append(be32(96), 1, 'k', 'S')
	in = append(in, be32(0xFFFFFFFF)...)
	in = append(in, make([]byte, 100-len(in))...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, _, err := DecodeTable(in); err == nil {
			t.Fatal("no error")
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("decoding a hostile 100-byte table allocated %d bytes", d)
	}
}

func TestEmptyTableDecodesNil(t *testing.T) {
	out, rest, err := DecodeTable([]byte{0, 0, 0, 0, 9})
	if err != nil || out != nil || !bytes.Equal(rest, []byte{9}) {
		t.Fatalf("got %v %v %v", out, rest, err)
	}
	if !Table(nil).Equal(Table{}) {
		t.Fatal("nil and empty tables differ")
	}
}

func TestValueEqual(t *testing.T) {
	now := time.Unix(1700000000, 0)
	nan := math.NaN()
	for _, tc := range []struct {
		a, b any
		want bool
	}{
		{nil, nil, true},
		{int64(1), int64(1), true},
		{int64(1), int32(1), false},
		{"a", "a", true},
		{"a", []byte("a"), false},
		{[]byte("a"), []byte("a"), true},
		{now, now.UTC(), true},
		{now, now.Add(time.Second), false},
		{nan, nan, true},
		{float32(0), float32(math.Copysign(0, -1)), false},
		{Table{"a": int8(1)}, map[string]any{"a": int8(1)}, true},
		{Table{"a": int8(1)}, Table{"a": int8(2)}, false},
		{Table{"a": int8(1)}, Table{"b": int8(1)}, false},
		{Table{}, Table(nil), true},
		{[]any{}, []any(nil), true},
		{[]any{Table{"x": []any{int16(1)}}}, []any{Table{"x": []any{int16(1)}}}, true},
		{[]any{int16(1)}, []any{int16(2)}, false},
		{Decimal{1, 2}, Decimal{1, 2}, true},
		{Decimal{1, 2}, Decimal{2, 2}, false},
		{[]string{"x"}, []string{"x"}, false}, // unknown types never compare (and never panic)
		{nil, int8(0), false},
	} {
		if got := ValueEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("ValueEqual(%#v, %#v) = %t", tc.a, tc.b, got)
		}
	}
}
