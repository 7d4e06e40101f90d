// Exchanges: the list with a declare form, and one exchange's page (details, bindings from and
// to it, add a binding, publish, delete).

import { api, path, exchangeSegment } from '../api.js';
import {
  add, h, table, kv, link, num, rate, statRate, features, jsonText, isEmpty, field, input, select,
  actionForm, argsEditor, confirmButton, statusLine, setStatus, clearStatus, showError, vhostSelect,
  exchangeLabel, isApiError, redraw,
} from '../dom.js';
import { EXCHANGE_ARG_HINTS, bindingsTable, bindForm, publishForm, flash, takeFlash, filterBar } from './common.js';

const MAX_ROWS = 500;

export function renderList(ctx) {
  ctx.title('Exchanges');
  const status = statusLine();
  const note = takeFlash();
  if (note) setStatus(status, 'ok', note);
  const holder = h('div', { id: 'exchanges-table' });
  let exchanges = null;
  const draw = () => {
    if (!exchanges) return;
    const shown = exchanges.filter(filter.match);
    redraw(holder,
      table([
        { title: 'Virtual host', value: e => e.vhost },
        { title: 'Name', className: 'name', value: e => link(exchangeLabel(e.name), 'exchanges', e.vhost, e.name) },
        { title: 'Type', value: e => e.type },
        { title: 'Features', value: e => features(e) },
        { title: 'Rate in', num: true, value: e => rate(statRate(e, 'publish_in')) },
        { title: 'Rate out', num: true, value: e => rate(statRate(e, 'publish_out')) },
      ], shown.slice(0, MAX_ROWS), { id: 'exchanges', rowName: e => e.name, empty: exchanges.length ? 'No exchange matches the filter.' : 'No exchanges.' }),
      h('p', { className: 'muted' }, shown.length > MAX_ROWS
        ? `Showing ${MAX_ROWS} of ${num(shown.length)} matching exchanges; narrow the filter to see the rest.`
        : `${num(shown.length)} of ${num(exchanges.length)} exchanges.`),
    );
  };
  const filter = filterBar(draw);
  const refresh = async () => {
    try {
      exchanges = await api.get('exchanges');
      draw();
    } catch (err) {
      showError(status, err);
    }
  };
  add(ctx.view,
    h('h1', {}, 'Exchanges'),
    status,
    h('section', { className: 'panel', 'aria-labelledby': 'exchanges-list-title' },
      h('h2', { id: 'exchanges-list-title' }, 'All exchanges'), filter.el, holder),
    h('section', { className: 'panel', 'aria-labelledby': 'declare-exchange-title' },
      h('h2', { id: 'declare-exchange-title' }, 'Add a new exchange'), declareExchangeForm(refresh)),
  );
  ctx.every(refresh);
}

function declareExchangeForm(refresh) {
  const vhost = vhostSelect(api);
  const name = input('name', { required: true, autocomplete: 'off' });
  const type = select('type', ['direct', 'fanout', 'headers', 'topic'], 'direct');
  // Offer the types the broker says it has.
  api.get('overview').then(o => {
    const types = (o.exchange_types || []).map(t => t.name).filter(Boolean);
    if (types.length) {
      const keep = type.value;
      type.replaceChildren(...types.map(t => h('option', { value: t }, t)));
      type.value = types.includes(keep) ? keep : types[0];
    }
  }).catch(() => {});
  const durable = select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true');
  const autoDelete = select('auto_delete', [['false', 'No'], ['true', 'Yes']], 'false');
  const internal = select('internal', [['false', 'No'], ['true', 'Yes']], 'false');
  const args = argsEditor({ legend: 'Arguments', hints: EXCHANGE_ARG_HINTS });
  return actionForm({
    id: 'declare-exchange',
    fields: [
      h('div', { className: 'form-grid' },
        field('Virtual host', vhost), field('Name', name), field('Type', type),
        field('Durability', durable), field('Auto delete', autoDelete), field('Internal', internal)),
      args.el,
    ],
    submit: 'Add exchange',
    action: async () => {
      if (name.value === '') throw new Error('Enter an exchange name.');
      const e = name.value;
      await api.put('exchanges/' + path(vhost.value, e), {
        type: type.value,
        durable: durable.value === 'true',
        auto_delete: autoDelete.value === 'true',
        internal: internal.value === 'true',
        arguments: args.value(),
      });
      name.value = '';
      args.reset();
      await refresh();
      return `Exchange ${e} declared.`;
    },
  });
}

export function renderExchange(ctx) {
  const [vhost, name] = ctx.params;
  const label = exchangeLabel(name);
  ctx.title(`Exchange ${label}`);
  const epath = 'exchanges/' + path(vhost, exchangeSegment(name));
  const status = statusLine();
  const details = h('div', { id: 'exchange-details' });
  const from = h('div');
  const to = h('div');
  const bindStatus = statusLine();
  let gone = false;

  const refreshDetails = async () => {
    if (gone) return;
    let e;
    try {
      e = await api.get(epath);
    } catch (err) {
      showError(status, err);
      if (isApiError(err, 404)) details.replaceChildren(h('p', {}, 'This exchange does not exist (any more).'));
      return;
    }
    clearStatus(status);
    details.replaceChildren(kv([
      ['Virtual host', e.vhost],
      ['Type', e.type],
      ['Features', features(e).length ? features(e) : 'none'],
      ['Arguments', isEmpty(e.arguments) ? undefined : h('code', {}, jsonText(e.arguments))],
      ['Policy', e.policy || undefined],
      ['Rate in', rate(statRate(e, 'publish_in'))],
      ['Rate out', rate(statRate(e, 'publish_out'))],
    ]));
  };

  const refreshBindings = async () => {
    if (gone || name === '') return;
    try {
      const [src, dst] = await Promise.all([api.get(epath + '/bindings/source'), api.get(epath + '/bindings/destination')]);
      redraw(from, bindingsTable(src || [], { show: 'destination', status: bindStatus, refresh: refreshBindings, id: 'exchange-bindings-source' }));
      redraw(to, bindingsTable(dst || [], { show: 'source', status: bindStatus, refresh: refreshBindings, id: 'exchange-bindings-destination' }));
    } catch (err) {
      if (!isApiError(err, 404)) showError(bindStatus, err);
    }
  };

  const dangerStatus = statusLine();
  const builtIn = name === '' || name.startsWith('amq.');
  add(ctx.view,
    h('p', { className: 'crumbs' }, link('Exchanges', 'exchanges'), ` › virtual host ${vhost}`),
    h('h1', {}, 'Exchange ', h('span', { id: 'exchange-name' }, label)),
    status,
    h('section', { className: 'panel', 'aria-labelledby': 'e-details-title' },
      h('h2', { id: 'e-details-title' }, 'Details'), details),
    name === ''
      ? h('section', { className: 'panel' }, h('h2', {}, 'Bindings'),
        h('p', {}, 'The default exchange is implicitly bound to every queue, with the queue name as routing key. It cannot be bound or unbound.'))
      : h('section', { className: 'panel', 'aria-labelledby': 'e-bindings-title' },
        h('h2', { id: 'e-bindings-title' }, 'Bindings'),
        bindStatus,
        h('div', { className: 'two-col' },
          h('div', {}, h('h3', {}, 'From this exchange'), from),
          h('div', {}, h('h3', {}, 'To this exchange'), to)),
        h('h3', {}, 'Add binding from this exchange'),
        bindForm({ id: 'exchange-bind', vhost, fixed: { source: name }, refresh: refreshBindings })),
    h('section', { className: 'panel', 'aria-labelledby': 'e-publish-title' },
      h('h2', { id: 'e-publish-title' }, 'Publish message'),
      publishForm({ id: 'exchange-publish', vhost, exchange: name, after: refreshDetails })),
    builtIn ? null : h('section', { className: 'panel', 'aria-labelledby': 'e-danger-title' },
      h('h2', { id: 'e-danger-title' }, 'Delete this exchange'),
      confirmButton({
        label: 'Delete exchange',
        question: `Delete exchange ${name}?`,
        yes: 'Yes, delete',
        status: dangerStatus,
        action: async () => {
          await api.del(epath);
          gone = true;
          flash(`Exchange ${name} deleted.`);
          ctx.go('#/exchanges');
        },
      }),
      dangerStatus),
  );
  ctx.every(refreshDetails);
  ctx.every(refreshBindings);
}
