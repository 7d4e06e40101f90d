package server

import (
	"fmt"

	"github.com/warrenmq/warren/amqp"
)

// Hooks for the external tests of this package (package server_test): the replicated quorum
// queues are declared by the meta group; these tests declare them on each member directly.

// DeclareQuorumReplica declares quorum queue name of vhost on s as a member of group over voters
// (declareQuorumReplica).
func DeclareQuorumReplica(s *Server, vhost, name string, args map[string]any, group uint64, voters []uint64) error {
	v := s.vhost(vhost)
	if v == nil {
		return fmt.Errorf("no vhost %q", vhost)
	}
	_, err := v.declareQuorumReplica(&amqp.QueueDeclare{Queue: name, Durable: true, Arguments: amqp.Table(args)}, group, voters)
	return err
}

// SetClusterIsolated cuts s off from the other members (on) or reconnects it.
func SetClusterIsolated(s *Server, on bool) error {
	h, err := s.qq.host()
	if err != nil {
		return err
	}
	if tr := h.Transport(); tr != nil {
		tr.SetIsolated(on)
	}
	return nil
}
