package gatewayclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"switchboard/libs/gatewayclient"
)

// staticToken is a TokenSource for the example; an application passes its
// auth client, which refreshes the token before it expires.
type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

// A client that joins a conversation, prints what arrives and reports its
// connection's state, its quality as it changes, and the rooms whose
// missed messages it could not recover after a reconnect.
func Example() {
	ctx := context.Background()
	c := gatewayclient.New(gatewayclient.Options{
		URL:    "ws://127.0.0.1:7100/ws",
		Tokens: staticToken("access-token"),
		OnMessage: func(m gatewayclient.Message) {
			fmt.Printf("%s #%d: %s\n", m.Room, m.Position.Offset, m.Data)
		},
		OnEvent: func(e gatewayclient.Event) {
			switch {
			case e.Left != "":
				fmt.Printf("removed from %s: %s\n", e.Left, e.Reason)
			case e.QualityChanged:
				// The first comes with the first ping's answer, just after
				// connected; poor also when a ping goes unanswered.
				fmt.Printf("quality %s (round trip %s)\n", e.Quality, e.RTT)
			case e.State == gatewayclient.StateConnected:
				fmt.Println("connected")
				for room, ok := range e.Recovery {
					if !ok {
						fmt.Printf("%s may have missed messages: reload it\n", room)
					}
				}
			case e.State == gatewayclient.StateDisconnected:
				fmt.Printf("disconnected (close code %d); retry in %s\n", e.CloseCode, e.Retry)
			}
		},
	})
	// Rooms joined before Run are joined on connect, and after every
	// reconnect.
	c.Join(ctx, "conversation:42")

	err := c.Run(ctx) // returns on ctx's end or a "do not reconnect" close
	var ce *gatewayclient.CloseError
	if errors.As(err, &ce) {
		log.Printf("the gateway closed with %d: get a new token or log in again", ce.Code)
	}
}
