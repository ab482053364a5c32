// Package fakeauth is an auth service for the gateway's tests and load
// generator: it implements authv1.AuthServiceServer over real gRPC on a
// loopback port, with tokens, grants and revocations kept in memory and set
// by the test.
//
// Concurrency: every method is safe for concurrent use.
package fakeauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// Credential is the service credential the fake demands for trusted calls.
const Credential = "fake-service-credential"

type grant struct{ user, conversation string }

type tokenInfo struct {
	user, session string
	expires       time.Time
}

// Auth is the fake service.
type Auth struct {
	authv1.UnimplementedAuthServiceServer

	// Addr is the loopback address it serves on.
	Addr string
	// Validations counts Validate calls.
	Validations atomic.Int64
	// Rechecks counts the Recheck calls answered.
	Rechecks atomic.Int64

	srv  *grpc.Server
	cred server.Credential

	mu       sync.Mutex
	tokens   map[string]tokenInfo
	grants   map[grant]bool
	revoked  map[string]bool // sessions
	watchers map[chan *authv1.WatchRevocationsResponse]struct{}
	down     bool
	// watchDown ends every revocation stream and refuses new ones.
	watchDown bool
}

// Start serves a fake on a free loopback port until Stop.
func Start() (*Auth, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &Auth{
		Addr: lis.Addr().String(), cred: server.NewCredential(Credential),
		tokens: make(map[string]tokenInfo), grants: make(map[grant]bool),
		revoked:  make(map[string]bool),
		watchers: make(map[chan *authv1.WatchRevocationsResponse]struct{}),
	}
	a.srv = grpc.NewServer()
	authv1.RegisterAuthServiceServer(a.srv, a)
	go a.srv.Serve(lis)
	return a, nil
}

// Stop ends the server and every stream.
func (a *Auth) Stop() { a.srv.Stop() }

// Dial returns a client carrying the credential.
func (a *Auth) Dial() (*grpc.ClientConn, error) {
	return grpc.NewClient(a.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		server.WithCredential(Credential, false))
}

// Issue returns a new token for user's session, valid for ttl.
func (a *Auth) Issue(user, session string, ttl time.Duration) string {
	var b [12]byte
	rand.Read(b[:])
	tok := "tok." + hex.EncodeToString(b[:])
	a.mu.Lock()
	a.tokens[tok] = tokenInfo{user, session, time.Now().Add(ttl)}
	a.mu.Unlock()
	return tok
}

// Grant lets user see conversation.
func (a *Auth) Grant(user, conversation string) {
	a.mu.Lock()
	a.grants[grant{user, conversation}] = true
	a.mu.Unlock()
}

// SetDown makes Validate, Authorize, ListConversations and Recheck fail
// with UNAVAILABLE.
func (a *Auth) SetDown(down bool) {
	a.mu.Lock()
	a.down = down
	a.mu.Unlock()
}

// SetWatchDown with true ends every revocation stream with UNAVAILABLE and
// refuses new ones until it is called with false; revocations meanwhile
// reach no watcher.
func (a *Auth) SetWatchDown(down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watchDown = down
	if !down {
		return
	}
	for ch := range a.watchers {
		delete(a.watchers, ch)
		close(ch)
	}
}

// Watchers returns the number of open revocation streams.
func (a *Auth) Watchers() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.watchers)
}

// DropSession ends a session and tells every watcher.
func (a *Auth) DropSession(user, session string) {
	a.mu.Lock()
	a.revoked[session] = true
	a.mu.Unlock()
	a.announce(&authv1.WatchRevocationsResponse{Revocation: &authv1.WatchRevocationsResponse_Session{
		Session: &authv1.SessionRevoked{UserId: user, SessionId: session}}})
}

// DropAccess takes conversation away from user and tells every watcher.
func (a *Auth) DropAccess(user, conversation string) {
	a.mu.Lock()
	delete(a.grants, grant{user, conversation})
	a.mu.Unlock()
	a.announce(&authv1.WatchRevocationsResponse{Revocation: &authv1.WatchRevocationsResponse_Access{
		Access: &authv1.AccessRevoked{UserId: user, ConversationId: conversation}}})
}

func (a *Auth) announce(r *authv1.WatchRevocationsResponse) {
	r.Time = timestamppb.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for ch := range a.watchers {
		ch <- r
	}
}

// Validate implements AuthServiceServer.
func (a *Auth) Validate(_ context.Context, req *authv1.ValidateRequest) (*authv1.ValidateResponse, error) {
	a.Validations.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return nil, status.Error(codes.Unavailable, "down")
	}
	t, ok := a.tokens[req.GetAccessToken()]
	if !ok || a.revoked[t.session] || !time.Now().Before(t.expires) {
		return nil, status.Error(codes.Unauthenticated, "bad token")
	}
	return &authv1.ValidateResponse{UserId: t.user, SessionId: t.session, ExpiresAt: timestamppb.New(t.expires)}, nil
}

// Authorize implements AuthServiceServer.
func (a *Auth) Authorize(_ context.Context, req *authv1.AuthorizeRequest) (*authv1.AuthorizeResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return nil, status.Error(codes.Unavailable, "down")
	}
	return &authv1.AuthorizeResponse{Allowed: a.grants[grant{req.GetUserId(), req.GetConversationId()}]}, nil
}

// ListConversations implements AuthServiceServer.
func (a *Auth) ListConversations(_ context.Context, req *authv1.ListConversationsRequest) (*authv1.ListConversationsResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return nil, status.Error(codes.Unavailable, "down")
	}
	var ids []string
	for g := range a.grants {
		if g.user == req.GetUserId() {
			ids = append(ids, g.conversation)
		}
	}
	slices.Sort(ids)
	return &authv1.ListConversationsResponse{ConversationIds: ids}, nil
}

// WatchRevocations implements AuthServiceServer; it is a trusted call. The
// response headers are sent once the watcher is registered.
func (a *Auth) WatchRevocations(_ *authv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[authv1.WatchRevocationsResponse]) error {
	if !a.cred.HasCredential(stream.Context()) {
		return status.Error(codes.Unauthenticated, "needs the credential")
	}
	ch := make(chan *authv1.WatchRevocationsResponse, 1024)
	a.mu.Lock()
	if a.watchDown {
		a.mu.Unlock()
		return status.Error(codes.Unavailable, "watch down")
	}
	a.watchers[ch] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.watchers, ch)
		a.mu.Unlock()
	}()
	// As auth does: the headers say the watcher is registered.
	if err := stream.SendHeader(metadata.Pairs("watching", "revocations")); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case r, ok := <-ch:
			if !ok {
				return status.Error(codes.Unavailable, "revocations may have been missed")
			}
			if err := stream.Send(r); err != nil {
				return err
			}
		}
	}
}

// Recheck implements AuthServiceServer; it is a trusted call. A session is
// ended once dropped; an access is revoked unless granted.
func (a *Auth) Recheck(ctx context.Context, req *authv1.RecheckRequest) (*authv1.RecheckResponse, error) {
	if !a.cred.HasCredential(ctx) {
		return nil, status.Error(codes.Unauthenticated, "needs the credential")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		return nil, status.Error(codes.Unavailable, "down")
	}
	a.Rechecks.Add(1)
	resp := &authv1.RecheckResponse{}
	for _, s := range req.GetSessionIds() {
		if a.revoked[s] {
			resp.EndedSessionIds = append(resp.EndedSessionIds, s)
		}
	}
	for _, ac := range req.GetAccesses() {
		if !a.grants[grant{ac.GetUserId(), ac.GetConversationId()}] {
			resp.RevokedAccesses = append(resp.RevokedAccesses, ac)
		}
	}
	return resp, nil
}
