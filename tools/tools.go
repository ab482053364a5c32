//go:build tools

// Package tools pins the code-generation tools. It lives outside go.work so
// that buf's newer dependencies never reach the services' build list.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
