package integration

// The ledger of the randomized side-by-side test: the life of every message copy (one message in one
// queue) the executor saw, checked against the rules any correct broker follows, so that the short run
// in CI needs no reference broker:
//   - nothing is delivered that was never published;
//   - a copy's first delivery is not flagged redelivered, every later one is;
//   - a copy is never delivered again once acknowledged, dropped (nack/reject requeue=false), purged or
//     deleted with its queue, nor while a channel still holds it unacknowledged;
//   - nothing is lost: every copy known to be in its queue (delivered and not settled, or published
//     mandatory through the default exchange and not returned) is still there at the end, or was
//     purged, deleted with its queue, or dead-lettered, unless its queue may drop messages by itself
//     (x-max-length, x-message-ttl, a per-message expiration) or vanish (exclusive, auto-delete);
//   - a copy rejected without requeue from a queue with a dead-letter exchange is in the dead-letter
//     queue at the end, and nothing acknowledged is;
//   - a purge reports at least the copies known to be ready in the queue;
//   - every channel and connection close the broker sends carries a valid reply code.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

const (
	cpReady = iota
	cpOut
	cpAcked
	cpDropped
	cpGone
	cpFinal
	cpDead
)

var diffStates = []string{"ready", "unacked", "acked", "dropped", "purged/deleted", "drained", "dead-lettered"}

type diffCopy struct {
	q          int
	body       string
	state      int
	known      bool // known to have entered its queue
	deliveries int
	// racing: purged while it may have been on its way to a consumer or back from one (purged).
	racing bool
}

type diffLedger struct {
	step       int
	pub        map[string]bool
	expiring   map[string]bool // had a per-message expiration
	copies     map[string]*diffCopy
	order      []string         // keys in creation order
	limited    [diffQueues]bool // ever declared with a length limit or a TTL
	volatile   [diffQueues]bool // ever declared exclusive or auto-delete
	dlx        [diffQueues]bool // ever declared with a dead-letter exchange
	entering   map[string]int   // mandatory default-exchange publishes of this step: body -> queue
	violations []string
}

func newDiffLedger() *diffLedger {
	return &diffLedger{pub: map[string]bool{}, expiring: map[string]bool{}, copies: map[string]*diffCopy{},
		entering: map[string]int{}}
}

func (l *diffLedger) violate(format string, args ...any) {
	l.violations = append(l.violations, fmt.Sprintf("step %d: ", l.step)+fmt.Sprintf(format, args...))
}

func (l *diffLedger) copyOf(q int, body string) (*diffCopy, string) {
	key := body + "@" + diffQName(q)
	c := l.copies[key]
	if c == nil {
		c = &diffCopy{q: q, body: body}
		l.copies[key] = c
		l.order = append(l.order, key)
	}
	return c, key
}

func (l *diffLedger) declared(q int, s diffQSpec) {
	l.limited[q] = l.limited[q] || s.limited()
	l.volatile[q] = l.volatile[q] || s.Exclusive || s.AutoDelete
	l.dlx[q] = l.dlx[q] || s.DLX
}

func (l *diffLedger) volatileQ(q int) bool { return q < 0 || l.limited[q] || l.volatile[q] }

func (l *diffLedger) markVolatile(q int) {
	if q >= 0 {
		l.volatile[q] = true
	}
}

func (l *diffLedger) published(n int) { l.pub["m"+strconv.Itoa(n)] = true }

// entered notes a mandatory publish through the default exchange to q, outside a transaction.
func (l *diffLedger) entered(body string, q int, expiring bool) {
	if expiring {
		l.expiring[body] = true
	}
	if q >= 0 && !expiring {
		l.entering[body] = q
	}
}

func (l *diffLedger) returned(body string) { delete(l.entering, body) }

// endStep makes this step's unreturned mandatory publishes known copies.
func (l *diffLedger) endStep() {
	for body, q := range l.entering {
		c, _ := l.copyOf(q, body)
		c.known = true
	}
	clear(l.entering)
	l.step++
}

func (l *diffLedger) delivered(q int, body string, redelivered, noAck bool) string {
	if !l.pub[body] {
		l.violate("%s delivered from %s but never published", body, diffQName(q))
	}
	c, key := l.copyOf(q, body)
	switch c.state {
	case cpReady:
	case cpGone:
		if !c.racing {
			l.violate("%s delivered from %s after it was %s", body, diffQName(q), diffStates[c.state])
		}
	case cpOut:
		l.violate("%s delivered from %s while still unacknowledged on a channel", body, diffQName(q))
	default:
		l.violate("%s delivered from %s after it was %s", body, diffQName(q), diffStates[c.state])
	}
	if c.deliveries == 0 && redelivered {
		l.violate("first delivery of %s from %s is flagged redelivered", body, diffQName(q))
	}
	if c.deliveries > 0 && !redelivered {
		l.violate("delivery %d of %s from %s is not flagged redelivered", c.deliveries+1, body, diffQName(q))
	}
	c.deliveries++
	c.state, c.racing = cpOut, false
	if noAck {
		c.state = cpAcked
	}
	return key
}

func (l *diffLedger) settled(key string, to int) {
	if c := l.copies[key]; c != nil && c.state == cpOut {
		c.state = to
	}
}

func (l *diffLedger) acked(key string)    { l.settled(key, cpAcked) }
func (l *diffLedger) requeued(key string) { l.settled(key, cpReady) }
func (l *diffLedger) dropped(key string)  { l.settled(key, cpDropped) }

// purged checks a purge's count against the copies known to be ready. Only copies that entered
// the queue by a publish and were never delivered count: a requeue (a nack, a closed channel) and
// a delivery to a consumer on the queue run in the broker while another connection purges, so a
// requeued copy may come back after the purge and a ready one may already be on its way to the
// consumer (seeds 552694675415, 169244319974 broke the rule against RabbitMQ 3.10.8 too). Such
// copies are marked racing: a later delivery of them, or finding them at the end, is allowed.
func (l *diffLedger) purged(q, n int, consumed bool) {
	if q < 0 {
		return
	}
	ready := 0
	for _, c := range l.copies {
		if c.q == q && c.state == cpReady {
			racing := consumed || c.deliveries > 0
			if c.known && !racing && !l.expiring[c.body] {
				ready++
			}
			c.state, c.racing = cpGone, racing
		}
	}
	if ready > n && !l.volatileQ(q) {
		l.violate("purge of %s reported %d messages, but %d are known to be ready", diffQName(q), n, ready)
	}
}

func (l *diffLedger) deleted(q int) {
	for _, c := range l.copies {
		if c.q == q && (c.state == cpReady || c.state == cpOut) {
			c.state = cpGone
		}
	}
}

func (l *diffLedger) final(q int, body string) {
	if !l.pub[body] {
		l.violate("%s left in %s but never published", body, diffQName(q))
	}
	c, _ := l.copyOf(q, body)
	if c.state != cpReady && (c.state != cpGone || !c.racing) {
		l.violate("%s left in %s at the end, but it was %s", body, diffQName(q), diffStates[c.state])
	}
	c.state = cpFinal
}

func (l *diffLedger) deadLettered(qname, body, reason string) {
	q := -2
	for i := -1; i < diffQueues; i++ {
		if diffQName(i) == qname {
			q = i
		}
	}
	if q == -2 {
		l.violate("%s dead-lettered from %q, not a queue of the run", body, qname)
		return
	}
	if !l.pub[body] {
		l.violate("%s dead-lettered but never published", body)
	}
	c, _ := l.copyOf(q, body)
	switch {
	case c.state == cpDropped && reason == "rejected":
	case (c.state == cpReady || c.state == cpGone) && (q < 0 || l.limited[q] || l.expiring[body]) && reason != "rejected",
		c.state == cpGone && c.racing:
		// It may have been dropped by the queue itself (overflow, TTL) before a purge or delete.
	default:
		l.violate("%s dead-lettered from %s (%s), but it was %s", body, qname, reason, diffStates[c.state])
	}
	c.state = cpDead
}

// check ends the run's accounting and returns the violations.
func (l *diffLedger) check(closes []string) []string {
	for _, key := range l.order {
		c := l.copies[key]
		if l.volatileQ(c.q) || l.expiring[c.body] {
			continue
		}
		switch {
		case c.state == cpReady && (c.known || c.deliveries > 0):
			l.violate("%s lost: known to be in %s, not there at the end (delivered %d times)", c.body, diffQName(c.q), c.deliveries)
		case c.state == cpOut:
			l.violate("%s still unacknowledged after every channel closed", key)
		case c.state == cpDropped && l.dlx[c.q]:
			l.violate("%s rejected from %s, which has a dead-letter exchange, but not in the dead-letter queue", c.body, diffQName(c.q))
		}
	}
	for _, cl := range closes {
		f := strings.Fields(cl)
		code, _ := strconv.Atoi(f[3])
		valid := map[int]bool{403: true, 404: true, 405: true, 406: true}
		if f[1] == "connection" {
			valid = map[int]bool{320: false, 501: true, 502: true, 503: true, 504: true, 505: true, 530: true, 540: true, 541: true}
		}
		if !valid[code] {
			l.violate("%s: not a valid reply code for it", cl)
		}
	}
	return l.violations
}

// TestDiffLedger shows that the ledger reports each kind of broken rule (so the short TestDiff can fail).
func TestDiffLedger(t *testing.T) {
	cases := []struct {
		name string
		run  func(l *diffLedger)
		want string
	}{
		{"lost", func(l *diffLedger) {
			l.published(1)
			l.entered("m1", 0, false)
			l.endStep()
		}, "m1 lost"},
		{"lost after requeue", func(l *diffLedger) {
			l.published(1)
			k := l.delivered(0, "m1", false, false)
			l.requeued(k)
		}, "m1 lost"},
		{"redelivered first", func(l *diffLedger) {
			l.published(1)
			l.acked(l.delivered(0, "m1", true, false))
		}, "flagged redelivered"},
		{"not redelivered", func(l *diffLedger) {
			l.published(1)
			l.requeued(l.delivered(0, "m1", false, false))
			l.acked(l.delivered(0, "m1", false, false))
		}, "not flagged redelivered"},
		{"after ack", func(l *diffLedger) {
			l.published(1)
			l.acked(l.delivered(0, "m1", false, false))
			l.acked(l.delivered(0, "m1", true, false))
		}, "after it was acked"},
		{"twice unacked", func(l *diffLedger) {
			l.published(1)
			l.delivered(0, "m1", false, false)
			l.delivered(0, "m1", true, false)
		}, "while still unacknowledged"},
		{"never published", func(l *diffLedger) { l.delivered(0, "m7", false, true) }, "never published"},
		{"purge count", func(l *diffLedger) {
			l.published(1)
			l.entered("m1", 2, false)
			l.endStep()
			l.purged(2, 0, false)
		}, "purge of q2 reported 0"},
		{"delivered after a purge", func(l *diffLedger) {
			l.published(1)
			l.entered("m1", 2, false)
			l.endStep()
			l.purged(2, 1, false)
			l.delivered(2, "m1", false, false)
		}, "delivered from q2 after it was purged"},
		{"left after purge", func(l *diffLedger) {
			l.published(1)
			l.entered("m1", 2, false)
			l.endStep()
			l.purged(2, 1, false)
			l.final(2, "m1")
		}, "left in q2 at the end, but it was purged"},
		{"not dead-lettered", func(l *diffLedger) {
			l.declared(1, diffQSpec{DLX: true, TTL: -1})
			l.published(1)
			l.dropped(l.delivered(1, "m1", false, false))
		}, "not in the dead-letter queue"},
		{"acked and dead-lettered", func(l *diffLedger) {
			l.declared(1, diffQSpec{DLX: true, TTL: -1})
			l.published(1)
			l.acked(l.delivered(1, "m1", false, false))
			l.deadLettered("q1", "m1", "rejected")
		}, "but it was acked"},
	}
	for _, c := range cases {
		l := newDiffLedger()
		c.run(l)
		v := l.check(nil)
		if len(v) == 0 || !strings.Contains(strings.Join(v, "\n"), c.want) {
			t.Errorf("%s: violations %q, want one with %q", c.name, v, c.want)
		}
	}
	// A clean life: published, delivered, requeued, redelivered, acked; another left in its queue.
	l := newDiffLedger()
	l.published(1)
	l.published(2)
	l.entered("m1", 0, false)
	l.entered("m2", 0, false)
	l.endStep()
	l.requeued(l.delivered(0, "m1", false, false))
	l.acked(l.delivered(0, "m1", true, false))
	l.final(0, "m2")
	if v := l.check([]string{"A0 channel close 406 60.80", "conn1 connection close 530 60.20"}); len(v) != 0 {
		t.Errorf("clean run: violations %q", v)
	}
	if v := newDiffLedger().check([]string{"A0 channel close 200 60.80"}); len(v) != 1 {
		t.Errorf("channel close 200: violations %q, want one", v)
	}
}
