package integration

// Per-user limits (max-connections, max-channels), enforced as RabbitMQ 3.10.8 enforces them: the
// same reply codes and texts (WARREN_TEST_URL runs these against RabbitMQ itself).

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
)

// userLimitSet sets a user limit.
func userLimitSet(t testing.TB, b broker, user, name string, value int64) {
	t.Helper()
	if b.Srv == nil {
		accessMgmt(t, http.MethodPut, "user-limits/"+url.PathEscape(user)+"/"+name, map[string]any{"value": value})
		return
	}
	if err := b.Srv.PutUserLimit(user, name, value); err != nil {
		t.Fatalf("PutUserLimit: %v", err)
	}
}

// userLimitsURL is user's URL (password pw, as accessUser sets it) for vhost.
func userLimitsURL(b broker, user, vhost string) string {
	return "amqp://" + url.PathEscape(user) + ":pw@" + b.Addr + "/" + url.PathEscape(vhost)
}

func TestAMQP091UserLimitsMaxConnections(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b)
	accessPermit(t, b, user, ".*", ".*", ".*")
	userLimitSet(t, b, user, "max-connections", 0)
	_, err := amqp.Dial(userLimitsURL(b, user, "/"))
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - connection refused for user '%s': user connection limit (0) is reached", user))

	userLimitSet(t, b, user, "max-connections", 1)
	first, err := amqp.Dial(userLimitsURL(b, user, "/"))
	if err != nil {
		t.Fatalf("first connection under a limit of 1: %v", err)
	}
	_, err = amqp.Dial(userLimitsURL(b, user, "/"))
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - connection refused for user '%s': user connection limit (1) is reached", user))
	// Other users are not limited.
	amqpDial(t, b)

	// Once the first connection is closed, the user may connect again (RabbitMQ's count of a
	// user's connections follows closes shortly after).
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	var again *amqp.Connection
	wait.For(t, amqpTimeout, "a connection after the first closed", func() bool {
		again, err = amqp.Dial(userLimitsURL(b, user, "/"))
		return err == nil
	})
	again.Close()

	// A negative value lifts the limit.
	userLimitSet(t, b, user, "max-connections", -1)
	for i := 0; i < 3; i++ {
		c, err := amqp.Dial(userLimitsURL(b, user, "/"))
		if err != nil {
			t.Fatalf("connection %d without a limit: %v", i, err)
		}
		defer c.Close()
	}
}

// The vhost's connection limit is checked first, then the user's, then the user's access to the
// vhost: the refusal names the first one that fails.
func TestAMQP091UserLimitsOrder(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b)
	vh := limitsVhost(t, b) // user has no permission in it
	userLimitSet(t, b, user, "max-connections", 0)
	_, err := amqp.Dial(userLimitsURL(b, user, vh))
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - connection refused for user '%s': user connection limit (0) is reached", user))
	limitsSet(t, b, vh, "max-connections", 0)
	_, err = amqp.Dial(userLimitsURL(b, user, vh))
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - access to vhost '%s' refused for user '%s': connection limit (0) is reached", vh, user))
	_, err = amqp.Dial(userLimitsURL(b, user, "no-such-vhost"))
	amqpWantError(t, err, 530, "NOT_ALLOWED - vhost no-such-vhost not found")
}

// max-channels counts the user's channels over all its connections; past it channel.open closes
// the connection with 530.
func TestAMQP091UserLimitsMaxChannels(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b)
	accessPermit(t, b, user, ".*", ".*", ".*")
	userLimitSet(t, b, user, "max-channels", 2)
	dial := func() *amqp.Connection {
		t.Helper()
		c, err := amqp.Dial(userLimitsURL(b, user, "/"))
		if err != nil {
			t.Fatalf("dial as %s: %v", user, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	c1, c2 := dial(), dial()
	ch1 := amqpChannel(t, c1)
	amqpChannel(t, c2)
	closed := c2.NotifyClose(make(chan *amqp.Error, 1))
	_, err := c2.Channel()
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - number of channels opened for user '%s' has reached the maximum allowed user limit of (2)", user))
	if e := amqpWaitClose(t, closed); e.Code != 530 {
		t.Fatalf("connection closed with %d %s, want 530", e.Code, e.Reason)
	}
	// c2's channel went with it, and a closed channel no longer counts.
	if err := ch1.Close(); err != nil {
		t.Fatal(err)
	}
	amqpChannel(t, c1)
	amqpChannel(t, c1)
	// Other users are not limited.
	guest := amqpDial(t, b)
	for i := 0; i < 3; i++ {
		amqpChannel(t, guest)
	}

	userLimitSet(t, b, user, "max-channels", 0)
	c3 := dial()
	_, err = c3.Channel()
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - number of channels opened for user '%s' has reached the maximum allowed user limit of (0)", user))
}

// On the wire: the connection.close RabbitMQ sends for each limit, with its failing class and
// method (connection.open for max-connections, none for max-channels, like channel_max).
func TestAMQP091UserLimitsWire(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b)
	accessPermit(t, b, user, ".*", ".*", ".*")
	handshake := func() *wireConn {
		w := wireDial(t, b)
		w.readStart()
		w.send(wireMethodFrame(0, wireConnection, 11, wireArgs().raw(wireClientProperties().b).shortstr("PLAIN").longstr("\x00"+user+"\x00pw").shortstr("en_US")))
		w.tu = w.readTune()
		w.send(wireTuneOK(w.tu), wireConnectionOpen("/"))
		return w
	}
	userLimitSet(t, b, user, "max-connections", 0)
	w := handshake()
	w.expectConnectionClose(wireHard(530, fmt.Sprintf("NOT_ALLOWED - connection refused for user '%s': user connection limit (0) is reached", user), 10, 40))

	userLimitSet(t, b, user, "max-connections", -1)
	userLimitSet(t, b, user, "max-channels", 1)
	w = handshake()
	w.expect(0, wireConnection, 41)
	w.openChannel(1)
	w.send(wireChannelOpen(2))
	w.expectConnectionClose(wireHard(530, fmt.Sprintf("NOT_ALLOWED - number of channels opened for user '%s' has reached the maximum allowed user limit of (1)", user), 0, 0))
}
