"""stomp.py (Debian's python3-stomp) against the broker's STOMP listener, with pika on the AMQP side.

Usage: stomp_roundtrip.py HOST:PORT AMQP_URL N

For STOMP 1.0, 1.1 and 1.2 in turn: SUBSCRIBE to /queue/<q> with client acks, SEND N persistent
messages with a custom header (the last one with a receipt), receive and ACK them; publish one
message with AMQP properties through pika and check the MESSAGE headers RabbitMQ's mapping gives;
NACK one (1.1+) and get it back redelivered; a transaction's SEND arrives only after COMMIT;
DISCONNECT with a receipt. Exits non-zero on any mismatch; prints "stomp_roundtrip: OK" last.
"""

import queue
import sys
import time
import uuid

import pika
import stomp

TIMEOUT = 10


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put((frame.headers, frame.body))


def check(cond, what):
    if not cond:
        raise SystemExit("stomp_roundtrip: FAILED: " + what)


def next_message(l, what):
    try:
        return l.messages.get(timeout=TIMEOUT)
    except queue.Empty:
        raise SystemExit("stomp_roundtrip: FAILED: no MESSAGE: " + what)


def wait_receipt(l, rid):
    try:
        got = l.receipts.get(timeout=TIMEOUT)
    except queue.Empty:
        raise SystemExit("stomp_roundtrip: FAILED: no RECEIPT " + rid)
    check(got == rid, "receipt %r, want %r" % (got, rid))


def main():
    hostport, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = hostport.rsplit(":", 1)
    amqp = pika.BlockingConnection(pika.URLParameters(url))
    ch = amqp.channel()
    for version, cls in (("1.0", stomp.Connection10), ("1.1", stomp.Connection11), ("1.2", stomp.Connection12)):
        q = "it.stomppy.%s.%s" % (version, uuid.uuid4().hex[:8])
        l = Listener()
        kw = {} if version == "1.0" else {"vhost": "/", "heartbeats": (0, 0)}
        conn = cls([(host, int(port))], **kw)
        conn.set_listener("l", l)
        conn.connect("guest", "guest", wait=True)
        try:
            ack_mode = "client" if version == "1.0" else "client-individual"
            conn.subscribe(destination="/queue/" + q, id="sub-1", ack=ack_mode, headers={"prefetch-count": "100", "receipt": "sub"})
            wait_receipt(l, "sub")
            for i in range(n):
                headers = {"persistent": "true", "x-seq": str(i)}
                if i == n - 1:
                    headers["receipt"] = "last"
                conn.send(destination="/queue/" + q, body="m%d" % i, headers=headers)
            wait_receipt(l, "last")
            for i in range(n):
                m = next_message(l, "m%d" % i)
                check(m.body == "m%d" % i, "%s: body %r, want m%d" % (version, m.body, i))
                check(m.headers.get("x-seq") == str(i), "%s: x-seq %r" % (version, m.headers.get("x-seq")))
                check(m.headers.get("persistent") == "true", "%s: persistent %r" % (version, m.headers))
                check(m.headers.get("destination") == "/queue/" + q, "%s: destination %r" % (version, m.headers))
                if version == "1.0":
                    conn.ack(m.headers["message-id"])
                elif version == "1.1":
                    conn.ack(m.headers["message-id"], m.headers["subscription"])
                else:
                    conn.ack(m.headers["ack"])

            # AMQP -> STOMP: RabbitMQ's mapping of properties onto headers.
            ch.basic_publish("", q, b"from-amqp", pika.BasicProperties(
                content_type="text/plain", correlation_id="corr-1", reply_to="replies", priority=5,
                delivery_mode=2, headers={"h-str": "v", "h-int": 7}))
            m = next_message(l, "from-amqp")
            check(m.body == "from-amqp", "%s: body %r" % (version, m.body))
            for k, want in (("content-type", "text/plain"), ("correlation-id", "corr-1"), ("reply-to", "/reply-queue/replies"),
                            ("priority", "5"), ("persistent", "true"), ("h-str", "v"), ("h-int", "7"), ("subscription", "sub-1")):
                check(m.headers.get(k) == want, "%s: header %s = %r, want %r (%r)" % (version, k, m.headers.get(k), want, m.headers))

            if version != "1.0":
                # NACK requeues: the message comes back redelivered.
                if version == "1.1":
                    conn.nack(m.headers["message-id"], m.headers["subscription"])
                else:
                    conn.nack(m.headers["ack"])
                r = next_message(l, "redelivery")
                check(r.body == "from-amqp" and r.headers.get("redelivered") == "true", "%s: redelivery %r" % (version, r.headers))
                if version == "1.1":
                    conn.ack(r.headers["message-id"], r.headers["subscription"])
                else:
                    conn.ack(r.headers["ack"])
            else:
                conn.ack(m.headers["message-id"])

            # A transaction's SEND is delivered only after COMMIT.
            tx = conn.begin()
            conn.send(destination="/queue/" + q, body="in-tx", transaction=tx)
            try:
                early = l.messages.get(timeout=0.3)
                raise SystemExit("stomp_roundtrip: FAILED: %s: delivered before COMMIT: %r" % (version, early.body))
            except queue.Empty:
                pass
            conn.commit(tx)
            m = next_message(l, "in-tx")
            check(m.body == "in-tx", "%s: tx body %r" % (version, m.body))
            if version == "1.0":
                conn.ack(m.headers["message-id"])
            elif version == "1.1":
                conn.ack(m.headers["message-id"], m.headers["subscription"])
            else:
                conn.ack(m.headers["ack"])
            check(l.errors.empty(), "%s: ERROR frames: %r" % (version, list(l.errors.queue)))
        finally:
            conn.disconnect(receipt="bye")
        # Everything was acknowledged: the queue is empty.
        ok = ch.queue_declare(q, passive=True)
        check(ok.method.message_count == 0, "%s: %d messages left" % (version, ok.method.message_count))
        ch.queue_delete(q)
        print("stomp_roundtrip: STOMP %s: %d messages, AMQP mapping, NACK, transaction" % (version, n))
    amqp.close()
    print("stomp_roundtrip: OK")


if __name__ == "__main__":
    main()
