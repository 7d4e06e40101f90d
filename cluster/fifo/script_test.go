package fifo

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmq/warren/internal/script"
)

// TestScripts runs testdata/*.txt: each line is a command applied to the queue, and "-> want" is
// the reply and the effects it must produce, in order (timers and release cursors only after
// "show timer" / "show cursor"). A line without "->" must reply ok with no effect shown.
//
// Commands (owner defaults to 1; messages are named, their bodies are their names):
//
//	new                              a fresh queue (and clock 0)
//	config k=v ...                   delivery-limit= max-length= max-bytes= overflow=drop-head|reject-publish|reject-publish-dlx
//	                                 strategy=at-least-once sac ttl= expires=
//	time T                           later commands carry time T (ms)
//	show timer|cursor                print those effects too
//	enqueue NAME [p=P s=S] [ttl=T] [size=N]
//	checkout TAG [owner=O] [prefetch=N | credit=N] [prio=P] [excl] [noack]
//	cancel TAG [owner=O]
//	settle|return|discard TAG NAME... [owner=O]   (TAG "" is the owner's basic.get)
//	credit TAG N [drain] [owner=O]
//	get [owner=O] [ack]              basic.get (ack: settled at once)
//	purge | tick | down O | disconnected O | reconnected O | dlsettled NAME...
//	counts                           -> ready= unacked= dlx= consumers= bytes=
//	consumers                        -> tag(prio,active|waiting,unacked) ...
//	roundtrip                        replace the state with Restore(Marshal())
//
// Effects print as: c<-m (a delivery; c<-m(dc=N) when redelivered), dl(m,reason) and dl+(m,reason)
// for at-least-once, nack(P:S), active(c), waiting(c), drained(c,N), timer(T), expired, cursor(N).
// Replies other than ok print first: duplicate, out-of-sequence, rejected, refused, empty,
// unknown-consumer; get prints got(m) or got(m,dc=N) with left=N, purge purged=N. A command
// with nothing to print prints ok.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := newRunner()
			for _, l := range script.Lines(t, f) {
				got := r.do(t, l)
				want := l.Want
				if !l.HasWant {
					want = "ok"
				}
				if got != want {
					t.Errorf("%s: %s\n got: %s\nwant: %s", l.Pos, l.Cmd, got, want)
				}
			}
		})
	}
}

type runner struct {
	s     *State
	index uint64
	now   int64
	ids   map[string]uint64
	names map[uint64]string
	show  map[string]bool
}

func newRunner() *runner {
	return &runner{s: New(), ids: map[string]uint64{}, names: map[uint64]string{}, show: map[string]bool{}}
}

func (r *runner) name(id uint64) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	return "#" + strconv.FormatUint(id, 10)
}

func (r *runner) apply(c *Command) (Reply, []Effect) {
	r.index++
	c.Time = r.now
	return r.s.Apply(r.index, c)
}

// opts splits tokens into positional ones and k=v options.
func opts(toks []string) ([]string, map[string]string) {
	var pos []string
	kv := map[string]string{}
	for _, t := range toks {
		if k, v, ok := strings.Cut(t, "="); ok && k != "" {
			kv[k] = v
		} else if t == "excl" || t == "drain" || t == "ack" || t == "sac" || t == "noack" {
			kv[t] = "true"
		} else {
			pos = append(pos, t)
		}
	}
	return pos, kv
}

func num(t *testing.T, pos, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: bad number %q", pos, s)
	}
	return n
}

func (r *runner) do(t *testing.T, l script.Line) string {
	pos, kv := opts(l.Tokens[1:])
	get := func(k string, def int64) int64 {
		if v, ok := kv[k]; ok {
			return num(t, l.Pos, v)
		}
		return def
	}
	owner := uint64(get("owner", 1))
	key := func() ConsumerKey {
		if len(pos) == 0 {
			t.Fatalf("%s: no consumer tag", l.Pos)
		}
		return ConsumerKey{Owner: owner, Tag: pos[0]}
	}
	msgIDs := func(names []string) []uint64 {
		var ids []uint64
		for _, n := range names {
			id, ok := r.ids[n]
			if !ok {
				t.Fatalf("%s: no message %q", l.Pos, n)
			}
			ids = append(ids, id)
		}
		return ids
	}
	c := &Command{}
	switch l.Tokens[0] {
	case "new":
		*r = *newRunner()
		return "ok"
	case "time":
		r.now = num(t, l.Pos, pos[0])
		return "ok"
	case "show":
		r.show[pos[0]] = true
		return "ok"
	case "roundtrip":
		s, err := Restore(r.s.Marshal())
		if err != nil {
			t.Fatalf("%s: %v", l.Pos, err)
		}
		if a, b := r.s.Marshal(), s.Marshal(); string(a) != string(b) {
			t.Fatalf("%s: the restored state marshals differently", l.Pos)
		}
		r.s = s
		return "ok"
	case "counts":
		n := r.s.Counts()
		return fmt.Sprintf("ready=%d unacked=%d dlx=%d consumers=%d bytes=%d", n.Ready, n.Unacked, n.DeadLetterPending, n.Consumers, n.ReadyBytes)
	case "consumers":
		var out []string
		for _, ci := range r.s.Consumers() {
			st := "active"
			if ci.Suspected {
				st = "suspected"
			} else if !ci.Active {
				st = "waiting"
			}
			out = append(out, fmt.Sprintf("%s(%d,%s,%d)", ci.Key.Tag, ci.Priority, st, ci.Unacked))
		}
		return strings.Join(out, " ")
	case "config":
		c.Kind = KindConfig
		c.Config = DefaultConfig()
		c.Config.DeliveryLimit = get("delivery-limit", -1)
		c.Config.MaxLength = get("max-length", -1)
		c.Config.MaxLengthBytes = get("max-bytes", -1)
		c.Config.MessageTTL = get("ttl", -1)
		c.Config.Expires = get("expires", -1)
		c.Config.SingleActive = kv["sac"] == "true"
		switch kv["overflow"] {
		case "", "drop-head":
		case "reject-publish":
			c.Config.Overflow = RejectPublish
		case "reject-publish-dlx":
			c.Config.Overflow = RejectPublishDLX
		default:
			t.Fatalf("%s: overflow %q", l.Pos, kv["overflow"])
		}
		if kv["strategy"] == "at-least-once" {
			c.Config.DeadLetter = AtLeastOnce
		}
	case "enqueue":
		c.Kind = KindEnqueue
		c.Producer, c.Seq = uint64(get("p", 0)), uint64(get("s", 0))
		c.TTL = get("ttl", -1)
		c.Body = []byte(pos[0])
		c.Size = uint64(get("size", int64(len(c.Body))))
		r.names[r.index+1] = pos[0]
	case "checkout":
		c.Kind = KindCheckout
		c.Consumer = key()
		c.Credit = uint32(get("prefetch", 0))
		if _, ok := kv["credit"]; ok {
			c.Mode, c.Credit = Credited, uint32(get("credit", 0))
		}
		c.Priority = int32(get("prio", 0))
		c.Exclusive = kv["excl"] == "true"
		c.NoAck = kv["noack"] == "true"
	case "cancel":
		c.Kind = KindCancel
		c.Consumer = key()
	case "settle", "return", "discard":
		c.Kind = map[string]Kind{"settle": KindSettle, "return": KindReturn, "discard": KindDiscard}[l.Tokens[0]]
		c.Consumer = key()
		c.IDs = msgIDs(pos[1:])
	case "credit":
		c.Kind = KindCredit
		c.Consumer = key()
		c.Credit = uint32(num(t, l.Pos, pos[1]))
		c.Drain = kv["drain"] == "true"
	case "get":
		c.Kind = KindDequeue
		c.Owner = owner
		c.Settled = kv["ack"] == "true"
	case "purge":
		c.Kind = KindPurge
	case "tick":
		c.Kind = KindTick
	case "down", "disconnected", "reconnected":
		c.Kind = map[string]Kind{"down": KindDown, "disconnected": KindDisconnected, "reconnected": KindReconnected}[l.Tokens[0]]
		c.Owner = uint64(num(t, l.Pos, pos[0]))
	case "dlsettled":
		c.Kind = KindDeadLetterSettled
		c.IDs = msgIDs(pos)
	default:
		t.Fatalf("%s: unknown command %q", l.Pos, l.Tokens[0])
	}
	// Every command goes through its encoding, as the log carries it.
	enc := c.Append(nil)
	var dec Command
	if err := Decode(enc, &dec); err != nil {
		t.Fatalf("%s: decoding %v: %v", l.Pos, c.Kind, err)
	}
	rep, effs := r.apply(&dec)
	if c.Kind == KindEnqueue && (rep.Status == StatusOK || rep.Status == StatusRejected) {
		r.ids[pos[0]] = r.index // a duplicate or out-of-sequence one was not applied
	}
	var out []string
	switch {
	case c.Kind == KindDequeue && rep.Status == StatusOK:
		m := r.name(rep.Msg.ID)
		if rep.Msg.DeliveryCount > 0 {
			m += ",dc=" + strconv.FormatUint(uint64(rep.Msg.DeliveryCount), 10)
		}
		out = append(out, fmt.Sprintf("got(%s) left=%d", m, rep.Count))
	case c.Kind == KindPurge:
		out = append(out, fmt.Sprintf("purged=%d", rep.Count))
	case rep.Status != StatusOK:
		out = append(out, rep.Status.String())
	}
	for _, e := range effs {
		switch e.Kind {
		case EffectDeliver:
			if string(e.Msg.Body) != r.name(e.Msg.ID) {
				t.Errorf("%s: delivery of %s carries body %q", l.Pos, r.name(e.Msg.ID), e.Msg.Body)
			}
			s := e.Consumer.Tag + "<-" + r.name(e.Msg.ID)
			if e.Msg.DeliveryCount > 0 {
				s += fmt.Sprintf("(dc=%d)", e.Msg.DeliveryCount)
			}
			out = append(out, s)
		case EffectDeadLetter:
			p := "dl"
			if e.AtLeastOnce {
				p = "dl+"
			}
			out = append(out, fmt.Sprintf("%s(%s,%s)", p, r.name(e.Msg.ID), e.Reason))
		case EffectRejectPublish:
			out = append(out, fmt.Sprintf("nack(%d:%d)", e.Producer, e.Seq))
		case EffectConsumerActive:
			out = append(out, "active("+e.Consumer.Tag+")")
		case EffectConsumerInactive:
			out = append(out, "waiting("+e.Consumer.Tag+")")
		case EffectCreditDrained:
			out = append(out, fmt.Sprintf("drained(%s,%d)", e.Consumer.Tag, e.Credit))
		case EffectTimer:
			if r.show["timer"] {
				out = append(out, fmt.Sprintf("timer(%d)", e.At))
			}
		case EffectQueueExpired:
			out = append(out, "expired")
		case EffectReleaseCursor:
			if r.show["cursor"] {
				out = append(out, fmt.Sprintf("cursor(%d)", e.Index))
			}
		default:
			t.Fatalf("%s: unknown effect %v", l.Pos, e.Kind)
		}
	}
	if len(out) == 0 {
		return "ok"
	}
	return strings.Join(out, " ")
}
