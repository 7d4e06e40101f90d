// Building blocks for pages. Everything the server says is put on the page as text (text nodes,
// textContent, attribute values): nothing here parses HTML, so a queue named
// <img src=x onerror=alert(1)> shows as those characters.

import { ApiError, describe } from './api.js';

let ids = 0;
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

// h creates an element. props: className, id, type, value, checked, ... are set as properties;
// 'on<event>' functions become listeners; keys with a dash (aria-*, data-*) and 'for' become
// attributes. Children: strings and numbers become text nodes, null/false/undefined are skipped,
// arrays are flattened.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false && !(k in el)) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'for') el.htmlFor = v;
    else if (k.includes('-') || k === 'role') el.setAttribute(k, v === true ? '' : String(v));
    else el[k] = v;
  }
  append(el, children);
  return el;
}

// add appends children to el as h() does: null, false and undefined are skipped (the DOM's own
// append would show them as text).
export function add(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

// Formatting.

export function num(n) {
  if (n === undefined || n === null || n === '') return '';
  return typeof n === 'number' ? n.toLocaleString('en-US') : String(n);
}

export function rate(r) {
  if (typeof r !== 'number') return '';
  return `${r.toLocaleString('en-US', { maximumFractionDigits: r < 10 ? 1 : 0 })}/s`;
}

export function bytes(n) {
  if (typeof n !== 'number') return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

// statRate reads o.message_stats.<key>_details.rate, the figure RabbitMQ's UI shows.
export function statRate(o, key) {
  const d = o && o.message_stats && o.message_stats[`${key}_details`];
  return d && typeof d.rate === 'number' ? d.rate : undefined;
}

export function jsonText(v) {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

export function isEmpty(o) {
  return !o || (typeof o === 'object' && Object.keys(o).length === 0);
}

export function time(ms) {
  if (typeof ms !== 'number') return '';
  return new Date(ms).toLocaleString();
}

// link to a hash route built from segments, each percent-encoded.
export function href(...segments) {
  return '#/' + segments.map(s => encodeURIComponent(String(s))).join('/');
}

export function link(text, ...segments) {
  return h('a', { href: href(...segments) }, text);
}

export function exchangeLabel(name) {
  return name === '' ? '(AMQP default)' : name;
}

export function vhostLabel(v) {
  return v;
}

// Features of a queue or exchange, as RabbitMQ's UI shows them.
export function features(o) {
  const out = [];
  const add = (short, long) => out.push(h('abbr', { className: 'badge', title: long }, short));
  if (o.durable) add('D', 'durable');
  if (o.auto_delete) add('AD', 'auto-delete');
  if (o.exclusive) add('Excl', 'exclusive');
  if (o.internal) add('I', 'internal');
  for (const [k, v] of Object.entries(o.arguments || {})) add(k.replace(/^x-/, ''), `${k}: ${jsonText(v)}`);
  return out;
}

export function stateCell(state) {
  if (!state) return '';
  return h('span', { className: state === 'running' ? 'state-running' : 'state-other' }, state);
}

// Tables.

// table renders rows. columns: [{title, value(row) -> string|Node|array, className, num}].
export function table(columns, rows, opts = {}) {
  const head = h('thead', {}, h('tr', {}, columns.map(c =>
    h('th', { scope: 'col', className: c.num ? 'num' : '' }, c.title))));
  const body = h('tbody');
  if (!rows.length) {
    body.append(h('tr', {}, h('td', { className: 'empty', colSpan: columns.length }, opts.empty || 'None.')));
  }
  for (const r of rows) {
    const tr = h('tr');
    if (opts.rowName) tr.dataset.name = opts.rowName(r);
    for (const c of columns) {
      const v = c.value(r);
      tr.append(h('td', { className: [c.num ? 'num' : '', c.className || ''].join(' ').trim() },
        typeof v === 'number' ? num(v) : v));
    }
    body.append(tr);
  }
  const t = h('table', { className: opts.className || '' }, opts.caption ? h('caption', { className: 'muted' }, opts.caption) : null, head, body);
  if (opts.id) t.id = opts.id;
  return h('div', { className: 'table-wrap' }, t);
}

// kv renders label/value pairs as a two-column table; pairs with an undefined value are left out.
export function kv(pairs) {
  const rows = pairs.filter(p => p[1] !== undefined && p[1] !== null && p[1] !== '');
  return h('div', { className: 'table-wrap' }, h('table', { className: 'kv' }, h('tbody', {},
    rows.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, typeof v === 'number' ? num(v) : v))))));
}

// Status lines for forms and pages.

export function statusLine() {
  return h('p', { className: 'status', role: 'status', 'aria-live': 'polite' });
}

export function setStatus(el, kind, text) {
  el.className = `status ${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = text;
}

export function clearStatus(el) {
  el.className = 'status';
  el.textContent = '';
}

export function showError(el, err) {
  setStatus(el, 'error', describe(err));
}

// Form fields.

export function field(label, control, opts = {}) {
  if (!control.id) control.id = uid('f');
  let hint = null;
  if (opts.hint) {
    hint = h('small', { className: 'muted', id: uid('hint') }, opts.hint);
    control.setAttribute('aria-describedby', hint.id);
  }
  return h('div', { className: 'field' + (opts.className ? ' ' + opts.className : '') },
    h('label', { for: control.id }, label), control, hint);
}

export function input(name, props = {}) {
  return h('input', { name, id: uid(name), ...props });
}

export function select(name, options, value) {
  const s = h('select', { name, id: uid(name) },
    options.map(o => Array.isArray(o) ? h('option', { value: o[0] }, o[1]) : h('option', { value: o }, o)));
  if (value !== undefined) s.value = value;
  return s;
}

export function checkbox(label, name, checked = false) {
  const c = h('input', { type: 'checkbox', name, id: uid(name), checked });
  return { el: h('div', { className: 'check' }, c, h('label', { for: c.id }, label)), input: c };
}

// actionForm wraps fields in a form whose submit runs action(); the button is disabled while it
// runs, and the result (or the API's error) is shown under the form. action returns the success
// text, {kind, text} for another kind of note ('info'), or nothing to show none.
export function actionForm({ id, fields, submit, action, className }) {
  const status = statusLine();
  const button = h('button', { type: 'submit', className: 'primary' }, submit);
  const form = h('form', { id, className: className || 'stack', noValidate: false }, fields, h('div', { className: 'actions' }, button), status);
  form.addEventListener('submit', async ev => {
    ev.preventDefault();
    button.disabled = true;
    clearStatus(status);
    try {
      const msg = await action(form);
      if (typeof msg === 'string') setStatus(status, 'ok', msg);
      else if (msg) setStatus(status, msg.kind, msg.text);
    } catch (err) {
      showError(status, err);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// confirmButton is a button that asks in place before it acts: "Delete" turns into
// "Delete queue x? [Yes, delete] [Cancel]". No window.confirm, which blocks the page.
export function confirmButton({ label, question, yes, action, status, className = 'danger', onDone }) {
  const wrap = h('span', { className: 'confirm' });
  const start = h('button', { type: 'button', className }, label);
  const reset = () => {
    wrap.classList.remove('open');
    wrap.replaceChildren(start);
  };
  start.addEventListener('click', () => {
    const ok = h('button', { type: 'button', className: 'danger' }, yes || 'Yes');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    ok.addEventListener('click', async () => {
      ok.disabled = true;
      cancel.disabled = true;
      wrap.classList.remove('open'); // the table around it may be redrawn now
      try {
        const msg = await action();
        reset();
        if (status) {
          if (msg) setStatus(status, 'ok', msg);
          else clearStatus(status);
        }
        if (onDone) onDone();
      } catch (err) {
        reset();
        if (status) showError(status, err);
      }
    });
    cancel.addEventListener('click', reset);
    wrap.replaceChildren(h('span', {}, question), ok, cancel);
    wrap.classList.add('open');
    ok.focus();
  });
  wrap.append(start);
  return wrap;
}

// argsEditor edits an AMQP table as rows of key, value and type (string, number, boolean, JSON).
// A new empty row appears when the last one is used. hints are argument names offered as buttons.
export function argsEditor({ legend, hints = [], keyList } = {}) {
  const rows = h('div', { className: 'args' });
  const listId = keyList ? uid('keys') : null;
  const addRow = (k = '', v = '', type = 'string') => {
    const key = h('input', { name: 'arg-key', 'aria-label': 'Name', placeholder: 'name', value: k, autocomplete: 'off' });
    if (listId) key.setAttribute('list', listId);
    const val = h('input', { name: 'arg-value', 'aria-label': 'Value', placeholder: 'value', value: v });
    const typ = select('arg-type', [['string', 'String'], ['number', 'Number'], ['boolean', 'Boolean'], ['json', 'JSON']], type);
    typ.setAttribute('aria-label', 'Type');
    const remove = h('button', { type: 'button', className: 'small', 'aria-label': 'Remove this row' }, 'Remove');
    const row = h('div', { className: 'arg-row' }, key, val, typ, remove);
    remove.addEventListener('click', () => {
      row.remove();
      ensureBlank();
    });
    key.addEventListener('input', ensureBlank);
    rows.append(row);
    return row;
  };
  const ensureBlank = () => {
    const last = rows.lastElementChild;
    if (!last || last.querySelector('[name=arg-key]').value !== '') addRow();
  };
  const set = (k, v, type) => {
    const blank = [...rows.children].find(r => r.querySelector('[name=arg-key]').value === '');
    const row = blank || addRow();
    row.querySelector('[name=arg-key]').value = k;
    row.querySelector('[name=arg-value]').value = v;
    row.querySelector('[name=arg-type]').value = type;
    ensureBlank();
    row.querySelector('[name=arg-value]').focus();
  };
  addRow();
  const hintBar = hints.length ? h('div', { className: 'hints' }, 'Add:', hints.map(([k, type, label]) =>
    h('button', { type: 'button', title: k, onclick: () => set(k, '', type) }, label || k))) : null;
  const el = h('fieldset', {}, h('legend', {}, legend || 'Arguments'), rows, hintBar,
    listId ? h('datalist', { id: listId }, keyList.map(k => h('option', { value: k }))) : null);
  return {
    el,
    value() {
      const out = {};
      for (const row of rows.children) {
        const k = row.querySelector('[name=arg-key]').value.trim();
        if (!k) continue;
        const raw = row.querySelector('[name=arg-value]').value;
        const type = row.querySelector('[name=arg-type]').value;
        out[k] = convert(k, raw, type);
      }
      return out;
    },
    reset() {
      rows.replaceChildren();
      addRow();
    },
  };
}

function convert(key, raw, type) {
  switch (type) {
    case 'number': {
      const n = Number(raw.trim());
      if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`${key}: "${raw}" is not a number`);
      return n;
    }
    case 'boolean': {
      const t = raw.trim().toLowerCase();
      if (t === 'true' || t === '1' || t === 'yes') return true;
      if (t === 'false' || t === '0' || t === 'no' || t === '') return false;
      throw new Error(`${key}: "${raw}" is not true or false`);
    }
    case 'json':
      try {
        return JSON.parse(raw);
      } catch (e) {
        throw new Error(`${key}: not valid JSON (${e.message})`);
      }
    default:
      return raw;
  }
}

// vhostSelect is a select filled from /api/vhosts.
export function vhostSelect(api, name = 'vhost', selected = '/') {
  const s = select(name, [selected], selected);
  api.get('vhosts').then(list => {
    const names = (list || []).map(v => v.name);
    if (!names.length) return;
    const keep = s.value;
    s.replaceChildren(...names.map(n => h('option', { value: n }, n)));
    s.value = names.includes(keep) ? keep : names[0];
  }).catch(() => {});
  return s;
}

// redraw replaces holder's content unless the user is answering a confirmation inside it, which a
// periodic refresh must not wipe out.
export function redraw(holder, ...nodes) {
  if (holder.querySelector('.confirm.open')) return;
  holder.replaceChildren(...nodes);
}

export function isApiError(err, status) {
  return err instanceof ApiError && (status === undefined || err.status === status);
}
