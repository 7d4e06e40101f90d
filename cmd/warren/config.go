package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/server"
)

// Config is the broker's configuration. loadConfig builds it in one place, in order of precedence
// from lowest to highest: defaults, the config file (rabbitmq.conf style), the environment, and
// the flags given on the command line.
type Config struct {
	File string // the config file read ("" if none)

	AMQPAddr  string // listeners.tcp.default, --amqp-addr, WARREN_AMQP_ADDR
	HTTPAddr  string // management.tcp.ip/port, --http-addr, WARREN_HTTP_ADDR ("" disables HTTP)
	DataDir   string // data_dir, --data-dir, WARREN_DATA_DIR
	DebugAddr string // --debug-addr, WARREN_DEBUG_ADDR (pprof; "" is off)
	STOMPAddr string // stomp.listeners.tcp.1, --stomp-addr, WARREN_STOMP_ADDR ("" is off)

	// STOMPDefaultUser and STOMPDefaultPass log in a STOMP CONNECT without a login header
	// (stomp.default_user, stomp.default_pass: guest/guest as in RabbitMQ); STOMPDefaultVhost is
	// the vhost of one without a host header (stomp.default_vhost; "" is DefaultVhost).
	STOMPDefaultUser, STOMPDefaultPass, STOMPDefaultVhost string

	// StreamAddr is the stream protocol listener (stream.listeners.tcp.1, --stream-addr,
	// WARREN_STREAM_ADDR; "" is off), advertised in metadata as StreamAdvertisedHost/Port
	// (stream.advertised_host/port; empty/0: the listener's address).
	StreamAddr           string
	StreamAdvertisedHost string
	StreamAdvertisedPort int

	DefaultUser, DefaultPass, DefaultVhost string
	// LoopbackUsers may only connect from localhost: nil is the server's default (guest), empty
	// means nobody is restricted (loopback_users = none).
	LoopbackUsers []string

	Heartbeat        time.Duration // 0 disables heartbeats, as RabbitMQ's heartbeat = 0
	FrameMax         uint32
	ChannelMax       uint16
	MaxMessageSize   int
	ConsumerTimeout  time.Duration // negative: never
	HandshakeTimeout time.Duration
	ConnectionMax    int // connection_max: per AMQP, MQTT, STOMP and stream listener; 0: infinity
	DiskFreeLimit    int64
	SyncInterval     time.Duration // store_sync_interval: unsynced store writes reach the disk within it

	// MemoryHighWatermark is vm_memory_high_watermark.relative or .absolute,
	// --memory-high-watermark, WARREN_MEMORY_HIGH_WATERMARK: above it the memory alarm blocks
	// publishers. MemoryMonitorInterval (memory_monitor_interval) is how often memory is sampled.
	MemoryHighWatermark   MemoryWatermark
	MemoryMonitorInterval time.Duration

	LogLevel  slog.Level
	LogFormat string // "plain" or "json"

	LoadDefinitions string // a definitions JSON imported at boot ("" for none)

	// TLS holds the AMQPS and HTTPS settings; tls.go serves them.
	TLS TLSConfig

	// The cluster settings (cluster.go): NodeName (--node-name, WARREN_NODE_NAME,
	// cluster.node_name; "" is server.DefaultNodeName), ClusterAddr (--cluster-addr,
	// WARREN_CLUSTER_ADDR, cluster.listen; "" is a single node) and ClusterNodes
	// (--cluster-nodes, WARREN_CLUSTER_NODES, cluster.nodes).
	NodeName     string
	ClusterAddr  string
	ClusterNodes []ClusterNode
	// MQTTAddr is mqtt.listeners.tcp.default, --mqtt-addr, WARREN_MQTT_ADDR ("": no MQTT listener).
	MQTTAddr string
	// WebMQTTAddr is web_mqtt.tcp.port, --web-mqtt-addr, WARREN_WEB_MQTT_ADDR; WebSTOMPAddr is
	// web_stomp.tcp.port, --web-stomp-addr, WARREN_WEB_STOMP_ADDR ("": no listener).
	WebMQTTAddr, WebSTOMPAddr string
	// MQTT holds mqtt.vhost, mqtt.default_user, mqtt.default_pass, mqtt.exchange, mqtt.prefetch and
	// mqtt.subscription_ttl (config file only); zero values take the server's defaults, RabbitMQ's.
	MQTT server.MQTTOptions
}

// MemoryWatermark is vm_memory_high_watermark: Relative (a fraction of the memory,
// server.TotalMemory) or, when it is not 0, Absolute (bytes).
type MemoryWatermark struct {
	Relative float64
	Absolute int64
}

// limit is the watermark in bytes, given the total memory (<= 0: unknown). As RabbitMQ's
// vm_memory_monitor: an absolute watermark above the total memory is the total.
func (w MemoryWatermark) limit(total int64) (int64, error) {
	if w.Absolute > 0 {
		if total > 0 {
			return min(w.Absolute, total), nil
		}
		return w.Absolute, nil
	}
	if total <= 0 {
		return 0, errors.New("vm_memory_high_watermark.relative: the total memory is unknown on this platform: give vm_memory_high_watermark.absolute")
	}
	// As RabbitMQ's, a relative watermark of 0 keeps the alarm on (every publisher blocked):
	// the smallest limit, one byte, does the same.
	return max(int64(w.Relative*float64(total)), 1), nil
}

// parseWatermark reads --memory-high-watermark: a fraction of the memory written with a decimal
// point (0.4, as vm_memory_high_watermark.relative), or an amount (1GB, 512MiB or bytes, as
// vm_memory_high_watermark.absolute).
func parseWatermark(v string) (MemoryWatermark, error) {
	if strings.Contains(v, ".") {
		f, err := parseFraction(v)
		return MemoryWatermark{Relative: f}, err
	}
	n, err := parseBytes(v)
	if err == nil && n == 0 {
		err = fmt.Errorf("%q: an absolute watermark must be above 0 (a relative one is written 0.0)", v)
	}
	return MemoryWatermark{Absolute: n}, err
}

func parseFraction(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a fraction between 0 and 1", v)
	}
	return f, nil
}

// TLSConfig holds the TLS settings, from the config file (as RabbitMQ spells them), the
// environment and the flags (--amqps-addr, --https-addr, --tls-cert, --tls-key, --tls-ca,
// --tls-verify-peer, --tls-fail-if-no-peer-cert, --ssl-cert-login-from); tls.go serves them.
// Warren serves HTTPS with the same files as AMQPS, so validate folds
// management.ssl.certfile/keyfile/cacertfile into them (and refuses different ones).
type TLSConfig struct {
	AMQPSAddr        string // listeners.ssl.default (port or ip:port)
	STOMPSAddr       string // stomp.listeners.ssl.1, --stomps-addr, WARREN_STOMPS_ADDR (STOMP over TLS)
	StreamsAddr      string // stream.listeners.ssl.1, --streams-addr, WARREN_STREAMS_ADDR (the stream protocol over TLS)
	MQTTSAddr        string // mqtt.listeners.ssl.default (port or ip:port), with the same files
	WebMQTTSAddr     string // web_mqtt.ssl.port, --web-mqtts-addr, WARREN_WEB_MQTTS_ADDR (Web MQTT over TLS, wss://), with the same files
	WebSTOMPSAddr    string // web_stomp.ssl.port, --web-stomps-addr, WARREN_WEB_STOMPS_ADDR (Web STOMP over TLS, wss://), with the same files
	CACertFile       string // ssl_options.cacertfile
	CertFile         string // ssl_options.certfile
	KeyFile          string // ssl_options.keyfile
	VerifyPeer       bool   // ssl_options.verify = verify_peer|verify_none
	FailIfNoPeerCert bool   // ssl_options.fail_if_no_peer_cert = true|false
	CertLoginFrom    string // ssl_cert_login_from = distinguished_name|common_name
	HTTPSAddr        string // management.ssl.port (+ management.ssl.ip)
	HTTPSCertFile    string // management.ssl.certfile
	HTTPSKeyFile     string // management.ssl.keyfile
	HTTPSCACertFile  string // management.ssl.cacertfile
}

// anyListener reports whether a TLS listener is configured.
func (t TLSConfig) anyListener() bool {
	return t.AMQPSAddr != "" || t.HTTPSAddr != "" || t.MQTTSAddr != "" || t.STOMPSAddr != "" || t.StreamsAddr != "" || t.WebMQTTSAddr != "" || t.WebSTOMPSAddr != ""
}

func defaultConfig() Config {
	return Config{
		AMQPAddr:              ":5672",
		HTTPAddr:              ":15672",
		DataDir:               "./warren-data",
		DefaultUser:           "guest",
		DefaultPass:           "guest",
		DefaultVhost:          "/",
		STOMPDefaultUser:      "guest",
		STOMPDefaultPass:      "guest",
		Heartbeat:             server.DefaultHeartbeat,
		FrameMax:              server.DefaultFrameMax,
		ChannelMax:            server.DefaultChannelMax,
		MaxMessageSize:        server.DefaultMaxMessageSize,
		ConsumerTimeout:       server.DefaultConsumerTimeout,
		HandshakeTimeout:      10 * time.Second,
		DiskFreeLimit:         server.DefaultDiskFreeLimit,
		MemoryHighWatermark:   MemoryWatermark{Relative: server.DefaultMemoryHighWatermark},
		MemoryMonitorInterval: server.DefaultMemoryCheckInterval,
		SyncInterval:          server.DefaultSyncInterval,
		LogLevel:              slog.LevelInfo,
		LogFormat:             "plain",
	}
}

// serverOptions maps the configuration onto the server's options (Logger, Store and DiskFree are
// the caller's).
func (c *Config) serverOptions() server.Options {
	o := server.Options{
		Heartbeat:            c.Heartbeat,
		FrameMax:             c.FrameMax,
		ChannelMax:           c.ChannelMax,
		MaxMessageSize:       c.MaxMessageSize,
		DefaultUser:          c.DefaultUser,
		DefaultPass:          c.DefaultPass,
		DefaultVhost:         c.DefaultVhost,
		LoopbackUsers:        c.LoopbackUsers,
		HandshakeTimeout:     c.HandshakeTimeout,
		ConnectionMax:        c.ConnectionMax,
		DiskFreeLimit:        c.DiskFreeLimit,
		MemoryCheckInterval:  c.MemoryMonitorInterval,
		ConsumerTimeout:      c.ConsumerTimeout,
		SyncInterval:         c.SyncInterval,
		SSLCertLoginFrom:     c.TLS.CertLoginFrom,
		STOMPDefaultUser:     c.STOMPDefaultUser,
		STOMPDefaultPass:     c.STOMPDefaultPass,
		STOMPDefaultVhost:    c.STOMPDefaultVhost,
		NodeName:             c.NodeName,
		MQTT:                 c.MQTT,
		StreamAdvertisedHost: c.StreamAdvertisedHost,
		StreamAdvertisedPort: c.StreamAdvertisedPort,
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = -1 // the server's 0 is "default"; RabbitMQ's heartbeat = 0 is "none"
	}
	return o
}

// setting is one value that can come from the environment and the command line (and, under its
// RabbitMQ name, from the config file: see fileKeys).
type setting struct {
	flag, env string
	usage     string
	noFlag    bool // secrets: environment and file only, never visible in ps
	boolean   bool // a flag given alone means true (--tls-verify-peer)
	set       func(c *Config, v string) error
	show      func(c *Config) string // the default shown by --help
}

// settings; cluster.go appends the cluster's (--node-name, --cluster-addr, --cluster-nodes).
var settings = []setting{
	{flag: "amqp-addr", env: "WARREN_AMQP_ADDR", usage: "AMQP listen address, `host:port` or a port",
		set:  func(c *Config, v string) (err error) { c.AMQPAddr, err = parseListenAddr(v); return },
		show: func(c *Config) string { return c.AMQPAddr }},
	{flag: "http-addr", env: "WARREN_HTTP_ADDR", usage: "management HTTP listen address, `host:port` or a port; empty disables HTTP",
		set: func(c *Config, v string) (err error) {
			if v == "" {
				c.HTTPAddr = ""
				return nil
			}
			c.HTTPAddr, err = parseListenAddr(v)
			return
		},
		show: func(c *Config) string { return c.HTTPAddr }},
	{flag: "data-dir", env: "WARREN_DATA_DIR", usage: "data `directory` (the Pebble store; one broker per directory)",
		set:  func(c *Config, v string) error { return nonEmpty(&c.DataDir, v) },
		show: func(c *Config) string { return c.DataDir }},
	{flag: "stream-addr", env: "WARREN_STREAM_ADDR", usage: "stream protocol listen address, `host:port` or a port, usually 5552 (stream.listeners.tcp.1); empty: off",
		set:  func(c *Config, v string) (err error) { c.StreamAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.StreamAddr }},
	{flag: "debug-addr", env: "WARREN_DEBUG_ADDR", usage: "serve Go's pprof profiles on this `address`, e.g. 127.0.0.1:6060 (default off)",
		set:  func(c *Config, v string) error { c.DebugAddr = v; return nil },
		show: func(c *Config) string { return c.DebugAddr }},
	{flag: "default-user", env: "WARREN_DEFAULT_USER", usage: "the `user` (administrator) created on first boot (RabbitMQ's default_user)",
		set:  func(c *Config, v string) error { return nonEmpty(&c.DefaultUser, v) },
		show: func(c *Config) string { return c.DefaultUser }},
	{env: "WARREN_DEFAULT_PASS", noFlag: true,
		set: func(c *Config, v string) error { return nonEmpty(&c.DefaultPass, v) }},
	{flag: "default-vhost", env: "WARREN_DEFAULT_VHOST", usage: "the `vhost` created on first boot (RabbitMQ's default_vhost)",
		set:  func(c *Config, v string) error { return nonEmpty(&c.DefaultVhost, v) },
		show: func(c *Config) string { return c.DefaultVhost }},
	{flag: "loopback-users", env: "WARREN_LOOPBACK_USERS", usage: "comma-separated `users` who may only connect from localhost, or none (default guest)",
		set: func(c *Config, v string) error {
			if v == "none" || v == "" {
				c.LoopbackUsers = []string{}
				return nil
			}
			c.LoopbackUsers = strings.Split(v, ",")
			return nil
		}},
	{flag: "heartbeat", env: "WARREN_HEARTBEAT", usage: "heartbeat offered to clients, in `seconds` (or a Go duration); 0 disables",
		set:  func(c *Config, v string) (err error) { c.Heartbeat, err = parseSeconds(v); return },
		show: func(c *Config) string { return c.Heartbeat.String() }},
	{flag: "frame-max", env: "WARREN_FRAME_MAX", usage: "largest frame offered to clients, in `bytes` (at least 4096)",
		set: func(c *Config, v string) error {
			n, err := parseInt(v, 4096, math.MaxUint32)
			c.FrameMax = uint32(n)
			return err
		},
		show: func(c *Config) string { return strconv.Itoa(int(c.FrameMax)) }},
	{flag: "channel-max", env: "WARREN_CHANNEL_MAX", usage: "highest channel `number` offered to clients; 0 means 65535",
		set: func(c *Config, v string) error {
			n, err := parseInt(v, 0, math.MaxUint16)
			if n == 0 {
				n = math.MaxUint16 // RabbitMQ's 0 is "no limit"
			}
			c.ChannelMax = uint16(n)
			return err
		},
		show: func(c *Config) string { return strconv.Itoa(int(c.ChannelMax)) }},
	{flag: "max-message-size", env: "WARREN_MAX_MESSAGE_SIZE", usage: "largest message body in `bytes` (at most 536870912, as RabbitMQ)",
		set: func(c *Config, v string) error {
			n, err := parseInt(v, 1, 512<<20)
			c.MaxMessageSize = int(n)
			return err
		},
		show: func(c *Config) string { return strconv.Itoa(c.MaxMessageSize) }},
	{flag: "consumer-timeout", env: "WARREN_CONSUMER_TIMEOUT", usage: "close a channel holding a delivery unacknowledged this long, in `ms` (or a Go duration); negative: never",
		set:  func(c *Config, v string) (err error) { c.ConsumerTimeout, err = parseMillis(v, true); return },
		show: func(c *Config) string { return c.ConsumerTimeout.String() }},
	{flag: "connection-max", env: "WARREN_CONNECTION_MAX", usage: "most open connections of each AMQP, MQTT, STOMP and stream listener, a `number` or infinity (connection_max); at it the listener accepts nothing more until one closes",
		set: func(c *Config, v string) error {
			if v == "infinity" {
				c.ConnectionMax = 0
				return nil
			}
			n, err := parseInt(v, 1, math.MaxInt32)
			c.ConnectionMax = int(n)
			return err
		},
		show: func(c *Config) string {
			if c.ConnectionMax == 0 {
				return "infinity"
			}
			return strconv.Itoa(c.ConnectionMax)
		}},
	{flag: "handshake-timeout", env: "WARREN_HANDSHAKE_TIMEOUT", usage: "time allowed from accept to connection.open, in `ms` (or a Go duration)",
		set:  func(c *Config, v string) (err error) { c.HandshakeTimeout, err = parseMillis(v, false); return },
		show: func(c *Config) string { return c.HandshakeTimeout.String() }},
	{flag: "disk-free-limit", env: "WARREN_DISK_FREE_LIMIT", usage: "block publishers below this much free disk: `bytes` or 50MB, 1GB, 512MiB...",
		set:  func(c *Config, v string) (err error) { c.DiskFreeLimit, err = parseBytes(v); return },
		show: func(c *Config) string { return strconv.FormatInt(c.DiskFreeLimit, 10) }},
	{flag: "memory-high-watermark", env: "WARREN_MEMORY_HIGH_WATERMARK", usage: "block publishers and page queues out above this much memory: a `fraction` of the memory with a decimal point (0.4) or an amount (1GB, 512MiB, bytes)",
		set:  func(c *Config, v string) (err error) { c.MemoryHighWatermark, err = parseWatermark(v); return },
		show: func(c *Config) string { return showWatermark(c.MemoryHighWatermark) }},
	{flag: "memory-monitor-interval", env: "WARREN_MEMORY_MONITOR_INTERVAL", usage: "sample the broker's memory for the memory alarm this often, in `ms` (or a Go duration)",
		set:  func(c *Config, v string) (err error) { c.MemoryMonitorInterval, err = parseMillis(v, false); return },
		show: func(c *Config) string { return c.MemoryMonitorInterval.String() }},
	{flag: "store-sync-interval", env: "WARREN_STORE_SYNC_INTERVAL", usage: "sync store writes made without an fsync (acks, paged transient messages) at most this long after them, in `ms` (or a Go duration)",
		set:  func(c *Config, v string) (err error) { c.SyncInterval, err = parseMillis(v, false); return },
		show: func(c *Config) string { return c.SyncInterval.String() }},
	{flag: "log-level", env: "WARREN_LOG_LEVEL", usage: "log `level`: debug, info, warning or error",
		set:  func(c *Config, v string) (err error) { c.LogLevel, err = parseLogLevel(v); return },
		show: func(c *Config) string { return levelName(c.LogLevel) }},
	{flag: "log-format", env: "WARREN_LOG_FORMAT", usage: "log `format`: plain or json",
		set:  func(c *Config, v string) (err error) { c.LogFormat, err = oneOf(v, "plain", "json"); return },
		show: func(c *Config) string { return c.LogFormat }},
	{flag: "amqps-addr", env: "WARREN_AMQPS_ADDR", usage: "AMQPS (AMQP over TLS) listen address, `host:port` or a port, usually 5671 (listeners.ssl.default); empty: off",
		set:  func(c *Config, v string) (err error) { c.TLS.AMQPSAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.TLS.AMQPSAddr }},
	{flag: "mqtts-addr", env: "WARREN_MQTTS_ADDR", usage: "MQTT over TLS listen address, `host:port` or a port, usually 8883 (mqtt.listeners.ssl.default), with the AMQPS certificates; empty: off",
		set:  func(c *Config, v string) (err error) { c.TLS.MQTTSAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.TLS.MQTTSAddr }},
	{flag: "https-addr", env: "WARREN_HTTPS_ADDR", usage: "management HTTPS listen address, `host:port` or a port, with the AMQPS certificates (management.ssl.port); empty: off",
		set:  func(c *Config, v string) (err error) { c.TLS.HTTPSAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.TLS.HTTPSAddr }},
	{flag: "tls-cert", env: "WARREN_TLS_CERT", usage: "PEM server certificate chain `file`, leaf first (ssl_options.certfile)",
		set: func(c *Config, v string) error { c.TLS.CertFile = v; return nil }},
	{flag: "tls-key", env: "WARREN_TLS_KEY", usage: "PEM private key `file` of --tls-cert (ssl_options.keyfile)",
		set: func(c *Config, v string) error { c.TLS.KeyFile = v; return nil }},
	{flag: "tls-ca", env: "WARREN_TLS_CA", usage: "PEM CA certificates `file` client certificates are verified against (ssl_options.cacertfile)",
		set: func(c *Config, v string) error { c.TLS.CACertFile = v; return nil }},
	{flag: "tls-verify-peer", env: "WARREN_TLS_VERIFY_PEER", boolean: true, usage: "ask TLS clients for a certificate and verify it (ssl_options.verify = verify_peer); needed for SASL EXTERNAL",
		set: func(c *Config, v string) (err error) { c.TLS.VerifyPeer, err = parseBool(v); return }},
	{flag: "tls-fail-if-no-peer-cert", env: "WARREN_TLS_FAIL_IF_NO_PEER_CERT", boolean: true, usage: "refuse TLS clients without a valid certificate (ssl_options.fail_if_no_peer_cert; needs --tls-verify-peer)",
		set: func(c *Config, v string) (err error) { c.TLS.FailIfNoPeerCert, err = parseBool(v); return }},
	{flag: "ssl-cert-login-from", env: "WARREN_SSL_CERT_LOGIN_FROM", usage: "the user `name` SASL EXTERNAL takes from a client certificate: distinguished_name or common_name (ssl_cert_login_from)",
		set: func(c *Config, v string) (err error) {
			c.TLS.CertLoginFrom, err = oneOf(v, server.CertLoginDistinguishedName, server.CertLoginCommonName)
			return
		},
		show: func(c *Config) string { return server.CertLoginDistinguishedName }},
	{flag: "mqtt-addr", env: "WARREN_MQTT_ADDR", usage: "MQTT listen address, `host:port` or a port, usually 1883 (mqtt.listeners.tcp.default); empty: off",
		set:  func(c *Config, v string) (err error) { c.MQTTAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.MQTTAddr }},
	{flag: "web-mqtt-addr", env: "WARREN_WEB_MQTT_ADDR", usage: "Web MQTT (MQTT over WebSockets at /ws) listen address, `host:port` or a port, usually 15675 (web_mqtt.tcp.port); empty: off",
		set:  func(c *Config, v string) (err error) { c.WebMQTTAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.WebMQTTAddr }},
	{flag: "web-stomp-addr", env: "WARREN_WEB_STOMP_ADDR", usage: "Web STOMP (STOMP over WebSockets at /ws) listen address, `host:port` or a port, usually 15674 (web_stomp.tcp.port); empty: off",
		set:  func(c *Config, v string) (err error) { c.WebSTOMPAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.WebSTOMPAddr }},
	{flag: "web-mqtts-addr", env: "WARREN_WEB_MQTTS_ADDR", usage: "Web MQTT over TLS (wss://, at /ws) listen address, `host:port` or a port, usually 15676 (web_mqtt.ssl.port), with the AMQPS certificates; empty: off",
		set:  func(c *Config, v string) (err error) { c.TLS.WebMQTTSAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.TLS.WebMQTTSAddr }},
	{flag: "web-stomps-addr", env: "WARREN_WEB_STOMPS_ADDR", usage: "Web STOMP over TLS (wss://, at /ws) listen address, `host:port` or a port, usually 15673 (web_stomp.ssl.port), with the AMQPS certificates; empty: off",
		set:  func(c *Config, v string) (err error) { c.TLS.WebSTOMPSAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.TLS.WebSTOMPSAddr }},
	{flag: "stomp-addr", env: "WARREN_STOMP_ADDR", usage: "STOMP listen address, `host:port` or a port, usually 61613 (stomp.listeners.tcp.1); empty: off",
		set:  func(c *Config, v string) (err error) { c.STOMPAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.STOMPAddr }},
	{flag: "stomps-addr", env: "WARREN_STOMPS_ADDR", usage: "STOMP over TLS listen address, `host:port` or a port, usually 61614, with the AMQPS certificates (stomp.listeners.ssl.1); empty: off",
		set:  func(c *Config, v string) (err error) { c.TLS.STOMPSAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.TLS.STOMPSAddr }},
	{flag: "streams-addr", env: "WARREN_STREAMS_ADDR", usage: "stream protocol over TLS listen address, `host:port` or a port, usually 5551, with the AMQPS certificates (stream.listeners.ssl.1); empty: off",
		set:  func(c *Config, v string) (err error) { c.TLS.StreamsAddr, err = optionalListenAddr(v); return },
		show: func(c *Config) string { return c.TLS.StreamsAddr }},
	{flag: "stomp-default-user", env: "WARREN_STOMP_DEFAULT_USER", usage: "the `user` a STOMP CONNECT without a login header logs in as (stomp.default_user); empty: none",
		set:  func(c *Config, v string) error { c.STOMPDefaultUser = v; return nil },
		show: func(c *Config) string { return c.STOMPDefaultUser }},
	{env: "WARREN_STOMP_DEFAULT_PASS", noFlag: true,
		set: func(c *Config, v string) error { c.STOMPDefaultPass = v; return nil }},
	{flag: "stomp-default-vhost", env: "WARREN_STOMP_DEFAULT_VHOST", usage: "the `vhost` of a STOMP CONNECT without a host header (stomp.default_vhost; default: the default vhost)",
		set:  func(c *Config, v string) error { c.STOMPDefaultVhost = v; return nil },
		show: func(c *Config) string { return c.STOMPDefaultVhost }},
	{flag: "load-definitions", env: "WARREN_LOAD_DEFINITIONS", usage: "import this definitions JSON `file` (RabbitMQ's format) at boot",
		set:  func(c *Config, v string) error { c.LoadDefinitions = v; return nil },
		show: func(c *Config) string { return c.LoadDefinitions }},
}

// configFileEnv names the config file when --config is not given.
const configFileEnv = "WARREN_CONFIG_FILE"

// knownEnv reports whether name is an environment variable the broker reads.
func knownEnv(name string) bool {
	if name == configFileEnv {
		return true
	}
	return slices.ContainsFunc(settings, func(s setting) bool { return s.env == name })
}

// fileKeys are the config file's keys, as rabbitmq.conf spells them; loopback_users.NAME is
// handled by applyKey.
var fileKeys = map[string]func(c *Config, v string) error{
	"listeners.tcp.default":  func(c *Config, v string) (err error) { c.AMQPAddr, err = parseListenAddr(v); return },
	"stream.listeners.tcp.1": byEnv("WARREN_STREAM_ADDR"),
	"stream.advertised_host": func(c *Config, v string) error { c.StreamAdvertisedHost = v; return nil },
	"stream.advertised_port": func(c *Config, v string) (err error) {
		p, err := parsePort(v)
		if err == nil {
			c.StreamAdvertisedPort, err = strconv.Atoi(p)
		}
		return err
	},
	"management.tcp.port":      func(c *Config, v string) (err error) { c.HTTPAddr, err = setPort(c.HTTPAddr, v); return },
	"management.tcp.ip":        func(c *Config, v string) (err error) { c.HTTPAddr, err = setIP(c.HTTPAddr, v); return },
	"data_dir":                 byEnv("WARREN_DATA_DIR"),
	"stomp.listeners.tcp.1":    byEnv("WARREN_STOMP_ADDR"),
	"stomp.listeners.ssl.1":    byEnv("WARREN_STOMPS_ADDR"),
	"stream.listeners.ssl.1":   byEnv("WARREN_STREAMS_ADDR"),
	"web_mqtt.tcp.port":        func(c *Config, v string) (err error) { c.WebMQTTAddr, err = setPort(c.WebMQTTAddr, v); return },
	"web_stomp.tcp.port":       func(c *Config, v string) (err error) { c.WebSTOMPAddr, err = setPort(c.WebSTOMPAddr, v); return },
	"web_mqtt.ssl.port":        byEnv("WARREN_WEB_MQTTS_ADDR"),
	"web_stomp.ssl.port":       byEnv("WARREN_WEB_STOMPS_ADDR"),
	"stomp.default_user":       byEnv("WARREN_STOMP_DEFAULT_USER"),
	"stomp.default_pass":       byEnv("WARREN_STOMP_DEFAULT_PASS"),
	"stomp.default_vhost":      byEnv("WARREN_STOMP_DEFAULT_VHOST"),
	"default_user":             byEnv("WARREN_DEFAULT_USER"),
	"default_pass":             byEnv("WARREN_DEFAULT_PASS"),
	"default_vhost":            byEnv("WARREN_DEFAULT_VHOST"),
	"heartbeat":                byEnv("WARREN_HEARTBEAT"),
	"frame_max":                byEnv("WARREN_FRAME_MAX"),
	"channel_max":              byEnv("WARREN_CHANNEL_MAX"),
	"max_message_size":         byEnv("WARREN_MAX_MESSAGE_SIZE"),
	"consumer_timeout":         byEnv("WARREN_CONSUMER_TIMEOUT"),
	"handshake_timeout":        byEnv("WARREN_HANDSHAKE_TIMEOUT"),
	"connection_max":           byEnv("WARREN_CONNECTION_MAX"),
	"disk_free_limit.absolute": byEnv("WARREN_DISK_FREE_LIMIT"),
	"store_sync_interval":      byEnv("WARREN_STORE_SYNC_INTERVAL"),
	"log.console.level":        byEnv("WARREN_LOG_LEVEL"),
	"log.console.formatter":    byEnv("WARREN_LOG_FORMAT"),
	"load_definitions":         byEnv("WARREN_LOAD_DEFINITIONS"),
	"loopback_users": func(c *Config, v string) error {
		if v != "none" {
			return fmt.Errorf("loopback_users takes none, or loopback_users.USER = true|false")
		}
		c.LoopbackUsers = []string{}
		return nil
	},
	"vm_memory_high_watermark.relative": func(c *Config, v string) error {
		f, err := parseFraction(v)
		c.MemoryHighWatermark = MemoryWatermark{Relative: f}
		return err
	},
	"vm_memory_high_watermark.absolute": func(c *Config, v string) error {
		n, err := parseBytes(v)
		if err == nil && n == 0 {
			err = fmt.Errorf("%q: must be above 0", v)
		}
		c.MemoryHighWatermark = MemoryWatermark{Absolute: n}
		return err
	},
	"memory_monitor_interval": byEnv("WARREN_MEMORY_MONITOR_INTERVAL"),

	// TLS: the listeners are in tls.go.
	"listeners.ssl.default":            byEnv("WARREN_AMQPS_ADDR"),
	"ssl_options.cacertfile":           byEnv("WARREN_TLS_CA"),
	"ssl_options.certfile":             byEnv("WARREN_TLS_CERT"),
	"ssl_options.keyfile":              byEnv("WARREN_TLS_KEY"),
	"ssl_options.fail_if_no_peer_cert": byEnv("WARREN_TLS_FAIL_IF_NO_PEER_CERT"),
	"ssl_cert_login_from":              byEnv("WARREN_SSL_CERT_LOGIN_FROM"),
	"ssl_options.verify": func(c *Config, v string) error {
		s, err := oneOf(v, "verify_peer", "verify_none")
		c.TLS.VerifyPeer = s == "verify_peer"
		return err
	},
	"management.ssl.port":       func(c *Config, v string) (err error) { c.TLS.HTTPSAddr, err = setPort(c.TLS.HTTPSAddr, v); return },
	"management.ssl.ip":         func(c *Config, v string) (err error) { c.TLS.HTTPSAddr, err = setIP(c.TLS.HTTPSAddr, v); return },
	"management.ssl.certfile":   func(c *Config, v string) error { c.TLS.HTTPSCertFile = v; return nil },
	"management.ssl.keyfile":    func(c *Config, v string) error { c.TLS.HTTPSKeyFile = v; return nil },
	"management.ssl.cacertfile": func(c *Config, v string) error { c.TLS.HTTPSCACertFile = v; return nil },

	// MQTT (mqtt.go in the server package).
	"mqtt.listeners.tcp.default": byEnv("WARREN_MQTT_ADDR"),
	"mqtt.listeners.ssl.default": byEnv("WARREN_MQTTS_ADDR"),
	"mqtt.vhost":                 func(c *Config, v string) error { return nonEmpty(&c.MQTT.Vhost, v) },
	"mqtt.default_user":          func(c *Config, v string) error { return nonEmpty(&c.MQTT.DefaultUser, v) },
	"mqtt.default_pass":          func(c *Config, v string) error { c.MQTT.DefaultPass = v; return nil },
	"mqtt.exchange":              func(c *Config, v string) error { return nonEmpty(&c.MQTT.Exchange, v) },
	"mqtt.prefetch": func(c *Config, v string) error {
		n, err := parseInt(v, 1, math.MaxUint16)
		c.MQTT.Prefetch = int(n)
		return err
	},
	"mqtt.subscription_ttl": func(c *Config, v string) (err error) {
		if v == "undefined" || v == "infinity" {
			c.MQTT.SubscriptionTTL = -1
			return nil
		}
		c.MQTT.SubscriptionTTL, err = parseMillis(v, false)
		return err
	},
}

// byEnv reuses the setter of the setting read from env, so that a key and its environment
// variable accept exactly the same values.
func byEnv(env string) func(c *Config, v string) error {
	for _, s := range settings {
		if s.env == env {
			return s.set
		}
	}
	panic("no setting for " + env)
}

// configFlags is the broker's flag set: one flag per setting, plus --config and --version.
type configFlags struct {
	fs      *flag.FlagSet
	config  *string
	version *bool
}

// settingValue is a setting's flag: Set checks the value at parse time (on a scratch Config) and
// keeps it; loadConfig applies the flags actually given, after the file and the environment.
type settingValue struct {
	s   *setting
	raw string
}

func (v *settingValue) String() string { return v.raw }

// IsBoolFlag lets a boolean setting's flag stand alone (--tls-verify-peer means true).
func (v *settingValue) IsBoolFlag() bool { return v != nil && v.s != nil && v.s.boolean }
func (v *settingValue) Set(x string) error {
	var scratch Config
	if err := v.s.set(&scratch, x); err != nil {
		return err
	}
	v.raw = x
	return nil
}

func newFlagSet(out io.Writer) *configFlags {
	fs := flag.NewFlagSet("warren", flag.ContinueOnError)
	fs.SetOutput(out)
	cf := &configFlags{fs: fs}
	cf.config = fs.String("config", "", "read this rabbitmq.conf-style `file` (env "+configFileEnv+")")
	cf.version = fs.Bool("version", false, "print the version and exit")
	def := defaultConfig()
	for i := range settings {
		s := &settings[i]
		if s.noFlag {
			continue
		}
		usage := s.usage + " (env " + s.env + ")"
		fs.Var(&settingValue{s: s}, s.flag, usage)
		if s.show != nil {
			fs.Lookup(s.flag).DefValue = s.show(&def)
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: warren [flags]\n       warren healthcheck [--url URL] [--user USER] [--password PASS] [--cacert FILE]\n\nFlags beat environment variables, which beat the config file.\n\n")
		fs.PrintDefaults()
	}
	return cf
}

// loadConfig is the one place where precedence is decided: defaults, then the config file
// (--config, else $WARREN_CONFIG_FILE), then the environment, then the flags given in args.
// lookupEnv is os.LookupEnv outside tests.
func loadConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (Config, *configFlags, error) {
	cf := newFlagSet(out)
	if err := cf.fs.Parse(args); err != nil {
		return Config{}, cf, err
	}
	if cf.fs.NArg() > 0 {
		return Config{}, cf, fmt.Errorf("unexpected argument %q", cf.fs.Arg(0))
	}
	c := defaultConfig()
	c.File, _ = lookupEnv(configFileEnv)
	if flagSet(cf.fs, "config") {
		c.File = *cf.config
	}
	if c.File != "" {
		if err := parseConfigFile(c.File, &c); err != nil {
			return Config{}, cf, err
		}
	}
	for _, s := range settings {
		if v, ok := lookupEnv(s.env); ok {
			if err := s.set(&c, v); err != nil {
				return Config{}, cf, fmt.Errorf("environment variable %s: %w", s.env, err)
			}
		}
	}
	cf.fs.Visit(func(f *flag.Flag) {
		if sv, ok := f.Value.(*settingValue); ok {
			sv.s.set(&c, sv.raw) // checked by Set
		}
	})
	return c, cf, c.validate()
}

func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// validate checks what involves several settings.
func (c *Config) validate() error {
	t := &c.TLS
	where := "TLS"
	if c.File != "" {
		where = c.File
	}
	// One set of files serves AMQPS and HTTPS: management.ssl.* fill in for ssl_options.* and
	// must not differ from them.
	for _, f := range []struct {
		key  string
		dst  *string
		mgmt string
	}{
		{"certfile", &t.CertFile, t.HTTPSCertFile},
		{"keyfile", &t.KeyFile, t.HTTPSKeyFile},
		{"cacertfile", &t.CACertFile, t.HTTPSCACertFile},
	} {
		switch {
		case f.mgmt == "" || f.mgmt == *f.dst:
		case *f.dst == "":
			*f.dst = f.mgmt
		default:
			return fmt.Errorf("%s: management.ssl.%s differs from ssl_options.%s: Warren serves HTTPS with the same files as AMQPS", where, f.key, f.key)
		}
	}
	if !t.anyListener() && (t.CertFile != "" || t.KeyFile != "" || t.CACertFile != "") {
		return fmt.Errorf("%s: certificate files given without --amqps-addr, --https-addr, --mqtts-addr, --stomps-addr, --streams-addr, --web-mqtts-addr or --web-stomps-addr (listeners.ssl.default, management.ssl.port, mqtt.listeners.ssl.default, stomp.listeners.ssl.1, stream.listeners.ssl.1, web_mqtt.ssl.port, web_stomp.ssl.port): they would do nothing", where)
	}
	if t.StreamsAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return fmt.Errorf("%s: stream.listeners.ssl.1 needs ssl_options.certfile and ssl_options.keyfile", where)
	}
	if t.WebMQTTSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return fmt.Errorf("%s: web_mqtt.ssl.port needs ssl_options.certfile and ssl_options.keyfile", where)
	}
	if t.WebSTOMPSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return fmt.Errorf("%s: web_stomp.ssl.port needs ssl_options.certfile and ssl_options.keyfile", where)
	}
	if t.MQTTSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return fmt.Errorf("%s: mqtt.listeners.ssl.default needs ssl_options.certfile and ssl_options.keyfile", where)
	}
	if t.STOMPSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return fmt.Errorf("%s: stomp.listeners.ssl.1 needs ssl_options.certfile and ssl_options.keyfile", where)
	}
	if t.AMQPSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return fmt.Errorf("%s: listeners.ssl.default needs ssl_options.certfile and ssl_options.keyfile", where)
	}
	if t.HTTPSAddr != "" && (t.CertFile == "" || t.KeyFile == "") {
		return fmt.Errorf("%s: management.ssl.port needs management.ssl.certfile and management.ssl.keyfile (or ssl_options')", where)
	}
	if t.VerifyPeer && t.CACertFile == "" {
		return fmt.Errorf("%s: ssl_options.verify = verify_peer needs ssl_options.cacertfile", where)
	}
	if t.FailIfNoPeerCert && !t.VerifyPeer {
		return fmt.Errorf("%s: ssl_options.fail_if_no_peer_cert = true needs ssl_options.verify = verify_peer", where)
	}
	return c.validateCluster()
}

// parseConfigFile applies a rabbitmq.conf-style file to c: "key = value" lines, blank lines and
// comments from a '#' at the start of a line or after a blank. An unknown key, a bad value or a
// key given twice is an error naming the file and line.
func parseConfigFile(path string, c *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	seen := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", path, i+1, fmt.Sprintf(format, args...))
		}
		line = stripComment(line)
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return fail("expected key = value, got %q", line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "" {
			return fail("missing key before =")
		}
		if value == "" {
			return fail("%s: missing value", key)
		}
		if prev, dup := seen[key]; dup {
			return fail("%s is already set on line %d", key, prev)
		}
		seen[key] = i + 1
		if other := exclusiveKeys[key]; seen[other] != 0 {
			return fail("%s: %s is already set", key, other)
		}
		if err := applyKey(c, key, value); err != nil {
			return fail("%s: %v", key, err)
		}
	}
	return nil
}

// exclusiveKeys are pairs of keys of which a file may give only one.
var exclusiveKeys = map[string]string{
	"vm_memory_high_watermark.relative": "vm_memory_high_watermark.absolute",
	"vm_memory_high_watermark.absolute": "vm_memory_high_watermark.relative",
}

// showWatermark is --help's form of a watermark.
func showWatermark(w MemoryWatermark) string {
	if w.Absolute > 0 {
		return strconv.FormatInt(w.Absolute, 10)
	}
	return strconv.FormatFloat(w.Relative, 'f', -1, 64)
}

func stripComment(line string) string {
	for i, r := range line {
		if r == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
			break
		}
	}
	return strings.TrimSpace(line)
}

func applyKey(c *Config, key, value string) error {
	if set, ok := fileKeys[key]; ok {
		return set(c, value)
	}
	if user, ok := strings.CutPrefix(key, "loopback_users."); ok && user != "" {
		on, err := parseBool(value)
		if err != nil {
			return err
		}
		// As RabbitMQ: once any loopback_users.USER is given, the list is the users set to true.
		if c.LoopbackUsers == nil {
			c.LoopbackUsers = []string{}
		}
		c.LoopbackUsers = slices.DeleteFunc(c.LoopbackUsers, func(u string) bool { return u == user })
		if on {
			c.LoopbackUsers = append(c.LoopbackUsers, user)
		}
		return nil
	}
	return errors.New("unknown key")
}

// --- value parsers ---

func nonEmpty(dst *string, v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	*dst = v
	return nil
}

func oneOf(v string, allowed ...string) (string, error) {
	if slices.Contains(allowed, v) {
		return v, nil
	}
	return "", fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

func parseInt(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not an integer between %d and %d", v, lo, hi)
	}
	return n, nil
}

func parsePort(v string) (string, error) {
	if _, err := parseInt(v, 0, 65535); err != nil {
		return "", fmt.Errorf("%q is not a port number", v)
	}
	return v, nil
}

// parseListenAddr accepts RabbitMQ's listener forms, a port ("5672") or "ip:port" (IPv6 with or
// without brackets), and Go's ":5672".
// optionalListenAddr is parseListenAddr, with "" for "off".
func optionalListenAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	return parseListenAddr(v)
}

func parseListenAddr(v string) (string, error) {
	if !strings.Contains(v, ":") {
		port, err := parsePort(v)
		return ":" + port, err
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		i := strings.LastIndexByte(v, ':') // RabbitMQ's "::1:5672"
		host, port = v[:i], v[i+1:]
		if net.ParseIP(host) == nil {
			return "", fmt.Errorf("%q is not a port or ip:port", v)
		}
	}
	if _, err := parsePort(port); err != nil {
		return "", fmt.Errorf("%q: %w", v, err)
	}
	if strings.ContainsAny(host, " \t/") {
		return "", fmt.Errorf("%q: bad host %q", v, host)
	}
	return net.JoinHostPort(host, port), nil
}

func setPort(addr, v string) (string, error) {
	port, err := parsePort(v)
	if err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, port), nil
}

func setIP(addr, v string) (string, error) {
	if net.ParseIP(v) == nil {
		return "", fmt.Errorf("%q is not an IP address", v)
	}
	_, port, _ := net.SplitHostPort(addr)
	if port == "" {
		port = "15672"
	}
	return net.JoinHostPort(v, port), nil
}

// parseMillis reads an integer number of milliseconds, as RabbitMQ's timeouts, or a Go duration.
func parseMillis(v string, negativeOK bool) (time.Duration, error) {
	d, err := parseDuration(v, time.Millisecond)
	if err == nil && d < 0 && !negativeOK || err == nil && d == 0 {
		return 0, fmt.Errorf("%q must be positive", v)
	}
	return d, err
}

// parseSeconds reads an integer number of seconds, as RabbitMQ's heartbeat, or a Go duration.
func parseSeconds(v string) (time.Duration, error) {
	d, err := parseDuration(v, time.Second)
	if err == nil && (d < 0 || d > 65535*time.Second) {
		return 0, fmt.Errorf("%q is not between 0 and 65535 seconds", v)
	}
	return d, err
}

func parseDuration(v string, unit time.Duration) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(math.MaxInt64/unit) || n < int64(math.MinInt64/unit) {
			return 0, fmt.Errorf("%q is too large", v)
		}
		return time.Duration(n) * unit, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer or a duration such as 30s", v)
	}
	return d, nil
}

var bytesRe = regexp.MustCompile(`^([0-9]+)([a-zA-Z]*)$`)

// byteUnits are RabbitMQ 3.10's information units (rabbit_resource_monitor_misc): kB, MB, GB
// are powers of 10; k, M, G and kiB, MiB, GiB are powers of 2.
var byteUnits = map[string]int64{
	"":   1,
	"kB": 1e3, "KB": 1e3, "kb": 1e3, "Kb": 1e3,
	"MB": 1e6, "mb": 1e6, "Mb": 1e6,
	"GB": 1e9, "gb": 1e9, "Gb": 1e9,
	"k": 1 << 10, "K": 1 << 10, "kiB": 1 << 10, "KiB": 1 << 10, "kib": 1 << 10, "KIB": 1 << 10,
	"m": 1 << 20, "M": 1 << 20, "MiB": 1 << 20, "mib": 1 << 20, "MIB": 1 << 20,
	"g": 1 << 30, "G": 1 << 30, "GiB": 1 << 30, "gib": 1 << 30, "GIB": 1 << 30,
}

// parseBytes reads an amount of memory or disk as RabbitMQ does: plain bytes, or 50MB, 1GB, 512MiB...
func parseBytes(v string) (int64, error) {
	m := bytesRe.FindStringSubmatch(v)
	if m == nil {
		return 0, fmt.Errorf("%q is not a number of bytes such as 50000000, 50MB or 1GiB", v)
	}
	unit, ok := byteUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (use kB, MB, GB, kiB, MiB or GiB)", v, m[2])
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * unit, nil
}

func parseLogLevel(v string) (slog.Level, error) {
	switch v {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warning, error", v)
}

func levelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelWarn:
		return "warning"
	case slog.LevelError:
		return "error"
	}
	return "info"
}

// changedFields names the fields of Config that differ between a and b, for SIGHUP's report.
func changedFields(a, b Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, va.Type().Field(i).Name)
		}
	}
	return out
}
