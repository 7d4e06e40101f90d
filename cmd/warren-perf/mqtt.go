package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// MQTT mode (--protocol mqtt): the same load shape as the AMQP mode, with MQTT 3.1.1 clients
// (github.com/eclipse/paho.mqtt.golang, the Go client most MQTT applications use) on --mqtt-addr.
//
// There are --topics topics, named warren-perf/PID/TIME/I so that runs never meet. Producer i
// publishes to topic i mod --topics; consumer j subscribes to topic j mod --topics (at least one
// consumer per topic when there are consumers), so --topics 1 --consumers 10 is a fan-out to ten
// subscribers. Publishes and subscriptions use --qos (0 or 1). At QoS 1 each producer keeps at
// most --inflight publishes without their PUBACK (the MQTT analogue of a confirm window) and the
// PUBACKs are counted as confirmed; subscribers acknowledge every delivery (paho sends the PUBACK
// when the handler returns). At QoS 0 nothing bounds a publisher but TCP, like an AMQP publisher
// without confirms.
//
// Every producer connection goes through the same write batching as the AMQP mode (bufconn.go,
// --flush-delay): paho writes each packet with its own write call, which would make the client
// the bottleneck (at a fixed --rate the clients write unbatched, see mqttDial). The latency measurement (--size >= 8) and fixed-rate pacing (--rate) are the
// AMQP mode's.

// mqttClient is one paho connection and its batching socket.
type mqttClient struct {
	c  paho.Client
	bc *bufConn
}

// mqttDial connects one MQTT 3.1.1 client with a clean session.
func mqttDial(cfg *config, id string, batch bool, onLost func(error)) (*mqttClient, error) {
	mc := &mqttClient{}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + cfg.mqttAddr).
		SetClientID(id).
		SetUsername(cfg.user).
		SetPassword(cfg.pass).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).
		SetOrderMatters(true). // handlers run on paho's router goroutine, one at a time
		SetConnectTimeout(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			if onLost != nil {
				onLost(err)
			}
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 30*time.Second)
			// Only producers batch. A subscriber's PUBACKs must not wait: the broker sends a
			// QoS 1 subscriber at most mqtt.prefetch (10) unacknowledged messages. At a fixed
			// rate producers write unbatched too: paho's writer goroutine writes a packet after
			// Publish returns, so the producer cannot flush it before it sleeps.
			if err != nil || !batch || cfg.flushDelay <= 0 || cfg.rate > 0 {
				return c, err
			}
			mc.bc = newBufConn(c, cfg.flushDelay)
			return mc.bc, nil
		})
	mc.c = paho.NewClient(opts)
	tok := mc.c.Connect()
	if !tok.WaitTimeout(40 * time.Second) {
		return nil, fmt.Errorf("mqtt connect %s: timed out", id)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt connect %s: %w", id, err)
	}
	return mc, nil
}

func (mc *mqttClient) flush() error {
	if mc.bc != nil {
		return mc.bc.Flush()
	}
	return nil
}

func (mc *mqttClient) close() {
	mc.c.Disconnect(250)
}

func runMQTT(cfg *config) (*Result, error) {
	prefix := fmt.Sprintf("warren-perf/%d/%d", os.Getpid(), time.Now().UnixNano())
	topics := make([]string, cfg.topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("%s/%d", prefix, i)
	}
	cnt := &counters{}
	qos := byte(cfg.qos)

	// Subscribers first, each subscribed before any producer starts.
	subsPerTopic := make([]int64, cfg.topics)
	var subs []*mqttClient
	var lats []*hist
	for j := 0; j < cfg.consumers; j++ {
		t := j % cfg.topics
		lat := &hist{}
		sc, err := mqttDial(cfg, fmt.Sprintf("warren-perf-%d-c%d", os.Getpid(), j), false, func(err error) {
			cnt.fail("consumer %d: connection lost: %v", j, err)
		})
		if err != nil {
			closeAll(subs)
			return nil, fmt.Errorf("consumer %d: %w", j, err)
		}
		subs = append(subs, sc)
		tok := sc.c.Subscribe(topics[t], qos, func(_ paho.Client, m paho.Message) {
			if p := m.Payload(); len(p) >= 8 && cfg.size >= 8 {
				sent := int64(binary.BigEndian.Uint64(p))
				lat.record(uint64(max(0, time.Now().UnixNano()-sent)))
			}
			cnt.consumed.Add(1)
		})
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			closeAll(subs)
			return nil, fmt.Errorf("consumer %d: subscribe %s: %v", j, topics[t], tok.Error())
		}
		if granted, ok := tok.(*paho.SubscribeToken).Result()[topics[t]]; !ok || granted != qos {
			closeAll(subs)
			return nil, fmt.Errorf("consumer %d: subscribe %s at QoS %d: granted %#x", j, topics[t], qos, granted)
		}
		subsPerTopic[t]++
		lats = append(lats, lat)
	}

	// Producers connect before the clock starts.
	prods := make([]*mqttClient, cfg.producers)
	var swg sync.WaitGroup
	for i := range prods {
		swg.Go(func() {
			pc, err := mqttDial(cfg, fmt.Sprintf("warren-perf-%d-p%d", os.Getpid(), i), true, func(err error) {
				cnt.fail("producer %d: connection lost: %v", i, err)
			})
			if err != nil {
				cnt.fail("producer %d: %v", i, err)
				return
			}
			prods[i] = pc
		})
	}
	swg.Wait()

	pubPerTopic := make([]atomic.Int64, cfg.topics)
	ctx, cancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	start := time.Now()
	for i, pc := range prods {
		if pc != nil {
			pwg.Go(func() { mqttProduce(ctx, cfg, i, pc, topics[i%cfg.topics], qos, &pubPerTopic[i%cfg.topics], cnt) })
		}
	}
	producersDone := make(chan struct{})
	if cfg.producers > 0 {
		go func() { pwg.Wait(); close(producersDone) }()
	}
	select {
	case <-time.After(cfg.duration):
	case <-producersDone:
	}
	pub, con, conf := cnt.published.Load(), cnt.consumed.Load(), cnt.confirmed.Load()
	secs := time.Since(start).Seconds()
	cancel()
	pwg.Wait()

	// Drain: every message published on a topic reaches each of its subscribers (QoS 0 may
	// lose messages by the specification; a broker that does is reported, not excused).
	var undrained int64
	if cfg.consumers > 0 {
		var total int64
		for t := range pubPerTopic {
			total += pubPerTopic[t].Load() * subsPerTopic[t]
		}
		undrained = drainDeliveries(cfg, cnt, total)
	}
	for _, pc := range prods {
		if pc != nil {
			pc.close()
		}
	}
	closeAll(subs)
	for _, l := range lats {
		cnt.lat.merge(l)
	}

	q := cfg.qos
	r := &Result{
		URL: "mqtt://" + cfg.mqttAddr, Protocol: "mqtt", QoS: &q, Topics: cfg.topics, Exchange: prefix,
		Producers: cfg.producers, Consumers: cfg.consumers, Size: cfg.size, Rate: cfg.rate,
		Client: "paho.mqtt.golang", Pacer: map[bool]string{true: cfg.pacer}[cfg.rate > 0],
		FlushDelay: cfg.flushDelay.String(), Seconds: secs,
		Published: pub, Consumed: con, Confirmed: conf,
		PublishRate: float64(pub) / secs, ConsumeRate: float64(con) / secs,
		PublishedAll: cnt.published.Load(), ConsumedAll: cnt.consumed.Load(), Undrained: undrained, Errors: cnt.errs,
	}
	if cfg.qos == 1 {
		r.Confirm = cfg.inflight
		r.ConfirmRate = float64(conf) / secs
		r.ConfirmedAll = cnt.confirmed.Load()
	}
	r.Latency = cnt.lat.latency()
	return r, nil
}

func closeAll(cs []*mqttClient) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(c.close)
	}
	wg.Wait()
}

// mqttProduce publishes until ctx ends (or the --count quota is spent). At QoS 1 the tokens go
// through a window of --inflight: a waiter takes them in order (PUBACKs come back in order) and
// counts each acknowledged publish as confirmed.
func mqttProduce(ctx context.Context, cfg *config, id int, pc *mqttClient, topic string, qos byte, perTopic *atomic.Int64, cnt *counters) {
	var window chan paho.Token
	waiterDone := make(chan struct{})
	if qos > 0 {
		window = make(chan paho.Token, cfg.inflight)
		go func() {
			defer close(waiterDone)
			for tok := range window {
				if !tok.WaitTimeout(cfg.drainTimeout + 30*time.Second) {
					cnt.fail("producer %d: no PUBACK within %v", id, cfg.drainTimeout+30*time.Second)
					continue
				}
				if err := tok.Error(); err != nil {
					cnt.nacked.Add(1)
					cnt.fail("producer %d: publish: %v", id, err)
					continue
				}
				cnt.confirmed.Add(1)
			}
		}()
	} else {
		close(waiterDone)
	}
	publish := func(body []byte) error {
		// paho keeps the slice until its writer goroutine has sent it: one copy per message.
		tok := pc.c.Publish(topic, qos, false, append([]byte(nil), body...))
		if qos == 0 {
			// Publish has handed the packet to paho's writer (an unbuffered channel, so TCP
			// back-pressure reaches the producer); a failed write ends the connection, which
			// the connection-lost handler reports.
			if tok.WaitTimeout(0) && tok.Error() != nil {
				return tok.Error()
			}
		} else {
			select {
			case window <- tok:
			case <-ctx.Done():
				// Published, so still count and await it.
				window <- tok
			}
		}
		perTopic.Add(1)
		return nil
	}
	publishLoop(ctx, cfg, id, make([]byte, cfg.size), publish, pc.flush, cnt)
	if window != nil {
		close(window)
	}
	<-waiterDone
	if err := pc.flush(); err != nil {
		cnt.fail("producer %d: flush: %v", id, err)
	}
}

// drainDeliveries waits until total deliveries have arrived, giving up after --drain-timeout
// without progress (an error: deliveries are missing) or, with --drain-max, after that long in
// all (not an error: the rest are reported as undrained, a backlog the broker still held).
func drainDeliveries(cfg *config, cnt *counters, total int64) (undrained int64) {
	start := time.Now()
	lastN, lastT := cnt.consumed.Load(), time.Now()
	for cnt.consumed.Load() < total && time.Since(lastT) < cfg.drainTimeout {
		if cfg.drainMax > 0 && time.Since(start) >= cfg.drainMax {
			return total - cnt.consumed.Load()
		}
		time.Sleep(5 * time.Millisecond)
		if n := cnt.consumed.Load(); n != lastN {
			lastN, lastT = n, time.Now()
		}
	}
	if n := cnt.consumed.Load(); n < total {
		cnt.fail("%d of %d deliveries missing after draining for %v without progress", total-n, total, cfg.drainTimeout)
	}
	return 0
}
