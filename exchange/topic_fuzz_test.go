package exchange

import (
	"slices"
	"strings"
	"testing"
)

// splitWords splits a topic key the way RabbitMQ does: the empty key has no
// words, otherwise every '.' separates two (possibly empty) words.
func splitWords(key string) []string {
	if key == "" {
		return nil
	}
	return strings.Split(key, ".")
}

// naiveTopicMatch is the reference matcher: a direct recursive reading of
// the topic rules, '*' exactly one word and '#' zero or more.
func naiveTopicMatch(pattern, key []string) bool {
	if len(pattern) == 0 {
		return len(key) == 0
	}
	switch pattern[0] {
	case "#":
		return naiveTopicMatch(pattern[1:], key) || (len(key) > 0 && naiveTopicMatch(pattern, key[1:]))
	case "*":
		return len(key) > 0 && naiveTopicMatch(pattern[1:], key[1:])
	default:
		return len(key) > 0 && key[0] == pattern[0] && naiveTopicMatch(pattern[1:], key[1:])
	}
}

func TestNaiveTopicMatch(t *testing.T) {
	// Keep the reference honest on the edge cases the trie is tested with.
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"", "", true}, {"#", "", true}, {"*", "", false}, {"#.#", "", true},
		{"a.#", "a", true}, {"#.a", "a", true}, {"a.*.#", "a", false}, {"a.*.#", "a.b", true},
		{"*.*", ".", true}, {"*", ".", false}, {"a..b", "a..b", true}, {"a.*.b", "a..b", true},
		{"a*", "ab", false}, {"#.b.#", "b", true}, {"#.*.#", "", false},
	}
	for _, tc := range tests {
		if got := naiveTopicMatch(splitWords(tc.pattern), splitWords(tc.key)); got != tc.want {
			t.Errorf("naive(%q, %q) = %v, want %v", tc.pattern, tc.key, got, tc.want)
		}
	}
}

// Limits that keep the exponential reference matcher fast on fuzz input.
const (
	fuzzMaxPatterns = 24
	fuzzMaxWords    = 10
)

// FuzzTopic compares the trie against naiveTopicMatch. patterns and keys are
// newline-separated lists; pattern i is bound to destination i%7 (so that
// destinations have several bindings and must be de-duplicated), then every
// key is routed, then every third binding is removed and the keys are routed
// again.
func FuzzTopic(f *testing.F) {
	f.Add("a.b.c\na.*.c\na.#.b\n#\n#.#\n#.b\n*.*\na.*\n*.b.c\na.#\n\n*.#\n#.*.#\n*\n#.b.#", "a.b.c\na.b\n\nb.c.c\noneword\na.a.a.a.a")
	f.Add("#\n*\n\n.\n*.*\na.\na..\n#.a\na.#", "\n.\na\na.\na..\n.a\n..")
	f.Add("#.#.#\n*.#.*\n#.*.#.*.#\na.#.#.b", "a.b\na.x.y.b\na\nb\na.b.c.d.e.f.g")
	f.Add("a*\n#a\n*.a*", "a*\nab\n*\n#\nx.a*")
	f.Add("stock.*.nyse\nstock.#\n#.nyse\nstock.usd.nyse", "stock.usd.nyse\nstock\nstock.eur\nnyse")
	f.Fuzz(func(t *testing.T, patterns, keys string) {
		ps := capLines(patterns, fuzzMaxPatterns)
		ks := capLines(keys, fuzzMaxPatterns)
		r := New[int](Topic)
		type bound struct {
			dest    int
			pattern string
		}
		var live []bound
		for i, p := range ps {
			if r.Bind(i%7, p, nil) {
				live = append(live, bound{i % 7, p})
			}
		}
		check := func(stage string) {
			for _, k := range ks {
				got := r.Route(k, nil, nil)
				checkNoDups(t, stage+" key "+k, got)
				var want []int
				for _, b := range live {
					if naiveTopicMatch(splitWords(b.pattern), splitWords(k)) && !slices.Contains(want, b.dest) {
						want = append(want, b.dest)
					}
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: route %q over %v = %v, want %v", stage, k, live, got, want)
				}
			}
		}
		check("bound")
		var kept []bound
		for i, b := range live {
			if i%3 == 0 {
				if !r.Unbind(b.dest, b.pattern, nil) {
					t.Fatalf("Unbind(%d, %q) failed", b.dest, b.pattern)
				}
			} else {
				kept = append(kept, b)
			}
		}
		live = kept
		if r.Len() != len(live) {
			t.Fatalf("Len = %d, want %d", r.Len(), len(live))
		}
		check("after unbind")
		for _, b := range live {
			r.Unbind(b.dest, b.pattern, nil)
		}
		live = nil
		check("empty")
		// Every trie node must have been pruned.
		rt := r.(*router[int])
		if n := rt.topic.root; len(n.children) != 0 || n.star != nil || n.hash != nil || len(n.bindings) != 0 {
			t.Fatalf("trie not pruned after removing every binding: %+v", n)
		}
	})
}

// capLines splits s on newlines, keeping at most n lines of at most
// fuzzMaxWords words each.
func capLines(s string, n int) []string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	for i, l := range lines {
		if w := splitWords(l); len(w) > fuzzMaxWords {
			lines[i] = strings.Join(w[:fuzzMaxWords], ".")
		}
	}
	return lines
}

// TestTopicAdversarial routes a long key through binding keys that make a
// backtracking matcher exponential; the automaton simulation visits each
// trie node at most once per word, so this completes at once.
func TestTopicAdversarial(t *testing.T) {
	r := New[int](Topic)
	r.Bind(1, "#.a.#.a.#.a.#.a.#.a.#.b", nil)
	r.Bind(2, "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#", nil)
	r.Bind(3, "*.#.*.#.*.#.*.#.*.#.c", nil)
	key := strings.Repeat("a.", 2000) + "c"
	got := r.Route(key, nil, nil)
	slices.Sort(got)
	if !slices.Equal(got, []int{2, 3}) {
		t.Errorf("Route = %v, want [2 3]", got)
	}
	if !naiveTopicMatch(splitWords("*.#.c"), splitWords(key)) {
		t.Error("reference disagrees")
	}
}
