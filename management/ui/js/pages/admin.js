// Virtual hosts and users (with their permissions).

import { api, path, session } from '../api.js';
import {
  add, h, table, num, rate, statRate, field, input, actionForm, confirmButton, statusLine, showError,
  clearStatus, redraw, vhostSelect, uid,
} from '../dom.js';

function tagList(tags) {
  if (Array.isArray(tags)) return tags;
  if (typeof tags === 'string' && tags !== '') return tags.split(',').map(t => t.trim()).filter(Boolean);
  return [];
}

export function renderVhosts(ctx) {
  ctx.title('Virtual hosts');
  const status = statusLine();
  const actionStatus = statusLine();
  const holder = h('div', { id: 'vhosts-table' });
  const refresh = async () => {
    let list;
    try {
      list = await api.get('vhosts');
      clearStatus(status);
    } catch (err) {
      showError(status, err);
      return;
    }
    redraw(holder, table([
      { title: 'Name', className: 'name', value: v => v.name },
      { title: 'Description', className: 'name', value: v => v.description || (v.metadata && v.metadata.description) || '' },
      { title: 'Tags', value: v => tagList(v.tags || (v.metadata && v.metadata.tags)).map(t => h('span', { className: 'badge' }, t)) },
      { title: 'Ready', num: true, value: v => num(v.messages_ready) },
      { title: 'Unacked', num: true, value: v => num(v.messages_unacknowledged) },
      { title: 'Total', num: true, value: v => num(v.messages) },
      { title: 'Publish', num: true, value: v => rate(statRate(v, 'publish')) },
      { title: 'Deliver / get', num: true, value: v => rate(statRate(v, 'deliver_get')) },
      {
        title: 'Action',
        value: v => confirmButton({
          label: 'Delete',
          className: 'small danger',
          question: `Delete virtual host ${v.name} and everything in it?`,
          yes: 'Yes, delete',
          status: actionStatus,
          action: async () => {
            await api.del('vhosts/' + path(v.name));
            await refresh();
            return `Virtual host ${v.name} deleted.`;
          },
        }),
      },
    ], list || [], { id: 'vhosts', rowName: v => v.name, empty: 'No virtual hosts.' }));
  };

  const name = input('name', { required: true, autocomplete: 'off' });
  const description = input('description', { autocomplete: 'off' });
  const tags = input('tags', { autocomplete: 'off', placeholder: 'comma-separated' });
  const form = actionForm({
    id: 'add-vhost',
    fields: [h('div', { className: 'form-grid' }, field('Name', name), field('Description', description), field('Tags', tags))],
    submit: 'Add virtual host',
    action: async () => {
      if (name.value === '') throw new Error('Enter a name.');
      const v = name.value;
      const body = {};
      if (description.value !== '') body.description = description.value;
      if (tags.value !== '') body.tags = tags.value;
      await api.put('vhosts/' + path(v), body);
      name.value = '';
      description.value = '';
      tags.value = '';
      await refresh();
      return `Virtual host ${v} added.`;
    },
  });
  add(ctx.view,
    h('h1', {}, 'Virtual hosts'),
    status,
    actionStatus,
    h('section', { className: 'panel' }, holder),
    h('section', { className: 'panel', 'aria-labelledby': 'add-vhost-title' },
      h('h2', { id: 'add-vhost-title' }, 'Add a new virtual host'), form),
  );
  ctx.every(refresh);
}

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

export function renderUsers(ctx) {
  ctx.title('Users');
  const status = statusLine();
  const actionStatus = statusLine();
  const holder = h('div', { id: 'users-table' });
  const permsHolder = h('div', { id: 'permissions-table' });
  const permStatus = statusLine();

  const refreshPermissions = async () => {
    try {
      const perms = await api.get('permissions');
      redraw(permsHolder, table([
        { title: 'User', className: 'name', value: p => p.user },
        { title: 'Virtual host', className: 'name', value: p => p.vhost },
        { title: 'Configure', value: p => h('code', {}, p.configure) },
        { title: 'Write', value: p => h('code', {}, p.write) },
        { title: 'Read', value: p => h('code', {}, p.read) },
        {
          title: 'Action',
          value: p => confirmButton({
            label: 'Clear',
            className: 'small danger',
            question: `Clear ${p.user}'s permissions on ${p.vhost}?`,
            yes: 'Yes, clear',
            status: permStatus,
            action: async () => {
              await api.del('permissions/' + path(p.vhost, p.user));
              await refreshPermissions();
              return 'Permissions cleared.';
            },
          }),
        },
      ], perms || [], { id: 'permissions', empty: 'No permissions.' }));
    } catch (err) {
      showError(permStatus, err);
    }
  };

  const refresh = async () => {
    let list;
    try {
      list = await api.get('users');
      clearStatus(status);
    } catch (err) {
      showError(status, err);
      return;
    }
    const me = session() ? session().user : '';
    redraw(holder, table([
      { title: 'Name', className: 'name', value: u => u.name },
      { title: 'Tags', value: u => tagList(u.tags).map(t => h('span', { className: 'badge' }, t)) },
      { title: 'Can log in with password', value: u => u.password_hash === '' ? 'no' : 'yes' },
      {
        title: 'Action',
        value: u => u.name === me
          ? h('span', { className: 'muted' }, 'You')
          : confirmButton({
            label: 'Delete',
            className: 'small danger',
            question: `Delete user ${u.name}?`,
            yes: 'Yes, delete',
            status: actionStatus,
            action: async () => {
              await api.del('users/' + path(u.name));
              await refresh();
              await refreshPermissions();
              return `User ${u.name} deleted.`;
            },
          }),
      },
    ], list || [], { id: 'users', rowName: u => u.name, empty: 'No users.' }));
  };

  add(ctx.view,
    h('h1', {}, 'Users'),
    status,
    actionStatus,
    h('section', { className: 'panel' }, holder),
    h('section', { className: 'panel', 'aria-labelledby': 'add-user-title' },
      h('h2', { id: 'add-user-title' }, 'Add a user'), addUserForm(refresh)),
    h('section', { className: 'panel', 'aria-labelledby': 'perms-title' },
      h('h2', { id: 'perms-title' }, 'Permissions'), permStatus, permsHolder,
      h('h3', {}, 'Set permission'), permissionForm(refreshPermissions)),
  );
  ctx.every(refresh);
  ctx.every(refreshPermissions);
}

function addUserForm(refresh) {
  const name = input('username', { required: true, autocomplete: 'off' });
  const password = input('password', { type: 'password', autocomplete: 'new-password' });
  const tags = input('tags', { autocomplete: 'off', placeholder: 'comma-separated, e.g. administrator' });
  const quick = h('div', { className: 'hints' }, 'Set:', TAGS.map(t => h('button', {
    type: 'button',
    onclick: () => {
      const have = tagList(tags.value);
      if (!have.includes(t)) have.push(t);
      tags.value = have.join(',');
    },
  }, t)), h('button', { type: 'button', onclick: () => { tags.value = ''; } }, 'none'));
  return actionForm({
    id: 'add-user',
    fields: [
      h('div', { className: 'form-grid' },
        field('Username', name),
        field('Password', password, { hint: 'Empty: the user cannot log in with a password.' }),
        field('Tags', tags)),
      quick,
    ],
    submit: 'Add user',
    action: async () => {
      if (name.value === '') throw new Error('Enter a username.');
      const u = name.value;
      // No password: RabbitMQ's way is an empty password_hash (the user cannot log in with one).
      const body = password.value === '' ? { password_hash: '' } : { password: password.value };
      body.tags = tagList(tags.value).join(',');
      await api.put('users/' + path(u), body);
      name.value = '';
      password.value = '';
      tags.value = '';
      await refresh();
      return `User ${u} added. Give it permissions on a virtual host below so it can connect.`;
    },
  });
}

function permissionForm(refresh) {
  const user = input('user', { required: true, autocomplete: 'off' });
  const listId = uid('users');
  user.setAttribute('list', listId);
  const users = h('datalist', { id: listId });
  api.get('users').then(list => users.replaceChildren(...(list || []).map(u => h('option', { value: u.name })))).catch(() => {});
  const vhost = vhostSelect(api);
  const configure = input('configure', { value: '.*' });
  const write = input('write', { value: '.*' });
  const read = input('read', { value: '.*' });
  return actionForm({
    id: 'set-permission',
    fields: [h('div', { className: 'form-grid' },
      field('User', user), field('Virtual host', vhost), field('Configure regexp', configure),
      field('Write regexp', write), field('Read regexp', read)), users],
    submit: 'Set permission',
    action: async () => {
      if (user.value === '') throw new Error('Enter a user.');
      await api.put('permissions/' + path(vhost.value, user.value), {
        configure: configure.value, write: write.value, read: read.value,
      });
      await refresh();
      return `Permissions set for ${user.value} on ${vhost.value}.`;
    },
  });
}
