// Overview: object totals, queued messages, message rates (with a chart of the samples seen since
// the page was opened) and the node's listeners.

import { api } from '../api.js';
import { add, h, table, num, rate, statusLine, showError, clearStatus } from '../dom.js';

const RATES = [
  ['publish', 'Publish', '#c2410c'],
  ['confirm', 'Publisher confirm', '#7c3aed'],
  ['deliver_get', 'Deliver / get', '#0f766e'],
  ['redeliver', 'Redelivered', '#b45309'],
  ['ack', 'Consumer ack', '#1d4ed8'],
  ['return_unroutable', 'Returned (unroutable)', '#be123c'],
  ['drop_unroutable', 'Dropped (unroutable)', '#6b7280'],
];
const MAX_SAMPLES = 60;
const samples = []; // {t, rates: {key: rate}}, oldest first, kept while the tab lives

function card(label, id) {
  return h('div', { className: 'card' }, h('div', { className: 'label', id: `${id}-label` }, label),
    h('div', { className: 'value', id, 'aria-labelledby': `${id}-label` }, '–'));
}

export function render(ctx) {
  ctx.title('Overview');
  const status = statusLine();
  const updated = h('span', { className: 'muted', id: 'overview-updated' });
  const rateRows = h('div');
  const chart = h('div');
  const node = h('div');
  add(ctx.view,
    h('h1', {}, 'Overview'),
    status,
    h('section', { className: 'panel', 'aria-labelledby': 'totals-title' },
      h('h2', { id: 'totals-title' }, 'Totals'),
      h('div', { className: 'cards', id: 'totals' },
        card('Connections', 'total-connections'),
        card('Channels', 'total-channels'),
        card('Exchanges', 'total-exchanges'),
        card('Queues', 'total-queues'),
        card('Consumers', 'total-consumers'))),
    h('section', { className: 'panel', 'aria-labelledby': 'queued-title' },
      h('h2', { id: 'queued-title' }, 'Queued messages'),
      h('div', { className: 'cards' },
        card('Ready', 'msg-ready'),
        card('Unacked', 'msg-unacked'),
        card('Total', 'msg-total'))),
    h('section', { className: 'panel', 'aria-labelledby': 'rates-title' },
      h('h2', { id: 'rates-title' }, 'Message rates'),
      chart, rateRows),
    h('section', { className: 'panel', 'aria-labelledby': 'node-title' },
      h('h2', { id: 'node-title' }, 'Node'), node),
    h('p', {}, updated),
  );

  const set = (id, v) => {
    const el = ctx.view.querySelector('#' + id);
    if (el) el.textContent = v === undefined || v === null ? '–' : num(v);
  };

  ctx.every(async () => {
    let o;
    try {
      o = await api.get('overview');
    } catch (err) {
      showError(status, err);
      return;
    }
    clearStatus(status);
    const t = o.object_totals || {};
    set('total-connections', t.connections);
    set('total-channels', t.channels);
    set('total-exchanges', t.exchanges);
    set('total-queues', t.queues);
    set('total-consumers', t.consumers);
    const q = o.queue_totals || {};
    set('msg-ready', q.messages_ready);
    set('msg-unacked', q.messages_unacknowledged);
    set('msg-total', q.messages);

    const ms = o.message_stats || {};
    const now = {};
    for (const [k] of RATES) {
      const d = ms[`${k}_details`];
      if (d && typeof d.rate === 'number') now[k] = d.rate;
    }
    samples.push({ t: Date.now(), rates: now });
    while (samples.length > MAX_SAMPLES) samples.shift();
    const shown = RATES.filter(([k]) => k in now || k in ms);
    chart.replaceChildren(shown.length ? drawChart(shown) : h('p', { className: 'muted' }, 'No message rates yet.'));
    rateRows.replaceChildren(table([
      { title: 'Rate', value: r => r[1] },
      { title: 'Per second', num: true, value: r => rate(now[r[0]]) },
      { title: 'Total', num: true, value: r => num(ms[r[0]]) },
    ], shown, { id: 'rates', empty: 'No messages yet.' }));

    node.replaceChildren(
      h('p', {}, [o.product_name, o.product_version].filter(Boolean).join(' '),
        o.node ? ` on ${o.node}` : '', o.cluster_name ? ` (cluster ${o.cluster_name})` : ''),
      table([
        { title: 'Protocol', value: l => l.protocol },
        { title: 'Bound to', value: l => l.ip_address },
        { title: 'Port', num: true, value: l => String(l.port ?? '') },
      ], o.listeners || [], { empty: 'No listeners reported.' }),
    );
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 5 seconds.`;
  });
}

// drawChart draws the kept samples of each rate as lines in an SVG, built node by node.
function drawChart(rates) {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 600;
  const H = 140;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'Message rates over the last few minutes');
  let max = 1;
  for (const s of samples) for (const [k] of rates) max = Math.max(max, s.rates[k] || 0);
  for (let i = 1; i < 4; i++) {
    const line = document.createElementNS(NS, 'line');
    const y = (H * i / 4).toFixed(1);
    for (const [a, v] of [['x1', 0], ['x2', W], ['y1', y], ['y2', y]]) line.setAttribute(a, v);
    line.setAttribute('class', 'grid');
    svg.append(line);
  }
  const step = W / (MAX_SAMPLES - 1);
  const x0 = W - step * (samples.length - 1);
  for (const [k, , color] of rates) {
    const pts = samples.map((s, i) => `${(x0 + i * step).toFixed(1)},${(H - 2 - (H - 4) * (s.rates[k] || 0) / max).toFixed(1)}`);
    if (pts.length === 1) pts.unshift(`${(x0 - step).toFixed(1)},${pts[0].split(',')[1]}`);
    const pl = document.createElementNS(NS, 'polyline');
    pl.setAttribute('points', pts.join(' '));
    pl.setAttribute('fill', 'none');
    pl.setAttribute('stroke', color);
    pl.setAttribute('stroke-width', '2');
    pl.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.append(pl);
  }
  const legend = h('ul', { className: 'legend' }, rates.map(([, label, color]) => {
    const sw = h('span', { className: 'swatch' });
    sw.style.background = color;
    return h('li', {}, sw, label);
  }));
  const minutes = Math.round(MAX_SAMPLES * 5 / 60);
  return h('div', {}, svg, legend, h('p', { className: 'muted' }, `Scale: 0 to ${rate(max)}; the last ${minutes} minutes, sampled while this page is open.`));
}
