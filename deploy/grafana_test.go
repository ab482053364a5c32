package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// requiredPanels are the views the operations guide promises, by panel
// title.
var requiredPanels = []string{
	"Open connections",
	"Deliveries per second",
	"Fan-out latency",
	"Slow consumers disconnected",
	"Auth latency (p99) by method",
	"Auth cache hit ratio",
	"Token cache hit ratio (gateway)",
	"Cache hit ratio",
	"Evictions and expirations",
}

// TestGrafanaDashboards checks every dashboard: valid JSON with a unique
// uid, panels on the grid, every query on the provisioned Prometheus,
// parsing as PromQL and selecting metrics that the services export.
func TestGrafanaDashboards(t *testing.T) {
	dsUID := provisionedDatasource(t)
	metrics := loadMetricSource(t)
	jobs := scrapeJobs(t)
	dir := filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboard in %s (%v)", dir, err)
	}

	uids := map[string]string{}
	titles := map[string]bool{}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			d := readDashboard(t, file)
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = file
			for _, p := range flatten(d.Panels) {
				titles[p.Title] = true
				for _, problem := range checkPanel(p, dsUID, metrics, jobs) {
					t.Errorf("panel %q: %s", p.Title, problem)
				}
			}
		})
	}
	for _, title := range requiredPanels {
		if !titles[title] {
			t.Errorf("no panel titled %q", title)
		}
	}
}

func readDashboard(t *testing.T, file string) dashboard {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("uid %q and title %q: both are required, the uid at most 40 characters", d.UID, d.Title)
	}
	if d.SchemaVersion == 0 {
		t.Error("no schemaVersion")
	}
	if len(d.Panels) == 0 {
		t.Error("no panels")
	}
	return d
}

// flatten returns the panels with those of collapsed rows.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

// checkPanel returns the problems of one panel.
func checkPanel(p panel, dsUID string, metrics *metricSource, jobs map[string]bool) []string {
	var problems []string
	if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
		problems = append(problems, "gridPos outside the 24-column grid")
	}
	if p.Type == "row" {
		return problems
	}
	if len(p.Targets) == 0 {
		problems = append(problems, "no query")
	}
	if p.Datasource == nil || p.Datasource.UID != dsUID {
		problems = append(problems, "datasource is not the provisioned uid "+dsUID)
	}
	for _, tg := range p.Targets {
		if tg.Datasource != nil && tg.Datasource.UID != dsUID {
			problems = append(problems, "query "+tg.RefID+" on datasource "+tg.Datasource.UID)
		}
		for _, q := range checkQuery(tg.Expr, metrics, jobs) {
			problems = append(problems, "query "+tg.RefID+": "+q)
		}
	}
	return problems
}

// provisionedDatasource returns the uid of the provisioned Prometheus data
// source.
func provisionedDatasource(t *testing.T) string {
	t.Helper()
	var prov struct {
		Datasources []struct {
			UID  string `json:"uid"`
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	err := yaml.Unmarshal(readFile(t, "deploy/grafana/provisioning/datasources/prometheus.yml"), &prov)
	if err != nil {
		t.Fatal(err)
	}
	for _, ds := range prov.Datasources {
		if ds.Type == "prometheus" && ds.UID != "" && strings.HasPrefix(ds.URL, "http://prometheus:") {
			return ds.UID
		}
	}
	t.Fatal("no provisioned Prometheus data source with a uid pointing at the compose service")
	return ""
}

// TestGrafanaProvisioning checks that the dashboard provider reads the
// folder where docker-compose.yml mounts the dashboards.
func TestGrafanaProvisioning(t *testing.T) {
	var prov struct {
		Providers []struct {
			Type    string `json:"type"`
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, "deploy/grafana/provisioning/dashboards/switchboard.yml"), &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("want one file provider, got %+v", prov.Providers)
	}
	g, err := loadCompose(t, "monitoring").GetService("grafana")
	if err != nil {
		t.Fatal(err)
	}
	want := prov.Providers[0].Options.Path
	root := repoRoot(t)
	for _, v := range g.Volumes {
		if v.Target == want && v.Source == filepath.Join(root, "deploy", "grafana", "dashboards") {
			return
		}
	}
	t.Errorf("grafana does not mount deploy/grafana/dashboards at %s, where the provider reads", want)
}
