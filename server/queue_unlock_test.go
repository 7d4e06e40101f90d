package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bareQueueUnlocks returns the places in src where a queue's lock is released by q.mu.Unlock()
// instead of q.unlock(): a call X.mu.Unlock() where X is a *classicQueue receiver or parameter, or a
// variable named q or tq (the names queues go by in this package), outside queue.unlock itself.
func bareQueueUnlocks(fset *token.FileSet, f *ast.File) []string {
	var out []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		queueVars := map[string]bool{"q": true, "tq": true}
		isQueue := func(t ast.Expr) bool {
			st, ok := t.(*ast.StarExpr)
			if !ok {
				return false
			}
			id, ok := st.X.(*ast.Ident)
			return ok && id.Name == "classicQueue"
		}
		var fields []*ast.Field
		if fn.Recv != nil {
			fields = append(fields, fn.Recv.List...)
		}
		fields = append(fields, fn.Type.Params.List...)
		for _, fl := range fields {
			if isQueue(fl.Type) {
				for _, n := range fl.Names {
					queueVars[n.Name] = true
				}
			}
		}
		if fn.Name.Name == "unlock" && fn.Recv != nil && isQueue(fn.Recv.List[0].Type) {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Unlock" {
				return true
			}
			mu, ok := sel.X.(*ast.SelectorExpr)
			if !ok || mu.Sel.Name != "mu" {
				return true
			}
			if id, ok := mu.X.(*ast.Ident); ok && queueVars[id.Name] {
				out = append(out, fset.Position(call.Pos()).String())
			}
			return true
		})
	}
	return out
}

// A queue's lock is released only by q.unlock, which finishes the hold's pending work (waking
// paused publishers, republishing dead letters); a bare q.mu.Unlock() would skip it.
func TestQueueUnlockOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, at := range bareQueueUnlocks(fset, f) {
			t.Errorf("%s: q.mu.Unlock() releases a queue's lock without its pending work; use q.unlock()", at)
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files", checked)
	}
	// The check finds what it bans.
	const bad = `package server
func (q *classicQueue) f() { q.mu.Lock(); q.mu.Unlock() }
func g(x *classicQueue) { x.mu.Lock(); defer x.mu.Unlock() }
func (q *classicQueue) unlock() { q.mu.Unlock() }
func h(c *conn) { c.mu.Unlock() }
`
	f, err := parser.ParseFile(fset, "bad.go", bad, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := bareQueueUnlocks(fset, f); len(got) != 2 {
		t.Fatalf("the check found %v in the bad sample, want 2 places", got)
	}
}
