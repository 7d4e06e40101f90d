package server

import "github.com/warrenmq/warren/amqp"

// declareQuorumReplica creates this node's member of a quorum queue the meta group declared
// (meta_admin.go): the queue with its cluster-wide Raft group id (its store id too) and the
// group's voters. A minimal version (issue 16's meta group work): the queue is a quorum queue
// whose group has those voters; forwarding, leader placement and membership are the quorum
// queue work's.
func (v *vhost) declareQuorumReplica(d *amqp.QueueDeclare, group uint64, voters []uint64) (*queue, error) {
	v.srv.qq.setVoters(group, voters)
	return v.declareQueueOn(nil, d, &metaApply{group: group})
}
