package management

import (
	"bufio"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The side-by-side walk over RabbitMQ 3.10.8's endpoint list (testdata/mgmt-api-endpoints-3.10.8.txt,
// the list its management UI's API page gives): every endpoint with a GET is called on Warren,
// with the fixture's vhost, queues, exchanges, bindings, connections and channels present, and
// must answer RabbitMQ's status with RabbitMQ's top-level keys (those of the captured sample
// named, or listed), except the Erlang-only figures and user_who_performed_action (erlangOnly;
// Warren's exchanges lack it: docs/DESIGN.md). Endpoints without a GET must answer 405, as RabbitMQ
// does. The walk was
// first run live against RabbitMQ and Warren side by side (docs/DESIGN.md, management API).

// walkEntry is one endpoint of the list.
type walkEntry struct {
	endpoint string // as the list writes it
	path     string // the call on the fixture
	status   int
	sample   string   // the captured sample whose top-level keys the answer has
	keys     []string // or these keys (no sample captured)
	// owner: built by another part of issue 15 (another helper's branch); not checked here.
	owner string
	// why: what differs from RabbitMQ on purpose, for an answer checked otherwise.
	why string
}

const (
	ownerMgmtb  = "mgmtb (user limits, operator policies, global parameters, queue actions)"
	ownerParams = "params (/api/parameters, shovels)"
)

func walkTable(node, conn, channel string, amqpPort int) []walkEntry {
	esc := url.PathEscape
	return []walkEntry{
		{endpoint: "/api/overview", path: "/api/overview", status: 200, sample: "overview.json"},
		{endpoint: "/api/cluster-name", path: "/api/cluster-name", status: 200, sample: "cluster-name.json"},
		{endpoint: "/api/nodes", path: "/api/nodes", status: 200, sample: "nodes.json"},
		{endpoint: "/api/nodes/name", path: "/api/nodes/" + esc(node), status: 200, sample: "node.json"},
		{endpoint: "/api/extensions", path: "/api/extensions", status: 200, keys: []string{},
			why: "RabbitMQ lists its plugins' UI scripts (dispatcher.js of shovel/federation management); Warren's UI has none: []"},
		{endpoint: "/api/definitions", path: "/api/definitions", status: 200, sample: "definitions.json"},
		{endpoint: "/api/all-configuration", path: "/api/all-configuration", status: 200, sample: "definitions.json"},
		{endpoint: "/api/definitions/vhost", path: "/api/definitions/research", status: 200, sample: "definitions-vhost.json"},
		{endpoint: "/api/connections", path: "/api/connections", status: 200, sample: "connections.json"},
		{endpoint: "/api/vhosts/vhost/connections", path: "/api/vhosts/research/connections", status: 200, sample: "connections-vhost.json"},
		{endpoint: "/api/connections/name", path: "/api/connections/" + esc(conn), status: 200, sample: "connection.json"},
		{endpoint: "/api/connections/username/username", path: "/api/connections/username/guest", status: 200, sample: "connections-username.json"},
		{endpoint: "/api/connections/name/channels", path: "/api/connections/" + esc(conn) + "/channels", status: 200, sample: "connection-channels.json"},
		{endpoint: "/api/channels", path: "/api/channels", status: 200, sample: "channels.json"},
		{endpoint: "/api/vhosts/vhost/channels", path: "/api/vhosts/research/channels", status: 200, sample: "channels-vhost.json"},
		{endpoint: "/api/channels/channel", path: "/api/channels/" + esc(channel), status: 200, sample: "channel.json"},
		{endpoint: "/api/consumers", path: "/api/consumers", status: 200, sample: "consumers.json"},
		{endpoint: "/api/consumers/vhost", path: "/api/consumers/research", status: 200, sample: "consumers-vhost.json"},
		{endpoint: "/api/exchanges", path: "/api/exchanges", status: 200, sample: "exchanges.json"},
		{endpoint: "/api/exchanges/vhost", path: "/api/exchanges/research", status: 200, sample: "exchanges-vhost.json"},
		{endpoint: "/api/exchanges/vhost/name", path: "/api/exchanges/research/rx.topic", status: 200, sample: "exchange.json"},
		{endpoint: "/api/exchanges/vhost/name/bindings/source", path: "/api/exchanges/research/rx.topic/bindings/source", status: 200, sample: "exchange-bindings-source.json"},
		{endpoint: "/api/exchanges/vhost/name/bindings/destination", path: "/api/exchanges/research/rx.fanout/bindings/destination", status: 200, sample: "exchange-bindings-destination.json"},
		{endpoint: "/api/exchanges/vhost/name/publish", path: "/api/exchanges/research/rx.topic/publish", status: 405},
		{endpoint: "/api/queues", path: "/api/queues", status: 200, sample: "queues.json"},
		{endpoint: "/api/queues/vhost", path: "/api/queues/research", status: 200, sample: "queues-vhost.json"},
		{endpoint: "/api/queues/vhost/name", path: "/api/queues/research/rq.classic", status: 200, sample: "queue-classic.json"},
		{endpoint: "/api/queues/vhost/name/bindings", path: "/api/queues/research/rq.classic/bindings", status: 200, sample: "queue-bindings.json"},
		{endpoint: "/api/queues/vhost/name/contents", path: "/api/queues/research/rq.classic/contents", status: 405},
		{endpoint: "/api/queues/vhost/name/actions", owner: ownerMgmtb},
		{endpoint: "/api/queues/vhost/name/get", path: "/api/queues/research/rq.classic/get", status: 405},
		{endpoint: "/api/bindings", path: "/api/bindings", status: 200, sample: "bindings.json"},
		{endpoint: "/api/bindings/vhost", path: "/api/bindings/research", status: 200, sample: "bindings-vhost.json"},
		{endpoint: "/api/bindings/vhost/e/exchange/q/queue", path: "/api/bindings/research/e/rx.topic/q/rq.classic", status: 200, sample: "bindings-e-q.json"},
		{endpoint: "/api/bindings/vhost/e/exchange/q/queue/props", path: "/api/bindings/research/e/rx.topic/q/rq.classic/orders.%252A", status: 200, sample: "bindings-e-q-props.json"},
		{endpoint: "/api/bindings/vhost/e/source/e/destination", path: "/api/bindings/research/e/rx.topic/e/rx.fanout", status: 200, sample: "bindings-e-e.json"},
		{endpoint: "/api/vhosts", path: "/api/vhosts", status: 200, sample: "vhosts.json"},
		{endpoint: "/api/vhosts/name", path: "/api/vhosts/research", status: 200, sample: "vhost.json"},
		{endpoint: "/api/vhosts/name/permissions", path: "/api/vhosts/research/permissions", status: 200, sample: "vhost-permissions.json"},
		{endpoint: "/api/vhosts/name/topic-permissions", path: "/api/vhosts/research/topic-permissions", status: 200, sample: "vhost-topic-permissions.json"},
		{endpoint: "/api/vhosts/name/start/node", path: "/api/vhosts/research/start/" + esc(node), status: 405},
		{endpoint: "/api/users/", path: "/api/users/", status: 200, sample: "users.json"},
		{endpoint: "/api/users/without-permissions", path: "/api/users/without-permissions", status: 200, sample: "users-without-permissions.json"},
		{endpoint: "/api/users/bulk-delete", path: "/api/users/bulk-delete", status: 405},
		{endpoint: "/api/users/name", path: "/api/users/research-user", status: 200, sample: "user.json"},
		{endpoint: "/api/users/user/permissions", path: "/api/users/research-user/permissions", status: 200, sample: "user-permissions.json"},
		{endpoint: "/api/users/user/topic-permissions", path: "/api/users/research-user/topic-permissions", status: 200, sample: "user-topic-permissions.json"},
		{endpoint: "/api/user-limits", owner: ownerMgmtb},
		{endpoint: "/api/user-limits/user", owner: ownerMgmtb},
		{endpoint: "/api/user-limits/user/name", owner: ownerMgmtb},
		{endpoint: "/api/whoami", path: "/api/whoami", status: 200, sample: "whoami.json"},
		{endpoint: "/api/permissions", path: "/api/permissions", status: 200, sample: "permissions.json"},
		{endpoint: "/api/permissions/vhost/user", path: "/api/permissions/research/research-user", status: 200, sample: "permission.json"},
		{endpoint: "/api/topic-permissions", path: "/api/topic-permissions", status: 200, sample: "topic-permissions.json"},
		{endpoint: "/api/topic-permissions/vhost/user", path: "/api/topic-permissions/research/research-user", status: 200, sample: "topic-permission.json"},
		{endpoint: "/api/parameters", owner: ownerParams},
		{endpoint: "/api/parameters/component", owner: ownerParams},
		{endpoint: "/api/parameters/component/vhost", owner: ownerParams},
		{endpoint: "/api/parameters/component/vhost/name", owner: ownerParams},
		{endpoint: "/api/global-parameters", owner: ownerMgmtb},
		{endpoint: "/api/global-parameters/name", owner: ownerMgmtb},
		{endpoint: "/api/policies/vhost", path: "/api/policies/research", status: 200, sample: "policies-vhost.json"},
		{endpoint: "/api/policies/vhost/name", path: "/api/policies/research/ttl-policy", status: 200, sample: "policy.json"},
		{endpoint: "/api/operator-policies", owner: ownerMgmtb},
		{endpoint: "/api/operator-policies/vhost", owner: ownerMgmtb},
		{endpoint: "/api/operator-policies/vhost/name", owner: ownerMgmtb},
		{endpoint: "/api/aliveness-test/vhost", path: "/api/aliveness-test/research", status: 200, sample: "aliveness-test.json"},
		{endpoint: "/api/health/checks/alarms", path: "/api/health/checks/alarms", status: 200, sample: "health-alarms.json"},
		{endpoint: "/api/health/checks/local-alarms", path: "/api/health/checks/local-alarms", status: 200, sample: "health-local-alarms.json"},
		{endpoint: "/api/health/checks/certificate-expiration/within/unit", path: "/api/health/checks/certificate-expiration/1/months", status: 200, sample: "health-certificate-expiration.json"},
		{endpoint: "/api/health/checks/port-listener/port", path: "/api/health/checks/port-listener/" + strconv.Itoa(amqpPort), status: 200, sample: "health-port-listener-5672.json"},
		{endpoint: "/api/health/checks/protocol-listener/protocol", path: "/api/health/checks/protocol-listener/amqp", status: 200, sample: "health-protocol-listener-amqp.json"},
		{endpoint: "/api/health/checks/virtual-hosts", path: "/api/health/checks/virtual-hosts", status: 200, sample: "health-virtual-hosts.json"},
		{endpoint: "/api/health/checks/node-is-mirror-sync-critical", path: "/api/health/checks/node-is-mirror-sync-critical", status: 200, sample: "health-node-is-mirror-sync-critical.json"},
		{endpoint: "/api/health/checks/node-is-quorum-critical", path: "/api/health/checks/node-is-quorum-critical", status: 200, sample: "health-node-is-quorum-critical.json"},
		{endpoint: "/api/vhost-limits", path: "/api/vhost-limits", status: 200, sample: "vhost-limits.json"},
		{endpoint: "/api/vhost-limits/vhost", path: "/api/vhost-limits/research", status: 200, sample: "vhost-limits-vhost.json"},
		{endpoint: "/api/vhost-limits/vhost/name", path: "/api/vhost-limits/research/max-connections", status: 405},
		{endpoint: "/api/auth", path: "/api/auth", status: 200, sample: "auth.json"},
		{endpoint: "/api/rebalance/queues", path: "/api/rebalance/queues", status: 405},
		{endpoint: "/api/federation-links", path: "/api/federation-links", status: 200, keys: []string{},
			why: "no link in the fixture: federation_test.go checks the fields of running and failed links"},
		{endpoint: "/api/federation-links/vhost", path: "/api/federation-links/research", status: 200, keys: []string{},
			why: "no link in the fixture: federation_test.go checks the fields of running and failed links"},
		{endpoint: "/api/auth/attempts/node", path: "/api/auth/attempts/" + esc(node), status: 200,
			keys: []string{"protocol", "auth_attempts", "auth_attempts_failed", "auth_attempts_succeeded"}},
		{endpoint: "/api/auth/attempts/node/source", path: "/api/auth/attempts/" + esc(node) + "/source", status: 200, keys: []string{},
			why: "RabbitMQ tracks sources only with track_auth_attempt_source (default off: []); Warren never does"},
		// Listed in feature-flags.json's capture, not in the endpoint list.
		{endpoint: "/api/feature-flags", path: "/api/feature-flags", status: 200, sample: "feature-flags.json"},
	}
}

// endpointList reads the endpoint list: each path with the methods it has.
func endpointList(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("testdata/mgmt-api-endpoints-3.10.8.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	var methods []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "/api/")
		if i < 0 {
			continue
		}
		if head := strings.TrimSpace(line[:i]); head != "" {
			methods = strings.Fields(head)
		} // else: a second path of the line above, with its methods
		path, _, _ := strings.Cut(line[i:], " ")
		out[path] = methods
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// topKeys are the top-level keys of a sample (of its first element for a list), without the
// figures only an Erlang VM has (erlangOnly).
func topKeys(fields map[string][]string) []string {
	set := map[string]bool{}
	for p := range fields {
		p = strings.TrimPrefix(p, "[]")
		p = strings.TrimPrefix(p, ".")
		if p == "" {
			continue
		}
		k := p
		if i := strings.IndexAny(p, ".[{"); i >= 0 {
			k = p[:i]
		}
		if k != "" && !erlangOnly(k) {
			set[k] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestWalkRabbitMQEndpoints(t *testing.T) {
	e := startEnv(t, nil)
	f := buildFixture(t, e)
	// What the fixture lacks for the walk: a topic permission, a vhost limit, a user without
	// permissions.
	e.must(201, "PUT", "/api/topic-permissions/research/research-user", map[string]any{"exchange": "amq.topic", "write": "^a", "read": ".*"})
	e.must(204, "PUT", "/api/vhost-limits/research/max-connections", map[string]any{"value": 100})
	e.must(201, "PUT", "/api/users/walk-noperm", map[string]any{"password": "x", "tags": ""})
	fields := loadSampleFields(t)
	table := walkTable(e.srv.NodeName(), f.pubName, f.pubName+" (1)", portOf(t, e.addr))

	// Every endpoint of the list is in the table, and the table has nothing else but the
	// feature flags.
	list := endpointList(t)
	byEndpoint := map[string]walkEntry{}
	for _, w := range table {
		if _, dup := byEndpoint[w.endpoint]; dup {
			t.Errorf("%s twice in the table", w.endpoint)
		}
		byEndpoint[w.endpoint] = w
		if _, ok := list[w.endpoint]; !ok && w.endpoint != "/api/feature-flags" {
			t.Errorf("%s is not in RabbitMQ's endpoint list", w.endpoint)
		}
	}
	for ep := range list {
		if _, ok := byEndpoint[ep]; !ok {
			t.Errorf("endpoint %s of RabbitMQ's list is not walked", ep)
		}
	}

	var owned []string
	for _, w := range table {
		if w.owner != "" {
			owned = append(owned, w.endpoint+": "+w.owner)
			continue
		}
		t.Run(w.endpoint, func(t *testing.T) {
			hasGet := slices.Contains(list[w.endpoint], "GET") || w.endpoint == "/api/feature-flags"
			if !hasGet && w.status != 405 {
				t.Fatalf("RabbitMQ has no GET on %s: the walk expects 405", w.endpoint)
			}
			r := e.do("GET", w.path, guest, nil)
			if r.status != w.status {
				t.Fatalf("GET %s: status %d, want %d (%s): %s", w.path, r.status, w.status, w.why, r.body)
			}
			if w.status != 200 {
				return
			}
			want := w.keys
			if w.sample != "" {
				sf, ok := fields[w.sample]
				if !ok {
					t.Fatalf("no sample %s", w.sample)
				}
				want = topKeys(sf)
			}
			v := r.json(t)
			var obj map[string]any
			switch x := v.(type) {
			case map[string]any:
				obj = x
			case []any:
				if len(x) == 0 {
					if len(want) > 0 {
						t.Fatalf("GET %s: an empty list; the fixture should give it elements with %v", w.path, want)
					}
					return
				}
				obj, _ = x[0].(map[string]any)
			}
			for _, k := range want {
				if _, ok := obj[k]; !ok {
					t.Errorf("GET %s: key %q missing (RabbitMQ's: %v)", w.path, k, want)
				}
			}
		})
	}
	t.Logf("built by other parts of issue 15, not walked here:\n  %s", strings.Join(owned, "\n  "))
}
