package app_test

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"

	"switchboard/libs/authclient"
	authv1 "switchboard/proto/switchboard/auth/v1"
	"switchboard/services/auth/app"
)

// The Go client against the real service: its token validates, and its
// logout ends the session everywhere.
func TestAuthClientAgainstService(t *testing.T) {
	seen := &secrets{}
	r := start(t, env(nil), seen)
	s, err := authclient.Login(ctxT(t), r.client, app.DemoEmail, app.DemoPassword, authclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, err := s.Token(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	seen.add(&authv1.TokenPair{AccessToken: tok})
	v, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: tok})
	if err != nil || v.GetUserId() != app.DemoUserID {
		t.Fatalf("Validate = %v, %v", v, err)
	}
	if err := s.Logout(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Validate(ctxT(t), &authv1.ValidateRequest{AccessToken: tok}); code(err) != codes.Unauthenticated {
		t.Fatalf("Validate after the client's logout = %v", err)
	}
	if _, err := s.Token(ctxT(t)); !errors.Is(err, authclient.ErrClosed) {
		t.Fatalf("Token after logout = %v", err)
	}
}
