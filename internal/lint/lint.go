// Package lint holds the checks behind the house-rules test (lint_test.go): the rules the project
// enforces in review that staticcheck and gofmt do not know, written as go/ast and go/types walks
// so that a violation fails `go test ./...` instead of waiting for a reviewer.
//
// The rules:
//   - no time.Sleep in a _test.go file outside an allow-list (a test waits for a condition,
//     internal/wait.For, instead of sleeping for it);
//   - no bare X.mu.Unlock() on a server queue outside the queue's own files (server/queue*.go):
//     releasing a queue's lock has post-unlock work (dead-lettering, flow control), so it goes
//     through the queue's unlock method.
//
// gofmt and staticcheck (unused code among its checks, U1000) are run by the test itself.
package lint

import (
	"go/ast"
	"go/token"
	"go/types"
	"strconv"
)

// A Finding is one violation of a rule.
type Finding struct {
	Pos  token.Position
	Func string // the enclosing top-level declaration: "F", "T.M", or "" outside any function
	Text string
}

func (f Finding) String() string { return f.Pos.String() + ": " + f.Text }

// SleepCalls returns every reference to time.Sleep in f (a call, or the function taken as a
// value), found through the name f imports "time" under. It needs no type information.
func SleepCalls(fset *token.FileSet, f *ast.File) []Finding {
	var timeName string
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" || timeName == "_" {
		return nil
	}
	var out []Finding
	eachInDecl(f, func(decl string, n ast.Node) {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Sleep" {
			return
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName {
			out = append(out, Finding{Pos: fset.Position(sel.Pos()), Func: decl, Text: timeName + ".Sleep"})
		}
	})
	return out
}

// QueueUnlocks returns every call X.mu.Unlock() in f where X is a value of the named type
// pkgPath.typeName or a pointer to it (info must hold f's types and uses).
func QueueUnlocks(fset *token.FileSet, f *ast.File, info *types.Info, pkgPath, typeName string) []Finding {
	var out []Finding
	eachInDecl(f, func(decl string, n ast.Node) {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return
		}
		unlock, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || unlock.Sel.Name != "Unlock" {
			return
		}
		mu, ok := unlock.X.(*ast.SelectorExpr)
		if !ok || mu.Sel.Name != "mu" {
			return
		}
		if isNamed(info.TypeOf(mu.X), pkgPath, typeName) {
			out = append(out, Finding{Pos: fset.Position(call.Pos()), Func: decl, Text: types.ExprString(call.Fun) + "() on a " + typeName})
		}
	})
	return out
}

// isNamed reports whether t is pkgPath.name or a pointer to it.
func isNamed(t types.Type, pkgPath, name string) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := t.(*types.Named)
	if !ok {
		return false
	}
	obj := n.Obj()
	return obj.Name() == name && obj.Pkg() != nil && obj.Pkg().Path() == pkgPath
}

// eachInDecl calls fn for every node of f with the name of the top-level declaration it is in.
func eachInDecl(f *ast.File, fn func(decl string, n ast.Node)) {
	for _, d := range f.Decls {
		name := ""
		if fd, ok := d.(*ast.FuncDecl); ok {
			name = fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				name = recvName(fd.Recv.List[0].Type) + "." + name
			}
		}
		ast.Inspect(d, func(n ast.Node) bool {
			if n != nil {
				fn(name, n)
			}
			return true
		})
	}
}

func recvName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.IndexExpr: // a generic receiver T[P]
		return recvName(t.X)
	case *ast.IndexListExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return types.ExprString(e)
}
