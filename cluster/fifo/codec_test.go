package fifo

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleCommands() []Command {
	cfg := Config{DeliveryLimit: 3, MaxLength: 10, MaxLengthBytes: -1, Overflow: RejectPublish,
		DeadLetter: AtLeastOnce, SingleActive: true, MessageTTL: 60000, Expires: -1}
	return []Command{
		{Kind: KindEnqueue, Time: 1700000000000, Producer: 42, Seq: 7, Size: 5, TTL: -1, Body: []byte("hello")},
		{Kind: KindEnqueue, Time: -5, TTL: 0, Body: []byte{}},
		{Kind: KindCheckout, Time: 3, Consumer: ConsumerKey{Owner: 1 << 60, Tag: "amq.ctag-1"}, Mode: Credited, Credit: 100, Priority: -3, Exclusive: true},
		{Kind: KindCheckout, Consumer: ConsumerKey{Owner: 1, Tag: "n"}, Credit: 1, NoAck: true},
		{Kind: KindCancel, Consumer: ConsumerKey{Owner: 1, Tag: "c"}},
		{Kind: KindSettle, Consumer: ConsumerKey{Owner: 1, Tag: "c"}, IDs: []uint64{1, 2, 1 << 63}},
		{Kind: KindReturn, Consumer: ConsumerKey{Owner: 1, Tag: "c"}, IDs: []uint64{9}},
		{Kind: KindDiscard, Consumer: ConsumerKey{Owner: 1}, IDs: []uint64{}},
		{Kind: KindCredit, Consumer: ConsumerKey{Owner: 2, Tag: "x"}, Credit: 5, Drain: true},
		{Kind: KindDequeue, Owner: 9, Settled: true},
		{Kind: KindPurge, Time: 1},
		{Kind: KindDown, Owner: 77},
		{Kind: KindTick, Time: 1 << 40},
		{Kind: KindConfig, Config: cfg},
		{Kind: KindConfig, Config: DefaultConfig()},
		{Kind: KindDeadLetterSettled, IDs: []uint64{5, 6}},
	}
}

// normal makes the empty and nil slices of a decoded command compare equal to the original's.
func normal(c Command) Command {
	if len(c.IDs) == 0 {
		c.IDs = nil
	}
	if len(c.Body) == 0 {
		c.Body = nil
	}
	return c
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		b := c.Append(nil)
		var d Command
		if err := Decode(b, &d); err != nil {
			t.Fatalf("%v: %v", c.Kind, err)
		}
		if !reflect.DeepEqual(normal(c), normal(d)) {
			t.Errorf("%v: decoded\n%+v\nwant\n%+v", c.Kind, d, c)
		}
		// Every truncation is an error, never a panic.
		for i := range len(b) {
			if err := Decode(b[:i], &d); err == nil {
				t.Errorf("%v: %d of %d bytes decoded", c.Kind, i, len(b))
			}
		}
		if err := Decode(append(b, 0), &d); err == nil {
			t.Errorf("%v: a trailing byte decoded", c.Kind)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version", []byte{2, 1, 0}, ErrVersion},
		{"kind 0", []byte{1, 0, 0}, ErrInvalid},
		{"kind 99", []byte{1, 99, 0}, ErrInvalid},
		{"bool 2", []byte{1, byte(KindDequeue), 0, 1, 2}, ErrInvalid},
		{"mode 2", []byte{1, byte(KindCheckout), 0, 1, 1, 'c', 2, 0, 0, 0}, ErrInvalid},
		{"ttl -2", []byte{1, byte(KindEnqueue), 0, 0, 0, 0, 3, 0}, ErrInvalid},
		{"body longer than the input", []byte{1, byte(KindEnqueue), 0, 0, 0, 0, 1, 10, 'a'}, ErrTruncated},
		{"ids more than the input", []byte{1, byte(KindDeadLetterSettled), 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrTruncated},
		{"credit over uint32", append([]byte{1, byte(KindCredit), 0, 1, 0}, 0x80, 0x80, 0x80, 0x80, 0x10, 0), ErrInvalid},
		{"varint overflow", []byte{1, byte(KindDown), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrInvalid},
	} {
		var c Command
		err := Decode(tc.b, &c)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	long := Command{Kind: KindCancel, Consumer: ConsumerKey{Tag: string(make([]byte, 256))}}
	var c Command
	if err := Decode(long.Append(nil), &c); !errors.Is(err, ErrInvalid) {
		t.Errorf("a 256-byte tag: %v", err)
	}
}

// FuzzDecode: any bytes decode to a command or an error, never a panic; what decodes encodes
// back to bytes that decode to the same command; and the state machine applies it without panic.
func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(c.Append(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Command
		if err := Decode(b, &c); err != nil {
			return
		}
		again := c.Append(nil)
		var d Command
		if err := Decode(again, &d); err != nil {
			t.Fatalf("re-encoding of a decoded command does not decode: %v", err)
		}
		if !reflect.DeepEqual(normal(c), normal(d)) || !bytes.Equal(again, d.Append(nil)) {
			t.Fatalf("round trip differs: %+v vs %+v", c, d)
		}
		// A Decoder and a Command reused from another command decode the same.
		var dec Decoder
		reused := Command{}
		for _, prev := range sampleCommands() {
			if err := dec.Decode(prev.Append(nil), &reused); err != nil {
				t.Fatal(err)
			}
			if err := dec.Decode(b, &reused); err != nil {
				t.Fatalf("decodes alone, not after %v: %v", prev.Kind, err)
			}
			if !reflect.DeepEqual(normal(c), normal(reused)) {
				t.Fatalf("after %v: %+v, alone %+v", prev.Kind, reused, c)
			}
		}
		s := New()
		s.Apply(1, &c)
		s.Apply(2, &c)
	})
}

// FuzzRestore: any bytes restore to a state or an error, never a panic; a restored state
// marshals to bytes that restore to the same bytes, and applies commands without panic.
func FuzzRestore(f *testing.F) {
	s := New()
	var i uint64
	for _, c := range sampleCommands() {
		i++
		s.Apply(i, &c)
		f.Add(s.Marshal())
		f.Add(s.MarshalCheckpoint())
	}
	f.Add(busyState().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Restore(b)
		if err != nil {
			return
		}
		m1 := s.Marshal()
		s2, err := Restore(m1)
		if err != nil {
			t.Fatalf("a restored state's snapshot does not restore: %v", err)
		}
		if !bytes.Equal(m1, s2.Marshal()) {
			t.Fatal("snapshot of a restored snapshot differs")
		}
		next := s.Index()
		for _, c := range sampleCommands() {
			next++
			if next == 0 {
				return
			}
			s.Apply(next, &c)
			s.Counts()
			s.Consumers()
			s.PendingDeadLetters()
		}
	})
}

// busyState is a queue with something in every part of the state.
func busyState() *State {
	s := New()
	k1, k2 := ConsumerKey{Owner: 1, Tag: "a"}, ConsumerKey{Owner: 2, Tag: "b"}
	cmds := []Command{
		{Kind: KindConfig, Config: Config{DeliveryLimit: 5, MaxLength: 100, MaxLengthBytes: -1, Overflow: RejectPublish,
			DeadLetter: AtLeastOnce, SingleActive: true, MessageTTL: 1000, Expires: 5000}},
		{Kind: KindCheckout, Consumer: k1, Credit: 2},
		{Kind: KindCheckout, Consumer: k2, Credit: 2},
	}
	for i := range 6 {
		cmds = append(cmds, Command{Kind: KindEnqueue, Producer: 9, Seq: uint64(i + 1), Size: 3, TTL: -1, Body: []byte("abc")})
	}
	cmds = append(cmds,
		Command{Kind: KindReturn, Consumer: k1, IDs: []uint64{4}},
		Command{Kind: KindDiscard, Consumer: k1, IDs: []uint64{5}},
		Command{Kind: KindDequeue, Owner: 3},
		Command{Kind: KindCancel, Consumer: k1},
	)
	for i, c := range cmds {
		c.Time = int64(i)
		s.Apply(uint64(i+1), &c)
	}
	return s
}
