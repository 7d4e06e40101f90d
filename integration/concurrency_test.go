package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Several publishers with confirms fan out to several queues, each drained by competing consumers
// that ack with prefetch, and some consumers leave midway (their unacked messages are requeued).
// Every queue must end up with every message delivered and acked exactly once, lost=0, and
// nothing left over.
func TestConcurrentPublishConsumeExactlyOnce(t *testing.T) {
	const (
		publishers = 4
		perPub     = 300
		queues     = 3
		total      = publishers * perPub
	)
	b := startBroker(t)
	setup := amqpDial(t, b)
	sch := amqpChannel(t, setup)
	ex := amqpName(t, "fan")
	if err := sch.ExchangeDeclare(ex, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	var qnames []string
	for i := range queues {
		q := amqpName(t, fmt.Sprintf("q%d", i))
		if _, err := sch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		amqpCleanup(t, b, "queue", q)
		if err := sch.QueueBind(q, "", ex, false, nil); err != nil {
			t.Fatal(err)
		}
		qnames = append(qnames, q)
	}

	type seen struct {
		mu     sync.Mutex
		bodies map[string]int
		full   chan struct{} // closed when every message has been acked once
	}
	got := make([]*seen, queues)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	done := make(chan struct{})
	for qi, q := range qnames {
		got[qi] = &seen{bodies: map[string]int{}, full: make(chan struct{})}
		for ci := range 2 {
			conn := amqpDial(t, b)
			ch := amqpChannel(t, conn)
			if err := ch.Qos(10, 0, false); err != nil {
				t.Fatal(err)
			}
			d, err := ch.Consume(q, "", false, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func(s *seen, quitter bool) {
				defer wg.Done()
				n := 0
				for {
					select {
					case m, ok := <-d:
						if !ok {
							return
						}
						n++
						if quitter && n == 50 {
							// Leave with up to 10 unacked: they must be redelivered to the other consumer.
							conn.Close()
							return
						}
						if err := m.Ack(false); err != nil {
							errs <- err
							return
						}
						s.mu.Lock()
						s.bodies[string(m.Body)]++
						if len(s.bodies) == total && s.bodies[string(m.Body)] == 1 {
							close(s.full)
						}
						s.mu.Unlock()
					case <-done:
						return
					}
				}
			}(got[qi], ci == 0)
		}
	}

	var pwg sync.WaitGroup
	for p := range publishers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			conn, err := amqp.Dial(b.URL)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				errs <- err
				return
			}
			if err := ch.Confirm(false); err != nil {
				errs <- err
				return
			}
			confirms := ch.NotifyPublish(make(chan amqp.Confirmation, perPub))
			for i := range perPub {
				if err := ch.Publish(ex, "", false, false, amqp.Publishing{Body: []byte(fmt.Sprintf("p%d-%d", p, i))}); err != nil {
					errs <- err
					return
				}
			}
			for range perPub {
				select {
				case c := <-confirms:
					if !c.Ack {
						errs <- fmt.Errorf("publish %d nacked", c.DeliveryTag)
						return
					}
				case <-time.After(10 * time.Second):
					errs <- fmt.Errorf("publisher %d: confirms missing", p)
					return
				}
			}
		}()
	}
	pwg.Wait()

	deadline := time.After(20 * time.Second)
	for qi, s := range got {
		select {
		case <-s.full:
		case err := <-errs:
			t.Fatal(err)
		case <-deadline:
			s.mu.Lock()
			n := len(s.bodies)
			s.mu.Unlock()
			t.Fatalf("queue %d: %d of %d messages acked", qi, n, total)
		}
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for qi, s := range got {
		for body, n := range s.bodies {
			if n != 1 {
				t.Errorf("queue %d: %s acked %d times", qi, body, n)
			}
		}
		if ready, _ := amqpReady(t, setup, qnames[qi]); ready != 0 {
			t.Errorf("queue %d: %d messages left ready", qi, ready)
		}
	}
}
