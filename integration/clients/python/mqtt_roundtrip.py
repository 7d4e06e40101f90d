"""Eclipse Paho's Python client (Debian's python3-paho-mqtt) against the broker's MQTT listener.

Usage: mqtt_roundtrip.py HOST:PORT N [--v5]

MQTT 3.1.1: a subscriber with '+' and '#' filters gets N QoS 1 messages and one QoS 0 message in
order, at the lower of the two QoS; a retained message reaches a later subscriber with the retain
flag (and is cleared by an empty retained publish); a client that vanishes without DISCONNECT has
its will published; a persistent session (clean session 0) finds, on reconnecting, session present
and the message published while it was away.

With --v5 (MQTT 5, which RabbitMQ 3.10.8 lacks): CONNACK properties; a subscription identifier
comes back on the deliveries; user properties, content type, response topic and correlation data
go through; a No Local subscription does not get the client's own messages.

Exits non-zero on any mismatch; prints "mqtt_roundtrip: OK" last.
"""

import queue
import socket
import sys
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TIMEOUT = 10


def check(cond, what):
    if not cond:
        raise SystemExit("mqtt_roundtrip: FAILED: " + what)


class Client:
    """A paho client run by its own network thread, with events for CONNACK, SUBACK and PUBLISH."""

    def __init__(self, host, port, client_id, clean=True, v5=False, will=None):
        self.v5 = v5
        kw = {"client_id": client_id, "protocol": mqtt.MQTTv5 if v5 else mqtt.MQTTv311}
        if not v5:
            kw["clean_session"] = clean
        try:  # paho-mqtt 2.x asks which callback signatures to use; 1.x has only these
            from paho.mqtt.enums import CallbackAPIVersion

            kw["callback_api_version"] = CallbackAPIVersion.VERSION1
        except ImportError:
            pass
        self.c = mqtt.Client(**kw)
        self.c.username_pw_set("guest", "guest")
        if will:
            self.c.will_set(will[0], will[1], qos=1)
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.host, self.port, self.clean = host, port, clean

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connacks.put((flags, rc, properties))

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.subacks.put((mid, granted))

    def connect(self, properties=None):
        if self.v5:
            self.c.connect(self.host, self.port, keepalive=30, clean_start=self.clean, properties=properties)
        else:
            self.c.connect(self.host, self.port, keepalive=30)
        self.c.loop_start()
        try:
            flags, rc, props = self.connacks.get(timeout=TIMEOUT)
        except queue.Empty:
            raise SystemExit("mqtt_roundtrip: FAILED: no CONNACK")
        check(rc == 0, "CONNACK %s" % rc)
        return flags, props

    def subscribe(self, topic, qos, properties=None, **opts):
        if self.v5:
            rc, mid = self.c.subscribe(topic, options=mqtt.SubscribeOptions(qos=qos, **opts), properties=properties)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        check(rc == mqtt.MQTT_ERR_SUCCESS, "SUBSCRIBE %s: %s" % (topic, rc))
        try:
            got_mid, granted = self.subacks.get(timeout=TIMEOUT)
        except queue.Empty:
            raise SystemExit("mqtt_roundtrip: FAILED: no SUBACK for " + topic)
        check(got_mid == mid, "SUBACK for message id %s, want %s" % (got_mid, mid))
        g = granted[0]
        g = getattr(g, "value", g)  # MQTT 5: a ReasonCodes object
        check(g == qos, "granted %s for %s, want %s" % (g, topic, qos))

    def publish(self, topic, payload, qos, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(TIMEOUT)
        check(info.is_published(), "publish to %s not acknowledged" % topic)

    def next(self, what):
        try:
            return self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise SystemExit("mqtt_roundtrip: FAILED: no message: " + what)

    def disconnect(self):
        self.c.disconnect()
        self.c.loop_stop()

    def vanish(self):
        """Ends the connection without DISCONNECT (the broker sees the socket close)."""
        self.c.loop_stop()
        sock = self.c.socket()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def v311(host, port, n):
    base = "pyroundtrip/" + uuid.uuid4().hex
    sub = Client(host, port, "py-sub-" + uuid.uuid4().hex[:8])
    sub.connect()
    sub.subscribe(base + "/+/x", 1)
    sub.subscribe(base + "/zero/#", 0)
    pub = Client(host, port, "py-pub-" + uuid.uuid4().hex[:8])
    pub.connect()
    for i in range(n):
        pub.publish("%s/%d/x" % (base, i), "m%d" % i, 1)
    pub.publish(base + "/zero/q1", "downgraded", 1)
    for i in range(n):
        m = sub.next("QoS 1 message %d" % i)
        check(m.topic == "%s/%d/x" % (base, i) and m.payload == b"m%d" % i and m.qos == 1,
              "message %d: %s %r qos %d" % (i, m.topic, m.payload, m.qos))
    m = sub.next("QoS 0 subscription")
    check(m.topic == base + "/zero/q1" and m.qos == 0, "QoS 0 subscription got %s qos %d" % (m.topic, m.qos))

    # Retained: a later subscriber gets it with the retain flag.
    pub.publish(base + "/retained", "kept", 1, retain=True)
    late = Client(host, port, "py-late-" + uuid.uuid4().hex[:8])
    late.connect()
    late.subscribe(base + "/retained", 1)
    m = late.next("retained message")
    check(m.payload == b"kept" and m.retain, "retained: %r retain %s" % (m.payload, m.retain))
    pub.publish(base + "/retained", "", 1, retain=True)
    late.disconnect()

    # Will: published when its client vanishes.
    sub.subscribe(base + "/will", 1)
    w = Client(host, port, "py-will-" + uuid.uuid4().hex[:8], will=(base + "/will", "gone"))
    w.connect()
    w.vanish()
    m = sub.next("will")
    check(m.topic == base + "/will" and m.payload == b"gone", "will: %s %r" % (m.topic, m.payload))

    # Persistent session.
    pid = "py-persist-" + uuid.uuid4().hex[:8]
    p = Client(host, port, pid, clean=False)
    p.connect()
    p.subscribe(base + "/persist", 1)
    p.disconnect()
    pub.publish(base + "/persist", "while away", 1)
    p = Client(host, port, pid, clean=False)
    flags, _ = p.connect()
    check(flags.get("session present") == 1, "session not present: %s" % flags)
    m = p.next("message queued while away")
    check(m.payload == b"while away", "persistent session got %r" % m.payload)
    p.disconnect()
    # Clean up the session (clean session 1 discards it).
    Client(host, port, pid, clean=True).connect()

    sub.disconnect()
    pub.disconnect()
    print("mqtt_roundtrip: MQTT 3.1.1: %d messages, retained, will, persistent session" % (n + 1))


def v5(host, port, n):
    base = "pyroundtrip5/" + uuid.uuid4().hex
    sub = Client(host, port, "py5-sub-" + uuid.uuid4().hex[:8], v5=True)
    _, props = sub.connect()
    check(getattr(props, "SubscriptionIdentifierAvailable", 1) == 1 and getattr(props, "SharedSubscriptionAvailable", 1) == 1,
          "CONNACK properties %s" % props)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 42
    sub.subscribe(base + "/#", 1, properties=sp, noLocal=True)
    pub = Client(host, port, "py5-pub-" + uuid.uuid4().hex[:8], v5=True)
    pub.connect()
    for i in range(n):
        pp = Properties(PacketTypes.PUBLISH)
        pp.UserProperty = [("seq", str(i)), ("app", "py")]
        pp.ContentType = "text/plain"
        pp.ResponseTopic = base + "/reply"
        pp.CorrelationData = b"corr-%d" % i
        pub.publish("%s/%d" % (base, i), "m%d" % i, 1, properties=pp)
    # The subscriber's own message is not sent back to it (No Local).
    sub.publish(base + "/own", "own", 1)
    pub.publish(base + "/last", "last", 1)
    for i in range(n):
        m = sub.next("MQTT 5 message %d" % i)
        p = m.properties
        ups = dict(getattr(p, "UserProperty", []))
        check(m.payload == b"m%d" % i and ups.get("seq") == str(i) and ups.get("app") == "py", "message %d: %r %s" % (i, m.payload, p))
        check(getattr(p, "ContentType", None) == "text/plain" and getattr(p, "ResponseTopic", None) == base + "/reply" and
              getattr(p, "CorrelationData", None) == b"corr-%d" % i, "message %d properties %s" % (i, p))
        check(getattr(p, "SubscriptionIdentifier", None) == [42], "subscription identifier %s" % getattr(p, "SubscriptionIdentifier", None))
    m = sub.next("after the No Local one")
    check(m.payload == b"last", "No Local: got %r, want b'last'" % m.payload)
    sub.disconnect()
    pub.disconnect()
    print("mqtt_roundtrip: MQTT 5: %d messages with properties, subscription identifier, No Local" % n)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    v311(host, int(port), n)
    if "--v5" in sys.argv[3:]:
        v5(host, int(port), n)
    print("mqtt_roundtrip: OK")


if __name__ == "__main__":
    main()
