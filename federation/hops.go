package federation

import (
	"github.com/warrenmq/warren/amqp"
)

// Hop filtering, as rabbit_federation_util:should_forward: a federated message carries one
// x-received-from entry per hop; it goes on only while it has made fewer than max-hops hops and
// has not been through the downstream (cluster name and vhost) already. An exchange link applies
// it to what it receives; an x-federation-upstream exchange (which a RabbitMQ downstream declares
// on its upstream, here Warren) applies it before routing.

// ShouldForward reports whether a message with headers may go on to the downstream dname/dvhost.
func ShouldForward(headers amqp.Table, maxHops int64, dname, dvhost string) bool {
	hops, ok := headers[receivedFrom].([]any)
	if !ok {
		return true
	}
	if int64(len(hops)) >= maxHops {
		return false
	}
	for _, h := range hops {
		if t, ok := h.(amqp.Table); ok && t["cluster-name"] == dname && t["vhost"] == dvhost {
			return false
		}
	}
	return true
}

// HopFilter is an x-federation-upstream exchange's filter, from its arguments.
type HopFilter struct {
	MaxHops                         int64
	DownstreamName, DownstreamVhost string
}

// Forward is ShouldForward for the filter's downstream.
func (f *HopFilter) Forward(headers amqp.Table) bool {
	return ShouldForward(headers, f.MaxHops, f.DownstreamName, f.DownstreamVhost)
}

// argError is RabbitMQ's text for a bad argument (capitalised, as the 406 reads).
type argError string

func (e argError) Error() string { return string(e) }

// ParseHopFilter reads an x-federation-upstream exchange's arguments, with the texts of
// RabbitMQ 3.10.8's 406 when one is missing or of the wrong type.
func ParseHopFilter(args amqp.Table) (*HopFilter, error) {
	var f HopFilter
	for _, a := range []struct {
		name, typ string
		set       func(any) bool
	}{
		{"x-max-hops", "long", func(v any) bool { n, ok := v.(int64); f.MaxHops = n; return ok }},
		{"x-downstream-name", "longstr", func(v any) bool { s, ok := v.(string); f.DownstreamName = s; return ok }},
		{"x-downstream-vhost", "longstr", func(v any) bool { s, ok := v.(string); f.DownstreamVhost = s; return ok }},
	} {
		v, ok := args[a.name]
		if !ok {
			return nil, argError("Argument " + a.name + " missing")
		}
		if !a.set(v) {
			return nil, argError("Argument " + a.name + " must be of type " + a.typ)
		}
	}
	return &f, nil
}
