package exchange

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmq/warren/amqp"
)

// TestRouteProperty drives every kind with random binds, unbinds and routes
// and checks two properties of each Route: no destination is returned twice,
// and the destinations are exactly those of the bindings a reference
// predicate accepts. The reference for headers reuses headerSpec, whose
// rules TestHeadersMatch pins down; here the point is the bookkeeping.
func TestRouteProperty(t *testing.T) {
	words := []string{"a", "b", "", "*", "#"}
	randKey := func(rng *rand.Rand, wildcards bool) string {
		n := rng.IntN(4)
		ws := make([]string, n)
		for i := range ws {
			if wildcards {
				ws[i] = words[rng.IntN(len(words))]
			} else {
				ws[i] = words[rng.IntN(3)]
			}
		}
		return strings.Join(ws, ".")
	}
	hkeys := []string{"h1", "h2", "x-h"}
	hvals := []any{nil, "v", int32(1), int64(1), 1.0}
	randTable := func(rng *rand.Rand, binding bool) amqp.Table {
		t := amqp.Table{}
		if binding {
			t["x-match"] = []string{"all", "any", "all-with-x", "any-with-x"}[rng.IntN(4)]
		}
		for _, k := range hkeys {
			if rng.IntN(2) == 0 {
				t[k] = hvals[rng.IntN(len(hvals))]
			}
		}
		return t
	}
	type bound struct {
		dest int
		key  string
		args amqp.Table
	}
	matches := func(kind Kind, b bound, key string, headers amqp.Table) bool {
		switch kind {
		case Direct:
			return b.key == key
		case Fanout:
			return true
		case Topic:
			return naiveTopicMatch(splitWords(b.key), splitWords(key))
		default:
			spec := parseHeaderSpec(b.args)
			return spec.match(headers)
		}
	}
	for _, kind := range allKinds {
		t.Run(kind.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(kind)))
			r := New[int](kind)
			var live []bound
			out := make([]int, 0, 4) // small on purpose: Route must grow it correctly
			for step := range 5000 {
				switch op := rng.IntN(10); {
				case op < 4: // bind
					b := bound{dest: rng.IntN(12), key: randKey(rng, kind == Topic)}
					if kind == Headers || rng.IntN(4) == 0 {
						b.args = randTable(rng, kind == Headers)
					}
					exists := slices.ContainsFunc(live, func(x bound) bool {
						return x.dest == b.dest && x.key == b.key && x.args.Equal(b.args)
					})
					if got := r.Bind(b.dest, b.key, b.args); got == exists {
						t.Fatalf("step %d: Bind(%v) = %v with exists=%v", step, b, got, exists)
					}
					if !exists {
						live = append(live, b)
					}
				case op < 6 && len(live) > 0: // unbind
					i := rng.IntN(len(live))
					b := live[i]
					if !r.Unbind(b.dest, b.key, b.args) {
						t.Fatalf("step %d: Unbind(%v) failed", step, b)
					}
					live = slices.Delete(live, i, i+1)
				case op == 6: // unbind all
					d := rng.IntN(12)
					n := len(live)
					live = slices.DeleteFunc(live, func(x bound) bool { return x.dest == d })
					if got := r.UnbindAll(d); got != n-len(live) {
						t.Fatalf("step %d: UnbindAll(%d) = %d, want %d", step, d, got, n-len(live))
					}
				default: // route
					key := randKey(rng, false)
					headers := randTable(rng, false)
					out = r.Route(key, headers, out[:0])
					checkNoDups(t, "route", out)
					var want []int
					for _, b := range live {
						if matches(kind, b, key, headers) && !slices.Contains(want, b.dest) {
							want = append(want, b.dest)
						}
					}
					got := slices.Clone(out)
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Fatalf("step %d: Route(%q, %v) = %v, want %v", step, key, headers, got, want)
					}
				}
				if r.Len() != len(live) {
					t.Fatalf("step %d: Len = %d, want %d", step, r.Len(), len(live))
				}
			}
			// Bindings is the insertion order of the live bindings.
			bs := r.Bindings()
			if len(bs) != len(live) {
				t.Fatalf("Bindings has %d, want %d", len(bs), len(live))
			}
			for i, b := range bs {
				if b.Dest != live[i].dest || b.Key != live[i].key || !b.Args.Equal(live[i].args) {
					t.Fatalf("Bindings()[%d] = %v, want %v", i, b, live[i])
				}
			}
			for d := range 12 {
				want := slices.ContainsFunc(live, func(x bound) bool { return x.dest == d })
				if r.HasDest(d) != want {
					t.Errorf("HasDest(%d) = %v, want %v", d, !want, want)
				}
			}
		})
	}
}
