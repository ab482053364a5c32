package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchboard/libs/server"
	"switchboard/services/auth/authority"
)

// maxBody caps a request body.
const maxBody = 8 << 10

// Handler serves the endpoints of the package doc.
type Handler struct {
	a       *authority.Authority
	origins []string
	proxies server.TrustedProxies
	log     *slog.Logger
	mux     *http.ServeMux
}

// New returns a Handler. origins is the CORS allow-list, exact
// "scheme://host[:port]" values; proxies are the networks of trusted
// reverse proxies, whose X-Forwarded-For names the client for rate
// limiting.
func New(a *authority.Authority, origins []string, proxies server.TrustedProxies, log *slog.Logger) *Handler {
	h := &Handler{a: a, origins: origins, proxies: proxies, log: log, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /v1/token", h.token)
	h.mux.HandleFunc("POST /v1/logout", h.logout)
	h.mux.HandleFunc("GET /.well-known/jwks.json", h.jwks)
	h.mux.HandleFunc("GET /v1/jwks", h.jwks)
	return h
}

// ServeHTTP applies CORS, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	allowed := origin != "" && slices.Contains(h.origins, origin)
	if origin != "" {
		w.Header().Add("Vary", "Origin")
	}
	if allowed {
		w.Header().Set("Access-Control-Allow-Origin", origin)
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		if !allowed {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// tokenResponse is the JSON of a token pair.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	ExpiresAt        string `json:"expires_at"`
	RefreshToken     string `json:"refresh_token"`
	SessionExpiresAt string `json:"session_expires_at"`
	UserID           string `json:"user_id"`
	SessionID        string `json:"session_id"`
}

func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	var p authority.Pair
	switch form.Get("grant_type") {
	case "password":
		email := form.Get("email")
		if email == "" {
			email = form.Get("username")
		}
		p, err = h.a.Login(r.Context(), email, form.Get("password"), h.proxies.ClientAddress(r))
	case "refresh_token":
		p, err = h.a.Refresh(r.Context(), form.Get("refresh_token"))
	default:
		writeError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be password or refresh_token")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: p.AccessToken, TokenType: "Bearer",
		ExpiresIn:        int64(time.Until(p.AccessExpires).Round(time.Second) / time.Second),
		ExpiresAt:        p.AccessExpires.UTC().Format(time.RFC3339),
		RefreshToken:     p.RefreshToken,
		SessionExpiresAt: p.SessionExpires.UTC().Format(time.RFC3339),
		UserID:           p.UserID, SessionID: p.SessionID,
	})
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	access, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	all := form.Get("all_sessions") == "true" || form.Get("all_sessions") == "1"
	if err := h.a.Logout(r.Context(), form.Get("refresh_token"), access, all); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{"keys": h.a.JWKS()})
}

// fail writes an authority error the RFC 6749 way.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *authority.Error
	if !errors.As(err, &e) {
		h.log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	switch e.Kind {
	case authority.InvalidArgument:
		writeError(w, http.StatusBadRequest, "invalid_request", e.Msg)
	case authority.Unauthenticated:
		writeError(w, http.StatusBadRequest, "invalid_grant", e.Msg)
	case authority.RateLimited:
		secs := max(1, int(e.RetryAfter.Round(time.Second)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "slow_down", e.Msg)
	default:
		if e.Err != nil {
			h.log.WarnContext(r.Context(), "request failed", "path", r.URL.Path, "error", e.Err)
		}
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", e.Msg)
	}
}

// readForm reads a form or JSON object body of at most maxBody bytes into
// url.Values; JSON values must be strings or booleans.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "" && r.ContentLength == 0 {
		return url.Values{}, nil // a logout with only an Authorization header
	}
	switch ct {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, errors.New("body is not a form of at most 8 KiB")
		}
		return r.PostForm, nil
	case "application/json":
		return readJSON(r.Body)
	}
	return nil, errors.New("content type must be application/x-www-form-urlencoded or application/json")
}

func readJSON(body io.Reader) (url.Values, error) {
	var m map[string]any
	dec := json.NewDecoder(body)
	if err := dec.Decode(&m); err != nil || dec.More() {
		return nil, errors.New("body is not one JSON object of at most 8 KiB")
	}
	v := url.Values{}
	for k, x := range m {
		switch x := x.(type) {
		case string:
			v.Set(k, x)
		case bool:
			v.Set(k, strconv.FormatBool(x))
		default:
			return nil, errors.New("every field must be a string or a boolean")
		}
	}
	return v, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, kind, desc string) {
	writeJSON(w, code, map[string]string{"error": kind, "error_description": desc})
}
