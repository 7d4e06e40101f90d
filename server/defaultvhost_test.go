package server

import (
	"context"
	"testing"
)

// Options.DefaultVhost replaces "/" on a fresh store, with the default user's full permissions on
// it, as RabbitMQ's default_vhost.
func TestDefaultVhost(t *testing.T) {
	s, err := New(Options{DefaultVhost: "dev", DefaultUser: "admin", DefaultPass: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	var names []string
	for _, v := range s.Vhosts() {
		names = append(names, v.Name)
	}
	if len(names) != 1 || names[0] != "dev" {
		t.Fatalf("vhosts %q, want [dev]", names)
	}
	perms := s.Permissions()
	if len(perms) != 1 || perms[0].User != "admin" || perms[0].Vhost != "dev" || perms[0].Configure != ".*" {
		t.Fatalf("permissions %+v, want admin with .* on dev", perms)
	}
}
