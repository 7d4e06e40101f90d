package amqp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqp/internal/codegen"
)

// loadSpec parses the committed JSON spec.
func loadSpec(t testing.TB) *codegen.Spec {
	t.Helper()
	raw, err := os.ReadFile("spec/amqp-rabbitmq-0.9.1.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := codegen.ParseSpec(raw)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asError asserts err is an *Error with the given code.
func asError(t testing.TB, err error, code uint16) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *amqp.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("error code %d (%v), want %d", e.Code, e, code)
	}
	return e
}

// fillNonZero sets every field of the struct pointed to by m to a non-zero
// value derived from seed.
func fillNonZero(t testing.TB, m any, seed int) {
	t.Helper()
	v := reflect.ValueOf(m).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		n := seed + i + 1
		switch f.Interface().(type) {
		case bool:
			f.SetBool(true)
		case uint8:
			f.SetUint(uint64(0x80 | n))
		case uint16:
			f.SetUint(uint64(0x8000 | n))
		case uint32:
			f.SetUint(uint64(0x80000000 | n))
		case uint64:
			f.SetUint(0x8000000000000000 | uint64(n))
		case string:
			f.SetString(fmt.Sprintf("%s-%d", name, n))
		case Table:
			f.Set(reflect.ValueOf(Table{
				"name": name, "n": int64(n), "nested": Table{"ok": true, "list": []any{int32(n), "x"}},
			}))
		case time.Time:
			f.Set(reflect.ValueOf(time.Unix(int64(1700000000+n), 0).UTC()))
		default:
			t.Fatalf("fillNonZero: field %s has unhandled type %s", name, f.Type())
		}
		if f.IsZero() {
			t.Fatalf("fillNonZero: field %s still zero", name)
		}
	}
}

// methodsEqual compares two methods field by field: tables with Equal,
// times by instant, everything else with ==.
func methodsEqual(a, b Method) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() {
		return false
	}
	va, vb = va.Elem(), vb.Elem()
	for i := 0; i < va.NumField(); i++ {
		fa, fb := va.Field(i).Interface(), vb.Field(i).Interface()
		switch x := fa.(type) {
		case Table:
			if !x.Equal(fb.(Table)) {
				return false
			}
		case time.Time:
			if !x.Equal(fb.(time.Time)) {
				return false
			}
		default:
			if fa != fb {
				return false
			}
		}
	}
	return true
}

// propsEqual compares two Properties: Headers with Equal, Timestamp by instant.
func propsEqual(a, b Properties) bool {
	if !a.Headers.Equal(b.Headers) || !a.Timestamp.Equal(b.Timestamp) {
		return false
	}
	a.Headers, b.Headers = nil, nil
	a.Timestamp, b.Timestamp = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// mustMethodFrame returns the encoding of a method frame.
func mustMethodFrame(t testing.TB, channel uint16, m Method) []byte {
	t.Helper()
	b, err := AppendMethodFrame(nil, channel, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustPayload returns the method frame payload of m.
func mustPayload(t testing.TB, m Method) []byte {
	t.Helper()
	b, err := AppendMethod(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitReader returns its first chunk on the first Read and the rest after,
// so a parser sees input split at an arbitrary point.
type splitReader struct{ chunks [][]byte }

func (r *splitReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

func clientProperties() Table {
	return Table{
		"product":  "amqp091-go",
		"version":  "β",
		"platform": "golang",
		"capabilities": Table{
			"connection.blocked":     true,
			"consumer_cancel_notify": true,
			"basic.nack":             true,
			"publisher_confirms":     true,
		},
		"information": "https://github.com/rabbitmq/amqp091-go",
	}
}

// publishStream is basic.publish + content header + body on channel 1.
func publishStream(t testing.TB, body []byte) []byte {
	t.Helper()
	props := Properties{ContentType: "application/json", DeliveryMode: 2, Headers: Table{"x-trace": "abc"}}
	raw, err := props.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := mustMethodFrame(t, 1, &BasicPublish{Exchange: "orders", RoutingKey: "orders.created", Mandatory: true})
	b = AppendContentHeaderFrame(b, 1, ClassBasic, uint64(len(body)), raw)
	return AppendBodyFrames(b, 1, body, FrameMinSize)
}

func typeOf(v any) string { return fmt.Sprintf("%T", v) }
