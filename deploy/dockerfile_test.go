package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, COPY, ...
	Args string
	Line int
}

// stage is the instructions from one FROM to the next.
type stage struct {
	From  string // image and "AS name", as written
	Instr []instruction
}

// parseDockerfile splits a Dockerfile into stages. It knows comments,
// blank lines and backslash continuations, which is all ours use.
func parseDockerfile(b []byte) []stage {
	var stages []stage
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		cur.Reset()
		if in.Cmd == "FROM" {
			stages = append(stages, stage{From: in.Args})
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].Instr = append(stages[len(stages)-1].Instr, in)
		}
	}
	return stages
}

// execForm returns the arguments of an exec-form instruction
// (["a", "b"]), or false for the shell form.
func execForm(args string) ([]string, bool) {
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil || len(out) == 0 {
		return nil, false
	}
	return out, true
}

var (
	builderImage = regexp.MustCompile(`^golang:1\.26\S* AS build$`)
	runtimeImage = regexp.MustCompile(`^(gcr\.io/distroless/static\S*:nonroot|scratch)$`)
	rootUser     = regexp.MustCompile(`^(root|0)(:.*)?$`)
	goDirective  = regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`)
)

// TestDockerfiles checks each service's Dockerfile without building it:
// a golang:1.26 builder with module and build caches, a static trimmed
// binary, a distroless or scratch runtime as a non-root user, exec-form
// ENTRYPOINT and HEALTHCHECK, and COPY sources that exist.
func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			stages := parseDockerfile(readFile(t, filepath.Join("services", name, "Dockerfile")))
			if len(stages) < 2 {
				t.Fatalf("%d stage(s), want a builder and a runtime", len(stages))
			}
			if !builderImage.MatchString(stages[0].From) {
				t.Errorf("first stage FROM %q, want golang:1.26 AS build", stages[0].From)
			}
			checkBuildStage(t, stages[0], name)
			checkRuntimeStage(t, stages[len(stages)-1], name)
			for _, s := range stages {
				checkCopySources(t, root, s)
			}
		})
	}
}

func checkBuildStage(t *testing.T, s stage, name string) {
	t.Helper()
	cgoOff := false
	built := false
	for _, in := range s.Instr {
		if in.Cmd == "ENV" && strings.Contains(in.Args, "CGO_ENABLED=0") {
			cgoOff = true
		}
		if in.Cmd != "RUN" || !strings.Contains(in.Args, "go build") {
			continue
		}
		built = true
		cgoOff = cgoOff || strings.Contains(in.Args, "CGO_ENABLED=0")
		for _, want := range []string{
			"-trimpath",
			"--mount=type=cache,target=/go/pkg/mod",
			"--mount=type=cache,target=/root/.cache/go-build",
			"-o /out/switchboard-" + name,
		} {
			if !strings.Contains(in.Args, want) {
				t.Errorf("line %d: go build without %s", in.Line, want)
			}
		}
	}
	if !built {
		t.Error("the build stage runs no go build")
	}
	if !cgoOff {
		t.Error("CGO_ENABLED=0 is not set: the binary would need libc")
	}
}

func checkRuntimeStage(t *testing.T, s stage, name string) {
	t.Helper()
	bin := "/switchboard-" + name
	if !runtimeImage.MatchString(s.From) {
		t.Errorf("runtime FROM %q, want distroless static :nonroot or scratch", s.From)
	}
	user, copied := "", false
	for _, in := range s.Instr {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "COPY":
			copied = copied || strings.HasPrefix(in.Args, "--from=build ") && strings.HasSuffix(in.Args, " "+bin)
		case "ENTRYPOINT":
			if args, ok := execForm(in.Args); !ok || !slices.Equal(args, []string{bin}) {
				t.Errorf("ENTRYPOINT %s, want [%q]", in.Args, bin)
			}
		case "HEALTHCHECK":
			_, cmd, _ := strings.Cut(in.Args, "CMD ")
			if args, ok := execForm(cmd); !ok || !slices.Equal(args, []string{bin, "healthcheck"}) {
				t.Errorf("HEALTHCHECK %s, want exec form [%q, \"healthcheck\"]", in.Args, bin)
			}
		}
	}
	if user == "" || rootUser.MatchString(user) {
		t.Errorf("runtime USER %q: want a non-root user", user)
	}
	if !copied {
		t.Errorf("the runtime stage does not copy the binary from the build stage to %s", bin)
	}
}

// checkCopySources checks that what COPY takes from the build context
// exists and is not excluded by .dockerignore.
func checkCopySources(t *testing.T, root string, s stage) {
	t.Helper()
	ignore := dockerignore(t)
	for _, in := range s.Instr {
		if in.Cmd != "COPY" || strings.HasPrefix(in.Args, "--from=") {
			continue
		}
		fields := strings.Fields(in.Args)
		for _, src := range fields[:len(fields)-1] {
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("line %d: COPY %s: %v", in.Line, src, err)
			}
			if excluded, err := ignore.MatchesOrParentMatches(src); err != nil || excluded {
				t.Errorf("line %d: COPY %s, which .dockerignore excludes (%v)", in.Line, src, err)
			}
		}
	}
}

// dockerignore returns the matcher of the repository's .dockerignore, as
// the Docker builder reads it.
func dockerignore(t *testing.T) *patternmatcher.PatternMatcher {
	t.Helper()
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

// TestDockerignore walks the repository and checks the build context the
// Dockerfiles get: every file a build needs (Go source, go.mod, go.sum and
// any other file of libs, proto and services, such as embedded assets) is
// in; tests and everything else (.git, bin, deploy, docs, ...) are out.
func TestDockerignore(t *testing.T) {
	root := repoRoot(t)
	ignore := dockerignore(t)
	var in, out int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		excluded, err := ignore.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		needed := slices.Contains([]string{"libs", "proto", "services"}, top) && !buildNeedsNot(rel)
		switch {
		case needed && excluded:
			t.Errorf("%s is needed by the image builds but .dockerignore excludes it", rel)
		case !needed && !excluded:
			t.Errorf("%s is sent to the Docker builder but no image needs it", rel)
		case excluded:
			out++
		default:
			in++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if in == 0 || out == 0 {
		t.Errorf("%d files in the context and %d out: the walk found nothing", in, out)
	}
}

// buildNeedsNot reports whether a file under libs, proto or services is
// one that no image build reads: tests, their data, and build droppings.
func buildNeedsNot(rel string) bool {
	rel = filepath.ToSlash(rel)
	base := filepath.Base(rel)
	return strings.HasSuffix(base, "_test.go") || strings.Contains("/"+rel, "/testdata/") ||
		strings.HasPrefix(base, ".") || slices.ContainsFunc([]string{".test", ".out", ".prof"},
		func(s string) bool { return strings.HasSuffix(base, s) })
}

// TestModulesBuildAlone checks what the Dockerfiles rely on: each service
// module resolves all of its packages with GOWORK=off and a read-only
// go.mod (so its go.sum is complete), and asks for no Go newer than the
// golang:1.26 image has.
func TestModulesBuildAlone(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go is not on the PATH")
	}
	root := repoRoot(t)
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, "services", name)
			m := goDirective.FindSubmatch(readFile(t, filepath.Join("services", name, "go.mod")))
			if m == nil || !regexp.MustCompile(`^1\.26(\.\d+)?$`).Match(m[1]) {
				t.Errorf("go directive %q: the golang:1.26 image builds 1.26 at most", m)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, goBin, "list", "-deps", ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("GOWORK=off go list -deps . in services/%s: %v\n%s", name, err, lastLines(out, 20))
			}
		})
	}
}

// lastLines returns at most n last lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestParseDockerfile checks the parser on continuations and comments.
func TestParseDockerfile(t *testing.T) {
	src := "# c\nFROM golang:1.26 AS build\nRUN a \\\n    b\n\n# c\nFROM scratch\nUSER 1:1\nENTRYPOINT [\"/x\"]\n"
	stages := parseDockerfile([]byte(src))
	if len(stages) != 2 {
		t.Fatalf("%d stages, want 2", len(stages))
	}
	if got := stages[0].Instr; len(got) != 1 || got[0].Args != "a  b" || got[0].Line != 3 {
		t.Errorf("build stage = %+v, want RUN \"a  b\" at line 3", got)
	}
	if got := stages[1].Instr; len(got) != 2 || got[1].Cmd != "ENTRYPOINT" {
		t.Errorf("runtime stage = %+v", got)
	}
	if _, ok := execForm(`/x healthcheck`); ok {
		t.Error("shell form taken for exec form")
	}
}
