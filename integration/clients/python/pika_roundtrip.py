#!/usr/bin/python3
"""pika (BlockingConnection) round trip against an AMQP 0-9-1 broker.

Usage: /usr/bin/python3 pika_roundtrip.py AMQP_URL [N]

Checks, in order (exits 1 with a "FAIL: ..." line on the first mismatch):
  1. connect; the server advertises publisher_confirms, basic.nack, consumer_cancel_notify
  2. passive declare of a missing queue -> ChannelClosedByBroker 404 (NOT_FOUND); the
     connection survives and a fresh channel works
  3. declare a direct exchange and a queue, bind them; a passive re-declare reports 0 messages
  4. confirm_delivery(); publish N messages through the exchange with full properties
     (content-type/encoding, headers of many field types, delivery-mode 2, priority,
     correlation-id, reply-to, message-id, timestamp, type, app-id); every publish is confirmed
  5. a mandatory publish with an unbound routing key -> UnroutableError (basic.return + ack)
  6. publish one message through the default exchange (routing key = queue name)
  7. passive declare reports N+1 messages
  8. basic.get the first half: bodies, properties, message_count and order checked; one get is
     rejected with requeue and must come back redelivered
  9. basic.consume (prefetch 3) the rest: bodies, properties, order, routing key, exchange
 10. the queue is empty; cancel, unbind, delete queue and exchange (if-unused), close
"""

import datetime
import decimal
import os
import sys
import time
import traceback

try:
    import pika
    import pika.exceptions
except ImportError as e:  # pragma: no cover - reported to the Go test
    print("FAIL: cannot import pika (%s); install the Debian package python3-pika" % e)
    sys.exit(3)


# Set by main: deletes what this run declared, over a fresh connection, after a failure.
CLEANUP = []


def fail(msg):
    print("FAIL: " + msg, flush=True)
    for f in CLEANUP:
        try:
            f()
        except Exception as e:  # noqa: BLE001 - best effort
            print("cleanup after failure: %r" % e, flush=True)
    sys.exit(1)


def cleanup(url, qname, xname):
    params = pika.URLParameters(url)
    params.socket_timeout = 5
    params.connection_attempts = 1
    conn = pika.BlockingConnection(params)
    try:
        conn.channel().queue_delete(queue=qname)
        conn.channel().exchange_delete(exchange=xname)
    finally:
        conn.close()


def check(cond, msg):
    if not cond:
        fail(msg)


def log(msg):
    print("pika: " + msg, flush=True)


def expected_props(i, n):
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={
            "index": i,
            "str": "héllo-%d" % i,
            "bool": i % 2 == 0,
            "big": 2**40 + i,
            "neg": -i,
            "dec": decimal.Decimal("3.14"),
            "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "nested": {"a": 1, "b": "two"},
            "list": [1, "x", False],
            "void": None,
        },
        delivery_mode=2,
        priority=i % 10,
        correlation_id="corr-%d" % i,
        reply_to="reply.queue",
        message_id="msg-%d-of-%d" % (i, n),
        timestamp=1700000000 + i,
        type="test.message",
        app_id="warren-pika-test",
    )


def body_for(i):
    return ('{"n": %d, "pad": "%s"}' % (i, "z" * (i * 37))).encode()


PROP_FIELDS = ("content_type", "content_encoding", "delivery_mode", "priority",
               "correlation_id", "reply_to", "message_id", "timestamp", "type", "app_id")


def check_props(where, got, want):
    for f in PROP_FIELDS:
        g, w = getattr(got, f), getattr(want, f)
        check(g == w, "%s: property %s = %r, want %r" % (where, f, g, w))
    check(got.headers == want.headers,
          "%s: headers = %r, want %r" % (where, got.headers, want.headers))


def main():
    if len(sys.argv) < 2:
        print("usage: pika_roundtrip.py AMQP_URL [N]")
        sys.exit(2)
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    tag = "%d.%d" % (os.getpid(), int(time.time() * 1000))
    qname = "warren.clients.pika.q." + tag
    xname = "warren.clients.pika.x." + tag
    rkey = "pika.key"

    CLEANUP.append(lambda: cleanup(url, qname, xname))
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    conn = pika.BlockingConnection(params)
    log("connected; server properties: product=%r version=%r" % (
        conn._impl.server_properties.get("product"), conn._impl.server_properties.get("version")))
    for cap in ("publisher_confirms", "basic.nack", "consumer_cancel_notify"):
        check(conn._impl.server_capabilities.get(cap) is True,
              "server capability %s not advertised (capabilities=%r)" % (cap, conn._impl.server_capabilities))

    # 2. error case: passive declare of a missing queue closes the channel with 404.
    ch = conn.channel()
    try:
        ch.queue_declare(queue=qname + ".missing", passive=True)
        fail("passive declare of a missing queue succeeded")
    except pika.exceptions.ChannelClosedByBroker as e:
        check(e.reply_code == 404, "passive declare: reply code %d (%s), want 404" % (e.reply_code, e.reply_text))
        check(e.reply_text.startswith("NOT_FOUND"), "passive declare: reply text %r, want NOT_FOUND - ..." % e.reply_text)
        log("passive declare of missing queue -> %d %s" % (e.reply_code, e.reply_text))
    check(ch.is_closed, "channel still open after 404")
    check(conn.is_open, "connection closed after a channel error")

    # 3. topology on a fresh channel.
    ch = conn.channel()
    ch.exchange_declare(exchange=xname, exchange_type="direct", durable=False, auto_delete=False)
    ok = ch.queue_declare(queue=qname, durable=True, exclusive=False, auto_delete=False)
    check(ok.method.queue == qname, "queue.declare-ok names %r, want %r" % (ok.method.queue, qname))
    check(ok.method.message_count == 0, "new queue has %d messages" % ok.method.message_count)
    ch.queue_bind(queue=qname, exchange=xname, routing_key=rkey)
    # Re-declaring with the same arguments is fine.
    ch.exchange_declare(exchange=xname, exchange_type="direct", durable=False, auto_delete=False)
    ch.exchange_declare(exchange=xname, passive=True)

    # 4. publisher confirms.
    ch.confirm_delivery()
    for i in range(n):
        try:
            ch.basic_publish(exchange=xname, routing_key=rkey, body=body_for(i),
                             properties=expected_props(i, n), mandatory=True)
        except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as e:
            fail("publish %d not confirmed: %r" % (i, e))
    log("published %d confirmed messages" % n)

    # 5. mandatory + unroutable -> basic.return, surfaced by pika as UnroutableError.
    try:
        ch.basic_publish(exchange=xname, routing_key="no.such.binding", body=b"lost",
                         properties=pika.BasicProperties(correlation_id="unroutable"), mandatory=True)
        fail("mandatory publish with no binding was not returned")
    except pika.exceptions.UnroutableError as e:
        check(len(e.messages) == 1, "UnroutableError carries %d messages, want 1" % len(e.messages))
        ret = e.messages[0]
        check(ret.method.reply_code == 312, "basic.return reply code %d, want 312" % ret.method.reply_code)
        check(ret.method.reply_text == "NO_ROUTE", "basic.return reply text %r, want NO_ROUTE" % ret.method.reply_text)
        check(ret.method.exchange == xname and ret.method.routing_key == "no.such.binding",
              "basic.return names %r/%r" % (ret.method.exchange, ret.method.routing_key))
        check(ret.body == b"lost", "returned body %r" % ret.body)
        check(ret.properties.correlation_id == "unroutable", "returned properties lost correlation id")
        log("mandatory unroutable publish -> basic.return %d %s" % (ret.method.reply_code, ret.method.reply_text))

    # Non-mandatory unroutable publish is silently dropped but still confirmed.
    ch.basic_publish(exchange=xname, routing_key="no.such.binding", body=b"dropped")

    # 6. default exchange.
    ch.basic_publish(exchange="", routing_key=qname, body=body_for(n), properties=expected_props(n, n))

    # 7. message count.
    ok = ch.queue_declare(queue=qname, passive=True)
    check(ok.method.message_count == n + 1, "passive declare reports %d messages, want %d" % (ok.method.message_count, n + 1))
    check(ok.method.consumer_count == 0, "passive declare reports %d consumers, want 0" % ok.method.consumer_count)

    # 8. basic.get the first half, with one reject+requeue.
    half = n // 2
    method, props, body = ch.basic_get(queue=qname, auto_ack=False)
    check(method is not None, "basic.get on a queue with messages returned get-empty")
    check(body == body_for(0), "first get: body %r" % body[:40])
    check(not method.redelivered, "first get already redelivered")
    ch.basic_reject(delivery_tag=method.delivery_tag, requeue=True)
    for i in range(half):
        method, props, body = ch.basic_get(queue=qname, auto_ack=False)
        check(method is not None, "basic.get %d returned get-empty" % i)
        check(body == body_for(i), "get %d: body %r, want %r" % (i, body[:40], body_for(i)[:40]))
        check(method.redelivered == (i == 0), "get %d: redelivered=%r" % (i, method.redelivered))
        check(method.exchange == xname and method.routing_key == rkey,
              "get %d: exchange/routing key %r/%r" % (i, method.exchange, method.routing_key))
        check(method.message_count == n - i, "get %d: message_count %d, want %d" % (i, method.message_count, n - i))
        check_props("get %d" % i, props, expected_props(i, n))
        ch.basic_ack(delivery_tag=method.delivery_tag)
    log("basic.get %d messages (one rejected and redelivered)" % half)

    # 9. basic.consume the rest.
    ch.basic_qos(prefetch_count=3)
    got = 0
    want = n + 1 - half
    deadline = time.monotonic() + 20
    for method, props, body in ch.consume(queue=qname, auto_ack=False, inactivity_timeout=5):
        if method is None:
            fail("consume: no delivery within 5s after %d of %d" % (got, want))
        i = half + got
        check(body == body_for(i), "consume %d: body %r, want %r" % (i, body[:40], body_for(i)[:40]))
        check(not method.redelivered, "consume %d: redelivered" % i)
        if i < n:
            check(method.exchange == xname and method.routing_key == rkey,
                  "consume %d: exchange/routing key %r/%r" % (i, method.exchange, method.routing_key))
        else:
            check(method.exchange == "" and method.routing_key == qname,
                  "consume %d (default exchange): exchange/routing key %r/%r" % (i, method.exchange, method.routing_key))
        check_props("consume %d" % i, props, expected_props(i, n))
        ch.basic_ack(delivery_tag=method.delivery_tag)
        got += 1
        if got == want:
            break
        if time.monotonic() > deadline:
            fail("consume: timed out after %d of %d" % (got, want))
    requeued = ch.cancel()
    check(requeued == 0, "cancel requeued %d unacked/buffered messages, want 0" % requeued)
    log("basic.consume %d messages" % got)

    # 10. empty and clean up.
    method, _, _ = ch.basic_get(queue=qname, auto_ack=True)
    check(method is None, "queue not empty after consuming everything")
    ch.queue_unbind(queue=qname, exchange=xname, routing_key=rkey)
    ok = ch.queue_delete(queue=qname)
    check(ok.method.message_count == 0, "queue.delete-ok reports %d messages" % ok.method.message_count)
    ch.exchange_delete(exchange=xname, if_unused=True)
    try:
        ch.queue_declare(queue=qname, passive=True)
        fail("queue still exists after delete")
    except pika.exceptions.ChannelClosedByBroker as e:
        check(e.reply_code == 404, "passive declare after delete: %d %s" % (e.reply_code, e.reply_text))
    conn.close()
    log("OK")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - any client exception is a failure
        traceback.print_exc()
        fail("unexpected %s: %s" % (type(exc).__name__, exc))
