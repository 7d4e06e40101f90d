package server

import (
	"testing"
)

func entries(seqs ...uint64) []*qentry {
	es := make([]*qentry, len(seqs))
	for i, s := range seqs {
		es[i] = &qentry{seq: s, msg: &message{body: make([]byte, s)}}
	}
	return es
}

func seqs(d *entryQueue) []uint64 {
	var out []uint64
	for i := d.head; i < len(d.s); i++ {
		out = append(out, d.s[i].seq)
	}
	return out
}

// Requeued entries go back to their seq position: at the head (reusing a popped slot), in the
// middle, or at the end; the byte count follows every change.
func TestEntryQueueOrderAndBytes(t *testing.T) {
	var d entryQueue
	for _, e := range entries(1, 2, 3, 4, 5) {
		d.push(e)
	}
	a, b := d.pop(), d.pop() // 1, 2 delivered
	d.pop()                  // 3 delivered
	if d.len() != 2 || d.bytes != 4+5 {
		t.Fatalf("len %d bytes %d", d.len(), d.bytes)
	}
	d.insertSorted(b)
	d.insertSorted(a)
	if got := seqs(&d); len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 4 || got[3] != 5 {
		t.Fatalf("order %v", got)
	}
	d.insertSorted(entries(3)[0])
	if got := seqs(&d); len(got) != 5 || got[2] != 3 {
		t.Fatalf("middle insert: %v", got)
	}
	if d.bytes != 1+2+3+4+5 {
		t.Fatalf("bytes %d", d.bytes)
	}
	d.reset()
	if d.len() != 0 || d.bytes != 0 {
		t.Fatalf("after reset len %d bytes %d", d.len(), d.bytes)
	}
}

// Popping a long queue compacts the backing slice instead of growing it forever.
func TestEntryQueueCompacts(t *testing.T) {
	var d entryQueue
	for i := range 5000 {
		d.push(entries(uint64(i % 7))[0])
		if i%2 == 1 {
			d.pop()
		}
	}
	if d.len() != 2500 {
		t.Fatalf("len %d", d.len())
	}
	if d.head > len(d.s)/2+1024 {
		t.Fatalf("head %d of %d: not compacted", d.head, len(d.s))
	}
}

func TestQueueArgsValidation(t *testing.T) {
	v := &vhost{name: "/"}
	cases := []struct {
		args    map[string]any
		wantErr string
	}{
		{map[string]any{"x-max-length": int32(5), "x-overflow": "reject-publish"}, ""},
		{map[string]any{"x-max-length": "ten"}, `PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': "expected integer, got longstr"`},
		{map[string]any{"x-max-length": int64(-1)}, "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"},
		{map[string]any{"x-expires": int16(0)}, "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"},
		{map[string]any{"x-overflow": "drop-tail"}, "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'q' in vhost '/': invalid_overflow"},
		{map[string]any{"x-unknown": "anything"}, ""},
	}
	for _, c := range cases {
		lim, err := v.queueArgs("q", c.args)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.wantErr != "" && (err == nil || asAMQPError(err).Text != c.wantErr):
			t.Errorf("%v: got %v, want %s", c.args, err, c.wantErr)
		}
		if c.wantErr == "" && c.args["x-max-length"] != nil && (lim.maxLen != 5 || lim.overflow != "reject-publish") {
			t.Errorf("limits %+v", lim)
		}
	}
}
