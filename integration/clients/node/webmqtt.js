#!/usr/bin/env node
// MQTT.js (npm mqtt) over ws:// (Web MQTT) exchanging messages with amqplib (AMQP 0-9-1).
//
// Usage: node webmqtt.js AMQP_URL WS_URL      (WS_URL: ws://host:port/ws)
//
// Checks, in order (exits 1 with a "FAIL: ..." line on the first mismatch):
//   1. MQTT.js connects over the WebSocket (MQTT 3.1.1, clean session, guest/guest)
//   2. it subscribes to T/in/# at QoS 1; an AMQP publish to amq.topic with key T.in.a reaches
//      it as a PUBLISH on T/in/a with the body
//   3. AMQP binds an exclusive queue to amq.topic with T.out; MQTT.js publishes at QoS 1 on
//      T/out (the puback arrives); the AMQP consumer gets the payload, a UTF-8 string and
//      a binary one with every byte value
//   4. MQTT.js ends cleanly; the AMQP connection closes
'use strict';

const mqtt = require('mqtt');
const amqp = require('amqplib');

function fail(msg) {
  console.log('FAIL: ' + msg);
  process.exit(1);
}

function log(msg) {
  console.log('webmqtt: ' + msg);
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
  if (!amqpURL || !wsURL) fail('usage: node webmqtt.js AMQP_URL WS_URL');
  const id = 'webmqtt-' + process.pid + '-' + Date.now();
  const topic = 'warren/' + id;
  const key = topic.replace(/\//g, '.');

  const client = mqtt.connect(wsURL, {
    clientId: id, username: 'guest', password: 'guest', clean: true, protocolVersion: 4,
    reconnectPeriod: 0, connectTimeout: 10000,
  });
  await withTimeout(new Promise((res, rej) => {
    client.once('connect', res);
    client.once('error', rej);
  }), 15000, 'MQTT connect');
  log('connected over ' + wsURL);

  const received = [];
  let onMessage = null;
  client.on('message', (t, payload) => {
    received.push({ topic: t, payload: Buffer.from(payload) });
    if (onMessage) onMessage();
  });
  const granted = await withTimeout(client.subscribeAsync(topic + '/in/#', { qos: 1 }), 10000, 'subscribe');
  if (granted.length !== 1 || granted[0].qos !== 1) fail('subscribe granted ' + JSON.stringify(granted));

  const conn = await amqp.connect(amqpURL);
  const ch = await conn.createChannel();
  ch.publish('amq.topic', key + '.in.a', Buffer.from('from amqp'));
  await withTimeout(new Promise((res) => {
    if (received.length > 0) return res();
    onMessage = res;
  }), 10000, 'the AMQP message over MQTT');
  const m = received[0];
  if (m.topic !== topic + '/in/a' || m.payload.toString() !== 'from amqp') {
    fail('got ' + m.topic + ' ' + JSON.stringify(m.payload.toString()));
  }
  log('AMQP -> MQTT ok');

  const q = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(q.queue, 'amq.topic', key + '.out');
  const bin = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) bin[i] = i;
  const payloads = [Buffer.from('héllo from the browser ✓'), bin];
  for (const p of payloads) {
    await withTimeout(client.publishAsync(topic + '/out', p, { qos: 1 }), 10000, 'publish');
  }
  const got = [];
  await withTimeout(new Promise((res) => {
    ch.consume(q.queue, (d) => {
      got.push(d.content);
      ch.ack(d);
      if (got.length === payloads.length) res();
    });
  }), 10000, 'the MQTT messages over AMQP');
  for (let i = 0; i < payloads.length; i++) {
    if (!got[i].equals(payloads[i])) fail('AMQP got ' + got[i].toString('hex') + ' want ' + payloads[i].toString('hex'));
  }
  log('MQTT -> AMQP ok');

  await withTimeout(client.endAsync(), 10000, 'MQTT end');
  await conn.close();
  log('OK');
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
