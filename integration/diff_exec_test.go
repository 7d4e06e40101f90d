package integration

// The executor of the randomized side-by-side test (diff_test.go): it runs a step list against one
// broker over two connections with two channels each, and writes a normalized transcript of every
// observable outcome, one line per step. It also keeps a ledger of every message copy it saw (see
// diffLedger) to check, on any broker, the invariants that need no reference.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// diffRun is one step list run against one broker.
type diffRun struct {
	url    string
	prefix string        // of every name the run declares
	settle time.Duration // quiet time waited after each step's round trips
	skip   map[string]bool

	conns [2]*diffConn
	wg    sync.WaitGroup // consumer drain goroutines

	lines  []string // the transcript, one per step, then the final state
	ledger *diffLedger
	qspec  [diffQueues]diffQSpec // the spec of each queue's last successful declare
	// For -diff.skip=exclusiveother, per queue index (qmissing too), as far as the executor knows:
	owner  map[int]int  // the connection (1 or 2) whose exclusive queue it is; 0: none
	exists map[int]bool // declared and not deleted
	excl   map[int]bool // declared exclusive
	closes []string     // every close seen: "channel 406 60.80"
}

type diffConn struct {
	c   *amqp.Connection
	tap *diffTap
	ch  [2]*diffChan
}

// consumed reports whether a consumer of the run is on queue q: the broker may have delivered
// copies to it that the run has not seen yet.
func (r *diffRun) consumed(q int) bool {
	for _, dc := range r.conns {
		if dc == nil {
			continue
		}
		for _, ch := range dc.ch {
			if ch == nil {
				continue
			}
			for _, cons := range ch.consumers {
				if cons.q == q {
					return true
				}
			}
		}
	}
	return false
}

type diffConsumer struct {
	q     int
	noAck bool
}

type diffChan struct {
	ch        *amqp.Channel
	id        uint16
	out       []uint64          // outstanding delivery tags, ascending
	outKey    map[uint64]string // tag -> ledger key
	settled   []uint64
	maxTag    uint64
	tx        bool
	txAcks    []diffAck
	consumers map[string]diffConsumer
}

// diffAck is an ack, nack or reject whose effect on the ledger is applied once it is known to hold.
type diffAck struct {
	kind              string
	tag               uint64
	multiple, requeue bool
	committed         bool              // by tx.commit: applies now
	taken             map[uint64]string // the deliveries it settles: tag -> ledger key
}

func (r *diffRun) qname(i int) string { return r.prefix + diffQName(i) }

func (r *diffRun) xname(i int) string {
	if i == -2 {
		return ""
	}
	return r.prefix + diffXName(i)
}

// dial opens connection k with its two channels.
func (r *diffRun) dial(k int) error {
	var tap *diffTap
	c, err := amqp.DialConfig(r.url, amqp.Config{
		Heartbeat: 30 * time.Second,
		Dial: func(network, addr string) (net.Conn, error) {
			nc, err := net.DialTimeout(network, addr, amqpTimeout)
			if err != nil {
				return nil, err
			}
			tap = newDiffTap(nc)
			return tap, nil
		},
	})
	if err != nil {
		return fmt.Errorf("dial %s: %w", r.url, err)
	}
	r.conns[k] = &diffConn{c: c, tap: tap}
	for j := range 2 {
		if err := r.openChannel(k, j); err != nil {
			return err
		}
	}
	return nil
}

func (r *diffRun) openChannel(k, j int) error {
	dc := r.conns[k]
	ch, err := dc.c.Channel()
	if err != nil {
		return fmt.Errorf("channel.open on connection %d: %w", k, err)
	}
	dc.ch[j] = &diffChan{ch: ch, id: dc.tap.lastOpenOK(), outKey: map[uint64]string{}, consumers: map[string]diffConsumer{}}
	return nil
}

func (r *diffRun) close() {
	for _, dc := range r.conns {
		if dc != nil && dc.c != nil {
			_ = dc.c.Close()
		}
	}
	r.wg.Wait()
}

func diffErr(err error) string {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return fmt.Sprintf("err %d", ae.Code)
	}
	if errors.Is(err, amqp.ErrClosed) {
		return "err closed"
	}
	return "err " + err.Error()
}

func (r *diffRun) slot(c int) (*diffConn, *diffChan) {
	dc := r.conns[c/2]
	return dc, dc.ch[c%2]
}

// resolveAck turns an ack step's symbolic target into a tag and a description for the transcript; ok
// is false when there is nothing to acknowledge (the step is skipped). Delivery tags are not compared
// between brokers: the order in which two queues deliver to one channel is not defined, so a channel's
// tags may be numbered differently. The target is chosen by message (in the order of message number,
// then queue), and a multiple=true ack covers all the outstanding deliveries unless they all come from
// one queue (whose delivery order is defined).
func (r *diffRun) resolveAck(o diffOp, ch *diffChan) (uint64, string, bool) {
	canon := append([]uint64(nil), ch.out...)
	sort.SliceStable(canon, func(i, j int) bool { return diffKeyLess(ch.outKey[canon[i]], ch.outKey[canon[j]]) })
	pick := func(i int) (uint64, string, bool) {
		tag := canon[i]
		if !o.A {
			return tag, ch.outKey[tag], true
		}
		queues := map[string]bool{}
		for _, t := range ch.out {
			k := ch.outKey[t]
			queues[k[strings.Index(k, "@"):]] = true
		}
		if len(queues) > 1 {
			return ch.out[len(ch.out)-1], "all", true
		}
		return tag, "up to " + ch.outKey[tag], true
	}
	switch o.Mode {
	case "last":
		if len(ch.out) == 0 {
			return 0, "", false
		}
		return pick(len(canon) - 1)
	case "first":
		if len(ch.out) == 0 {
			return 0, "", false
		}
		return pick(0)
	case "any":
		if len(ch.out) == 0 {
			return 0, "", false
		}
		return pick(o.N % len(canon))
	case "stale":
		if len(ch.settled) == 0 {
			return 0, "", false
		}
		if o.A && r.skip["ackunknownmulti"] {
			return 0, "", false
		}
		return ch.settled[o.N%len(ch.settled)], "a settled tag", true
	case "unknown":
		tag := ch.maxTag + 1 + uint64(o.N%3)
		return tag, fmt.Sprintf("unknown tag %d", tag), true
	case "zero":
		return 0, "tag 0", true
	}
	return 0, "", false
}

// diffKeyLess orders ledger keys (m12@q3) by message number, then queue.
func diffKeyLess(a, b string) bool {
	na, _ := strconv.Atoi(a[1:strings.Index(a, "@")])
	nb, _ := strconv.Atoi(b[1:strings.Index(b, "@")])
	if na != nb {
		return na < nb
	}
	return a < b
}

// exec runs one step and returns its result.
func (r *diffRun) exec(o diffOp, pending *[]diffAck) string {
	_, ch := r.slot(o.C)
	c := ch.ch
	var err error
	res := "ok"
	if r.skip["exclusiveother"] && o.Kind != "publish" {
		switch {
		case r.owner[o.Q] != 0 && r.owner[o.Q] != o.C/2+1 &&
			(o.Kind == "qdeclare" || o.Kind == "qbind" || o.Kind == "qunbind" || o.Kind == "qdelete" || o.Kind == "qpurge"):
			return "skipped (exclusiveother)"
		case o.Kind == "qdeclare" && r.exists[o.Q] && o.Spec.Exclusive != r.excl[o.Q]:
			// RabbitMQ checks the exclusive flag before durable and auto-delete (405, not 406).
			return "skipped (exclusiveother)"
		}
	}
	switch o.Kind {
	case "qdeclare":
		var q amqp.Queue
		q, err = c.QueueDeclare(r.qname(o.Q), o.Spec.Durable, o.Spec.AutoDelete, o.Spec.Exclusive, false, o.Spec.args(r.prefix))
		if err == nil {
			res = fmt.Sprintf("ok msgs=%d consumers=%d", q.Messages, q.Consumers)
			r.owner[o.Q] = 0
			r.exists[o.Q] = true
			r.excl[o.Q] = o.Spec.Exclusive
			if o.Spec.Exclusive {
				r.owner[o.Q] = o.C/2 + 1
			}
			if o.Q >= 0 {
				r.qspec[o.Q] = o.Spec
				r.ledger.declared(o.Q, o.Spec)
			}
		}
	case "qpassive":
		var q amqp.Queue
		q, err = c.QueueDeclarePassive(r.qname(o.Q), false, false, false, false, nil)
		if err == nil {
			res = fmt.Sprintf("ok msgs=%d consumers=%d", q.Messages, q.Consumers)
		}
	case "xdeclare":
		err = c.ExchangeDeclare(r.xname(o.X), o.XT, false, o.A, false, false, nil)
	case "xpassive":
		err = c.ExchangeDeclarePassive(r.xname(o.X), "direct", false, false, false, false, nil)
	case "xdelete":
		err = c.ExchangeDelete(r.xname(o.X), o.A, false)
	case "qbind":
		err = c.QueueBind(r.qname(o.Q), o.Key, r.xname(o.X), false, diffBindArgs(o.Args))
	case "qunbind":
		err = c.QueueUnbind(r.qname(o.Q), o.Key, r.xname(o.X), diffBindArgs(o.Args))
	case "xbind":
		err = c.ExchangeBind(r.xname(o.X2), o.Key, r.xname(o.X), false, diffBindArgs(o.Args))
	case "xunbind":
		err = c.ExchangeUnbind(r.xname(o.X2), o.Key, r.xname(o.X), false, diffBindArgs(o.Args))
	case "publish":
		if ch.tx && r.skip["txpublish"] {
			return "skipped (txpublish)"
		}
		key := o.Key
		if o.X == -2 {
			key = r.qname(o.Q)
		}
		msg := amqp.Publishing{
			Body:       []byte("m" + strconv.Itoa(o.N)),
			MessageId:  "m" + strconv.Itoa(o.N),
			Priority:   o.Pub.Priority,
			Expiration: o.Pub.Expiration,
			Headers:    diffHeaders(o.Pub.Headers),
		}
		if o.Pub.Persistent {
			msg.DeliveryMode = amqp.Persistent
		}
		err = c.PublishWithContext(context.Background(), r.xname(o.X), key, o.Pub.Mandatory, false, msg)
		if err == nil {
			res = "sent"
			r.ledger.published(o.N)
			q := -1
			if o.X == -2 && o.Pub.Mandatory && !ch.tx {
				q = o.Q
			}
			r.ledger.entered(string(msg.Body), q, o.Pub.Expiration != "")
		}
	case "get":
		var d amqp.Delivery
		var ok bool
		d, ok, err = c.Get(r.qname(o.Q), o.A)
		if err == nil {
			if !ok {
				res = "empty"
			} else {
				res = fmt.Sprintf("got %s redelivered=%v left=%d", d.Body, d.Redelivered, d.MessageCount)
				r.delivered(ch, o.Q, d.DeliveryTag, string(d.Body), d.Redelivered, o.A)
			}
		}
	case "consume":
		tag := fmt.Sprintf("c%d", o.N)
		var args amqp.Table
		if o.Args != 0 {
			args = amqp.Table{"x-priority": int32(o.Args)}
		}
		var d <-chan amqp.Delivery
		d, err = c.Consume(r.qname(o.Q), tag, o.A, o.B, false, false, args)
		if err == nil {
			ch.consumers[tag] = diffConsumer{q: o.Q, noAck: o.A}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				for range d { //nolint:revive // drained: the tap records deliveries
				}
			}()
		}
	case "cancel":
		tag := fmt.Sprintf("c%d", o.N)
		err = c.Cancel(tag, false)
		if err == nil {
			if cons, ok := ch.consumers[tag]; ok {
				delete(ch.consumers, tag)
				if r.qspec[max(cons.q, 0)].AutoDelete {
					r.ledger.markVolatile(cons.q)
				}
			}
		}
	case "qos":
		err = c.Qos(o.N, 0, o.A)
	case "ack":
		if ch.tx && r.skip["txbad"] && (o.Mode == "unknown" || o.Mode == "stale" || o.Mode == "zero") {
			return "skipped (txbad)"
		}
		tag, what, ok := r.resolveAck(o, ch)
		if !ok {
			return "skipped (nothing to settle)"
		}
		a := diffAck{kind: o.Key, tag: tag, multiple: o.A, requeue: o.B}
		switch o.Key {
		case "ack":
			a.requeue = false
			err = c.Ack(tag, o.A)
		case "nack":
			err = c.Nack(tag, o.A, o.B)
		case "reject":
			a.multiple = false
			err = c.Reject(tag, o.B)
		}
		if err == nil {
			res = "sent: " + what
			*pending = append(*pending, a)
		}
	case "recover":
		//lint:ignore SA1019 basic.recover is one of the operations compared
		err = c.Recover(o.A)
		if err == nil {
			r.requeueAll(ch)
		}
	case "txselect":
		err = c.Tx()
		if err == nil {
			ch.tx = true
		}
	case "txcommit":
		err = c.TxCommit()
		if err == nil {
			for _, a := range ch.txAcks {
				a.committed = true
				*pending = append(*pending, a)
			}
			ch.txAcks = nil
		}
	case "txrollback":
		err = c.TxRollback()
		if err == nil {
			r.rollback(ch)
		}
	case "qdelete":
		var n int
		n, err = c.QueueDelete(r.qname(o.Q), o.A, o.B, false)
		if err == nil {
			res = fmt.Sprintf("ok count=%d", n)
			r.ledger.deleted(o.Q)
			r.owner[o.Q] = 0
			r.exists[o.Q] = false
		}
	case "qpurge":
		var n int
		n, err = c.QueuePurge(r.qname(o.Q), false)
		if err == nil {
			res = fmt.Sprintf("ok count=%d", n)
			r.ledger.purged(o.Q, n, r.consumed(o.Q))
		}
	case "chclose":
		err = c.Close()
	case "connclose":
		err = r.conns[o.C/2].c.Close()
	default:
		return "unknown kind " + o.Kind
	}
	if err != nil {
		return diffErr(err)
	}
	return res
}

func diffBindArgs(a int) amqp.Table {
	switch a {
	case 1:
		return amqp.Table{"x-match": "all", "h": "a"}
	case 2:
		return amqp.Table{"x-match": "any", "h": "b", "g": "c"}
	case 3:
		return amqp.Table{"x-match": "bogus", "h": "a"}
	}
	return nil
}

// delivered records a delivery (from a consumer or basic.get) on ch.
func (r *diffRun) delivered(ch *diffChan, q int, tag uint64, body string, redelivered, noAck bool) {
	key := r.ledger.delivered(q, body, redelivered, noAck)
	if tag > ch.maxTag {
		ch.maxTag = tag
	}
	if !noAck {
		ch.out = append(ch.out, tag)
		ch.outKey[tag] = key
	}
}

// requeueAll returns every outstanding delivery of ch to its queue (in the ledger).
func (r *diffRun) requeueAll(ch *diffChan) {
	for _, tag := range ch.out {
		r.ledger.requeued(ch.outKey[tag])
	}
	for _, a := range ch.txAcks {
		for _, key := range a.taken {
			r.ledger.requeued(key)
		}
	}
	ch.out, ch.outKey = nil, map[uint64]string{}
	ch.txAcks = nil
}

// settleAck applies an ack, nack or reject that held: it takes the deliveries it names off the
// outstanding list (inside a transaction too, as RabbitMQ does, so they cannot be settled twice) and
// settles them in the ledger, at once or, inside a transaction, at tx.commit.
func (r *diffRun) settleAck(ch *diffChan, a diffAck) {
	if !a.committed {
		a.taken = map[uint64]string{}
		var keep []uint64
		for _, tag := range ch.out {
			if tag == a.tag || (a.multiple && (tag <= a.tag || a.tag == 0)) {
				a.taken[tag] = ch.outKey[tag]
				delete(ch.outKey, tag)
				ch.settled = append(ch.settled, tag)
				continue
			}
			keep = append(keep, tag)
		}
		ch.out = keep
		if len(ch.settled) > 8 {
			ch.settled = ch.settled[len(ch.settled)-8:]
		}
		if ch.tx {
			ch.txAcks = append(ch.txAcks, a)
			return
		}
	}
	for _, key := range a.taken {
		switch {
		case a.kind == "ack":
			r.ledger.acked(key)
		case a.requeue:
			r.ledger.requeued(key)
		default:
			r.ledger.dropped(key)
		}
	}
}

// rollback puts the deliveries a transaction settled back on the outstanding list.
func (r *diffRun) rollback(ch *diffChan) {
	for _, a := range ch.txAcks {
		for tag, key := range a.taken {
			ch.out = append(ch.out, tag)
			ch.outKey[tag] = key
		}
	}
	slices.Sort(ch.out)
	ch.txAcks = nil
}

// sync makes a round trip on every open channel, the step's own first, then waits until no frame has
// arrived for r.settle, so that every outcome of the step is in the taps.
func (r *diffRun) sync(first int) {
	order := []int{first}
	for c := range 4 {
		if c != first {
			order = append(order, c)
		}
	}
	for _, c := range order {
		dc := r.conns[c/2]
		if dc.c.IsClosed() {
			continue
		}
		ch := dc.ch[c%2]
		if ch.ch.IsClosed() {
			continue
		}
		_ = ch.ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil)
	}
	for {
		var last int64
		for _, dc := range r.conns {
			last = max(last, dc.tap.last.Load())
		}
		wait := time.Until(time.Unix(0, last).Add(r.settle))
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		<-t.C
	}
}

// step runs one step, waits for its outcomes and returns its transcript line.
func (r *diffRun) step(o diffOp) (string, error) {
	var pending []diffAck
	res := r.exec(o, &pending)
	r.sync(o.C)

	// The events, per channel slot.
	type slotEvents struct {
		lines []string
	}
	var ev [5]slotEvents // 4: connection-level
	type delivery struct {
		slot int
		f    func()
	}
	var deliveries []delivery
	for k, dc := range r.conns {
		if err := dc.tap.err(); err != nil {
			return "", err
		}
		for _, e := range dc.tap.take() {
			s := 4
			for j, ch := range dc.ch {
				if ch.id == e.ch {
					s = k*2 + j
				}
			}
			name := "conn" + strconv.Itoa(k)
			if s < 4 {
				name = diffSlotNames[s]
			}
			switch e.kind {
			case "deliver":
				ch := dc.ch[s%2]
				cons, ok := ch.consumers[e.ctag]
				line := fmt.Sprintf("deliver %s %s redelivered=%v", e.ctag, e.body, e.redelivered)
				if s < 4 {
					ev[s].lines = append(ev[s].lines, line)
				}
				if ok && s < 4 {
					body, tag, red := string(e.body), e.tag, e.redelivered
					deliveries = append(deliveries, delivery{s, func() { r.delivered(ch, cons.q, tag, body, red, cons.noAck) }})
				}
			case "return":
				ev[min(s, 4)].lines = append(ev[min(s, 4)].lines, fmt.Sprintf("return %d %s %s %s", e.code,
					strings.TrimPrefix(e.exchange, r.prefix), strings.TrimPrefix(e.key, r.prefix), e.body))
				r.ledger.returned(string(e.body))
			case "cancel":
				ev[min(s, 4)].lines = append(ev[min(s, 4)].lines, "cancel "+e.ctag)
				if s < 4 {
					delete(dc.ch[s%2].consumers, e.ctag)
				}
			case "close":
				ev[min(s, 4)].lines = append(ev[min(s, 4)].lines, fmt.Sprintf("close %d %d.%d", e.code, e.class, e.method))
				r.closes = append(r.closes, fmt.Sprintf("%s channel close %d %d.%d", name, e.code, e.class, e.method))
			case "connclose":
				ev[4].lines = append(ev[4].lines, fmt.Sprintf("%s close %d %d.%d", name, e.code, e.class, e.method))
				r.closes = append(r.closes, fmt.Sprintf("%s connection close %d %d.%d", name, e.code, e.class, e.method))
			}
		}
	}

	// The step's acks hold unless its channel closed.
	_, opch := r.slot(o.C)
	if !opch.ch.IsClosed() && !r.conns[o.C/2].c.IsClosed() {
		for _, a := range pending {
			r.settleAck(opch, a)
		}
	}
	// Closed channels and connections return their unacked deliveries (those of this step too) and are
	// reopened; the other channels' deliveries come after, since they may be the redeliveries.
	closed := func(s int) bool {
		dc := r.conns[s/2]
		return dc.c.IsClosed() || dc.ch[s%2].ch.IsClosed()
	}
	for _, d := range deliveries {
		if closed(d.slot) {
			d.f()
		}
	}
	var reopen [][2]int
	for k, dc := range r.conns {
		for j, ch := range dc.ch {
			if closed(k*2 + j) {
				r.requeueAll(ch)
				for _, cons := range ch.consumers {
					if r.qspec[max(cons.q, 0)].AutoDelete {
						r.ledger.markVolatile(cons.q)
					}
				}
				reopen = append(reopen, [2]int{k, j})
			}
		}
		if dc.c.IsClosed() {
			for i, s := range r.qspec {
				if s.Exclusive {
					r.ledger.markVolatile(i)
				}
			}
			for i, o := range r.owner {
				if o == k+1 {
					r.owner[i] = 0
					r.exists[i] = false
				}
			}
		}
	}
	for _, d := range deliveries {
		if !closed(d.slot) {
			d.f()
		}
	}
	r.ledger.endStep()
	for _, kj := range reopen {
		k, j := kj[0], kj[1]
		if r.conns[k].c.IsClosed() {
			if err := r.dial(k); err != nil {
				return "", err
			}
			continue
		}
		if err := r.openChannel(k, j); err != nil {
			return "", err
		}
	}

	var b strings.Builder
	b.WriteString(res)
	for s, e := range ev {
		if len(e.lines) == 0 {
			continue
		}
		name := "conn"
		if s < 4 {
			name = diffSlotNames[s]
		}
		b.WriteString(" | " + name + ": " + strings.Join(diffGroup(e.lines), "; "))
	}
	return b.String(), nil
}

// diffGroup orders one channel's events of one step by kind and consumer tag, keeping the order within
// each group: the order between consumers, and between a channel's consumers and its returns, is not
// defined.
func diffGroup(lines []string) []string {
	key := func(l string) string {
		f := strings.Fields(l)
		switch f[0] {
		case "deliver":
			return "deliver " + f[1]
		case "cancel":
			return l // the order of one queue's consumers is not defined
		}
		return f[0]
	}
	out := append([]string(nil), lines...)
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}

// run runs steps and then records the final state: each queue's remaining messages and the dead-lettered
// ones. It deletes everything it declared.
func (r *diffRun) run(steps []diffOp) error {
	defer r.close()
	defer r.cleanup()
	for k := range 2 {
		if err := r.dial(k); err != nil {
			return err
		}
	}
	// The dead-letter target: an exchange and a queue that only the final accounting reads.
	_, setup := r.slot(0)
	if err := setup.ch.ExchangeDeclare(r.prefix+"dlx", "fanout", false, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dlx: %w", err)
	}
	if _, err := setup.ch.QueueDeclare(r.prefix+"dlq", false, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dlq: %w", err)
	}
	if err := setup.ch.QueueBind(r.prefix+"dlq", "", r.prefix+"dlx", false, nil); err != nil {
		return fmt.Errorf("bind dlq: %w", err)
	}
	for i, o := range steps {
		line, err := r.step(o)
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", i, o, err)
		}
		r.lines = append(r.lines, line)
	}
	return r.final()
}

// final cancels the consumers and closes the step channels (their unacked messages go back), then drains every queue with
// basic.get on fresh channels of the same connections (so exclusive queues are still there).
func (r *diffRun) final() error {
	// First every consumer is cancelled, so that what the closes requeue is not delivered to a
	// consumer on a channel not closed yet.
	for _, dc := range r.conns {
		for _, ch := range dc.ch {
			for _, tag := range slices.Sorted(maps.Keys(ch.consumers)) {
				_ = ch.ch.Cancel(tag, false)
			}
		}
	}
	for _, dc := range r.conns {
		for _, ch := range dc.ch {
			_ = ch.ch.Close()
			r.requeueAll(ch)
		}
	}
	r.sync(0)
	drain := func(name string) (string, []amqp.Delivery, error) {
		for _, dc := range r.conns {
			ch, err := dc.c.Channel()
			if err != nil {
				return "", nil, fmt.Errorf("final channel.open: %w", err)
			}
			q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
			if err != nil {
				var ae *amqp.Error
				if errors.As(err, &ae) && ae.Code == amqp.ResourceLocked {
					continue // the other connection's exclusive queue
				}
				return "missing", nil, nil
			}
			var got []amqp.Delivery
			for range q.Messages + 1 {
				d, ok, err := ch.Get(name, true)
				if err != nil {
					return "", nil, fmt.Errorf("final get %s: %w", name, err)
				}
				if !ok {
					break
				}
				got = append(got, d)
			}
			_ = ch.Close()
			return fmt.Sprintf("ready=%d", q.Messages), got, nil
		}
		return "locked", nil, nil
	}
	for i := range diffQueues {
		st, got, err := drain(r.qname(i))
		if err != nil {
			return err
		}
		var bodies []string
		for _, d := range got {
			bodies = append(bodies, string(d.Body))
			r.ledger.final(i, string(d.Body))
		}
		r.lines = append(r.lines, fmt.Sprintf("final %s: %s %v", diffQName(i), st, bodies))
	}
	st, got, err := drain(r.prefix + "dlq")
	if err != nil {
		return err
	}
	var dead []string
	for _, d := range got {
		q, reason := diffDeath(d.Headers)
		dead = append(dead, fmt.Sprintf("%s<-%s:%s", d.Body, strings.TrimPrefix(q, r.prefix), reason))
		r.ledger.deadLettered(strings.TrimPrefix(q, r.prefix), string(d.Body), reason)
	}
	sort.Strings(dead)
	r.lines = append(r.lines, fmt.Sprintf("final dlq: %s dead-lettered=%d %v", st, len(dead), dead))
	return nil
}

// diffDeath returns the queue and reason of the first x-death entry.
func diffDeath(h amqp.Table) (queue, reason string) {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return "?", "?"
	}
	d, _ := deaths[0].(amqp.Table)
	queue, _ = d["queue"].(string)
	reason, _ = d["reason"].(string)
	return queue, reason
}

// cleanup deletes every name the run may have declared, on a fresh connection.
func (r *diffRun) cleanup() {
	c, err := amqp.Dial(r.url)
	if err != nil {
		return
	}
	defer c.Close()
	del := func(f func(ch *amqp.Channel) error) {
		ch, err := c.Channel()
		if err != nil {
			return
		}
		if f(ch) == nil {
			_ = ch.Close()
		}
	}
	for i := -1; i < diffQueues; i++ {
		del(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(r.qname(i), false, false, false); return err })
	}
	del(func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(r.prefix+"dlq", false, false, false)
		return err
	})
	for i := -1; i < diffExchanges; i++ {
		del(func(ch *amqp.Channel) error { return ch.ExchangeDelete(r.xname(i), false, false) })
	}
	del(func(ch *amqp.Channel) error { return ch.ExchangeDelete(r.prefix+"dlx", false, false) })
}
