package storage

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// stores lists every Store implementation; each test runs over all of them.
var stores = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"mem", func(t *testing.T) Store { return NewMemStore() }},
	{"pebble-memfs", func(t *testing.T) Store { return openPebble(t, "/data", PebbleOptions{FS: vfs.NewMem()}) }},
	{"pebble-disk", func(t *testing.T) Store { return openPebble(t, t.TempDir(), PebbleOptions{}) }},
}

func forEachStore(t *testing.T, f func(t *testing.T, s Store)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.open(t)
			t.Cleanup(func() { s.Close() })
			f(t, s)
		})
	}
}

func scanAll(t *testing.T, s Store, prefix []byte) []string {
	t.Helper()
	var got []string
	if err := s.Scan(prefix, func(k, v []byte) error {
		got = append(got, string(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSetDeleteScanOrder(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		var b Batch
		b.Set([]byte("pb"), []byte("2"))
		b.Set([]byte("pa"), []byte("1"))
		b.Set([]byte("q"), []byte("x"))
		b.Set([]byte("pc"), []byte("3"))
		if err := s.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
		if got := scanAll(t, s, []byte("p")); !equal(got, "pa=1", "pb=2", "pc=3") {
			t.Fatalf("scan = %q", got)
		}
		var d Batch
		d.Delete([]byte("pb"))
		d.DeleteRange([]byte("pc"), []byte("pd"))
		if err := s.Apply(&d, false); err != nil {
			t.Fatal(err)
		}
		if got := scanAll(t, s, nil); !equal(got, "pa=1", "q=x") {
			t.Fatalf("after deletes: %q", got)
		}
	})
}

func TestScanStopsOnError(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		var b Batch
		b.Set([]byte("a"), nil)
		b.Set([]byte("b"), nil)
		s.Apply(&b, false)
		stop := errors.New("stop")
		n := 0
		err := s.Scan(nil, func(k, v []byte) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Fatalf("err=%v n=%d", err, n)
		}
	})
}

func TestClosedStoreRefuses(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		s.Close()
		if err := s.Apply(&Batch{}, true); !errors.Is(err, ErrClosed) {
			t.Fatalf("apply after close: %v", err)
		}
		if err := s.Scan(nil, func(k, v []byte) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Fatalf("scan after close: %v", err)
		}
	})
}

func TestKeysSortAndParse(t *testing.T) {
	a := QueueKey("/", "ab")
	b := QueueKey("/", "b")
	c := QueueKey("/x", "a")
	if !(bytes.Compare(a, c) < 0 && bytes.Compare(b, c) < 0) {
		t.Fatalf("a vhost's queues must sort before the next vhost's")
	}
	v, n, err := ParseEntityKey(a)
	if err != nil || v != "/" || n != "ab" {
		t.Fatalf("parse: %q %q %v", v, n, err)
	}
	if _, _, err := ParseEntityKey([]byte{prefixQueue, 0, 9, 'x'}); err == nil {
		t.Fatal("a truncated key parsed")
	}
	// Length prefixes keep ("a","bc") and ("ab","c") apart.
	if bytes.Equal(ExchangeKey("a", "bc"), ExchangeKey("ab", "c")) {
		t.Fatal("ambiguous keys")
	}
}

func TestMemStoreReopenKeepsContents(t *testing.T) {
	s := NewMemStore()
	var b Batch
	b.Set([]byte("k"), []byte("v"))
	s.Apply(&b, true)
	s.Close()
	r := s.Reopen()
	if got := scanAll(t, r, nil); !equal(got, "k=v") {
		t.Fatalf("reopened: %q", got)
	}
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestScanRangeAndStop(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		var b Batch
		for q := uint64(1); q <= 3; q++ {
			for seq := uint64(1); seq <= 5; seq++ {
				b.Set(MessageKey(q, seq), []byte{byte(q), byte(seq)})
			}
		}
		if err := s.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
		start, end := MessageRange(2)
		var seqs []uint64
		if err := s.ScanRange(MessageKey(2, 3), end, func(k, v []byte) error {
			q, seq, err := ParseMessageKey(k)
			if err != nil || q != 2 || v[1] != byte(seq) {
				t.Fatalf("key %x value %x: q=%d err=%v", k, v, q, err)
			}
			seqs = append(seqs, seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seqs) != 3 || seqs[0] != 3 || seqs[2] != 5 {
			t.Fatalf("seqs = %v, want [3 4 5]", seqs)
		}
		n := 0
		if err := s.ScanRange(start, nil, func(k, v []byte) error {
			n++
			if n == 2 {
				return ErrStop
			}
			return nil
		}); err != nil || n != 2 {
			t.Fatalf("stop: n=%d err=%v", n, err)
		}
		var d Batch
		d.DeleteRange(start, end)
		if err := s.Apply(&d, false); err != nil {
			t.Fatal(err)
		}
		if got := scanAll(t, s, MessagePrefix()); len(got) != 10 {
			t.Fatalf("after range delete of queue 2: %d records, want 10", len(got))
		}
	})
}
