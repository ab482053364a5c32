package authclient_test

import (
	"context"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"switchboard/libs/authclient"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// A program logs in once and asks the session for a token whenever it
// needs one; the session refreshes it in the background.
func Example() {
	conn, err := grpc.NewClient("127.0.0.1:7200", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	s, err := authclient.Login(ctx, authv1.NewAuthServiceClient(conn), "agent@example.com", "switchboard-demo",
		authclient.Options{OnChange: func(c authclient.Change) {
			if c.Err != nil {
				log.Printf("session over: %v", c.Err)
			}
		}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Logout(ctx)
	tok, err := s.Token(ctx) // for an "Authorization: Bearer" header
	if err != nil {
		log.Fatal(err)
	}
	_ = tok
}
