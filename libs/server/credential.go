package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Credential is the shared secret that trusted backends present to call
// privileged RPCs, in "authorization: Bearer <credential>" metadata.
type Credential struct {
	sum [sha256.Size]byte
	set bool
}

// NewCredential wraps secret. An empty secret matches nothing, so trusted
// calls are refused until one is configured.
func NewCredential(secret string) Credential {
	if secret == "" {
		return Credential{}
	}
	return Credential{sum: sha256.Sum256([]byte(secret)), set: true}
}

// Matches compares presented with the secret in constant time. Hashing first
// keeps the comparison's time independent of the presented length too.
func (c Credential) Matches(presented string) bool {
	got := sha256.Sum256([]byte(presented))
	return c.set && subtle.ConstantTimeCompare(got[:], c.sum[:]) == 1
}

// FromIncoming returns the bearer value of the authorization metadata, or "".
func FromIncoming(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if after, ok := strings.CutPrefix(v, "Bearer "); ok {
			return after
		}
	}
	return ""
}

// HasCredential reports whether the incoming call carries the credential.
func (c Credential) HasCredential(ctx context.Context) bool {
	return c.Matches(FromIncoming(ctx))
}

// Require returns interceptors that refuse, with UNAUTHENTICATED, every call
// to a method for which trusted returns true unless it carries the
// credential. trusted takes the full method name, "/pkg.Service/Method".
func (c Credential) Require(trusted func(method string) bool) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	check := func(ctx context.Context, method string) error {
		if trusted(method) && !c.HasCredential(ctx) {
			return status.Error(codes.Unauthenticated, "this call needs the service credential")
		}
		return nil
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
	return unary, stream
}

// bearer attaches a credential to every call of a client connection.
type bearer struct {
	secret string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.secret}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// WithCredential returns a dial option that sends secret on every call.
// requireTLS refuses to send it over a plaintext connection; the services
// run plaintext on loopback and inside a private network, so they pass false.
func WithCredential(secret string, requireTLS bool) grpc.DialOption {
	return grpc.WithPerRPCCredentials(credentials.PerRPCCredentials(bearer{secret, requireTLS}))
}
