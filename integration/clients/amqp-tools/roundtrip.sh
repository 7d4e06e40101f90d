#!/usr/bin/env bash
# amqp-tools (librabbitmq's command-line tools) round trip against an AMQP 0-9-1 broker.
#
# Usage: roundtrip.sh AMQP_URL
#
# Checks (exits 1 with a "FAIL: ..." line on the first mismatch):
#   1. amqp-declare-queue -q NAME prints NAME; amqp-declare-queue -q "" prints a server-named queue
#   2. amqp-get on the empty queue exits 2 and prints nothing
#   3. amqp-publish -b (persistent, content-type, content-encoding, reply-to, headers) x3,
#      including a multi-line body and a body with non-ASCII bytes
#   4. amqp-get returns the first body exactly
#   5. amqp-consume -c 1 cat returns the second body exactly; amqp-consume -c 1 -p 1 the third
#   6. amqp-publish -l (one message per stdin line, newline kept) x3, amqp-consume -c 3 -A (no-ack) gets them
#      in order
#   7. amqp-consume -x -e amq.fanout ... with a server-named exclusive queue receives a message
#      published to amq.fanout while it runs
#   8. amqp-get of a missing queue fails with the broker's 404 NOT_FOUND text
#   9. amqp-publish to a missing exchange fails with 404 NOT_FOUND
#  10. amqp-delete-queue deletes both queues (prints the message count 0)
#
# librabbitmq parses "amqp://host:port/" as vhost "" (the empty string), unlike most clients,
# which read a lone trailing slash as vhost "/"; the URL is passed without it.
set -u

url=${1:?usage: roundtrip.sh AMQP_URL}
# amqp://u:p@h:p/ -> amqp://u:p@h:p (vhost "/"); amqp://u:p@h:p/%2F and /vh are kept as they are.
case $url in
  amqp://*/) url=${url%/} ;;
esac

for t in amqp-declare-queue amqp-publish amqp-get amqp-consume amqp-delete-queue; do
  command -v "$t" >/dev/null 2>&1 || { echo "FAIL: $t not found; install the Debian package amqp-tools"; exit 3; }
done

T=10 # seconds any one tool may take
tag="$$.$(date +%s%N)"
q="warren.clients.amqptools.q.$tag"
tmp=$(mktemp -d)
anon=""

cleanup() {
  timeout $T amqp-delete-queue --url="$url" -q "$q" >/dev/null 2>&1
  [ -n "$anon" ] && timeout $T amqp-delete-queue --url="$url" -q "$anon" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*.err; do [ -s "$f" ] && { echo "--- $(basename "$f")"; cat "$f"; }; done
  exit 1
}
log() { echo "amqp-tools: $*"; }

# run NAME CMD...: runs CMD with a timeout, stdout to $tmp/NAME.out, stderr to $tmp/NAME.err;
# returns CMD's exit status.
run() {
  local name=$1
  shift
  timeout $T "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
}

# 1. declare
run declare amqp-declare-queue --url="$url" -q "$q" || fail "amqp-declare-queue exited $?"
[ "$(cat "$tmp/declare.out")" = "$q" ] || fail "amqp-declare-queue printed '$(cat "$tmp/declare.out")', want '$q'"
run declare-anon amqp-declare-queue --url="$url" -q "" || fail "amqp-declare-queue -q '' exited $?"
anon=$(cat "$tmp/declare-anon.out")
case $anon in
  amq.gen-*) ;;
  *) fail "server-named queue is '$anon', want amq.gen-..." ;;
esac
log "declared $q and server-named $anon"

# 2. empty get
run get-empty amqp-get --url="$url" -q "$q"
rc=$?
[ $rc -eq 2 ] || fail "amqp-get on an empty queue exited $rc, want 2"
[ ! -s "$tmp/get-empty.out" ] || fail "amqp-get on an empty queue printed '$(cat "$tmp/get-empty.out")'"

# 3. publish three messages with properties
body1="first message"
body2=$'second\nmessage on\nthree lines'
body3="third: héllo wörld ✓ $tag"
i=0
for b in "$body1" "$body2" "$body3"; do
  i=$((i + 1))
  run "publish$i" amqp-publish --url="$url" -r "$q" -p -C text/plain -E utf-8 -t "reply.$tag" \
    -H "x-index: $i" -H "x-tag: $tag" -b "$b" || fail "amqp-publish $i exited $?"
done
log "published 3 messages with -b"

# 4. amqp-get
run get1 amqp-get --url="$url" -q "$q" || fail "amqp-get exited $?"
[ "$(cat "$tmp/get1.out")" = "$body1" ] || fail "amqp-get printed '$(cat "$tmp/get1.out")', want '$body1'"

# 5. amqp-consume -c 1
run consume2 amqp-consume --url="$url" -q "$q" -c 1 cat || fail "amqp-consume -c 1 exited $?"
[ "$(cat "$tmp/consume2.out")" = "$body2" ] || fail "amqp-consume printed '$(cat "$tmp/consume2.out")', want '$body2'"
run consume3 amqp-consume --url="$url" -q "$q" -c 1 -p 1 cat || fail "amqp-consume -c 1 -p 1 exited $?"
[ "$(cat "$tmp/consume3.out")" = "$body3" ] || fail "amqp-consume printed '$(cat "$tmp/consume3.out")', want '$body3'"
log "amqp-get and amqp-consume -c 1 returned the bodies in order"

# 6. line mode + no-ack consume
printf 'line one\nline two\nline three\n' >"$tmp/lines.in"
timeout $T amqp-publish --url="$url" -r "$q" -l <"$tmp/lines.in" >"$tmp/publish-l.out" 2>"$tmp/publish-l.err" ||
  fail "amqp-publish -l exited $?"
run consume-l amqp-consume --url="$url" -q "$q" -c 3 -A cat || fail "amqp-consume -c 3 -A exited $?"
# amqp-publish -l keeps each line's newline in the body.
[ "$(cat "$tmp/consume-l.out")" = $'line one\nline two\nline three' ] ||
  fail "amqp-consume -c 3 -A printed '$(cat "$tmp/consume-l.out")', want the three lines in order"
run get-empty2 amqp-get --url="$url" -q "$q"
rc=$?
[ $rc -eq 2 ] || fail "amqp-get after consuming everything exited $rc, want 2 (queue not empty?)"
log "amqp-publish -l + amqp-consume -c 3 -A OK"

# 7. exclusive server-named queue bound to amq.fanout, consumer running while we publish.
# (-r is required: amqp-tools 0.11 segfaults binding with -e but no -r.)
timeout 20 amqp-consume --url="$url" -x -e amq.fanout -r fanout -c 1 cat >"$tmp/fanout.out" 2>"$tmp/fanout.err" &
cpid=$!
# The consumer's queue and binding exist only once it has started; publish until it has one message.
for _ in $(seq 1 100); do
  kill -0 $cpid 2>/dev/null || break
  run publish-fanout amqp-publish --url="$url" -e amq.fanout -r ignored -b "fanout $tag" ||
    fail "amqp-publish to amq.fanout exited $?"
  sleep 0.1
done
wait $cpid
rc=$?
[ $rc -eq 0 ] || fail "amqp-consume -x -e amq.fanout exited $rc"
[ "$(cat "$tmp/fanout.out")" = "fanout $tag" ] || fail "fanout consumer printed '$(cat "$tmp/fanout.out")'"
log "amqp-consume -x -e amq.fanout received a fanout message"

# 8. error: missing queue
run get-missing amqp-get --url="$url" -q "$q.missing"
rc=$?
[ $rc -ne 0 ] || fail "amqp-get of a missing queue succeeded"
grep -q "404" "$tmp/get-missing.err" && grep -q "NOT_FOUND" "$tmp/get-missing.err" ||
  fail "amqp-get of a missing queue: stderr '$(cat "$tmp/get-missing.err")', want a 404 NOT_FOUND error"
log "amqp-get of a missing queue -> $(cat "$tmp/get-missing.err")"
rm -f "$tmp/get-missing.err"

# 9. error: missing exchange
run publish-missing amqp-publish --url="$url" -e "warren.clients.amqptools.nox.$tag" -r x -b lost
rc=$?
[ $rc -ne 0 ] || fail "amqp-publish to a missing exchange succeeded"
grep -q "404" "$tmp/publish-missing.err" ||
  fail "amqp-publish to a missing exchange: stderr '$(cat "$tmp/publish-missing.err")', want a 404 error"
log "amqp-publish to a missing exchange -> $(cat "$tmp/publish-missing.err")"
rm -f "$tmp/publish-missing.err"

# 10. delete
run delete amqp-delete-queue --url="$url" -q "$q" || fail "amqp-delete-queue exited $?"
[ "$(cat "$tmp/delete.out")" = "0" ] || fail "amqp-delete-queue printed '$(cat "$tmp/delete.out")', want 0"
run delete-anon amqp-delete-queue --url="$url" -q "$anon" || fail "amqp-delete-queue (server-named) exited $?"
run get-deleted amqp-get --url="$url" -q "$q"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 2 ] || fail "amqp-get after delete exited $rc, want an error"
rm -f "$tmp/get-deleted.err"
log "deleted both queues"
log "OK"
