#!/usr/bin/python3
"""Capture the bytes Debian's stomp.py (python3-stomp) writes, for stomp's tests.

Run: /usr/bin/python3 stomp/testdata/capture_stomppy.py stomp/testdata
It starts a minimal fake server on 127.0.0.1 (random port) that answers
CONNECTED and RECEIPT, drives stomp.py 1.0, 1.1 and 1.2 connections through a
connect, sends (escaped headers, a body with NUL), subscribe, ack/nack,
a transaction and disconnect, and writes each connection's client bytes to
stomppy-<version>.bin.
"""
import re
import socket
import sys
import threading

import stomp

out_dir = sys.argv[1]


def serve(sock, version, record):
    conn, _ = sock.accept()
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        record.append(data)
        buf += data
        while b"\x00" in buf:
            frame, _, buf = buf.partition(b"\x00")
            frame = frame.lstrip(b"\r\n")
            cmd = frame.split(b"\n", 1)[0].rstrip(b"\r")
            if cmd in (b"CONNECT", b"STOMP"):
                conn.sendall(b"CONNECTED\nversion:" + version.encode() + b"\nheart-beat:0,0\n\n\x00")
            m = re.search(rb"\nreceipt:([^\r\n]*)", frame)
            if m:
                conn.sendall(b"RECEIPT\nreceipt-id:" + m.group(1) + b"\n\n\x00")
    conn.close()


for version, cls in (("1.0", stomp.Connection10), ("1.1", stomp.Connection11), ("1.2", stomp.Connection12)):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    record = []
    t = threading.Thread(target=serve, args=(sock, version, record))
    t.start()
    c = cls([("127.0.0.1", port)])
    c.connect("guest", "guest", wait=True)
    c.send(destination="/queue/a", body="hello queue a", headers={"content-type": "text/plain"})
    hdrs = {"x-colon": "a:b"} if version == "1.0" else {"x-escapes": "a:b\nc\\d"}
    c.send(destination="/exchange/amq.topic/a.b", body=b"nul\x00inside", headers=hdrs)
    if version == "1.0":
        c.subscribe(destination="/queue/a", id="0", ack="client")
        c.ack("m1")
        c.unsubscribe(id="0")
    else:
        c.subscribe(destination="/queue/a", id="0", ack="client-individual", headers={"prefetch-count": "10"})
        if version == "1.1":
            c.ack("m1", "0")  # 1.1: message-id, subscription
            c.nack("m2", "0")
        else:
            c.ack("m1")  # 1.2: the MESSAGE's ack header
            c.nack("m2")
        c.unsubscribe(id="0")
    c.begin("tx1")
    c.send(destination="/queue/a", body="in tx", transaction="tx1")
    c.commit("tx1")
    c.disconnect(receipt="bye")
    t.join()
    sock.close()
    with open("%s/stomppy-%s.bin" % (out_dir, version), "wb") as f:
        f.write(b"".join(record))
