// Package server is the Warren broker: the only package with listening sockets and goroutines, besides
// the federation package's links (client connections to upstream brokers), which it owns.
//
// # Goroutines
//
// Server.Serve runs the accept loop (with Options.ConnectionMax it waits for a free slot before each
// Accept; a connection's Close gives its slot back, Shutdown wakes it). Every accepted connection gets a read loop (serveConn, which owns
// the connection's channels and all protocol state) and a write loop (outbound.run), both counted in
// Server.wg; the read loop waits for its write loop before it returns. A direct connection
// (DialDirect, direct.go: an in-process pipe for the plugins) gets the same two, counted the same
// way, and is closed by Shutdown like an accepted one. A STOMP connection (ServeSTOMP, stomp.go) has
// a read loop (stompConn.serve), a write loop (outbound.run, which also writes its heart-beats) and a
// receipt writer (stompConn.receiptLoop: it waits for the commit groups of receipted publishes in
// order, then queues their RECEIPT frames), all three counted in Server.wg; the read loop waits for
// the other two before it returns, and Shutdown closes STOMP connections too. Three more belong to the
// Server and are stopped by Shutdown after the last connection: the committer (commit.go, the only
// store writer), the pager (queue_pager.go, reads paged-out messages back), the disk alarm (alarm.go)
// and the memory alarm (alarm_mem.go, which under the alarm takes each queue.mu in turn, holding no
// other lock, to page its messages out).
// The committer's sync timer (armed Options.SyncInterval after an unsynced group, and only then)
// is a time.AfterFunc whose function only sets a flag and wakes the committer, without blocking;
// run stops it and waits for a running function (committer.timerFuncs) before it returns, which
// Shutdown waits for.
// Message dispatch to consumers runs on whichever goroutine made a delivery possible (a publisher's
// read loop, an acking consumer's read loop, a basic.consume): it encodes frames into the consumer's
// connection buffer under locks and never touches a socket then; the write loop does the I/O with no
// broker lock held. A read loop that queued deliveries (outbound.writeVia) may instead write them to
// the consumer's socket itself when its batch of frames ends (writeBatch.flush ->
// outbound.flushDirect, from conn.endBatch, with no lock held): one non-blocking write, only while
// no other goroutine writes that socket (it must acquire outbound.mu.writer, a writeClaim); the rest
// is left to the write loop.
// An MQTT connection (ServeMQTT, mqtt.go) has a read loop (serveMQTTConn), a write loop
// (outbound.run) and, started on first need, a settler (mqttConn.settleLoop, which settles the
// entries mqttSub.deliver took under a queue's lock without a PUBACK to wait for), all counted in
// Server.wg; the read loop waits for the others before it returns. Its PUBACKs wait for commit groups in a callback on the committer
// goroutine (mqttAckLedger). A connection taking a client id over waits for the old one's teardown.
// An MQTT 5 will with a delay is a time.AfterFunc that runs only while Server.timers is open.
// Web MQTT and Web STOMP (ServeWebMQTT, ServeWebSTOMP, ws.go): the ServeWeb* call runs an
// http.Server's accept loop (counted in Server.wg, like Serve; Shutdown closes its listener, then
// it closes the HTTP connections not yet upgraded); each request's handler goroutine is counted in
// Server.wg for the handshake and the hand-over, which registers the WebSocket as an MQTT or STOMP
// connection (the goroutines above, Shutdown closing it the same way) plus its reader (wsConn.pump,
// counted in Server.wg), which copies messages into a net.Pipe the read loop reads and ends when the
// WebSocket or the pipe closes (wsConn.Close closes the pipe), and once closed its closer (the close
// handshake, at most 3 s, then the TCP connection is closed), also counted in Server.wg. No lock is
// held across any of these.
// The statistics sampler (stats.go) is started by the first Serve and stopped by Shutdown, also
// counted in Server.wg. The federation manager (federation.go; the federation package) is started
// by New and owns its goroutine and one goroutine per link, which Manager.Close waits for; Shutdown
// closes it first, while the broker still takes the links' in-process publishes. The broker only
// signals the manager (a non-blocking send, or a leaf lock), from any goroutine and under any lock. Queue timers (queue_ttl.go: message expiry, x-expires) are time.AfterFunc
// functions that run only while Server.timers is open; Shutdown closes it, waits for the running
// ones and stops every queue's timer, before it stops the committer. Dead-lettering (queue_deadletter.go)
// also runs on whichever goroutine removed the message: queue.unlock republishes the queue's dead
// list after releasing queue.mu, with no lock held, so a queue's lock is never taken under another's.
// A stream (stream*.go) has one reader goroutine per consumer, counted in its streamQueue.readers:
// it reads committed entries from the store in batches with no lock held and delivers them to the
// consumer's target holding the consumer's streamConsumer.dmu. removeConsumer halts it (it returns
// at its next look); markDeleted and stop (Shutdown, under vhost.mu) halt every reader of the stream
// and wait for them, which is safe because a reader never waits for vhost.mu or a lock held under it.
// The committer runs a stream's chunkCommitted callback after a group is applied (no committer lock
// held): it takes the stream's mu and wakes the readers with non-blocking sends.
// A stream with key-based compaction (stream_compact.go) has at most one compaction goroutine, also
// counted in streamQueue.readers (started by the committer's callback for a roll's group, or by
// the stream's start after recovery): it reads the store with no lock held, adds its batch under
// the stream's mu (then the committer's mu, as a publisher does) and waits for that group with no
// lock held; stop sets its stopping flag, which it checks between entries.
// A stream consumer with server-side offset tracking (stream_track.go) writes its offset from the
// channel's ack path: the stream's mu, then the committer's mu; its tracker's own mutex is never
// held across either.
// Quorum queues (queue_quorum*.go) add the Raft host (cluster.Host: its loop goroutine and its
// transport's, started with the first quorum queue and closed by Shutdown after the last connection
// and before the committer) and one worker per quorum queue (quorumQueue.run, counted in
// quorumHost.wg, stopped by the queue's deletion or by Shutdown): the worker proposes the queue's
// batches and waits for them, republishes its dead letters and proposes its ticks, holding no lock
// while it waits. The host's loop applies committed entries to each queue's state machine under
// that queue's queue.mu and delivers under it, as a classic queue's dispatch does; nothing waits for
// the loop while holding a queue.mu, channel.mu or vhost lock (publishers, consumers and basic.get
// wait for a proposal holding no lock).
// On a cluster member the meta group (meta.go) adds one applier goroutine (metaApplier.run, started
// by New after recovery, stopped and waited for by Shutdown before the Raft host): the host's loop
// hands it the committed definition changes (never waiting for it), and it applies them through
// the direct paths in log order, taking the locks those take. A definition change's proposer (a
// connection's read loop, an API handler) waits for its command holding no broker lock but its
// channel.loopMu, bounded by ClusterOptions.ProposeTimeout. A replicated quorum queue
// (queue_quorum_replica.go) is declared by that applier (declareQuorumReplica: v.meta, then v.mu
// and the committer's write), which never waits for the host's loop: nothing may hold a vhost's
// meta lock while waiting for the host.
// A stream protocol connection (stream_front.go) has a read loop, started by the accept loop (serve,
// serveTracked) on the server's WaitGroup and tracked in Server.mu.sconns (Shutdown closes them after the
// AMQP connections), and a writer goroutine the read loop starts and waits for. Nothing else writes
// its socket: publish confirms (committer callbacks) and chunks (its subscriptions' stream readers,
// through streamSub.deliver and flushBatch) are appended to its out buffer and the writer is woken
// with a non-blocking send; the writer cuts the subscriptions' pending chunks and kicks their readers
// with no lock held.
//
// # Locks
//
// This table is the one statement of the broker's locks and their order (docs/DESIGN.md links
// here). A goroutine may take a lock only while holding nothing but locks listed in its third
// column; those columns follow one order, top to bottom, so no cycle is possible. "Leaf": nothing
// is taken while holding it.
//
//	lock                  guards                                          may be held while taking it
//	--------------------  ----------------------------------------------  -----------------------------------
//	Server.adm.write      administrative changes (users, permissions,     nothing
//	                      vhosts, limits), serialised; held across their
//	                      store write (admin_users.go)
//	Server.pol.change     policy changes, serialised; held across their   Server.adm.write (a deleted vhost
//	                      store write and their re-application            drops its policies)
//	                      (policy.go)
//	Server.params.change  runtime parameter changes, serialised; held     Server.adm.write (a deleted vhost
//	                      across their store write and the component's    drops its parameters)
//	                      Set/Clear hooks (params.go: hooks may declare
//	                      through the API, never change admin state)
//	channel.loopMu        the channel's read-loop state (closing, pub,    nothing (the read loop handling a
//	                      tx) while a frame is handled or the consumer    frame; the consumer-timeout timer)
//	                      timeout closes the channel
//	sacCoordinator.super  super stream creation and deletion,             nothing (a stream connection's read
//	                      serialised; held across their declares, binds   loop, the management API)
//	                      and deletes (stream_super.go)
//	vhost.meta            a vhost's metadata changes (declare, delete,    Server.adm.write, Server.pol.change,
//	                      bind, unbind), serialised; held across their    Server.params.change, channel.loopMu,
//	                      store write and fsync (vhost.go, persist.go)    sacCoordinator.super
//	Server.vhosts         the vhost table, Server.vhosts.m                the above
//	vhost.mu              vhost.mu.exchanges, vhost.mu.queues; taken      the above
//	                      shared by routing and lookups, exclusively
//	                      only to install a metadata change (briefly,
//	                      never across I/O)
//	exchange.mu           the exchange's router (routing reads it, a      the above
//	                      metadata change installs a binding under it)
//	queue.mu              a queue implementation's state (the classic     the above (never another queue.mu:
//	                      queue's classicQueue.mu: queue.go, queue_*.go;  dead-letters go after queue.unlock)
//	                      a stream's streamQueue.mu: stream*.go; a        or nothing (the Raft host's loop
//	                      quorum queue's quorumQueue.mu: its fifo.State,  applying a quorum queue's entries)
//	                      subscriptions, held messages);
//	                      taken without vhost.mu on the publish path;
//	                      a classic queue's is released only by
//	                      queue.unlock; a queue's
//	                      identity (queueMeta) is immutable, no lock
//	streamConsumer.dmu    a stream consumer's deliveries (the target's    the above but queue.mu (its reader
//	                      deliver and queueDeleted) and its gone flag     holds nothing else; markDeleted
//	                      (stream_reader.go)                              holds vhost.mu)
//	streamConn.subs       a stream connection's subscriptions             nothing (read loop, writer, cancelled)
//	                      (stream_front.go)
//	streamSub.mu          a stream subscription's credit, pending chunk   streamConsumer.dmu (deliver),
//	                      and gone flag (stream_front.go)                 streamConn.subs (the writer)
//	sacCoordinator.mu     the stream protocol's single active consumer    nothing, or sacCoordinator.super (a
//	                      groups (stream_sac.go)                          deleted partition's subscriptions
//	                                                                      are cancelled and leave their group)
//	sacConn.mu            a stream connection's consumer updates          sacCoordinator.mu (sending one)
//	                      awaiting their answer (stream_sac.go)
//	channel.mu            the channel's consumers, delivery tags,         the above (a delivery target's own
//	                      unacked deliveries, credit                      lock: taken under queue.mu or
//	                                                                      streamConsumer.dmu by
//	                                                                      deliveryTarget.deliver)
//	mqttConn.mu           an MQTT connection's consumers, in-flight       the above (taken under queue.mu by
//	                      deliveries, packet ids, subscriptions and       mqttSub.deliver, like channel.mu)
//	                      their options (mqtt.go, mqtt_sub.go)
//	stompConn.mu          a STOMP connection's delivery tags, unacked     the above but channel.mu (the STOMP
//	                      messages, live subscriptions (stomp_sub.go)     subscription's deliver, under queue.mu)
//	confirmLedger.mu      the confirms sent and to nack (confirm.go)      the above
//	mqttAckLedger.mu      an MQTT connection's PUBACKs waiting for their  the above (the committer's callback
//	                      commit groups (mqtt_publish.go)                 or the read loop)
//	outbound.mu           the pending write buffer and the writeClaim     the above
//	                      (outbound.go); an MQTT connection's topic
//	                      aliases to the client (its write closures)
//	leaves                committer.mu, pager.mu, resourceAlarms.mu,      anything above
//	                      streamConn.out (a stream connection's out buffer),
//	                      streamConn.adm (what management shows of it),
//	                      Server.mu, Server.timers.mu, Server.adm.mu
//	                      (users and their limits, permissions, vhost
//	                      metadata, global parameters),
//	                      Server.pol.mu (the policy and operator policy maps),
//	                      Server.params.mu (the parameter maps),
//	                      Server.mqtt.mu (MQTT client ids, delayed wills, QoS 2 state of
//	                      sessions no connection holds; reads the store on first use,
//	                      mqtt_qos2.go), retainedStore.mu (MQTT retained
//	                      messages; takes committer.mu, and reads the store on a vhost's
//	                      first use),
//	                      federation.Manager.mu and its links' mu (the
//	                      federation package; signalled under vhost locks),
//	                      Server.replies.mu (replyto.go),
//	                      loginLimiter.mu (it logs after releasing it),
//	                      conn.adm.mu (a connection's channel registry),
//	                      connRates.mu (the sampler's),
//	                      quorumQueue.pmu (a quorum queue's pending batch),
//	                      quorumHost.mu, quorumHost.peers.mu (members' reachability),
//	                      and cluster.Host's own locks
//	                      (cluster/doc.go)
//
// Two locks serialise writers and are held across a store write, each with a brief lock for the
// readers beside it: Server.adm.write with Server.adm.mu (connection.open and every publish's
// permission check read the maps), and vhost.meta with vhost.mu (every publish routes under it).
// The writer decides and writes holding the serialising lock alone, reading the state without the
// reader lock (only writers change it), then takes the reader lock to install the change. A
// metadata change that changes nothing (a redeclare with equal arguments, a re-bind) writes nothing.
//
// No lock is held across socket I/O. Store I/O happens on the committer and pager goroutines and
// in recovery, with no broker lock held; a client waits for a metadata fsync holding vhost.meta
// alone (and channel.loopMu, as for any frame it handles), an administrative change for its own
// under Server.adm.write, a policy change under Server.pol.change. A policy change re-applies the
// policies to the vhost's queues and exchanges one lock at a time (vhost.mu, then each queue.mu);
// a declare computes its entity's policy under vhost.mu as it installs it, so it sees either the
// new policies or is listed by the re-application.
//
// A read loop paused by publisher flow control (queue_flow.go) waits at the top of its loop, between
// frames, holding no lock; queues release it under queue.mu by closing a channel. A write loop that
// took a buffer past outboundLimit (outbound.go) runs dispatch for its connection's consumers
// (conn.kickAll) after the write, holding no lock, like any other goroutine that enabled
// deliveries. A TLS listener's certificates (tls.go) are an atomic pointer swapped by Reload: no
// lock. Management snapshots (admin*.go) take each lock briefly, in this order, and copy plain
// values out; statistics are atomics, so the hot paths take no lock for them.
package server
