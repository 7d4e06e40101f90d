package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// benchStore opens the store a benchmark broker runs on: Pebble in a temporary directory on the
// real disk, so that the fsyncs are real.
func benchStore(b *testing.B) storage.Store {
	s, err := storage.OpenPebble(b.TempDir(), storage.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkPersistentConfirm publishes persistent messages to a durable queue with publisher
// confirms (up to 1000 outstanding per publisher) while one consumer acks them (prefetch 1000),
// as issue 6's persistent scenario. It reports msgs/s and the fsyncs behind them: many
// publishers share one fsync.
//
//	go test -run '^$' -bench PersistentConfirm -benchtime 20000x ./integration
func BenchmarkPersistentConfirm(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, pubs := range []int{1, 10} {
			b.Run(fmt.Sprintf("size=%d/publishers=%d", size, pubs), func(b *testing.B) {
				benchPersistent(b, size, pubs)
			})
		}
	}
}

func benchPersistent(b *testing.B, size, pubs int) {
	if externalURL != "" {
		b.Skip("needs the in-process broker's store counters")
	}
	store := benchStore(b)
	b.Cleanup(func() { store.Close() }) // after the broker's shutdown (cleanups run last first)
	br := startBroker(b, func(o *server.Options) { o.Store = store })
	setup, err := amqp.Dial(br.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer setup.Close()
	sch, err := setup.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sch.QueueDeclare("bench.persist", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}

	// Consumer.
	cconn, err := amqp.Dial(br.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer cconn.Close()
	cch, err := cconn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	cch.Qos(1000, 0, false)
	ds, err := cch.Consume("bench.persist", "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for i := 0; i < b.N; i++ {
			d, ok := <-ds
			if !ok {
				return
			}
			d.Ack(false)
		}
	}()

	body := make([]byte, size)
	per := (b.N + pubs - 1) / pubs
	start := br.Srv.StoreStats()
	b.SetBytes(int64(size))
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := 0; p < pubs; p++ {
		n := min(per, b.N-p*per)
		if n <= 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- publishConfirmed(br.URL, body, n, 1000)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	<-consumed
	elapsed := time.Since(t0)
	b.StopTimer()
	end := br.Srv.StoreStats()
	syncs := float64(end.SyncedCommits - start.SyncedCommits)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(syncs/elapsed.Seconds(), "fsyncs/s")
	if syncs > 0 {
		b.ReportMetric(float64(b.N)/syncs, "msgs/fsync")
	}
}

// publishConfirmed publishes n persistent messages with at most window unconfirmed and waits for
// every confirm.
func publishConfirmed(url string, body []byte, n, window int) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, window+1))
	outstanding := 0
	wait := func() error {
		cf, ok := <-confirms
		if !ok {
			return fmt.Errorf("channel closed")
		}
		if !cf.Ack {
			return fmt.Errorf("publish %d nacked", cf.DeliveryTag)
		}
		outstanding--
		return nil
	}
	for i := 0; i < n; i++ {
		if err := ch.Publish("", "bench.persist", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}); err != nil {
			return err
		}
		outstanding++
		for outstanding >= window {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	for outstanding > 0 {
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}
