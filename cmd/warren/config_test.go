package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/management"
	"github.com/warrenmq/warren/server"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env is a fake environment for loadConfig.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func mustLoad(t *testing.T, args []string, lookup func(string) (string, bool)) Config {
	t.Helper()
	c, _, err := loadConfig(args, lookup, io.Discard)
	if err != nil {
		t.Fatalf("loadConfig(%q): %v", args, err)
	}
	return c
}

// A file with every key sets every field, in RabbitMQ's units.
func TestConfigFileAllKeys(t *testing.T) {
	path := writeFile(t, "warren.conf", `
# Warren, as rabbitmq.conf
listeners.tcp.default = 127.0.0.1:5673
management.tcp.port = 15673   # trailing comment
management.tcp.ip = 0.0.0.0
data_dir = /var/lib/warren
default_user = admin
default_pass = s3cr#t
default_vhost = prod
loopback_users.guest = false
loopback_users.admin = true
heartbeat = 30
frame_max = 65536
channel_max = 0
max_message_size = 1048576
consumer_timeout = 900000
handshake_timeout = 5000
store_sync_interval = 50
vm_memory_high_watermark.absolute = 2GiB
memory_monitor_interval = 2500
disk_free_limit.absolute = 1GB
log.console.level = warning
log.console.formatter = json
load_definitions = /etc/warren/definitions.json

listeners.ssl.default = 5671
ssl_options.cacertfile = /certs/ca.pem
ssl_options.certfile = /certs/server.pem
ssl_options.keyfile = /certs/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
management.ssl.port = 15671
management.ssl.certfile = /certs/server.pem
management.ssl.keyfile = /certs/server.key
management.ssl.cacertfile = /certs/ca.pem
ssl_cert_login_from = common_name
`)
	got := mustLoad(t, []string{"--config", path}, env())
	want := Config{
		File:     path,
		AMQPAddr: "127.0.0.1:5673", HTTPAddr: "0.0.0.0:15673", DataDir: "/var/lib/warren",
		DefaultUser: "admin", DefaultPass: "s3cr#t", DefaultVhost: "prod",
		STOMPDefaultUser: "guest", STOMPDefaultPass: "guest",
		LoopbackUsers:         []string{"admin"},
		Heartbeat:             30 * time.Second,
		FrameMax:              65536,
		ChannelMax:            65535,
		MaxMessageSize:        1 << 20,
		ConsumerTimeout:       15 * time.Minute,
		HandshakeTimeout:      5 * time.Second,
		SyncInterval:          50 * time.Millisecond,
		MemoryHighWatermark:   MemoryWatermark{Absolute: 2 << 30},
		MemoryMonitorInterval: 2500 * time.Millisecond,
		DiskFreeLimit:         1e9,
		LogLevel:              slog.LevelWarn,
		LogFormat:             "json",
		LoadDefinitions:       "/etc/warren/definitions.json",
		TLS: TLSConfig{
			AMQPSAddr: ":5671", CACertFile: "/certs/ca.pem", CertFile: "/certs/server.pem", KeyFile: "/certs/server.key",
			VerifyPeer: true, FailIfNoPeerCert: true, CertLoginFrom: "common_name", HTTPSAddr: ":15671",
			HTTPSCertFile: "/certs/server.pem", HTTPSKeyFile: "/certs/server.key", HTTPSCACertFile: "/certs/ca.pem",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("config\n got %+v\nwant %+v", got, want)
	}
	o := got.serverOptions()
	if o.DefaultVhost != "prod" || o.ChannelMax != 65535 || o.ConsumerTimeout != 15*time.Minute || o.DiskFreeLimit != 1e9 || o.SyncInterval != 50*time.Millisecond {
		t.Fatalf("server options %+v", o)
	}
}

func TestConfigFileValues(t *testing.T) {
	for _, tc := range []struct {
		line  string
		check func(c Config) bool
	}{
		{"listeners.tcp.default = 5672", func(c Config) bool { return c.AMQPAddr == ":5672" }},
		{"mqtt.listeners.tcp.default = 1883", func(c Config) bool { return c.MQTTAddr == ":1883" }},
		{"mqtt.listeners.ssl.default = 8883\nssl_options.certfile = /c\nssl_options.keyfile = /k", func(c Config) bool { return c.TLS.MQTTSAddr == ":8883" }},
		{"web_mqtt.tcp.port = 15675", func(c Config) bool { return c.WebMQTTAddr == ":15675" }},
		{"web_stomp.tcp.port = 15674", func(c Config) bool { return c.WebSTOMPAddr == ":15674" }},
		{"connection_max = 100", func(c Config) bool { return c.ConnectionMax == 100 && c.serverOptions().ConnectionMax == 100 }},
		{"connection_max = infinity", func(c Config) bool { return c.ConnectionMax == 0 }},
		{"web_mqtt.ssl.port = 15676\nssl_options.certfile = /c\nssl_options.keyfile = /k", func(c Config) bool { return c.TLS.WebMQTTSAddr == ":15676" }},
		{"web_stomp.ssl.port = 15673\nssl_options.certfile = /c\nssl_options.keyfile = /k", func(c Config) bool { return c.TLS.WebSTOMPSAddr == ":15673" }},
		{"mqtt.vhost = iot", func(c Config) bool { return c.MQTT.Vhost == "iot" && c.serverOptions().MQTT.Vhost == "iot" }},
		{"mqtt.default_user = dev", func(c Config) bool { return c.MQTT.DefaultUser == "dev" }},
		{"mqtt.default_pass = pw", func(c Config) bool { return c.MQTT.DefaultPass == "pw" }},
		{"mqtt.exchange = mqtt.x", func(c Config) bool { return c.MQTT.Exchange == "mqtt.x" }},
		{"mqtt.prefetch = 50", func(c Config) bool { return c.MQTT.Prefetch == 50 }},
		{"mqtt.subscription_ttl = 3600000", func(c Config) bool { return c.MQTT.SubscriptionTTL == time.Hour }},
		{"mqtt.subscription_ttl = undefined", func(c Config) bool { return c.MQTT.SubscriptionTTL < 0 }},
		{"listeners.tcp.default = ::1:5672", func(c Config) bool { return c.AMQPAddr == "[::1]:5672" }},
		{"listeners.tcp.default = [::1]:5672", func(c Config) bool { return c.AMQPAddr == "[::1]:5672" }},
		{"management.tcp.ip = 127.0.0.1", func(c Config) bool { return c.HTTPAddr == "127.0.0.1:15672" }},
		{"stomp.listeners.tcp.1 = 61613", func(c Config) bool { return c.STOMPAddr == ":61613" }},
		{"stomp.default_vhost = v1", func(c Config) bool { return c.serverOptions().STOMPDefaultVhost == "v1" }},
		{"stomp.default_user = u1", func(c Config) bool {
			o := c.serverOptions()
			return o.STOMPDefaultUser == "u1" && o.STOMPDefaultPass == "guest"
		}},
		{"loopback_users = none", func(c Config) bool { return c.LoopbackUsers != nil && len(c.LoopbackUsers) == 0 }},
		{"loopback_users.guest = false", func(c Config) bool { return c.LoopbackUsers != nil && len(c.LoopbackUsers) == 0 }},
		{"heartbeat = 0", func(c Config) bool { return c.Heartbeat == 0 && c.serverOptions().Heartbeat < 0 }},
		{"consumer_timeout = -1", func(c Config) bool { return c.ConsumerTimeout < 0 }},
		{"disk_free_limit.absolute = 50MB", func(c Config) bool { return c.DiskFreeLimit == 50e6 }},
		{"disk_free_limit.absolute = 512MiB", func(c Config) bool { return c.DiskFreeLimit == 512<<20 }},
		{"disk_free_limit.absolute = 2G", func(c Config) bool { return c.DiskFreeLimit == 2<<30 }},
		{"disk_free_limit.absolute = 123456", func(c Config) bool { return c.DiskFreeLimit == 123456 }},
		{"vm_memory_high_watermark.relative = 0.6", func(c Config) bool {
			l, err := c.MemoryHighWatermark.limit(1000)
			return c.MemoryHighWatermark == MemoryWatermark{Relative: 0.6} && l == 600 && err == nil
		}},
		{"vm_memory_high_watermark.absolute = 100MiB", func(c Config) bool {
			l, err := c.MemoryHighWatermark.limit(-1)
			capped, _ := c.MemoryHighWatermark.limit(50 << 20) // above the total: the total
			return c.MemoryHighWatermark == MemoryWatermark{Absolute: 100 << 20} && l == 100<<20 && err == nil && capped == 50<<20
		}},
		// RabbitMQ's 0: the alarm is always on.
		{"vm_memory_high_watermark.relative = 0", func(c Config) bool { l, _ := c.MemoryHighWatermark.limit(1 << 30); return l == 1 }},
		{"memory_monitor_interval = 250", func(c Config) bool { return c.MemoryMonitorInterval == 250*time.Millisecond }},
		{"log.console.level = debug", func(c Config) bool { return c.LogLevel == slog.LevelDebug }},
		{"default_pass = a#b", func(c Config) bool { return c.DefaultPass == "a#b" }},
		{"default_pass = ab # comment", func(c Config) bool { return c.DefaultPass == "ab" }},
		// HTTPS alone: management.ssl's files are the ones tls.go loads.
		{"management.ssl.port = 15671\nmanagement.ssl.certfile = c.pem\nmanagement.ssl.keyfile = k.pem", func(c Config) bool {
			return c.TLS.HTTPSAddr == ":15671" && c.TLS.CertFile == "c.pem" && c.TLS.KeyFile == "k.pem"
		}},
	} {
		c := mustLoad(t, []string{"--config", writeFile(t, "w.conf", tc.line+"\n")}, env())
		if !tc.check(c) {
			t.Errorf("%q: got %+v", tc.line, c)
		}
	}
	// No file, no environment: the defaults, which are RabbitMQ's.
	if c := mustLoad(t, nil, env()); !reflect.DeepEqual(c, defaultConfig()) {
		t.Errorf("defaults: got %+v", c)
	}
}

// A bad key or value stops start-up with FILE:LINE: reason.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"# ok\nlisteners.tcp.defualt = 5672\n", ":2: listeners.tcp.defualt: unknown key"},
		{"heartbeat 30\n", ":1: expected key = value"},
		{"heartbeat =\n", ":1: heartbeat: missing value"},
		{"= 3\n", ":1: missing key"},
		{"heartbeat = soon\n", `:1: heartbeat: "soon" is not an integer`},
		{"heartbeat = 70000\n", `:1: heartbeat: "70000" is not between 0 and 65535 seconds`},
		{"frame_max = 100\n", `:1: frame_max: "100" is not an integer between 4096`},
		{"channel_max = 70000\n", `:1: channel_max: "70000" is not an integer between 0 and 65535`},
		{"max_message_size = 1GB\n", `:1: max_message_size: "1GB" is not an integer`},
		{"max_message_size = 600000000\n", `:1: max_message_size: "600000000" is not an integer between 1 and 536870912`},
		{"consumer_timeout = 0\n", `:1: consumer_timeout: "0" must be positive`},
		{"store_sync_interval = -5\n", `:1: store_sync_interval: "-5" must be positive`},
		{"handshake_timeout = -5\n", `:1: handshake_timeout: "-5" must be positive`},
		{"listeners.tcp.default = 99999\n", `:1: listeners.tcp.default: "99999" is not a port number`},
		{"listeners.tcp.default = host:port\n", `is not a port number`},
		{"management.tcp.port = x\n", `:1: management.tcp.port: "x" is not a port number`},
		{"management.tcp.ip = localhost\n", `:1: management.tcp.ip: "localhost" is not an IP address`},
		{"disk_free_limit.absolute = 1TB\n", `:1: disk_free_limit.absolute: "1TB": unknown unit "TB"`},
		{"disk_free_limit.absolute = -1\n", `:1: disk_free_limit.absolute: "-1" is not a number of bytes`},
		{"vm_memory_high_watermark.relative = 1.5\n", `is not a fraction between 0 and 1`},
		{"vm_memory_high_watermark.absolute = 0\n", `:1: vm_memory_high_watermark.absolute: "0": must be above 0`},
		{"vm_memory_high_watermark.absolute = 1GB\nvm_memory_high_watermark.relative = 0.4\n", `:2: vm_memory_high_watermark.relative: vm_memory_high_watermark.absolute is already set`},
		{"vm_memory_high_watermark.relative = 0.4\nvm_memory_high_watermark.absolute = 1GB\n", `:2: vm_memory_high_watermark.absolute: vm_memory_high_watermark.relative is already set`},
		{"log.console.level = verbose\n", `:1: log.console.level: "verbose" is not one of debug, info, warning, error`},
		{"log.console.formatter = xml\n", `:1: log.console.formatter: "xml" is not one of plain, json`},
		{"loopback_users.guest = yes\n", `:1: loopback_users.guest: "yes" is not true or false`},
		{"loopback_users = guest\n", `:1: loopback_users: loopback_users takes none`},
		{"default_user = a\ndefault_user = b\n", `:2: default_user is already set on line 1`},
		{"ssl_options.verify = maybe\n", `:1: ssl_options.verify: "maybe" is not one of verify_peer, verify_none`},
		{"ssl_options.fail_if_no_peer_cert = 1\n", `"1" is not true or false`},
		{"listeners.ssl.default = 5671\n", `listeners.ssl.default needs ssl_options.certfile and ssl_options.keyfile`},
		{"stomp.listeners.ssl.1 = 61614\n", `stomp.listeners.ssl.1 needs ssl_options.certfile and ssl_options.keyfile`},
		{"management.ssl.port = 15671\n", `management.ssl.port needs management.ssl.certfile`},
		{"ssl_options.fail_if_no_peer_cert = true\n", `needs ssl_options.verify = verify_peer`},
		{"ssl_options.verify = verify_peer\n", `verify_peer needs ssl_options.cacertfile`},
		{"ssl_options.certfile = a.pem\nmanagement.ssl.certfile = b.pem\n", `management.ssl.certfile differs from ssl_options.certfile`},
		{"ssl_options.certfile = c.pem\nssl_options.keyfile = k.pem\n", `certificate files given without --amqps-addr, --https-addr, --mqtts-addr, --stomps-addr, --streams-addr, --web-mqtts-addr or --web-stomps-addr`},
		{"web_mqtt.ssl.port = 15676\n", `web_mqtt.ssl.port needs ssl_options.certfile and ssl_options.keyfile`},
		{"web_stomp.ssl.port = 15673\n", `web_stomp.ssl.port needs ssl_options.certfile and ssl_options.keyfile`},
		{"mqtt.listeners.ssl.default = 8883\n", `mqtt.listeners.ssl.default needs ssl_options.certfile and ssl_options.keyfile`},
		{"ssl_cert_login_from = email\n", `:1: ssl_cert_login_from: "email" is not one of distinguished_name, common_name`},
		{"connection_max = 0\n", `connection_max: "0" is not an integer between 1 and 2147483647`},
	} {
		path := writeFile(t, "bad.conf", tc.text)
		_, _, err := loadConfig([]string{"--config", path}, env(), io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %s...%s", tc.text, err, path, tc.want)
		}
	}
	if _, _, err := loadConfig([]string{"--config", "/nonexistent/warren.conf"}, env(), io.Discard); err == nil {
		t.Error("a missing config file was accepted")
	}
}

// Flags beat the environment, which beats the file, which beats the defaults: each level is
// checked against the one below it.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "w.conf", "default_user = file\nheartbeat = 10\nlog.console.level = error\ndata_dir = /file\n")
	none := env()
	withFile := env("WARREN_CONFIG_FILE", file)
	withEnv := env("WARREN_CONFIG_FILE", file, "WARREN_DEFAULT_USER", "env", "WARREN_HEARTBEAT", "20", "WARREN_LOG_LEVEL", "debug")

	if c := mustLoad(t, nil, none); c.DefaultUser != "guest" || c.Heartbeat != 60*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	c := mustLoad(t, nil, withFile)
	if c.DefaultUser != "file" || c.Heartbeat != 10*time.Second || c.LogLevel != slog.LevelError || c.DataDir != "/file" {
		t.Errorf("file over defaults: %+v", c)
	}
	c = mustLoad(t, nil, withEnv)
	if c.DefaultUser != "env" || c.Heartbeat != 20*time.Second || c.LogLevel != slog.LevelDebug || c.DataDir != "/file" {
		t.Errorf("env over file: %+v", c)
	}
	c = mustLoad(t, []string{"--default-user", "flag", "--heartbeat=40s"}, withEnv)
	if c.DefaultUser != "flag" || c.Heartbeat != 40*time.Second || c.LogLevel != slog.LevelDebug || c.DataDir != "/file" {
		t.Errorf("flags over env: %+v", c)
	}
	// A flag given with its default value still wins over the environment.
	if c = mustLoad(t, []string{"--default-user", "guest"}, withEnv); c.DefaultUser != "guest" {
		t.Errorf("explicit default flag: %+v", c)
	}
	// --config beats WARREN_CONFIG_FILE.
	other := writeFile(t, "o.conf", "default_user = other\n")
	if c = mustLoad(t, []string{"--config", other}, withFile); c.DefaultUser != "other" {
		t.Errorf("--config over WARREN_CONFIG_FILE: %+v", c)
	}
	// Empty WARREN_HTTP_ADDR disables HTTP, as before.
	if c = mustLoad(t, nil, env("WARREN_HTTP_ADDR", "")); c.HTTPAddr != "" {
		t.Errorf("empty WARREN_HTTP_ADDR: %+v", c)
	}
	// Bad values are refused at every level, naming where they came from.
	if _, _, err := loadConfig(nil, env("WARREN_HEARTBEAT", "x"), io.Discard); err == nil || !strings.Contains(err.Error(), "WARREN_HEARTBEAT") {
		t.Errorf("bad env: %v", err)
	}
	if _, _, err := loadConfig([]string{"--frame-max", "12"}, none, io.Discard); err == nil || !strings.Contains(err.Error(), "frame-max") {
		t.Errorf("bad flag: %v", err)
	}
	if _, _, err := loadConfig([]string{"--default-pass", "x"}, none, io.Discard); err == nil {
		t.Error("--default-pass exists; the password belongs in the environment or the file")
	}
}

// Every setting's environment variable and flag reach the Config.
func TestConfigEveryEnvAndFlag(t *testing.T) {
	values := map[string]string{
		"WARREN_AMQP_ADDR": "127.0.0.1:1", "WARREN_HTTP_ADDR": "2", "WARREN_DATA_DIR": "/d", "WARREN_DEBUG_ADDR": "127.0.0.1:3",
		"WARREN_DEFAULT_USER": "u", "WARREN_DEFAULT_PASS": "p", "WARREN_DEFAULT_VHOST": "v", "WARREN_LOOPBACK_USERS": "a,b",
		"WARREN_HEARTBEAT": "5", "WARREN_FRAME_MAX": "8192", "WARREN_CHANNEL_MAX": "9", "WARREN_MAX_MESSAGE_SIZE": "1000",
		"WARREN_CONSUMER_TIMEOUT": "1000", "WARREN_HANDSHAKE_TIMEOUT": "2s", "WARREN_CONNECTION_MAX": "500", "WARREN_DISK_FREE_LIMIT": "1MB",
		"WARREN_STORE_SYNC_INTERVAL": "20ms", "WARREN_MEMORY_HIGH_WATERMARK": "300MiB", "WARREN_MEMORY_MONITOR_INTERVAL": "100",
		"WARREN_LOG_LEVEL": "error", "WARREN_LOG_FORMAT": "json", "WARREN_LOAD_DEFINITIONS": "/defs.json",
		"WARREN_AMQPS_ADDR": "5671", "WARREN_HTTPS_ADDR": "127.0.0.1:15671", "WARREN_TLS_CERT": "/c.pem",
		"WARREN_TLS_KEY": "/k.pem", "WARREN_TLS_CA": "/ca.pem", "WARREN_TLS_VERIFY_PEER": "true",
		"WARREN_TLS_FAIL_IF_NO_PEER_CERT": "true", "WARREN_SSL_CERT_LOGIN_FROM": "common_name",
		"WARREN_STOMP_ADDR": "61613", "WARREN_STOMP_DEFAULT_USER": "su", "WARREN_STOMP_DEFAULT_PASS": "sp",
		"WARREN_STOMP_DEFAULT_VHOST": "sv", "WARREN_STOMPS_ADDR": "61614",
		"WARREN_NODE_NAME": "warren@a", "WARREN_CLUSTER_ADDR": "127.0.0.11:7000",
		"WARREN_CLUSTER_NODES": "warren@a=127.0.0.11:7000,warren@b=127.0.0.12:7000",
		"WARREN_MQTT_ADDR":     "1883", "WARREN_MQTTS_ADDR": "127.0.0.1:8883",
		"WARREN_WEB_MQTT_ADDR": "127.0.0.1:15675", "WARREN_WEB_STOMP_ADDR": "15674",
		"WARREN_WEB_MQTTS_ADDR": "15676", "WARREN_WEB_STOMPS_ADDR": "127.0.0.1:15673",
		"WARREN_STREAM_ADDR": "5552", "WARREN_STREAMS_ADDR": "127.0.0.1:5551",
	}
	want := Config{AMQPAddr: "127.0.0.1:1", HTTPAddr: ":2", DataDir: "/d", DebugAddr: "127.0.0.1:3", StreamAddr: ":5552",
		DefaultUser: "u", DefaultPass: "p", DefaultVhost: "v", LoopbackUsers: []string{"a", "b"},
		Heartbeat: 5 * time.Second, FrameMax: 8192, ChannelMax: 9, MaxMessageSize: 1000,
		ConsumerTimeout: time.Second, HandshakeTimeout: 2 * time.Second, ConnectionMax: 500, DiskFreeLimit: 1e6, SyncInterval: 20 * time.Millisecond,
		MemoryHighWatermark: MemoryWatermark{Absolute: 300 << 20}, MemoryMonitorInterval: 100 * time.Millisecond,
		LogLevel: slog.LevelError, LogFormat: "json", LoadDefinitions: "/defs.json",
		STOMPAddr: ":61613", STOMPDefaultUser: "su", STOMPDefaultPass: "sp", STOMPDefaultVhost: "sv",
		TLS: TLSConfig{AMQPSAddr: ":5671", HTTPSAddr: "127.0.0.1:15671", CertFile: "/c.pem", KeyFile: "/k.pem",
			CACertFile: "/ca.pem", VerifyPeer: true, FailIfNoPeerCert: true, CertLoginFrom: "common_name", STOMPSAddr: ":61614",
			MQTTSAddr: "127.0.0.1:8883", WebMQTTSAddr: ":15676", WebSTOMPSAddr: "127.0.0.1:15673", StreamsAddr: "127.0.0.1:5551"},
		NodeName: "warren@a", ClusterAddr: "127.0.0.11:7000",
		ClusterNodes: []ClusterNode{{Name: "warren@a", Addr: "127.0.0.11:7000"}, {Name: "warren@b", Addr: "127.0.0.12:7000"}},
		MQTTAddr:     ":1883", WebMQTTAddr: "127.0.0.1:15675", WebSTOMPAddr: ":15674"}
	var kv, args []string
	for _, s := range settings {
		v, ok := values[s.env]
		if !ok {
			t.Fatalf("setting %s is not covered by this test", s.env)
		}
		if !knownEnv(s.env) {
			t.Errorf("knownEnv(%s) is false", s.env)
		}
		kv = append(kv, s.env, v)
		if !s.noFlag {
			args = append(args, "--"+s.flag+"="+v)
		}
	}
	if c := mustLoad(t, nil, env(kv...)); !reflect.DeepEqual(c, want) {
		t.Errorf("from the environment\n got %+v\nwant %+v", c, want)
	}
	want.DefaultPass, want.STOMPDefaultPass = "guest", "guest"
	if c := mustLoad(t, args, env()); !reflect.DeepEqual(c, want) {
		t.Errorf("from flags\n got %+v\nwant %+v", c, want)
	}
	// A boolean flag alone means true.
	if c := mustLoad(t, []string{"--amqps-addr", "5671", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca", "--tls-verify-peer"}, env()); !c.TLS.VerifyPeer {
		t.Errorf("--tls-verify-peer alone: %+v", c.TLS)
	}
	if knownEnv("WARREN_DEFAULT_USR") {
		t.Error("knownEnv accepts anything")
	}
}

// The stream listener's config file keys, as RabbitMQ's stream plugin names them; unset is off.
func TestConfigStreamKeys(t *testing.T) {
	if c := mustLoad(t, nil, env()); c.StreamAddr != "" {
		t.Errorf("stream listener on by default: %q", c.StreamAddr)
	}
	path := writeFile(t, "s.conf", "stream.listeners.tcp.1 = 127.0.0.1:5552\nstream.advertised_host = broker.example\nstream.advertised_port = 15552\n")
	c := mustLoad(t, []string{"--config", path}, env())
	if c.StreamAddr != "127.0.0.1:5552" || c.StreamAdvertisedHost != "broker.example" || c.StreamAdvertisedPort != 15552 {
		t.Errorf("from the file: %q %q %d", c.StreamAddr, c.StreamAdvertisedHost, c.StreamAdvertisedPort)
	}
	if o := c.serverOptions(); o.StreamAdvertisedHost != "broker.example" || o.StreamAdvertisedPort != 15552 {
		t.Errorf("server options: %+v", o)
	}
}

// SIGHUP's config reload applies the file's new log level and reports the rest as needing a restart.
func TestConfigReloadLogLevel(t *testing.T) {
	path := writeFile(t, "w.conf", "log.console.level = info\nheartbeat = 10\n")
	args := []string{"--config", path}
	cfg := mustLoad(t, args, os.LookupEnv)
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	var out bytes.Buffer
	log := newLogger(&out, "json", level)
	reload := configReloader(args, &cfg, level, log)

	log.Debug("hidden")
	if err := os.WriteFile(path, []byte("log.console.level = debug\nheartbeat = 20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runReloads([]reloader{{"config", reload}}, log)
	if level.Level() != slog.LevelDebug {
		t.Fatalf("level %v after reload, want debug", level.Level())
	}
	log.Debug("shown")
	s := out.String()
	for _, want := range []string{`"msg":"log level changed","from":"info","to":"debug"`, `"settings":["Heartbeat"]`, `"msg":"shown"`} {
		if !strings.Contains(s, want) {
			t.Errorf("log lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "hidden") {
		t.Errorf("debug logged at info:\n%s", s)
	}
	// A broken file is reported and changes nothing.
	out.Reset()
	if err := os.WriteFile(path, []byte("log.console.level = loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runReloads([]reloader{{"config", reload}}, log)
	if level.Level() != slog.LevelDebug || !strings.Contains(out.String(), "reload failed") || !strings.Contains(out.String(), path+":1:") {
		t.Fatalf("level %v, log:\n%s", level.Level(), out.String())
	}
}

const goodDefinitions = `{
  "rabbit_version": "3.10.8",
  "users": [{"name": "app", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}],
  "vhosts": [{"name": "/"}, {"name": "orders"}],
  "permissions": [{"user": "app", "vhost": "orders", "configure": ".*", "write": ".*", "read": ".*"}],
  "exchanges": [{"name": "events", "vhost": "orders", "type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}],
  "queues": [{"name": "billing", "vhost": "orders", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 1000}}],
  "bindings": [{"source": "events", "vhost": "orders", "destination": "billing", "destination_type": "queue", "routing_key": "order.#", "arguments": {}}]
}`

func TestLoadDefinitions(t *testing.T) {
	srv := testbroker.Start(t).Srv
	if err := loadDefinitions(srv, writeFile(t, "defs.json", goodDefinitions)); err != nil {
		t.Fatal(err)
	}
	q, err := srv.Queue("orders", "billing")
	if err != nil || !q.Durable {
		t.Fatalf("queue billing: %+v, %v", q, err)
	}
	bs, err := srv.VhostBindings("orders")
	if err != nil || !strings.Contains(fmtBindings(bs), "events->billing order.#") {
		t.Fatalf("bindings %v, %v", fmtBindings(bs), err)
	}
	if !hasUser(srv, "app") {
		t.Fatal("user app not imported")
	}

	for _, tc := range []struct{ text, want string }{
		{`{"queues": [`, "not a JSON object"},
		{`[]`, "not a JSON object"},
		{`{"queues": "billing"}`, "queues must be an array"},
		{`{"queues": [{"name": "q", "vhost": "nowhere"}]}`, "no_such_vhost"},
		{`{"permissions": [{"user": "x"}]}`, "key_missing"},
	} {
		path := writeFile(t, "bad.json", tc.text)
		err := loadDefinitions(srv, path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want the file name and %q", tc.text, err, tc.want)
		}
	}
	if err := loadDefinitions(srv, "/nonexistent.json"); err == nil {
		t.Error("a missing definitions file was accepted")
	}
}

func fmtBindings(bs []server.BindingInfo) string {
	var sb strings.Builder
	for _, b := range bs {
		sb.WriteString(b.Source + "->" + b.Destination + " " + b.RoutingKey + "\n")
	}
	return sb.String()
}

func hasUser(srv *server.Server, name string) bool {
	for _, u := range srv.Users() {
		if u.Name == name {
			return true
		}
	}
	return false
}

// A bad definitions file stops start-up before the listeners open.
func TestRunStopsOnBadDefinitions(t *testing.T) {
	defs := writeFile(t, "defs.json", `{"queues": [{"name": "q", "vhost": "nowhere"}]}`)
	var stderr bytes.Buffer
	err := run([]string{"--amqp-addr", "127.0.0.1:0", "--http-addr", "", "--data-dir", t.TempDir(), "--load-definitions", defs}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "load_definitions "+defs) {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "warren ready") {
		t.Fatalf("ready despite the bad definitions:\n%s", stderr.String())
	}
	// And a bad config file before anything else.
	conf := writeFile(t, "w.conf", "frame_max = big\n")
	if err := run([]string{"--config", conf}, io.Discard, &stderr); err == nil || !strings.HasPrefix(err.Error(), conf+":1: frame_max") {
		t.Fatalf("run with a bad config: %v", err)
	}
}

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"--version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if out.String() != "warren "+server.Version+"\n" {
		t.Fatalf("--version printed %q", out.String())
	}
}

// warren healthcheck succeeds against a healthy broker, and fails on an alarm, wrong credentials
// or nothing listening.
func TestHealthcheck(t *testing.T) {
	var free uint64 = 1 << 40
	freeCh := make(chan uint64, 1)
	srv := testbroker.Start(t, func(o *server.Options) {
		o.DefaultUser, o.DefaultPass, o.DiskCheckInterval = "admin", "pw", time.Millisecond
		o.DiskFree = func() (uint64, error) {
			select {
			case free = <-freeCh:
			default:
			}
			return free, nil
		}
	}).Srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: management.NewHandler(srv, slog.New(slog.DiscardHandler))}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("management server: %v", err)
		}
	}()
	url := "http://" + ln.Addr().String()

	check := func(lookup func(string) (string, bool), args ...string) error {
		return healthcheck(args, lookup, io.Discard, io.Discard)
	}
	// The credentials come from the broker's own environment, as in the container.
	creds := env("WARREN_DEFAULT_USER", "admin", "WARREN_DEFAULT_PASS", "pw")
	if err := check(creds, "--url", url); err != nil {
		t.Fatalf("healthy broker: %v", err)
	}
	// The default URL follows the configured management port.
	if err := check(env("WARREN_DEFAULT_USER", "admin", "WARREN_DEFAULT_PASS", "pw", "WARREN_HTTP_ADDR", ln.Addr().String())); err != nil {
		t.Fatalf("default URL: %v", err)
	}
	if err := check(env(), "--url", url); err == nil {
		t.Fatal("guest/guest accepted on a broker whose user is admin")
	}
	if err := check(env(), "--url", url, "--user", "admin", "--password", "pw"); err != nil {
		t.Fatalf("--user/--password: %v", err)
	}
	freeCh <- 1 // below the disk free limit: the alarm fires and the check fails
	wait.For(t, 10*time.Second, "the healthcheck to fail during a disk alarm", func() bool { return check(creds, "--url", url) != nil })
	if err := check(creds, "--url", "http://127.0.0.1:1"); err == nil {
		t.Fatal("healthcheck passed with nothing listening")
	}
	if healthURL(":15672") != "http://127.0.0.1:15672" || healthURL("[::]:1") != "http://127.0.0.1:1" || healthURL("") != "" {
		t.Fatal("healthURL")
	}
}

// --memory-high-watermark takes a fraction with a decimal point or an amount; the default is
// RabbitMQ's 0.4 of the memory.
func TestConfigMemoryHighWatermarkFlag(t *testing.T) {
	if c := mustLoad(t, nil, env()); c.MemoryHighWatermark != (MemoryWatermark{Relative: 0.4}) {
		t.Errorf("default %+v, want relative 0.4", c.MemoryHighWatermark)
	}
	for v, want := range map[string]MemoryWatermark{
		"0.5": {Relative: 0.5}, "1.0": {Relative: 1}, "0.0": {}, "512MiB": {Absolute: 512 << 20}, "1GB": {Absolute: 1e9}, "1": {Absolute: 1},
	} {
		if c := mustLoad(t, []string{"--memory-high-watermark", v}, env()); c.MemoryHighWatermark != want {
			t.Errorf("--memory-high-watermark %s: %+v, want %+v", v, c.MemoryHighWatermark, want)
		}
	}
	for _, v := range []string{"1.5", "-0.1", "0", "lots", "10TB"} {
		if _, _, err := loadConfig([]string{"--memory-high-watermark", v}, env(), io.Discard); err == nil {
			t.Errorf("--memory-high-watermark %s: no error", v)
		}
	}
}
