package integration

// Per-vhost limits: max-connections and max-queues, with RabbitMQ's errors.

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// limitsVhost creates a vhost (guest gets full permissions in it), deleted when the test ends.
func limitsVhost(t testing.TB, b broker) string {
	t.Helper()
	name := amqpName(t, "vhost")
	if b.Srv == nil {
		accessMgmt(t, http.MethodPut, "vhosts/"+url.PathEscape(name), map[string]any{})
		accessMgmt(t, http.MethodPut, "permissions/"+url.PathEscape(name)+"/guest", map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
		t.Cleanup(func() { accessMgmt(t, http.MethodDelete, "vhosts/"+url.PathEscape(name), nil) })
		return name
	}
	if _, err := b.Srv.PutVhost(server.VhostInfo{Name: name}, "guest"); err != nil {
		t.Fatalf("PutVhost: %v", err)
	}
	return name
}

// limitsSet sets a vhost limit.
func limitsSet(t testing.TB, b broker, vhost, name string, value int64) {
	t.Helper()
	if b.Srv == nil {
		accessMgmt(t, http.MethodPut, "vhost-limits/"+url.PathEscape(vhost)+"/"+name, map[string]any{"value": value})
		return
	}
	if err := b.Srv.PutVhostLimit(vhost, name, value); err != nil {
		t.Fatalf("PutVhostLimit: %v", err)
	}
}

// limitsURL is guest's URL for vhost.
func limitsURL(b broker, vhost string) string {
	return "amqp://guest:guest@" + b.Addr + "/" + url.PathEscape(vhost)
}

func TestAMQP091LimitsMaxQueues(t *testing.T) {
	b := startBroker(t)
	vh := limitsVhost(t, b)
	limitsSet(t, b, vh, "max-queues", 1)
	conn, err := amqp.Dial(limitsURL(b, vh))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := amqpChannel(t, conn)
	if _, err := ch.QueueDeclare("q1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// Redeclaring an existing queue is not a new queue.
	if _, err := ch.QueueDeclare("q1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	_, err = ch.QueueDeclare("q2", false, false, false, false, nil)
	amqpWantError(t, err, 406, fmt.Sprintf("PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost '%s' (1) is reached", vh))
	amqpWaitClose(t, closed)

	// A negative value lifts the limit.
	limitsSet(t, b, vh, "max-queues", -1)
	ch = amqpChannel(t, conn)
	if _, err := ch.QueueDeclare("q2", false, false, false, false, nil); err != nil {
		t.Fatalf("after lifting the limit: %v", err)
	}
}

func TestAMQP091LimitsMaxConnections(t *testing.T) {
	b := startBroker(t)
	vh := limitsVhost(t, b)
	limitsSet(t, b, vh, "max-connections", 0)
	_, err := amqp.Dial(limitsURL(b, vh))
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - access to vhost '%s' refused for user 'guest': connection limit (0) is reached", vh))

	limitsSet(t, b, vh, "max-connections", 1)
	conn, err := amqp.Dial(limitsURL(b, vh))
	if err != nil {
		t.Fatalf("first connection under a limit of 1: %v", err)
	}
	defer conn.Close()
	_, err = amqp.Dial(limitsURL(b, vh))
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - access to vhost '%s' refused for user 'guest': connection limit (1) is reached", vh))
	// Other vhosts are not limited.
	amqpDial(t, b)
}
