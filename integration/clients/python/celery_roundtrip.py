#!/usr/bin/python3
"""Celery task round trip against an AMQP 0-9-1 broker.

Usage: /usr/bin/python3 celery_roundtrip.py AMQP_URL

The script starts a Celery worker for this same module as a subprocess
(`python3 -m celery -A celery_roundtrip worker --pool=solo`, bounded by a timeout and
killed at the end), then calls add.delay(2, 3).get(timeout=20) and a few more tasks with the
rpc:// result backend (results come back through a reply queue named in reply_to, matched by
correlation_id). Checks:
  - the worker reaches "ready" (it declares its task queue, the pidbox fanout exchange with
    an x-expires/x-message-ttl queue, the event topic exchange, and does mingle/gossip)
  - add.delay(2, 3).get() == 5; a batch of 5 tasks returns the right sums
  - a task that raises comes back as the exception (result state FAILURE)
  - app.control.ping() gets the worker's reply (fanout broadcast + reply exchange)
All exchange and queue names carry a per-run tag and are deleted afterwards.
"""

import os
import subprocess
import sys
import tempfile
import time

try:
    from celery import Celery
except ImportError as e:  # pragma: no cover - reported to the Go test
    print("FAIL: cannot import celery (%s); install the Debian package python3-celery" % e)
    sys.exit(3)

if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: celery_roundtrip.py AMQP_URL")
        sys.exit(2)
    # The worker subprocess imports this module; it learns the URL and tag from the environment.
    os.environ["WARREN_CELERY_BROKER"] = sys.argv[1]
    os.environ["WARREN_CELERY_TAG"] = "%d.%d" % (os.getpid(), int(time.time() * 1000))
    os.environ["PYTHONPATH"] = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"

BROKER_URL = os.environ.get("WARREN_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672/")
TAG = os.environ.get("WARREN_CELERY_TAG", "default")
QUEUE = "warren.clients.celery." + TAG

app = Celery("celery_roundtrip", broker=BROKER_URL, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    control_exchange=QUEUE + ".ctl",
    event_exchange=QUEUE + ".ev",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=False,
    broker_connection_max_retries=1,
    broker_connection_timeout=10,
    worker_hijack_root_logger=False,
)


@app.task
def add(x, y):
    return x + y


@app.task
def boom(msg):
    raise ValueError(msg)


def fail(msg, worker_log=None):
    print("FAIL: " + msg, flush=True)
    if worker_log:
        print("---- worker output ----\n" + worker_log, flush=True)
    sys.exit(1)


def log(msg):
    print("celery: " + msg, flush=True)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def cleanup():
    """Delete the exchanges and queues this run declared (ignoring ones that are gone)."""
    names_q = [QUEUE]
    names_x = [QUEUE, QUEUE + ".ctl.pidbox", "reply." + QUEUE + ".ctl.pidbox", QUEUE + ".ev"]
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        for q in names_q:
            with conn.channel() as ch:
                try:
                    ch.queue_delete(q)
                except Exception as e:  # noqa: BLE001 - best effort
                    log("cleanup: queue %s: %s" % (q, e))
        for x in names_x:
            with conn.channel() as ch:
                try:
                    ch.exchange_delete(x)
                except Exception as e:  # noqa: BLE001 - best effort
                    log("cleanup: exchange %s: %s" % (x, e))


def main():
    try:
        run()
    finally:
        # Also after a failure (fail() raises SystemExit), so a failed run leaves nothing behind.
        try:
            cleanup()
        except Exception as e:  # noqa: BLE001 - best effort
            print("cleanup: %r" % e, flush=True)


def run():
    here = os.path.dirname(os.path.abspath(__file__))
    logf = tempfile.NamedTemporaryFile(prefix="warren-celery-worker-", suffix=".log", delete=False)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_roundtrip", "worker", "--pool=solo",
         "--concurrency=1", "--loglevel=INFO", "--hostname=warren-%s@localhost" % TAG],
        cwd=here, env=os.environ.copy(), stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in read(logf.name):
            if worker.poll() is not None:
                fail("worker exited with %d before it was ready" % worker.returncode, read(logf.name))
            if time.monotonic() > deadline:
                fail("worker not ready within 60s", read(logf.name))
            time.sleep(0.2)
        log("worker ready")

        try:
            r = add.delay(2, 3).get(timeout=20)
        except Exception as e:  # noqa: BLE001
            fail("add.delay(2, 3).get(): %r" % e, read(logf.name))
        if r != 5:
            fail("add.delay(2, 3).get() = %r, want 5" % r, read(logf.name))
        log("add.delay(2, 3).get() = 5")

        results = [add.delay(i, i * 10) for i in range(5)]
        got = [res.get(timeout=20) for res in results]
        if got != [i * 11 for i in range(5)]:
            fail("batch results %r" % got, read(logf.name))
        log("5 more tasks: %r" % got)

        res = boom.delay("kaboom")
        try:
            res.get(timeout=20)
            fail("failing task returned a result", read(logf.name))
        except ValueError as e:
            if "kaboom" not in str(e):
                fail("failing task raised %r" % e, read(logf.name))
        if res.state != "FAILURE":
            fail("failing task state %s, want FAILURE" % res.state, read(logf.name))
        log("failing task -> ValueError, state FAILURE")

        replies = app.control.ping(timeout=5)
        if not any(("warren-%s@localhost" % TAG) in r for r in replies):
            fail("control.ping got %r" % replies, read(logf.name))
        log("control.ping -> %r" % replies)
    finally:
        worker.terminate()  # warm shutdown
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
            print("worker did not stop on SIGTERM within 20s; killed", flush=True)
        logf.close()
    wl = read(logf.name)
    os.unlink(logf.name)
    # The failing task logs its own ERROR line; anything else is unexpected.
    bad = [ln for ln in wl.splitlines()
           if ("ERROR/" in ln or "CRITICAL/" in ln) and "celery_roundtrip.boom[" not in ln]
    if bad:
        fail("worker logged errors: %s" % bad, wl)


if __name__ == "__main__":
    main()
    log("OK")
