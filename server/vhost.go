package server

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/federation"
	"github.com/warrenmq/warren/storage"
)

// vhost is a virtual host: its exchanges, queues and the bindings between them.
//
// meta serialises the metadata changes of the vhost (declare, delete, bind, unbind; doc.go's lock
// table). Its holder validates and decides with no routing lock held, writes the store (and waits
// for the fsync) still holding no routing lock, and installs the change in memory briefly: the maps
// under mu taken exclusively, a router under its exchange's mu. Routing takes mu shared (and each
// exchange's mu around its router, since a router is not safe for concurrent use), so a publish
// never waits for a metadata fsync. The maps and the routers change only with meta held, so meta's
// holder reads them without mu.
type vhost struct {
	srv  *Server
	name string

	meta sync.Mutex

	mu struct {
		sync.RWMutex
		exchanges map[string]*exchangeEntity
		queues    map[string]*queue
	}

	stats statSet // message counters (stats.go)
}

// destination is a binding's destination: a *queue or an *exchangeEntity.
type destination interface {
	destName() string
	destKind() string // "queue" or "exchange", as the management API names them
}

// exchangeEntity is a declared exchange.
type exchangeEntity struct {
	name       string
	kind       exchange.Kind
	durable    bool
	autoDelete bool
	internal   bool
	args       amqp.Table

	mu struct {
		sync.Mutex // no broker lock is taken under it (doc.go's lock table)
		router     exchange.Router[destination]
	}

	pol atomic.Pointer[policy] // the policy that applies (policy.go); nil: none

	// hops filters what an x-federation-upstream exchange routes (federation.go); nil for
	// every other type.
	hops *federation.HopFilter

	stats statSet // publish_in, publish_out (stats.go)
}

func (e *exchangeEntity) destName() string { return e.name }
func (e *exchangeEntity) destKind() string { return "exchange" }

func newVhost(s *Server, name string) *vhost {
	v := &vhost{srv: s, name: name}
	v.mu.exchanges, v.mu.queues = map[string]*exchangeEntity{}, map[string]*queue{}
	for _, d := range []struct {
		name string
		kind exchange.Kind
	}{
		{"", exchange.Direct},
		{"amq.direct", exchange.Direct},
		{"amq.fanout", exchange.Fanout},
		{"amq.topic", exchange.Topic},
		{"amq.headers", exchange.Headers},
		{"amq.match", exchange.Headers},
	} {
		x := &exchangeEntity{name: d.name, kind: d.kind, durable: true}
		x.mu.router = exchange.New[destination](d.kind)
		v.mu.exchanges[d.name] = x
	}
	return v
}

// --- errors with RabbitMQ's texts ---

// errDefaultExchange refuses declaring, deleting or binding the default exchange. It is a value
// shared by every caller: callers copy it before setting the method ids (see methodErr).
var errDefaultExchange = amqp.Errorf(amqp.AccessRefused, "operation not permitted on the default exchange")

func (v *vhost) errNoExchange(name string) *amqp.Error {
	return amqp.Errorf(amqp.NotFound, "no exchange '%s' in vhost '%s'", name, v.name)
}

func (v *vhost) errNoQueue(name string) *amqp.Error {
	return amqp.Errorf(amqp.NotFound, "no queue '%s' in vhost '%s'", name, v.name)
}

func (v *vhost) errLocked(name string) *amqp.Error {
	return amqp.Errorf(amqp.ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. "+
		"It could be originally declared on another connection or the exclusive property value does not match "+
		"that of the original declaration.", name, v.name)
}

// errInequivalent is RabbitMQ's answer to a redeclaration that differs; got and cur are quoted
// values ('true') or RabbitMQ's longer forms (none, the value '10' of type 'signedint').
func (v *vhost) errInequivalent(what, name, arg string, got, cur any) *amqp.Error {
	return amqp.Errorf(amqp.PreconditionFailed, "inequivalent arg '%s' for %s '%s' in vhost '%s': received %s but current is %s",
		arg, what, name, v.name, quoteVal(got), quoteVal(cur))
}

// quoteVal formats a scalar as RabbitMQ's rabbit_misc:val/1 does: in quotes; preformatted strings
// (argValue) pass through.
func quoteVal(x any) string {
	if s, ok := x.(argValue); ok {
		return string(s)
	}
	return fmt.Sprintf("'%v'", x)
}

// --- exchanges ---

// exchange returns the named exchange or nil.
func (v *vhost) exchange(name string) *exchangeEntity {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.mu.exchanges[name]
}

func (v *vhost) declareExchangeOn(d *amqp.ExchangeDeclare, applying bool) error {
	v.meta.Lock()
	defer v.meta.Unlock()
	e := v.mu.exchanges[d.Exchange]
	// RabbitMQ 3.10.8's order: passive, the default exchange is refused (403) before the lookup
	// (404); otherwise the type is checked first (503), then the default exchange (403).
	if d.Passive {
		if d.Exchange == "" {
			return errDefaultExchange
		}
		if e == nil {
			return v.errNoExchange(d.Exchange)
		}
		return nil
	}
	kind, ok := exchange.ParseKind(d.Type)
	if !ok {
		return amqp.Errorf(amqp.CommandInvalid, "unknown exchange type '%s'", d.Type)
	}
	if d.Exchange == "" {
		return errDefaultExchange
	}
	if e != nil {
		switch {
		case e.kind != kind:
			return v.errInequivalent("exchange", d.Exchange, "type", d.Type, e.kind)
		case e.durable != d.Durable:
			return v.errInequivalent("exchange", d.Exchange, "durable", d.Durable, e.durable)
		case e.autoDelete != d.AutoDelete:
			return v.errInequivalent("exchange", d.Exchange, "auto_delete", d.AutoDelete, e.autoDelete)
		case e.internal != d.Internal:
			return v.errInequivalent("exchange", d.Exchange, "internal", d.Internal, e.internal)
		}
		if err := equivalentArgs(v, "exchange", d.Exchange, exchangeArgKeys, d.Arguments, e.args); err != nil {
			return err
		}
		return nil
	}
	if strings.HasPrefix(d.Exchange, "amq.") {
		return amqp.Errorf(amqp.AccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", d.Exchange)
	}
	if !applying && v.replicates() && d.Durable && !d.AutoDelete {
		if kind == exchange.FederationUpstream {
			if _, err := federation.ParseHopFilter(d.Arguments); err != nil {
				return amqp.Errorf(amqp.PreconditionFailed, "%v", err)
			}
		}
		return errMetaPropose // valid here: the meta group decides (meta.go)
	}
	e = &exchangeEntity{
		name: d.Exchange, kind: kind, durable: d.Durable, autoDelete: d.AutoDelete, internal: d.Internal,
		args: d.Arguments,
	}
	e.mu.router = exchange.New[destination](kind)
	if kind == exchange.FederationUpstream {
		f, err := federation.ParseHopFilter(d.Arguments)
		if err != nil {
			return amqp.Errorf(amqp.PreconditionFailed, "%v", err)
		}
		e.hops = f
	}
	if e.durable {
		var b storage.Batch
		b.Set(storage.ExchangeKey(v.name, e.name), e.record())
		if err := v.persistMeta(&b); err != nil {
			return err
		}
	}
	v.mu.Lock()
	// Under v.mu: a policy change lists the exchanges after it changed the policies (policy.go).
	e.pol.Store(v.srv.pol.match(v.name, e.name, false))
	v.mu.exchanges[d.Exchange] = e
	v.mu.Unlock()
	v.srv.fedKick()
	return nil
}

func (v *vhost) deleteExchangeOn(name string, ifUnused, applying bool) error {
	v.meta.Lock()
	defer v.meta.Unlock()
	if name == "" {
		return errDefaultExchange
	}
	if strings.HasPrefix(name, "amq.") {
		return amqp.Errorf(amqp.AccessRefused, "operation not permitted on exchange '%s' in vhost '%s'", name, v.name)
	}
	e := v.mu.exchanges[name]
	if e == nil {
		return nil // RabbitMQ answers delete-ok for a missing exchange
	}
	if ifUnused && e.mu.router.Len() > 0 {
		return amqp.Errorf(amqp.PreconditionFailed, "exchange '%s' in vhost '%s' in use", name, v.name)
	}
	if !applying && v.replicates() && e.durable && !e.autoDelete {
		return errMetaPropose
	}
	var b storage.Batch
	v.mu.Lock()
	v.removeExchangeLocked(&b, e)
	v.mu.Unlock()
	return v.persistMeta(&b)
}

// removeExchangeLocked deletes e and every binding from or to it, then auto-deletes exchanges left
// without bindings, adding the store deletes to b. v.meta and v.mu are held; the caller writes b
// after releasing v.mu (memory changes first, as a failed write leaves them made).
func (v *vhost) removeExchangeLocked(b *storage.Batch, e *exchangeEntity) {
	if e.durable {
		b.Delete(storage.ExchangeKey(v.name, e.name))
		e.mu.Lock()
		for _, bd := range e.mu.router.Bindings() {
			if destDurable(bd.Dest) {
				b.Delete(bindingKey(v.name, e, bd.Dest, bd.Key, bd.Args))
			}
		}
		e.mu.Unlock()
	}
	delete(v.mu.exchanges, e.name)
	v.unbindAllLocked(b, e)
	v.srv.fedKick()
}

// unbindAllLocked removes every binding to d and auto-deletes the source exchanges it emptied,
// adding the store deletes to b. v.meta and v.mu are held.
func (v *vhost) unbindAllLocked(b *storage.Batch, d destination) {
	var emptied []*exchangeEntity
	for _, src := range v.mu.exchanges {
		src.mu.Lock()
		v.deleteBindingsToLocked(b, src, d)
		n := src.mu.router.UnbindAll(d)
		empty := src.mu.router.Len() == 0
		src.mu.Unlock()
		if n > 0 {
			v.srv.fedBindings(v.name, src.name)
		}
		if n > 0 && empty && src.autoDelete {
			emptied = append(emptied, src)
		}
	}
	for _, src := range emptied {
		if v.mu.exchanges[src.name] == src {
			v.removeExchangeLocked(b, src)
		}
	}
}

// --- bindings ---

// bind adds a binding from the exchange srcName to dst. c is the connection binding (nil for the
// management API): another connection's exclusive queue is refused with 405, after the binding's
// arguments are checked (RabbitMQ's order, see channel.queueBind). A binding that exists already
// (a worker re-declaring its topology) changes nothing and writes nothing; a new durable one is
// written before routing can see it.
func (v *vhost) bindOn(srcName string, dst destination, key string, args amqp.Table, c *conn, applying bool) error {
	v.meta.Lock()
	defer v.meta.Unlock()
	src, err := v.bindableSourceLocked(srcName)
	if err != nil {
		return err
	}
	if err := exchange.CheckBindArgs(src.kind, args); err != nil {
		return amqp.Errorf(amqp.PreconditionFailed, "%v", err)
	}
	if q, ok := dst.(*queue); ok && c != nil && q.owner != nil && q.owner != c {
		return v.errLocked(q.name)
	}
	if err := v.liveDestLocked(dst); err != nil {
		return err
	}
	src.mu.Lock()
	exists := src.mu.router.Has(dst, key, args)
	src.mu.Unlock()
	if exists {
		return nil
	}
	if !applying && v.replicates() && replicatedBinding(src, dst) {
		return errMetaPropose
	}
	if src.durable && destDurable(dst) {
		var b storage.Batch
		b.Set(bindingKey(v.name, src, dst, key, args), encodeRecord(amqp.Table{"arguments": tableOrEmpty(args)}))
		if err := v.persistMeta(&b); err != nil {
			return err
		}
	}
	src.mu.Lock()
	src.mu.router.Bind(dst, key, args)
	src.mu.Unlock()
	v.srv.fedBindings(v.name, srcName)
	return nil
}

// liveDestLocked checks, under v.meta, that dst (looked up before v.meta was taken) has not been
// deleted meanwhile, so that no binding, in memory or in the store, leads to a deleted queue or
// exchange.
func (v *vhost) liveDestLocked(dst destination) error {
	switch d := dst.(type) {
	case *queue:
		if v.mu.queues[d.name] != d {
			return v.errNoQueue(d.name)
		}
	case *exchangeEntity:
		if v.mu.exchanges[d.name] != d {
			return v.errNoExchange(d.name)
		}
	}
	return nil
}

// unbind removes a binding. As in RabbitMQ it is idempotent: a missing source exchange or a
// missing binding is not an error. c is the connection unbinding (nil for the management API):
// an existing binding to another connection's exclusive queue is refused with 405, a missing one
// is not (RabbitMQ checks exclusivity only once it found the binding).
func (v *vhost) unbindOn(srcName string, dst destination, key string, args amqp.Table, c *conn, applying bool) error {
	v.meta.Lock()
	defer v.meta.Unlock()
	if srcName == "" {
		return errDefaultExchange
	}
	src := v.mu.exchanges[srcName]
	if src == nil {
		return nil
	}
	src.mu.Lock()
	if q, ok := dst.(*queue); ok && c != nil && q.owner != nil && q.owner != c {
		for _, bd := range src.mu.router.Bindings() {
			if bd.Dest == dst && bd.Key == key && bd.Args.Equal(args) {
				src.mu.Unlock()
				return v.errLocked(q.name)
			}
		}
		src.mu.Unlock()
		return nil
	}
	if !applying && v.replicates() && replicatedBinding(src, dst) {
		has := src.mu.router.Has(dst, key, args)
		src.mu.Unlock()
		if has {
			return errMetaPropose
		}
		return nil
	}
	removed := src.mu.router.Unbind(dst, key, args)
	empty := src.mu.router.Len() == 0
	src.mu.Unlock()
	if removed {
		v.srv.fedBindings(v.name, srcName)
	}
	if removed && src.durable && destDurable(dst) {
		var b storage.Batch
		b.Delete(bindingKey(v.name, src, dst, key, args))
		if err := v.persistMeta(&b); err != nil {
			return err
		}
	}
	if removed && empty && src.autoDelete {
		var b storage.Batch
		v.mu.Lock()
		v.removeExchangeLocked(&b, src)
		v.mu.Unlock()
		return v.persistMeta(&b)
	}
	return nil
}

func (v *vhost) bindableSourceLocked(name string) (*exchangeEntity, error) {
	if name == "" {
		return nil, errDefaultExchange
	}
	src := v.mu.exchanges[name]
	if src == nil {
		return nil, v.errNoExchange(name)
	}
	return src, nil
}

// --- routing ---

// route appends to out every queue msg reaches from ex, each at most once, following
// exchange-to-exchange bindings (each exchange visited once, so cycles end). The CC and BCC headers
// add routing keys (extra, taken from them before BCC is stripped); an exchange that routes the
// message nowhere hands it to its alternate exchange.
func (v *vhost) route(ex *exchangeEntity, key string, extra []string, msg *message, out []*queue) []*queue {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var kbuf [4]string
	keys := append(append(kbuf[:0], key), extra...)
	if ex.name == "" {
		for _, k := range keys {
			if q := v.mu.queues[k]; q != nil && !containsPtr(out, q) {
				out = append(out, q)
			}
		}
		return out
	}
	var dests [16]destination
	frontier := []*exchangeEntity{ex}
	var visited []*exchangeEntity
	for len(frontier) > 0 {
		e := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		if containsPtr(visited, e) {
			continue
		}
		visited = append(visited, e)
		if e.hops != nil && !e.hops.Forward(msg.headers) {
			continue
		}
		ds := dests[:0]
		e.mu.Lock()
		for _, k := range keys {
			ds = e.mu.router.Route(k, msg.headers, ds)
		}
		e.mu.Unlock()
		if len(ds) == 0 {
			if ae := v.alternateLocked(e); ae != nil {
				frontier = append(frontier, ae)
			}
		}
		for _, d := range ds {
			switch d := d.(type) {
			case *queue:
				if !containsPtr(out, d) {
					out = append(out, d)
				}
			case *exchangeEntity:
				frontier = append(frontier, d)
			}
		}
	}
	return out
}

func containsPtr[T comparable](s []T, x T) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// --- queues ---

// lookupQueue finds a queue for an operation by c: 404 if missing, 405 if another connection owns it.
func (v *vhost) lookupQueue(c *conn, name string) (*queue, error) {
	v.mu.RLock()
	q := v.mu.queues[name]
	v.mu.RUnlock()
	if q == nil {
		return nil, v.errNoQueue(name)
	}
	if q.owner != nil && q.owner != c {
		return nil, v.errLocked(name)
	}
	return q, nil
}

// declareQueue declares (or checks) a queue for connection c.
//
// The order of checks is RabbitMQ 3.10.8's (rabbit_channel's queue.declare, rabbit_amqqueue:declare),
// as observed on it. Passive: the queue missing (404), then another connection's exclusive queue
// (405). Otherwise: a server-named queue of a type that cannot be (406); a given name with the
// reserved prefix amq. (403, even for an existing queue); configure permission (403). For an
// existing queue: exclusivity (405: another connection's, or the exclusive flag differs), then
// durable, auto_delete and the arguments compared for equivalence (406), without validating them.
// For a new queue: the vhost's queue limit, the permissions a dead-letter exchange needs, the
// queue type, then each argument's value in RabbitMQ's order (queueArgs).
func (v *vhost) declareQueueOn(c *conn, d *amqp.QueueDeclare, ap *metaApply) (*queue, error) {
	v.meta.Lock()
	defer v.meta.Unlock()
	v.srv.adm.stats.inc(sQueueDeclared)
	name := d.Queue
	if name == "" && !d.Passive {
		if err := checkServerNamedType(d.Arguments); err != nil {
			return nil, err
		}
		name = "amq.gen-" + randomName()
	}
	if c != nil && !d.Passive && d.Queue != "" && strings.HasPrefix(name, "amq.") {
		return nil, amqp.Errorf(amqp.AccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	if c != nil && !d.Passive {
		if err := c.checkQueueDeclare(v, name, d.Arguments); err != nil {
			return nil, err
		}
	}
	q := v.mu.queues[name]
	if d.Passive {
		if q == nil {
			return nil, v.errNoQueue(name)
		}
		if q.owner != nil && q.owner != c {
			return nil, v.errLocked(name)
		}
		return q, nil
	}
	if q != nil {
		if q.owner != nil && q.owner != c || (q.owner != nil) != d.Exclusive {
			return nil, v.errLocked(name)
		}
		switch {
		case q.durable != d.Durable:
			return nil, v.errInequivalent("queue", name, "durable", d.Durable, q.durable)
		case q.autoDelete != d.AutoDelete:
			return nil, v.errInequivalent("queue", name, "auto_delete", d.AutoDelete, q.autoDelete)
		}
		if err := equivalentArgs(v, "queue", name, queueArgKeys, d.Arguments, q.args); err != nil {
			return nil, err
		}
		return q, nil
	}
	if strings.HasPrefix(name, "amq.") && d.Queue != "" {
		return nil, amqp.Errorf(amqp.AccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	if err := v.checkQueueLimitLocked(name); err != nil {
		return nil, err
	}
	if x, ok := d.Arguments["x-dead-letter-exchange"]; ok {
		if _, ok := x.(string); !ok { // checked with the dead-letter exchange's permissions, first
			return nil, amqp.Errorf(amqp.PreconditionFailed, "invalid type '%s' for arg 'x-dead-letter-exchange' in queue '%s' in vhost '%s'",
				amqp.FieldTypeName(x), name, v.name)
		}
	}
	if err := v.checkNewQueueType(name, d); err != nil {
		return nil, err
	}
	lim, err := v.queueArgs(name, d.Arguments)
	if err != nil {
		return nil, err
	}
	if ap == nil && v.replicates() && d.Durable && !d.AutoDelete && !d.Exclusive {
		return nil, &metaProposeQueue{name: name} // valid here: the meta group decides (meta.go)
	}
	var owner *conn
	if d.Exclusive {
		owner = c
	}
	var id uint64
	if ap != nil {
		id = ap.group // a quorum queue's cluster-wide group id (0: a node-local store id)
	}
	q = newQueue(v, name, d.Durable, d.AutoDelete, owner, d.Arguments, id, lim)
	if q.isDurable() {
		var b storage.Batch
		b.Set(storage.QueueKey(v.name, name), q.record())
		if err := v.persistMeta(&b); err != nil {
			return nil, err
		}
	}
	v.mu.Lock()
	// Under v.mu: a policy change lists the queues after it changed the policies (policy.go).
	q.setPolicy(v.srv.pol.match(v.name, name, true), v.srv.pol.matchOperator(v.name, name))
	v.mu.queues[name] = q
	v.mu.Unlock()
	v.srv.adm.stats.inc(sQueueCreated)
	v.srv.fedKick()
	return q, nil
}

// deleteQueue removes q (if it is still the queue of that name) with its bindings, cancelling its
// consumers. It returns the number of ready messages dropped. Memory changes first, under v.mu
// (so no publish routes to the queue once it is marked deleted); the store deletes are written
// after, with v.meta alone held.
func (v *vhost) deleteQueue(q *queue, ifUnused, ifEmpty bool) (uint32, error) {
	n, cancelled, err := v.removeQueue(q, ifUnused, ifEmpty)
	notifyCancelled(cancelled)
	return n, err
}

// removeQueue is deleteQueue that leaves telling the cancelled consumers to the caller
// (notifyCancelled, with no lock held): queue.delete sends its delete-ok first, as RabbitMQ does.
func (v *vhost) removeQueueOn(q *queue, ifUnused, ifEmpty, applying bool) (uint32, []deliveryTarget, error) {
	v.meta.Lock()
	defer v.meta.Unlock()
	if v.mu.queues[q.name] != q {
		return 0, nil, nil
	}
	if !applying && v.replicates() && replicatedQueue(q) {
		// RabbitMQ checks if-empty before if-unused; here on the proposing node, before proposing.
		ready, consumers := q.counts()
		if ifEmpty && ready > 0 {
			return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' not empty", q.name, v.name)
		}
		if ifUnused && consumers > 0 {
			return 0, nil, amqp.Errorf(amqp.PreconditionFailed, "queue '%s' in vhost '%s' in use", q.name, v.name)
		}
		return 0, nil, errMetaPropose
	}
	var b storage.Batch
	v.mu.Lock()
	n, cancelled, err := q.markDeleted(ifUnused, ifEmpty)
	if err != nil {
		v.mu.Unlock()
		return 0, nil, err
	}
	delete(v.mu.queues, q.name)
	v.unbindAllLocked(&b, q)
	v.mu.Unlock()
	v.srv.adm.stats.inc(sQueueDeleted)
	v.srv.fedKick()
	if q.isDurable() {
		b.Delete(storage.QueueKey(v.name, q.name))
	}
	return n, cancelled, v.persistMeta(&b)
}

// dropExclusive deletes the queues owned by c (on connection close).
func (v *vhost) dropExclusive(c *conn) {
	v.mu.RLock()
	var owned []*queue
	for _, q := range v.mu.queues {
		if q.owner == c {
			owned = append(owned, q)
		}
	}
	v.mu.RUnlock()
	for _, q := range owned {
		v.deleteQueue(q, false, false)
	}
}

// --- argument equivalence ---

// Arguments RabbitMQ compares on redeclaration; others are ignored, as RabbitMQ ignores them.
var (
	queueArgKeys = []string{"x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
		"x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-type", "x-single-active-consumer",
		"x-queue-mode", "x-delivery-limit", "x-max-age", "x-stream-max-segment-size-bytes", "x-initial-cluster-size",
		"x-queue-leader-locator"}
	exchangeArgKeys = []string{"alternate-exchange"}
)

func equivalentArgs(v *vhost, what, name string, keys []string, got, cur amqp.Table) error {
	for _, k := range keys {
		g, gok := got[k]
		c, cok := cur[k]
		if k == "x-queue-type" && gok != cok && (g == "classic" || c == "classic") {
			continue // no type is classic (RabbitMQ 3.10 accepts either)
		}
		switch {
		case !gok && !cok:
		case gok && cok:
			if !argsEqual(g, c) {
				return v.errInequivalent(what, name, k, g, c)
			}
		default:
			return v.errInequivalent(what, name, k, typedVal(g, gok), typedVal(c, cok))
		}
	}
	return nil
}

// argValue is a value already formatted for an error text.
type argValue string

// typedVal formats an argument as RabbitMQ does when only one side has it.
func typedVal(x any, ok bool) argValue {
	if !ok {
		return "none"
	}
	return argValue(fmt.Sprintf("the value '%v' of type '%s'", x, amqp.FieldTypeName(x)))
}

// argsEqual compares argument values, treating all integer types as one (RabbitMQ's
// type_compatible), and everything else by type and value.
func argsEqual(a, b any) bool {
	if x, ok := intArg(a); ok {
		y, ok := intArg(b)
		return ok && x == y
	}
	return amqp.ValueEqual(a, b)
}

// randomName returns 22 url-safe base64 characters, like RabbitMQ's amq.gen- and amq.ctag- names.
func randomName() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
