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
