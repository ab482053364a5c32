// Package grpctest serves gRPC services on loopback for tests, and dials
// them: the server and the connection end with the test, the connection
// first.
package grpctest

import (
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Serve starts a gRPC server on a free loopback port with the services
// register adds, and returns its address. The test's cleanup stops it and
// waits until it has stopped serving.
func Serve(tb testing.TB, register func(*grpc.Server)) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	var wg sync.WaitGroup
	wg.Go(func() { s.Serve(lis) })
	tb.Cleanup(func() { s.Stop(); wg.Wait() })
	return lis.Addr().String()
}

// Dial returns a plaintext client connection to addr with opts added,
// closed when the test ends.
func Dial(tb testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}
