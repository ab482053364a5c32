package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"switchboard/libs/proctest"
)

// chromiumPath is Debian's chromium unless $CHROMIUM names another.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (apt-get install chromium, or set CHROMIUM): %v", path, err)
	}
	return path
}

// artifactDir is where screenshots go and stay after the test:
// $SWITCHBOARD_ARTIFACTS, else artifacts/browsertest at the repository's
// root, which git ignores.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		root, err := proctest.RepoRoot()
		if err != nil {
			t.Fatalf("screenshot folder: %v", err)
		}
		dir = filepath.Join(root, "artifacts", "browsertest")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot folder %s: %v", dir, err)
	}
	return dir
}

// browser is one headless Chromium process.
type browser struct {
	t   *testing.T
	ctx context.Context // the first tab's; new contexts derive from it
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return &browser{t: t, ctx: ctx}
}

// page is one agent's tab, in a browser context of its own.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu   sync.Mutex
	logs []string
}

func (b *browser) newPage(t *testing.T, name string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	p := &page{t: t, name: name, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open a tab for %s: %v", name, err)
	}
	done := make(chan struct{})
	go p.keepConsole(done)
	t.Cleanup(func() {
		if t.Failed() {
			p.screenshot("failed")
			t.Logf("%s console:\n%s", name, p.console())
		}
		cancel()
		<-done
	})
	return p
}

// keepConsole records the page's console messages and uncaught exceptions
// until the tab closes.
func (p *page) keepConsole(done chan<- struct{}) {
	defer close(done)
	for m, err := range chromedp.Console(p.ctx) {
		if err != nil {
			return
		}
		p.mu.Lock()
		p.logs = append(p.logs, m.String())
		p.mu.Unlock()
	}
}

func (p *page) console() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// do runs actions with a bound, failing the test on error.
func (p *page) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
}

// waitFor polls a JavaScript expression until it is true.
func (p *page) waitFor(what, expr string, timeout time.Duration) {
	p.t.Helper()
	p.do("wait for "+what, timeout+time.Second, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout),
			chromedp.WithPollingInterval(100*time.Millisecond))(ctx, t)
		return chromedp.Void{}, err
	})
}

// eval evaluates a JavaScript expression.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// login opens the page at url and logs in.
func (p *page) login(url, email, password string) {
	p.t.Helper()
	p.do("log in", 30*time.Second,
		chromedp.Navigate(url),
		chromedp.WaitReady(chromedp.CSS(`body[data-ready="true"]`)),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
	)
	p.waitConnected(20 * time.Second)
}

func (p *page) waitConnected(timeout time.Duration) {
	p.t.Helper()
	p.waitFor("connected", `document.getElementById('state').dataset.state === 'connected'`, timeout)
}

// open opens a conversation by its id.
func (p *page) open(id string) {
	p.t.Helper()
	p.do("open "+id, 10*time.Second,
		chromedp.SetValue(chromedp.ID("open-id"), id),
		chromedp.Click(chromedp.CSS(`#open button[type="submit"]`)),
	)
}

// openFromList opens a conversation from the list the gateway gave.
func (p *page) openFromList(id string) {
	p.t.Helper()
	sel := fmt.Sprintf(`#conversations button[data-conversation=%q]`, id)
	p.waitFor("conversation "+id+" listed", fmt.Sprintf(`document.querySelector(%q) !== null`, sel), 10*time.Second)
	p.do("open "+id+" from the list", 10*time.Second, chromedp.Click(chromedp.CSS(sel)))
	p.waitOpen(id)
}

// waitOpen waits until the conversation is shown.
func (p *page) waitOpen(id string) {
	p.t.Helper()
	p.waitFor("conversation "+id+" shown",
		fmt.Sprintf(`!document.getElementById('conversation').hidden && document.getElementById('title').textContent === %q`, id),
		10*time.Second)
}

// send writes and sends a message in the open conversation.
func (p *page) send(text string) {
	p.t.Helper()
	p.do("send "+text, 10*time.Second,
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.Click(chromedp.CSS(`#compose button[type="submit"]`)),
	)
}

// waitMessage waits until a message with text is listed.
func (p *page) waitMessage(text string, timeout time.Duration) {
	p.t.Helper()
	p.waitFor("message "+text, fmt.Sprintf(
		`[...document.querySelectorAll('#messages .text')].some((e) => e.textContent === %q)`, text), timeout)
}

// text returns the text of the element with id.
func (p *page) text(id string) string {
	p.t.Helper()
	return eval[string](p, fmt.Sprintf(`document.getElementById(%q).textContent`, id))
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// screenshot saves the page as <test>-<page>-<label>.png in the
// artifact folder.
func (p *page) screenshot(label string) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot of %s: %v", p.name, err)
		return
	}
	name := unsafeName.ReplaceAllString(p.t.Name()+"-"+p.name+"-"+label, "_") + ".png"
	path := filepath.Join(artifactDir(p.t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Logf("screenshot of %s: %v", p.name, err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}
