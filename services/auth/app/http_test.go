package app_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/app"
)

type tokenJSON struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	UserID       string `json:"user_id"`
	Error        string `json:"error"`
}

func post(t *testing.T, r *replica, path, contentType, body string, header map[string]string) (*http.Response, tokenJSON) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, "http://"+r.svc.HTTPAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	access, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	r.seen.addText(access)
	r.seen.noteForm(contentType, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out tokenJSON
	json.NewDecoder(resp.Body).Decode(&out)
	r.seen.addText(out.AccessToken, out.RefreshToken)
	return resp, out
}

const form = "application/x-www-form-urlencoded"

func TestHTTPTokenGrantsAndLogout(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	body := url.Values{"grant_type": {"password"}, "username": {app.DemoEmail}, "password": {app.DemoPassword}}.Encode()
	resp, tok := post(t, r, "/v1/token", form, body, nil)
	if resp.StatusCode != http.StatusOK || tok.TokenType != "Bearer" || tok.UserID != app.DemoUserID || tok.ExpiresIn <= 0 {
		t.Fatalf("password grant: %d %+v", resp.StatusCode, tok.Error)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatal("token answer may be cached")
	}

	js := `{"grant_type":"refresh_token","refresh_token":"` + tok.RefreshToken + `"}`
	resp, next := post(t, r, "/v1/token", "application/json", js, nil)
	if resp.StatusCode != http.StatusOK || next.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh grant: %d %s", resp.StatusCode, next.Error)
	}

	resp, _ = post(t, r, "/v1/logout", "", "", map[string]string{"Authorization": "Bearer " + next.AccessToken})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if _, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: next.AccessToken}); err == nil {
		t.Fatal("access token valid after logout")
	}

	bad := []struct {
		name, ct, body string
		status         int
		kind           string
	}{
		{"wrong password", form, url.Values{"grant_type": {"password"}, "username": {app.DemoEmail}, "password": {"nope-nope"}}.Encode(), 400, "invalid_grant"},
		{"old refresh token", form, "grant_type=refresh_token&refresh_token=" + url.QueryEscape(tok.RefreshToken), 400, "invalid_grant"},
		{"unknown grant", form, "grant_type=client_credentials", 400, "unsupported_grant_type"},
		{"bad json", "application/json", `{"grant_type":`, 400, "invalid_request"},
		{"number field", "application/json", `{"grant_type":1}`, 400, "invalid_request"},
		{"text body", "text/plain", "grant_type=password", 400, "invalid_request"},
		{"oversized", form, "grant_type=password&password=" + strings.Repeat("x", 9000), 400, "invalid_request"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			resp, out := post(t, r, "/v1/token", b.ct, b.body, nil)
			if resp.StatusCode != b.status || out.Error != b.kind {
				t.Fatalf("= %d %q, want %d %q", resp.StatusCode, out.Error, b.status, b.kind)
			}
		})
	}
}

func TestHTTPCORS(t *testing.T) {
	r := start(t, env(nil), nil)
	cases := []struct {
		origin      string
		preflight   int
		allowOrigin string
	}{
		{"https://app.example.com", http.StatusNoContent, "https://app.example.com"},
		{"https://evil.example.com", http.StatusForbidden, ""},
	}
	for _, tc := range cases {
		t.Run(tc.origin, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctxT(t), http.MethodOptions, "http://"+r.svc.HTTPAddr+"/v1/token", nil)
			req.Header.Set("Origin", tc.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.preflight || resp.Header.Get("Access-Control-Allow-Origin") != tc.allowOrigin {
				t.Fatalf("preflight = %d, allow-origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
			resp, _ = post(t, r, "/v1/token", form, "grant_type=none", map[string]string{"Origin": tc.origin})
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.allowOrigin {
				t.Fatalf("allow-origin on POST = %q", got)
			}
		})
	}
}

// The JWKS document verifies a token the service issued.
func TestHTTPJWKSVerifiesTokens(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	p := login(t, r, seen)
	resp, err := http.Get("http://" + r.svc.HTTPAddr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Keys) == 0 {
		t.Fatalf("jwks: %v, %d keys", err, len(doc.Keys))
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range doc.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || k.Kty != "OKP" || k.Alg != "EdDSA" {
			t.Fatalf("key %+v", k)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	_, err = jwt.Parse(p.GetAccessToken(), func(tok *jwt.Token) (any, error) {
		return keys[tok.Header["kid"].(string)], nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("switchboard"), jwt.WithIssuer("switchboard-auth"))
	if err != nil {
		t.Fatalf("token does not verify with the JWKS: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + r.svc.HTTPAddr + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, err, resp.Status)
		}
		resp.Body.Close()
	}
}

// /metrics is served on the metrics listener only: the public HTTP port,
// which browsers reach for /v1/token, answers 404.
func TestMetricsOnlyOnTheMetricsListener(t *testing.T) {
	r := start(t, env(nil), nil)
	tests := []struct {
		addr, path string
		code       int
	}{
		{r.svc.HTTPAddr, "/metrics", http.StatusNotFound},
		{r.svc.MetricsAddr, "/metrics", http.StatusOK},
		{r.svc.MetricsAddr, "/healthz", http.StatusOK},
		{r.svc.MetricsAddr, "/v1/jwks", http.StatusNotFound},
	}
	for _, tt := range tests {
		resp, err := http.Get("http://" + tt.addr + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s on %s: %s, want %d", tt.path, tt.addr, resp.Status, tt.code)
		}
	}
}

func TestMetricsCountWithoutTokens(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	p := login(t, r, seen)
	for range 3 {
		r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: p.GetAccessToken()})
	}
	r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: "x.y.z"})
	r.client.Refresh(ctxT(t), &authv1.RefreshRequest{RefreshToken: p.GetRefreshToken()})
	resp, err := http.Get("http://" + r.svc.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	body := b.String()
	for _, want := range []string{
		`auth_validations_total{result="ok"} 3`,
		`auth_validations_total{result="malformed"} 1`,
		`auth_refreshes_total{result="rotated"} 1`,
		`auth_cache_hit_ratio{cache="tokens"}`,
		`auth_validate_duration_seconds_bucket{cache="hit"`,
		`auth_logins_total{result="ok"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if line := seen.leak(body); line != 0 {
		t.Fatalf("metrics line %d holds part of a token", line)
	}
}
