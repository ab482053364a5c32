// inbox.js: the demo inbox page. It logs an agent in through the auth
// service, keeps one Client connection, lists the conversations the agent
// may open, and shows one conversation live.
//
// Query parameters: transport=auto|websocket|sse chooses the client's
// transport (default auto).
import { AuthSession, Client } from './switchboard.js';

const $ = (id) => document.getElementById(id);
const show = (el, on) => { el.hidden = !on; };

let session = null;
let client = null;
let current = ''; // the open conversation's room
let refreshes = 0;

async function loadConfig() {
  const res = await fetch('config.json', { cache: 'no-store' });
  if (!res.ok) throw new Error('config.json: HTTP ' + res.status);
  return res.json();
}

function fail(err) {
  const el = $('error');
  el.textContent = err ? (err.code ? err.code + ': ' : '') + err.message : '';
  show(el, Boolean(err));
}

function setState({ state, transport, code, retryIn }) {
  const el = $('state');
  el.dataset.state = state;
  let text = state;
  if (state === 'disconnected') text += ` (code ${code}, retrying in ${(retryIn / 1000).toFixed(1)} s)`;
  if (state === 'closed' && code) text += ` (code ${code})`;
  el.textContent = text;
  $('transport').textContent = transport || '-';
  if (state === 'connected') {
    el.dataset.connects = String(Number(el.dataset.connects || 0) + 1);
    fail(null);
    listConversations();
  }
}

function showExpiry(at) {
  $('expiry').textContent = at ? 'expires ' + new Date(at).toLocaleTimeString() : '-';
}

async function listConversations() {
  const ul = $('conversations');
  let ids;
  try {
    ids = await client.conversations();
  } catch (err) {
    if (err.code !== 'unknown_type') return fail(err);
    ul.replaceChildren();
    ul.dataset.loaded = 'true';
    show($('no-list'), true);
    return;
  }
  show($('no-list'), false);
  ul.replaceChildren(...ids.map((id) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = id;
    b.dataset.conversation = id;
    b.setAttribute('aria-current', String('conversation:' + id === current));
    b.addEventListener('click', () => openConversation(id));
    li.append(b);
    return li;
  }));
  if (ids.length === 0) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'No conversation you may open.';
    ul.append(li);
  }
  ul.dataset.loaded = 'true';
}

async function openConversation(id) {
  const room = 'conversation:' + id;
  if (room === current) return;
  if (current) client.leave(current).catch(() => {});
  current = room;
  $('title').textContent = id;
  $('messages').replaceChildren();
  show($('notice'), false);
  show($('conversation'), false);
  fail(null);
  for (const b of document.querySelectorAll('#conversations button')) {
    b.setAttribute('aria-current', String(b.dataset.conversation === id));
  }
  try {
    await client.join(room);
  } catch (err) {
    if (current === room) current = '';
    fail(err.code === 'forbidden' ? { code: 'forbidden', message: `you may not open conversation ${id}` } : err);
    return;
  }
  if (current === room) show($('conversation'), true);
}

// showRecovery says whether the messages missed in the open conversation
// (over a reconnect, or lost by the gateway: a resync) were replayed.
function showRecovery({ room, recovered, cause }) {
  if (room !== current) return;
  const el = $('notice');
  const when = cause === 'resync' ? 'The gateway missed messages' : 'Reconnected';
  el.textContent = recovered
    ? when + '; the messages sent meanwhile were replayed.'
    : when + ', but the messages sent meanwhile could not be replayed: some may be missing.';
  el.dataset.recovered = String(recovered);
  el.classList.toggle('warning', !recovered);
  show(el, true);
}

// addMessage lists a message of the open conversation in offset order: a
// message replayed after a gap can arrive after later ones.
function addMessage({ room, data, epoch, offset }) {
  if (room !== current || !data || typeof data !== 'object') return;
  const li = document.createElement('li');
  const author = document.createElement('span');
  author.className = 'author';
  author.textContent = typeof data.author === 'string' ? data.author : '?';
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = typeof data.text === 'string' ? data.text : JSON.stringify(data);
  const pos = document.createElement('span');
  pos.className = 'offset';
  pos.textContent = '#' + offset;
  li.append(author, text, pos);
  if (data.author === client.user) li.classList.add('mine');
  li.dataset.offset = offset;
  li.dataset.epoch = epoch;
  const ol = $('messages');
  const later = [...ol.children].find((e) => e.dataset.epoch === epoch && Number(e.dataset.offset) > offset);
  ol.insertBefore(li, later || null);
  if (!later) ol.scrollTop = ol.scrollHeight;
}

async function send(ev) {
  ev.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text || !current) return;
  try {
    await client.publish(current, { text, author: client.user });
    input.value = '';
  } catch (err) {
    fail(err);
  }
}

function start(config, email, password) {
  session = new AuthSession({ url: config.auth_url });
  return session.login(email, password).then(() => {
    const transport = new URLSearchParams(location.search).get('transport') || 'auto';
    client = new Client({ url: config.gateway_url || location.origin, token: session, transport });
    window.switchboardClient = client; // for the browser's console and the tests
    client.on('state', setState);
    client.on('message', addMessage);
    client.on('latency', ({ ms, quality }) => {
      $('latency').textContent = ms + ' ms';
      const q = $('quality');
      q.textContent = quality;
      q.dataset.quality = quality;
    });
    client.on('refreshed', ({ expiresAt }) => {
      $('refreshes').textContent = String(++refreshes);
      showExpiry(expiresAt);
    });
    client.on('recovery', showRecovery);
    client.on('left', ({ room, reason }) => {
      if (room !== current) return;
      current = '';
      show($('conversation'), false);
      fail({ code: reason, message: 'you were removed from this conversation' });
    });
    client.on('error', ({ error }) => fail(error));
    session.on('ended', () => fail({ code: 'session_ended', message: 'your session ended; log in again' }));
    $('user').textContent = session.user;
    showExpiry(session.expiresAt);
    show($('login'), false);
    show($('status'), true);
    show($('logout'), true);
    show($('inbox'), true);
    client.connect();
  });
}

async function main() {
  let config;
  try {
    config = await loadConfig();
  } catch (err) {
    return fail(err);
  }
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    fail(null);
    start(config, $('email').value, $('password').value).catch(fail);
  });
  $('open').addEventListener('submit', (ev) => {
    ev.preventDefault();
    openConversation($('open-id').value.trim());
  });
  $('compose').addEventListener('submit', send);
  $('logout').addEventListener('click', async () => {
    client.close();
    await session.logout();
    location.reload();
  });
  document.body.dataset.ready = 'true';
}

main();
