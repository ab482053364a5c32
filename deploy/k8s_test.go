package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const k8sNamespace = "switchboard"

// k8sKinds maps apiVersion and kind to a new object of the k8s.io/api
// type. A manifest of any other kind fails the test.
var k8sKinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/PersistentVolumeClaim":               func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
}

// kustomization is the part of kustomization.yaml the tests use, decoded
// strictly so that a field the test does not know fails it.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

// manifest is one decoded object and where it came from.
type manifest struct {
	file string
	obj  any
}

// cluster is every object of deploy/k8s, with the example Secrets that the
// operator creates by hand.
type cluster struct {
	objects      []manifest
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	claims       map[string]*corev1.PersistentVolumeClaim
	services     map[string]*corev1.Service
	workloads    map[string]workload
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	hasNamespace bool
}

// workload is a Deployment or a StatefulSet.
type workload struct {
	kind     string
	selector *metav1.LabelSelector
	template corev1.PodTemplateSpec
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// loadCluster decodes every manifest strictly into its k8s.io/api type.
func loadCluster(t *testing.T) *cluster {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", "k8s")
	var k kustomization
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/k8s/kustomization.yaml"), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Kustomization" || k.Namespace != k8sNamespace || len(k.Resources) == 0 {
		t.Fatalf("kustomization.yaml: kind %q, namespace %q, %d resources", k.Kind, k.Namespace, len(k.Resources))
	}
	files := append(slices.Clone(k.Resources), "secrets.example.yaml")
	checkListed(t, dir, files)

	c := &cluster{
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		claims: map[string]*corev1.PersistentVolumeClaim{}, services: map[string]*corev1.Service{},
		workloads: map[string]workload{},
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, err := decodeManifest([]byte(doc))
			if err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			c.add(manifest{file: f, obj: obj})
		}
	}
	return c
}

// checkListed fails if a YAML file of dir is neither in files nor
// kustomization.yaml: it would never be applied.
func checkListed(t *testing.T, dir string, files []string) {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range all {
		if base := filepath.Base(path); base != "kustomization.yaml" && !slices.Contains(files, base) {
			t.Errorf("%s is not listed in kustomization.yaml", base)
		}
	}
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// decodeManifest reads the kind of doc, then decodes it strictly into the
// matching type: unknown fields and duplicate keys are errors.
func decodeManifest(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	newObj, ok := k8sKinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("kind %s %s is not one the test knows", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

func (c *cluster) add(m manifest) {
	c.objects = append(c.objects, m)
	switch o := m.obj.(type) {
	case *corev1.Namespace:
		c.hasNamespace = o.Name == k8sNamespace
	case *corev1.ConfigMap:
		c.configMaps[o.Name] = o
	case *corev1.Secret:
		c.secrets[o.Name] = o
	case *corev1.PersistentVolumeClaim:
		c.claims[o.Name] = o
	case *corev1.Service:
		c.services[o.Name] = o
	case *appsv1.Deployment:
		c.workloads[o.Name] = workload{"Deployment", o.Spec.Selector, o.Spec.Template}
	case *appsv1.StatefulSet:
		c.workloads[o.Name] = workload{"StatefulSet", o.Spec.Selector, o.Spec.Template}
	case *autoscalingv2.HorizontalPodAutoscaler:
		c.hpas = append(c.hpas, o)
	case *policyv1.PodDisruptionBudget:
		c.pdbs = append(c.pdbs, o)
	}
}

// meta returns the object metadata of m.
func (m manifest) meta() metav1.Object {
	return m.obj.(metav1.Object)
}

// TestK8sDecode checks that every object decodes strictly, is named, and
// lives in the namespace.
func TestK8sDecode(t *testing.T) {
	c := loadCluster(t)
	if !c.hasNamespace {
		t.Errorf("no Namespace %s", k8sNamespace)
	}
	for _, m := range c.objects {
		md := m.meta()
		if md.GetName() == "" {
			t.Errorf("%s: an object without a name", m.file)
		}
		if _, isNS := m.obj.(*corev1.Namespace); !isNS && md.GetNamespace() != k8sNamespace {
			t.Errorf("%s: %s is in namespace %q, want %s", m.file, md.GetName(), md.GetNamespace(), k8sNamespace)
		}
	}
	for _, name := range append(slices.Clone(services), "redis") {
		if _, ok := c.workloads[name]; !ok {
			t.Errorf("no workload %s", name)
		}
	}
}

// TestK8sWorkloads checks every pod template: selector, probes, resources,
// security context and the objects it refers to.
func TestK8sWorkloads(t *testing.T) {
	c := loadCluster(t)
	for _, name := range sortedNames(c.workloads) {
		w := c.workloads[name]
		t.Run(name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(w.selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.template.Labels)) {
				t.Errorf("selector %v does not match the template's labels %v", w.selector, w.template.Labels)
			}
			spec := w.template.Spec
			checkPodSecurity(t, spec)
			for _, ctr := range spec.Containers {
				checkContainer(t, ctr)
				for _, p := range c.refProblems(spec, ctr) {
					t.Error(p)
				}
			}
		})
	}
}

func checkPodSecurity(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Error("pod runs as uid 0")
	}
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; no pod here talks to the API server")
	}
}

func checkContainer(t *testing.T, ctr corev1.Container) {
	t.Helper()
	if ctr.Image == "" {
		t.Errorf("container %s has no image", ctr.Name)
	}
	if ctr.ReadinessProbe == nil || ctr.LivenessProbe == nil {
		t.Errorf("container %s lacks a readiness or liveness probe", ctr.Name)
	}
	for _, p := range []*corev1.Probe{ctr.ReadinessProbe, ctr.LivenessProbe} {
		if p != nil && !probePortDeclared(p, ctr.Ports) {
			t.Errorf("container %s probes a port it does not declare", ctr.Name)
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := ctr.Resources.Requests[res]
		lim, hasLim := ctr.Resources.Limits[res]
		if !hasReq || !hasLim {
			t.Errorf("container %s: %s request and limit are both required", ctr.Name, res)
		} else if req.Cmp(lim) > 0 {
			t.Errorf("container %s: %s request %s above limit %s", ctr.Name, res, req.String(), lim.String())
		}
	}
	sc := ctr.SecurityContext
	switch {
	case sc == nil:
		t.Errorf("container %s has no securityContext", ctr.Name)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("container %s: root file system is writable", ctr.Name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("container %s: privilege escalation allowed", ctr.Name)
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
		t.Errorf("container %s: capabilities not all dropped", ctr.Name)
	}
}

// probePortDeclared reports whether the port a probe targets is one of the
// container's, by name or number. Exec probes target none.
func probePortDeclared(p *corev1.Probe, ports []corev1.ContainerPort) bool {
	var port intstr.IntOrString
	switch {
	case p.HTTPGet != nil:
		port = p.HTTPGet.Port
	case p.TCPSocket != nil:
		port = p.TCPSocket.Port
	case p.GRPC != nil:
		port = intstr.FromInt32(p.GRPC.Port)
	default:
		return true
	}
	return portOf(port, ports) != 0
}

// portOf resolves a named or numbered port among ports; 0 if absent.
func portOf(port intstr.IntOrString, ports []corev1.ContainerPort) int32 {
	for _, cp := range ports {
		if port.Type == intstr.String && cp.Name == port.StrVal ||
			port.Type == intstr.Int && cp.ContainerPort == port.IntVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// refProblems returns the references of a container that point at nothing:
// ConfigMaps, Secrets and their keys, volumes and claims.
func (c *cluster) refProblems(spec corev1.PodSpec, ctr corev1.Container) []string {
	var problems []string
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef != nil && c.configMaps[ef.ConfigMapRef.Name] == nil {
			problems = append(problems, "envFrom ConfigMap "+ef.ConfigMapRef.Name+" does not exist")
		}
		if ef.SecretRef != nil && c.secrets[ef.SecretRef.Name] == nil {
			problems = append(problems, "envFrom Secret "+ef.SecretRef.Name+" does not exist")
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil && !c.secretHas(r.Name, r.Key) {
			problems = append(problems, fmt.Sprintf("%s: Secret %s has no key %s", e.Name, r.Name, r.Key))
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil && (c.configMaps[r.Name] == nil || c.configMaps[r.Name].Data[r.Key] == "") {
			problems = append(problems, fmt.Sprintf("%s: ConfigMap %s has no key %s", e.Name, r.Name, r.Key))
		}
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		switch {
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				if !c.secretHas(v.Secret.SecretName, it.Key) {
					problems = append(problems, fmt.Sprintf("volume %s: Secret %s has no key %s", v.Name, v.Secret.SecretName, it.Key))
				}
			}
			if c.secrets[v.Secret.SecretName] == nil {
				problems = append(problems, "volume "+v.Name+": Secret "+v.Secret.SecretName+" does not exist")
			}
		case v.PersistentVolumeClaim != nil && c.claims[v.PersistentVolumeClaim.ClaimName] == nil:
			problems = append(problems, "volume "+v.Name+": claim "+v.PersistentVolumeClaim.ClaimName+" does not exist")
		}
	}
	for _, vm := range ctr.VolumeMounts {
		if !volumes[vm.Name] {
			problems = append(problems, "mount of unknown volume "+vm.Name)
		}
	}
	return problems
}

func (c *cluster) secretHas(name, key string) bool {
	s := c.secrets[name]
	if s == nil {
		return false
	}
	_, inData := s.Data[key]
	_, inString := s.StringData[key]
	return inData || inString
}

// TestK8sServices checks that every Service selects pods and targets
// ports they declare, and that auth and cache have headless Services for
// gRPC client-side balancing.
func TestK8sServices(t *testing.T) {
	c := loadCluster(t)
	for _, name := range sortedNames(c.services) {
		svc := c.services[name]
		t.Run(name, func(t *testing.T) {
			w, ok := c.selected(svc.Spec.Selector)
			if !ok {
				t.Fatalf("selector %v matches no workload's pods", svc.Spec.Selector)
			}
			for _, p := range svc.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				if portOf(target, w.template.Spec.Containers[0].Ports) == 0 {
					t.Errorf("port %s targets %s, which the pods do not declare", p.Name, target.String())
				}
			}
		})
	}
	for _, name := range []string{"auth", "cache"} {
		if !c.hasHeadless(name, "grpc") {
			t.Errorf("no headless Service (clusterIP: None) with a grpc port selecting %s", name)
		}
	}
	cache, ok := c.workloads["cache"]
	if ok && cache.kind == "StatefulSet" && (c.services["cache"] == nil || c.services["cache"].Spec.ClusterIP != corev1.ClusterIPNone) {
		t.Error("the cache StatefulSet's serviceName must be a headless Service: its pods' stable names come from it")
	}
}

// selected returns the workload whose pods selector picks.
func (c *cluster) selected(selector map[string]string) (workload, bool) {
	if len(selector) == 0 {
		return workload{}, false
	}
	for _, name := range sortedNames(c.workloads) {
		w := c.workloads[name]
		if labels.SelectorFromSet(selector).Matches(labels.Set(w.template.Labels)) {
			return w, true
		}
	}
	return workload{}, false
}

func (c *cluster) hasHeadless(workloadName, portName string) bool {
	for _, svc := range c.services {
		w, ok := c.selected(svc.Spec.Selector)
		if !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone || w.template.Labels["app.kubernetes.io/name"] != workloadName {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == portName {
				return true
			}
		}
	}
	return false
}

// TestK8sGatewayScaling checks the gateway's HorizontalPodAutoscaler and
// PodDisruptionBudget.
func TestK8sGatewayScaling(t *testing.T) {
	c := loadCluster(t)
	gw, ok := c.workloads["gateway"]
	if !ok || gw.kind != "Deployment" {
		t.Fatal("no gateway Deployment")
	}
	var scaled bool
	for _, h := range c.hpas {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != "gateway" || ref.APIVersion != "apps/v1" {
			continue
		}
		scaled = true
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("replicas %v to %d: want at least 2, and max above min", h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		for _, m := range h.Spec.Metrics {
			if m.Resource == nil {
				continue
			}
			if _, ok := gw.template.Spec.Containers[0].Resources.Requests[m.Resource.Name]; !ok {
				t.Errorf("scales on %s utilization, but the gateway requests no %s", m.Resource.Name, m.Resource.Name)
			}
		}
	}
	if !scaled {
		t.Error("no HorizontalPodAutoscaler targets the gateway Deployment")
	}

	var budgeted bool
	for _, pdb := range c.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(gw.template.Labels)) {
			continue
		}
		budgeted = true
		if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			t.Error("the gateway PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
		}
	}
	if !budgeted {
		t.Error("no PodDisruptionBudget selects the gateway pods")
	}
	if g := gw.template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("terminationGracePeriodSeconds %v: the gateway needs time to drain its connections", g)
	}
}

// TestK8sEnvironment checks each service's environment in its pod template
// as the compose test does: variables without a default and loopback
// defaults are set, nothing is set that the service does not read, and each
// listen address's port is a declared container port.
func TestK8sEnvironment(t *testing.T) {
	c := loadCluster(t)
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			w, ok := c.workloads[name]
			if !ok {
				t.Fatal("no workload")
			}
			ctr := w.template.Spec.Containers[0]
			set := c.containerEnv(ctr)
			reads, _ := serviceEnv(t, name)
			for _, p := range checkEnv(reads, set) {
				t.Error(p)
			}
			for k, v := range set {
				host, port, err := net.SplitHostPort(v)
				if err != nil || !strings.HasSuffix(k, "_ADDR") || net.ParseIP(host) == nil || !net.ParseIP(host).IsUnspecified() {
					continue
				}
				n, _ := strconv.Atoi(port)
				if portOf(intstr.FromInt32(int32(n)), ctr.Ports) == 0 {
					t.Errorf("%s listens on port %s, which the container does not declare", k, port)
				}
			}
			if want := "switchboard/" + name + ":"; !strings.HasPrefix(ctr.Image, want) {
				t.Errorf("image %s, want %s<tag> (kustomization.yaml sets the tag)", ctr.Image, want)
			}
			// Prometheus scrapes the pod where /metrics is served.
			_, port, err := net.SplitHostPort(set[metricsAddrVar[name]])
			if got := w.template.Annotations["prometheus.io/port"]; err != nil || got != port {
				t.Errorf("prometheus.io/port is %q, but %s is %q", got, metricsAddrVar[name], set[metricsAddrVar[name]])
			}
		})
	}
}

// containerEnv returns the environment a container gets: its ConfigMaps'
// data, then its own entries (a Secret reference counts as set).
func (c *cluster) containerEnv(ctr corev1.Container) map[string]string {
	set := map[string]string{}
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef != nil && c.configMaps[ef.ConfigMapRef.Name] != nil {
			for k, v := range c.configMaps[ef.ConfigMapRef.Name].Data {
				set[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			set[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil && c.secretHas(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key):
			set[e.Name] = "<secret>"
		}
	}
	return set
}

// TestDecodeManifestStrict shows that a misspelt field fails decoding.
func TestDecodeManifestStrict(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		ok   bool
	}{
		{"valid", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  A: b\n", true},
		{"misspelt field", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndatta:\n  A: b\n", false},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  name: y\n", false},
		{"unknown kind", "apiVersion: v1\nkind: Gadget\nmetadata:\n  name: x\n", false},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: two\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeManifest([]byte(tt.doc))
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}
