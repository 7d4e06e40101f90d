package exchange

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/internal/script"
)

// TestDataDriven runs the scripts in testdata/*.txt, in internal/script's format (a command a
// line, "# " comments, quoted tokens as Go string literals, "-> want").
//
//	kind <direct|fanout|topic|headers>       start a new router
//	bind <dest> <key> [k=v ...] [-> bool]     Bind with string args (default expect true)
//	unbind <dest> <key> [k=v ...] -> <bool>   Unbind
//	has <dest> <key> [k=v ...] -> <bool>      Has
//	unbindall <dest> -> <n>                   UnbindAll
//	len -> <n>                                Len
//	route <key> -> [dest ...]                 Route; the set of destinations, no duplicates
func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	var r Router[string]
	for _, l := range script.Lines(t, file) {
		pos, cmd, toks, want, hasWant := l.Pos, l.Cmd, l.Tokens, l.Want, l.HasWant
		if toks[0] != "kind" && r == nil {
			t.Fatalf("%s: no kind yet", pos)
		}
		switch toks[0] {
		case "kind":
			k, ok := ParseKind(toks[1])
			if !ok {
				t.Fatalf("%s: bad kind %q", pos, toks[1])
			}
			r = New[string](k)
		case "bind", "unbind":
			args := scriptArgs(t, pos, toks[3:])
			var got bool
			if toks[0] == "bind" {
				got = r.Bind(toks[1], toks[2], args)
				if !hasWant {
					want = "true"
				}
			} else {
				got = r.Unbind(toks[1], toks[2], args)
			}
			if strconv.FormatBool(got) != want {
				t.Errorf("%s: %s = %v, want %s", pos, cmd, got, want)
			}
		case "has":
			got := r.Has(toks[1], toks[2], scriptArgs(t, pos, toks[3:]))
			if strconv.FormatBool(got) != want {
				t.Errorf("%s: %s = %v, want %s", pos, cmd, got, want)
			}
		case "unbindall":
			if got := r.UnbindAll(toks[1]); strconv.Itoa(got) != want {
				t.Errorf("%s: %s = %d, want %s", pos, cmd, got, want)
			}
		case "len":
			if got := r.Len(); strconv.Itoa(got) != want {
				t.Errorf("%s: len = %d, want %s", pos, got, want)
			}
		case "route":
			got := r.Route(toks[1], nil, nil)
			checkNoDups(t, pos, got)
			exp := script.Tokens(t, pos, want)
			slices.Sort(got)
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				t.Errorf("%s: route %q = %v, want %v", pos, toks[1], got, exp)
			}
		default:
			t.Fatalf("%s: unknown command %q", pos, toks[0])
		}
	}
}

func scriptArgs(t *testing.T, pos string, toks []string) amqp.Table {
	if len(toks) == 0 {
		return nil
	}
	args := amqp.Table{}
	for _, kv := range toks {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("%s: bad argument %q", pos, kv)
		}
		args[k] = v
	}
	return args
}

func checkNoDups[D comparable](t *testing.T, ctx string, got []D) {
	t.Helper()
	seen := make(map[D]bool, len(got))
	for _, d := range got {
		if seen[d] {
			t.Errorf("%s: destination %v routed twice in %v", ctx, d, got)
		}
		seen[d] = true
	}
}
