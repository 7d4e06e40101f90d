package warrentest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/warrentest"
)

// Example starts a broker, publishes a message with amqp091-go and gets it back. In a test, the one
// line url := warrentest.Start(t) does what New and Close do here (see ExampleStart).
func Example() {
	b, err := warrentest.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	conn, err := amqp.Dial(b.AMQPURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		fmt.Println(err)
		return
	}
	q, err := ch.QueueDeclare("greetings", false, false, false, false, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("hello, warren")})
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		m, ok, err := ch.Get(q.Name, true)
		if err != nil {
			fmt.Println(err)
			return
		}
		if ok {
			fmt.Println(string(m.Body))
			return
		}
	}
	// Output: hello, warren
}

// ExampleStart is a test of your own code against a broker: Start returns the AMQP URL and
// stops the broker when the test ends.
func ExampleStart() {
	var t *testing.T // your test's t
	url := warrentest.Start(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// ... run the code under test against conn or url ...
}

// ExampleStartBroker sets a broker up with a user, a vhost, its permissions, a queue from
// definitions and the management API.
func ExampleStartBroker() {
	var t *testing.T // your test's t
	b := warrentest.StartBroker(t,
		warrentest.WithUser("app", "s3cret"),
		warrentest.WithVhost("orders"),
		warrentest.WithPermission("app", "orders", ".*", ".*", ".*"),
		warrentest.WithDefinitions([]byte(`{"queues": [{"name": "incoming", "vhost": "orders", "durable": true}]}`)),
		warrentest.WithManagement(),
	)
	conn, err := amqp.Dial(b.URL("app", "s3cret", "orders")) // amqp://app:s3cret@127.0.0.1:PORT/orders
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = b.HTTPURL() // http://127.0.0.1:PORT, guest/guest: RabbitMQ's /api paths
}
