package server

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/streamproto"
)

// Super streams, as RabbitMQ's stream plugin makes them: a durable direct exchange named after
// the super stream (argument x-super-stream: true) bound to its partition streams, each binding
// with its binding key and the argument x-stream-partition-order (0, 1, ...) that orders the
// partitions (RabbitMQ 3.10.8's rabbitmq-streams add_super_stream writes exactly these). Route
// answers the streams the exchange routes a key to; partitions the stream queues bound to it,
// in partition order. Create and delete super stream are RabbitMQ 3.13's protocol commands; the
// management API's PUT /api/stream/super-streams/{vhost}/{name} creates one too.

// superStreamOrderArg is the binding argument that orders a super stream's partitions.
const superStreamOrderArg = "x-stream-partition-order"

// streamProtocolVersion is the RabbitMQ version the stream protocol's peer properties announce:
// the stream clients enable command version exchange and single active consumer from 3.11 on,
// and create/delete super stream from 3.13 on, all of which the front end serves.
const streamProtocolVersion = "3.13.7"

func init() {
	streamCommandVersions = append(streamCommandVersions,
		streamproto.CommandVersion{Key: streamproto.KeyRoute, Min: 1, Max: 1},
		streamproto.CommandVersion{Key: streamproto.KeyPartitions, Min: 1, Max: 1},
		streamproto.CommandVersion{Key: streamproto.KeyConsumerUpdate, Min: 1, Max: 1},
		streamproto.CommandVersion{Key: streamproto.KeyCreateSuperStream, Min: 1, Max: 1},
		streamproto.CommandVersion{Key: streamproto.KeyDeleteSuperStream, Min: 1, Max: 1})
}

// superStreamError is a refused super stream operation: the stream protocol's response code and
// the reason the management API shows.
type superStreamError struct {
	code   uint16
	reason string
}

func (e *superStreamError) Error() string { return e.reason }

func superErr(code uint16, format string, args ...any) *superStreamError {
	return &superStreamError{code: code, reason: fmt.Sprintf(format, args...)}
}

// superStreamPartitions lists the stream queues bound to the exchange name, ordered by their
// bindings' x-stream-partition-order (bindings without it last, in binding order), each once.
// ok is false when there is no such exchange. As RabbitMQ 3.10.8 does, any exchange answers: the
// default exchange's implicit bindings list every stream of the vhost (by name here).
func (v *vhost) superStreamPartitions(name string) ([]string, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e := v.mu.exchanges[name]
	if e == nil {
		return nil, false
	}
	isStream := func(q *queue) bool {
		_, ok := q.queueImpl.(*streamQueue)
		return ok
	}
	out := []string{}
	if name == "" {
		for qn, q := range v.mu.queues {
			if isStream(q) {
				out = append(out, qn)
			}
		}
		sort.Strings(out)
		return out, true
	}
	type part struct {
		name     string
		order    int64
		hasOrder bool
	}
	var parts []part
	e.mu.Lock()
	for _, bd := range e.mu.router.Bindings() {
		q, ok := bd.Dest.(*queue)
		if !ok || !isStream(q) {
			continue
		}
		o, has := intArg(bd.Args[superStreamOrderArg])
		parts = append(parts, part{q.name, o, has})
	}
	e.mu.Unlock()
	sort.SliceStable(parts, func(i, j int) bool {
		a, b := parts[i], parts[j]
		if a.hasOrder != b.hasOrder {
			return a.hasOrder
		}
		return a.hasOrder && a.order < b.order
	})
	for _, p := range parts {
		if !slices.Contains(out, p.name) {
			out = append(out, p.name)
		}
	}
	return out, true
}

// superStreamRoute answers the queues the exchange name routes key to (RabbitMQ's route command:
// the exchange's own routing, empty when nothing matches); ok false when there is no exchange.
func (v *vhost) superStreamRoute(name, key string) ([]string, bool) {
	e := v.exchange(name)
	if e == nil {
		return nil, false
	}
	out := []string{}
	for _, q := range v.route(e, key, nil, &message{}, nil) {
		out = append(out, q.name)
	}
	return out, true
}

// superStreamNameOK is RabbitMQ's enforce_correct_name: not empty, not amq.*.
func superStreamNameOK(name string) bool {
	return name != "" && !strings.HasPrefix(name, "amq.")
}

// superStreamPermitted checks what RabbitMQ checks before creating or deleting a super stream:
// configure and read on the exchange, configure and write on every partition.
func (s *Server) superStreamPermitted(u *user, v *vhost, name string, partitions []string) bool {
	if s.checkAccess(u, v, accessConfigure, "exchange", name) != nil || s.checkAccess(u, v, accessRead, "exchange", name) != nil {
		return false
	}
	for _, p := range partitions {
		if s.checkAccess(u, v, accessConfigure, "queue", p) != nil || s.checkAccess(u, v, accessWrite, "queue", p) != nil {
			return false
		}
	}
	return true
}

// createSuperStream declares the exchange, the partition streams (args are their queue
// arguments, x-queue-type added) and the bindings, as u (nil: no permission checks). A failure
// after the exchange was declared removes what was made. Refusals: 17 for a bad name, a
// partition count that differs from the binding keys' or none at all, or bad stream arguments;
// 5 if the exchange or a partition exists; 16 without the permissions.
func (s *Server) createSuperStream(v *vhost, u *user, name string, partitions, keys []string, args amqp.Table) error {
	if !superStreamNameOK(name) {
		return superErr(streamproto.CodePreconditionFailed, "%s is not a correct name for a super stream", name)
	}
	if len(partitions) != len(keys) {
		return superErr(streamproto.CodePreconditionFailed, "There must be the same number of partitions and binding keys")
	}
	if len(partitions) == 0 {
		return superErr(streamproto.CodePreconditionFailed, "a super stream needs at least one partition")
	}
	for i, p := range partitions {
		if !superStreamNameOK(p) || len(p) > shortstrMax {
			return superErr(streamproto.CodePreconditionFailed, "%s is not a correct name for a stream", p)
		}
		if keys[i] == "" {
			return superErr(streamproto.CodePreconditionFailed, "binding keys must not be empty")
		}
		if slices.Contains(partitions[:i], p) {
			return superErr(streamproto.CodeStreamAlreadyExists, "partition %s is listed twice", p)
		}
	}
	if len(name) > shortstrMax {
		return superErr(streamproto.CodePreconditionFailed, "%s is not a correct name for a super stream", name)
	}
	if !s.superStreamPermitted(u, v, name, partitions) {
		return superErr(streamproto.CodeAccessRefused, "access to super stream '%s' in vhost '%s' refused", name, v.name)
	}
	s.sac.super.Lock()
	defer s.sac.super.Unlock()
	if v.exchange(name) != nil {
		return superErr(streamproto.CodeStreamAlreadyExists, "there is already an exchange named %s", name)
	}
	v.mu.RLock()
	for _, p := range partitions {
		if v.mu.queues[p] != nil {
			v.mu.RUnlock()
			return superErr(streamproto.CodeStreamAlreadyExists, "there is already a queue named %s", p)
		}
	}
	v.mu.RUnlock()
	qargs := amqp.Table{}
	for k, x := range args {
		qargs[k] = x
	}
	qargs["x-queue-type"] = "stream"
	if err := v.declareExchange(&amqp.ExchangeDeclare{Exchange: name, Type: "direct", Durable: true,
		Arguments: amqp.Table{"x-super-stream": true}}); err != nil {
		return superErr(streamproto.CodeInternalError, "declaring the exchange %s: %v", name, err)
	}
	var made []*queue
	undo := func() {
		for _, q := range made {
			if _, err := v.deleteQueue(q, false, false); err != nil {
				s.log.Warn("super stream: removing a partition after a failed create", "stream", q.name, "err", err)
			}
		}
		if err := v.deleteExchange(name, false); err != nil {
			s.log.Warn("super stream: removing the exchange after a failed create", "exchange", name, "err", err)
		}
	}
	for i, p := range partitions {
		q, err := v.declareQueue(nil, &amqp.QueueDeclare{Queue: p, Durable: true, Arguments: qargs})
		if err != nil {
			undo()
			return superErr(streamproto.CodePreconditionFailed, "declaring the partition %s: %v", p, err)
		}
		made = append(made, q)
		if err := v.bind(name, q, keys[i], amqp.Table{superStreamOrderArg: int64(i)}, nil); err != nil {
			undo()
			return superErr(streamproto.CodeInternalError, "binding the partition %s: %v", p, err)
		}
	}
	return nil
}

// deleteSuperStream deletes the exchange name and the partitions it lists: 2 if there is no such
// exchange, 17 for a bad name, 16 without the permissions.
func (s *Server) deleteSuperStream(v *vhost, u *user, name string) error {
	if !superStreamNameOK(name) {
		return superErr(streamproto.CodePreconditionFailed, "%s is not a correct name for a super stream", name)
	}
	s.sac.super.Lock()
	defer s.sac.super.Unlock()
	partitions, ok := v.superStreamPartitions(name)
	if !ok {
		return superErr(streamproto.CodeStreamDoesNotExist, "no super stream %s", name)
	}
	if !s.superStreamPermitted(u, v, name, partitions) {
		return superErr(streamproto.CodeAccessRefused, "access to super stream '%s' in vhost '%s' refused", name, v.name)
	}
	if err := v.deleteExchange(name, false); err != nil {
		s.log.Warn("super stream: deleting the exchange", "exchange", name, "err", err)
	}
	for _, p := range partitions {
		v.mu.RLock()
		q := v.mu.queues[p]
		v.mu.RUnlock()
		if q == nil {
			continue
		}
		if _, err := v.deleteQueue(q, false, false); err != nil {
			s.log.Warn("super stream: deleting a partition", "stream", p, "err", err)
		}
	}
	return nil
}

// SuperStreamSpec is a super stream to create (the management API): Partitions > 0 makes the
// partitions name-0 ... name-(N-1) with binding keys "0" ... "N-1"; otherwise BindingKeys makes
// name-key for each key. Arguments are the partitions' stream arguments as the stream protocol's
// create takes them (max-length-bytes, max-age, stream-max-segment-size-bytes, ...).
type SuperStreamSpec struct {
	Partitions  int
	BindingKeys []string
	Arguments   map[string]string
}

// DeclareSuperStream creates a super stream in vhost as the management API does (no permission
// checks beyond the API's own). Refusals are BadRequestErrors.
func (s *Server) DeclareSuperStream(vhost, name string, spec SuperStreamSpec) error {
	v, err := s.mustVhost(vhost)
	if err != nil {
		return err
	}
	var parts, keys []string
	switch {
	case spec.Partitions > 0 && len(spec.BindingKeys) > 0:
		return badRequest("Specify partitions or binding keys, not both.")
	case spec.Partitions > 0:
		for i := range spec.Partitions {
			parts = append(parts, fmt.Sprintf("%s-%d", name, i))
			keys = append(keys, fmt.Sprint(i))
		}
	case len(spec.BindingKeys) > 0:
		for _, k := range spec.BindingKeys {
			parts = append(parts, name+"-"+k)
			keys = append(keys, k)
		}
	default:
		return badRequest("Must specify partitions or binding keys")
	}
	kvs := make([]streamproto.KV, 0, len(spec.Arguments))
	for k, x := range spec.Arguments {
		kvs = append(kvs, streamproto.KV{Key: k, Value: x})
	}
	args, ok := streamCreateArgs(kvs)
	if !ok {
		return badRequest("bad stream arguments %v", spec.Arguments)
	}
	delete(args, "x-queue-type")
	if err := s.createSuperStream(v, nil, name, parts, keys, args); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

// --- the stream protocol's commands ---

// handleSuper runs route, partitions, create and delete super stream, and the client's answers
// to consumer updates; false ends the connection.
func (c *streamConn) handleSuper(cmd streamproto.Command) bool {
	switch m := cmd.(type) {
	case *streamproto.Route:
		streams, ok := c.v.superStreamRoute(m.SuperStream, m.RoutingKey)
		resp := &streamproto.RouteResponse{CorrelationID: m.CorrelationID, Code: streamproto.CodeOK, Streams: streams}
		if !ok {
			resp.Code = streamproto.CodeStreamDoesNotExist
		}
		c.send(resp)
	case *streamproto.Partitions:
		streams, ok := c.v.superStreamPartitions(m.SuperStream)
		resp := &streamproto.PartitionsResponse{CorrelationID: m.CorrelationID, Code: streamproto.CodeOK, Streams: streams}
		if !ok {
			resp.Code = streamproto.CodeStreamDoesNotExist
		}
		c.send(resp)
	case *streamproto.CreateSuperStream:
		args, ok := streamCreateArgs(m.Arguments)
		code := streamproto.CodePreconditionFailed
		if ok {
			delete(args, "x-queue-type")
			code = superCode(c.srv.createSuperStream(c.v, c.user, m.Name, m.Partitions, m.BindingKeys, args))
		}
		c.respond(streamproto.KeyCreateSuperStream, m.CorrelationID, code)
	case *streamproto.DeleteSuperStream:
		c.respond(streamproto.KeyDeleteSuperStream, m.CorrelationID, superCode(c.srv.deleteSuperStream(c.v, c.user, m.Name)))
	case *streamproto.ConsumerUpdateResponse:
		return c.consumerUpdated(m)
	}
	return true
}

func superCode(err error) uint16 {
	if err == nil {
		return streamproto.CodeOK
	}
	if se, ok := err.(*superStreamError); ok {
		return se.code
	}
	return streamproto.CodeInternalError
}
