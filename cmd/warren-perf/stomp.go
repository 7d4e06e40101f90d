package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/stomp"
)

// STOMP mode (--protocol stomp): the MQTT mode's load shape over STOMP 1.2 on --stomp-addr.
//
// There is no STOMP client for Go that the project can use, so this is a minimal one on Warren's
// own codec (package stomp): a connection is a socket, a reader goroutine that decodes the
// server's frames, and writes batched as in the AMQP mode (bufconn.go, --flush-delay).
//
// There are --topics destinations /topic/warren-perf.PID.TIME.I (RabbitMQ's topic destinations:
// each subscription is its own queue bound to amq.topic, as an MQTT subscription is). Producer i
// sends to destination i mod --topics, pipelined, with no receipts until the last frame
// (DISCONNECT with a receipt, which the broker answers after every SEND before it); consumer j
// subscribes to destination j mod --topics with ack:client and prefetch-count --prefetch,
// acknowledging cumulatively every --ack-every messages, or with ack:auto under --autoack.

type stompConn struct {
	nc     net.Conn
	bc     *bufConn // nil with --flush-delay 0
	w      io.Writer
	wmu    sync.Mutex
	buf    []byte // frame scratch, under wmu
	frames chan stomp.Frame
	done   chan error // the reader's end
}

func stompDial(cfg *config) (*stompConn, error) {
	nc, err := net.DialTimeout("tcp", cfg.stompAddr, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("stomp dial: %w", err)
	}
	c := &stompConn{nc: nc, w: nc, frames: make(chan stomp.Frame, 16), done: make(chan error, 1)}
	if cfg.flushDelay > 0 && cfg.rate == 0 {
		c.bc = newBufConn(nc, cfg.flushDelay)
		c.w = c.bc
	}
	return c, nil
}

// send writes one frame (batched unless --flush-delay 0).
func (c *stompConn) send(f stomp.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if c.buf, err = stomp.Append(c.buf[:0], f, stomp.V12); err != nil {
		return err
	}
	_, err = c.w.Write(c.buf)
	return err
}

func (c *stompConn) flush() error {
	if c.bc != nil {
		return c.bc.Flush()
	}
	return nil
}

// connect sends CONNECT and waits for CONNECTED, then starts the reader, which calls onFrame
// for every frame after it (on the reader goroutine) until the socket ends.
func (c *stompConn) connect(cfg *config, onFrame func(*stomp.Frame) error) error {
	err := c.send(stomp.Frame{Command: stomp.CmdConnect, Headers: []stomp.Header{
		stomp.H("accept-version", "1.2"), stomp.H("host", "/"), stomp.H("login", cfg.user),
		stomp.H("passcode", cfg.pass), stomp.H("heart-beat", "0,0"),
	}})
	if err == nil {
		err = c.flush()
	}
	if err != nil {
		return fmt.Errorf("stomp connect: %w", err)
	}
	connected := make(chan error, 1)
	first := true
	go func() {
		c.done <- c.read(func(f *stomp.Frame) error {
			if first {
				first = false
				if f.Command != stomp.CmdConnected {
					msg, _ := f.Get("message")
					err := fmt.Errorf("stomp connect: %s %s %s", f.Command, msg, f.Body)
					connected <- err
					return err
				}
				connected <- nil
				return nil
			}
			return onFrame(f)
		})
		select { // the socket ended before CONNECTED
		case connected <- errors.New("stomp connect: connection closed"):
		default:
		}
	}()
	select {
	case err := <-connected:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("stomp connect: no CONNECTED within 30s")
	}
}

// read decodes the server's frames until the socket ends; heart-beats are skipped.
func (c *stompConn) read(onFrame func(*stomp.Frame) error) error {
	d := stomp.Decoder{FromServer: true}
	buf := make([]byte, 0, 64<<10)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
		}
		n, err := c.nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		off := 0
		for off < len(buf) {
			f, used, derr := d.Decode(stomp.V12, buf[off:])
			if derr == stomp.ErrNeedMore {
				break
			}
			if derr != nil {
				return derr
			}
			off += used
			if f.Heartbeat {
				continue
			}
			if ferr := onFrame(&f); ferr != nil {
				return ferr
			}
		}
		buf = buf[:copy(buf, buf[off:])]
		if err != nil {
			return err
		}
	}
}

// disconnect sends DISCONNECT with a receipt and waits (up to timeout) for the reader to see it;
// the broker sends the receipt after the frames before it. Then the socket is closed.
func (c *stompConn) disconnect(receipt chan struct{}, timeout time.Duration) error {
	err := c.send(stomp.Frame{Command: stomp.CmdDisconnect, Headers: []stomp.Header{stomp.H("receipt", "bye")}})
	if err == nil {
		err = c.flush()
	}
	if err == nil {
		select {
		case <-receipt:
		case err = <-c.done:
			c.done <- err
			select {
			case <-receipt: // the reader saw the receipt, then the broker closed the socket
				err = nil
			default:
				if err == nil || errors.Is(err, io.EOF) {
					err = errors.New("connection closed before the DISCONNECT receipt")
				}
			}
		case <-time.After(timeout):
			err = fmt.Errorf("no DISCONNECT receipt within %v", timeout)
		}
	}
	if c.bc != nil {
		c.bc.Close()
	} else {
		c.nc.Close()
	}
	<-c.done
	return err
}

func isReceipt(f *stomp.Frame, id string) bool {
	v, _ := f.Get("receipt-id")
	return f.Command == stomp.CmdReceipt && string(v) == id
}

func frameError(f *stomp.Frame) error {
	msg, _ := f.Get("message")
	return fmt.Errorf("%s: %s %s", f.Command, msg, bytes.TrimSpace(f.Body))
}

func runSTOMP(cfg *config) (*Result, error) {
	prefix := fmt.Sprintf("warren-perf.%d.%d", os.Getpid(), time.Now().UnixNano())
	dests := make([]string, cfg.topics)
	for i := range dests {
		dests[i] = fmt.Sprintf("/topic/%s.%d", prefix, i)
	}
	cnt := &counters{}
	ack := "client"
	if cfg.autoack {
		ack = "auto"
	}

	type consumer struct {
		c       *stompConn
		lat     hist
		receipt chan struct{}
		stop    chan struct{} // closed: acknowledge what is left
		last    atomic.Value  // string: the ack header of the last unacknowledged MESSAGE
	}
	subsPerTopic := make([]int64, cfg.topics)
	var cons []*consumer
	closeCons := func() {
		for _, k := range cons {
			if err := k.c.disconnect(k.receipt, cfg.drainTimeout); err != nil {
				cnt.fail("consumer: %v", err)
			}
		}
	}
	for j := 0; j < cfg.consumers; j++ {
		t := j % cfg.topics
		c, err := stompDial(cfg)
		if err != nil {
			closeCons()
			return nil, fmt.Errorf("consumer %d: %w", j, err)
		}
		k := &consumer{c: c, receipt: make(chan struct{}), stop: make(chan struct{})}
		subscribed := make(chan struct{})
		unacked := 0
		err = c.connect(cfg, func(f *stomp.Frame) error {
			switch {
			case f.Command == stomp.CmdMessage:
				if len(f.Body) >= 8 && cfg.size >= 8 {
					sent := int64(binary.BigEndian.Uint64(f.Body))
					k.lat.record(uint64(max(0, time.Now().UnixNano()-sent)))
				}
				cnt.consumed.Add(1)
				if cfg.autoack {
					return nil
				}
				id, _ := f.Get("ack")
				unacked++
				if unacked >= cfg.ackEvery {
					unacked = 0
					k.last.Store("")
					return c.send(stomp.Frame{Command: stomp.CmdAck, Headers: []stomp.Header{{Name: []byte("id"), Value: id}}})
				}
				k.last.Store(string(id))
			case isReceipt(f, "sub"):
				close(subscribed)
			case isReceipt(f, "bye"):
				close(k.receipt)
			case f.Command == stomp.CmdError:
				err := frameError(f)
				cnt.fail("consumer %d: %v", j, err)
				return err
			}
			return nil
		})
		if err != nil {
			c.nc.Close()
			closeCons()
			return nil, fmt.Errorf("consumer %d: %w", j, err)
		}
		cons = append(cons, k)
		hs := []stomp.Header{stomp.H("id", "s"), stomp.H("destination", dests[t]), stomp.H("ack", ack), stomp.H("receipt", "sub")}
		if !cfg.autoack {
			hs = append(hs, stomp.H("prefetch-count", strconv.Itoa(cfg.prefetch)))
		}
		err = c.send(stomp.Frame{Command: stomp.CmdSubscribe, Headers: hs})
		if err == nil {
			err = c.flush()
		}
		if err != nil {
			closeCons()
			return nil, fmt.Errorf("consumer %d: subscribe: %w", j, err)
		}
		select {
		case <-subscribed:
		case <-time.After(30 * time.Second):
			closeCons()
			return nil, fmt.Errorf("consumer %d: no receipt for SUBSCRIBE %s", j, dests[t])
		}
		subsPerTopic[t]++
	}

	type producer struct {
		c       *stompConn
		receipt chan struct{}
	}
	prods := make([]*producer, cfg.producers)
	var swg sync.WaitGroup
	for i := range prods {
		swg.Go(func() {
			c, err := stompDial(cfg)
			if err != nil {
				cnt.fail("producer %d: %v", i, err)
				return
			}
			p := &producer{c: c, receipt: make(chan struct{})}
			err = c.connect(cfg, func(f *stomp.Frame) error {
				switch {
				case isReceipt(f, "bye"):
					close(p.receipt)
				case f.Command == stomp.CmdError:
					err := frameError(f)
					cnt.fail("producer %d: %v", i, err)
					return err
				}
				return nil
			})
			if err != nil {
				c.nc.Close()
				cnt.fail("producer %d: %v", i, err)
				return
			}
			prods[i] = p
		})
	}
	swg.Wait()

	pubPerTopic := make([]atomic.Int64, cfg.topics)
	ctx, cancel := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	start := time.Now()
	for i, p := range prods {
		if p == nil {
			continue
		}
		pwg.Go(func() {
			t := i % cfg.topics
			hs := []stomp.Header{stomp.H("destination", dests[t]), stomp.H("content-type", "application/octet-stream")}
			publish := func(body []byte) error {
				if err := p.c.send(stomp.Frame{Command: stomp.CmdSend, Headers: hs, Body: body}); err != nil {
					return err
				}
				pubPerTopic[t].Add(1)
				return nil
			}
			publishLoop(ctx, cfg, i, make([]byte, cfg.size), publish, p.c.flush, cnt)
			// The broker answers DISCONNECT's receipt after every SEND before it.
			if err := p.c.disconnect(p.receipt, cfg.drainTimeout+30*time.Second); err != nil {
				cnt.fail("producer %d: %v", i, err)
			}
		})
	}
	producersDone := make(chan struct{})
	if cfg.producers > 0 {
		go func() { pwg.Wait(); close(producersDone) }()
	}
	select {
	case <-time.After(cfg.duration):
	case <-producersDone:
	}
	pub, con := cnt.published.Load(), cnt.consumed.Load()
	secs := time.Since(start).Seconds()
	cancel()
	pwg.Wait()

	var undrained int64
	if cfg.consumers > 0 {
		var total int64
		for t := range pubPerTopic {
			total += pubPerTopic[t].Load() * subsPerTopic[t]
		}
		undrained = drainDeliveries(cfg, cnt, total)
	}
	for _, k := range cons {
		if id, _ := k.last.Load().(string); id != "" {
			if err := k.c.send(stomp.Frame{Command: stomp.CmdAck, Headers: []stomp.Header{stomp.H("id", id)}}); err != nil {
				cnt.fail("consumer: ack: %v", err)
			}
		}
	}
	closeCons()
	for _, k := range cons {
		cnt.lat.merge(&k.lat)
	}

	r := &Result{
		URL: "stomp://" + cfg.stompAddr, Protocol: "stomp", Topics: cfg.topics, Exchange: "/topic/" + prefix,
		Producers: cfg.producers, Consumers: cfg.consumers, Size: cfg.size, Rate: cfg.rate,
		Prefetch: cfg.prefetch, AckEvery: cfg.ackEvery, AutoAck: cfg.autoack,
		Client: "raw STOMP 1.2 (package stomp)", Pacer: map[bool]string{true: cfg.pacer}[cfg.rate > 0],
		FlushDelay: cfg.flushDelay.String(), Seconds: secs, Published: pub, Consumed: con,
		PublishRate: float64(pub) / secs, ConsumeRate: float64(con) / secs,
		PublishedAll: cnt.published.Load(), ConsumedAll: cnt.consumed.Load(), Undrained: undrained, Errors: cnt.errs,
	}
	r.Latency = cnt.lat.latency()
	return r, nil
}
