package telemetry_test

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"switchboard/services/gateway/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// series is one metric as docs/operations.md lists it.
type series struct {
	kind   string // counter, gauge, histogram
	labels string // comma-separated, in order
}

// documented reads the table of the "Gateway metrics" section.
func documented(t *testing.T) map[string]series {
	t.Helper()
	doc, err := os.ReadFile("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Gateway metrics\n")
	if !ok {
		t.Fatal(`docs/operations.md has no "## Gateway metrics" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	out := map[string]series{}
	for line := range strings.SplitSeq(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		labels := strings.NewReplacer("`", "", " ", "").Replace(cells[3])
		out[name] = series{kind: strings.TrimSpace(cells[2]), labels: labels}
	}
	return out
}

var descFields = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// registered lists every metric of telemetry.New by walking Metrics' fields.
func registered(t *testing.T) map[string]series {
	t.Helper()
	m := telemetry.New(prometheus.NewRegistry())
	out := map[string]series{}
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		c := v.Field(i).Interface().(prometheus.Collector)
		var kind string
		switch c.(type) {
		case prometheus.Histogram, *prometheus.HistogramVec:
			kind = "histogram"
		case prometheus.Gauge, *prometheus.GaugeVec:
			kind = "gauge"
		case prometheus.Counter, *prometheus.CounterVec:
			kind = "counter"
		default:
			t.Fatalf("field %s: a %T", v.Type().Field(i).Name, c)
		}
		descs := make(chan *prometheus.Desc, 1)
		c.Describe(descs)
		d := descFields.FindStringSubmatch((<-descs).String())
		if d == nil {
			t.Fatalf("field %s: cannot read its descriptor", v.Type().Field(i).Name)
		}
		out[d[1]] = series{kind: kind, labels: strings.ReplaceAll(d[2], " ", "")}
	}
	return out
}

// docs/operations.md lists every gateway metric with its type and labels,
// and nothing else.
func TestMetricsDocumented(t *testing.T) {
	doc, code := documented(t), registered(t)
	if len(code) < 19 {
		t.Fatalf("read %d metrics from Metrics' fields", len(code))
	}
	for _, name := range slices.Sorted(maps.Keys(code)) {
		if got, ok := doc[name]; !ok {
			t.Errorf("%s (%s) is not in docs/operations.md's table", name, code[name].kind)
		} else if got != code[name] {
			t.Errorf("%s: documented %+v, registered %+v", name, got, code[name])
		}
	}
	for name := range doc {
		if _, ok := code[name]; !ok {
			t.Errorf("docs/operations.md lists %s, which the gateway does not register", name)
		}
	}
}
