package deploy

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// services are the binaries of the repository, each a module under
// services/<name> built into /switchboard-<name>.
var services = []string{"auth", "cache", "gateway"}

// repoRoot returns the repository root, the parent of this module.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// envVar is one environment variable that a service reads.
type envVar struct {
	Name string
	// HasDefault is true when the code gives a non-empty default.
	HasDefault bool
	// Default is the default when it is a string literal, else "".
	Default string
	// At is file:line of the first read, relative to the repository.
	At string
}

// envMethods are the methods of config.Env that read a variable, with how
// each one's default is given: "none" (Secret), "typed" (a number, duration
// or boolean, never empty), "string" (the second argument) or "list".
var envMethods = map[string]string{
	"String": "string", "OneOf": "string", "Addr": "string", "Secret": "none", "List": "list",
	"Int": "typed", "Float": "typed", "Bool": "typed", "Duration": "typed", "Bytes": "typed",
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// goPackage is the non-test Go source of one directory.
type goPackage struct {
	dir    string
	fset   *token.FileSet
	files  []*ast.File
	consts map[string]string // string constants by name
}

// loadPackages parses every non-test Go file under dir, one goPackage per
// directory.
func loadPackages(t testing.TB, dir string) []*goPackage {
	t.Helper()
	byDir := map[string]*goPackage{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != dir {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		p := byDir[filepath.Dir(path)]
		if p == nil {
			p = &goPackage{dir: filepath.Dir(path), fset: token.NewFileSet(), consts: map[string]string{}}
			byDir[p.dir] = p
		}
		f, err := parser.ParseFile(p.fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parse: %w", err)
		}
		p.files = append(p.files, f)
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	var out []*goPackage
	for _, p := range byDir {
		p.collectConsts()
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dir < out[j].dir })
	return out
}

// collectConsts records every constant whose value is a string literal.
func (p *goPackage) collectConsts() {
	for _, f := range p.files {
		ast.Inspect(f, func(n ast.Node) bool {
			decl, ok := n.(*ast.GenDecl)
			if !ok || decl.Tok != token.CONST {
				return true
			}
			for _, spec := range decl.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := stringLit(vs.Values[i]); ok {
							p.consts[name.Name] = s
						}
					}
				}
			}
			return true
		})
	}
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// resolve returns the string value of e when it is a literal, a string
// constant, or a concatenation of those.
func (p *goPackage) resolve(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		return stringLit(e)
	case *ast.Ident:
		s, ok := p.consts[e.Name]
		return s, ok
	case *ast.ParenExpr:
		return p.resolve(e.X)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := p.resolve(e.X)
		b, ok2 := p.resolve(e.Y)
		return a + b, ok1 && ok2
	}
	return "", false
}

// imports reports whether f imports a package under the name id.
func imports(f *ast.File, id string) bool {
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := filepath.Base(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name == id {
			return true
		}
	}
	return false
}

// envRead is one call that reads a variable, before its name is resolved.
type envRead struct {
	call   *ast.CallExpr
	method string // an envMethods key, or "Getenv" for the os package
	fn     *ast.FuncDecl
	file   *ast.File
}

// onEnv reports whether r is certainly a call on a config.Env: its
// receiver is named env or is a parameter of type *config.Env.
func (r envRead) onEnv() bool {
	sel := r.call.Fun.(*ast.SelectorExpr)
	recv, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	if recv.Name == "env" {
		return true
	}
	if r.fn == nil {
		return false
	}
	for _, field := range r.fn.Type.Params.List {
		star, ok := field.Type.(*ast.StarExpr)
		if !ok {
			continue
		}
		typ, ok := star.X.(*ast.SelectorExpr)
		if !ok || typ.Sel.Name != "Env" {
			continue
		}
		for _, n := range field.Names {
			if n.Name == recv.Name {
				return true
			}
		}
	}
	return false
}

// envReads finds the calls in p that read an environment variable.
func (p *goPackage) envReads() []envRead {
	var out []envRead
	for _, f := range p.files {
		for _, decl := range f.Decls {
			fn, _ := decl.(*ast.FuncDecl)
			ast.Inspect(decl, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				recv, _ := sel.X.(*ast.Ident)
				isPkg := recv != nil && imports(f, recv.Name)
				switch {
				case isPkg && recv.Name == "os" && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv"):
					out = append(out, envRead{call, "Getenv", fn, f})
				case !isPkg && envMethods[sel.Sel.Name] != "":
					out = append(out, envRead{call, sel.Sel.Name, fn, f})
				}
				return true
			})
		}
	}
	return out
}

// names resolves the variable name of r: a literal, a constant, or a
// parameter of the enclosing function that every caller in the package
// passes as a literal or constant.
func (p *goPackage) names(r envRead) ([]string, bool) {
	if s, ok := p.resolve(r.call.Args[0]); ok {
		return []string{s}, true
	}
	id, ok := r.call.Args[0].(*ast.Ident)
	if !ok || r.fn == nil {
		return nil, false
	}
	idx := paramIndex(r.fn, id.Name)
	if idx < 0 {
		return nil, false
	}
	var names []string
	for _, f := range p.files {
		ok := true
		ast.Inspect(f, func(n ast.Node) bool {
			call, isCall := n.(*ast.CallExpr)
			if !isCall || !callsFunc(call, r.fn.Name.Name) || idx >= len(call.Args) {
				return true
			}
			s, resolved := p.resolve(call.Args[idx])
			ok = ok && resolved
			names = append(names, s)
			return true
		})
		if !ok {
			return nil, false
		}
	}
	return names, len(names) > 0
}

func paramIndex(fn *ast.FuncDecl, name string) int {
	i := 0
	for _, field := range fn.Type.Params.List {
		for _, n := range field.Names {
			if n.Name == name {
				return i
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	return -1
}

func callsFunc(call *ast.CallExpr, name string) bool {
	switch fun := call.Fun.(type) {
	case *ast.Ident:
		return fun.Name == name
	case *ast.SelectorExpr:
		return fun.Sel.Name == name
	}
	return false
}

// defaultOf tells whether r gives a non-empty default, and its value when
// it is a string literal or constant.
func (p *goPackage) defaultOf(r envRead) (has bool, value string) {
	kind := envMethods[r.method]
	if r.method == "Getenv" {
		// A raw read outside config.Env is a switch that is off when unset.
		return true, ""
	}
	if kind == "none" || len(r.call.Args) < 2 {
		return false, ""
	}
	arg := r.call.Args[1]
	switch kind {
	case "typed":
		return true, ""
	case "list":
		if id, ok := arg.(*ast.Ident); ok && id.Name == "nil" {
			return false, ""
		}
		if lit, ok := arg.(*ast.CompositeLit); ok && len(lit.Elts) == 0 {
			return false, ""
		}
		return true, ""
	}
	if s, ok := p.resolve(arg); ok {
		return s != "", s
	}
	return true, "" // an expression: assume it yields a value
}

// serviceEnv returns the variables read by the binary of services/<name>
// (its main package and every package of the repository it imports, but
// not other commands of the module such as a load generator), by name, and
// the reads whose name cannot be resolved statically (name variables with
// literals or constants so that deployments can be checked).
func serviceEnv(t testing.TB, name string) (map[string]envVar, []string) {
	t.Helper()
	root := repoRoot(t)
	vars := map[string]envVar{}
	var unresolved []string
	for _, dir := range binaryPackages(t, name) {
		if dir == filepath.Join(root, "libs", "config") {
			continue // the Env itself
		}
		for _, p := range loadPackages(t, dir) {
			if p.dir == dir {
				unresolved = append(unresolved, p.addReads(root, vars)...)
			}
		}
	}
	return vars, unresolved
}

// binaryDirs remembers binaryPackages by service: `go list` takes a
// moment and the answer does not change during a run.
var binaryDirs struct {
	sync.Mutex
	byService map[string][]string
}

// binaryPackages lists the directories of the repository's packages that
// the binary of services/<name> is built from.
func binaryPackages(t testing.TB, name string) []string {
	t.Helper()
	binaryDirs.Lock()
	defer binaryDirs.Unlock()
	if dirs, ok := binaryDirs.byService[name]; ok {
		return dirs
	}
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{.Dir}}", ".")
	cmd.Dir = filepath.Join(root, "services", name)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps in services/%s: %v", name, err)
	}
	var dirs []string
	for _, dir := range strings.Fields(string(out)) {
		if strings.HasPrefix(dir, root+string(filepath.Separator)) {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("services/%s is built from no package of the repository", name)
	}
	if binaryDirs.byService == nil {
		binaryDirs.byService = map[string][]string{}
	}
	binaryDirs.byService[name] = dirs
	return dirs
}

// scanEnv scans the non-test Go source under dir.
func scanEnv(t testing.TB, dir string) (map[string]envVar, []string) {
	t.Helper()
	vars := map[string]envVar{}
	var unresolved []string
	for _, p := range loadPackages(t, dir) {
		unresolved = append(unresolved, p.addReads(dir, vars)...)
	}
	return vars, unresolved
}

// addReads adds the variables p reads to vars, a read with a default
// taking precedence over one without, and returns the reads it cannot
// resolve as file:line, relative to base.
func (p *goPackage) addReads(base string, vars map[string]envVar) []string {
	var unresolved []string
	for _, r := range p.envReads() {
		pos := p.fset.Position(r.call.Pos())
		rel, _ := filepath.Rel(base, pos.Filename)
		at := fmt.Sprintf("%s:%d", rel, pos.Line)
		names, ok := p.names(r)
		if !ok {
			if r.onEnv() {
				unresolved = append(unresolved, at+" ("+r.method+")")
			}
			continue
		}
		has, def := p.defaultOf(r)
		for _, n := range names {
			if !envName.MatchString(n) {
				continue // not an environment variable: some other String(...)
			}
			if old, seen := vars[n]; seen && (old.HasDefault || !has) {
				continue
			}
			vars[n] = envVar{Name: n, HasDefault: has, Default: def, At: at}
		}
	}
	return unresolved
}

// sortedNames returns the keys of m in order.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// metricSource is what the Go source of services and libs can tell about
// the metric names they export.
type metricSource struct {
	// words are the string literals and constants of the source that look
	// like parts of a metric name.
	words map[string]bool
	// prefixes are families that libraries register on the services'
	// behalf (Go runtime, process, gRPC server).
	prefixes []string
}

var metricWord = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// libraryFamilies are metric names registered by libraries that the
// services import, by import path: the names live in the library's code,
// not ours.
var libraryFamilies = map[string][]string{
	"github.com/prometheus/client_golang/prometheus/collectors": {"go_", "process_"},
	"github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus": {
		"grpc_server_started_total", "grpc_server_handled_total",
		"grpc_server_msg_received_total", "grpc_server_msg_sent_total",
		"grpc_server_handling_seconds",
	},
}

// loadMetricSource scans services/ and libs/.
func loadMetricSource(t testing.TB) *metricSource {
	t.Helper()
	root := repoRoot(t)
	ms := &metricSource{words: map[string]bool{}}
	seen := map[string]bool{}
	for _, dir := range []string{filepath.Join(root, "services"), filepath.Join(root, "libs")} {
		for _, p := range loadPackages(t, dir) {
			for _, f := range p.files {
				ms.scanFile(f, seen)
			}
		}
	}
	return ms
}

func (ms *metricSource) scanFile(f *ast.File, seen map[string]bool) {
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if fams, ok := libraryFamilies[path]; ok && !seen[path] {
			seen[path] = true
			ms.prefixes = append(ms.prefixes, fams...)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok {
			if s, ok := stringLit(lit); ok && metricWord.MatchString(s) {
				ms.words[s] = true
			}
		}
		return true
	})
}

// histogramSuffixes are the series a histogram or summary adds to its name.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// has reports whether name can be exported by the scanned source: a
// library family, or the concatenation of at most three literals of the
// source joined directly or by "_" (client_golang joins Namespace,
// Subsystem and Name with "_"; code also writes prefix+"name").
func (ms *metricSource) has(name string) bool {
	for _, p := range ms.prefixes {
		if strings.HasSuffix(p, "_") && strings.HasPrefix(name, p) || name == p {
			return true
		}
		for _, s := range histogramSuffixes {
			if name == p+s {
				return true
			}
		}
	}
	if ms.joins(name, 3) {
		return true
	}
	for _, s := range histogramSuffixes {
		if base, ok := strings.CutSuffix(name, s); ok && ms.joins(base, 3) {
			return true
		}
	}
	return false
}

// joins reports whether name is made of at most parts words.
func (ms *metricSource) joins(name string, parts int) bool {
	if ms.words[name] {
		return true
	}
	if parts == 1 {
		return false
	}
	for i := 1; i < len(name); i++ {
		head, tail := name[:i], name[i:]
		if !ms.words[head] {
			continue
		}
		if ms.joins(tail, parts-1) {
			return true
		}
		if rest, ok := strings.CutPrefix(tail, "_"); ok && rest != "" && ms.joins(rest, parts-1) {
			return true
		}
	}
	return false
}

// sourceMentions reports whether a string literal of the non-test Go
// source in dir (not below it) contains substr, or substr without its
// underscores: an import of google.golang.org/grpc/balancer/roundrobin
// names round_robin by its constant.
func sourceMentions(t testing.TB, dir, substr string) bool {
	t.Helper()
	alt := strings.ReplaceAll(substr, "_", "")
	for _, p := range loadPackages(t, dir) {
		if p.dir != dir {
			continue
		}
		for _, f := range p.files {
			found := false
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					found = found || strings.Contains(lit.Value, substr) || strings.Contains(lit.Value, alt)
				}
				return !found
			})
			if found {
				return true
			}
		}
	}
	return false
}

// readFile returns the contents of path relative to the repository root.
func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
