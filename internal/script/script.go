// Package script reads the data-driven test scripts (exchange/testdata/*.txt,
// server/testdata/queue/*.txt): one command a line; blank lines and lines that are "#" or start
// with "# " are comments; tokens are separated by spaces, and a token in double quotes is a Go
// string literal (so "" is the empty string); "-> want" after a command is its expected result.
// What the commands mean is each test's own.
package script

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Line is one command of a script.
type Line struct {
	Pos     string   // file:line, for messages
	Cmd     string   // the text before "->"
	Tokens  []string // Cmd's tokens; Tokens[0] is the command
	Want    string   // the text after "->", with runs of spaces as one
	HasWant bool     // the line has "->"
}

// Lines reads the commands of file, failing t if it cannot be read or a token is malformed.
func Lines(t testing.TB, file string) []Line {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text == "#" || strings.HasPrefix(text, "# ") {
			continue
		}
		l := Line{Pos: file + ":" + strconv.Itoa(n)}
		var want string
		l.Cmd, want, l.HasWant = strings.Cut(text, "->")
		l.Tokens = Tokens(t, l.Pos, l.Cmd)
		if len(l.Tokens) == 0 {
			t.Fatalf("%s: no command before ->", l.Pos)
		}
		l.Want = strings.Join(strings.Fields(want), " ")
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	return out
}

// Tokens splits s at runs of spaces, unquoting the tokens in double quotes; pos names the line
// in a failure.
func Tokens(t testing.TB, pos, s string) []string {
	t.Helper()
	var out []string
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, `"`) {
			u, err := strconv.Unquote(f)
			if err != nil {
				t.Fatalf("%s: bad token %s: %v", pos, f, err)
			}
			f = u
		}
		out = append(out, f)
	}
	return out
}
