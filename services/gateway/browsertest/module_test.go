package browsertest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"switchboard/services/gateway/web"
)

// TestClientModule checks the module's pure parts and AuthSession's refresh
// rules in the browser, with a fake token endpoint in place of fetch.
func TestClientModule(t *testing.T) {
	t.Parallel()
	h, err := web.New(web.Options{AuthURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	p := b.newPage(t, "module")
	p.do("load the page", 20*time.Second, chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(`body[data-ready="true"]`)))

	// Each script resolves to "" when its checks pass, or says what failed.
	tests := []struct{ name, script string }{
		{"grades", `
			const cases = [[0, 'excellent'], [99, 'excellent'], [100, 'good'], [299, 'good'], [300, 'poor'], [5000, 'poor']];
			return cases.filter(([ms, want]) => m.grade(ms) !== want).map(([ms]) => 'grade ' + ms).join(', ');`},
		{"backoff is full jitter, doubling from 500 ms to 20 s", `
			const bad = [];
			for (const [attempt, cap] of [[0, 500], [1, 1000], [3, 4000], [6, 20000], [40, 20000]]) {
				if (m.backoff(attempt, 500, 20000, () => 0) !== 0) bad.push('floor ' + attempt);
				if (m.backoff(attempt, 500, 20000, () => 0.999999) !== cap - 1) bad.push('cap ' + attempt);
			}
			return bad.join(', ');`},
		{"close codes", `
			const again = [1001, 1006, 1011, 1012, 1013, 3000, 3003, 3007, 3499, 4000];
			const stop = [1000, 1002, 1003, 1008, 1009, 3500, 3501, 3505, 3999];
			return [...again.filter((c) => !m.shouldReconnect(c)), ...stop.filter((c) => m.shouldReconnect(c))].join(', ');`},
		{"concurrent callers share one refresh", `
			let calls = 0;
			const fetch = async (url, init) => {
				calls++;
				await new Promise((r) => setTimeout(r, 50));
				const grant = JSON.parse(init.body).grant_type;
				return new Response(JSON.stringify({access_token: 'a' + calls, refresh_token: 'r' + calls,
					expires_in: grant === 'password' ? 1 : 600, user_id: 'u'}), {status: 200});
			};
			const s = new m.AuthSession({url: 'http://auth', fetch});
			await s.login('e', 'p');
			const soon = {minValidity: 5000}; // beyond the 1 s token's life
			const tokens = await Promise.all([s.token(soon), s.token(soon), s.refresh(), s.refresh()]);
			await s.logout();
			if (calls !== 3) return 'calls ' + calls + ', want login, one refresh, logout';
			return tokens.every((t) => t === 'a2') ? '' : 'tokens ' + tokens;`},
		{"refresh retries with backoff until auth answers", `
			let calls = 0, errors = 0;
			const fetch = async (url, init) => {
				calls++;
				if (calls === 2 || calls === 3) return new Response('{}', {status: 503});
				return new Response(JSON.stringify({access_token: 'a' + calls, refresh_token: 'r' + calls, expires_in: 600}), {status: 200});
			};
			const s = new m.AuthSession({url: 'http://auth', fetch, minBackoff: 10, maxBackoff: 20});
			s.on('error', () => errors++);
			await s.login('e', 'p');
			const t = await s.refresh();
			await s.logout();
			return t === 'a4' && errors === 2 ? '' : 'token ' + t + ' after ' + errors + ' errors';`},
		{"a refused refresh ends the session", `
			let ended = false;
			const fetch = async (url, init) => JSON.parse(init.body).grant_type === 'password'
				? new Response(JSON.stringify({access_token: 'a', refresh_token: 'r', expires_in: 600}), {status: 200})
				: new Response(JSON.stringify({error: 'invalid_grant', error_description: 'no'}), {status: 400});
			const s = new m.AuthSession({url: 'http://auth', fetch});
			s.on('ended', () => { ended = true; });
			await s.login('e', 'p');
			const err = await s.refresh().then(() => null, (e) => e);
			if (!err || err.code !== 'invalid_grant') return 'error ' + err;
			const again = await s.token().then(() => null, (e) => e.code);
			return ended && !s.active && again === 'no_session' ? '' : 'ended ' + ended + ', then ' + again;`},
		{"a resync rejoins from the position before the gap, drops repeats and reports per room", fakeGateway + `
			const c = new m.Client({url: 'http://gw', token: async () => 'tok', minBackoff: 1, maxBackoff: 2, pingInterval: 60000});
			const got = [], recoveries = [];
			try {
			c.on('message', ({offset}) => got.push(offset));
				c.on('recovery', (r) => recoveries.push(r.cause + ':' + r.recovered));
				c.connect();
				const room = 'conversation:x';
				const joined = c.join(room);
				let j = await gw.next('join');
				gw.push({type: 'reply', id: j.id, result: {room}});
				await joined;
				const msg = (offset) => gw.push({type: 'message', room, data: {}, epoch: 'e', offset});
				msg(1); msg(2);
				gw.push({type: 'resync', room});
				j = await gw.next('join');
				if (JSON.stringify(j.since) !== '{"epoch":"e","offset":2}') return 'resync join since ' + JSON.stringify(j.since);
				msg(5); // live, past the gap, before the rejoin answers
				msg(3); msg(4); msg(5); // the replay
				gw.push({type: 'reply', id: j.id, result: {room, recovered: true}});
				await gw.until(() => recoveries.length === 1);
				msg(4); msg(5); msg(6);
				gw.drop(1012);
				j = await gw.next('join');
				if (JSON.stringify(j.since) !== '{"epoch":"e","offset":6}') return 'reconnect join since ' + JSON.stringify(j.since);
				gw.push({type: 'reply', id: j.id, result: {room, recovered: false}});
				await gw.until(() => recoveries.length === 2);
				const last = c.recovery.get(room);
				if (got.join() !== '1,2,5,3,4,6') return 'messages ' + got.join();
				if (recoveries.join() !== 'resync:true,reconnect:false') return 'recoveries ' + recoveries.join();
				return last && last.recovered === false && last.cause === 'reconnect' ? '' : 'client.recovery ' + JSON.stringify(last);
			} finally {
				c.close();
				gw.restore();
			}`},
		{"after falling back, a later reconnect tries WebSockets again; fallback replies may beat their POST", fakeGateway + `
			const realFetch = globalThis.fetch;
			const enc = new TextEncoder();
			let stream = null;
			const event = (f) => stream.enqueue(enc.encode('data: ' + JSON.stringify(f) + '\n\n'));
			globalThis.fetch = async (url, init) => {
				if (url.endsWith('/sse')) {
					const body = new ReadableStream({start(ctrl) { stream = ctrl; }});
					setTimeout(() => event({type: 'connected', result: {user: 'u', connection: 's', expires_at: Date.now() + 600000}}), 0);
					return new Response(body, {status: 200, headers: {'Content-Type': 'text/event-stream'}});
				}
				const f = JSON.parse(init.body);
				event({type: 'reply', id: f.id, result: {}}); // the reply beats the 202
				await new Promise((r) => setTimeout(r, 20));
				return new Response(null, {status: 202});
			};
			const dropStream = () => {
				stream.enqueue(enc.encode('event: close\ndata: {"code": 1012, "reason": "restart"}\n\n'));
				stream.close();
			};
			const c = new m.Client({url: 'http://gw', token: async () => 'tok', minBackoff: 1, maxBackoff: 2,
				websocketRetry: 300, pingInterval: 60000, requestTimeout: 60000});
			const tried = [];
			c.on('state', ({state, transport}) => state === 'connecting' && tried.push(transport));
			const connectedOver = (name) => gw.until(() => c.state === 'connected' && c.transport === name);
			gw.refuse = true;
			try {
				c.connect();
				await connectedOver('sse');
				// Requests go one at a time; a reply that came before its
				// POST's answer must not hold the next one back.
				await c.ping();
				await c.ping();
				dropStream(); // within websocketRetry: the fallback again
				await gw.until(() => tried.length === 3);
				await connectedOver('sse');
				gw.refuse = false;
				await new Promise((r) => setTimeout(r, 350));
				dropStream(); // past websocketRetry: WebSockets first
				await connectedOver('websocket');
				return tried.join() === 'websocket,sse,sse,websocket' ? '' : 'tried ' + tried.join();
			} finally {
				c.close();
				gw.restore();
				globalThis.fetch = realFetch;
			}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expr := `import('/switchboard.js').then(async (m) => {` + tt.script + `})`
			ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
			defer cancel()
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("evaluate: %v", err)
			}
			if got != "" {
				t.Error(got)
			}
		})
	}
}

// fakeGateway installs, in place of the page's WebSocket, a fake gateway
// that answers auth and ping and lets a script push frames (gw.push), take
// the next request of a type (gw.next), cut the connection (gw.drop),
// refuse new sockets (gw.refuse) and wait for a condition (gw.until);
// gw.restore puts WebSocket back.
const fakeGateway = `
	const real = globalThis.WebSocket;
	const gw = {sock: null, queue: [], waiting: []};
	gw.push = (f) => gw.sock.onmessage({data: JSON.stringify(f)});
	gw.until = async (cond) => {
		for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
		if (!cond()) throw new Error('condition not met in time');
	};
	gw.next = async (type) => {
		await gw.until(() => gw.queue.some((f) => f.type === type));
		const i = gw.queue.findIndex((f) => f.type === type);
		return gw.queue.splice(i, 1)[0];
	};
	gw.drop = (code) => gw.sock.onclose({code, reason: 'cut'});
	gw.restore = () => { globalThis.WebSocket = real; };
	class FakeSocket {
		static OPEN = 1;
		constructor() {
			gw.sock = this;
			this.readyState = 0;
			if (gw.refuse) setTimeout(() => this.onclose({code: 1006, reason: 'refused'}), 0);
			else setTimeout(() => { this.readyState = 1; this.onopen(); }, 0);
		}
		send(text) {
			const f = JSON.parse(text);
			if (f.type === 'auth') gw.push({type: 'connected', result: {user: 'u', connection: 'c', expires_at: Date.now() + 600000}});
			else if (f.type === 'ping') gw.push({type: 'reply', id: f.id, result: {ts: f.ts}});
			else gw.queue.push(f);
		}
		close() { this.readyState = 3; }
	}
	globalThis.WebSocket = FakeSocket;
`
