// Pieces shared by the queue and exchange pages: binding tables, the binding form, the publish
// form, and a one-shot message carried from one page to the next.

import { api, path, exchangeSegment } from '../api.js';
import {
  h, table, link, jsonText, isEmpty, field, input, select, actionForm, argsEditor, confirmButton,
  exchangeLabel, uid,
} from '../dom.js';

let flashText = '';

// flash keeps a message for the next page (say, "Queue x deleted." on the queue list).
export function flash(text) {
  flashText = text;
}

export function takeFlash() {
  const t = flashText;
  flashText = '';
  return t;
}

export const QUEUE_ARG_HINTS = [
  ['x-message-ttl', 'number', 'Message TTL'],
  ['x-expires', 'number', 'Auto expire'],
  ['x-max-length', 'number', 'Max length'],
  ['x-max-length-bytes', 'number', 'Max length bytes'],
  ['x-overflow', 'string', 'Overflow behaviour'],
  ['x-dead-letter-exchange', 'string', 'Dead letter exchange'],
  ['x-dead-letter-routing-key', 'string', 'Dead letter routing key'],
  ['x-max-priority', 'number', 'Maximum priority'],
  ['x-single-active-consumer', 'boolean', 'Single active consumer'],
  ['x-queue-type', 'string', 'Queue type'],
];

export const EXCHANGE_ARG_HINTS = [
  ['alternate-exchange', 'string', 'Alternate exchange'],
];

// bindingLink shows one end of a binding as a link to its page.
export function bindingEnd(vhost, name, type) {
  if (type === 'queue') return link(name, 'queues', vhost, name);
  if (name === '') return h('span', { className: 'muted' }, '(AMQP default)');
  return link(exchangeLabel(name), 'exchanges', vhost, name);
}

// unbindPath is the DELETE path of a binding object as the API returns it.
export function unbindPath(b) {
  const kind = b.destination_type === 'queue' ? 'q' : 'e';
  return 'bindings/' + path(b.vhost, 'e', b.source, kind, b.destination, b.properties_key);
}

// bindingsTable lists bindings with an Unbind button each. show: which end to show ('source',
// 'destination' or both). Bindings from the default exchange cannot be removed.
export function bindingsTable(bindings, { show, status, refresh, id }) {
  const cols = [];
  if (show !== 'destination') cols.push({ title: 'From', className: 'name', value: b => bindingEnd(b.vhost, b.source, 'exchange') });
  if (show !== 'source') {
    cols.push({ title: 'To', className: 'name', value: b => bindingEnd(b.vhost, b.destination, b.destination_type) });
    cols.push({ title: 'Type', value: b => b.destination_type });
  }
  cols.push(
    { title: 'Routing key', className: 'name', value: b => h('code', {}, b.routing_key) },
    { title: 'Arguments', value: b => isEmpty(b.arguments) ? '' : h('code', {}, jsonText(b.arguments)) },
    {
      title: 'Action',
      value: b => b.source === ''
        ? h('span', { className: 'muted' }, 'Default binding')
        : confirmButton({
          label: 'Unbind',
          className: 'small',
          question: 'Remove this binding?',
          yes: 'Yes, unbind',
          status,
          action: async () => {
            await api.del(unbindPath(b));
            if (refresh) await refresh();
            return 'Binding removed.';
          },
        }),
    },
  );
  return table(cols, bindings, { id, empty: 'No bindings.', className: 'bindings' });
}

// bindForm adds a binding. fixed: {source} or {destination, destinationType}; the other end is
// asked for. exchanges: a function giving the vhost's exchange names for the suggestion list.
export function bindForm({ id, vhost, fixed, refresh, exchanges }) {
  const listId = uid('exchanges');
  const datalist = h('datalist', { id: listId });
  if (exchanges) {
    exchanges().then(names => datalist.replaceChildren(...names.filter(n => n !== '').map(n => h('option', { value: n })))).catch(() => {});
  }
  const rk = input('routing_key', { autocomplete: 'off' });
  const args = argsEditor({ legend: 'Arguments' });
  let other;
  let destType;
  const fields = [];
  if (fixed.source !== undefined) {
    destType = select('destination_type', [['queue', 'To queue'], ['exchange', 'To exchange']]);
    other = input('destination', { required: true, autocomplete: 'off' });
    fields.push(h('div', { className: 'form-grid' }, field('Destination type', destType), field('Destination name', other), field('Routing key', rk)));
  } else {
    other = input('source', { required: true, autocomplete: 'off' });
    other.setAttribute('list', listId);
    fields.push(h('div', { className: 'form-grid' }, field('From exchange', other), field('Routing key', rk)));
  }
  fields.push(args.el, datalist);
  return actionForm({
    id,
    fields,
    submit: 'Bind',
    action: async form => {
      const name = other.value;
      if (name === '') throw new Error('Enter the name of the other end of the binding.');
      const body = { routing_key: rk.value, arguments: args.value() };
      let p;
      if (fixed.source !== undefined) {
        const kind = destType.value === 'queue' ? 'q' : 'e';
        p = 'bindings/' + path(vhost, 'e', fixed.source, kind, name);
      } else {
        const kind = fixed.destinationType === 'queue' ? 'q' : 'e';
        p = 'bindings/' + path(vhost, 'e', name, kind, fixed.destination);
      }
      await api.post(p, body);
      form.reset();
      args.reset();
      if (refresh) await refresh();
      return 'Binding added.';
    },
  });
}

const PROPERTY_NAMES = [
  'content_type', 'content_encoding', 'priority', 'correlation_id', 'reply_to', 'expiration',
  'message_id', 'timestamp', 'type', 'user_id', 'app_id', 'cluster_id',
];
const NUMERIC_PROPERTIES = new Set(['priority', 'timestamp']);

// publishForm publishes one message through POST /api/exchanges/{vhost}/{exchange}/publish.
// routingKey: a fixed key (publishing to a queue through the default exchange) or undefined to ask.
export function publishForm({ id, vhost, exchange, routingKey, after }) {
  const rk = routingKey === undefined ? input('routing_key', { autocomplete: 'off' }) : null;
  const mode = select('delivery_mode', [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '1');
  const headers = argsEditor({ legend: 'Headers' });
  const props = argsEditor({ legend: 'Properties', keyList: PROPERTY_NAMES });
  const payload = h('textarea', { name: 'payload', id: uid('payload'), rows: 5 });
  const encoding = select('payload_encoding', [['string', 'String'], ['base64', 'Base64']], 'string');
  const fields = [
    h('div', { className: 'form-grid' },
      rk ? field('Routing key', rk) : null,
      field('Delivery mode', mode),
      field('Payload encoding', encoding)),
    headers.el,
    props.el,
    field('Payload', payload),
  ];
  return actionForm({
    id,
    fields,
    submit: 'Publish message',
    action: async () => {
      const properties = { delivery_mode: Number(mode.value) };
      const hdrs = headers.value();
      if (!isEmpty(hdrs)) properties.headers = hdrs;
      for (const [k, v] of Object.entries(props.value())) {
        properties[k] = NUMERIC_PROPERTIES.has(k) && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
      }
      const res = await api.post('exchanges/' + path(vhost, exchangeSegment(exchange)) + '/publish', {
        properties,
        routing_key: rk ? rk.value : routingKey,
        payload: payload.value,
        payload_encoding: encoding.value,
      });
      if (after) await after();
      if (res && res.routed === false) return { kind: 'info', text: 'Message published, but not routed to any queue.' };
      return 'Message published.';
    },
  });
}

// filterBar is the name filter and vhost choice above a list; onChange re-renders.
export function filterBar(onChange) {
  const name = input('filter', { type: 'search', placeholder: 'part of a name', autocomplete: 'off' });
  const vhost = select('filter-vhost', [['', 'All']], '');
  api.get('vhosts').then(list => {
    vhost.append(...(list || []).map(v => h('option', { value: v.name }, v.name)));
  }).catch(() => {});
  name.addEventListener('input', onChange);
  vhost.addEventListener('change', onChange);
  const el = h('div', { className: 'toolbar' }, field('Filter by name', name), field('Virtual host', vhost));
  return {
    el,
    match: o => (vhost.value === '' || o.vhost === vhost.value) && o.name.toLowerCase().includes(name.value.toLowerCase()),
  };
}
