package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Options configure New.
type Options struct {
	// AuthURL is the auth service's HTTP base as browsers reach it, for
	// its token endpoint. Required: an absolute http or https URL.
	AuthURL string
	// GatewayURL is the gateway's HTTP base as browsers reach it. Empty:
	// the page's own origin (the gateway serving the page).
	GatewayURL string
}

// asset is one file ready to serve.
type asset struct {
	body []byte
	typ  string
	etag string
}

// Handler serves the embedded files and config.json.
type Handler struct {
	// Read-only after New.
	assets map[string]asset
	csp    string
}

// New checks opts and loads the embedded files.
func New(opts Options) (*Handler, error) {
	authOrigin, err := origin(opts.AuthURL)
	if err != nil {
		return nil, fmt.Errorf("auth URL: %w", err)
	}
	connect := []string{"'self'", authOrigin}
	if opts.GatewayURL != "" {
		gw, err := origin(opts.GatewayURL)
		if err != nil {
			return nil, fmt.Errorf("gateway URL: %w", err)
		}
		connect = append(connect, gw, "ws"+strings.TrimPrefix(gw, "http"))
	}
	h := &Handler{assets: make(map[string]asset), csp: csp(connect)}
	if err := h.load(); err != nil {
		return nil, err
	}
	cfg, _ := json.Marshal(map[string]string{
		"auth_url":    strings.TrimRight(opts.AuthURL, "/"),
		"gateway_url": strings.TrimRight(opts.GatewayURL, "/"),
	})
	h.add("config.json", cfg)
	return h, nil
}

// origin returns scheme://host of an absolute http(s) URL.
func origin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

func csp(connect []string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src " + strings.Join(connect, " ") + "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

func (h *Handler) load() error {
	return fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return fmt.Errorf("embedded %s: %w", p, err)
		}
		h.add(strings.TrimPrefix(p, "static/"), body)
		return nil
	})
}

func (h *Handler) add(name string, body []byte) {
	typ := mime.TypeByExtension(path.Ext(name))
	if typ == "" {
		typ = "application/octet-stream"
	}
	sum := sha256.Sum256(body)
	h.assets[name] = asset{body: body, typ: typ, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// ServeHTTP serves GET and HEAD of the embedded files; "/" is the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		name = "index.html"
	}
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.typ)
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", h.csp)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
