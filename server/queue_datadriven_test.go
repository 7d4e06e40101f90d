package server

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/internal/script"
)

// TestQueueRules runs the scripts in testdata/queue/*.txt against classic queues, through the
// queue-type interface (queueImpl) and fake delivery targets: no sockets, no AMQP channel. Each
// line is a command; "# " starts a comment line; "-> want" is the expected result (compared with
// runs of spaces as one); a command token or argument value in double quotes is a Go string
// literal ("" is the empty string).
//
//	queue <name> [durable] [k=v ...] [-> error text]  declare a queue and make it current
//	                                                  (v: int64 if it parses, true/false, else string)
//	use <name>                                        make a declared queue current
//	publish <body> [prio=N] [ttl=ms] [age=ms] [-> published|rejected]
//	                                                  enqueue on the current queue; age: published
//	                                                  that long ago (TTLs run from then)
//	consume <tag> [credit=N] [noack] [exclusive] [x-priority=N] [-> ok|error text]
//	                                                  attach a fake target with credit N (0: unlimited)
//	cancel <tag>                                      detach it (its unsettled messages stay with it)
//	credit <tag> <n>                                  give it n more credit and kick the queue
//	delivered <tag> -> <body>...                      what reached the target since the last
//	                                                  "delivered"; body(r) if redelivered,
//	                                                  body(dc=N) with x-delivery-count N
//	ack|nack|reject <tag> <body>...                   settle: ack, requeue, or reject (dead-letter)
//	get [ack] -> <body>|empty                         basic.get on the current queue
//	settle ack|nack|reject <body>...                  settle what get took with ack
//	counts -> ready=N unacked=N consumers=N
//	purge -> N
//	delete [if-unused] [if-empty] -> N|error text
func TestQueueRules(t *testing.T) {
	files, err := filepath.Glob("testdata/queue/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runQueueScript(t, file) })
	}
}

// fakeTarget is a delivery target with credit that records what it is handed.
type fakeTarget struct {
	sub subscription
	q   queueImpl

	mu        sync.Mutex
	credit    int // left; unlimited if unlimited
	unlimited bool
	closed    bool
	got       []*qentry // since the last "delivered"
	held      []*qentry // delivered, not settled (ack required)
}

func (f *fakeTarget) deliver(e *qentry, _ *dispatchRun) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !f.unlimited && f.credit <= 0 {
		return false
	}
	if !f.unlimited {
		f.credit--
	}
	// The entry is the queue's: record what the client would see now.
	c := *e
	f.got = append(f.got, &c)
	if !f.sub.noAck {
		f.held = append(f.held, e)
	}
	return true
}

func (f *fakeTarget) queueDeleted() bool {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return false
}

func (f *fakeTarget) cancelled() {}

func (f *fakeTarget) deliversOn() any           { return f }
func (f *fakeTarget) describe(ci *ConsumerInfo) { ci.Prefetch = f.credit }

// take removes the held entries with the given bodies, in the order given.
func (f *fakeTarget) take(t *testing.T, pos string, bodies []string) []*qentry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return takeEntries(t, pos, &f.held, bodies)
}

func takeEntries(t *testing.T, pos string, held *[]*qentry, bodies []string) []*qentry {
	var es []*qentry
	for _, b := range bodies {
		i := slices.IndexFunc(*held, func(e *qentry) bool { return string(e.msg.body) == b })
		if i < 0 {
			t.Fatalf("%s: %q is not held", pos, b)
		}
		es = append(es, (*held)[i])
		*held = slices.Delete(*held, i, i+1)
	}
	return es
}

func describeEntry(e *qentry) string {
	s := string(e.msg.body)
	var notes []string
	if e.redelivered {
		notes = append(notes, "r")
	}
	if n, ok := e.msg.headers["x-delivery-count"]; ok {
		notes = append(notes, fmt.Sprintf("dc=%v", n))
	}
	if len(notes) > 0 {
		s += "(" + strings.Join(notes, ",") + ")"
	}
	return s
}

func scriptValue(s string) any {
	if u, err := strconv.Unquote(s); err == nil && strings.HasPrefix(s, `"`) {
		return u
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return s
}

func runQueueScript(t *testing.T, file string) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	v := s.vhost("/")
	queues := map[string]queueImpl{}
	targets := map[string]*fakeTarget{}
	var q queueImpl
	var got []*qentry // taken by get with ack

	for _, l := range script.Lines(t, file) {
		pos, cmd, toks, want, hasWant := l.Pos, l.Cmd, l.Tokens, l.Want, l.HasWant
		check := func(got string) {
			t.Helper()
			if hasWant && got != want {
				t.Errorf("%s: %s-> %s, want %s", pos, cmd, got, want)
			}
		}
		needQueue := func() {
			if q == nil {
				t.Fatalf("%s: no queue declared", pos)
			}
		}
		target := func(tag string) *fakeTarget {
			f := targets[tag]
			if f == nil {
				t.Fatalf("%s: no consumer %q", pos, tag)
			}
			return f
		}
		switch toks[0] {
		case "queue":
			d := &amqp.QueueDeclare{Queue: toks[1], Arguments: amqp.Table{}}
			for _, a := range toks[2:] {
				if a == "durable" {
					d.Durable = true
					continue
				}
				k, x, ok := strings.Cut(a, "=")
				if !ok {
					t.Fatalf("%s: bad argument %q", pos, a)
				}
				d.Arguments[k] = scriptValue(x)
			}
			nq, err := v.declareQueue(nil, d)
			if err != nil {
				check(err.(*amqp.Error).Text)
				if !hasWant {
					t.Fatalf("%s: %v", pos, err)
				}
				continue
			}
			check("ok")
			queues[toks[1]], q = nq, nq
		case "use":
			if q = queues[toks[1]]; q == nil {
				t.Fatalf("%s: no queue %q", pos, toks[1])
			}
		case "publish":
			needQueue()
			m := &message{body: []byte(toks[1]), arrived: nowMillis()}
			var props amqp.Properties
			for _, a := range toks[2:] {
				k, x, _ := strings.Cut(a, "=")
				n, err := strconv.ParseInt(x, 10, 64)
				if err != nil {
					t.Fatalf("%s: bad %q", pos, a)
				}
				switch k {
				case "prio":
					m.priority, props.Priority = uint8(n), uint8(n)
				case "ttl":
					m.ttl, m.hasTTL, props.Expiration = n, true, x
				case "age":
					m.arrived -= n
				default:
					t.Fatalf("%s: bad %q", pos, a)
				}
			}
			if m.props, err = props.Append(nil); err != nil {
				t.Fatal(err)
			}
			res, _ := q.publish(m)
			check(map[publishResult]string{published: "published", rejected: "rejected", gone: "gone"}[res])
		case "consume":
			needQueue()
			f := &fakeTarget{q: q, unlimited: true}
			f.sub = subscription{tag: toks[1], target: f, args: amqp.Table{}}
			for _, a := range toks[2:] {
				k, x, _ := strings.Cut(a, "=")
				switch k {
				case "noack":
					f.sub.noAck = true
				case "exclusive":
					f.sub.exclusive = true
				case "credit":
					n, err := strconv.Atoi(x)
					if err != nil {
						t.Fatalf("%s: bad %q", pos, a)
					}
					f.credit, f.unlimited = n, n == 0
				default:
					f.sub.args[k] = scriptValue(x)
				}
			}
			if err := q.addConsumer(&f.sub, func() {}); err != nil {
				check(err.(*amqp.Error).Text)
				if !hasWant {
					t.Fatalf("%s: %v", pos, err)
				}
				continue
			}
			check("ok")
			targets[toks[1]] = f
		case "cancel":
			f := target(toks[1])
			f.q.removeConsumer(&f.sub)
		case "credit":
			f := target(toks[1])
			n, err := strconv.Atoi(toks[2])
			if err != nil {
				t.Fatalf("%s: bad credit %q", pos, toks[2])
			}
			f.mu.Lock()
			f.credit += n
			f.mu.Unlock()
			f.q.kick(nil, nil)
		case "delivered":
			f := target(toks[1])
			f.mu.Lock()
			var out []string
			for _, e := range f.got {
				out = append(out, describeEntry(e))
			}
			f.got = nil
			f.mu.Unlock()
			check(strings.Join(out, " "))
		case "ack", "nack", "reject":
			f := target(toks[1])
			es := f.take(t, pos, toks[2:])
			settleEntries(f.q, toks[0], es)
			f.mu.Lock()
			f.credit += len(es)
			f.mu.Unlock()
			f.q.kick(nil, nil)
		case "get":
			needQueue()
			ack := len(toks) > 1 && toks[1] == "ack"
			e, _ := q.get(ack)
			if e == nil {
				check("empty")
				continue
			}
			if ack {
				got = append(got, e)
			}
			check(describeEntry(e))
		case "settle":
			needQueue()
			settleEntries(q, toks[1], takeEntries(t, pos, &got, toks[2:]))
		case "counts":
			needQueue()
			ready, unacked := q.lengths()
			_, consumers := q.counts()
			check(fmt.Sprintf("ready=%d unacked=%d consumers=%d", ready, unacked, consumers))
		case "purge":
			needQueue()
			check(strconv.Itoa(int(q.purge())))
		case "delete":
			needQueue()
			n, err := v.deleteQueue(q.(*queue), slices.Contains(toks, "if-unused"), slices.Contains(toks, "if-empty"))
			if err != nil {
				check(err.(*amqp.Error).Text)
				continue
			}
			check(strconv.Itoa(int(n)))
		default:
			t.Fatalf("%s: unknown command %q", pos, toks[0])
		}
	}
}

func settleEntries(q queueImpl, how string, es []*qentry) {
	switch how {
	case "ack":
		q.settle(es)
	case "nack":
		q.requeue(es)
	case "reject":
		q.reject(es)
	}
}
