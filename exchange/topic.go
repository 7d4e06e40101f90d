package exchange

import "strings"

// topicNode is a node of the word trie. The path from the root to a node
// spells a binding-key prefix, one edge per word.
//
// Invariants: a literal word w leads to children[w]; the whole word "*" leads
// to star and "#" to hash, never to children. parent and word locate the
// edge into the node (nil and "" for the root). Every node except the root
// has a binding or a child (empty nodes are pruned on removal). mark is the
// matcher step that last added the node to a state list.
type topicNode[D comparable] struct {
	parent   *topicNode[D]
	word     string
	children map[string]*topicNode[D]
	star     *topicNode[D]
	hash     *topicNode[D]
	isHash   bool // reached through a "#" edge: it may consume any number of words
	bindings []*binding[D]
	mark     uint64
}

func (n *topicNode[D]) empty() bool {
	return len(n.bindings) == 0 && len(n.children) == 0 && n.star == nil && n.hash == nil
}

// topicTrie indexes topic bindings by their key words.
//
// Matching simulates the trie as a nondeterministic automaton, one routing
// key word at a time, over the set of active nodes (Thompson-style), rather
// than backtracking as RabbitMQ's trie_match does. It finds the same
// bindings, but a node is active at most once per word, so matching costs at
// most O(words × nodes) even for binding keys such as "#.*.#.*.#" that make
// backtracking exponential.
type topicTrie[D comparable] struct {
	root      *topicNode[D]
	step      uint64          // matcher step counter, for topicNode.mark
	cur, next []*topicNode[D] // scratch state lists, reused across calls
}

func (t *topicTrie[D]) init() { t.root = &topicNode[D]{} }

// nextWord splits key at the first '.', returning the word and the rest, and
// whether there was a '.' (more words follow, possibly empty ones).
func nextWord(key string) (word, rest string, more bool) {
	i := strings.IndexByte(key, '.')
	if i < 0 {
		return key, "", false
	}
	return key[:i], key[i+1:], true
}

// insert adds b at the node for b.key, creating the path as needed.
// The empty key has zero words and binds at the root.
func (t *topicTrie[D]) insert(b *binding[D]) {
	n := t.root
	if b.key != "" {
		for rest, more := b.key, true; more; {
			var w string
			w, rest, more = nextWord(rest)
			n = n.child(w)
		}
	}
	b.node = n
	b.slot = len(n.bindings)
	n.bindings = append(n.bindings, b)
}

// child returns the child of n along word w, creating it if needed.
func (n *topicNode[D]) child(w string) *topicNode[D] {
	switch w {
	case "*":
		if n.star == nil {
			n.star = &topicNode[D]{parent: n, word: w}
		}
		return n.star
	case "#":
		if n.hash == nil {
			n.hash = &topicNode[D]{parent: n, word: w, isHash: true}
		}
		return n.hash
	}
	c := n.children[w]
	if c == nil {
		if n.children == nil {
			n.children = make(map[string]*topicNode[D])
		}
		c = &topicNode[D]{parent: n, word: w}
		n.children[w] = c
	}
	return c
}

// remove takes b out of its node and prunes the nodes left empty.
func (t *topicTrie[D]) remove(b *binding[D]) {
	n := b.node
	n.bindings = swapRemove(n.bindings, b.slot, func(m *binding[D], i int) { m.slot = i })
	b.node = nil
	for n != t.root && n.empty() {
		p := n.parent
		switch {
		case n == p.star:
			p.star = nil
		case n == p.hash:
			p.hash = nil
		default:
			delete(p.children, n.word)
		}
		n.parent = nil
		n = p
	}
}

// add appends n to the state list s unless it is already there in this step,
// together with the nodes reachable from it by "#" edges consuming no word.
func (t *topicTrie[D]) add(s []*topicNode[D], n *topicNode[D]) []*topicNode[D] {
	for ; n != nil && n.mark != t.step; n = n.hash {
		n.mark = t.step
		s = append(s, n)
	}
	return s
}

// routeTopic appends the destinations of the bindings whose key matches
// routingKey; r.gen must already be advanced for this call.
func (r *router[D]) routeTopic(routingKey string, out []D) []D {
	t := &r.topic
	t.step++
	cur := t.add(t.cur[:0], t.root)
	next := t.next[:0]
	if routingKey != "" {
		for rest, more := routingKey, true; more && len(cur) > 0; {
			var w string
			w, rest, more = nextWord(rest)
			t.step++
			next = next[:0]
			for _, n := range cur {
				if n.isHash {
					next = t.add(next, n) // '#' consumes w and stays
				}
				if n.star != nil {
					next = t.add(next, n.star)
				}
				if c := n.children[w]; c != nil {
					next = t.add(next, c)
				}
			}
			cur, next = next, cur
		}
	}
	for _, n := range cur {
		for _, b := range n.bindings {
			out = r.emit(b.ds, out)
		}
	}
	// Keep both (possibly grown) buffers for the next call. Clearing the used
	// part lets pruned nodes be collected; entries past it that are left from
	// earlier steps are bounded by the buffers' peak size.
	clear(cur)
	clear(next)
	t.cur, t.next = cur[:0], next[:0]
	return out
}
