// Command goclient-capture runs the real rabbitmq-stream-go-client (v1.8.3)
// against a fake server built on streamproto and writes every frame the
// client sent to the file named by its argument:
//
//	cd streamproto/testdata/goclient-capture && go run . ../goclient-1.8.3.bin
//
// The client completing its handshake, getting its 3 publish confirms and
// reading back its stored offset shows it accepts the frames streamproto
// encodes; TestGoClientCapture decodes what it sent.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"
	sp "github.com/warrenmq/warren/streamproto"
)

var (
	mu       sync.Mutex
	recorded []byte
	port     int
	stored   uint64
)

func serve(c net.Conn) {
	defer c.Close()
	var buf []byte
	rb := make([]byte, 65536)
	send := func(cmd sp.Command) {
		b, err := sp.Append(nil, cmd)
		if err != nil {
			panic(err)
		}
		c.Write(b)
	}
	for {
		n, err := c.Read(rb)
		if err != nil {
			return
		}
		buf = append(buf, rb[:n]...)
		for {
			f, n, err := sp.ReadFrame(buf, 0)
			if err == sp.ErrNeedMore {
				break
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "readframe:", err)
				return
			}
			mu.Lock()
			recorded = append(recorded, buf[:n]...)
			mu.Unlock()
			cmd, derr := sp.Decode(f)
			buf = buf[n:]
			if derr != nil {
				fmt.Fprintf(os.Stderr, "decode key %#x v%d: %v\n", f.Key, f.Version, derr)
				continue
			}
			fmt.Fprintf(os.Stderr, "client: %T %+v\n", cmd, cmd)
			switch m := cmd.(type) {
			case *sp.PeerProperties:
				send(&sp.PeerPropertiesResponse{CorrelationID: m.CorrelationID, Code: sp.CodeOK, Properties: []sp.KV{{"product", "Warren"}}})
			case *sp.SaslHandshake:
				send(&sp.SaslHandshakeResponse{CorrelationID: m.CorrelationID, Code: sp.CodeOK, Mechanisms: []string{"PLAIN"}})
			case *sp.SaslAuthenticate:
				send(&sp.SaslAuthenticateResponse{CorrelationID: m.CorrelationID, Code: sp.CodeOK})
				send(&sp.Tune{FrameMax: 1048576, Heartbeat: 60})
			case *sp.Open:
				send(&sp.OpenResponse{CorrelationID: m.CorrelationID, Code: sp.CodeOK, Properties: []sp.KV{{"advertised_host", "127.0.0.1"}, {"advertised_port", strconv.Itoa(port)}}})
			case *sp.Create:
				send(&sp.Response{For: sp.KeyCreate, CorrelationID: m.CorrelationID, Code: sp.CodeOK})
			case *sp.Delete:
				send(&sp.Response{For: sp.KeyDelete, CorrelationID: m.CorrelationID, Code: sp.CodeOK})
			case *sp.MetadataQuery:
				md := &sp.Metadata{CorrelationID: m.CorrelationID, Brokers: []sp.Broker{{0, "127.0.0.1", uint32(port)}}}
				for _, s := range m.Streams {
					md.Streams = append(md.Streams, sp.StreamMetadata{Stream: s, Code: sp.CodeOK, Leader: 0})
				}
				send(md)
			case *sp.DeclarePublisher:
				send(&sp.Response{For: sp.KeyDeclarePublisher, CorrelationID: m.CorrelationID, Code: sp.CodeOK})
			case *sp.Publish:
				pc := &sp.PublishConfirm{PublisherID: m.PublisherID}
				for _, msg := range m.Messages {
					pc.PublishingIDs = append(pc.PublishingIDs, msg.PublishingID)
				}
				send(pc)
			case *sp.QueryPublisherSequence:
				send(&sp.QueryPublisherSequenceResponse{CorrelationID: m.CorrelationID, Code: sp.CodeOK, Sequence: 0})
			case *sp.DeletePublisher:
				send(&sp.Response{For: sp.KeyDeletePublisher, CorrelationID: m.CorrelationID, Code: sp.CodeOK})
			case *sp.Subscribe:
				send(&sp.Response{For: sp.KeySubscribe, CorrelationID: m.CorrelationID, Code: sp.CodeOK})
			case *sp.Unsubscribe:
				send(&sp.Response{For: sp.KeyUnsubscribe, CorrelationID: m.CorrelationID, Code: sp.CodeOK})
			case *sp.StoreOffset:
				mu.Lock()
				stored = m.Offset
				mu.Unlock()
			case *sp.QueryOffset:
				mu.Lock()
				o := stored
				mu.Unlock()
				send(&sp.QueryOffsetResponse{CorrelationID: m.CorrelationID, Code: sp.CodeOK, Offset: o})
			case *sp.Close:
				send(&sp.Response{For: sp.KeyClose, CorrelationID: m.CorrelationID, Code: sp.CodeOK})
				return
			}
		}
	}
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	env, err := stream.NewEnvironment(stream.NewEnvironmentOptions().SetHost("127.0.0.1").SetPort(port).SetUser("guest").SetPassword("guest"))
	if err != nil {
		panic(err)
	}
	if err := env.DeclareStream("s", &stream.StreamOptions{MaxLengthBytes: stream.ByteCapacity{}.MB(10)}); err != nil {
		panic(err)
	}
	p, err := env.NewProducer("s", stream.NewProducerOptions().SetProducerName("producer-1"))
	if err != nil {
		panic(err)
	}
	ch := p.NotifyPublishConfirmation()
	for i := 0; i < 3; i++ {
		if err := p.Send(amqp.NewMessage([]byte(fmt.Sprintf("hello %d", i)))); err != nil {
			panic(err)
		}
	}
	got := 0
	timeout := time.After(10 * time.Second)
	for got < 3 {
		select {
		case cs := <-ch:
			for _, c := range cs {
				if c.IsConfirmed() {
					got++
				}
			}
		case <-timeout:
			panic(fmt.Sprintf("only %d confirms", got))
		}
	}
	fmt.Fprintln(os.Stderr, "confirmed", got)
	if err := p.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "producer close:", err)
	}
	cons, err := env.NewConsumer("s", func(stream.ConsumerContext, *amqp.Message) {},
		stream.NewConsumerOptions().SetConsumerName("c1").SetManualCommit().SetOffset(stream.OffsetSpecification{}.Offset(7)))
	if err != nil {
		panic(err)
	}
	if err := cons.StoreCustomOffset(42); err != nil {
		panic(err)
	}
	var q int64
	for i := 0; i < 100 && q != 42; i++ { // StoreOffset has no response: poll the query
		if q, err = cons.QueryOffset(); err != nil {
			panic(err)
		}
	}
	fmt.Fprintln(os.Stderr, "queried offset", q)
	if q != 42 {
		panic("offset not stored")
	}
	if err := cons.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "consumer close:", err)
	}
	if err := env.DeleteStream("s"); err != nil {
		panic(err)
	}
	env.Close()
	time.Sleep(200 * time.Millisecond)
	ln.Close()
	mu.Lock()
	defer mu.Unlock()
	if err := os.WriteFile(os.Args[1], recorded, 0o644); err != nil {
		panic(err)
	}
}
