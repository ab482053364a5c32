package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/authority"
	"switchboard/services/auth/store"
)

// trusted lists the methods that need the service credential.
var trusted = map[string]bool{
	authv1.AuthService_IssueSession_FullMethodName:      true,
	authv1.AuthService_RevokeSessions_FullMethodName:    true,
	authv1.AuthService_CreateUser_FullMethodName:        true,
	authv1.AuthService_GrantAccess_FullMethodName:       true,
	authv1.AuthService_RevokeAccess_FullMethodName:      true,
	authv1.AuthService_ListMembers_FullMethodName:       true,
	authv1.AuthService_Authorize_FullMethodName:         true,
	authv1.AuthService_ListConversations_FullMethodName: true,
	authv1.AuthService_WatchRevocations_FullMethodName:  true,
	authv1.AuthService_Recheck_FullMethodName:           true,
}

// Trusted says whether a full method name needs the service credential;
// pass it to server.Credential.Require.
func Trusted(method string) bool { return trusted[method] }

// DefaultMaxWatchers is the default of Options.MaxWatchers.
const DefaultMaxWatchers = 256

// Options configure a Server.
type Options struct {
	// MaxWatchers caps the WatchRevocations streams open at once; one more
	// is refused with RESOURCE_EXHAUSTED. 0 = DefaultMaxWatchers.
	MaxWatchers int
}

// Server implements authv1.AuthServiceServer.
type Server struct {
	authv1.UnimplementedAuthServiceServer

	// Read-only after construction.
	a    *authority.Authority
	cred server.Credential
	log  *slog.Logger
	opts Options

	// Safe on its own.
	watchers atomic.Int64 // open WatchRevocations streams
}

// New returns a Server. cred tells a trusted proxy's Login, whose
// client_address is honoured, from an end user's.
func New(a *authority.Authority, cred server.Credential, log *slog.Logger, opts Options) *Server {
	if opts.MaxWatchers <= 0 {
		opts.MaxWatchers = DefaultMaxWatchers
	}
	return &Server{a: a, cred: cred, log: log, opts: opts}
}

// Register adds s to g.
func (s *Server) Register(g grpc.ServiceRegistrar) { authv1.RegisterAuthServiceServer(g, s) }

// toStatus maps an authority error to a status with its client-safe
// message; anything else becomes a bare Internal.
func (s *Server) toStatus(ctx context.Context, method string, err error) error {
	var e *authority.Error
	if !errors.As(err, &e) {
		s.log.ErrorContext(ctx, "rpc failed", "method", method, "error", err)
		return status.Error(codes.Internal, "internal error")
	}
	switch e.Kind {
	case authority.Unauthenticated:
		return status.Error(codes.Unauthenticated, e.Msg)
	case authority.InvalidArgument:
		return status.Error(codes.InvalidArgument, e.Msg)
	case authority.AlreadyExists:
		return status.Error(codes.AlreadyExists, e.Msg)
	case authority.RateLimited:
		secs := int(e.RetryAfter.Round(time.Second) / time.Second)
		grpcSetRetryAfter(ctx, max(secs, 1))
		return status.Error(codes.ResourceExhausted, e.Msg)
	}
	if e.Err != nil {
		s.log.WarnContext(ctx, "rpc failed", "method", method, "error", e.Err)
	}
	return status.Error(codes.Unavailable, e.Msg)
}

// clientAddress is the end user's address for rate limiting: the request's
// client_address when a trusted proxy sent it, else the peer's host.
func (s *Server) clientAddress(ctx context.Context, claimed string) string {
	if claimed != "" && s.cred.HasCredential(ctx) {
		return claimed
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}

func grpcSetRetryAfter(ctx context.Context, secs int) {
	grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.Itoa(secs)))
}

func pairProto(p authority.Pair) *authv1.TokenPair {
	return &authv1.TokenPair{
		AccessToken:      p.AccessToken,
		AccessExpiresAt:  timestamppb.New(p.AccessExpires),
		RefreshToken:     p.RefreshToken,
		SessionExpiresAt: timestamppb.New(p.SessionExpires),
		UserId:           p.UserID,
		SessionId:        p.SessionID,
	}
}

// Login implements AuthService.
func (s *Server) Login(ctx context.Context, r *authv1.LoginRequest) (*authv1.LoginResponse, error) {
	p, err := s.a.Login(ctx, r.GetEmail(), r.GetPassword(), s.clientAddress(ctx, r.GetClientAddress()))
	if err != nil {
		return nil, s.toStatus(ctx, "Login", err)
	}
	return &authv1.LoginResponse{Tokens: pairProto(p)}, nil
}

// IssueSession implements AuthService.
func (s *Server) IssueSession(ctx context.Context, r *authv1.IssueSessionRequest) (*authv1.IssueSessionResponse, error) {
	p, err := s.a.IssueSession(ctx, r.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, "IssueSession", err)
	}
	return &authv1.IssueSessionResponse{Tokens: pairProto(p)}, nil
}

// Validate implements AuthService.
func (s *Server) Validate(ctx context.Context, r *authv1.ValidateRequest) (*authv1.ValidateResponse, error) {
	id, err := s.a.Validate(ctx, r.GetAccessToken())
	if err != nil {
		return nil, s.toStatus(ctx, "Validate", err)
	}
	return &authv1.ValidateResponse{
		UserId: id.UserID, SessionId: id.SessionID, ExpiresAt: timestamppb.New(id.Expires),
	}, nil
}

// Refresh implements AuthService.
func (s *Server) Refresh(ctx context.Context, r *authv1.RefreshRequest) (*authv1.RefreshResponse, error) {
	p, err := s.a.Refresh(ctx, r.GetRefreshToken())
	if err != nil {
		return nil, s.toStatus(ctx, "Refresh", err)
	}
	return &authv1.RefreshResponse{Tokens: pairProto(p)}, nil
}

// Logout implements AuthService.
func (s *Server) Logout(ctx context.Context, r *authv1.LogoutRequest) (*authv1.LogoutResponse, error) {
	if err := s.a.Logout(ctx, r.GetRefreshToken(), r.GetAccessToken(), r.GetAllSessions()); err != nil {
		return nil, s.toStatus(ctx, "Logout", err)
	}
	return &authv1.LogoutResponse{}, nil
}

// RevokeSessions implements AuthService.
func (s *Server) RevokeSessions(ctx context.Context, r *authv1.RevokeSessionsRequest) (*authv1.RevokeSessionsResponse, error) {
	n, err := s.a.RevokeSessions(ctx, r.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, "RevokeSessions", err)
	}
	return &authv1.RevokeSessionsResponse{Revoked: uint32(n)}, nil
}

// CreateUser implements AuthService.
func (s *Server) CreateUser(ctx context.Context, r *authv1.CreateUserRequest) (*authv1.CreateUserResponse, error) {
	id, err := s.a.CreateUser(ctx, r.GetEmail(), r.GetPassword(), r.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateUser", err)
	}
	return &authv1.CreateUserResponse{UserId: id}, nil
}

// Authorize implements AuthService.
func (s *Server) Authorize(ctx context.Context, r *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	ok, err := s.a.Authorize(ctx, r.GetUserId(), r.GetConversationId())
	if err != nil {
		return nil, s.toStatus(ctx, "Authorize", err)
	}
	return &authv1.AuthorizeResponse{Allowed: ok}, nil
}

// GrantAccess implements AuthService.
func (s *Server) GrantAccess(ctx context.Context, r *authv1.GrantAccessRequest) (*authv1.GrantAccessResponse, error) {
	if err := s.a.GrantAccess(ctx, r.GetUserId(), r.GetConversationId()); err != nil {
		return nil, s.toStatus(ctx, "GrantAccess", err)
	}
	return &authv1.GrantAccessResponse{}, nil
}

// RevokeAccess implements AuthService.
func (s *Server) RevokeAccess(ctx context.Context, r *authv1.RevokeAccessRequest) (*authv1.RevokeAccessResponse, error) {
	if err := s.a.RevokeAccess(ctx, r.GetUserId(), r.GetConversationId()); err != nil {
		return nil, s.toStatus(ctx, "RevokeAccess", err)
	}
	return &authv1.RevokeAccessResponse{}, nil
}

// ListMembers implements AuthService.
func (s *Server) ListMembers(ctx context.Context, r *authv1.ListMembersRequest) (*authv1.ListMembersResponse, error) {
	m, err := s.a.Members(ctx, r.GetConversationId())
	if err != nil {
		return nil, s.toStatus(ctx, "ListMembers", err)
	}
	return &authv1.ListMembersResponse{UserIds: m}, nil
}

// ListConversations implements AuthService.
func (s *Server) ListConversations(ctx context.Context, r *authv1.ListConversationsRequest) (*authv1.ListConversationsResponse, error) {
	c, err := s.a.Conversations(ctx, r.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, "ListConversations", err)
	}
	return &authv1.ListConversationsResponse{ConversationIds: c}, nil
}

// WatchRevocations implements AuthService. At most Options.MaxWatchers
// streams are open at once; one more is refused with RESOURCE_EXHAUSTED.
// The follower is registered
// before the response headers are sent, so a client that has received them
// misses nothing revoked afterwards. The stream ends with UNAVAILABLE when
// events may have been missed; the client then drops its cache and calls
// again.
func (s *Server) WatchRevocations(_ *authv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[authv1.WatchRevocationsResponse]) error {
	if s.watchers.Add(1) > int64(s.opts.MaxWatchers) {
		s.watchers.Add(-1)
		return status.Errorf(codes.ResourceExhausted, "%d revocation watchers are open, the limit", s.opts.MaxWatchers)
	}
	defer s.watchers.Add(-1)
	w := s.a.Watch()
	defer w.Close()
	if err := stream.SendHeader(metadata.Pairs("watching", "revocations")); err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case e, ok := <-w.C():
			if !ok {
				return status.Error(codes.Unavailable, "revocations may have been missed; drop cached results and watch again")
			}
			if err := stream.Send(eventProto(e)); err != nil {
				return err
			}
		}
	}
}

func eventProto(e store.Event) *authv1.WatchRevocationsResponse {
	r := &authv1.WatchRevocationsResponse{Time: timestamppb.Now()}
	if e.Kind == store.SessionRevoked {
		r.Revocation = &authv1.WatchRevocationsResponse_Session{
			Session: &authv1.SessionRevoked{SessionId: e.SessionID, UserId: e.UserID},
		}
	} else {
		r.Revocation = &authv1.WatchRevocationsResponse_Access{
			Access: &authv1.AccessRevoked{UserId: e.UserID, ConversationId: e.ConversationID},
		}
	}
	return r
}
