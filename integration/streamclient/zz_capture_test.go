package streamclient

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/amqp"
	"github.com/rabbitmq/rabbitmq-stream-go-client/pkg/stream"
)

func get(t *testing.T, path string) any {
	req, _ := http.NewRequest("GET", "http://127.0.0.1:15672"+path, nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v any
	json.Unmarshal(b, &v)
	fmt.Printf("=== %s %d\n%s\n", path, resp.StatusCode, b)
	return v
}

func TestZZCapture(t *testing.T) {
	tg := startStream(t, nil)
	e, err := stream.NewEnvironment(envOptions(tg.streamURI).SetMaxProducersPerClient(1).SetMaxConsumersPerClient(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	name := "capture-stream"
	e.DeclareStream(name, nil)
	defer e.DeleteStream(name)
	p, err := e.NewProducer(name, stream.NewProducerOptions().SetProducerName("pref"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Send(amqp.NewMessage([]byte("x")))
	c, err := e.NewConsumer(name, func(stream.ConsumerContext, *amqp.Message) {}, stream.NewConsumerOptions().SetOffset(stream.OffsetSpecification{}.First()).SetConsumerName("cref"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(12 * time.Second)
	conns := get(t, "/api/stream/connections").([]any)
	get(t, "/api/stream/connections/%2F")
	get(t, "/api/stream/publishers")
	get(t, "/api/stream/publishers/%2F")
	get(t, "/api/stream/consumers")
	get(t, "/api/stream/consumers/%2F")
	for _, c := range conns {
		n := c.(map[string]any)["name"].(string)
		get(t, "/api/stream/connections/%2F/"+url.PathEscape(n))
		get(t, "/api/stream/connections/%2F/"+url.PathEscape(n)+"/publishers")
		get(t, "/api/stream/connections/%2F/"+url.PathEscape(n)+"/consumers")
	}
	get(t, "/api/connections")
}
