package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/mqtt"
)

// BenchmarkMQTTPubSub publishes b.N 16-byte messages on one MQTT 3.1.1 connection to a topic that
// one subscriber on another connection receives: publisher QoS 0 (pipelined) or QoS 1 (a window of
// 100 unacknowledged, PUBACK after the queue has it), subscriber at the same QoS (PUBACK each). With
// WARREN_TEST_URL set it runs against that broker's MQTT listener (RabbitMQ's plugin on 1883), so
// both are measured with the same client.
//
//	go test -run '^$' -bench MQTTPubSub -benchtime 20000x ./integration
func BenchmarkMQTTPubSub(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("qos=%d", qos), func(b *testing.B) {
			br := startMQTTBroker(b)
			topic := fmt.Sprintf("bench/%d/%d", qos, time.Now().UnixNano())
			sub := dialRaw(b, br.MQTT)
			sub.connect(&mqtt.Connect{ClientID: fmt.Sprintf("bench-sub-%d", qos), CleanStart: true, KeepAlive: 60})
			sub.subscribe(1, topic, qos)
			pub := dialRaw(b, br.MQTT)
			pub.connect(&mqtt.Connect{ClientID: fmt.Sprintf("bench-pub-%d", qos), CleanStart: true, KeepAlive: 60})

			received := make(chan error, 1)
			go func() { received <- drainPublishes(sub, b.N, qos) }()
			acks := make(chan error, 1)
			window := make(chan struct{}, 100)
			if qos == 1 {
				go func() { acks <- countAcks(pub, b.N, window) }()
			}
			payload := make([]byte, 16)
			var buf []byte
			b.ResetTimer()
			for i := range b.N {
				p := mqtt.Publish{QoS: qos, Topic: topic, Payload: payload}
				if qos == 1 {
					window <- struct{}{}
					p.PacketID = uint16(i%65535 + 1)
				}
				buf, _ = mqtt.AppendPublish(buf[:0], &p, mqtt.V311)
				if _, err := pub.nc.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if qos == 1 {
				if err := <-acks; err != nil {
					b.Fatal(err)
				}
			}
			if err := <-received; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
		})
	}
}

// drainPublishes reads n PUBLISH packets from r, acknowledging them at QoS 1.
func drainPublishes(r *rawMQTT, n int, qos byte) error {
	var ack []byte
	for got := 0; got < n; {
		p, err := r.read(30 * time.Second)
		if err != nil {
			return fmt.Errorf("after %d of %d deliveries: %w", got, n, err)
		}
		pub, ok := p.(*mqtt.Publish)
		if !ok {
			continue
		}
		got++
		if qos == 1 {
			ack, _ = mqtt.Append(ack[:0], &mqtt.PubAck{PacketID: pub.PacketID}, mqtt.V311)
			if _, err := r.nc.Write(ack); err != nil {
				return err
			}
		}
	}
	return nil
}

// countAcks reads n PUBACKs from r, freeing a window slot for each.
func countAcks(r *rawMQTT, n int, window chan struct{}) error {
	for got := 0; got < n; {
		p, err := r.read(30 * time.Second)
		if err != nil {
			return fmt.Errorf("after %d of %d PUBACKs: %w", got, n, err)
		}
		if p.Type() == mqtt.PUBACK {
			got++
			<-window
		}
	}
	return nil
}
