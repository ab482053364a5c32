package deploy

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// promtool returns the path of promtool, or fails the test saying where to
// get it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on the PATH: install Debian's prometheus package " +
			"(apt-get install prometheus), which ships it")
	}
	return path
}

// TestPromtool runs Prometheus's own checks on the scrape configuration, the
// alert rules and the rules' unit tests.
func TestPromtool(t *testing.T) {
	bin := promtool(t)
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	tests := []struct {
		name string
		args []string
	}{
		{"config", []string{"check", "config", "prometheus.yml"}},
		{"rules", []string{"check", "rules", "alerts.yml"}},
		{"rule unit tests", []string{"test", "rules", "alerts_test.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tt.args, " "), err, out)
			}
		})
	}
}

// metricsAddrVar is the variable of the listener that serves each
// service's /metrics: gateway and auth keep it apart from their public HTTP
// ports; the cache's HTTP listener is private already.
var metricsAddrVar = map[string]string{
	"gateway": "GATEWAY_METRICS_ADDR",
	"auth":    "AUTH_METRICS_ADDR",
	"cache":   "CACHE_HTTP_ADDR",
}

// TestScrapeTargets checks that every service Prometheus finds through
// DNS is a compose service scraped on the listener that serves /metrics
// (metricsAddrVar).
func TestScrapeTargets(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []struct {
			JobName      string `json:"job_name"`
			DNSSDConfigs []struct {
				Names []string `json:"names"`
				Type  string   `json:"type"`
				Port  int      `json:"port"`
			} `json:"dns_sd_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	p := loadCompose(t)
	found := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, sd := range sc.DNSSDConfigs {
			for _, name := range sd.Names {
				found[name] = true
				t.Run(sc.JobName+"/"+name, func(t *testing.T) {
					port := strconv.Itoa(sd.Port)
					checkExposed(t, p, name, port)
					s, err := p.GetService(name)
					if err != nil {
						return
					}
					v, ok := metricsAddrVar[name]
					if !ok {
						t.Fatalf("no metrics listener known for %s", name)
					}
					addr := s.Environment[v]
					if addr == nil || !strings.HasSuffix(*addr, ":"+port) {
						t.Errorf("scraped on port %s, but %s is %v", port, v, addr)
					}
				})
			}
		}
	}
	for _, name := range services {
		if !found[name] {
			t.Errorf("%s is not scraped through DNS: its replicas would not be found", name)
		}
	}
}

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// ruleTests is the part of a promtool unit test file the tests read.
type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestAlertRules checks what promtool does not: every alert has a severity,
// a summary and a runbook section in docs/operations.md, is shown firing
// by a unit test, and queries metrics the services export from jobs that
// prometheus.yml scrapes.
func TestAlertRules(t *testing.T) {
	var rules ruleFile
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/prometheus/alerts.yml"), &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var tests ruleTests
	if err := yaml.Unmarshal(readFile(t, "deploy/prometheus/alerts_test.yml"), &tests); err != nil {
		t.Fatalf("alerts_test.yml: %v", err)
	}
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	anchors := markdownAnchors(string(readFile(t, "docs/operations.md")))
	jobs := scrapeJobs(t)
	metrics := loadMetricSource(t)

	var n int
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			t.Run(r.Alert, func(t *testing.T) {
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("severity %q, want critical or warning", s)
				}
				if r.Annotations["summary"] == "" {
					t.Error("no summary annotation")
				}
				anchor, ok := strings.CutPrefix(r.Annotations["runbook"], "docs/operations.md#")
				if !ok || !anchors[anchor] {
					t.Errorf("runbook %q is not a section of docs/operations.md", r.Annotations["runbook"])
				}
				if !fired[r.Alert] {
					t.Error("no test in alerts_test.yml shows it firing")
				}
				for _, p := range checkQuery(r.Expr, metrics, jobs) {
					t.Error(p)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("alerts.yml has no alert")
	}
}

// scrapeJobs returns the job names of prometheus.yml.
func scrapeJobs(t *testing.T) map[string]bool {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName string `json:"job_name"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
	}
	return jobs
}

// grafanaVars are the Grafana variables our queries use, with a value that
// makes the query parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")

// checkQuery parses a PromQL query and returns its problems: a metric
// that no service (nor a library they use) exports, a job that is not
// scraped. Metrics of the load balancer (haproxy_*) come from HAProxy's
// built-in exporter, scraped as job "lb".
func checkQuery(query string, metrics *metricSource, jobs map[string]bool) []string {
	expr, err := parser.ParseExpr(grafanaVars.Replace(query))
	if err != nil {
		return []string{fmt.Sprintf("query does not parse: %v\n%s", err, query)}
	}
	var problems []string
	var selected int
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selected++
		name := vs.Name
		switch {
		case name == "":
			problems = append(problems, fmt.Sprintf("selector %s names no metric", vs))
		case strings.HasPrefix(name, "haproxy_") || name == "up":
			// HAProxy's exporter and Prometheus itself.
		case !metrics.has(name):
			problems = append(problems, fmt.Sprintf("metric %s is not exported by any service", name))
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "job" {
				problems = append(problems, checkJobMatcher(m.Value, m.Type, jobs)...)
			}
		}
		return nil
	})
	if selected == 0 {
		problems = append(problems, "query selects no metric: "+query)
	}
	return problems
}

// checkJobMatcher checks that a job="x" or job=~"x|y" matcher names only
// jobs that are scraped.
func checkJobMatcher(value string, op labels.MatchType, jobs map[string]bool) []string {
	var names []string
	switch op {
	case labels.MatchEqual:
		names = []string{value}
	case labels.MatchRegexp:
		names = strings.Split(value, "|")
	}
	var problems []string
	for _, n := range names {
		if !jobs[n] {
			problems = append(problems, fmt.Sprintf("job %q is not scraped by prometheus.yml (jobs: %v)",
				n, sortedNames(jobs)))
		}
	}
	return problems
}

var heading = regexp.MustCompile(`(?m)^#{1,6}[ \t]+(.+?)[ \t]*$`)

// markdownAnchors returns the anchors a Markdown renderer gives the
// headings of doc: lower case, spaces to dashes, punctuation dropped.
func markdownAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(doc, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

// TestCheckQuery shows that the query check fails on unknown metrics and
// jobs, and on queries that do not parse.
func TestCheckQuery(t *testing.T) {
	metrics := &metricSource{words: map[string]bool{"switchboard_gateway_": true, "connections": true}}
	jobs := map[string]bool{"gateway": true}
	tests := []struct {
		query    string
		problems int
	}{
		{`sum(switchboard_gateway_connections{job="gateway"})`, 0},
		{`sum(rate(switchboard_gateway_connections[$__rate_interval]))`, 0},
		{`haproxy_backend_active_servers == 0 or up == 0`, 0},
		{`sum(switchboard_gateway_connection)`, 1},
		{`sum(switchboard_gateway_connections{job=~"gateway|gatway"})`, 1},
		{`sum(switchboard_gateway_connections`, 1},
		{`vector(1)`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := checkQuery(tt.query, metrics, jobs); len(got) != tt.problems {
				t.Errorf("problems = %q, want %d", got, tt.problems)
			}
		})
	}
}
