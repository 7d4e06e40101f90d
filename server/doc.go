// Package server is the Warren broker: the only package with sockets and goroutines.
//
// # Goroutines
//
// Server.Serve runs the accept loop. Every accepted connection gets a read loop (serveConn, which owns
// the connection's channels and all protocol state) and a write loop (outbound.run), both counted in
// Server.wg; the read loop waits for its write loop before it returns. Three more belong to the
// Server and are stopped by Shutdown after the last connection: the committer (commit.go, the only
// store writer), the pager (pager.go, reads paged-out messages back) and the disk alarm (alarm.go).
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
// no other goroutine writes that socket (outbound.mu.writing); the rest is left to the write loop.
// The statistics sampler (stats.go) is started by the first Serve and stopped by Shutdown, also
// counted in Server.wg. Queue timers (ttl.go: message expiry, x-expires) are time.AfterFunc
// functions that run only while Server.timers is open; Shutdown closes it, waits for the running
// ones and stops every queue's timer, before it stops the committer. Dead-lettering (deadletter.go)
// also runs on whichever goroutine removed the message: queue.unlock republishes the queue's dead
// list after releasing queue.mu, with no lock held, so a queue's lock is never taken under another's.
//
// # Lock order
//
// A goroutine may take these locks only in this order (a later one while holding an earlier one):
//
//	channel.loopMu -> Server.vhostsMu -> vhost.mu -> exchange.mu -> queue.mu -> channel.mu -> confirmLedger.mu -> outbound.mu
//
// Server.adm.write (admin_users.go) serialises administrative changes (users, permissions, vhosts,
// limits): it is taken before everything else, Server.pol.change included (deleting a vhost drops
// its policies), and held across the change's store write; Server.adm.mu, which connection.open
// and every publish's permission check read, is held only to read or change the maps, never
// across I/O.
//
// Server.pol.change (policy.go) serializes policy changes: it is taken before any of the locks above
// and held while the change is stored and re-applied to the vhost's queues and exchanges (which
// takes vhost.mu and each queue.mu in turn, never two at once). Server.pol.mu, guarding the policy
// map, is a leaf (declares read it under vhost.mu).
//
// channel.loopMu is held by the read loop while it handles one of the channel's frames, and by the
// channel's consumer-timeout timer (consumer_timeout.go) while it closes the channel; nothing else
// takes it, and never under another lock.
//
// A read loop paused by publisher flow control (flow.go) waits at the top of its loop, between
// frames, holding no lock; queues release it under queue.mu by closing a channel. A write loop that
// took a buffer past outboundLimit (outbound.go) runs dispatch for its connection's consumers
// (conn.kickAll) after the write, holding no lock, like any other goroutine that enabled deliveries.
//
// committer.mu, pager.mu, diskAlarm.mu, Server.replies.mu (direct reply-to, replyto.go) and
// loginLimiter.mu (failed logins per address, loginlimit.go; it logs only after releasing it) are
// leaves: taken under any of the above, nothing under them. A TLS listener's certificates
// (tls.go) are an atomic pointer swapped by Reload: no lock.
// exchange.mu is only ever held around its router (it never waits on a queue), so routing takes it
// alone; queue.mu is taken without vhost.mu on the publish path. Server.mu is a leaf: nothing is taken
// while holding it. So is Server.timers.mu. So are Server.adm.mu (users, permissions, vhost metadata),
// conn.adm.mu (a connection's channel registry, taken under channel.mu by teardown) and
// the sampler's connRates.mu. Management snapshots (admin*.go) take each lock briefly, in this order,
// and copy plain values out; statistics are atomics, so the hot paths take no lock for them.
// No lock is held across socket I/O. Store I/O happens only on the committer and
// pager goroutines and in recovery, with no broker lock held; a declare waits for its metadata fsync
// under vhost.mu (persist.go), and an administrative change (users, vhosts, permissions) for its
// own under Server.adm.write alone (a policy change under Server.pol.change).
package server
