package server

import (
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Statistics for the management API and Prometheus.
//
// Every counted object (the server, a vhost, an exchange, a queue, a channel) has a statSet: atomic
// counters that the hot paths add to without taking any lock, and per-second rates that the sampler
// goroutine computes every Options.StatsInterval from the change since its previous sample. Gauges
// whose rate the API reports (queue lengths, byte counts) are copied into the same set by the
// sampler before it samples. Readers get counts and rates with atomic loads.

// stat indexes a statSet.
type stat int

const (
	sPublish          stat = iota // messages published (channel, vhost, server); enqueued (queue)
	sPublishIn                    // exchange: messages published to it
	sPublishOut                   // exchange: messages it routed to queues (one per queue)
	sConfirm                      // publisher confirms (basic.ack) earned
	sReturnUnroutable             // mandatory and unroutable: returned
	sDropUnroutable               // not mandatory and unroutable: dropped
	sRouted                       // server: messages routed to at least one queue
	sReceivedConfirm              // server: messages published on channels in confirm mode
	sDeliver                      // deliveries to consumers that must ack
	sDeliverNoAck                 // deliveries to no-ack consumers
	sGet                          // basic.get answered with a message, ack required
	sGetNoAck                     // basic.get answered with a message, no ack
	sGetEmpty                     // basic.get answered with get-empty
	sAck                          // messages acknowledged
	sRedeliver                    // deliveries and gets of redelivered messages
	sRecvOct                      // bytes received (connections, summed per vhost and server)
	sSendOct                      // bytes sent
	gMessages                     // gauge copied by the sampler: ready + unacked
	gReady                        // gauge: ready messages
	gUnacked                      // gauge: unacknowledged messages
	sConnCreated                  // server churn counters
	sConnClosed
	sChanCreated
	sChanClosed
	sQueueCreated
	sQueueDeclared
	sQueueDeleted
	nStats
)

// statSet is a set of counters and their rates. The zero value is ready to use.
type statSet struct {
	n    [nStats]atomic.Int64
	rate [nStats]atomic.Uint64 // math.Float64bits of the per-second rate; written by the sampler

	// prev is the sampler's previous sample; only the sampler goroutine touches it.
	prev   *[nStats]int64
	prevAt time.Time
}

func (s *statSet) add(k stat, d int64) { s.n[k].Add(d) }
func (s *statSet) inc(k stat)          { s.n[k].Add(1) }
func (s *statSet) get(k stat) int64    { return s.n[k].Load() }
func (s *statSet) rateOf(k stat) float64 {
	return math.Float64frombits(s.rate[k].Load())
}

// sample computes the rates since the previous sample (called by the sampler only).
func (s *statSet) sample(now time.Time) {
	var cur [nStats]int64
	for i := range cur {
		cur[i] = s.n[i].Load()
	}
	if s.prev != nil {
		if dt := now.Sub(s.prevAt).Seconds(); dt > 0 {
			for i := range cur {
				s.rate[i].Store(math.Float64bits(float64(cur[i]-s.prev[i]) / dt))
			}
		}
	} else {
		s.prev = new([nStats]int64)
	}
	*s.prev, s.prevAt = cur, now
}

// Stat is one counter with its per-second rate.
type Stat struct {
	Count int64
	Rate  float64
}

func (s *statSet) stat(k stat) Stat { return Stat{Count: s.get(k), Rate: s.rateOf(k)} }

// MessageStats are the message counters of an object, as the management API's message_stats.
// Which of them apply depends on the object (an exchange has only PublishIn and PublishOut).
type MessageStats struct {
	Publish, PublishIn, PublishOut, Confirm, ReturnUnroutable, DropUnroutable Stat
	Deliver, DeliverNoAck, Get, GetNoAck, GetEmpty, Ack, Redeliver            Stat
}

// DeliverGet is the sum of deliveries and gets (RabbitMQ's deliver_get).
func (m MessageStats) DeliverGet() Stat {
	return Stat{
		Count: m.Deliver.Count + m.DeliverNoAck.Count + m.Get.Count + m.GetNoAck.Count,
		Rate:  m.Deliver.Rate + m.DeliverNoAck.Rate + m.Get.Rate + m.GetNoAck.Rate,
	}
}

func (s *statSet) messageStats() MessageStats {
	return MessageStats{
		Publish: s.stat(sPublish), PublishIn: s.stat(sPublishIn), PublishOut: s.stat(sPublishOut),
		Confirm: s.stat(sConfirm), ReturnUnroutable: s.stat(sReturnUnroutable), DropUnroutable: s.stat(sDropUnroutable),
		Deliver: s.stat(sDeliver), DeliverNoAck: s.stat(sDeliverNoAck), Get: s.stat(sGet), GetNoAck: s.stat(sGetNoAck),
		GetEmpty: s.stat(sGetEmpty), Ack: s.stat(sAck), Redeliver: s.stat(sRedeliver),
	}
}

// --- hot-path counting (one call per event from channel_basic.go) ---

// countPublish records a publish that was routed to qs (none: unroutable, returned if mandatory).
func (ch *channel) countPublish(ex *exchangeEntity, qs []*queue, mandatory, refused bool) {
	v, g := ch.vhost(), &ch.conn.srv.adm.stats
	unroutable := sDropUnroutable
	if mandatory {
		unroutable = sReturnUnroutable
	}
	countRoute(&ch.stats.statSet, v, ex, qs, unroutable)
	if ch.confirm {
		g.inc(sReceivedConfirm)
		if !refused {
			ch.stats.inc(sConfirm)
			v.stats.inc(sConfirm)
			g.inc(sConfirm)
		}
	}
}

// countRoute records a publish into ex routed to qs (none: counted as unroutable) on the vhost,
// the broker, the exchange, the queues and, if not nil, the channel's counters.
func countRoute(ch *statSet, v *vhost, ex *exchangeEntity, qs []*queue, unroutable stat) {
	g := &v.srv.adm.stats
	if ch != nil {
		ch.inc(sPublish)
	}
	v.stats.inc(sPublish)
	g.inc(sPublish)
	ex.stats.inc(sPublishIn)
	for _, q := range qs {
		q.stats.inc(sPublish)
	}
	if len(qs) > 0 {
		ex.stats.add(sPublishOut, int64(len(qs)))
		g.inc(sRouted)
		return
	}
	if ch != nil {
		ch.inc(unroutable)
	}
	v.stats.inc(unroutable)
	g.inc(unroutable)
}

// countDeliver records a delivery of e from q to a consumer on ch.
func (ch *channel) countDeliver(q *queue, noAck, redelivered bool) {
	k := sDeliver
	if noAck {
		k = sDeliverNoAck
	}
	ch.countOut(q, k, redelivered)
}

// countGet records a basic.get on q: e is the message, nil if the queue was empty.
func (ch *channel) countGet(q *queue, e *qentry, noAck bool) {
	switch {
	case e == nil:
		ch.countOut(q, sGetEmpty, false)
	case noAck:
		ch.countOut(q, sGetNoAck, e.redelivered)
	default:
		ch.countOut(q, sGet, e.redelivered)
	}
}

func (ch *channel) countOut(q *queue, k stat, redelivered bool) {
	v, g := q.v, &q.v.srv.adm.stats
	if ch != nil {
		ch.stats.inc(k)
	}
	q.stats.inc(k)
	v.stats.inc(k)
	g.inc(k)
	if redelivered {
		if ch != nil {
			ch.stats.inc(sRedeliver)
		}
		q.stats.inc(sRedeliver)
		v.stats.inc(sRedeliver)
		g.inc(sRedeliver)
	}
}

// countSettle records the acks among settled deliveries (nacks and rejects are not counted, as in
// RabbitMQ).
func (ch *channel) countSettle(kind settleKind, ds []*delivery) {
	if kind != settleAck || len(ds) == 0 {
		return
	}
	ch.stats.add(sAck, int64(len(ds)))
	countAcked(ds[0].q.v, ds)
}

func countAcked(v *vhost, ds []*delivery) {
	v.stats.add(sAck, int64(len(ds)))
	v.srv.adm.stats.add(sAck, int64(len(ds)))
	for _, d := range ds {
		d.q.stats.inc(sAck)
	}
}

// --- per-channel and per-connection state read by the management API ---

// chanStats is a channel's statistics and the settings the API shows, mirrored in atomics because
// the read loop owns the originals.
type chanStats struct {
	statSet
	confirm  atomic.Bool
	tx       atomic.Bool
	prefetch atomic.Uint32 // basic.qos global=false
}

// meteredConn counts a connection's bytes and socket operations and remembers when it was accepted.
type meteredConn struct {
	net.Conn
	srv              *Server
	at               time.Time
	recvOct, sendOct atomic.Int64
	recvCnt, sendCnt atomic.Int64
	closed           atomic.Bool
	release          func() // gives the listener's ConnectionMax slot back on Close; nil: none
}

// meter wraps an accepted socket (called by Serve) and counts the connection as created.
func (s *Server) meter(nc net.Conn) net.Conn {
	s.adm.stats.inc(sConnCreated)
	return &meteredConn{Conn: nc, srv: s, at: time.Now()}
}

func (m *meteredConn) Read(p []byte) (int, error) {
	n, err := m.Conn.Read(p)
	if n > 0 {
		m.recvOct.Add(int64(n))
		m.recvCnt.Add(1)
	}
	return n, err
}

func (m *meteredConn) Write(p []byte) (int, error) {
	n, err := m.Conn.Write(p)
	if n > 0 {
		m.countSend(n)
	}
	return n, err
}

// countSend counts a write of n bytes (Write, or a direct write to the socket: outbound.flushDirect).
func (m *meteredConn) countSend(n int) {
	m.sendOct.Add(int64(n))
	m.sendCnt.Add(1)
}

func (m *meteredConn) Close() error {
	if m.closed.CompareAndSwap(false, true) {
		m.srv.adm.stats.inc(sConnClosed)
		if m.release != nil {
			m.release()
		}
	}
	return m.Conn.Close()
}

// metered returns c's byte counters, or nil for a socket that was not accepted by Serve (tests).
func (c *conn) metered() *meteredConn {
	m, _ := c.nc.(*meteredConn)
	return m
}

// --- the sampler ---

// DefaultStatsInterval is how often rates are sampled, as RabbitMQ's collect_statistics_interval.
const DefaultStatsInterval = 5 * time.Second

// startSampler starts the rate sampler once (from Serve); Shutdown stops it.
func (s *Server) startSampler() {
	s.adm.samplerOnce.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runSampler()
		}()
	})
}

// stopSampler makes the sampler return (from Shutdown); it is safe to call more than once.
func (s *Server) stopSampler() {
	s.adm.stopOnce.Do(func() { close(s.adm.stop) })
}

func (s *Server) runSampler() {
	t := time.NewTicker(s.opts.StatsInterval)
	defer t.Stop()
	s.sampleAll(time.Now())
	for {
		select {
		case <-s.adm.stop:
			return
		case now := <-t.C:
			s.sampleAll(now)
		}
	}
}

// sampleAll copies gauges into the stat sets and samples every set. It takes each lock briefly and
// alone (vhost.mu shared to list, then each queue's mu to count), so it never blocks traffic long.
func (s *Server) sampleAll(now time.Time) {
	var totReady, totUnacked int64
	conns := s.openConns()
	// Bytes moved since the previous sample, added to the connections' vhosts and the server.
	s.adm.connRates.sample(now, conns, &s.adm.stats)
	for _, c := range conns {
		for _, ch := range c.channelList() {
			ch.stats.sample(now)
		}
	}
	for _, v := range s.vhostList() {
		qs, xs := v.lists()
		var ready, unacked int64
		for _, q := range qs {
			r, u := q.lengths()
			q.stats.n[gReady].Store(r)
			q.stats.n[gUnacked].Store(u)
			q.stats.n[gMessages].Store(r + u)
			q.stats.sample(now)
			ready += r
			unacked += u
		}
		for _, x := range xs {
			x.stats.sample(now)
		}
		v.stats.n[gReady].Store(ready)
		v.stats.n[gUnacked].Store(unacked)
		v.stats.n[gMessages].Store(ready + unacked)
		v.stats.sample(now)
		totReady += ready
		totUnacked += unacked
	}
	g := &s.adm.stats
	g.n[gReady].Store(totReady)
	g.n[gUnacked].Store(totUnacked)
	g.n[gMessages].Store(totReady + totUnacked)
	g.sample(now)
}

// connRates keeps each open connection's previous byte counts, to compute its rates and to add
// what it moved to its vhost's and the server's byte counters.
type connRates struct {
	mu struct {
		sync.Mutex
		prev map[*conn]connSample
	}
}

type connSample struct {
	at                 time.Time
	recv, send         int64
	recvRate, sendRate float64
}

func (r *connRates) sample(now time.Time, conns []*conn, g *statSet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[*conn]connSample, len(conns))
	account := func(c *conn, m *meteredConn, p connSample) connSample {
		cur := connSample{at: now, recv: m.recvOct.Load(), send: m.sendOct.Load()}
		dr, ds := cur.recv-p.recv, cur.send-p.send
		if dt := now.Sub(p.at).Seconds(); !p.at.IsZero() && dt > 0 {
			cur.recvRate, cur.sendRate = float64(dr)/dt, float64(ds)/dt
		}
		c.vhost.stats.add(sRecvOct, dr)
		c.vhost.stats.add(sSendOct, ds)
		g.add(sRecvOct, dr)
		g.add(sSendOct, ds)
		return cur
	}
	for _, c := range conns {
		if m := c.metered(); m != nil {
			next[c] = account(c, m, r.mu.prev[c])
		}
	}
	// Connections closed since the last sample: count their last bytes, then forget them.
	for c, p := range r.mu.prev {
		if _, open := next[c]; !open {
			account(c, c.metered(), p)
		}
	}
	r.mu.prev = next
}

func (r *connRates) rates(c *conn) (recv, send float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.mu.prev[c]
	return p.recvRate, p.sendRate
}
