package exchange

import "github.com/warrenmq/warren/amqp"

// binding is the router's record of one binding.
//
// Invariants: a binding is linked into the insertion-order list (prev, next)
// exactly while it is in the router; ds.bindings[dslot] == b; and, depending
// on the kind, b is at index slot of exactly one route list: the direct list
// for its key, the bindings of its trie node (topic), or router.list
// (headers). Fanout bindings are in no route list: fanout routes from the
// destination list.
type binding[D comparable] struct {
	key  string
	args amqp.Table
	ds   *destState[D]

	prev, next *binding[D] // insertion order
	dslot      int         // index in ds.bindings
	slot       int         // index in the kind's route list

	node *topicNode[D] // topic: the trie node holding b
	hdr  headerSpec    // headers: the pre-parsed match spec
}

// destState is one destination with at least one binding.
//
// Invariants: len(bindings) > 0 while the destState is in router.dests;
// router.dests[slot] == d; mark == router.gen exactly when d has already been
// appended by the Route call in progress.
type destState[D comparable] struct {
	dest     D
	bindings []*binding[D]
	slot     int
	mark     uint64
}

// identKey is the part of a binding's identity that can be hashed; args are
// compared with amqp.Table.Equal among the bindings sharing an identKey.
type identKey[D comparable] struct {
	dest D
	key  string
}

// router implements Router for every kind; the kind-specific parts are the
// route indexes (direct, topic, list) and the switch statements below.
type router[D comparable] struct {
	kind Kind

	// Identity and bookkeeping, common to every kind.
	ident      map[identKey[D]][]*binding[D]
	byDest     map[D]*destState[D]
	dests      []*destState[D] // every destState, in no particular order
	head, tail *binding[D]     // insertion-order list
	n          int             // number of bindings

	// gen is incremented by every Route call; a destState whose mark equals
	// gen has already been appended in this call. It never wraps in practice
	// (2^64 calls).
	gen uint64

	direct map[string][]*binding[D] // Direct: key -> bindings
	topic  topicTrie[D]             // Topic
	list   []*binding[D]            // Headers: every binding
}

func newRouter[D comparable](kind Kind) *router[D] {
	r := &router[D]{
		kind:   kind,
		ident:  make(map[identKey[D]][]*binding[D]),
		byDest: make(map[D]*destState[D]),
	}
	switch kind {
	case Direct:
		r.direct = make(map[string][]*binding[D])
	case Topic:
		r.topic.init()
	}
	return r
}

func (r *router[D]) find(dest D, key string, args amqp.Table) (*binding[D], []*binding[D]) {
	same := r.ident[identKey[D]{dest, key}]
	for _, b := range same {
		if b.args.Equal(args) {
			return b, same
		}
	}
	return nil, same
}

func (r *router[D]) Bind(dest D, key string, args amqp.Table) bool {
	b, same := r.find(dest, key, args)
	if b != nil {
		return false
	}
	ds := r.byDest[dest]
	if ds == nil {
		ds = &destState[D]{dest: dest, slot: len(r.dests)}
		r.byDest[dest] = ds
		r.dests = append(r.dests, ds)
	}
	b = &binding[D]{key: key, args: args, ds: ds, dslot: len(ds.bindings)}
	ds.bindings = append(ds.bindings, b)
	r.ident[identKey[D]{dest, key}] = append(same, b)

	b.prev = r.tail
	if r.tail != nil {
		r.tail.next = b
	} else {
		r.head = b
	}
	r.tail = b
	r.n++

	switch r.kind {
	case Direct:
		l := r.direct[key]
		b.slot = len(l)
		r.direct[key] = append(l, b)
	case Topic:
		r.topic.insert(b)
	case Headers:
		b.hdr = parseHeaderSpec(args)
		b.slot = len(r.list)
		r.list = append(r.list, b)
	}
	return true
}

func (r *router[D]) Has(dest D, key string, args amqp.Table) bool {
	b, _ := r.find(dest, key, args)
	return b != nil
}

func (r *router[D]) Unbind(dest D, key string, args amqp.Table) bool {
	b, _ := r.find(dest, key, args)
	if b == nil {
		return false
	}
	r.remove(b)
	return true
}

func (r *router[D]) UnbindAll(dest D) int {
	ds := r.byDest[dest]
	if ds == nil {
		return 0
	}
	n := len(ds.bindings)
	// remove swaps from the end of ds.bindings; removing the last one each
	// time keeps the iteration simple.
	for len(ds.bindings) > 0 {
		r.remove(ds.bindings[len(ds.bindings)-1])
	}
	return n
}

// remove deletes b from every index. Swap-removal keeps it O(1) apart from
// the identity list, whose length is the number of bindings sharing b's
// dest and key (normally one).
func (r *router[D]) remove(b *binding[D]) {
	ik := identKey[D]{b.ds.dest, b.key}
	same := r.ident[ik]
	for i, x := range same {
		if x == b {
			// Keep the order: Bind's identity check scans this list.
			copy(same[i:], same[i+1:])
			same[len(same)-1] = nil // drop the reference for the GC
			same = same[:len(same)-1]
			break
		}
	}
	if len(same) == 0 {
		delete(r.ident, ik)
	} else {
		r.ident[ik] = same
	}

	if b.prev != nil {
		b.prev.next = b.next
	} else {
		r.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		r.tail = b.prev
	}
	b.prev, b.next = nil, nil
	r.n--

	ds := b.ds
	ds.bindings = swapRemove(ds.bindings, b.dslot, func(m *binding[D], i int) { m.dslot = i })
	if len(ds.bindings) == 0 {
		delete(r.byDest, ds.dest)
		r.dests = swapRemove(r.dests, ds.slot, func(m *destState[D], i int) { m.slot = i })
	}

	switch r.kind {
	case Direct:
		l := swapRemove(r.direct[b.key], b.slot, func(m *binding[D], i int) { m.slot = i })
		if len(l) == 0 {
			delete(r.direct, b.key)
		} else {
			r.direct[b.key] = l
		}
	case Topic:
		r.topic.remove(b)
	case Headers:
		r.list = swapRemove(r.list, b.slot, func(m *binding[D], i int) { m.slot = i })
	}
}

// swapRemove removes s[i] by moving the last element into its place, calls
// setSlot for the moved element, clears the vacated slot and returns the
// shortened slice.
func swapRemove[T any](s []T, i int, setSlot func(T, int)) []T {
	last := len(s) - 1
	if i != last {
		s[i] = s[last]
		setSlot(s[i], i)
	}
	var zero T
	s[last] = zero
	return s[:last]
}

func (r *router[D]) Route(routingKey string, headers amqp.Table, out []D) []D {
	r.gen++
	switch r.kind {
	case Direct:
		for _, b := range r.direct[routingKey] {
			out = r.emit(b.ds, out)
		}
	case Fanout, FederationUpstream:
		// Each destState is distinct, so no de-duplication is needed.
		for _, ds := range r.dests {
			out = append(out, ds.dest)
		}
	case Topic:
		out = r.routeTopic(routingKey, out)
	case Headers:
		for _, b := range r.list {
			if b.ds.mark != r.gen && b.hdr.match(headers) {
				out = r.emit(b.ds, out)
			}
		}
	}
	return out
}

// emit appends ds.dest to out unless this Route call already did.
func (r *router[D]) emit(ds *destState[D], out []D) []D {
	if ds.mark == r.gen {
		return out
	}
	ds.mark = r.gen
	return append(out, ds.dest)
}

func (r *router[D]) Bindings() []Binding[D] {
	bs := make([]Binding[D], 0, r.n)
	for b := r.head; b != nil; b = b.next {
		bs = append(bs, Binding[D]{Dest: b.ds.dest, Key: b.key, Args: b.args})
	}
	return bs
}

func (r *router[D]) Len() int { return r.n }

func (r *router[D]) HasDest(dest D) bool {
	_, ok := r.byDest[dest]
	return ok
}
