package browsertest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/libs/grpctest"
	"switchboard/libs/proctest"
	"switchboard/libs/redistest"
	"switchboard/libs/server"
	authv1 "switchboard/proto/switchboard/auth/v1"
)

// Credentials of the test stacks; never used outside them.
const (
	authCredential    = "browsertest-auth-credential"
	publishCredential = "browsertest-publish-credential"
	demoEmail         = "agent@example.com" // seeded by auth's embedded default
	demoPassword      = "switchboard-demo"
	demoConversation  = "demo"
	testPassword      = "browsertest-password"
)

// readyWait bounds how long a process may take to answer /readyz.
const readyWait = 30 * time.Second

// authService is one auth process in its embedded default (in-memory
// store, demo user and conversation seeded).
type authService struct {
	*proctest.Proc
	grpcAddr, httpAddr string
	client             authv1.AuthServiceClient
}

// authOptions tune startAuth.
type authOptions struct {
	accessTTL time.Duration // AUTH_ACCESS_TTL; zero: the default
	origins   []string      // AUTH_CORS_ORIGINS
}

func startAuth(t *testing.T, opts authOptions) *authService {
	t.Helper()
	a := &authService{grpcAddr: proctest.FreeAddr(t), httpAddr: proctest.FreeAddr(t)}
	env := []string{
		"AUTH_GRPC_ADDR=" + a.grpcAddr, "AUTH_HTTP_ADDR=" + a.httpAddr, "AUTH_METRICS_ADDR=127.0.0.1:0",
		"AUTH_SERVICE_CREDENTIAL=" + authCredential,
		"AUTH_CORS_ORIGINS=" + strings.Join(opts.origins, ","),
		"AUTH_ARGON2_TIME=1", "AUTH_ARGON2_MEMORY=64KiB", "AUTH_ARGON2_THREADS=1",
		"AUTH_LOGIN_PER_ACCOUNT=1000", "AUTH_LOGIN_PER_ADDRESS=1000",
		"AUTH_LOG_LEVEL=warn",
	}
	if opts.accessTTL > 0 {
		env = append(env, "AUTH_ACCESS_TTL="+opts.accessTTL.String())
	}
	a.Proc = proctest.Start(t, proctest.Build(t, "auth"), env...)
	a.WaitHTTP(t, a.URL()+"/readyz", readyWait)

	a.client = authv1.NewAuthServiceClient(grpctest.Dial(t, a.grpcAddr, server.WithCredential(authCredential, false)))
	return a
}

// URL is the auth service's HTTP base.
func (a *authService) URL() string { return "http://" + a.httpAddr }

// addUser creates a user who may see the conversations listed, and returns
// their email.
func (a *authService) addUser(t *testing.T, id string, conversations ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	email := id + "@example.com"
	if _, err := a.client.CreateUser(ctx, &authv1.CreateUserRequest{Email: email, Password: testPassword, UserId: id}); err != nil {
		t.Fatalf("create user %s: %v", id, err)
	}
	for _, c := range conversations {
		if _, err := a.client.GrantAccess(ctx, &authv1.GrantAccessRequest{UserId: id, ConversationId: c}); err != nil {
			t.Fatalf("grant %s access to %s: %v", id, c, err)
		}
	}
	return email
}

// gatewayReplica is one gateway process on a fixed address, so that it can
// be restarted where clients expect it.
type gatewayReplica struct {
	*proctest.Proc
	addr    string
	metrics string // host:port of the metrics listener
}

// gatewayOptions tune startGateway.
type gatewayOptions struct {
	addr        string            // host:port; empty: a free port
	redis       *redistest.Server // nil: the in-process broker
	expiryGrace time.Duration     // GATEWAY_EXPIRY_GRACE; zero: the default
	origins     []string          // GATEWAY_ALLOWED_ORIGINS host patterns
	extraEnv    []string
}

func startGateway(t *testing.T, a *authService, opts gatewayOptions) *gatewayReplica {
	t.Helper()
	g := &gatewayReplica{addr: opts.addr, metrics: proctest.FreeAddr(t)}
	if g.addr == "" {
		g.addr = proctest.FreeAddr(t)
	}
	env := []string{
		"GATEWAY_HTTP_ADDR=" + g.addr, "GATEWAY_GRPC_ADDR=127.0.0.1:0", "GATEWAY_METRICS_ADDR=" + g.metrics,
		"AUTH_ADDR=" + a.grpcAddr, "GATEWAY_AUTH_CREDENTIAL=" + authCredential,
		"GATEWAY_SERVICE_CREDENTIAL=" + publishCredential,
		"GATEWAY_ALLOWED_ORIGINS=" + strings.Join(opts.origins, ","),
		"GATEWAY_WEB_AUTH_URL=" + a.URL(),
		"GATEWAY_DRAIN=0s", "GATEWAY_LOG_LEVEL=warn",
	}
	if opts.redis != nil {
		env = append(env, "REDIS_URL="+opts.redis.URL())
	}
	if opts.expiryGrace > 0 {
		env = append(env, "GATEWAY_EXPIRY_GRACE="+opts.expiryGrace.String())
	}
	env = append(env, opts.extraEnv...)
	g.Proc = proctest.Start(t, proctest.Build(t, "gateway"), env...)
	g.WaitHTTP(t, g.URL()+"/readyz", readyWait)
	return g
}

// URL is the replica's HTTP base.
func (g *gatewayReplica) URL() string { return "http://" + g.addr }

// publish sends a message to room through the replica's publish API, as a
// backend would.
func (g *gatewayReplica) publish(t *testing.T, room, author, text string) {
	t.Helper()
	body := fmt.Sprintf(`{"room":%q,"data":{"author":%q,"text":%q}}`, room, author, text)
	req, err := http.NewRequest(http.MethodPost, g.URL()+"/v1/publish", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+publishCredential)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("publish: HTTP %d", res.StatusCode)
	}
}

// hostPattern is the GATEWAY_ALLOWED_ORIGINS pattern of an http base URL.
func hostPattern(base string) string {
	return strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
}
