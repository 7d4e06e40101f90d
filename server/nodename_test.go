package server

import (
	"context"
	"strings"
	"testing"
)

// Options.NodeName names the node wherever it is reported; unset, it is warren@<short host name>.
func TestNodeName(t *testing.T) {
	s, err := New(Options{NodeName: "warren@node-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if got := s.NodeName(); got != "warren@node-a" {
		t.Fatalf("NodeName %q, want warren@node-a", got)
	}
	if o := s.Overview(); o.Node != "warren@node-a" || o.ClusterName != "warren@node-a" {
		t.Fatalf("overview node %q cluster_name %q, want the node name", o.Node, o.ClusterName)
	}
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	if got := d.NodeName(); got != DefaultNodeName() || !strings.HasPrefix(got, "warren@") || strings.Contains(got, ".") {
		t.Fatalf("default NodeName %q (DefaultNodeName %q)", got, DefaultNodeName())
	}
}
