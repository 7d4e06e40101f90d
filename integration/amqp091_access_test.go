package integration

// Access control: vhost access at connection.open, configure/write/read permissions on every
// operation and topic permissions on routing keys, as RabbitMQ checks them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// accessMgmt calls the reference broker's management HTTP API (only with WARREN_TEST_URL set): the
// same host, port 15672, the credentials of WARREN_TEST_URL.
func accessMgmt(t testing.TB, method, path string, body any) {
	t.Helper()
	u, err := url.Parse(externalURL)
	if err != nil {
		t.Fatalf("WARREN_TEST_URL: %v", err)
	}
	var rd *bytes.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, "http://"+u.Hostname()+":15672/api/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	req.SetBasicAuth(u.User.Username(), pw)
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && !(method == http.MethodDelete && resp.StatusCode == http.StatusNotFound) {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
}

// accessUser creates a user with a password (deleted when the test ends) and returns its name.
func accessUser(t testing.TB, b broker) string {
	t.Helper()
	name := amqpName(t, "user")
	if b.Srv == nil {
		accessMgmt(t, http.MethodPut, "users/"+url.PathEscape(name), map[string]any{"password": "pw", "tags": ""})
		t.Cleanup(func() { accessMgmt(t, http.MethodDelete, "users/"+url.PathEscape(name), nil) })
		return name
	}
	pw := "pw"
	if _, err := b.Srv.PutUser(server.UserSpec{Name: name, Password: &pw}); err != nil {
		t.Fatalf("PutUser: %v", err)
	}
	return name
}

// accessPermit sets user's permission in vhost "/".
func accessPermit(t testing.TB, b broker, user, configure, write, read string) {
	t.Helper()
	if b.Srv == nil {
		accessMgmt(t, http.MethodPut, "permissions/%2F/"+url.PathEscape(user), map[string]string{"configure": configure, "write": write, "read": read})
		return
	}
	if _, err := b.Srv.PutPermission(server.Permission{User: user, Vhost: "/", Configure: configure, Write: write, Read: read}); err != nil {
		t.Fatalf("PutPermission: %v", err)
	}
}

// accessTopicPermit sets user's topic permission on exchange in vhost "/".
func accessTopicPermit(t testing.TB, b broker, user, exchange, write, read string) {
	t.Helper()
	if b.Srv == nil {
		accessMgmt(t, http.MethodPut, "topic-permissions/%2F/"+url.PathEscape(user), map[string]string{"exchange": exchange, "write": write, "read": read})
		return
	}
	if _, err := b.Srv.PutTopicPermission(server.TopicPermission{User: user, Vhost: "/", Exchange: exchange, Write: write, Read: read}); err != nil {
		t.Fatalf("PutTopicPermission: %v", err)
	}
}

// accessURL is b's URL with user's credentials (password "pw").
func accessURL(b broker, user string) string {
	return "amqp://" + url.PathEscape(user) + ":pw@" + b.Addr + "/"
}

// accessDial connects as user.
func accessDial(t testing.TB, b broker, user string) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(accessURL(b, user))
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestAMQP091AccessVhostRefused(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b) // no permission anywhere
	conn, err := amqp.Dial(accessURL(b, user))
	if err == nil {
		conn.Close()
	}
	amqpWantError(t, err, 530, fmt.Sprintf("NOT_ALLOWED - access to vhost '/' refused for user '%s'", user))

	// Granted, the same user gets in.
	accessPermit(t, b, user, "", "", "")
	accessDial(t, b, user)
}

// accessRefused runs op on a fresh channel of conn and asserts it is closed with 403 and text.
func accessRefused(t *testing.T, conn *amqp.Connection, text string, op func(ch *amqp.Channel) error) {
	t.Helper()
	ch := amqpChannel(t, conn)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	err := op(ch)
	if err == nil {
		t.Fatalf("got no error, want 403 %s", text)
	}
	// A publish is asynchronous: the method after it may fail on the client's side (504, closed)
	// because the broker's channel.close arrived first. The close notification has the broker's text.
	if e := amqpWaitClose(t, closed); e.Code != 403 || !strings.HasPrefix(e.Reason, "ACCESS_REFUSED - "+text) {
		t.Fatalf("channel closed with %d %q, want 403 ACCESS_REFUSED - %s", e.Code, e.Reason, text)
	}
	if conn.IsClosed() {
		t.Fatal("a channel error closed the connection")
	}
	other, err := conn.Channel()
	if err != nil {
		t.Fatalf("connection unusable after a channel error: %v", err)
	}
	other.Close()
}

// accessOK runs op on a fresh channel of conn and asserts it succeeds.
func accessOK(t *testing.T, conn *amqp.Connection, what string, op func(ch *amqp.Channel) error) {
	t.Helper()
	ch := amqpChannel(t, conn)
	if err := op(ch); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	ch.Close()
}

func TestAMQP091AccessResourcePermissions(t *testing.T) {
	b, admin, ach := amqpSetup(t)
	user := accessUser(t, b)
	// The user may configure and read what is called "<prefix>.mine*" and write to "<prefix>.mine*"
	// and amq.default; nothing else.
	prefix := amqpName(t, "res")
	mine := prefix + ".mine"
	other := prefix + ".other"
	accessPermit(t, b, user, "^"+regexpQuote(mine), "^("+regexpQuote(mine)+"|amq\\.default)", "^"+regexpQuote(mine))
	conn := accessDial(t, b, user)

	refused := func(kind, name string) string {
		return fmt.Sprintf("access to %s '%s' in vhost '/' refused for user '%s'", kind, name, user)
	}
	// Objects owned by the admin, named outside the user's patterns.
	if _, err := ach.QueueDeclare(other, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", other)
	if err := ach.ExchangeDeclare(other, "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", other)

	// configure
	accessOK(t, conn, "declare own queue", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(mine, false, false, false, false, nil)
		return err
	})
	amqpCleanup(t, b, "queue", mine)
	accessRefused(t, conn, refused("queue", other), func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(other, false, false, false, false, nil)
		return err
	})
	accessOK(t, conn, "passive declare needs no permission", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(other, false, false, false, false, nil)
		if err == nil {
			err = ch.ExchangeDeclarePassive(other, "fanout", false, false, false, false, nil)
		}
		return err
	})
	accessRefused(t, conn, "access to queue 'amq.gen-", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("", false, true, true, false, nil) // server-named: checked with its generated name
		return err
	})
	accessRefused(t, conn, refused("exchange", other), func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(other, "fanout", false, false, false, false, nil)
	})
	accessRefused(t, conn, refused("exchange", other), func(ch *amqp.Channel) error {
		return ch.ExchangeDelete(other, false, false)
	})
	accessRefused(t, conn, refused("queue", other), func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(other, false, false, false)
		return err
	})
	accessRefused(t, conn, refused("queue", prefix+".missing"), func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(prefix+".missing", false, false, false) // checked before the lookup
		return err
	})
	// read
	accessRefused(t, conn, refused("queue", other), func(ch *amqp.Channel) error {
		_, err := ch.QueuePurge(other, false)
		return err
	})
	accessRefused(t, conn, refused("queue", other), func(ch *amqp.Channel) error {
		_, _, err := ch.Get(other, true)
		return err
	})
	accessRefused(t, conn, refused("queue", other), func(ch *amqp.Channel) error {
		_, err := ch.Consume(other, "", true, false, false, false, nil)
		return err
	})
	// queue.bind: write on the queue, then read on the exchange.
	accessRefused(t, conn, refused("queue", other), func(ch *amqp.Channel) error {
		return ch.QueueBind(other, "k", mine, false, nil)
	})
	accessRefused(t, conn, refused("exchange", other), func(ch *amqp.Channel) error {
		return ch.QueueBind(mine, "k", other, false, nil)
	})
	accessRefused(t, conn, refused("exchange", "amq.fanout"), func(ch *amqp.Channel) error {
		return ch.QueueBind(mine, "k", "amq.fanout", false, nil)
	})
	// exchange.bind: write on the destination, read on the source.
	accessRefused(t, conn, refused("exchange", other), func(ch *amqp.Channel) error {
		return ch.ExchangeBind(other, "k", mine, false, nil)
	})
	// write: publish to an exchange, the default one being amq.default.
	accessRefused(t, conn, refused("exchange", other), func(ch *amqp.Channel) error {
		if err := ch.Publish(other, "k", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			return err
		}
		_, err := ch.QueueDeclarePassive(mine, false, false, false, false, nil)
		return err
	})

	// What the user is allowed works end to end.
	accessOK(t, conn, "own exchange, binding, publish, get, purge, delete", func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(mine+".x", "fanout", false, true, false, false, nil); err != nil {
			return err
		}
		if err := ch.QueueBind(mine, "", mine+".x", false, nil); err != nil {
			return err
		}
		if err := ch.Publish(mine+".x", "", false, false, amqp.Publishing{Body: []byte("via x")}); err != nil {
			return err
		}
		if err := ch.Publish("", mine, false, false, amqp.Publishing{Body: []byte("via default")}); err != nil {
			return err
		}
		for _, want := range []string{"via x", "via default"} {
			d := amqpGet(t, ch, mine, true)
			if string(d.Body) != want {
				return fmt.Errorf("got %q, want %q", d.Body, want)
			}
		}
		if err := ch.ExchangeDelete(mine+".x", false, false); err != nil {
			return err
		}
		_, err := ch.QueueDelete(mine, false, false, false)
		return err
	})

	// Revoking write on amq.default takes effect for a new channel of the same connection.
	accessPermit(t, b, user, "^"+regexpQuote(mine), "^"+regexpQuote(mine), "^"+regexpQuote(mine))
	accessRefused(t, conn, refused("exchange", "amq.default"), func(ch *amqp.Channel) error {
		if err := ch.Publish("", mine, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			return err
		}
		_, err := ch.QueueDeclarePassive(other, false, false, false, false, nil)
		return err
	})
	_ = admin
}

func TestAMQP091AccessEmptyPatternMatchesNothing(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b)
	accessPermit(t, b, user, "", "", "")
	conn := accessDial(t, b, user) // a permission with empty patterns still grants the vhost
	name := amqpName(t, "q")
	accessRefused(t, conn, fmt.Sprintf("access to queue '%s' in vhost '/' refused for user '%s'", name, user), func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, false, true, false, false, nil)
		return err
	})
	accessRefused(t, conn, fmt.Sprintf("access to exchange 'amq.default' in vhost '/' refused for user '%s'", user), func(ch *amqp.Channel) error {
		if err := ch.Publish("", name, false, false, amqp.Publishing{}); err != nil {
			return err
		}
		_, err := ch.QueueDeclarePassive(name, false, true, false, false, nil)
		return err
	})
}

func TestAMQP091AccessTopicPermissions(t *testing.T) {
	b, _, ach := amqpSetup(t)
	user := accessUser(t, b)
	x := amqpName(t, "topic")
	if err := ach.ExchangeDeclare(x, "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", x)
	q := amqpName(t, "q")
	accessPermit(t, b, user, ".*", ".*", ".*")
	// {username} is expanded in the patterns.
	accessTopicPermit(t, b, user, x, "^{username}\\.", "^allowed\\.")
	conn := accessDial(t, b, user)
	accessOK(t, conn, "declare", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(q, false, false, false, false, nil)
		return err
	})
	amqpCleanup(t, b, "queue", q)

	accessOK(t, conn, "bind on an allowed key", func(ch *amqp.Channel) error {
		return ch.QueueBind(q, "allowed.#", x, false, nil)
	})
	accessRefused(t, conn, fmt.Sprintf("access to topic 'other.#' in exchange '%s' in vhost '/' refused for user '%s'", x, user), func(ch *amqp.Channel) error {
		return ch.QueueBind(q, "other.#", x, false, nil)
	})
	accessRefused(t, conn, fmt.Sprintf("access to topic 'allowed.1' in exchange '%s' in vhost '/' refused for user '%s'", x, user), func(ch *amqp.Channel) error {
		if err := ch.Publish(x, "allowed.1", false, false, amqp.Publishing{Body: []byte("no")}); err != nil {
			return err
		}
		_, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		return err
	})
	// Publishing under the user's own name is allowed; the message is routed as usual.
	accessOK(t, conn, "bind and publish on the user's keys", func(ch *amqp.Channel) error {
		if err := ch.Publish(x, user+".1", false, false, amqp.Publishing{Body: []byte("yes")}); err != nil {
			return err
		}
		return nil
	})
	// Other exchanges (no topic permission) and other types are unrestricted.
	accessOK(t, conn, "amq.topic", func(ch *amqp.Channel) error {
		if err := ch.QueueBind(q, "anything", "amq.topic", false, nil); err != nil {
			return err
		}
		return ch.Publish("amq.topic", "anything", false, false, amqp.Publishing{Body: []byte("free")})
	})
	ch := amqpChannel(t, amqpDial(t, b))
	if d := amqpRecv(t, amqpConsume(t, ch, q, true)); string(d.Body) != "free" {
		t.Fatalf("got %q, want the amq.topic message (nothing from the refused or unbound keys)", d.Body)
	}
}

// regexpQuote escapes the regular expression metacharacters in s (Erlang's re and Go's agree on these).
func regexpQuote(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// Declaring an exchange with an alternate exchange needs write on that one; a queue with a
// dead-letter exchange, write on that exchange (and read on the queue).
func TestAMQP091AccessAlternateAndDeadLetterExchanges(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b)
	prefix := amqpName(t, "p")
	mine, other := prefix+".mine", prefix+".other"
	accessPermit(t, b, user, ".*", "^"+regexpQuote(mine), ".*")
	conn := accessDial(t, b, user)
	refused := fmt.Sprintf("access to exchange '%s' in vhost '/' refused for user '%s'", other, user)
	accessRefused(t, conn, refused, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(mine+".x", "fanout", false, true, false, false, amqp.Table{"alternate-exchange": other})
	})
	accessRefused(t, conn, refused, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(mine+".q", false, true, false, false, amqp.Table{"x-dead-letter-exchange": other})
		return err
	})
	accessOK(t, conn, "alternate and dead-letter exchanges the user may write to", func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(mine+".x", "fanout", false, true, false, false, amqp.Table{"alternate-exchange": mine + ".ae"}); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(mine+".q", false, true, false, false, amqp.Table{"x-dead-letter-exchange": mine + ".dlx"}); err != nil {
			return err
		}
		if err := ch.ExchangeDelete(mine+".x", false, false); err != nil {
			return err
		}
		_, err := ch.QueueDelete(mine+".q", false, false, false)
		return err
	})
}

// A channel remembers a successful publish check (access.go), but not across a permission change:
// revoked write applies to the very next publish on the same channel.
func TestAMQP091AccessRevokedWriteAppliesToSameChannel(t *testing.T) {
	b := startBroker(t)
	user := accessUser(t, b)
	accessPermit(t, b, user, ".*", ".*", ".*")
	conn := accessDial(t, b, user)
	ch := amqpConfirmChannel(t, conn)
	q := amqpName(t, "q")
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "", q, "allowed") // confirmed: the check passed and is remembered
	accessPermit(t, b, user, ".*", "^$", ".*")
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("refused")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	want := fmt.Sprintf("ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user '%s'", user)
	if e := amqpWaitClose(t, closed); e.Code != 403 || e.Reason != want {
		t.Fatalf("channel closed with %d %q, want 403 %s", e.Code, e.Reason, want)
	}
}
