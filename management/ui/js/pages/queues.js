// Queues: the list with a declare form, and one queue's page (details, consumers, bindings,
// publish, get, a stream's browser, purge, delete).

import { api, path } from '../api.js';
import {
  add, h, table, kv, link, num, rate, bytes, time, statRate, features, stateCell, jsonText, isEmpty, field, input,
  select, actionForm, argsEditor, confirmButton, statusLine, setStatus, clearStatus, showError,
  vhostSelect, isApiError, redraw,
} from '../dom.js';
import { QUEUE_ARG_HINTS, bindingsTable, bindForm, publishForm, flash, takeFlash, filterBar } from './common.js';

const MAX_ROWS = 500;

export function renderList(ctx) {
  ctx.title('Queues');
  const status = statusLine();
  const note = takeFlash();
  if (note) setStatus(status, 'ok', note);
  const holder = h('div', { id: 'queues-table' });
  let queues = null;
  const draw = () => {
    if (!queues) return;
    const shown = queues.filter(filter.match);
    redraw(holder,
      table([
        { title: 'Virtual host', value: q => q.vhost },
        { title: 'Name', className: 'name', value: q => link(q.name, 'queues', q.vhost, q.name) },
        { title: 'Type', value: q => q.type || 'classic' },
        { title: 'Features', value: q => features(q) },
        { title: 'State', value: q => stateCell(q.state) },
        { title: 'Consumers', num: true, value: q => num(q.consumers) },
        { title: 'Ready', num: true, value: q => num(q.messages_ready) },
        { title: 'Unacked', num: true, value: q => num(q.messages_unacknowledged) },
        { title: 'Total', num: true, value: q => num(q.messages) },
        { title: 'Incoming', num: true, value: q => rate(statRate(q, 'publish')) },
        { title: 'Deliver / get', num: true, value: q => rate(statRate(q, 'deliver_get')) },
        { title: 'Ack', num: true, value: q => rate(statRate(q, 'ack')) },
      ], shown.slice(0, MAX_ROWS), { id: 'queues', rowName: q => q.name, empty: queues.length ? 'No queue matches the filter.' : 'No queues yet.' }),
      h('p', { className: 'muted' }, shown.length > MAX_ROWS
        ? `Showing ${MAX_ROWS} of ${num(shown.length)} matching queues; narrow the filter to see the rest.`
        : `${num(shown.length)} of ${num(queues.length)} queues.`),
    );
  };
  const filter = filterBar(draw);
  const refresh = async () => {
    try {
      queues = await api.get('queues');
      draw();
    } catch (err) {
      showError(status, err);
    }
  };
  add(ctx.view,
    h('h1', {}, 'Queues'),
    status,
    h('section', { className: 'panel', 'aria-labelledby': 'queues-list-title' },
      h('h2', { id: 'queues-list-title' }, 'All queues'), filter.el, holder),
    h('section', { className: 'panel', 'aria-labelledby': 'declare-queue-title' },
      h('h2', { id: 'declare-queue-title' }, 'Add a new queue'), declareQueueForm(refresh)),
  );
  ctx.every(refresh);
}

function declareQueueForm(refresh) {
  const vhost = vhostSelect(api);
  const name = input('name', { required: true, autocomplete: 'off' });
  const durable = select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true');
  const autoDelete = select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false');
  const args = argsEditor({ legend: 'Arguments', hints: QUEUE_ARG_HINTS });
  return actionForm({
    id: 'declare-queue',
    fields: [
      h('div', { className: 'form-grid' },
        field('Virtual host', vhost), field('Name', name), field('Durability', durable), field('Auto delete', autoDelete)),
      args.el,
    ],
    submit: 'Add queue',
    action: async form => {
      if (name.value === '') throw new Error('Enter a queue name.');
      const q = name.value;
      await api.put('queues/' + path(vhost.value, q), {
        durable: durable.value === 'true',
        auto_delete: autoDelete.value === 'true',
        arguments: args.value(),
      });
      name.value = '';
      args.reset();
      await refresh();
      return `Queue ${q} declared.`;
    },
  });
}

export function renderQueue(ctx) {
  const [vhost, name] = ctx.params;
  ctx.title(`Queue ${name}`);
  const qpath = 'queues/' + path(vhost, name);
  const status = statusLine();
  const details = h('div', { id: 'queue-details' });
  const consumers = h('div', { id: 'queue-consumers' });
  const bindings = h('div', { id: 'queue-bindings-holder' });
  const bindStatus = statusLine();
  let gone = false;

  const refreshDetails = async () => {
    if (gone) return;
    let q;
    try {
      q = await api.get(qpath);
    } catch (err) {
      showError(status, err);
      if (isApiError(err, 404)) details.replaceChildren(h('p', {}, 'This queue does not exist (any more).'));
      return;
    }
    clearStatus(status);
    browsePanel.hidden = q.type !== 'stream';
    const counter = (id, v) => h('span', { id }, num(v));
    details.replaceChildren(kv([
      ['Virtual host', q.vhost],
      ['Type', q.type || 'classic'],
      ['Features', features(q).length ? features(q) : 'none'],
      ['Arguments', isEmpty(q.arguments) ? undefined : h('code', {}, jsonText(q.arguments))],
      ['Policy', q.policy || undefined],
      ['State', stateCell(q.state)],
      ['Consumers', counter('queue-consumer-count', q.consumers)],
      ['Messages ready', counter('queue-messages-ready', q.messages_ready)],
      ['Messages unacked', counter('queue-messages-unacked', q.messages_unacknowledged)],
      ['Messages total', counter('queue-messages', q.messages)],
      ['Message bytes', typeof q.message_bytes === 'number' ? bytes(q.message_bytes) : undefined],
      ['Incoming rate', rate(statRate(q, 'publish'))],
      ['Deliver / get rate', rate(statRate(q, 'deliver_get'))],
      ['Ack rate', rate(statRate(q, 'ack'))],
      ['Exclusive owner', q.owner_pid_details ? q.owner_pid_details.name : undefined],
    ]));
    consumers.replaceChildren(table([
      { title: 'Channel', className: 'name', value: c => c.channel_details ? c.channel_details.name : '' },
      { title: 'Consumer tag', className: 'name', value: c => c.consumer_tag },
      { title: 'Ack required', value: c => c.ack_required ? 'yes' : 'no' },
      { title: 'Exclusive', value: c => c.exclusive ? 'yes' : 'no' },
      { title: 'Prefetch', num: true, value: c => num(c.prefetch_count) },
      { title: 'Arguments', value: c => isEmpty(c.arguments) ? '' : h('code', {}, jsonText(c.arguments)) },
    ], q.consumer_details || [], { empty: 'No consumers.' }));
  };

  const refreshBindings = async () => {
    if (gone) return;
    try {
      const list = await api.get(qpath + '/bindings');
      redraw(bindings, bindingsTable(list || [], { show: 'source', status: bindStatus, refresh: refreshBindings, id: 'queue-bindings' }));
    } catch (err) {
      if (!isApiError(err, 404)) showError(bindStatus, err);
    }
  };

  const exchangeNames = async () => (await api.get('exchanges/' + path(vhost))).map(e => e.name);

  const getResults = h('div', { id: 'get-results', 'aria-live': 'polite' });
  const browseResults = h('div', { id: 'browse-results', 'aria-live': 'polite' });
  // A stream's browser: shown once the details say the queue is a stream.
  const browsePanel = h('section', { className: 'panel', id: 'queue-browse-panel', hidden: true, 'aria-labelledby': 'q-browse-title' },
    h('h2', { id: 'q-browse-title' }, 'Browse stream'),
    h('p', { className: 'muted' }, 'Reads messages from an offset or a point in time without consuming anything.'),
    browseForm(qpath, browseResults), browseResults);
  const dangerStatus = statusLine();

  add(ctx.view,
    h('p', { className: 'crumbs' }, link('Queues', 'queues'), ` › virtual host ${vhost}`),
    h('h1', {}, 'Queue ', h('span', { id: 'queue-name' }, name)),
    status,
    h('section', { className: 'panel', 'aria-labelledby': 'q-details-title' },
      h('h2', { id: 'q-details-title' }, 'Details'), details),
    h('div', { className: 'two-col' },
      h('section', { className: 'panel', 'aria-labelledby': 'q-bindings-title' },
        h('h2', { id: 'q-bindings-title' }, 'Bindings'), bindStatus, bindings,
        h('h3', {}, 'Add binding to this queue'),
        bindForm({ id: 'queue-bind', vhost, fixed: { destination: name, destinationType: 'queue' }, refresh: refreshBindings, exchanges: exchangeNames })),
      h('section', { className: 'panel', 'aria-labelledby': 'q-consumers-title' },
        h('h2', { id: 'q-consumers-title' }, 'Consumers'), consumers)),
    h('div', { className: 'two-col' },
      h('section', { className: 'panel', 'aria-labelledby': 'q-publish-title' },
        h('h2', { id: 'q-publish-title' }, 'Publish message'),
        h('p', { className: 'muted' }, 'Published through the default exchange with the queue name as routing key.'),
        publishForm({ id: 'queue-publish', vhost, exchange: '', routingKey: name, after: refreshDetails })),
      h('section', { className: 'panel', 'aria-labelledby': 'q-get-title' },
        h('h2', { id: 'q-get-title' }, 'Get messages'),
        h('p', { className: 'muted' }, 'Getting messages is a destructive action: with "Nack message requeue true" they go back to the queue marked redelivered.'),
        getForm(qpath, getResults, refreshDetails), getResults)),
    browsePanel,
    h('section', { className: 'panel', 'aria-labelledby': 'q-danger-title' },
      h('h2', { id: 'q-danger-title' }, 'Purge or delete'),
      h('div', { className: 'actions' },
        confirmButton({
          label: 'Purge messages',
          question: `Purge all ready messages from ${name}?`,
          yes: 'Yes, purge',
          status: dangerStatus,
          action: async () => {
            await api.del(qpath + '/contents');
            await refreshDetails();
            return 'Queue purged.';
          },
        }),
        confirmButton({
          label: 'Delete queue',
          question: `Delete queue ${name}?`,
          yes: 'Yes, delete',
          status: dangerStatus,
          action: async () => {
            await api.del(qpath);
            gone = true;
            flash(`Queue ${name} deleted.`);
            ctx.go('#/queues');
          },
        })),
      dangerStatus),
  );
  ctx.every(refreshDetails);
  ctx.every(refreshBindings);
}

function getForm(qpath, results, after) {
  const ackmode = select('ackmode', [
    ['ack_requeue_true', 'Nack message requeue true'],
    ['ack_requeue_false', 'Automatic ack'],
    ['reject_requeue_true', 'Reject requeue true'],
    ['reject_requeue_false', 'Reject requeue false'],
  ], 'ack_requeue_true');
  const encoding = select('encoding', [['auto', 'Automatic string/base64'], ['base64', 'Base64 string']], 'auto');
  const count = input('count', { type: 'number', min: 1, value: '1', required: true });
  const truncate = input('truncate', { type: 'number', min: 1, value: '50000' });
  return actionForm({
    id: 'queue-get',
    fields: [h('div', { className: 'form-grid' },
      field('Ack mode', ackmode), field('Encoding', encoding), field('Messages', count), field('Truncate payload at (bytes)', truncate))],
    submit: 'Get messages',
    action: async () => {
      const body = { count: Number(count.value) || 1, ackmode: ackmode.value, encoding: encoding.value };
      if (truncate.value !== '') body.truncate = Number(truncate.value);
      const msgs = await api.post(qpath + '/get', body);
      results.replaceChildren(...renderMessages(msgs || []));
      await after();
      return msgs && msgs.length ? `${msgs.length} message${msgs.length === 1 ? '' : 's'} fetched.` : 'Queue is empty.';
    },
  });
}

// browseForm reads a stream's messages from an offset (first, last or a number) or a time.
function browseForm(qpath, results) {
  const from = select('from', [['first', 'First'], ['last', 'Last chunk'], ['offset', 'Offset'], ['timestamp', 'Time']], 'first');
  const offset = input('offset', { type: 'number', min: 0, value: '0' });
  const when = input('timestamp', { type: 'datetime-local', step: 1 });
  const count = input('count', { type: 'number', min: 1, max: 1000, value: '20', required: true });
  const encoding = select('encoding', [['auto', 'Automatic string/base64'], ['base64', 'Base64 string']], 'auto');
  return actionForm({
    id: 'queue-browse',
    fields: [h('div', { className: 'form-grid' },
      field('From', from), field('Offset', offset), field('Time (local)', when), field('Messages', count), field('Encoding', encoding))],
    submit: 'Browse',
    action: async () => {
      const q = new URLSearchParams({ count: String(Number(count.value) || 20), encoding: encoding.value });
      if (from.value === 'offset') q.set('offset', String(Number(offset.value) || 0));
      else if (from.value === 'timestamp') {
        const ms = new Date(when.value).getTime();
        if (Number.isNaN(ms)) throw new Error('Choose a time to browse from.');
        q.set('timestamp', String(ms));
      } else q.set('offset', from.value);
      const msgs = await api.get(qpath + '/messages?' + q.toString());
      results.replaceChildren(...renderMessages(msgs || []));
      return msgs && msgs.length ? `${msgs.length} message${msgs.length === 1 ? '' : 's'} read.` : 'No messages there.';
    },
  });
}

function renderMessages(msgs) {
  return msgs.map((m, i) => {
    const props = Object.entries(m.properties || {}).map(([k, v]) => [k, h('code', {}, jsonText(v))]);
    const browsed = typeof m.offset === 'number';
    return h('article', { className: 'message', 'aria-label': browsed ? `Offset ${m.offset}` : `Message ${i + 1}` },
      h('h3', {}, browsed ? `Offset ${m.offset}` : `Message ${i + 1}`),
      kv([
        ['Offset', browsed ? h('span', { className: 'offset' }, num(m.offset)) : undefined],
        ['Timestamp', typeof m.timestamp === 'number' ? time(m.timestamp) : undefined],
        ['Exchange', m.exchange === '' ? '(AMQP default)' : m.exchange],
        ['Routing key', h('code', {}, m.routing_key)],
        ['Redelivered', browsed ? undefined : (m.redelivered ? 'yes' : 'no')],
        ['Remaining in queue', browsed ? undefined : num(m.message_count)],
        ...props,
        ['Payload', `${num(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`],
      ]),
      h('pre', { className: 'payload' }, m.payload ?? ''));
  });
}
