package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"switchboard/libs/gatewayclient/protocol"
	"switchboard/libs/server"
	gatewayv1 "switchboard/proto/switchboard/gateway/v1"
	"switchboard/services/gateway/broker"
	"switchboard/services/gateway/telemetry"
)

// MaxKeyBytes bounds an idempotency key.
const MaxKeyBytes = protocol.MaxKeyBytes

// Service publishes for backends.
type Service struct {
	gatewayv1.UnimplementedPublishServiceServer

	// Read-only after construction.
	broker   broker.Broker
	cred     server.Credential
	maxBytes int64
	timeout  time.Duration
	metrics  *telemetry.Metrics
}

// New returns a Service. maxBytes caps the data of one publish; timeout
// bounds the broker's acknowledgement.
func New(b broker.Broker, cred server.Credential, maxBytes int64, timeout time.Duration, m *telemetry.Metrics) *Service {
	return &Service{broker: b, cred: cred, maxBytes: maxBytes, timeout: timeout, metrics: m}
}

// errInvalid marks a publish refused for its content.
type errInvalid struct{ msg string }

func (e errInvalid) Error() string { return e.msg }

func (s *Service) publish(ctx context.Context, room string, data []byte, key string) (string, uint64, error) {
	if err := s.check(room, data, key); err != nil {
		s.metrics.Publishes.WithLabelValues("api", "invalid").Inc()
		return "", 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	epoch, off, err := s.broker.Publish(ctx, room, data, key)
	if err != nil {
		s.metrics.Publishes.WithLabelValues("api", "error").Inc()
		return "", 0, fmt.Errorf("publish to %s: %w", room, err)
	}
	s.metrics.Publishes.WithLabelValues("api", "ok").Inc()
	return epoch, off, nil
}

func (s *Service) check(room string, data []byte, key string) error {
	if _, _, ok := protocol.ParseRoom(room); !ok {
		return errInvalid{"room must be user:<id> or conversation:<id>"}
	}
	if len(data) == 0 || int64(len(data)) > s.maxBytes {
		return errInvalid{fmt.Sprintf("data must be 1 to %d bytes", s.maxBytes)}
	}
	if !json.Valid(data) {
		return errInvalid{"data must be a JSON value"}
	}
	if len(key) > MaxKeyBytes {
		return errInvalid{fmt.Sprintf("idempotency_key must be at most %d bytes", MaxKeyBytes)}
	}
	return nil
}

// Publish implements gatewayv1.PublishServiceServer. The credential is
// checked here as well as by any interceptor, so the service is safe on its
// own.
func (s *Service) Publish(ctx context.Context, req *gatewayv1.PublishRequest) (*gatewayv1.PublishResponse, error) {
	if !s.cred.HasCredential(ctx) {
		return nil, status.Error(codes.Unauthenticated, "this call needs the service credential")
	}
	epoch, off, err := s.publish(ctx, req.GetRoom(), req.GetData(), req.GetIdempotencyKey())
	var inv errInvalid
	switch {
	case errors.As(err, &inv):
		return nil, status.Error(codes.InvalidArgument, inv.msg)
	case err != nil:
		return nil, status.Error(codes.Unavailable, "the broker did not acknowledge; retry with the same idempotency key")
	}
	return &gatewayv1.PublishResponse{Epoch: epoch, Offset: off}, nil
}

type httpRequest struct {
	Room           string          `json:"room"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
}

type httpError struct {
	Error string `json:"error"`
}

// ServeHTTP serves POST /v1/publish: a JSON body {"room", "data",
// "idempotency_key"} answered with {"epoch", "offset"}.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, httpError{"use POST"})
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !s.cred.Matches(bearer) {
		writeJSON(w, http.StatusUnauthorized, httpError{"this call needs the service credential"})
		return
	}
	// A body that trickles in holds a goroutine: bound its time too.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.timeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBytes+4096))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, httpError{"the body is too large"})
		return
	}
	var req httpRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, httpError{"the body must be a JSON object with room and data"})
		return
	}
	epoch, off, err := s.publish(r.Context(), req.Room, req.Data, req.IdempotencyKey)
	var inv errInvalid
	switch {
	case errors.As(err, &inv):
		writeJSON(w, http.StatusBadRequest, httpError{inv.msg})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, httpError{"the broker did not acknowledge; retry with the same idempotency key"})
	default:
		writeJSON(w, http.StatusOK, protocol.PublishResult{Epoch: epoch, Offset: off})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
