#!/usr/bin/env node
// amqplib (promise API) round trip against an AMQP 0-9-1 broker.
//
// Usage: node roundtrip.js AMQP_URL [N]
//
// Checks, in order (exits 1 with a "FAIL: ..." line on the first mismatch):
//   1. connect; the server's capabilities include publisher_confirms, basic.nack,
//      consumer_cancel_notify
//   2. checkQueue (passive declare) of a missing queue on a throwaway channel -> the channel
//      closes with 404 NOT_FOUND (error.code === 404); the connection survives
//   3. ConfirmChannel: assertExchange (fanout) + assertQueue + bindQueue; publish N messages
//      with properties (contentType, contentEncoding, headers, persistent, priority,
//      correlationId, replyTo, messageId, timestamp, type, appId); every publish callback is
//      called without error and waitForConfirms resolves
//   4. a mandatory publish to an exchange with no bindings -> 'return' event with 312 NO_ROUTE
//      (and the confirm still arrives)
//   5. checkQueue reports N messages; get() the first 3 (one nack+requeue comes back
//      redelivered); consume() the rest with prefetch 2; bodies, properties, order
//   6. cancel, queue empty; unbind, deleteQueue, deleteExchange, close
'use strict';

const amqp = require('amqplib');

function fail(msg) {
  console.log('FAIL: ' + msg);
  process.exit(1);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

function log(msg) {
  console.log('amqplib: ' + msg);
}

function bodyFor(i) {
  return Buffer.from(JSON.stringify({ n: i, pad: 'y'.repeat(i * 53) }));
}

function propsFor(i, n) {
  return {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: { index: i, str: 'node-' + i, flag: i % 2 === 0, nested: { a: 'b' }, list: [1, 'two'] },
    persistent: true,
    priority: i % 10,
    correlationId: 'corr-' + i,
    replyTo: 'amq.rabbitmq.reply-to.like',
    messageId: 'msg-' + i + '-of-' + n,
    timestamp: 1700000000 + i,
    type: 'test.message',
    appId: 'warren-amqplib-test',
  };
}

function checkMessage(where, msg, i, n) {
  check(msg.content.equals(bodyFor(i)), `${where}: body ${msg.content.toString().slice(0, 40)}, want ${bodyFor(i).toString().slice(0, 40)}`);
  const p = msg.properties;
  const want = propsFor(i, n);
  const pairs = [
    ['contentType', p.contentType, want.contentType],
    ['contentEncoding', p.contentEncoding, want.contentEncoding],
    ['deliveryMode', p.deliveryMode, 2],
    ['priority', p.priority, want.priority],
    ['correlationId', p.correlationId, want.correlationId],
    ['replyTo', p.replyTo, want.replyTo],
    ['messageId', p.messageId, want.messageId],
    ['timestamp', p.timestamp, want.timestamp],
    ['type', p.type, want.type],
    ['appId', p.appId, want.appId],
  ];
  for (const [name, got, exp] of pairs) {
    check(got === exp, `${where}: property ${name} = ${JSON.stringify(got)}, want ${JSON.stringify(exp)}`);
  }
  const gh = JSON.stringify(p.headers);
  const wh = JSON.stringify(want.headers);
  check(gh === wh, `${where}: headers ${gh}, want ${wh}`);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms}ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function main() {
  const url = process.argv[2];
  if (!url) {
    console.log('usage: node roundtrip.js AMQP_URL [N]');
    process.exit(2);
  }
  const n = parseInt(process.argv[3] || '10', 10);
  const tag = `${process.pid}.${Date.now()}`;
  const qname = 'warren.clients.amqplib.q.' + tag;
  const xname = 'warren.clients.amqplib.x.' + tag;
  const xlonely = 'warren.clients.amqplib.unbound.' + tag;

  const conn = await withTimeout(amqp.connect(url, { timeout: 10000 }), 15000, 'connect');
  conn.on('error', (err) => fail('connection error: ' + err.message));
  const sp = conn.connection.serverProperties;
  log(`connected to ${sp.product} ${sp.version}`);
  for (const cap of ['publisher_confirms', 'basic.nack', 'consumer_cancel_notify']) {
    check(sp.capabilities && sp.capabilities[cap] === true, `server capability ${cap} not advertised`);
  }

  // 2. error case.
  {
    const ch = await conn.createChannel();
    let chErr = null;
    ch.on('error', (err) => { chErr = err; });
    const closed = new Promise((resolve) => ch.on('close', resolve));
    let err = null;
    try {
      await withTimeout(ch.checkQueue(qname + '.missing'), 10000, 'checkQueue');
    } catch (e) {
      err = e;
    }
    check(err !== null, 'checkQueue of a missing queue succeeded');
    check(err.code === 404, `checkQueue of a missing queue: code ${err.code} (${err.message}), want 404`);
    await withTimeout(closed, 10000, 'channel close after 404');
    check(chErr !== null && chErr.code === 404, 'channel emitted no 404 error event');
    log(`checkQueue of missing queue -> ${err.code}: ${err.message.split('\n')[0]}`);
  }

  // 3. confirm channel, topology, publish.
  const ch = await conn.createConfirmChannel();
  ch.on('error', (err) => fail('channel error: ' + err.message));
  const returned = [];
  ch.on('return', (msg) => returned.push(msg));

  await ch.assertExchange(xname, 'fanout', { durable: false, autoDelete: false });
  await ch.assertExchange(xlonely, 'direct', { durable: false, autoDelete: false });
  const q = await ch.assertQueue(qname, { durable: true, exclusive: false, autoDelete: false });
  check(q.queue === qname && q.messageCount === 0 && q.consumerCount === 0, `assertQueue -> ${JSON.stringify(q)}`);
  await ch.bindQueue(qname, xname, 'ignored-by-fanout');

  const confirms = [];
  for (let i = 0; i < n; i++) {
    confirms.push(new Promise((resolve, reject) => {
      ch.publish(xname, 'rk.' + i, bodyFor(i), propsFor(i, n), (err) => (err ? reject(new Error(`publish ${i} nacked`)) : resolve()));
    }));
  }
  await withTimeout(Promise.all(confirms), 10000, 'publisher confirms');
  await withTimeout(ch.waitForConfirms(), 10000, 'waitForConfirms');
  log(`published ${n} messages, all confirmed`);

  // 4. mandatory unroutable publish.
  await withTimeout(new Promise((resolve, reject) => {
    ch.publish(xlonely, 'nowhere', Buffer.from('lost'), { mandatory: true, correlationId: 'unroutable' },
      (err) => (err ? reject(new Error('unroutable publish nacked')) : resolve()));
  }), 10000, 'confirm of unroutable publish');
  check(returned.length === 1, `got ${returned.length} basic.return, want 1`);
  const r = returned[0];
  check(r.fields.replyCode === 312 && r.fields.replyText === 'NO_ROUTE', `basic.return ${r.fields.replyCode} ${r.fields.replyText}`);
  check(r.fields.exchange === xlonely && r.fields.routingKey === 'nowhere', `basic.return names ${r.fields.exchange}/${r.fields.routingKey}`);
  check(r.content.toString() === 'lost' && r.properties.correlationId === 'unroutable', 'returned message altered');
  log('mandatory unroutable publish -> basic.return 312 NO_ROUTE');

  // 5. get + consume.
  const info = await ch.checkQueue(qname);
  check(info.messageCount === n, `checkQueue reports ${info.messageCount} messages, want ${n}`);

  let m = await ch.get(qname, { noAck: false });
  check(m !== false, 'get on a non-empty queue returned false');
  check(!m.fields.redelivered, 'first get already redelivered');
  ch.nack(m, false, true);
  const nget = Math.min(3, n);
  for (let i = 0; i < nget; i++) {
    m = await ch.get(qname, { noAck: false });
    check(m !== false, `get ${i} returned false`);
    checkMessage(`get ${i}`, m, i, n);
    check(m.fields.redelivered === (i === 0), `get ${i}: redelivered=${m.fields.redelivered}`);
    check(m.fields.exchange === xname && m.fields.routingKey === 'rk.' + i, `get ${i}: ${m.fields.exchange}/${m.fields.routingKey}`);
    check(m.fields.messageCount === n - i - 1, `get ${i}: messageCount ${m.fields.messageCount}, want ${n - i - 1}`);
    ch.ack(m);
  }

  await ch.prefetch(2);
  const want = n - nget;
  let got = 0;
  let consumerTag;
  await withTimeout(new Promise((resolve, reject) => {
    ch.consume(qname, (msg) => {
      try {
        if (msg === null) throw new Error('consumer cancelled by server');
        const i = nget + got;
        checkMessage(`consume ${i}`, msg, i, n);
        check(!msg.fields.redelivered, `consume ${i}: redelivered`);
        ch.ack(msg);
        got++;
        if (got === want) resolve();
      } catch (e) {
        reject(e);
      }
    }, { noAck: false }).then((ok) => { consumerTag = ok.consumerTag; if (want === 0) resolve(); }, reject);
  }), 20000, `consume (${got} of ${want})`);
  await ch.cancel(consumerTag);
  log(`get ${nget} (one nack+requeue redelivered) + consume ${got} messages, intact and in order`);

  // 6. clean up.
  check((await ch.get(qname, { noAck: true })) === false, 'queue not empty at the end');
  await ch.unbindQueue(qname, xname, 'ignored-by-fanout');
  const del = await ch.deleteQueue(qname);
  check(del.messageCount === 0, `deleteQueue reports ${del.messageCount} messages`);
  await ch.deleteExchange(xname, { ifUnused: true });
  await ch.deleteExchange(xlonely);
  await ch.close();
  await conn.close();
  log('OK');
}

// Any rejection is a failure; the whole script is bounded too.
const guard = setTimeout(() => fail('round trip did not finish within 60s'), 60000);
main().then(() => clearTimeout(guard), (err) => fail(err && err.stack ? err.stack : String(err)));
