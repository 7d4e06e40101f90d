package exchange

import (
	"slices"
	"testing"

	"github.com/warrenmq/warren/amqp"
)

var allKinds = []Kind{Direct, Fanout, Topic, Headers}

func TestKind(t *testing.T) {
	for _, k := range allKinds {
		got, ok := ParseKind(k.String())
		if !ok || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, ok)
		}
	}
	for _, s := range []string{"", "Direct", "x-consistent-hash", "topic "} {
		if k, ok := ParseKind(s); ok {
			t.Errorf("ParseKind(%q) = %v, want failure", s, k)
		}
	}
	if s := Kind(0).String(); s != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", s)
	}
	if s := Kind(9).String(); s != "Kind(9)" {
		t.Errorf("Kind(9).String() = %q", s)
	}
}

func TestNewInvalidKindPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(Kind(0)) did not panic")
		}
	}()
	New[string](Kind(0))
}

// TestBindingIdentity checks, for every kind, that a binding is identified
// by (dest, key, args) with args compared deeply, and the bookkeeping
// methods around it.
func TestBindingIdentity(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(kind.String(), func(t *testing.T) {
			r := New[string](kind)
			mustBind := func(dest, key string, args amqp.Table, want bool) {
				t.Helper()
				if got := r.Bind(dest, key, args); got != want {
					t.Fatalf("Bind(%q, %q, %v) = %v, want %v", dest, key, args, got, want)
				}
			}
			mustBind("q1", "k", nil, true)
			mustBind("q1", "k", nil, false)
			mustBind("q1", "k", amqp.Table{}, false) // nil and empty args are equal
			mustBind("q1", "k", amqp.Table{"a": "1"}, true)
			mustBind("q1", "k", amqp.Table{"a": "1"}, false)                      // a distinct but equal table
			mustBind("q1", "k", amqp.Table{"a": amqp.Table{"b": int32(1)}}, true) // nested
			mustBind("q1", "k", amqp.Table{"a": amqp.Table{"b": int32(1)}}, false)
			mustBind("q1", "k2", nil, true)
			mustBind("q2", "k", nil, true)
			if n := r.Len(); n != 5 {
				t.Fatalf("Len = %d, want 5", n)
			}
			want := []Binding[string]{
				{"q1", "k", nil},
				{"q1", "k", amqp.Table{"a": "1"}},
				{"q1", "k", amqp.Table{"a": amqp.Table{"b": int32(1)}}},
				{"q1", "k2", nil},
				{"q2", "k", nil},
			}
			checkBindings(t, r, want)

			if r.Unbind("q1", "k", amqp.Table{"a": "2"}) {
				t.Error("Unbind of a binding with other args succeeded")
			}
			if r.Unbind("q3", "k", nil) {
				t.Error("Unbind of an unknown dest succeeded")
			}
			if !r.Unbind("q1", "k", amqp.Table{"a": "1"}) {
				t.Error("Unbind failed")
			}
			if r.Unbind("q1", "k", amqp.Table{"a": "1"}) {
				t.Error("second Unbind succeeded")
			}
			want = slices.Delete(want, 1, 2)
			checkBindings(t, r, want)

			// Re-adding goes to the end.
			mustBind("q1", "k", amqp.Table{"a": "1"}, true)
			want = append(want, Binding[string]{"q1", "k", amqp.Table{"a": "1"}})
			checkBindings(t, r, want)

			if !r.HasDest("q1") || !r.HasDest("q2") || r.HasDest("q3") {
				t.Error("HasDest wrong before UnbindAll")
			}
			if n := r.UnbindAll("q1"); n != 4 {
				t.Errorf("UnbindAll(q1) = %d, want 4", n)
			}
			if n := r.UnbindAll("q1"); n != 0 {
				t.Errorf("second UnbindAll(q1) = %d, want 0", n)
			}
			if r.HasDest("q1") || !r.HasDest("q2") {
				t.Error("HasDest wrong after UnbindAll")
			}
			checkBindings(t, r, []Binding[string]{{"q2", "k", nil}})
			if !r.Unbind("q2", "k", amqp.Table{}) {
				t.Error("Unbind with empty args of a nil-args binding failed")
			}
			if r.Len() != 0 || r.HasDest("q2") || len(r.Bindings()) != 0 {
				t.Error("router not empty at the end")
			}
			if got := r.Route("k", nil, nil); len(got) != 0 {
				t.Errorf("empty router routed to %v", got)
			}
		})
	}
}

func checkBindings(t *testing.T, r Router[string], want []Binding[string]) {
	t.Helper()
	got := r.Bindings()
	if len(got) != len(want) || r.Len() != len(want) {
		t.Fatalf("Bindings() = %v (Len %d), want %v", got, r.Len(), want)
	}
	for i := range got {
		if got[i].Dest != want[i].Dest || got[i].Key != want[i].Key || !got[i].Args.Equal(want[i].Args) {
			t.Fatalf("Bindings()[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestPointerDest uses pointer destinations, as the server does.
func TestPointerDest(t *testing.T) {
	type queue struct{ name string }
	q1, q2 := &queue{"a"}, &queue{"a"} // equal contents, distinct identities
	r := New[*queue](Topic)
	r.Bind(q1, "x.*", nil)
	r.Bind(q2, "x.#", nil)
	r.Bind(q1, "#", nil)
	got := r.Route("x.y", nil, nil)
	if len(got) != 2 || !slices.Contains(got, q1) || !slices.Contains(got, q2) {
		t.Errorf("Route = %v, want q1 and q2 once each", got)
	}
}

// TestRouteAppends checks that Route appends after what out already holds
// and de-duplicates only within the call.
func TestRouteAppends(t *testing.T) {
	for _, kind := range allKinds {
		r := New[string](kind)
		r.Bind("q1", "k", nil)
		r.Bind("q1", "k", amqp.Table{"z": nil})
		out := []string{"pre"}
		out = r.Route("k", amqp.Table{"z": "1"}, out)
		out = r.Route("k", amqp.Table{"z": "1"}, out)
		if !slices.Equal(out, []string{"pre", "q1", "q1"}) {
			t.Errorf("%v: Route twice = %v", kind, out)
		}
	}
}

// TestRouteNoAllocs checks that Route does not allocate when out has
// capacity, for every kind, once the scratch space has grown.
func TestRouteNoAllocs(t *testing.T) {
	headers := amqp.Table{"format": "pdf", "type": "report", "n": int32(3)}
	for _, kind := range allKinds {
		r := New[int](kind)
		for i := range 200 {
			switch kind {
			case Headers:
				r.Bind(i%50, "", amqp.Table{"x-match": "any", "format": "pdf", "n": int64(i % 5)})
			case Topic:
				r.Bind(i%50, []string{"a.b.c", "a.*.c", "#", "a.#", "*.b.*", "#.c"}[i%6], nil)
			default:
				r.Bind(i%50, "a.b.c", amqp.Table{"i": int64(i)})
			}
		}
		out := make([]int, 0, 64)
		allocs := testing.AllocsPerRun(100, func() {
			out = r.Route("a.b.c", headers, out[:0])
		})
		if allocs != 0 {
			t.Errorf("%v: Route allocates %.1f times per call", kind, allocs)
		}
		if len(out) != 50 {
			t.Errorf("%v: Route found %d destinations, want 50", kind, len(out))
		}
	}
}
