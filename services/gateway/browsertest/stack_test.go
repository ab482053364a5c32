package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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

// proc is one service process.
type proc struct {
	t    *testing.T
	name string
	bin  string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

func startProc(t *testing.T, name, bin string, env []string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, env: env}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, p.env...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &syncWriter{mu: &p.mu, w: out}, &syncWriter{mu: &p.mu, w: out}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.out, p.done = cmd, out, done
	p.mu.Unlock()
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	cmd.Process.Kill()
	<-done
}

// stop asks the process to end, then kills it after a bound.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
	default:
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	if p.t.Failed() {
		p.t.Logf("%s output:\n%s", p.name, p.output())
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type syncWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls url until it answers 200, or fails the test.
func waitReady(t *testing.T, p *proc, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited early:\n%s", p.name, p.output())
		default:
		}
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s within 30s:\n%s", p.name, url, p.output())
}

// authService is one auth process in its embedded default (in-memory
// store, demo user and conversation seeded).
type authService struct {
	*proc
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
	a := &authService{grpcAddr: freeAddr(t), httpAddr: freeAddr(t)}
	env := []string{
		"AUTH_GRPC_ADDR=" + a.grpcAddr, "AUTH_HTTP_ADDR=" + a.httpAddr,
		"AUTH_SERVICE_CREDENTIAL=" + authCredential,
		"AUTH_CORS_ORIGINS=" + strings.Join(opts.origins, ","),
		"AUTH_ARGON2_TIME=1", "AUTH_ARGON2_MEMORY=64KiB", "AUTH_ARGON2_THREADS=1",
		"AUTH_LOGIN_PER_ACCOUNT=1000", "AUTH_LOGIN_PER_ADDRESS=1000",
		"AUTH_LOG_LEVEL=warn",
	}
	if opts.accessTTL > 0 {
		env = append(env, "AUTH_ACCESS_TTL="+opts.accessTTL.String())
	}
	a.proc = startProc(t, "auth", bins.auth, env)
	waitReady(t, a.proc, "http://"+a.httpAddr+"/readyz")

	conn, err := grpc.NewClient(a.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		server.WithCredential(authCredential, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	a.client = authv1.NewAuthServiceClient(conn)
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
	*proc
	addr string
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
	g := &gatewayReplica{addr: opts.addr}
	if g.addr == "" {
		g.addr = freeAddr(t)
	}
	env := []string{
		"GATEWAY_HTTP_ADDR=" + g.addr, "GATEWAY_GRPC_ADDR=127.0.0.1:0",
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
	g.proc = startProc(t, "gateway "+g.addr, bins.gateway, env)
	g.waitReady(t)
	return g
}

func (g *gatewayReplica) waitReady(t *testing.T) {
	t.Helper()
	waitReady(t, g.proc, g.URL()+"/readyz")
}

// URL is the replica's HTTP base.
func (g *gatewayReplica) URL() string { return "http://" + g.addr }

// restart kills the replica and starts it again on the same address.
func (g *gatewayReplica) restart(t *testing.T) {
	t.Helper()
	g.kill()
	g.start()
	g.waitReady(t)
}

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
