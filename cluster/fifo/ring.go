package fifo

import (
	"math/bits"
	"slices"
)

// ring is a FIFO of values in a growable circular buffer: the ready messages.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(8, 2*len(r.buf)))
		for i := range r.n {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// front returns the first value; the ring must not be empty.
func (r *ring[T]) front() *T { return &r.buf[r.head] }

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v
}

// at returns the i-th value from the front.
func (r *ring[T]) at(i int) *T { return &r.buf[(r.head+i)%len(r.buf)] }

// liveSet is the set of message ids (log indexes) the queue still holds, for the release
// cursor. Ids are kept in pages of 4096 bits; only pages with a live id exist, so memory follows
// the number of live messages, not the spread of their ids (one message stuck unacked for a
// billion log entries costs one page).
type liveSet struct {
	pages map[uint64]*livePage
	order []uint64 // numbers of the pages in pages, increasing
	n     int
	spare *livePage // an emptied page, reused (a queue that keeps up empties and refills one page)
}

const pageBits = 4096

type livePage struct {
	bits [pageBits / 64]uint64
	n    int
}

// add adds id; it reports false if id was already there.
func (l *liveSet) add(id uint64) bool {
	no := id / pageBits
	pg := l.pages[no]
	if pg == nil {
		if l.pages == nil {
			l.pages = map[uint64]*livePage{}
		}
		pg = l.spare
		if pg == nil {
			pg = &livePage{}
		}
		l.spare = nil
		l.pages[no] = pg
		if i, _ := slices.BinarySearch(l.order, no); i == len(l.order) {
			l.order = append(l.order, no) // the usual case: ids grow
		} else {
			l.order = slices.Insert(l.order, i, no)
		}
	}
	w, b := (id%pageBits)/64, uint64(1)<<(id%64)
	if pg.bits[w]&b != 0 {
		return false
	}
	pg.bits[w] |= b
	pg.n++
	l.n++
	return true
}

func (l *liveSet) remove(id uint64) {
	no := id / pageBits
	pg := l.pages[no]
	w, b := (id%pageBits)/64, uint64(1)<<(id%64)
	if pg == nil || pg.bits[w]&b == 0 {
		return
	}
	pg.bits[w] &^= b
	pg.n--
	l.n--
	if pg.n == 0 {
		delete(l.pages, no)
		l.spare = pg // all its bits are clear
		if i, ok := slices.BinarySearch(l.order, no); ok {
			l.order = slices.Delete(l.order, i, i+1)
		}
	}
}

// lowest returns the smallest id in the set.
func (l *liveSet) lowest() (uint64, bool) {
	if l.n == 0 {
		return 0, false
	}
	no := l.order[0]
	pg := l.pages[no]
	for w, x := range pg.bits {
		if x != 0 {
			return no*pageBits + uint64(w)*64 + uint64(bits.TrailingZeros64(x)), true
		}
	}
	return 0, false // cannot happen: a page in order has a bit set
}
