// Connections (with "Close") and channels.

import { api, path } from '../api.js';
import {
  add, h, table, num, rate, bytes, statRate, time, statusLine, showError, clearStatus, confirmButton, redraw,
} from '../dom.js';
import { filterBar } from './common.js';

const MAX_ROWS = 500;

function octRate(o, key) {
  const d = o[`${key}_details`];
  return d && typeof d.rate === 'number' ? `${bytes(d.rate)}/s` : '';
}

export function renderConnections(ctx) {
  ctx.title('Connections');
  const status = statusLine();
  const actionStatus = statusLine();
  const holder = h('div', { id: 'connections-table' });
  let conns = null;
  const refresh = async () => {
    try {
      conns = await api.get('connections');
      clearStatus(status);
      draw();
    } catch (err) {
      showError(status, err);
    }
  };
  const draw = () => {
    if (!conns) return;
    const shown = conns.filter(filter.match);
    redraw(holder,
      table([
        { title: 'Virtual host', value: c => c.vhost },
        { title: 'Name', className: 'name', value: c => c.name },
        { title: 'Client name', className: 'name', value: c => c.user_provided_name || (c.client_properties && c.client_properties.connection_name) || '' },
        { title: 'User', value: c => c.user },
        { title: 'State', value: c => c.state },
        { title: 'Protocol', value: c => c.protocol },
        { title: 'Client', value: c => clientLabel(c.client_properties) },
        { title: 'Channels', num: true, value: c => num(c.channels) },
        { title: 'From client', num: true, value: c => octRate(c, 'recv_oct') },
        { title: 'To client', num: true, value: c => octRate(c, 'send_oct') },
        { title: 'Connected', value: c => time(c.connected_at) },
        {
          title: 'Action',
          value: c => confirmButton({
            label: 'Close',
            className: 'small danger',
            question: 'Close this connection?',
            yes: 'Yes, close',
            status: actionStatus,
            action: async () => {
              await api.del('connections/' + path(c.name), { 'X-Reason': 'Closed via management plugin' });
              await refresh();
              return `Connection ${c.name} closed.`;
            },
          }),
        },
      ], shown.slice(0, MAX_ROWS), { id: 'connections', rowName: c => c.name, empty: conns.length ? 'No connection matches the filter.' : 'No connections.' }),
      h('p', { className: 'muted' }, shown.length > MAX_ROWS
        ? `Showing ${MAX_ROWS} of ${num(shown.length)} matching connections.`
        : `${num(shown.length)} of ${num(conns.length)} connections.`),
    );
  };
  const filter = filterBar(draw);
  add(ctx.view,
    h('h1', {}, 'Connections'),
    status,
    actionStatus,
    h('section', { className: 'panel' }, filter.el, holder),
  );
  ctx.every(refresh);
}

function clientLabel(cp) {
  if (!cp) return '';
  const product = typeof cp.product === 'string' ? cp.product : '';
  const version = typeof cp.version === 'string' ? cp.version : '';
  const platform = typeof cp.platform === 'string' ? cp.platform : '';
  return [product, version, platform ? `(${platform})` : ''].filter(Boolean).join(' ');
}

export function renderChannels(ctx) {
  ctx.title('Channels');
  const status = statusLine();
  const holder = h('div', { id: 'channels-table' });
  let chans = null;
  const draw = () => {
    if (!chans) return;
    const shown = chans.filter(filter.match);
    redraw(holder,
      table([
        { title: 'Virtual host', value: c => c.vhost },
        { title: 'Channel', className: 'name', value: c => c.name },
        { title: 'User', value: c => c.user },
        { title: 'Mode', value: c => [c.confirm ? 'confirm' : '', c.transactional ? 'transactional' : ''].filter(Boolean).join(', ') },
        { title: 'State', value: c => c.state },
        { title: 'Consumers', num: true, value: c => num(c.consumer_count) },
        { title: 'Prefetch', num: true, value: c => num(c.prefetch_count) },
        { title: 'Unacked', num: true, value: c => num(c.messages_unacknowledged) },
        { title: 'Unconfirmed', num: true, value: c => num(c.messages_unconfirmed) },
        { title: 'Publish', num: true, value: c => rate(statRate(c, 'publish')) },
        { title: 'Confirm', num: true, value: c => rate(statRate(c, 'confirm')) },
        { title: 'Deliver / get', num: true, value: c => rate(statRate(c, 'deliver_get')) },
        { title: 'Ack', num: true, value: c => rate(statRate(c, 'ack')) },
      ], shown.slice(0, MAX_ROWS), { id: 'channels', rowName: c => c.name, empty: chans.length ? 'No channel matches the filter.' : 'No channels.' }),
      h('p', { className: 'muted' }, shown.length > MAX_ROWS
        ? `Showing ${MAX_ROWS} of ${num(shown.length)} matching channels.`
        : `${num(shown.length)} of ${num(chans.length)} channels.`),
    );
  };
  const filter = filterBar(draw);
  add(ctx.view, h('h1', {}, 'Channels'), status, h('section', { className: 'panel' }, filter.el, holder));
  ctx.every(async () => {
    try {
      chans = await api.get('channels');
      clearStatus(status);
      draw();
    } catch (err) {
      showError(status, err);
    }
  });
}
