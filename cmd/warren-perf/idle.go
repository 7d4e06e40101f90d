package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"
)

// IdleResult is the report of --idle-conns: how much the broker's resident memory grows per idle
// connection (one that only exchanges heartbeats).
type IdleResult struct {
	URL            string   `json:"url"`
	Connections    int      `json:"connections"` // asked for
	Opened         int      `json:"opened"`
	AliveAfterHold int      `json:"alive_after_hold"`    // still open when the hold ended
	Heartbeat      string   `json:"heartbeat"`           // AMQP heartbeat, or MQTT keepalive
	Subscribe      bool     `json:"subscribe,omitempty"` // MQTT: one QoS 1 subscription per connection
	SourceAddrs    int      `json:"source_addrs,omitempty"`
	HoldSeconds    float64  `json:"hold_seconds"`
	OpenSeconds    float64  `json:"open_seconds"` // time to open them all
	BrokerPID      int      `json:"broker_pid,omitempty"`
	RSSBeforeKiB   int64    `json:"rss_before_kib,omitempty"` // broker VmRSS before the first dial
	RSSOpenKiB     int64    `json:"rss_open_kib,omitempty"`   // ... once all are open
	RSSHeldKiB     int64    `json:"rss_held_kib,omitempty"`   // ... at the end of the hold
	PerConnKiB     float64  `json:"per_conn_kib,omitempty"`   // (held - before) / opened
	Errors         []string `json:"errors,omitempty"`
}

// vmRSS reads VmRSS (KiB) from /proc/PID/status (Linux).
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("broker rss: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(string(f[0]), 10, 64)
		}
	}
	return 0, fmt.Errorf("broker rss: no VmRSS in /proc/%d/status", pid)
}

// runIdle opens n connections (no channels) with the given heartbeat, holds them open for hold,
// reads the broker's RSS (if pid > 0) before, after opening and at the end, then closes them.
// The client needs an fd per connection: Go raises the soft RLIMIT_NOFILE to the hard limit at
// start, so `ulimit -Hn` must exceed n (and the broker's too).
func runIdle(cfg *config, n int, hold time.Duration, pid, parallel int) (*IdleResult, error) {
	r := &IdleResult{URL: cfg.url, Connections: n, Heartbeat: cfg.heartbeat.String(), BrokerPID: pid}
	if cfg.protocol == "mqtt" {
		r.URL, r.Subscribe = "mqtt://"+cfg.mqttAddr, cfg.idleSubscribe
		if len(cfg.sourceAddrs) > 0 {
			r.SourceAddrs = len(cfg.sourceAddrs)
		}
	}
	var err error
	if pid > 0 {
		if r.RSSBeforeKiB, err = vmRSS(pid); err != nil {
			return nil, err
		}
	}
	conns := make([]idleConn, n)
	var mu sync.Mutex
	fail := func(format string, a ...any) {
		mu.Lock()
		if len(r.Errors) < 20 {
			r.Errors = append(r.Errors, fmt.Sprintf(format, a...))
		}
		mu.Unlock()
	}
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, parallel) {
		wg.Go(func() {
			for i := range next {
				c, err := dialIdle(cfg, i)
				if err != nil {
					fail("conn %d: %v", i, err)
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	r.OpenSeconds = time.Since(start).Seconds()
	for _, c := range conns {
		if c != nil {
			r.Opened++
		}
	}
	if pid > 0 {
		if r.RSSOpenKiB, err = vmRSS(pid); err != nil {
			return nil, err
		}
	}
	time.Sleep(hold)
	r.HoldSeconds = hold.Seconds()
	if pid > 0 {
		if r.RSSHeldKiB, err = vmRSS(pid); err != nil {
			return nil, err
		}
		if r.Opened > 0 {
			r.PerConnKiB = float64(r.RSSHeldKiB-r.RSSBeforeKiB) / float64(r.Opened)
		}
	}
	for _, c := range conns {
		if c != nil && c.alive() {
			r.AliveAfterHold++
		}
	}
	if r.AliveAfterHold < r.Opened {
		fail("%d of %d connections closed during the hold", r.Opened-r.AliveAfterHold, r.Opened)
	}
	var cwg sync.WaitGroup
	for part := range max(1, parallel) {
		cwg.Go(func() {
			for i := part; i < len(conns); i += max(1, parallel) {
				if conns[i] != nil {
					conns[i].close()
				}
			}
		})
	}
	cwg.Wait()
	return r, nil
}

// idleConn is one held connection of --idle-conns.
type idleConn interface {
	alive() bool
	close()
}

type amqpIdle struct{ c *amqp.Connection }

func (a amqpIdle) alive() bool { return !a.c.IsClosed() }
func (a amqpIdle) close()      { a.c.Close() }

type mqttIdle struct{ c paho.Client }

func (m mqttIdle) alive() bool { return m.c.IsConnectionOpen() }
func (m mqttIdle) close()      { m.c.Disconnect(0) }

// dialIdle opens connection i of --idle-conns: AMQP with --heartbeat, or with --protocol mqtt
// an MQTT 3.1.1 connection (paho.mqtt.golang, clean session) with keepalive --heartbeat, which
// paho keeps up with a PINGREQ after each keepalive without traffic; with --idle-subscribe it
// also subscribes at QoS 1 to a topic of its own, as a device listening for commands does.
// Connections are spread over --source-addrs local addresses (127.0.0.x) if given, so that
// more connections than one address's ephemeral ports can be opened.
func dialIdle(cfg *config, i int) (idleConn, error) {
	if cfg.protocol != "mqtt" {
		c, err := amqp.DialConfig(cfg.url, amqp.Config{Heartbeat: cfg.heartbeat})
		if err != nil {
			return nil, err
		}
		return amqpIdle{c}, nil
	}
	d := &net.Dialer{Timeout: 30 * time.Second}
	if len(cfg.sourceAddrs) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: cfg.sourceAddrs[i%len(cfg.sourceAddrs)]}
	}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + cfg.mqttAddr).
		SetClientID(fmt.Sprintf("warren-perf-idle-%d-%d", os.Getpid(), i)).
		SetUsername(cfg.user).SetPassword(cfg.pass).
		SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(cfg.heartbeat).SetPingTimeout(30 * time.Second).
		SetConnectTimeout(30 * time.Second).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			return d.Dial("tcp", u.Host)
		})
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(40*time.Second) || tok.Error() != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect: %v", tok.Error())
	}
	if cfg.idleSubscribe {
		topic := fmt.Sprintf("warren-perf/idle/%d/%d", os.Getpid(), i)
		if tok := c.Subscribe(topic, 1, func(paho.Client, paho.Message) {}); !tok.WaitTimeout(40*time.Second) || tok.Error() != nil {
			c.Disconnect(0)
			return nil, fmt.Errorf("mqtt subscribe: %v", tok.Error())
		}
	}
	return mqttIdle{c}, nil
}
