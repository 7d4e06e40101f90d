package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqp"
)

// The raw client (--client raw) is a minimal AMQP 0-9-1 client built on the project's own codec,
// for measuring latency. amqp091-go hands every delivery through three goroutines (its reader,
// the consumer's buffer, the caller) and allocates for each; on a small machine that shares its
// cores with the broker, those wake-ups are a large part of an end-to-end latency figure. The raw
// client's consumer reads and parses deliveries on the goroutine that records their latency, and
// its producer writes each message with one write call from the goroutine that paces it. It only
// does what a run needs: PLAIN login, one channel, basic.qos/consume/ack and basic.publish
// (publisher confirms are not supported). Queues and exchanges are still declared through
// amqp091-go, so both clients run against the same topology.

// rawChannel is the one channel a raw connection opens.
const rawChannel = 1

type rawConn struct {
	nc       net.Conn
	fr       *amqp.FrameReader
	frameMax uint32
	wbuf     []byte
}

// rawDial opens a connection and its channel. heartbeat 0 turns heartbeats off (a run is short and
// both sides are busy); otherwise the server's proposal is accepted and answered.
func rawDial(url, name string) (*rawConn, error) {
	u, err := amqp091.ParseURI(url)
	if err != nil {
		return nil, fmt.Errorf("parsing --url: %w", err)
	}
	if u.Scheme != "amqp" {
		return nil, fmt.Errorf("--client raw speaks plain amqp:// only, not %s://", u.Scheme)
	}
	nc, err := net.DialTimeout("tcp", net.JoinHostPort(u.Host, strconv.Itoa(u.Port)), 30*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rawConn{nc: nc, fr: amqp.NewFrameReader(bufio.NewReaderSize(nc, 64<<10)), frameMax: amqp.FrameMinSize}
	if err := c.handshake(u, name); err != nil {
		nc.Close()
		return nil, fmt.Errorf("raw client handshake: %w", err)
	}
	return c, nil
}

func (c *rawConn) handshake(u amqp091.URI, name string) error {
	if err := c.nc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	if _, err := c.nc.Write(amqp.ProtocolHeader[:]); err != nil {
		return err
	}
	if _, err := expect[*amqp.ConnectionStart](c, 0); err != nil {
		return err
	}
	err := c.send(0, &amqp.ConnectionStartOk{
		ClientProperties: amqp.Table{"product": "warren-perf (raw client)", "connection_name": "warren-perf " + name},
		Mechanism:        "PLAIN",
		Response:         "\x00" + u.Username + "\x00" + u.Password,
		Locale:           "en_US",
	})
	if err != nil {
		return err
	}
	tune, err := expect[*amqp.ConnectionTune](c, 0)
	if err != nil {
		return err
	}
	c.frameMax = tune.FrameMax
	if c.frameMax == 0 || c.frameMax > 128<<10 {
		c.frameMax = 128 << 10
	}
	c.fr.SetFrameMax(c.frameMax)
	err = c.send(0, &amqp.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: c.frameMax})
	if err == nil {
		err = c.send(0, &amqp.ConnectionOpen{VirtualHost: u.Vhost})
	}
	if err != nil {
		return err
	}
	if _, err := expect[*amqp.ConnectionOpenOk](c, 0); err != nil {
		return err
	}
	if err := c.send(rawChannel, &amqp.ChannelOpen{}); err != nil {
		return err
	}
	if _, err := expect[*amqp.ChannelOpenOk](c, rawChannel); err != nil {
		return err
	}
	return c.nc.SetDeadline(time.Time{})
}

// send writes one method frame.
func (c *rawConn) send(ch uint16, m amqp.Method) error {
	b, err := amqp.AppendMethodFrame(c.wbuf[:0], ch, m)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", m.Name(), err)
	}
	c.wbuf = b
	_, err = c.nc.Write(b)
	return err
}

// expect reads the next method frame (skipping heartbeats) and requires it to be an M on channel
// ch; a connection.close or channel.close becomes an error with the server's reply.
func expect[M amqp.Method](c *rawConn, ch uint16) (M, error) {
	var zero M
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return zero, err
		}
		if f.Type == amqp.FrameHeartbeat {
			continue
		}
		if f.Type != amqp.FrameMethod {
			return zero, fmt.Errorf("unexpected frame type %d on channel %d", f.Type, f.Channel)
		}
		m, err := amqp.DecodeMethod(f.Payload)
		if err != nil {
			return zero, err
		}
		if err := closeError(m); err != nil {
			return zero, err
		}
		if got, ok := m.(M); ok && f.Channel == ch {
			return got, nil
		}
		return zero, fmt.Errorf("got %s on channel %d, want %s", m.Name(), f.Channel, zero.Name())
	}
}

// decodeEnding decodes a method the server sent outside a publish or delivery: net.ErrClosed for
// connection.close-ok (our close was answered), the close's error for a close, else the method.
func decodeEnding(payload []byte) (amqp.Method, error) {
	m, err := amqp.DecodeMethod(payload)
	if err != nil {
		return nil, err
	}
	if _, ok := m.(*amqp.ConnectionCloseOk); ok {
		return nil, net.ErrClosed
	}
	return m, closeError(m)
}

// closeError turns a server's close into an error carrying its reply.
func closeError(m amqp.Method) error {
	switch m := m.(type) {
	case *amqp.ConnectionClose:
		return fmt.Errorf("connection closed by the server: %d %s", m.ReplyCode, m.ReplyText)
	case *amqp.ChannelClose:
		return fmt.Errorf("channel closed by the server: %d %s", m.ReplyCode, m.ReplyText)
	}
	return nil
}

// sendClose starts a polite close: the server answers connection.close-ok and closes the socket.
func (c *rawConn) sendClose() error {
	return c.send(0, &amqp.ConnectionClose{ReplyCode: amqp.ReplySuccess, ReplyText: "done"})
}

// Close closes politely, reading (and dropping) what is still in flight until connection.close-ok,
// for up to two seconds. Only for a connection with no other reader.
func (c *rawConn) Close() error {
	if err := c.sendClose(); err == nil {
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				break
			}
			if f.Type == amqp.FrameMethod && f.Channel == 0 {
				if m, err := amqp.DecodeMethod(f.Payload); err == nil {
					if _, ok := m.(*amqp.ConnectionCloseOk); ok {
						break
					}
				}
			}
		}
	}
	return c.nc.Close()
}

// rawPublisher encodes messages into one buffer; flush writes it with one call. The method and
// header frames are encoded once (every message of a run has the same size and properties).
type rawPublisher struct {
	c      *rawConn
	prefix []byte // basic.publish and the content header
	out    []byte
}

func newRawPublisher(c *rawConn, exchange, key string, size int, persistent bool) (*rawPublisher, error) {
	var props amqp.Properties
	if persistent {
		props.DeliveryMode = 2
	}
	rawProps, err := props.Append(nil)
	if err != nil {
		return nil, err
	}
	b, err := amqp.AppendMethodFrame(nil, rawChannel, &amqp.BasicPublish{Exchange: exchange, RoutingKey: key})
	if err != nil {
		return nil, err
	}
	return &rawPublisher{c: c, prefix: amqp.AppendContentHeaderFrame(b, rawChannel, amqp.ClassBasic, uint64(size), rawProps)}, nil
}

// add queues one message (body is copied); a full buffer is written at once.
func (p *rawPublisher) add(body []byte) error {
	p.out = append(p.out, p.prefix...)
	p.out = amqp.AppendBodyFrames(p.out, rawChannel, body, p.c.frameMax)
	if len(p.out) >= 64<<10 {
		return p.flush()
	}
	return nil
}

func (p *rawPublisher) flush() error {
	if len(p.out) == 0 {
		return nil
	}
	_, err := p.c.nc.Write(p.out)
	p.out = p.out[:0]
	return err
}

// watch reads what the server sends a publishing connection (nothing, unless it closes the
// channel or the connection) and returns the reason the connection ended.
func (c *rawConn) watch() error {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		if f.Type != amqp.FrameMethod {
			continue
		}
		if _, err := decodeEnding(f.Payload); err != nil {
			return err
		}
	}
}

// rawDelivery is what the consumer loop needs of a basic.deliver.
type rawDelivery struct {
	tag   uint64
	stamp int64 // the body's first 8 bytes (0 if shorter)
}

// consumeLoop reads deliveries until the connection ends, calling fn for each once its body is
// complete. Only basic.deliver and its content are expected; anything else ends the loop.
func (c *rawConn) consumeLoop(fn func(rawDelivery) error) error {
	var (
		d         rawDelivery
		want, got uint64
		inContent bool
	)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f.Type {
		case amqp.FrameHeartbeat:
			continue
		case amqp.FrameMethod:
			if inContent {
				return errors.New("method frame inside a delivery's content")
			}
			tag, ok := deliveryTag(f.Payload)
			if !ok {
				m, err := decodeEnding(f.Payload)
				if err != nil {
					return err
				}
				return fmt.Errorf("unexpected %s while consuming", m.Name())
			}
			d, inContent = rawDelivery{tag: tag}, true
		case amqp.FrameHeader:
			_, size, _, err := amqp.DecodeContentHeader(f.Payload)
			if err != nil {
				return err
			}
			want, got = size, 0
		case amqp.FrameBody:
			if got == 0 && len(f.Payload) >= 8 {
				d.stamp = int64(binary.BigEndian.Uint64(f.Payload))
			}
			got += uint64(len(f.Payload))
		}
		if inContent && f.Type != amqp.FrameMethod && got == want {
			inContent = false
			if err := fn(d); err != nil {
				return err
			}
		}
	}
}

// deliveryTag parses a basic.deliver method payload's delivery tag without allocating; ok is
// false for any other method.
func deliveryTag(p []byte) (tag uint64, ok bool) {
	// class 60, method 60, consumer-tag (shortstr), delivery-tag (longlong), ...
	if len(p) < 5 || binary.BigEndian.Uint16(p) != amqp.ClassBasic || binary.BigEndian.Uint16(p[2:]) != 60 {
		return 0, false
	}
	n := int(p[4])
	if len(p) < 5+n+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(p[5+n:]), true
}

func (c *rawConn) ack(tag uint64, multiple bool) error {
	return c.send(rawChannel, &amqp.BasicAck{DeliveryTag: tag, Multiple: multiple})
}

// consumeRaw is consume for the raw client: deliveries are read, timed and acknowledged on this
// goroutine.
func consumeRaw(cfg *config, id int, queue string, cnt *counters, ready *sync.WaitGroup, stop <-chan struct{}) {
	c, err := rawDial(cfg.url, fmt.Sprintf("consumer-%d", id))
	if err == nil && !cfg.autoack {
		if err = c.send(rawChannel, &amqp.BasicQos{PrefetchCount: uint16(cfg.prefetch)}); err == nil {
			_, err = expect[*amqp.BasicQosOk](c, rawChannel)
		}
	}
	if err == nil {
		if err = c.send(rawChannel, &amqp.BasicConsume{Queue: queue, NoAck: cfg.autoack}); err == nil {
			_, err = expect[*amqp.BasicConsumeOk](c, rawChannel)
		}
	}
	ready.Done()
	if err != nil {
		if c != nil {
			c.nc.Close()
		}
		cnt.fail("consumer %d: setup: %v", id, err)
		return
	}
	// At stop, an expired read deadline ends the loop below; this goroutine keeps the socket.
	loopDone, stopperDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopperDone)
		select {
		case <-stop:
			_ = c.nc.SetReadDeadline(time.Now())
		case <-loopDone:
		}
	}()
	var lat hist
	var unacked int
	var last uint64
	err = c.consumeLoop(func(d rawDelivery) error {
		if d.stamp != 0 && cfg.size >= 8 {
			lat.record(uint64(max(0, time.Now().UnixNano()-d.stamp)))
		}
		cnt.consumed.Add(1)
		if cfg.autoack {
			return nil
		}
		unacked++
		last = d.tag
		if unacked >= cfg.ackEvery {
			unacked = 0
			return c.ack(last, true)
		}
		return nil
	})
	close(loopDone)
	<-stopperDone
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		cnt.fail("consumer %d: %v", id, err)
	}
	cnt.errMu.Lock()
	cnt.lat.merge(&lat)
	cnt.errMu.Unlock()
	_ = c.nc.SetReadDeadline(time.Time{})
	if unacked > 0 {
		_ = c.ack(last, true)
	}
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		cnt.fail("consumer %d: close: %v", id, err)
	}
}
