#!/usr/bin/env node
// @stomp/stompjs over ws:// (Web STOMP; the WebSocket from npm ws, as Node 20 has none)
// exchanging messages with amqplib (AMQP 0-9-1).
//
// Usage: node webstomp.js AMQP_URL WS_URL      (WS_URL: ws://host:port/ws)
//
// Checks, in order (exits 1 with a "FAIL: ..." line on the first mismatch):
//   1. stompjs connects (subprotocols v10/v11/v12.stomp offered; STOMP 1.2 and v12.stomp
//      agreed), guest/guest, vhost /
//   2. it subscribes to /topic/K with a receipt; an AMQP publish to amq.topic with key K reaches
//      it as a MESSAGE with the body and the content type
//   3. AMQP declares a queue Q; stompjs sends to /amq/queue/Q (UTF-8 body, a header); the AMQP
//      consumer gets the body and the header
//   4. stompjs deactivates; the AMQP connection closes
'use strict';

const { Client } = require('@stomp/stompjs');
const WebSocket = require('ws');
const amqp = require('amqplib');

function fail(msg) {
  console.log('FAIL: ' + msg);
  process.exit(1);
}

function log(msg) {
  console.log('webstomp: ' + msg);
}

function withTimeout(p, ms, what) {
  let timer;
  const timeout = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error('timeout: ' + what)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const [amqpURL, wsURL] = process.argv.slice(2);
  if (!amqpURL || !wsURL) fail('usage: node webstomp.js AMQP_URL WS_URL');
  const id = 'webstomp-' + process.pid + '-' + Date.now();

  let ws;
  const client = new Client({
    webSocketFactory: () => {
      ws = new WebSocket(wsURL, ['v10.stomp', 'v11.stomp', 'v12.stomp']);
      return ws;
    },
    connectHeaders: { login: 'guest', passcode: 'guest', host: '/' },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  const connected = new Promise((res, rej) => {
    client.onConnect = res;
    client.onStompError = (f) => rej(new Error('STOMP ERROR ' + f.headers.message + ' ' + f.body));
    client.onWebSocketError = (e) => rej(new Error('WebSocket error ' + (e && e.message)));
  });
  client.activate();
  const frame = await withTimeout(connected, 15000, 'STOMP connect');
  if (frame.headers.version !== '1.2') fail('CONNECTED version ' + frame.headers.version);
  if (ws.protocol !== 'v12.stomp') fail('subprotocol ' + JSON.stringify(ws.protocol));
  log('connected over ' + wsURL + ' (' + ws.protocol + ')');

  const received = [];
  let onMessage = null;
  const subscribed = new Promise((res) => client.watchForReceipt('sub-' + id, res));
  client.subscribe('/topic/' + id, (m) => {
    received.push(m);
    if (onMessage) onMessage();
  }, { receipt: 'sub-' + id });
  await withTimeout(subscribed, 10000, 'SUBSCRIBE receipt');

  const conn = await amqp.connect(amqpURL);
  const ch = await conn.createChannel();
  ch.publish('amq.topic', id, Buffer.from('from amqp ✓'), { contentType: 'text/plain' });
  await withTimeout(new Promise((res) => {
    if (received.length > 0) return res();
    onMessage = res;
  }), 10000, 'the AMQP message over STOMP');
  const m = received[0];
  if (m.body !== 'from amqp ✓' || m.headers['content-type'] !== 'text/plain') {
    fail('got ' + JSON.stringify(m.body) + ' ' + JSON.stringify(m.headers));
  }
  log('AMQP -> STOMP ok');

  const q = await ch.assertQueue(id, { exclusive: false, autoDelete: false });
  client.publish({ destination: '/amq/queue/' + q.queue, body: 'héllo from the browser', headers: { 'x-test': 'yes' } });
  const d = await withTimeout(new Promise((res) => {
    ch.consume(q.queue, (msg) => {
      if (msg === null) return; // the consumer is cancelled when the queue is deleted
      ch.ack(msg);
      res(msg);
    });
  }), 10000, 'the STOMP message over AMQP');
  if (d.content.toString() !== 'héllo from the browser' || d.properties.headers['x-test'] !== 'yes') {
    fail('AMQP got ' + JSON.stringify(d.content.toString()) + ' ' + JSON.stringify(d.properties.headers));
  }
  log('STOMP -> AMQP ok');
  await ch.deleteQueue(q.queue);

  await withTimeout(client.deactivate(), 10000, 'STOMP deactivate');
  await conn.close();
  log('OK');
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
