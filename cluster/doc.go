// Package cluster runs many Raft groups (go.etcd.io/raft/v3) on one Warren node and carries their
// messages between nodes. Nothing in the broker uses it yet: it is the engine under the meta group
// and the quorum queues to come (issue 16).
//
// # Host
//
// A Host owns the node's groups: one raft.RawNode per group, all driven by ONE goroutine (the
// loop), with their logs in the node's one store through cluster/raftlog. The loop takes, in any
// order: the tick (one time.Ticker for every group, HostOptions.TickInterval, 100 ms by default;
// raft's election timeout is ElectionTicks of them, heartbeats HeartbeatTicks), proposals, the
// peers' messages from the transport, the transport's reports (unreachable, snapshot status),
// and operations (create or remove groups). Whatever it touched is marked dirty, and a Ready cycle
// runs over the dirty groups:
//
//  1. collect the Ready of every dirty group with one;
//  2. persist all of them — entries, HardState, snapshots, the applied index, a state machine
//     snapshot and compaction — in ONE raftlog.WriteSync: one Pebble batch, synced when any
//     Ready has MustSync (new entries, a new term or vote) or a snapshot, so one fsync for every
//     group of the cycle; unsynced when only commit indexes moved (raft allows it; etcd does the
//     same);
//  3. only then send the cycle's messages (persist before send: etcd-io/raft's README contract;
//     acknowledging before the local fsync is etcd#14370). A message the transport cannot queue
//     is reported to raft at once (ReportUnreachable, ReportSnapshot failure);
//  4. hand each group's snapshot (Restore) and committed entries (Apply) to its StateMachine, and
//     answer this node's proposals among them with the state machine's results;
//  5. Advance, and keep a group dirty while it has more work.
//
// PreVote and CheckQuorum are on: a leader that cannot hear a quorum for an election timeout
// steps down, and a partitioned node cannot disrupt the others' term when it returns.
//
// # Proposals
//
// Propose(ctx, group, data) returns after the entry is committed and applied on THIS node, with
// its state machine's result. On a follower, raft forwards the proposal to the leader (proposal
// forwarding is on: there is no ErrNotLeader), and the result is this node's own state
// machine's when it applies the entry. The entry carries a ProposalID (node, sequence; the
// sequence starts at the wall clock at each start so a restarted node does not reuse ids), which
// the state machine sees in Entry.ID: a retry with the same id (ProposeID) must be recognised and
// not applied twice. Failures wrap exactly one of:
//
//   - ErrProposalDropped: the entry is in no log (no leader known — ErrNoLeader —, the group is not
//     on this node, raft refused it, the data does not fit in a frame — ErrTooLarge —, a follower
//     could not queue the forwarded proposal to the leader — ErrLeaderUnreachable —, the context
//     ended before the loop took it). Retry freely.
//   - ErrUnknownOutcome: raft took the entry, but the leader or term changed before this node
//     applied it (ErrLeaderChange), or the context ended, the group was removed or the host
//     stopped. It may still commit: retry with the same ProposalID.
//
// A forwarded proposal that the leader drops silently while leader and term stay the same only
// ends with the caller's context: callers must give Propose a deadline.
//
// ReadIndex(ctx, group) returns once this node has applied everything committed before the call
// (raft's ReadIndex, ReadOnlySafe: the leader confirms its leadership with a heartbeat round; a
// follower asks the leader): a read of the local state machine after it is linearizable.
//
// # Transport
//
// One TCP connection per pair of nodes, dialed by the node with the lower id from its listener's
// IP (net.Dialer.LocalAddr, port 0), used both ways. A handshake (hello: wire version, cluster
// name, from and to node ids; helloOK or helloErr with the reason) refuses a wrong cluster, a
// wrong node, a non-member or a node that should have been dialed instead. Then each side sends
// batch frames: a 4-byte length, a type byte, a count and, per message, its group id and its
// raftpb.Message encoding. A frame longer than MaxFrame (64 MiB), any malformed frame, or a
// message not from the peer to this node closes the connection. A snapshot travels as one MsgSnap
// in the stream: a state machine snapshot larger than MaxFrame cannot be sent (reported to raft as
// a failed snapshot; raft retries).
//
// A writer packs what is queued into a frame of up to 1024 messages and 4 MiB (a single larger
// message goes alone, up to MaxFrame). Send never blocks the loop: each peer has a bounded queue
// (QueueSize messages); when it is full, or the peer is not connected, the message is dropped and
// reported unreachable. A write that does not finish within WriteTimeout breaks the connection.
// The dialer redials with exponential backoff (BackoffMin to BackoffMax); the acceptor takes the
// newest connection the peer dialed. Messages queued when a connection breaks are dropped and
// reported. SetIsolated cuts a node off (fault tests).
//
// # Goroutines
//
//   - Host.run, the loop: started by NewHost, stopped and waited for by Close.
//   - Transport: the accept loop; one goroutine per accepted connection for its handshake; per
//     peer one goroutine that dials (or waits for the peer's connection) and then writes; per live
//     connection one reader. All are started by NewTransport or by each other, stopped by Close,
//     which waits for every one (Transport.wg).
//
// The readers hand messages to the loop through a bounded channel and block when it is full
// (pushing back on the peer's TCP stream), until the loop stops. The loop never blocks on a
// socket: Send only queues.
//
// # Locks
//
// No lock is held across a socket write, a store write or a call into raft or a state machine.
// The locks are leaves, never nested, except that raftlog.Log.mu is taken before a
// raftlog.Group.mu:
//
//   - Host.repMu: the transport's reports waiting for the loop.
//   - Host.statMu: the status snapshot per group that Status, Statuses and Leader read.
//   - Transport.mu: the connections in their handshake (closed by Close).
//   - peer.mu: the peer's current connection (closed by SetIsolated and Close), and the hand-over
//     of an accepted connection.
//   - raftlog.Log.mu, then raftlog.Group.mu (see that package).
//
// # Membership
//
// AddMember and RemoveMember change a group's voters with raft's single-step configuration
// change, answered once applied on this node; each change is followed by a snapshot (raft ignores
// a snapshot that does not name its recipient, so a member added later needs a newer one). A new
// member's node creates the group with the whole new membership as Voters before the change.
//
// # Not yet
//
// Lease reads, snapshot streaming in chunks, quiescing idle groups
// (every group ticks and heartbeats; heartbeats of one cycle share a frame per peer), TLS or
// authentication between nodes (the handshake only names cluster and node: a member is trusted,
// and raft panics, as in etcd, on messages that contradict its log, such as those of a node that
// lost its data and rejoined under its old id), pipelining the fsync with the next cycle (raft's
// AsyncStorageWrites), and running the state machines off the loop.
package cluster
