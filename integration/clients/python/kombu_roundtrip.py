#!/usr/bin/python3
"""kombu (py-amqp transport) round trip against an AMQP 0-9-1 broker.

Usage: /usr/bin/python3 kombu_roundtrip.py AMQP_URL [N]

Checks, in order (exits 1 with a "FAIL: ..." line on the first mismatch):
  1. connect with transport_options confirm_publish=True (py-amqp waits for basic.ack after
     every publish and raises MessageNacked on basic.nack)
  2. passive declare of a missing queue -> amqp.exceptions.NotFound (404) on its channel;
     the connection survives
  3. Exchange (topic) + Queue bound with "kombu.#"; Producer(declare=[queue]) publishes N json
     messages with headers, correlation_id, reply_to, priority, persistent delivery mode,
     plus one raw binary message
  4. Queue.get (basic.get) of the first two: payload, headers, properties, routing key
  5. Consumer (basic.consume, prefetch 4) + drain_events for the rest: order, payloads,
     properties, delivery_info; every message acked
  6. SimpleQueue put/qsize/clear (queue.purge), get_nowait (basic.get), get (basic.consume),
     headers kept, Empty on an empty queue; deleting the queue under its consumer -> basic.cancel
  7. everything declared is deleted
"""

import os
import sys
import time
import traceback

try:
    import amqp.exceptions
    import kombu
    from kombu import Connection, Consumer, Exchange, Producer, Queue
except ImportError as e:  # pragma: no cover - reported to the Go test
    print("FAIL: cannot import kombu (%s); install the Debian package python3-kombu" % e)
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


def cleanup(url, queues, exchanges):
    with Connection(url, connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=1)
        for q in queues:
            with conn.channel() as ch:
                ch.queue_delete(q)
        for x in exchanges:
            with conn.channel() as ch:
                ch.exchange_delete(x)


def check(cond, msg):
    if not cond:
        fail(msg)


def log(msg):
    print("kombu: " + msg, flush=True)


def payload_for(i):
    return {"n": i, "text": "message %d" % i, "list": list(range(i % 4)), "nested": {"ok": True}}


def headers_for(i):
    return {"index": i, "kind": "kombu-test", "flag": i % 2 == 1}


def check_message(where, msg, i, rkey):
    check(msg.payload == payload_for(i), "%s: payload %r, want %r" % (where, msg.payload, payload_for(i)))
    check(msg.content_type == "application/json", "%s: content_type %r" % (where, msg.content_type))
    check(msg.content_encoding == "utf-8", "%s: content_encoding %r" % (where, msg.content_encoding))
    check(msg.headers == headers_for(i), "%s: headers %r, want %r" % (where, msg.headers, headers_for(i)))
    p = msg.properties
    check(p.get("correlation_id") == "corr-%d" % i, "%s: correlation_id %r" % (where, p.get("correlation_id")))
    check(p.get("reply_to") == "kombu.replies", "%s: reply_to %r" % (where, p.get("reply_to")))
    check(p.get("priority") == i % 5, "%s: priority %r" % (where, p.get("priority")))
    check(p.get("delivery_mode") == 2, "%s: delivery_mode %r" % (where, p.get("delivery_mode")))
    check(msg.delivery_info.get("routing_key") == rkey,
          "%s: routing key %r, want %r" % (where, msg.delivery_info.get("routing_key"), rkey))
    check(not msg.delivery_info.get("redelivered"), "%s: redelivered" % where)


def main():
    if len(sys.argv) < 2:
        print("usage: kombu_roundtrip.py AMQP_URL [N]")
        sys.exit(2)
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    tag = "%d.%d" % (os.getpid(), int(time.time() * 1000))
    qname = "warren.clients.kombu.q." + tag
    xname = "warren.clients.kombu.x." + tag
    sname = "warren.clients.kombu.simple." + tag

    CLEANUP.append(lambda: cleanup(url, [qname, sname], [xname, sname]))
    conn = Connection(url, connect_timeout=10, transport_options={"confirm_publish": True})
    conn.ensure_connection(max_retries=1)
    sp = conn.connection.server_properties
    log("connected (kombu %s, transport %s) to %s %s" % (
        kombu.__version__, conn.transport_cls, sp.get("product"), sp.get("version")))

    # 2. error case on its own channel.
    with conn.channel() as errch:
        try:
            Queue(qname + ".missing", channel=errch).queue_declare(passive=True)
            fail("passive declare of a missing queue succeeded")
        except amqp.exceptions.NotFound as e:
            check(e.reply_code == 404, "passive declare: reply code %r" % e.reply_code)
            log("passive declare of missing queue -> NotFound %d %s" % (e.reply_code, e.reply_text))
    check(conn.connected, "connection lost after a channel error")

    ch = conn.channel()
    exchange = Exchange(xname, type="topic", durable=False, auto_delete=False)
    queue = Queue(qname, exchange=exchange, routing_key="kombu.#", durable=False, auto_delete=False)

    # 3. publish with confirms.
    producer = Producer(ch, exchange=exchange, serializer="json")
    for i in range(n):
        producer.publish(payload_for(i), routing_key="kombu.msg.%d" % i, declare=[queue],
                         headers=headers_for(i), correlation_id="corr-%d" % i,
                         reply_to="kombu.replies", priority=i % 5, delivery_mode=2, retry=False)
    raw = bytes(range(256)) * 3
    producer.publish(raw, routing_key="kombu.raw", content_type="application/octet-stream",
                     content_encoding="binary", retry=False)
    log("published %d json messages + 1 binary, each confirmed" % n)

    bound = queue(ch)
    name, count, consumers = bound.queue_declare(passive=True)
    check(count == n + 1, "queue holds %d messages, want %d" % (count, n + 1))

    # 4. basic.get
    for i in range(2):
        msg = bound.get(no_ack=False, accept=["json"])
        check(msg is not None, "basic.get %d: queue empty" % i)
        check_message("get %d" % i, msg, i, "kombu.msg.%d" % i)
        msg.ack()

    # 5. basic.consume
    received = []

    def on_message(body, message):
        received.append(message)
        message.ack()

    consumer = Consumer(ch, queues=[queue], callbacks=[on_message],
                        accept=["json", "application/octet-stream"], prefetch_count=4)
    want = n - 2 + 1
    with consumer:
        deadline = time.monotonic() + 20
        while len(received) < want:
            if time.monotonic() > deadline:
                fail("consume: got %d of %d messages" % (len(received), want))
            try:
                conn.drain_events(timeout=5)
            except TimeoutError:
                fail("consume: no delivery within 5s (got %d of %d)" % (len(received), want))
    for k, msg in enumerate(received[:-1]):
        i = k + 2
        check_message("consume %d" % i, msg, i, "kombu.msg.%d" % i)
    last = received[-1]
    check(last.body == raw, "binary message body corrupted (%d bytes, want %d)" % (len(last.body), len(raw)))
    check(last.content_type == "application/octet-stream", "binary content_type %r" % last.content_type)
    check(last.delivery_info.get("routing_key") == "kombu.raw", "binary routing key %r" % last.delivery_info.get("routing_key"))
    log("basic.get 2 + basic.consume %d messages, all intact and in order" % len(received))
    check(bound.get(no_ack=True) is None, "queue not empty after consuming everything")

    # 6. SimpleQueue
    sq = conn.SimpleQueue(sname, queue_opts={"durable": False, "auto_delete": False},
                          exchange_opts={"durable": False})
    for i in range(2):
        sq.put({"discard": i}, serializer="json")
    check(sq.qsize() == 2, "SimpleQueue.qsize() = %d, want 2" % sq.qsize())
    purged = sq.clear()  # queue.purge
    check(purged == 2, "SimpleQueue.clear() purged %r, want 2" % purged)
    check(sq.qsize() == 0, "SimpleQueue.qsize() = %d after clear, want 0" % sq.qsize())
    for i in range(3):
        sq.put({"simple": i}, headers={"h": "v%d" % i}, serializer="json")
    check(sq.qsize() == 3, "SimpleQueue.qsize() = %d, want 3" % sq.qsize())
    for i in range(3):
        # get_nowait is basic.get; get starts a basic.consume and drains events.
        m = sq.get_nowait() if i == 0 else sq.get(block=True, timeout=5)
        check(m.payload == {"simple": i}, "SimpleQueue.get %d: payload %r" % (i, m.payload))
        check(m.headers == {"h": "v%d" % i}, "SimpleQueue.get %d: headers %r" % (i, m.headers))
        m.ack()
    try:
        sq.get(block=True, timeout=0.5)
        fail("SimpleQueue.get on an empty queue returned a message")
    except sq.Empty:
        pass
    check(sq.qsize() == 0, "SimpleQueue.qsize() = %d at the end, want 0" % sq.qsize())
    # Deleting a queue that still has a consumer makes the broker send basic.cancel to that
    # consumer (capability consumer_cancel_notify), which py-amqp raises as ConsumerCancelled.
    # The delete goes over a second connection: on the same connection the cancel may arrive
    # while py-amqp waits for queue.delete-ok and be raised from there instead.
    with Connection(url, connect_timeout=10) as conn2:
        with conn2.channel() as ch2:
            sq.queue(ch2).delete()
    try:
        conn.drain_events(timeout=5)
        fail("no basic.cancel after deleting a queue with a consumer")
    except amqp.exceptions.ConsumerCancelled:
        log("queue.delete with an active consumer -> basic.cancel from the server")
    except TimeoutError:
        fail("no basic.cancel within 5s after deleting a queue with a consumer")
    sq.queue.exchange(ch).delete()
    sq.close()
    log("SimpleQueue put/get/qsize/clear OK")

    # 7. clean up
    bound.delete()
    exchange(ch).delete()
    ch.close()
    conn.release()
    log("OK")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - any client exception is a failure
        traceback.print_exc()
        fail("unexpected %s: %s" % (type(exc).__name__, exc))
