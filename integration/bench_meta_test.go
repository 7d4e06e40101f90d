package integration

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/storage"
)

// slowSyncDelay is the simulated fsync latency of BenchmarkPublishDuringMetadataChurn's store: a
// slow disk (a cloud volume or a busy spinning disk).
const slowSyncDelay = 8 * time.Millisecond

// loopPeriod paces BenchmarkPublishDuringMetadataChurn's metadata loop: about the time one synced
// write takes on the slow store.
const loopPeriod = 10 * time.Millisecond

// slowSyncStore opens Pebble in memory, every fsync of its write-ahead log taking slowSyncDelay.
// The delay is the simulated device's, injected by Pebble's errorfs (noReuseFS keeps recycled
// logs wrapped, see persist_fault_test.go).
func slowSyncStore(b *testing.B) storage.Store {
	slow := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			time.Sleep(slowSyncDelay)
		}
		return nil
	})
	s, err := storage.OpenPebble("/data", storage.PebbleOptions{FS: noReuseFS{errorfs.Wrap(vfs.NewMem(), slow)}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkPublishDuringMetadataChurn measures the latency of a publish (publish to delivery,
// one message in flight, transient) on one connection while another connection of the same vhost
// changes durable topology in a loop, on a store whose fsync takes slowSyncDelay. Loops:
//
//   - none: nothing else runs (the baseline);
//   - redeclare: the durable exchange, durable queue and the binding between them declared again
//     with the same arguments, as workers re-declaring their topology on reconnect do (nothing
//     changes, so nothing needs writing);
//   - declare-delete: a durable queue declared, bound and deleted (each step is a store write).
//
// The loop starts an iteration at most every loopPeriod, so that it runs at the same rate whether
// or not its steps write (an unpaced loop of writeless steps would only measure the competition
// for the CPU). Publishes route in the vhost whose metadata changes; they should not wait for its
// fsyncs. It
// reports the publish latency's p50, p99, p99.9 and maximum (ns/op is the mean) and the loop's rate.
//
//	go test -run '^$' -bench PublishDuringMetadataChurn -benchtime 5000x ./integration
func BenchmarkPublishDuringMetadataChurn(b *testing.B) {
	for _, loop := range []string{"none", "redeclare", "declare-delete"} {
		b.Run("loop="+loop, func(b *testing.B) { benchMetaChurn(b, loop) })
	}
}

func benchMetaChurn(b *testing.B, loop string) {
	if externalURL != "" {
		b.Skip("needs the in-process broker's store")
	}
	store := slowSyncStore(b)
	b.Cleanup(func() { store.Close() }) // after the broker's shutdown (cleanups run last first)
	br := startBroker(b, func(o *server.Options) { o.Store = store })

	// The topology the loop re-declares exists before the clock starts.
	mconn, err := amqp.Dial(br.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer mconn.Close()
	mch, err := mconn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	const ex, dq, tmp = "bench.meta.x", "bench.meta.q", "bench.meta.tmp"
	redeclare := func() error {
		if err := mch.ExchangeDeclare(ex, "direct", true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := mch.QueueDeclare(dq, true, false, false, false, amqp.Table{"x-max-length": int32(10)}); err != nil {
			return err
		}
		return mch.QueueBind(dq, "k", ex, false, nil)
	}
	declareDelete := func() error {
		if _, err := mch.QueueDeclare(tmp, true, false, false, false, nil); err != nil {
			return err
		}
		if err := mch.QueueBind(tmp, "k", ex, false, nil); err != nil {
			return err
		}
		_, err := mch.QueueDelete(tmp, false, false, false)
		return err
	}
	if err := redeclare(); err != nil {
		b.Fatal(err)
	}

	// The publisher: its own transient queue, consumed on the same channel without acks.
	pconn, err := amqp.Dial(br.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer pconn.Close()
	pch, err := pconn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	pq, err := pch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	ds, err := pch.Consume(pq.Name, "", true, true, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ops atomic.Int64
	loopErr := make(chan error, 1)
	if loop != "none" {
		step := redeclare
		if loop == "declare-delete" {
			step = declareDelete
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(loopPeriod)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := step(); err != nil {
					loopErr <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	stop := func() {
		cancel()
		wg.Wait()
	}
	defer stop()

	lat := make([]time.Duration, b.N)
	body := []byte("latency")
	b.ResetTimer()
	t0 := time.Now()
	for i := range b.N {
		start := time.Now()
		if err := pch.Publish("", pq.Name, false, false, amqp.Publishing{Body: body}); err != nil {
			b.Fatal(err)
		}
		select {
		case _, ok := <-ds:
			if !ok {
				b.Fatal("consumer closed")
			}
		case err := <-loopErr:
			b.Fatalf("metadata loop: %v", err)
		}
		lat[i] = time.Since(start)
	}
	elapsed := time.Since(t0)
	b.StopTimer()
	stop()
	select {
	case err := <-loopErr:
		b.Fatalf("metadata loop: %v", err)
	default:
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-us")
	b.ReportMetric(q(0.99), "p99-us")
	b.ReportMetric(q(0.999), "p99.9-us")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-us")
	b.ReportMetric(float64(ops.Load())/elapsed.Seconds(), "loops/s")
}
