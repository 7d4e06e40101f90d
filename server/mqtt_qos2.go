package server

import (
	"encoding/binary"
	"maps"
	"slices"
	"time"

	"github.com/warrenmq/warren/mqtt"
	"github.com/warrenmq/warren/storage"
)

// QoS 2 session state (MQTT 5.0 section 4.1, 3.1.1 section 4.1): a session holds the packet
// identifiers of the QoS 2 publishes it received and acknowledged with PUBREC, awaiting their
// PUBREL (a repeated PUBLISH with one of them is not published again), and those of the QoS 2
// deliveries it released with PUBREL, awaiting their PUBCOMP (sent again when the client
// reconnects). For a persistent session both live in the store ('I' keys,
// storage/keys_mqtt_qos2.go) as well as in memory, so they survive a restart:
//
//   - a received publish's identifier is written in the commit group its PUBREC waits for, and
//     deleted in the one its PUBCOMP waits for (a client may reuse it once it has PUBCOMP);
//   - a released delivery's identifier is written before its queue entry is settled (so if the
//     settle is durable, so is the PUBREL owed), and deleted on PUBCOMP;
//   - when the connection ends, the session's expiry time is written beside them; a connection
//     that resumes the session removes it, and a session found expired, or started clean, loses
//     its state.
//
// Between connections the state is in mqttState.mu.qos2, read from the store on first use. A
// session that does not persist keeps its state in its connection only. A session with QoS 2
// state is present (CONNACK session present) even if it has no queues.

// mqttQoS2State is the QoS 2 state of a session that no connection holds.
type mqttQoS2State struct {
	in, out []uint16 // awaiting PUBREL; released, awaiting PUBCOMP
	expires int64    // Unix milliseconds when the session expires; 0: never
}

// qos2Locked returns the QoS 2 state of the sessions no connection holds, reading it from the
// store on first use (and deleting what expired while the broker was down). st.mu is held.
func (s *Server) qos2Locked() (map[mqttClientKey]*mqttQoS2State, [][]byte) {
	st := &s.mqtt
	if st.mu.qos2 != nil {
		return st.mu.qos2, nil
	}
	st.mu.qos2 = map[mqttClientKey]*mqttQoS2State{}
	err := s.store.Scan(storage.MQTTQoS2Prefix(), func(k, val []byte) error {
		vhost, id, kind, pid, err := storage.ParseMQTTQoS2Key(k)
		if err != nil {
			return err
		}
		key := mqttClientKey{vhost, id}
		q := st.mu.qos2[key]
		if q == nil {
			q = &mqttQoS2State{}
			st.mu.qos2[key] = q
		}
		switch kind {
		case storage.MQTTQoS2In:
			q.in = append(q.in, pid)
		case storage.MQTTQoS2Out:
			q.out = append(q.out, pid)
		case storage.MQTTQoS2Expiry:
			if len(val) == 9 && val[0] == storage.RecordVersion {
				q.expires = int64(binary.BigEndian.Uint64(val[1:]))
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("reading MQTT QoS 2 session state", "err", err)
	}
	var gone [][]byte
	now := nowMillis()
	for key, q := range st.mu.qos2 {
		if q.expires != 0 && now > q.expires {
			gone = append(gone, qos2Keys(key, q)...)
			delete(st.mu.qos2, key)
		}
	}
	return st.mu.qos2, gone
}

// qos2Keys returns every store key of a session's QoS 2 state.
func qos2Keys(key mqttClientKey, q *mqttQoS2State) [][]byte {
	ks := [][]byte{storage.MQTTQoS2ExpiryKey(key.vhost, key.clientID)}
	for _, id := range q.in {
		ks = append(ks, storage.MQTTQoS2Key(key.vhost, key.clientID, storage.MQTTQoS2In, id))
	}
	for _, id := range q.out {
		ks = append(ks, storage.MQTTQoS2Key(key.vhost, key.clientID, storage.MQTTQoS2Out, id))
	}
	return ks
}

// deleteKeys deletes keys through the committer (no fsync asked: a key left behind by a crash is
// state of a session that no longer has it, which a clean start or its expiry removes).
func (s *Server) deleteKeys(keys [][]byte) *commitGroup {
	if len(keys) == 0 {
		return nil
	}
	return s.commit.add(false, func(b *storage.Batch) {
		for _, k := range keys {
			b.Delete(k)
		}
	})
}

// takeQoS2 gives the connection its session's QoS 2 state (at CONNECT, after the takeover): none
// on a clean start or if the session expired. It reports whether there was state to resume; the
// PUBRELs owed are sent by resendPubrels once CONNACK is queued.
func (c *mqttConn) takeQoS2(cleanStart bool) bool {
	st := &c.srv.mqtt
	key := mqttClientKey{c.vhost.name, c.clientID}
	st.mu.Lock()
	all, gone := c.srv.qos2Locked()
	q := all[key]
	delete(all, key)
	st.mu.Unlock()
	resume := q != nil && !cleanStart && (q.expires == 0 || nowMillis() <= q.expires)
	switch {
	case q == nil:
	case !resume || !c.persistent:
		// Discarded, or resumed by a session that ends with this connection: out of the store.
		gone = append(gone, qos2Keys(key, q)...)
	default:
		// Held by a connection again: no expiry until it ends.
		gone = append(gone, storage.MQTTQoS2ExpiryKey(key.vhost, key.clientID))
	}
	c.srv.deleteKeys(gone)
	if !resume {
		return false
	}
	if len(q.in) > 0 {
		c.qos2 = make(map[uint16]struct{}, len(q.in))
		for _, id := range q.in {
			c.qos2[id] = struct{}{}
		}
	}
	c.owedRels = q.out
	return true
}

// resendPubrels sends the PUBRELs the resumed session owes (after CONNACK), their identifiers in
// flight until PUBCOMP.
func (c *mqttConn) resendPubrels() {
	for _, id := range c.owedRels {
		c.mu.Lock()
		c.mu.inflight[id] = mqttInflight{released: true}
		c.mu.Unlock()
		c.writePacket(nil, &mqtt.PubRel{PacketID: id})
	}
	c.owedRels = nil
}

// saveQoS2 keeps, when the connection ends, the QoS 2 state of a session that persists (with its
// expiry time, in the store beside the identifiers written as they came), and deletes from the
// store that of one that does not (an MQTT 5 DISCONNECT may have set its expiry to 0).
func (c *mqttConn) saveQoS2(inflight map[uint16]mqttInflight) {
	if c.vhost == nil || c.clientID == "" {
		return
	}
	key := mqttClientKey{c.vhost.name, c.clientID}
	q := &mqttQoS2State{in: slices.Sorted(maps.Keys(c.qos2))}
	for id, in := range inflight {
		if in.released {
			q.out = append(q.out, id)
		}
	}
	slices.Sort(q.out)
	if len(q.in) == 0 && len(q.out) == 0 {
		return
	}
	if !c.persistent {
		c.srv.deleteKeys(qos2Keys(key, q))
		return
	}
	switch {
	case c.version == mqtt.V5 && c.expiry != 0xFFFFFFFF:
		q.expires = nowMillis() + int64(c.expiry)*1000
	case c.version != mqtt.V5 && c.srv.opts.MQTT.SubscriptionTTL > 0:
		q.expires = time.Now().Add(c.srv.opts.MQTT.SubscriptionTTL).UnixMilli()
	}
	if q.expires != 0 {
		rec := binary.BigEndian.AppendUint64([]byte{storage.RecordVersion}, uint64(q.expires))
		k := storage.MQTTQoS2ExpiryKey(key.vhost, key.clientID)
		c.srv.commit.add(false, func(b *storage.Batch) { b.Set(k, rec) })
	}
	st := &c.srv.mqtt
	st.mu.Lock()
	all, gone := c.srv.qos2Locked()
	all[key] = q
	st.mu.Unlock()
	c.srv.deleteKeys(gone)
}

// qos2Record is the value of a packet identifier's key.
var qos2Record = []byte{storage.RecordVersion}

// storeQoS2 writes (add) or deletes the key of packet identifier id of kind (storage.MQTTQoS2In
// or MQTTQoS2Out) of a persistent session; nil for a session that does not persist.
func (c *mqttConn) storeQoS2(kind byte, id uint16, add, sync bool) *commitGroup {
	if !c.persistent {
		return nil
	}
	k := storage.MQTTQoS2Key(c.vhost.name, c.clientID, kind, id)
	return c.srv.commit.add(sync, func(b *storage.Batch) {
		if add {
			b.Set(k, qos2Record)
		} else {
			b.Delete(k)
		}
	})
}
