package server

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/federation"
	"github.com/warrenmq/warren/storage"
)

// Durable metadata. A durable exchange, a durable non-exclusive queue, and a binding whose two
// ends are both durable are recorded in the store when declared and removed when deleted, and
// rebuilt by New. Records are RecordVersion followed by an AMQP field table, which keeps argument
// types exactly (an int32 x-max-length stays an int32).
//
// The writes happen under vhost.meta, which serialises a vhost's metadata changes, with no routing
// lock held (vhost.mu is taken only to install a change in memory), and go through the committer
// like every other store write. A new entity or binding is written before routing can see it, so
// no message reaches a queue through a binding the store does not have yet; a delete changes
// memory first (no publish routes to a deleted queue) and is written after. The declaring client
// waits for the fsync; publishes in the vhost do not. A change that changes nothing (a redeclare
// with equal arguments, a re-bind) writes nothing.

// persistMeta applies b synchronously; v.meta is held, v.mu is not. A failure is an
// INTERNAL_ERROR for the client: the declare it belongs to is not acknowledged.
func (v *vhost) persistMeta(b *storage.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	if err := v.srv.commit.apply(b); err != nil {
		v.srv.log.Error("storage write failed", "vhost", v.name, "err", err)
		return amqp.Errorf(amqp.InternalError, "storage write failed: %v", err)
	}
	return nil
}

func (e *exchangeEntity) record() []byte {
	return encodeRecord(amqp.Table{
		"type": e.kind.String(), "auto_delete": e.autoDelete, "internal": e.internal, "arguments": tableOrEmpty(e.args),
	})
}

// record is a queue's definition record (its type is in its arguments).
func (q *queueMeta) record() []byte {
	return encodeRecord(amqp.Table{"auto_delete": q.autoDelete, "arguments": tableOrEmpty(q.args), "id": int64(q.id)})
}

// destDurable reports whether a binding to d outlives a restart (with a durable source).
func destDurable(d destination) bool {
	switch d := d.(type) {
	case *queue:
		return d.isDurable()
	case *exchangeEntity:
		return d.durable
	}
	return false
}

func bindingKey(vhost string, src *exchangeEntity, d destination, key string, args amqp.Table) []byte {
	kind := byte('q')
	if d.destKind() == "exchange" {
		kind = 'e'
	}
	return storage.BindingKey(vhost, src.name, kind, d.destName(), key, canonicalArgs(args))
}

// canonicalArgs encodes args with sorted keys, so equal tables give equal bytes.
func canonicalArgs(args amqp.Table) []byte {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b, _ = amqp.AppendFieldValue(b, args[k]) // decoded from the wire, so encodable
	}
	return b
}

// deleteBindingsToLocked adds to b the deletes for src's durable bindings to d. src.mu is held.
func (v *vhost) deleteBindingsToLocked(b *storage.Batch, src *exchangeEntity, d destination) {
	if !src.durable || !destDurable(d) {
		return
	}
	for _, bd := range src.mu.router.Bindings() {
		if bd.Dest == d {
			b.Delete(bindingKey(v.name, src, d, bd.Key, bd.Args))
		}
	}
}

func encodeRecord(t amqp.Table) []byte {
	b, err := amqp.AppendTable([]byte{storage.RecordVersion}, t)
	if err != nil {
		panic(fmt.Sprintf("encoding a metadata record: %v", err)) // only broker-built tables get here
	}
	return b
}

func decodeRecord(key, rec []byte) (amqp.Table, error) {
	if len(rec) == 0 || rec[0] != storage.RecordVersion {
		return nil, fmt.Errorf("record %q: unknown version", key)
	}
	t, _, err := amqp.DecodeTable(rec[1:])
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", key, err)
	}
	return t, nil
}

func tableOrEmpty(t amqp.Table) amqp.Table {
	if t == nil {
		return amqp.Table{}
	}
	return t
}

// scanEntities calls fn with each exchange or queue record under prefix, decoded.
func (s *Server) scanEntities(prefix []byte, fn func(key []byte, vhost, name string, rec amqp.Table) error) error {
	return s.store.Scan(prefix, func(k, rec []byte) error {
		vname, name, err := storage.ParseEntityKey(k)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		return fn(k, vname, name, t)
	})
}

// recover rebuilds durable exchanges, queues and bindings from the store, then the queues'
// messages.
func (s *Server) recover() error {
	byID := map[uint64]*queue{}
	vh := func(name string) *vhost {
		v := s.vhosts.m[name]
		if v == nil {
			v = newVhost(s, name)
			s.vhosts.m[name] = v
		}
		return v
	}
	err := s.scanEntities(storage.ExchangePrefix(), func(k []byte, vname, name string, t amqp.Table) error {
		typ, _ := t["type"].(string)
		kind, ok := exchange.ParseKind(typ)
		if !ok {
			return fmt.Errorf("record %q: unknown exchange type %q", k, typ)
		}
		args, _ := t["arguments"].(amqp.Table)
		ad, _ := t["auto_delete"].(bool)
		internal, _ := t["internal"].(bool)
		v := vh(vname)
		x := &exchangeEntity{name: name, kind: kind, durable: true, autoDelete: ad, internal: internal,
			args: args}
		x.mu.router = exchange.New[destination](kind)
		if kind == exchange.FederationUpstream {
			x.hops, _ = federation.ParseHopFilter(args) // checked when it was declared
		}
		v.mu.exchanges[name] = x
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering exchanges: %w", err)
	}
	err = s.scanEntities(storage.QueuePrefix(), func(k []byte, vname, name string, t amqp.Table) error {
		args, _ := t["arguments"].(amqp.Table)
		ad, _ := t["auto_delete"].(bool)
		id, ok := t["id"].(int64)
		if !ok || id <= 0 {
			return fmt.Errorf("record %q: no queue id", k)
		}
		v := vh(vname)
		lim, err := v.queueArgs(name, args)
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		q, err := recoveredQueue(v, name, ad, args, uint64(id), lim, t)
		if err != nil {
			return fmt.Errorf("record %q: %w", k, err)
		}
		if s.queueIDs.Load() < q.id && q.id < quorumGroupBase { // not a cluster-wide group id (meta.go)
			s.queueIDs.Store(q.id)
		}
		byID[q.id] = q
		v.mu.queues[name] = q
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering queues: %w", err)
	}
	err = s.store.Scan(storage.BindingPrefix(), func(k, rec []byte) error {
		vname, rest, err := storage.ParseName(k[1:])
		if err != nil {
			return err
		}
		srcName, rest, err := storage.ParseName(rest)
		if err != nil || len(rest) < 1 {
			return fmt.Errorf("binding key %q: malformed", k)
		}
		kind := rest[0]
		dstName, rest, err := storage.ParseName(rest[1:])
		if err != nil {
			return err
		}
		rkey, _, err := storage.ParseName(rest)
		if err != nil {
			return err
		}
		t, err := decodeRecord(k, rec)
		if err != nil {
			return err
		}
		args, _ := t["arguments"].(amqp.Table)
		v := vh(vname)
		src := v.mu.exchanges[srcName]
		var dst destination
		if kind == 'q' {
			if q := v.mu.queues[dstName]; q != nil {
				dst = q
			}
		} else if e := v.mu.exchanges[dstName]; e != nil {
			dst = e
		}
		if src == nil || dst == nil {
			s.log.Warn("dropping a recovered binding whose end is gone", "vhost", vname, "source", srcName, "destination", dstName)
			return nil
		}
		src.mu.router.Bind(dst, rkey, args)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering bindings: %w", err)
	}
	if err := s.recoverAdmin(byID); err != nil {
		return err
	}
	if err := s.recoverGlobalParameters(); err != nil {
		return err
	}
	if err := s.recoverPolicies(); err != nil {
		return err
	}
	if err := s.recoverParameters(); err != nil {
		return err
	}
	if err := s.recoverMessages(byID); err != nil {
		return err
	}
	for _, q := range byID {
		q.start() // expiries of recovered messages, x-expires
	}
	return nil
}

// cleanKey is present in the store only while the broker is stopped after a clean shutdown.
var cleanKey = storage.StateKey("clean-shutdown")

// recoverMessages loads each durable queue's messages in order: the oldest up to the queue's
// window into memory, the rest as the queue's paged range. Records of queues that no longer
// exist (transient queues of the last run, or a delete that raced the stop) and transient
// messages are deleted, as RabbitMQ drops transient messages on restart.
//
// After a clean shutdown, messages that had been delivered carry a DeliveredKey and come back
// redelivered. After a crash the broker cannot know which were delivered, so every recovered
// message comes back redelivered=true (a false positive is allowed; a false negative is not).
func (s *Server) recoverMessages(byID map[uint64]*queue) error {
	clean := false
	if err := s.store.Scan(cleanKey, func(k, v []byte) error { clean = true; return nil }); err != nil {
		return fmt.Errorf("reading the shutdown state: %w", err)
	}
	var drop storage.Batch
	var droppedQueue uint64
	count := 0
	err := s.store.Scan(storage.MessagePrefix(), func(k, rec []byte) error {
		id, seq, err := storage.ParseMessageKey(k)
		if err != nil {
			return err
		}
		q := byID[id]
		if q == nil {
			if droppedQueue != id {
				start, end := storage.MessageRange(id)
				drop.DeleteRange(start, end)
				droppedQueue = id
			}
			return nil
		}
		if storage.IsDeliveredKey(k) {
			q.recoverDelivered(seq)
			return nil
		}
		size, persistent, err := recordBodySize(rec)
		if err != nil {
			return fmt.Errorf("message %d of queue %q: %w", seq, q.name, err)
		}
		if !persistent {
			drop.Delete(bytes.Clone(k))
			drop.Delete(storage.DeliveredKey(id, seq))
			return nil
		}
		count++
		if err := q.recoverMessage(seq, rec, size, !clean); err != nil {
			return fmt.Errorf("message %d of queue %q: %w", seq, q.name, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recovering messages: %w", err)
	}
	for _, q := range byID {
		q.recovered(clean)
	}
	// From now on a crash is an unclean stop.
	drop.Delete(cleanKey)
	if err := s.commit.apply(&drop); err != nil {
		return fmt.Errorf("recovering messages: %w", err)
	}
	if count > 0 {
		s.log.Info("recovered messages", "messages", count, "queues", len(byID), "clean_shutdown", clean)
	}
	return nil
}

// markClean records, after every connection has closed, which in-memory messages were delivered
// before (so they come back redelivered) and that the shutdown was clean.
func (s *Server) markClean() error {
	var b storage.Batch
	s.vhosts.RLock()
	for _, v := range s.vhosts.m {
		v.mu.RLock()
		for _, q := range v.mu.queues {
			q.markClean(&b)
		}
		v.mu.RUnlock()
	}
	s.vhosts.RUnlock()
	b.Set(cleanKey, []byte{storage.RecordVersion})
	return s.commit.apply(&b)
}
