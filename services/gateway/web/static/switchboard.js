// switchboard.js: the browser client of the Switchboard gateway, one ES
// module with no build step. docs/browser-client.md describes its use;
// docs/protocol.md the frames it speaks.
//
// Roles:
//   - AuthSession: an auth service session. It logs in over the token
//     endpoint, refreshes a margin before expiry (one refresh shared by
//     every caller, retried with backoff) and says when the token changed.
//   - Client: one logical connection to the gateway. It authenticates with
//     the first frame, reconnects with exponential backoff and full jitter,
//     rejoins its rooms from their last positions (after a reconnect, and
//     after a resync push), drops repeated offsets, measures latency, hands
//     fresh tokens to the open connection, and falls back from WebSocket to
//     server-sent events plus HTTP POST when WebSockets fail (trying
//     WebSockets again on a later reconnect).
//
// Glossary: a position is {epoch, offset}, the last message seen in a room;
// a gap is the span after the position a resync push named, whose messages
// may come after later ones and are told apart by offset until the rejoin
// answers.
//   - WebSocketTransport, SSETransport: how frames travel; the Client sees
//     the same frames through either.
//
// Both classes are EventTarget objects whose events are CustomEvent values
// with the payload in `detail`; `on(type, fn)` is a shorthand that passes
// the detail and returns a function removing the listener.

/** The close codes after which a client reconnects (docs/protocol.md). */
export function shouldReconnect(code) {
  if (code >= 3000 && code < 3500) return true;
  if (code >= 3500 && code < 4000) return false;
  return ![1000, 1002, 1003, 1007, 1008, 1009, 1010].includes(code);
}

/** Grades a round trip in milliseconds: excellent, good or poor. */
export function grade(ms) {
  if (ms < 100) return 'excellent';
  if (ms < 300) return 'good';
  return 'poor';
}

/**
 * Returns the wait before reconnect attempt `attempt` (0 first): a random
 * time up to min * 2^attempt, capped at max (exponential backoff with full
 * jitter).
 */
export function backoff(attempt, min = 500, max = 20000, random = Math.random) {
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/** An error with a stable code: a gateway error code or a client one. */
export class SwitchboardError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}

// Client-side error codes, beside the gateway's (docs/protocol.md).
const DISCONNECTED = 'disconnected'; // the connection ended first
const TIMEOUT = 'timeout'; // no reply in time
const NOT_CONNECTED = 'not_connected'; // the request needs a connection

// MAX_GAP_OFFSETS bounds the offsets remembered past a gap's start; a gap
// that outgrows it is reported not recovered.
const MAX_GAP_OFFSETS = 10000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class Emitter extends EventTarget {
  on(type, fn) {
    const listener = (ev) => fn(ev.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * AuthSession keeps an auth service session alive in the page.
 *
 * Options: url (the auth service's HTTP base, e.g. http://127.0.0.1:7201),
 * margin (refresh this long before expiry, capped at half the token's
 * lifetime; 30 s), minBackoff and maxBackoff (refresh retries; 500 ms and
 * 20 s), fetch (for tests).
 *
 * Events: token {token, expiresAt, user}, error {error} (a refresh attempt
 * failed and will be retried), ended {error} (the session can no longer be
 * refreshed: log in again).
 *
 * The refresh token lives in this object only; it is never stored.
 */
export class AuthSession extends Emitter {
  #url;
  #opts;
  #fetch;
  #access = '';
  #refresh = '';
  #expiresAt = 0;
  #lifetime = 0;
  #user = '';
  #inflight = null;
  #timer = 0;
  #generation = 0;

  constructor({ url, margin = 30000, minBackoff = 500, maxBackoff = 20000, fetch } = {}) {
    super();
    if (!url) throw new TypeError('AuthSession: url is required');
    this.#url = url.replace(/\/+$/, '');
    this.#opts = { margin, minBackoff, maxBackoff };
    this.#fetch = fetch || globalThis.fetch.bind(globalThis);
  }

  get user() { return this.#user; }
  get expiresAt() { return this.#expiresAt; }
  get active() { return this.#refresh !== ''; }

  /** Logs in with an email and password. */
  async login(email, password) {
    const body = await this.#grant({ grant_type: 'password', email, password });
    this.#generation++;
    this.#store(body);
    return { user: this.#user, expiresAt: this.#expiresAt };
  }

  /**
   * Returns an access token valid for at least minValidity more
   * milliseconds (beyond the refresh margin), refreshing first if needed.
   */
  token({ minValidity = 0 } = {}) {
    if (!this.active) return Promise.reject(new SwitchboardError('no_session', 'not logged in'));
    const left = this.#expiresAt - Date.now();
    if (left > Math.max(minValidity, this.#margin())) return Promise.resolve(this.#access);
    return this.refresh();
  }

  /** Refreshes now; concurrent callers share one refresh. */
  refresh() {
    if (!this.active) return Promise.reject(new SwitchboardError('no_session', 'not logged in'));
    if (!this.#inflight) {
      this.#inflight = this.#refreshWithRetries().finally(() => { this.#inflight = null; });
    }
    return this.#inflight;
  }

  /** Ends the session at the auth service and forgets it. */
  async logout() {
    const refresh = this.#refresh;
    this.#forget();
    if (!refresh) return;
    await this.#post('/v1/logout', { refresh_token: refresh }).catch(() => {});
  }

  #margin() {
    return Math.min(this.#opts.margin, this.#lifetime / 2);
  }

  async #refreshWithRetries() {
    const generation = this.#generation;
    for (let attempt = 0; ; attempt++) {
      try {
        const body = await this.#grant({ grant_type: 'refresh_token', refresh_token: this.#refresh });
        if (generation !== this.#generation) throw new SwitchboardError('no_session', 'logged out');
        this.#store(body);
        return this.#access;
      } catch (err) {
        if (generation !== this.#generation) throw err;
        if (err.permanent) {
          this.#forget();
          this.emit('ended', { error: err });
          throw err;
        }
        this.emit('error', { error: err });
        const wait = err.retryAfter || backoff(attempt, this.#opts.minBackoff, this.#opts.maxBackoff);
        await sleep(wait);
        if (generation !== this.#generation) throw err;
      }
    }
  }

  #store(body) {
    this.#access = body.access_token;
    this.#refresh = body.refresh_token;
    this.#lifetime = Math.max(0, Number(body.expires_in) * 1000);
    this.#expiresAt = Date.now() + this.#lifetime;
    this.#user = body.user_id || this.#user;
    clearTimeout(this.#timer);
    const due = Math.max(0, this.#expiresAt - this.#margin() - Date.now());
    this.#timer = setTimeout(() => this.refresh().catch(() => {}), due);
    this.emit('token', { token: this.#access, expiresAt: this.#expiresAt, user: this.#user });
  }

  #forget() {
    this.#generation++;
    clearTimeout(this.#timer);
    this.#access = this.#refresh = this.#user = '';
    this.#expiresAt = this.#lifetime = 0;
  }

  async #grant(fields) {
    return this.#post('/v1/token', fields);
  }

  async #post(path, fields) {
    let res;
    try {
      res = await this.#fetch(this.#url + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(fields),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (err) {
      throw new SwitchboardError('unavailable', 'auth service unreachable: ' + err.message);
    }
    if (res.status === 204) return {};
    const body = await res.json().catch(() => ({}));
    if (res.ok) return body;
    const err = new SwitchboardError(body.error || 'http_' + res.status, body.error_description || res.statusText);
    err.permanent = res.status >= 400 && res.status < 500 && res.status !== 429 && res.status !== 408;
    const after = Number(res.headers.get('Retry-After'));
    if (after > 0) err.retryAfter = after * 1000;
    throw err;
  }
}

/**
 * WebSocketTransport carries frames over one WebSocket at <base>/ws.
 * handlers: onopen(), onframe(frame), onclose({code, reason, opened}).
 */
class WebSocketTransport {
  name = 'websocket';
  #url;
  #h;
  #ws = null;
  #opened = false;
  #done = false;
  #timer = 0;

  constructor(url, handlers, openTimeout) {
    this.#url = url;
    this.#h = handlers;
    this.openTimeout = openTimeout;
  }

  start() {
    try {
      this.#ws = new WebSocket(this.#url);
    } catch (err) {
      queueMicrotask(() => this.#finish(1006, String(err)));
      return;
    }
    const ws = this.#ws;
    this.#timer = setTimeout(() => this.close('websocket handshake timed out'), this.openTimeout);
    ws.onopen = () => {
      clearTimeout(this.#timer);
      this.#opened = true;
      this.#h.onopen();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      this.#h.onframe(frame);
    };
    ws.onclose = (ev) => this.#finish(ev.code, ev.reason);
  }

  send(frame) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) {
      throw new SwitchboardError(NOT_CONNECTED, 'the websocket is not open');
    }
    this.#ws.send(JSON.stringify(frame));
  }

  /** Closes at once, without waiting for the browser's close event. */
  close(reason = 'closed by the client') {
    if (this.#ws) {
      try { this.#ws.close(1000); } catch { /* already closing */ }
    }
    this.#finish(1006, reason);
  }

  #finish(code, reason) {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    if (this.#ws) this.#ws.onopen = this.#ws.onmessage = this.#ws.onclose = null;
    this.#h.onclose({ code, reason, opened: this.#opened });
  }
}

// httpClose maps the status of a refused stream to a close code.
function httpClose(status) {
  switch (status) {
    case 401: return 3500; // bad token
    case 400: return 3502;
    case 429: return 3503;
    case 503: return 3000;
  }
  return 1006;
}

/**
 * SSETransport carries the same frames over HTTP: a server-sent event
 * stream at GET <base>/sse delivers them, and each request is one POST to
 * <base>/sse/<connection>. Both carry the token in an Authorization header.
 * Requests go one at a time: the next is posted once the previous one's
 * reply came down the stream (or its wait timed out), since posts that
 * land on different replicas could otherwise overtake each other.
 */
class SSETransport {
  name = 'sse';
  #base;
  #h;
  #token;
  #abort = new AbortController();
  #connection = '';
  #chain = Promise.resolve();
  #opened = false;
  #done = false;
  #close = null;
  #awaiting = null; // {id, resolve} of the request whose reply is due

  constructor(base, handlers, openTimeout, token) {
    this.#base = base;
    this.#h = handlers;
    this.openTimeout = openTimeout;
    this.#token = token;
  }

  start() {
    this.#run().catch((err) => this.#finish(1006, String(err && err.message || err)));
  }

  async #run() {
    const timer = setTimeout(() => this.close('stream open timed out'), this.openTimeout);
    let res;
    try {
      res = await fetch(this.#base + '/sse', {
        headers: { Authorization: 'Bearer ' + this.#token(), Accept: 'text/event-stream' },
        cache: 'no-store', credentials: 'omit', signal: this.#abort.signal,
      });
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok || !res.body) {
      this.#finish(httpClose(res.status), 'stream refused with HTTP ' + res.status);
      return;
    }
    this.#opened = true;
    this.#h.onopen();
    await this.#read(res.body);
    const c = this.#close || { code: 1006, reason: 'the stream ended' };
    this.#finish(c.code, c.reason);
  }

  async #read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        this.#event(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
      }
      if (buf.length > 1 << 22) throw new Error('an event exceeded 4 MiB');
    }
  }

  #event(block) {
    let type = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length === 0) return;
    let payload;
    try { payload = JSON.parse(data.join('\n')); } catch { return; }
    if (type === 'close') {
      this.#close = { code: Number(payload.code) || 1006, reason: payload.reason || '' };
      return;
    }
    if (payload.type === 'connected' && payload.result) this.#connection = payload.result.connection;
    if (payload.type === 'reply' && this.#awaiting && this.#awaiting.id === payload.id) this.#awaiting.resolve();
    this.#h.onframe(payload);
  }

  send(frame) {
    if (this.#done || !this.#connection) {
      throw new SwitchboardError(NOT_CONNECTED, 'the stream is not open');
    }
    this.#chain = this.#chain.then(() => this.#post(frame));
  }

  async #post(frame) {
    if (this.#done) return;
    const token = frame.type === 'refresh' ? frame.token : this.#token();
    // The reply can come down the stream before the POST's own answer:
    // wait for it from before the POST is sent.
    const reply = this.#expect(frame.id);
    let res;
    try {
      res = await fetch(this.#base + '/sse/' + encodeURIComponent(this.#connection), {
        method: 'POST', body: JSON.stringify(frame), cache: 'no-store', credentials: 'omit',
        headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
      });
    } catch (err) {
      reply.cancel();
      this.#failed(frame, 'unavailable', 'the request did not reach the gateway');
      return;
    }
    if (res.ok) {
      await reply.promise;
      return;
    }
    reply.cancel();
    const body = await res.json().catch(() => ({}));
    if (res.status === 404) {
      this.close('the gateway no longer holds this stream');
      return;
    }
    const e = body.error || {};
    this.#failed(frame, e.code || 'http_' + res.status, e.message || res.statusText);
  }

  // expect starts waiting for the reply to request id; its promise
  // resolves on that reply, the end of the stream, the open timeout, or
  // cancel, whichever comes first.
  #expect(id) {
    if (!id || this.#done) return { promise: Promise.resolve(), cancel() {} };
    let done;
    const promise = new Promise((resolve) => {
      const timer = setTimeout(() => done(), this.openTimeout);
      done = () => {
        clearTimeout(timer);
        if (this.#awaiting && this.#awaiting.id === id) this.#awaiting = null;
        resolve();
      };
    });
    this.#awaiting = { id, resolve: done };
    return { promise, cancel: done };
  }

  // failed answers a request that never reached its connection.
  #failed(frame, code, message) {
    if (frame.id) this.#h.onframe({ type: 'reply', id: frame.id, error: { code, message } });
  }

  close(reason = 'closed by the client') {
    this.#abort.abort();
    this.#finish(1006, reason);
  }

  #finish(code, reason) {
    if (this.#done) return;
    this.#done = true;
    this.#abort.abort();
    if (this.#awaiting) this.#awaiting.resolve();
    this.#h.onclose({ code, reason, opened: this.#opened });
  }
}

/**
 * Client keeps one logical connection to a gateway.
 *
 * Options:
 *   - url: the gateway's HTTP base URL (default: the page's origin);
 *     WebSockets go to <url>/ws, the fallback to <url>/sse.
 *   - websocketURL: overrides <url>/ws.
 *   - token: an AuthSession, or a function ({minValidity}) => Promise of
 *     an access token. Required.
 *   - transport: 'auto' (WebSocket, falling back to SSE), 'websocket' or
 *     'sse'; default 'auto'.
 *   - pingInterval (10 s), requestTimeout (10 s), refreshMargin (30 s,
 *     capped at half the token's remaining life), minBackoff (500 ms),
 *     maxBackoff (20 s).
 *   - websocketRetry (60 s): in auto mode, after falling back, a reconnect
 *     this long after WebSockets last failed tries them first again.
 *
 * Events (detail in brackets):
 *   - state {state, transport, code, reason, retryIn}: state is idle,
 *     connecting, connected, disconnected (retrying in retryIn ms) or
 *     closed (no more attempts; code says why).
 *   - message {room, data, epoch, offset}
 *   - latency {ms, quality}
 *   - recovery {room, recovered, cause}: after a rejoin from a known
 *     position (cause 'reconnect') or after a resync push (cause
 *     'resync'), whether the gateway replayed what was missed; false means
 *     the page should reload the room's history from its own backend.
 *   - left {room, reason}: the gateway removed the connection from a room.
 *   - refreshed {expiresAt}: the open connection took a fresh token.
 *   - error {error}: a SwitchboardError worth showing.
 */
export class Client extends Emitter {
  #opts;
  #getToken;
  #unsubscribe = () => {};

  #state = 'idle';
  #transport = null;
  #closed = true;
  #attempt = 0;
  #websocketFailedAt = 0; // when a WebSocket last failed to open (auto mode)
  #fellBack = false; // the fallback connected after WebSockets failed
  #fallbackNext = false;
  #badTokenRetried = false;
  #needFresh = false; // the next dial asks the token source for a new token
  #offer = null; // {token, promise} of a refresh in flight
  #timers = { retry: 0, ping: 0, refresh: 0, auth: 0 };

  #token = '';
  #expiresAt = 0;
  #user = '';
  #connection = '';
  #latency = null;
  #nextID = 1;
  #pending = new Map(); // request id -> {resolve, reject, timer}
  #rooms = new Map(); // room -> last position {epoch, offset}, or null
  #gaps = new Map(); // room -> {since, seen: Set of offsets, overflow, join}
  #recovery = new Map(); // room -> {recovered, cause, at}
  #joins = 0; // join requests sent, numbering a gap's latest rejoin
  #waiters = new Map(); // room -> [{resolve, reject}] until joined

  constructor(opts = {}) {
    super();
    const origin = globalThis.location ? globalThis.location.origin : '';
    const url = (opts.url || origin).replace(/\/+$/, '');
    this.#opts = {
      url,
      websocketURL: opts.websocketURL || url.replace(/^http/, 'ws') + '/ws',
      transport: opts.transport || 'auto',
      pingInterval: opts.pingInterval ?? 10000,
      requestTimeout: opts.requestTimeout ?? 10000,
      refreshMargin: opts.refreshMargin ?? 30000,
      minBackoff: opts.minBackoff ?? 500,
      maxBackoff: opts.maxBackoff ?? 20000,
      websocketRetry: opts.websocketRetry ?? 60000,
    };
    if (!['auto', 'websocket', 'sse'].includes(this.#opts.transport)) {
      throw new TypeError('Client: transport must be auto, websocket or sse');
    }
    const src = opts.token;
    if (typeof src === 'function') this.#getToken = src;
    else if (src && typeof src.token === 'function') this.#getToken = (o) => src.token(o);
    else throw new TypeError('Client: token must be an AuthSession or a function');
    if (src && typeof src.on === 'function') {
      this.#unsubscribe = src.on('token', ({ token }) => {
        this.#offerToken(token).catch((error) => {
          if (this.#state === 'connected') this.emit('error', { error });
        });
      });
    }
  }

  get state() { return this.#state; }
  /** The transport in use or being tried: 'websocket' or 'sse'. */
  get transport() { return this.#transport ? this.#transport.name : ''; }
  get user() { return this.#user; }
  get connection() { return this.#connection; }
  get expiresAt() { return this.#expiresAt; }
  /** The last round trip: {ms, quality}, or null before the first. */
  get latency() { return this.#latency; }
  /** The rooms the client wants to be in, with their last positions. */
  get rooms() { return new Map(this.#rooms); }
  /**
   * The last recovery of each room: room -> {recovered, cause, at (ms)}.
   * A room rejoined from no position has no entry.
   */
  get recovery() { return new Map(this.#recovery); }

  /** Starts connecting; the client then stays connected until close. */
  connect() {
    if (!this.#closed) return;
    this.#closed = false;
    this.#attempt = 0;
    this.#dial();
  }

  /** Closes the connection for good. */
  close() {
    this.#closed = true;
    this.#unsubscribe();
    this.#clearTimers();
    const t = this.#transport;
    this.#transport = null;
    if (t) t.close();
    this.#failPending(DISCONNECTED);
    for (const room of this.#waiters.keys()) this.#settle(room, new SwitchboardError(DISCONNECTED, 'closed'));
    this.#setState('closed', {});
  }

  /**
   * Joins a room and resolves once joined. While disconnected it waits for
   * the next connection. Refusals (forbidden, too_many_rooms) reject and
   * forget the room.
   */
  join(room) {
    if (this.#closed) return Promise.reject(new SwitchboardError(NOT_CONNECTED, 'the client is closed'));
    const p = new Promise((resolve, reject) => {
      const list = this.#waiters.get(room) || [];
      list.push({ resolve, reject });
      this.#waiters.set(room, list);
    });
    if (!this.#rooms.has(room)) this.#rooms.set(room, null);
    if (this.#state === 'connected') this.#joinRoom(room);
    return p;
  }

  /** Leaves a room; the client no longer rejoins it. */
  async leave(room) {
    this.#forget(room);
    this.#settle(room, new SwitchboardError('left', 'left before joining'));
    if (this.#state !== 'connected') return { room };
    return this.#request({ type: 'leave', room });
  }

  /** Publishes data (any JSON value) to a joined room: {epoch, offset}. */
  publish(room, data) {
    return this.#request({ type: 'publish', room, data });
  }

  /**
   * Lists the ids of the conversations the user may open (the
   * `conversations` request). A gateway without it rejects with
   * unknown_type.
   */
  async conversations() {
    const res = await this.#request({ type: 'conversations' });
    return (res && res.conversations) || [];
  }

  /** Measures one round trip, emits latency and returns it. */
  async ping() {
    const start = performance.now();
    await this.#request({ type: 'ping', ts: Date.now() });
    const ms = Math.round(performance.now() - start);
    this.#latency = { ms, quality: grade(ms) };
    this.emit('latency', this.#latency);
    return this.#latency;
  }

  // ---- connecting

  async #dial() {
    if (this.#closed) return;
    const name = this.#pickTransport();
    this.#setState('connecting', { transport: name });
    let token;
    try {
      const minValidity = this.#needFresh ? Infinity : this.#opts.refreshMargin;
      this.#needFresh = false;
      token = await this.#getToken({ minValidity });
    } catch (err) {
      this.emit('error', { error: err });
      if (err.code === 'no_session') return this.#setState('closed', { reason: 'no session' });
      return this.#retry({ code: 0, reason: 'no token' });
    }
    if (this.#closed) return;
    this.#token = token;
    const handlers = {};
    const t = name === 'sse'
      ? new SSETransport(this.#opts.url, handlers, this.#opts.requestTimeout, () => this.#token)
      : new WebSocketTransport(this.#opts.websocketURL, handlers, this.#opts.requestTimeout);
    handlers.onopen = () => t === this.#transport && this.#onOpen(t, token);
    handlers.onframe = (f) => t === this.#transport && this.#onFrame(f);
    handlers.onclose = (info) => t === this.#transport && this.#onClose(t, info);
    this.#transport = t;
    t.start();
  }

  // pickTransport is the forced transport, else WebSocket unless it just
  // failed to open, or the fallback worked after it and it failed less
  // than websocketRetry ago. (When both fail, the gateway may be down
  // rather than WebSockets blocked: WebSocket is tried first again.)
  #pickTransport() {
    if (this.#opts.transport !== 'auto') return this.#opts.transport;
    if (this.#fallbackNext || typeof WebSocket === 'undefined') return 'sse';
    const recent = Date.now() - this.#websocketFailedAt < this.#opts.websocketRetry;
    return this.#fellBack && recent ? 'sse' : 'websocket';
  }

  #onOpen(t, token) {
    if (t.name === 'websocket') t.send({ id: this.#id(), type: 'auth', token });
    this.#timers.auth = setTimeout(() => t.close('no connected frame in time'), this.#opts.requestTimeout);
  }

  #onConnected(res) {
    clearTimeout(this.#timers.auth);
    this.#user = res.user;
    this.#connection = res.connection;
    this.#expiresAt = res.expires_at;
    this.#attempt = 0;
    this.#badTokenRetried = false;
    this.#fallbackNext = false;
    if (this.#opts.transport === 'auto') this.#fellBack = this.#transport.name === 'sse';
    this.#setState('connected', {});
    this.#scheduleRefresh();
    this.#pingLoop();
    for (const room of this.#rooms.keys()) this.#joinRoom(room);
  }

  #onClose(t, info) {
    this.#transport = null;
    this.#clearTimers();
    this.#failPending(DISCONNECTED);
    if (this.#closed) return;
    if (t.name === 'websocket' && !info.opened && this.#opts.transport === 'auto') {
      this.#websocketFailedAt = Date.now();
      this.#fallbackNext = true; // WebSockets may be blocked: try SSE at once
      return this.#retry(info, 0);
    }
    this.#fallbackNext = false;
    if (info.code === 3500 && !this.#badTokenRetried) {
      this.#badTokenRetried = true; // perhaps a stale token: one more try with a fresh one
      this.#needFresh = true;
      return this.#retry(info);
    }
    if (!shouldReconnect(info.code)) {
      const error = new SwitchboardError('closed_' + info.code, info.reason || 'closed by the gateway');
      this.emit('error', { error });
      for (const room of this.#waiters.keys()) this.#settle(room, error);
      return this.#setState('closed', { code: info.code, reason: info.reason });
    }
    if (info.code === 3003) this.#needFresh = true;
    this.#retry(info);
  }

  #retry(info, delay) {
    const wait = delay ?? backoff(this.#attempt++, this.#opts.minBackoff, this.#opts.maxBackoff);
    this.#setState('disconnected', { code: info.code, reason: info.reason, retryIn: wait });
    clearTimeout(this.#timers.retry);
    this.#timers.retry = setTimeout(() => this.#dial(), wait);
  }

  #setState(state, { code = 0, reason = '', retryIn = 0, transport } = {}) {
    this.#state = state;
    this.emit('state', { state, transport: transport || this.transport, code, reason, retryIn });
  }

  #clearTimers() {
    for (const k of Object.keys(this.#timers)) clearTimeout(this.#timers[k]);
  }

  // ---- frames

  #onFrame(f) {
    switch (f.type) {
      case 'reply': return this.#onReply(f);
      case 'connected': return this.#onConnected(f.result || {});
      case 'message': return this.#onMessage(f);
      case 'resync': return this.#onResync(f.room);
      case 'left':
        this.#forget(f.room);
        return this.emit('left', { room: f.room, reason: f.reason });
      case 'error':
        return this.emit('error', { error: new SwitchboardError(f.error.code, f.error.message) });
    }
  }

  #onReply(f) {
    const p = this.#pending.get(f.id);
    if (!p) return;
    this.#pending.delete(f.id);
    clearTimeout(p.timer);
    if (f.error) p.reject(new SwitchboardError(f.error.code, f.error.message));
    else p.resolve(f.result);
  }

  #onMessage(f) {
    if (!this.#isNew(f)) return;
    this.emit('message', { room: f.room, data: f.data, epoch: f.epoch, offset: f.offset });
  }

  // isNew reports whether message f was not seen yet, and records its
  // position. Within an open gap, offsets past the gap's start are told
  // apart one by one (the gap's messages come after later ones); elsewhere
  // an offset at or before the last one of the same epoch is a repeat.
  #isNew(f) {
    const last = this.#rooms.get(f.room);
    const gap = this.#gaps.get(f.room);
    const since = gap && gap.since;
    if (since && f.epoch === since.epoch && f.offset > since.offset) {
      if (gap.seen.has(f.offset)) return false;
      if (gap.seen.size < MAX_GAP_OFFSETS) gap.seen.add(f.offset);
      else gap.overflow = true;
    } else if (last && last.epoch === f.epoch && f.offset <= last.offset) {
      return false;
    }
    if (!this.#rooms.has(f.room)) return true;
    if (!last || last.epoch !== f.epoch || f.offset > last.offset) {
      this.#rooms.set(f.room, { epoch: f.epoch, offset: f.offset });
    }
    return true;
  }

  // onResync rejoins room from the position held when the push came: the
  // replica lost messages after it.
  #onResync(room) {
    if (!this.#rooms.has(room)) return;
    if (!this.#gaps.has(room)) {
      this.#gaps.set(room, { since: this.#rooms.get(room), seen: new Set(), overflow: false, join: 0 });
    }
    this.#joinRoom(room, 'resync');
  }

  #id() {
    return this.#nextID++;
  }

  #request(fields, timeout = this.#opts.requestTimeout) {
    const t = this.#transport;
    if (!t || this.#state !== 'connected') {
      return Promise.reject(new SwitchboardError(NOT_CONNECTED, 'not connected'));
    }
    const id = this.#id();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new SwitchboardError(TIMEOUT, fields.type + ' got no reply in time'));
      }, timeout);
      this.#pending.set(id, { resolve, reject, timer });
      try {
        t.send({ id, ...fields });
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(err);
      }
    });
  }

  #failPending(code) {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new SwitchboardError(code, 'the connection ended'));
    }
    this.#pending.clear();
  }

  // ---- rooms

  // joinRoom joins room from its gap's start, else from its last
  // position, and reports the recovery when there was one to make.
  async #joinRoom(room, cause = 'reconnect') {
    const gap = this.#gaps.get(room);
    const since = gap ? gap.since : this.#rooms.get(room);
    const join = ++this.#joins;
    if (gap) gap.join = join;
    const req = { type: 'join', room };
    if (since) req.since = since;
    try {
      const res = await this.#request(req);
      if (since || gap) this.#recovered(room, gap, join, Boolean(since) && res && res.recovered === true, gap ? 'resync' : cause);
      this.#settle(room, null, res);
    } catch (err) {
      if (err.code === DISCONNECTED || err.code === NOT_CONNECTED) return; // rejoined on reconnect
      this.#forget(room);
      this.#settle(room, err);
      this.emit('error', { error: err });
    }
  }

  // recovered closes room's gap once its latest rejoin answered, records
  // and emits the outcome. A gap that outgrew its bound is not recovered.
  #recovered(room, gap, join, ok, cause) {
    if (gap) {
      if (this.#gaps.get(room) !== gap || gap.join !== join) return; // a later rejoin reports
      this.#gaps.delete(room);
      ok = ok && !gap.overflow;
    }
    if (!this.#rooms.has(room)) return;
    const r = { recovered: ok, cause, at: Date.now() };
    this.#recovery.set(room, r);
    this.emit('recovery', { room, recovered: ok, cause });
  }

  #forget(room) {
    this.#rooms.delete(room);
    this.#gaps.delete(room);
    this.#recovery.delete(room);
  }

  #settle(room, err, res) {
    const list = this.#waiters.get(room) || [];
    this.#waiters.delete(room);
    for (const w of list) err ? w.reject(err) : w.resolve(res);
  }

  // ---- liveness and tokens

  async #pingLoop() {
    const t = this.#transport;
    try {
      await this.ping();
    } catch (err) {
      if (t === this.#transport && err.code === TIMEOUT) t.close('ping got no reply');
      if (err.code === TIMEOUT || err.code === DISCONNECTED) return;
    }
    if (t !== this.#transport) return;
    this.#timers.ping = setTimeout(() => this.#pingLoop(), this.#opts.pingInterval);
  }

  #scheduleRefresh(attempt = 0, delay) {
    clearTimeout(this.#timers.refresh);
    const left = this.#expiresAt - Date.now();
    const margin = Math.min(this.#opts.refreshMargin, left / 2);
    const wait = delay ?? Math.max(0, left - margin);
    this.#timers.refresh = setTimeout(() => this.#refresh(attempt), wait);
  }

  async #refresh(attempt) {
    const t = this.#transport;
    try {
      const left = this.#expiresAt - Date.now();
      const token = await this.#getToken({ minValidity: left + 1000 });
      if (t !== this.#transport) return;
      if (token === this.#token) throw new SwitchboardError('stale_token', 'the token source gave the same token');
      await this.#offerToken(token);
    } catch (err) {
      if (t !== this.#transport || this.#state !== 'connected') return;
      this.emit('error', { error: err });
      this.#scheduleRefresh(attempt + 1, backoff(attempt, 1000, 10000));
    }
  }

  // offerToken hands a new token to the open connection; offering the
  // same token twice at once sends one refresh.
  #offerToken(token) {
    if (this.#state !== 'connected' || token === this.#token) return Promise.resolve();
    if (this.#offer && this.#offer.token === token) return this.#offer.promise;
    const t = this.#transport;
    const promise = this.#request({ type: 'refresh', token }).then((res) => {
      if (t !== this.#transport) return;
      this.#token = token;
      this.#expiresAt = res.expires_at;
      this.emit('refreshed', { expiresAt: this.#expiresAt });
      this.#scheduleRefresh();
    }).finally(() => {
      if (this.#offer && this.#offer.promise === promise) this.#offer = null;
    });
    this.#offer = { token, promise };
    return promise;
  }
}
