package management

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/server"
)

// Connections, channels and consumers.

func (a *api) connRoutes(r *mux.Router) {
	a.handle(r, "/api/connections", resource{http.MethodGet: {fn: listConnections}})
	a.handle(r, "/api/vhosts/{vhost}/connections", resource{http.MethodGet: {vhost: true, fn: listConnections}})
	a.handle(r, "/api/connections/{name}", resource{
		http.MethodGet:    {fn: getConnection},
		http.MethodDelete: {fn: closeConnection},
	})
	a.handle(r, "/api/connections/{name}/channels", resource{http.MethodGet: {fn: connectionChannels}})
	a.handle(r, "/api/channels", resource{http.MethodGet: {fn: listChannels}})
	a.handle(r, "/api/vhosts/{vhost}/channels", resource{http.MethodGet: {vhost: true, fn: listChannels}})
	a.handle(r, "/api/channels/{name}", resource{http.MethodGet: {fn: getChannel}})
	a.handle(r, "/api/consumers", resource{http.MethodGet: {fn: listConsumers}})
	a.handle(r, "/api/consumers/{vhost}", resource{http.MethodGet: {vhost: true, fn: listConsumers}})
}

// ownsConnection: monitoring and administrator users see every connection, others their own.
func (c *call) ownsConnection(user string) bool { return c.seesAll() || user == c.user.Name }

// connectionJSON renders a connection; RabbitMQ writes the TLS fields of a plain connection as null
// in listings and as "" for a single connection.
func (a *api) connectionJSON(ci server.ConnectionInfo, single bool) map[string]any {
	var none any
	if single {
		none = ""
	}
	m := map[string]any{
		"name": ci.Name, "node": a.b.NodeName(), "vhost": ci.Vhost, "user": ci.User, "user_who_performed_action": ci.User,
		"auth_mechanism": ci.AuthMechanism, "protocol": ci.Protocol, "type": "network", "state": "running",
		"host": ci.Host, "port": ci.Port, "peer_host": ci.PeerHost, "peer_port": ci.PeerPort,
		"ssl": false, "ssl_protocol": none, "ssl_key_exchange": none, "ssl_cipher": none, "ssl_hash": none,
		"peer_cert_subject": none, "peer_cert_issuer": none, "peer_cert_validity": none,
		"channels": ci.Channels, "channel_max": ci.ChannelMax, "frame_max": ci.FrameMax, "timeout": ci.Heartbeat,
		"connected_at":      ci.ConnectedAt.UnixMilli(),
		"client_properties": tableJSON(ci.ClientProperties),
		"recv_cnt":          ci.RecvCnt, "send_cnt": ci.SendCnt, "send_pend": 0,
	}
	putStat(m, "recv_oct", ci.RecvOct)
	putStat(m, "send_oct", ci.SendOct)
	if name, ok := ci.ClientProperties["connection_name"].(string); ok {
		m["user_provided_name"] = name
	}
	if t := ci.TLS; t != nil {
		m["ssl"], m["ssl_protocol"], m["ssl_cipher"] = true, t.Protocol, t.Cipher
		if t.PeerCertSubject != "" {
			m["peer_cert_subject"], m["peer_cert_issuer"], m["peer_cert_validity"] = t.PeerCertSubject, t.PeerCertIssuer, t.PeerCertValidity
		}
	}
	return m
}

func listConnections(c *call) error {
	vh, byVhost := c.vars["vhost"]
	out := []any{}
	for _, ci := range c.a.b.Connections() {
		if byVhost && ci.Vhost != vh || !c.ownsConnection(ci.User) {
			continue
		}
		out = append(out, c.a.connectionJSON(ci, false))
	}
	return c.list(out)
}

func getConnection(c *call) error {
	ci, err := c.a.b.Connection(c.vars["name"])
	if err != nil || !c.ownsConnection(ci.User) {
		return server.ErrNotFound
	}
	return c.ok(c.a.connectionJSON(ci, true))
}

func closeConnection(c *call) error {
	ci, err := c.a.b.Connection(c.vars["name"])
	if err != nil || !c.ownsConnection(ci.User) {
		return server.ErrNotFound
	}
	reason := c.r.Header.Get("X-Reason")
	if reason == "" {
		reason = "Closed via management plugin"
	}
	return c.deleted(c.a.b.CloseConnection(ci.Name, reason))
}

func (a *api) channelJSON(ch server.ChannelInfo, single bool) map[string]any {
	m := map[string]any{
		"name": ch.Name, "node": a.b.NodeName(), "number": ch.Number, "vhost": ch.Vhost, "user": ch.User,
		"user_who_performed_action": ch.User, "state": "running",
		"connection_details": map[string]any{"name": ch.ConnectionName, "peer_host": ch.PeerHost, "peer_port": ch.PeerPort},
		"confirm":            ch.Confirm, "transactional": ch.Transactional,
		"consumer_count": ch.Consumers, "messages_unacknowledged": ch.Unacked,
		"messages_unconfirmed": ch.Unconfirmed, "messages_uncommitted": 0, "acks_uncommitted": 0, "pending_raft_commands": 0,
		"prefetch_count": ch.Prefetch, "global_prefetch_count": ch.GlobalPrefetch,
		"message_stats": messageStats(ch.Stats, channelStatKeys),
	}
	if single {
		cds := make([]any, 0, len(ch.ConsumerDetails))
		for _, cd := range ch.ConsumerDetails {
			cds = append(cds, a.consumerJSON(cd))
		}
		m["consumer_details"] = cds
		m["deliveries"], m["publishes"] = []any{}, []any{}
	}
	return m
}

func (c *call) channelsJSON(chs []server.ChannelInfo) []any {
	vh, byVhost := c.vars["vhost"]
	out := []any{}
	for _, ch := range chs {
		if byVhost && ch.Vhost != vh || !c.ownsConnection(ch.User) {
			continue
		}
		out = append(out, c.a.channelJSON(ch, false))
	}
	return out
}

func listChannels(c *call) error {
	chs, err := c.a.b.Channels("")
	if err != nil {
		return err
	}
	return c.list(c.channelsJSON(chs))
}

func connectionChannels(c *call) error {
	ci, err := c.a.b.Connection(c.vars["name"])
	if err != nil || !c.ownsConnection(ci.User) {
		return server.ErrNotFound
	}
	chs, err := c.a.b.Channels(ci.Name)
	if err != nil {
		return err
	}
	return c.list(c.channelsJSON(chs))
}

func getChannel(c *call) error {
	ch, err := c.a.b.Channel(c.vars["name"])
	if err != nil || !c.ownsConnection(ch.User) {
		return server.ErrNotFound
	}
	return c.ok(c.a.channelJSON(ch, true))
}

func (a *api) consumerJSON(cd server.ConsumerInfo) map[string]any {
	ref := cd.Channel
	return map[string]any{
		"consumer_tag": cd.Tag, "ack_required": cd.AckRequired, "exclusive": cd.Exclusive, "prefetch_count": cd.Prefetch,
		"arguments": tableJSON(cd.Arguments), "active": true, "activity_status": "up",
		"queue": map[string]any{"name": cd.Queue, "vhost": cd.Vhost},
		"channel_details": map[string]any{
			"name": ref.Name, "number": ref.Number, "connection_name": ref.ConnectionName, "node": a.b.NodeName(),
			"peer_host": ref.PeerHost, "peer_port": ref.PeerPort, "user": ref.User,
		},
	}
}

func listConsumers(c *call) error {
	out := []any{}
	for _, cd := range c.a.b.Consumers(c.vhostFilter()) {
		out = append(out, c.a.consumerJSON(cd))
	}
	return c.list(out)
}
