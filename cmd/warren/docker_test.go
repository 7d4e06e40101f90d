package main

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Docker may not run where the tests do: these tests keep the Dockerfile and docker-compose.yml
// honest by reading them and putting what they use through the binary's real flag set and
// configuration code.

// dockerfile is what the test needs from the Dockerfile's final stage.
type dockerfile struct {
	from        string
	env         map[string]string
	expose      []string
	volumes     []string
	user        string
	entrypoint  []string
	cmd         []string
	healthcheck []string
	copies      []string // COPY lines of the final stage
	buildRuns   []string // RUN lines of the build stages
}

// parseDockerfile reads instructions line by line (joining backslash continuations).
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if cur == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	jsonArray := func(s string) []string {
		var a []string
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			t.Fatalf("%s: %q is not an exec-form JSON array: %v", path, s, err)
		}
		return a
	}
	d := dockerfile{env: map[string]string{}}
	var runs []string
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			// A new stage: what came before belongs to a build stage.
			d.buildRuns = append(d.buildRuns, runs...)
			runs = nil
			d.from, d.env, d.expose, d.volumes, d.user, d.copies = rest, map[string]string{}, nil, nil, "", nil
		case "RUN":
			runs = append(runs, rest)
		case "ENV":
			k, v, ok := strings.Cut(rest, "=")
			if !ok || strings.Contains(v, " ") {
				t.Fatalf("%s: ENV %q: use one KEY=value per line", path, rest)
			}
			d.env[k] = v
		case "EXPOSE":
			d.expose = append(d.expose, strings.Fields(rest)...)
		case "VOLUME":
			if strings.HasPrefix(rest, "[") {
				d.volumes = append(d.volumes, jsonArray(rest)...)
			} else {
				d.volumes = append(d.volumes, strings.Fields(rest)...)
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			d.entrypoint = jsonArray(rest)
		case "CMD":
			d.cmd = jsonArray(rest)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(rest, "CMD ")
			if !ok {
				t.Fatalf("%s: HEALTHCHECK without CMD", path)
			}
			d.healthcheck = jsonArray(strings.TrimSpace(c))
		case "COPY":
			d.copies = append(d.copies, rest)
		}
	}
	d.buildRuns = append(d.buildRuns, runs...) // a single-stage file builds in its only stage
	return d
}

// composeFile is the part of docker-compose.yml the test checks.
type composeFile struct {
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Command     []string          `yaml:"command"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		StopGracePeriod string `yaml:"stop_grace_period"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

var composeVar = regexp.MustCompile(`\$\{([A-Z_]+)(:-([^}]*))?\}`)

// composeEnv resolves ${VAR:-default} as compose does with VAR unset, and checks that the variable
// substituted is the one set (WARREN_DEFAULT_USER: ${WARREN_DEFAULT_USER:-guest}).
func composeEnv(t *testing.T, key, v string) string {
	t.Helper()
	return composeVar.ReplaceAllStringFunc(v, func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		if sub[1] != key {
			t.Errorf("compose: %s takes its value from ${%s}", key, sub[1])
		}
		if sub[2] == "" {
			t.Errorf("compose: %s has no default (${%s:-default})", key, sub[1])
		}
		return sub[3]
	})
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t, "../../Dockerfile")
	if !strings.HasPrefix(d.from, "gcr.io/distroless/static") && d.from != "scratch" {
		t.Errorf("final image %q, want distroless/static or scratch", d.from)
	}
	if d.user == "" || d.user == "root" || strings.HasPrefix(d.user, "0") {
		t.Errorf("USER %q: the image must not run as root", d.user)
	}
	build := strings.Join(d.buildRuns, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X github.com/warrenmq/warren/server.Version=", "./cmd/warren"} {
		if !strings.Contains(build, want) {
			t.Errorf("the build stage's go build lacks %q", want)
		}
	}
	if len(d.entrypoint) == 0 {
		t.Fatal("no ENTRYPOINT")
	}
	bin := d.entrypoint[0]
	if !slices.ContainsFunc(d.copies, func(c string) bool { return strings.HasSuffix(c, " "+bin) }) {
		t.Errorf("ENTRYPOINT %s is not COPYed into the final image (%q)", bin, d.copies)
	}

	// The image's environment and arguments go through the real configuration code.
	for k := range d.env {
		if !knownEnv(k) {
			t.Errorf("ENV %s is not an environment variable warren reads", k)
		}
	}
	args := append(slices.Clone(d.entrypoint[1:]), d.cmd...)
	cfg, _, err := loadConfig(args, env(flatten(d.env)...), io.Discard)
	if err != nil {
		t.Fatalf("the image's configuration: %v", err)
	}
	ports := []string{portOf(t, cfg.AMQPAddr), portOf(t, cfg.HTTPAddr)}
	if !slices.Equal(d.expose, ports) {
		t.Errorf("EXPOSE %q, but the binary listens on %q", d.expose, ports)
	}
	if !slices.Equal(d.volumes, []string{cfg.DataDir}) {
		t.Errorf("VOLUME %q, but the data directory is %q", d.volumes, cfg.DataDir)
	}
	if !slices.ContainsFunc(d.copies, func(c string) bool { return strings.HasSuffix(c, " "+cfg.DataDir) && strings.Contains(c, "--chown=") }) {
		t.Errorf("the data directory %s is not created owned by the image's user", cfg.DataDir)
	}

	// HEALTHCHECK runs the same binary's healthcheck, whose flags must parse.
	hc := d.healthcheck
	if len(hc) < 2 || hc[0] != bin || hc[1] != "healthcheck" {
		t.Fatalf("HEALTHCHECK %q, want [%s healthcheck ...]", hc, bin)
	}
	o, err := parseHealthcheck(hc[2:], env(flatten(d.env)...), io.Discard)
	if err != nil {
		t.Fatalf("HEALTHCHECK: %v", err)
	}
	if portOf(t, strings.TrimPrefix(o.url, "http://")) != portOf(t, cfg.HTTPAddr) {
		t.Errorf("HEALTHCHECK asks %s, but the management listener is %s", o.url, cfg.HTTPAddr)
	}
}

func TestDockerCompose(t *testing.T) {
	d := parseDockerfile(t, "../../Dockerfile")
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	svc, ok := cf.Services["warren"]
	if !ok {
		t.Fatalf("no warren service in docker-compose.yml")
	}
	if svc.Build == nil {
		t.Error("the warren service does not build the Dockerfile")
	}

	// The container's environment: the image's, then compose's (with its defaults).
	environ := map[string]string{}
	for k, v := range d.env {
		environ[k] = v
	}
	for k, v := range svc.Environment {
		if !knownEnv(k) {
			t.Errorf("compose sets %s, which warren does not read", k)
		}
		environ[k] = composeEnv(t, k, v)
	}
	for _, k := range []string{"WARREN_DEFAULT_USER", "WARREN_DEFAULT_PASS"} {
		if _, ok := svc.Environment[k]; !ok {
			t.Errorf("compose does not pass %s from the environment", k)
		}
	}
	args := append(slices.Clone(d.entrypoint[1:]), svc.Command...)
	cfg, _, err := loadConfig(args, env(flatten(environ)...), io.Discard)
	if err != nil {
		t.Fatalf("the service's configuration: %v", err)
	}
	if cfg.DefaultUser != "guest" || cfg.DefaultPass != "guest" {
		t.Errorf("default credentials %s/%s, want guest/guest when the environment sets none", cfg.DefaultUser, cfg.DefaultPass)
	}

	wantPorts := []string{portOf(t, cfg.AMQPAddr) + ":" + portOf(t, cfg.AMQPAddr), portOf(t, cfg.HTTPAddr) + ":" + portOf(t, cfg.HTTPAddr)}
	if !slices.Equal(svc.Ports, wantPorts) {
		t.Errorf("ports %q, want %q (the binary's listeners)", svc.Ports, wantPorts)
	}
	if len(svc.Volumes) != 1 {
		t.Fatalf("volumes %q, want one named data volume", svc.Volumes)
	}
	name, target, _ := strings.Cut(svc.Volumes[0], ":")
	if target != cfg.DataDir || !slices.Contains(d.volumes, target) {
		t.Errorf("volume mounted at %q; the data directory is %q and the image's VOLUME %q", target, cfg.DataDir, d.volumes)
	}
	if _, ok := cf.Volumes[name]; !ok {
		t.Errorf("volume %q is not declared at the top level", name)
	}

	hc := svc.Healthcheck.Test
	if len(hc) < 3 || hc[0] != "CMD" || hc[1] != d.entrypoint[0] || hc[2] != "healthcheck" {
		t.Fatalf("healthcheck %q, want [CMD %s healthcheck ...]", hc, d.entrypoint[0])
	}
	o, err := parseHealthcheck(hc[3:], env(flatten(environ)...), io.Discard)
	if err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	if o.user != cfg.DefaultUser || o.pass != cfg.DefaultPass || portOf(t, strings.TrimPrefix(o.url, "http://")) != portOf(t, cfg.HTTPAddr) {
		t.Errorf("healthcheck logs in as %s at %s; the broker's user is %s and its management port %s", o.user, o.url, cfg.DefaultUser, cfg.HTTPAddr)
	}
	// With credentials set in the environment, the broker and the healthcheck both use them.
	environ["WARREN_DEFAULT_USER"], environ["WARREN_DEFAULT_PASS"] = "admin", "s3cret"
	if o, err := parseHealthcheck(hc[3:], env(flatten(environ)...), io.Discard); err != nil || o.user != "admin" || o.pass != "s3cret" {
		t.Errorf("healthcheck with credentials from the environment: %+v %v", o, err)
	}
}

// The three-node example: every service's environment is a valid cluster configuration of the
// real binary, the member lists agree and name each service at its own hostname, each node has
// its own volume and host ports, and only the first builds the image.
func TestDockerComposeCluster(t *testing.T) {
	d := parseDockerfile(t, "../../Dockerfile")
	data, err := os.ReadFile("../../docker-compose.cluster.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Services map[string]struct {
			Build       any               `yaml:"build"`
			Hostname    string            `yaml:"hostname"`
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	if len(cf.Services) != 3 {
		t.Fatalf("%d services, want 3", len(cf.Services))
	}
	var lists []string
	hostPorts, volumes := map[string]bool{}, map[string]bool{}
	builds := 0
	for name, svc := range cf.Services {
		if svc.Build != nil {
			builds++
		}
		environ := map[string]string{}
		for k, v := range d.env {
			environ[k] = v
		}
		for k, v := range svc.Environment {
			if !knownEnv(k) {
				t.Errorf("%s: compose sets %s, which warren does not read", name, k)
			}
			if strings.Contains(v, "${") {
				v = composeEnv(t, k, v)
			}
			environ[k] = v
		}
		cfg, _, err := loadConfig(slices.Clone(d.entrypoint[1:]), env(flatten(environ)...), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := cfg.validateCluster(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		self := slices.IndexFunc(cfg.ClusterNodes, func(n ClusterNode) bool { return n.Name == cfg.NodeName })
		if self < 0 || !strings.HasPrefix(cfg.ClusterNodes[self].Addr, svc.Hostname+":") {
			t.Errorf("%s: the member list does not name node %s at its hostname %q", name, cfg.NodeName, svc.Hostname)
		}
		lists = append(lists, svc.Environment["WARREN_CLUSTER_NODES"])
		for _, p := range svc.Ports {
			host, _, _ := strings.Cut(p, ":")
			if hostPorts[host] {
				t.Errorf("%s: host port %s is used twice", name, host)
			}
			hostPorts[host] = true
		}
		if len(svc.Volumes) != 1 {
			t.Fatalf("%s: volumes %q, want one", name, svc.Volumes)
		}
		vol, target, _ := strings.Cut(svc.Volumes[0], ":")
		if target != cfg.DataDir || volumes[vol] {
			t.Errorf("%s: volume %q (data directory %s), shared or misplaced", name, svc.Volumes[0], cfg.DataDir)
		}
		if _, ok := cf.Volumes[vol]; !ok {
			t.Errorf("%s: volume %q is not declared at the top level", name, vol)
		}
		volumes[vol] = true
	}
	if builds != 1 {
		t.Errorf("%d services build the image, want 1 (the others use it)", builds)
	}
	for _, l := range lists[1:] {
		if l != lists[0] {
			t.Errorf("member lists differ: %q and %q", lists[0], l)
		}
	}
}

func flatten(m map[string]string) []string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k, v)
	}
	return kv
}
