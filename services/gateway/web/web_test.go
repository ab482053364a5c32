package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"switchboard/services/gateway/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newHandler(t *testing.T, opts web.Options) http.Handler {
	t.Helper()
	h, err := web.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func TestServesAssets(t *testing.T) {
	h := newHandler(t, web.Options{AuthURL: "http://127.0.0.1:7201/"})
	tests := []struct {
		name, method, path string
		code               int
		typ, contains      string
	}{
		{"page at root", "GET", "/", 200, "text/html", `<script type="module" src="inbox.js">`},
		{"page by name", "GET", "/index.html", 200, "text/html", "Switchboard inbox"},
		{"client module", "GET", "/switchboard.js", 200, "javascript", "export class Client"},
		{"page script", "GET", "/inbox.js", 200, "javascript", "import { AuthSession, Client }"},
		{"style", "GET", "/inbox.css", 200, "text/css", "#messages"},
		{"config", "GET", "/config.json", 200, "application/json", `"auth_url":"http://127.0.0.1:7201"`},
		{"head", "HEAD", "/switchboard.js", 200, "javascript", ""},
		{"unknown file", "GET", "/secret.txt", 404, "", ""},
		{"no directory listing", "GET", "/static/", 404, "", ""},
		{"no traversal", "GET", "/../web.go", 404, "", ""},
		{"post refused", "POST", "/", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d", rec.Code, tt.code)
			}
			if tt.code != 200 {
				return
			}
			if got := rec.Header().Get("Content-Type"); !strings.Contains(got, tt.typ) {
				t.Errorf("Content-Type %q, want one containing %q", got, tt.typ)
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
			for _, k := range []string{"ETag", "Content-Security-Policy", "X-Content-Type-Options"} {
				if rec.Header().Get(k) == "" {
					t.Errorf("no %s header", k)
				}
			}
		})
	}
}

func TestETagRevalidates(t *testing.T) {
	h := newHandler(t, web.Options{AuthURL: "http://127.0.0.1:7201"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/switchboard.js", nil))
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest("GET", "/switchboard.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("revalidation with %s: status %d, want 304", etag, rec.Code)
	}
}

func TestConfigAndPolicy(t *testing.T) {
	h := newHandler(t, web.Options{AuthURL: "https://auth.example.com/base", GatewayURL: "http://127.0.0.1:9000/"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/config.json", nil))
	var cfg map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if cfg["auth_url"] != "https://auth.example.com/base" || cfg["gateway_url"] != "http://127.0.0.1:9000" {
		t.Errorf("config %v", cfg)
	}
	policy := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"https://auth.example.com ", "http://127.0.0.1:9000 ", "ws://127.0.0.1:9000", "frame-ancestors 'none'"} {
		if !strings.Contains(policy, want) {
			t.Errorf("policy %q lacks %q", policy, want)
		}
	}
}

func TestRejectsBadURLs(t *testing.T) {
	tests := []struct {
		name string
		opts web.Options
	}{
		{"no auth URL", web.Options{}},
		{"relative auth URL", web.Options{AuthURL: "/auth"}},
		{"other scheme", web.Options{AuthURL: "ftp://auth"}},
		{"credentials in URL", web.Options{AuthURL: "http://u:p@auth"}},
		{"bad gateway URL", web.Options{AuthURL: "http://auth", GatewayURL: "gateway:7100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := web.New(tt.opts); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}
