package management

import (
	"net/http"
	"testing"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
)

// The Go management client Terraform's RabbitMQ provider uses, rabbit-hole, against Warren: it
// decodes every answer into typed structs, so a field of the wrong JSON type fails here.
func TestRabbitHole(t *testing.T) {
	e := startEnv(t, nil)
	rmq, err := rabbithole.NewClient(e.api, "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	must := func(what string, status int, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if status/100 != 2 {
			t.Fatalf("%s: status %d", what, status)
		}
	}
	res, err := rmq.PutVhost("rh", rabbithole.VhostSettings{Description: "rabbit-hole", Tags: rabbithole.VhostTags{"t1"}})
	must("PutVhost", code(res), err)
	res, err = rmq.PutUser("rh-user", rabbithole.UserSettings{Password: "pw", Tags: rabbithole.UserTags{"management"}})
	must("PutUser", code(res), err)
	res, err = rmq.UpdatePermissionsIn("rh", "rh-user", rabbithole.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
	must("UpdatePermissionsIn", code(res), err)
	res, err = rmq.DeclareExchange("rh", "rh.x", rabbithole.ExchangeSettings{Type: "topic", Durable: true})
	must("DeclareExchange", code(res), err)
	res, err = rmq.DeclareQueue("rh", "rh.q", rabbithole.QueueSettings{Durable: true, Arguments: map[string]any{"x-max-length": 10}})
	must("DeclareQueue", code(res), err)
	res, err = rmq.DeclareBinding("rh", rabbithole.BindingInfo{Source: "rh.x", Destination: "rh.q", DestinationType: "queue", RoutingKey: "k.#", Arguments: map[string]any{}})
	must("DeclareBinding", code(res), err)

	// Listings decode.
	if ov, err := rmq.Overview(); err != nil || ov.ObjectTotals.Queues != 1 {
		t.Errorf("Overview: %+v %v", ov, err)
	}
	if w, err := rmq.Whoami(); err != nil || w.Name != "guest" {
		t.Errorf("Whoami: %+v %v", w, err)
	}
	if ns, err := rmq.ListNodes(); err != nil || len(ns) != 1 || ns[0].Name != e.srv.NodeName() {
		t.Errorf("ListNodes: %+v %v", ns, err)
	}
	if vs, err := rmq.ListVhosts(); err != nil || len(vs) != 2 {
		t.Errorf("ListVhosts: %+v %v", vs, err)
	}
	if us, err := rmq.ListUsers(); err != nil || len(us) != 2 {
		t.Errorf("ListUsers: %+v %v", us, err)
	}
	if ps, err := rmq.ListPermissions(); err != nil || len(ps) != 3 {
		t.Errorf("ListPermissions: %+v %v", ps, err)
	}
	if xs, err := rmq.ListExchanges(); err != nil || len(xs) != 13 {
		t.Errorf("ListExchanges: %d %v", len(xs), err)
	}
	qs, err := rmq.ListQueues()
	if err != nil || len(qs) != 1 || qs[0].Name != "rh.q" || !qs[0].Durable {
		t.Errorf("ListQueues: %+v %v", qs, err)
	}
	q, err := rmq.GetQueue("rh", "rh.q")
	if err != nil || q.Vhost != "rh" || q.Arguments["x-max-length"] != float64(10) {
		t.Errorf("GetQueue: %+v %v", q, err)
	}
	bs, err := rmq.ListBindings()
	if err != nil {
		t.Fatalf("ListBindings: %v", err)
	}
	var found *rabbithole.BindingInfo
	for i := range bs {
		if bs[i].Source == "rh.x" {
			found = &bs[i]
		}
	}
	if found == nil || found.PropertiesKey != "k.%23" {
		t.Fatalf("binding: %+v", found)
	}
	if _, err := rmq.ListConnections(); err != nil {
		t.Errorf("ListConnections: %v", err)
	}
	if d, err := rmq.ListDefinitions(); err != nil || len(*d.Queues) != 1 {
		t.Errorf("ListDefinitions: %+v %v", d, err)
	}

	// Delete in turn.
	res, err = rmq.DeleteBinding("rh", *found)
	must("DeleteBinding", code(res), err)
	res, err = rmq.DeleteQueue("rh", "rh.q")
	must("DeleteQueue", code(res), err)
	res, err = rmq.DeleteUser("rh-user")
	must("DeleteUser", code(res), err)
	res, err = rmq.DeleteVhost("rh")
	must("DeleteVhost", code(res), err)
	if qs, err := rmq.ListQueues(); err != nil || len(qs) != 0 {
		t.Errorf("queues left: %+v %v", qs, err)
	}
	if _, err := rmq.GetQueue("rh", "rh.q"); err == nil {
		t.Error("the deleted queue is still there")
	} else if re, ok := err.(rabbithole.ErrorResponse); !ok || re.StatusCode != 404 {
		t.Errorf("GetQueue of a deleted queue: %#v", err)
	}
}

func code(res *http.Response) int {
	if res == nil {
		return 0
	}
	return res.StatusCode
}

// rabbit-hole's own calls for user limits, operator policies, global parameters, the cluster
// name, one exchange's topic permission and queue sync actions, against Warren.
func TestRabbitHoleLimitsPoliciesParameters(t *testing.T) {
	e := startEnv(t, nil)
	rmq, err := rabbithole.NewClient(e.api, "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	must := func(what string, res *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if code(res)/100 != 2 {
			t.Fatalf("%s: status %d", what, code(res))
		}
	}
	res, err := rmq.PutUser("rh-user", rabbithole.UserSettings{Password: "pw", Tags: rabbithole.UserTags{"management"}})
	must("PutUser", res, err)

	// User limits.
	res, err = rmq.PutUserLimits("rh-user", rabbithole.UserLimitsValues{"max-connections": 3, "max-channels": 20})
	must("PutUserLimits", res, err)
	if ls, err := rmq.GetUserLimits("rh-user"); err != nil || len(ls) != 1 || ls[0].User != "rh-user" ||
		ls[0].Value["max-connections"] != 3 || ls[0].Value["max-channels"] != 20 {
		t.Errorf("GetUserLimits: %+v %v", ls, err)
	}
	res, err = rmq.DeleteUserLimits("rh-user", rabbithole.UserLimits{"max-channels"})
	must("DeleteUserLimits", res, err)
	if ls, err := rmq.GetAllUserLimits(); err != nil || len(ls) != 1 || len(ls[0].Value) != 1 || ls[0].Value["max-connections"] != 3 {
		t.Errorf("GetAllUserLimits: %+v %v", ls, err)
	}

	// Operator policies.
	op := rabbithole.OperatorPolicy{Pattern: "^rh\\.", ApplyTo: "queues", Priority: 2,
		Definition: rabbithole.PolicyDefinition{"max-length": 100, "expires": 60000}}
	res, err = rmq.PutOperatorPolicy("/", "rh-op", op)
	must("PutOperatorPolicy", res, err)
	if p, err := rmq.GetOperatorPolicy("/", "rh-op"); err != nil || p.Name != "rh-op" || p.Vhost != "/" || p.Priority != 2 ||
		p.ApplyTo != "queues" || p.Definition["max-length"] != float64(100) {
		t.Errorf("GetOperatorPolicy: %+v %v", p, err)
	}
	if ps, err := rmq.ListOperatorPolicies(); err != nil || len(ps) != 1 {
		t.Errorf("ListOperatorPolicies: %+v %v", ps, err)
	}
	if ps, err := rmq.ListOperatorPoliciesIn("/"); err != nil || len(ps) != 1 {
		t.Errorf("ListOperatorPoliciesIn: %+v %v", ps, err)
	}
	res, err = rmq.DeclareQueue("/", "rh.q", rabbithole.QueueSettings{Durable: true})
	must("DeclareQueue", res, err)
	// rabbit-hole's QueueInfo has no operator_policy field: it must still decode.
	if _, err := rmq.GetQueue("/", "rh.q"); err != nil {
		t.Errorf("GetQueue: %v", err)
	}
	if q := e.must(200, "GET", "/api/queues/%2F/rh.q", nil).obj(t); q["operator_policy"] != "rh-op" {
		t.Errorf("operator_policy %v", q["operator_policy"])
	}
	res, err = rmq.SyncQueue("/", "rh.q")
	must("SyncQueue", res, err)
	res, err = rmq.CancelSyncQueue("/", "rh.q")
	must("CancelSyncQueue", res, err)
	res, err = rmq.DeleteOperatorPolicy("/", "rh-op")
	must("DeleteOperatorPolicy", res, err)
	if _, err := rmq.GetOperatorPolicy("/", "rh-op"); err == nil {
		t.Error("the deleted operator policy is still there")
	}

	// Global parameters and the cluster name.
	res, err = rmq.PutGlobalParameter("rh-param", map[string]any{"k": "v"})
	must("PutGlobalParameter", res, err)
	if p, err := rmq.GetGlobalParameter("rh-param"); err != nil || p.Name != "rh-param" || p.Value.(map[string]any)["k"] != "v" {
		t.Errorf("GetGlobalParameter: %+v %v", p, err)
	}
	res, err = rmq.SetClusterName(rabbithole.ClusterName{Name: "rh-cluster"})
	must("SetClusterName", res, err)
	if cn, err := rmq.GetClusterName(); err != nil || cn.Name != "rh-cluster" {
		t.Errorf("GetClusterName: %+v %v", cn, err)
	}
	ps, err := rmq.ListGlobalParameters()
	if err != nil || len(ps) != 3 { // cluster_name, internal_cluster_id, rh-param
		t.Errorf("ListGlobalParameters: %+v %v", ps, err)
	}
	res, err = rmq.DeleteGlobalParameter("rh-param")
	must("DeleteGlobalParameter", res, err)

	// One exchange's topic permission.
	for _, x := range []string{"amq.topic", "rh.topic"} {
		res, err = rmq.UpdateTopicPermissionsIn("/", "rh-user", rabbithole.TopicPermissions{Exchange: x, Write: ".*", Read: ".*"})
		must("UpdateTopicPermissionsIn", res, err)
	}
	res, err = rmq.DeleteTopicPermissionsIn("/", "rh-user", "amq.topic")
	must("DeleteTopicPermissionsIn", res, err)
	if tps, err := rmq.GetTopicPermissionsIn("/", "rh-user"); err != nil || len(tps) != 1 || tps[0].Exchange != "rh.topic" {
		t.Errorf("GetTopicPermissionsIn: %+v %v", tps, err)
	}
}
