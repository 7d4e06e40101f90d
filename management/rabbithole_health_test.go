package management

import (
	"net"
	"testing"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
)

// rabbit-hole's health checks, feature flags and node calls decode Warren's answers into its typed
// structs, failing and passing where RabbitMQ's would.
func TestRabbitHoleHealthChecks(t *testing.T) {
	e := startEnv(t, nil)
	rmq, err := rabbithole.NewClient(e.api, "guest", "guest")
	if err != nil {
		t.Fatal(err)
	}
	amqpPort := uint(portOf(t, e.addr))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := uint(portOf(t, ln.Addr().String()))
	ln.Close()

	if st, err := rmq.HealthCheckPortListener(amqpPort); err != nil || !st.Ok() || st.Port != amqpPort {
		t.Errorf("port listener %d: %+v %v", amqpPort, st, err)
	}
	if st, err := rmq.HealthCheckPortListener(closed); err != nil || st.Ok() || st.Missing != closed || len(st.Ports) != 2 {
		t.Errorf("port listener %d: %+v %v", closed, st, err)
	}
	for _, p := range []rabbithole.Protocol{rabbithole.AMQP, rabbithole.AMQP091, rabbithole.HTTP} {
		if st, err := rmq.HealthCheckProtocolListener(p); err != nil || !st.Ok() {
			t.Errorf("protocol listener %s: %+v %v", p, st, err)
		}
	}
	if st, err := rmq.HealthCheckProtocolListener(rabbithole.MQTT); err != nil || st.Ok() || st.Missing != "mqtt" || len(st.Protocols) != 2 {
		t.Errorf("protocol listener mqtt: %+v %v", st, err)
	}
	for unit, ok := range map[rabbithole.TimeUnit]bool{rabbithole.DAYS: true, rabbithole.MONTHS: true, rabbithole.YEARS: true, rabbithole.SECONDS: false} {
		st, err := rmq.HealthCheckCertificateExpiration(1, unit)
		if ok && (err != nil || !st.Ok()) {
			t.Errorf("certificate expiration 1 %s: %+v %v", unit, st, err)
		}
		if !ok && err == nil { // RabbitMQ 3.10 has no seconds: 400
			t.Errorf("certificate expiration 1 %s: %+v, want a 400", unit, st)
		}
	}
	checks := map[string]func() (rabbithole.HealthCheckStatus, error){
		"virtual hosts": rmq.HealthCheckVirtualHosts, "mirror sync critical": rmq.HealthCheckNodeIsMirrorSyncCritical,
		"quorum critical": rmq.HealthCheckNodeIsQuorumCritical,
	}
	for name, f := range checks {
		if st, err := f(); err != nil || !st.Ok() {
			t.Errorf("%s: %+v %v", name, st, err)
		}
	}
	ffs, err := rmq.ListFeatureFlags()
	if err != nil || len(ffs) != len(featureFlagList) {
		t.Fatalf("feature flags: %+v %v", ffs, err)
	}
	for _, f := range ffs {
		if f.Stability != rabbithole.StabilityStable || f.Desc == "" || f.ProvidedBy == "" {
			t.Errorf("feature flag %+v", f)
		}
	}
	n, err := rmq.GetNode(e.srv.NodeName())
	if err != nil || n.ProcTotal <= 0 || n.IOReadCount != 0 || n.MnesiaDiskTxCount != 0 {
		t.Errorf("GetNode: %+v %v", n, err)
	}
}
