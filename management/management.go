// Package management serves Warren's HTTP API in RabbitMQ's shapes (RabbitMQ 3.10's management
// API: paths, status codes, JSON field names and types, error bodies), Prometheus metrics with
// rabbitmq_prometheus's names, and the embedded web UI.
//
// Requests are authenticated with HTTP basic auth against the broker's users. A user's tags decide
// what it may do, as in RabbitMQ: "administrator" everything; "monitoring" read everything;
// "management" (and "policymaker") the vhosts it has a permission in; a user without any of these
// is refused. /metrics needs no credentials, as RabbitMQ's Prometheus port.
//
// The handler keeps no state of its own: every request reads a snapshot from the broker (see the
// Broker interface) and encodes it with no broker lock held.
package management

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/federation"
	"github.com/warrenmq/warren/server"
)

// Broker is what the management API needs from the broker; *server.Server implements it.
type Broker interface {
	NodeName() string
	ClusterName() string
	SetClusterName(name string) error
	Uptime() time.Duration
	MaxMessageSize() int
	Overview() server.Overview
	GlobalCounters() server.GlobalCounters
	RaftGroups() []server.RaftGroupInfo
	Node() server.NodeInfo
	Alarms() []string

	Authenticate(user, password string, remote net.Addr) (server.UserInfo, error)
	Users() []server.UserInfo
	User(name string) (server.UserInfo, error)
	PutUser(spec server.UserSpec) (created bool, err error)
	DeleteUser(name string) error
	Permissions() []server.Permission
	Permission(vhost, user string) (server.Permission, error)
	PutPermission(p server.Permission) (created bool, err error)
	DeletePermission(vhost, user string) error
	TopicPermissions() []server.TopicPermission
	PutTopicPermission(p server.TopicPermission) (created bool, err error)
	DeleteTopicPermissions(vhost, user, exchange string) error
	AllVhostLimits() []server.VhostLimits
	PutVhostLimit(vhost, name string, value int64) error
	DeleteVhostLimit(vhost, name string) error
	UserVhosts(user string) []string

	Vhosts() []server.VhostInfo
	Vhost(name string) (server.VhostInfo, error)
	VhostStats(name string) (server.VhostStats, error)
	PutVhost(info server.VhostInfo, actingUser string) (created bool, err error)
	DeleteVhost(name string) error

	Queues(match func(vhost string) bool) []server.QueueInfo
	Queue(vhost, name string) (server.QueueInfo, error)
	// QuorumCritical: the quorum queues that would lose their majority if this node stopped
	// (single: the node is not clustered).
	QuorumCritical() (single bool, critical []server.QueueInfo)
	DeclareQueue(vhost, name string, spec server.QueueSpec) (created bool, err error)
	DeleteQueue(vhost, name string, ifUnused, ifEmpty bool) error
	PurgeQueue(vhost, name string) (int, error)
	Get(vhost, queue string, count int, mode server.AckMode) ([]server.GotMessage, error)
	Browse(vhost, queue string, req server.BrowseRequest) ([]server.BrowsedMessage, error)

	Exchanges(match func(vhost string) bool) []server.ExchangeInfo
	Exchange(vhost, name string) (server.ExchangeInfo, error)
	DeclareExchange(vhost, name string, spec server.ExchangeSpec) (created bool, err error)
	DeleteExchange(vhost, name string, ifUnused bool) error
	Publish(vhost, exchange, routingKey string, props amqp.Properties, body []byte, user string) (routed bool, err error)

	Bindings(match func(vhost string) bool) []server.BindingInfo
	VhostBindings(vhost string) ([]server.BindingInfo, error)
	Bind(vhost, source, destType, dest, key string, args amqp.Table) error
	Unbind(vhost, source, destType, dest, key string, args amqp.Table) error

	Connections() []server.ConnectionInfo
	ConnectionsByProtocol() map[string]int
	StreamConnections() []server.ConnectionInfo
	StreamConnection(vhost, name string) (server.ConnectionInfo, error)
	StreamPublishers(vhost, connection string) ([]server.StreamPublisherInfo, error)
	StreamConsumers(vhost, connection string) ([]server.StreamConsumerInfo, error)
	Connection(name string) (server.ConnectionInfo, error)
	CloseConnection(name, reason string) error
	Channels(connection string) ([]server.ChannelInfo, error)
	Channel(name string) (server.ChannelInfo, error)
	Consumers(match func(vhost string) bool) []server.ConsumerInfo

	Policies() []server.Policy
	Policy(vhost, name string) (server.Policy, error)
	PutPolicy(p server.Policy) (created bool, err error)
	DeletePolicy(vhost, name string) error
	OperatorPolicies() []server.Policy
	OperatorPolicy(vhost, name string) (server.Policy, error)
	PutOperatorPolicy(p server.Policy) (created bool, err error)
	DeleteOperatorPolicy(vhost, name string) error

	AllUserLimits() []server.UserLimits
	PutUserLimit(user, name string, value int64) error
	DeleteUserLimit(user, name string) error
	GlobalParameters() []server.GlobalParameter
	GlobalParameter(name string) (server.GlobalParameter, error)
	PutGlobalParameter(name string, value json.RawMessage) (created bool, err error)
	DeleteGlobalParameter(name string) error

	Parameters() []server.Parameter
	Parameter(component, vhost, name string) (server.Parameter, error)
	PutParameter(p server.Parameter) (created bool, err error)
	DeleteParameter(component, vhost, name string) error

	FederationLinks(vhost string) []federation.LinkStatus

	ExportDefinitions(vhost string, all bool) (server.Definitions, error)
	ImportDefinitions(d server.Definitions, actingUser string) error
	AlivenessTest(vhost string) error

	// AllListeners lists the node's listeners (AMQP, AMQPS and the management's HTTP and HTTPS).
	AllListeners() []server.Listener
	// TLSHandshakeFailures counts the failed TLS handshakes on the AMQPS listeners.
	TLSHandshakeFailures() uint64
	// AuthAttempts counts the login attempts per protocol; ResetAuthAttempts zeroes them.
	AuthAttempts() []server.AuthAttempts
	ResetAuthAttempts()
}

var _ Broker = (*server.Server)(nil)

// Request body limits.
const (
	maxBody            = 1 << 20  // most requests
	maxDefinitionsBody = 16 << 20 // definitions import
)

// api is the management API's state: the broker and the logger; nothing else.
type api struct {
	b       Broker
	log     *slog.Logger
	shovels Shovels // nil: no /api/shovels
}

// NewHandler returns the management HTTP handler: the API under /api, Prometheus metrics under
// /metrics, and the web UI for every other path. opts add the plugins' endpoints (WithShovels).
func NewHandler(b Broker, log *slog.Logger, opts ...Option) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{b: b, log: log}
	for _, o := range opts {
		o(a)
	}
	return noSniff(trimSlash(newRouter(a)))
}

// newRouter registers every path. Each /api/ resource authenticates its requests (resource.go);
// the test walking these routes checks that none answers without credentials.
func newRouter(a *api) *mux.Router {
	r := mux.NewRouter().UseEncodedPath()
	r.SkipClean(true)
	a.routes(r)
	// Open without credentials on purpose, as rabbitmq_prometheus's endpoints are: scrapers
	// do not log in, and the metrics name no message contents.
	r.Handle("/metrics", a.metricsHandler(false))
	r.Handle("/metrics/per-object", a.metricsHandler(true))
	r.PathPrefix("/api/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeNotFound(w) })
	r.PathPrefix("/").Handler(uiHandler())
	return r
}

// noSniff marks every response X-Content-Type-Options: nosniff, so that a browser never reads a
// JSON body (which may carry names users chose) as HTML or script.
func noSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// trimSlash drops one trailing slash from API paths ("/api/bindings/" is "/api/bindings"), as
// RabbitMQ's router accepts both and clients such as rabbit-hole send them.
func trimSlash(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Look at the escaped path: "/api/queues/%2F" ends in a vhost named "/", not in a slash.
		if p := r.URL.EscapedPath(); len(p) > len("/api/") && strings.HasPrefix(p, "/api/") && strings.HasSuffix(p, "/") {
			trimmed, err := url.PathUnescape(strings.TrimSuffix(p, "/"))
			if err == nil {
				r2 := r.Clone(r.Context())
				r2.URL.Path, r2.URL.RawPath = trimmed, strings.TrimSuffix(p, "/")
				r = r2
			}
		}
		h.ServeHTTP(w, r)
	})
}
