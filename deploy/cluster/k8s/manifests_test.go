// Package k8s tests the Kubernetes manifests in deploy/k8s: each one
// decodes strictly into its API type, the references between them hold,
// and what they say about the worker agrees with the worker in the image
// (its variables, probe paths, stop timeout, user).
package k8s

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/flowproof/flowproof/deploy/cluster/image"
)

var manifestDir = filepath.Join("..", "..", "k8s")

// stopMargin is what terminationGracePeriodSeconds must leave beyond the
// worker's -stop-timeout: closing the Kafka clients, the Temporal
// connection and the metrics server (up to 5 s) after the hand-back.
const stopMargin = 15 * time.Second

// manifests are the decoded objects of deploy/k8s, one of each kind.
type manifests struct {
	deployment *appsv1.Deployment
	job        *batchv1.Job
	secret     *corev1.Secret
	configMap  *corev1.ConfigMap
	podMonitor *monitoringv1.PodMonitor
}

func TestManifestsAgreeWithEachOtherAndTheWorker(t *testing.T) {
	m := decodeAll(t)
	bin := binariesFromImage(t)
	var help bytes.Buffer
	worker := exec.CommandContext(t.Context(), filepath.Join(bin, "worker"), "-h")
	worker.Stderr = &help
	if err := worker.Run(); err != nil {
		t.Fatalf("worker -h: %v", err)
	}
	workerVars := variablesNamed(help.String())
	if len(workerVars) < 10 {
		t.Fatalf("worker -h names only %d variables: %v\n%s", len(workerVars), workerVars, help.String())
	}

	pod := m.deployment.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("the worker pod has %d containers, want 1", len(pod.Spec.Containers))
	}
	container := pod.Spec.Containers[0]

	t.Run("references", func(t *testing.T) {
		for _, p := range []struct {
			name string
			spec corev1.PodSpec
		}{{"worker", pod.Spec}, {"setup job", m.job.Spec.Template.Spec}} {
			for _, problem := range m.referenceProblems(p.spec) {
				t.Errorf("%s: %s", p.name, problem)
			}
		}
	})

	t.Run("worker variables", func(t *testing.T) {
		for _, name := range m.envNames(container) {
			if !workerVars[name] {
				t.Errorf("the worker pod sets %s, which worker -h does not name", name)
			}
		}
	})

	t.Run("ports and probes", func(t *testing.T) {
		ports := map[string]int32{}
		for _, p := range container.Ports {
			ports[p.Name] = p.ContainerPort
		}
		for name, probe := range map[string]*corev1.Probe{"liveness": container.LivenessProbe, "readiness": container.ReadinessProbe} {
			if probe == nil || probe.HTTPGet == nil {
				t.Errorf("%s probe: want an HTTP GET", name)
				continue
			}
			if port := probe.HTTPGet.Port; port.Type != intstr.String || ports[port.StrVal] == 0 {
				t.Errorf("%s probe port %s: not a port the container names (%v)", name, port.String(), ports)
			}
		}
		if endpoints := m.podMonitor.Spec.PodMetricsEndpoints; len(endpoints) != 1 || endpoints[0].Port == nil || ports[*endpoints[0].Port] == 0 {
			t.Errorf("PodMonitor endpoints %+v: want one, on a port the container names (%v)", endpoints, ports)
		}
		addr := envValue(container, "FLOWPROOF_WORKER_METRICS_ADDR")
		if _, port, err := net.SplitHostPort(addr); err != nil || port != strconv.Itoa(int(ports["metrics"])) {
			t.Errorf("FLOWPROOF_WORKER_METRICS_ADDR %q does not listen on the metrics port %d", addr, ports["metrics"])
		}
		selector := m.podMonitor.Spec.Selector.MatchLabels
		for k, v := range selector {
			if pod.Labels[k] != v {
				t.Errorf("PodMonitor selects %s=%s; the worker pods have %v", k, v, pod.Labels)
			}
		}
		if len(selector) == 0 || !mapsSubset(m.deployment.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("selectors: PodMonitor %v, Deployment %v; pod labels %v", selector, m.deployment.Spec.Selector.MatchLabels, pod.Labels)
		}
	})

	t.Run("graceful stop", func(t *testing.T) {
		stop := stopTimeout(t, container.Args)
		grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		if grace < stop+stopMargin {
			t.Errorf("terminationGracePeriodSeconds %s: want at least -stop-timeout %s + %s", grace, stop, stopMargin)
		}
	})

	t.Run("non-root and read-only", func(t *testing.T) {
		for name, spec := range map[string]corev1.PodSpec{"worker": pod.Spec, "setup job": m.job.Spec.Template.Spec} {
			sc := spec.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != image.UID {
				t.Errorf("%s: pod securityContext %+v: want runAsNonRoot and the image's user %d", name, sc, image.UID)
			}
			for _, c := range spec.Containers {
				csc := c.SecurityContext
				if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
					t.Errorf("%s/%s: securityContext %+v: want a read-only root and no privilege escalation", name, c.Name, csc)
				}
				if c.Image != container.Image {
					t.Errorf("%s/%s runs %s, the worker %s: one image holds both", name, c.Name, c.Image, container.Image)
				}
			}
		}
	})

	t.Run("setup job runs a starter command", func(t *testing.T) {
		c := m.job.Spec.Template.Spec.Containers[0]
		if want := []string{image.BinDir + "/starter"}; !slices.Equal(c.Command, want) {
			t.Fatalf("the job runs %q, want %q", c.Command, want)
		}
		var rootHelp bytes.Buffer
		root := exec.CommandContext(t.Context(), filepath.Join(bin, "starter"), "--help")
		root.Stdout = &rootHelp
		if err := root.Run(); err != nil {
			t.Fatalf("starter --help: %v", err)
		}
		if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(c.Args[0]) + `\s`).Match(rootHelp.Bytes()) {
			t.Skipf("this starter has no %q command yet (the branch that adds it is merged separately)", c.Args[0])
		}
		// --help after the job's arguments: the starter parses them as the
		// job would, then prints the command's help instead of running it.
		out, err := exec.CommandContext(t.Context(), filepath.Join(bin, "starter"), append(slices.Clone(c.Args), "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("starter %s --help: %v\n%s", strings.Join(c.Args, " "), err, out)
		}
	})

	t.Run("probe and metrics paths served", func(t *testing.T) {
		checkServedPaths(t, filepath.Join(bin, "worker"), container, m.podMonitor)
	})
}

// TestDecodingIsStrict keeps the decoder honest: a field the API type does
// not have fails, as a typo in a manifest must.
func TestDecodingIsStrict(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(manifestDir, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	typo := bytes.Replace(raw, []byte("terminationGracePeriodSeconds:"), []byte("terminationGracePeriod:"), 1)
	if bytes.Equal(typo, raw) {
		t.Fatal("worker.yaml has no terminationGracePeriodSeconds to misspell")
	}
	if _, err := decode(typo); err == nil || !strings.Contains(err.Error(), "terminationGracePeriod") {
		t.Errorf("decoding a misspelt field: %v, want an error naming it", err)
	}
}

// kustomization is the part of kustomize's Kustomization these manifests
// use; decoded strictly too, so another field fails until this test knows
// it.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func decodeAll(t *testing.T) manifests {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			listed = append(listed, filepath.Base(f))
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(k.Resources)), listed) {
		t.Errorf("kustomization.yaml lists %v; the directory has %v", k.Resources, listed)
	}

	var m manifests
	for _, name := range k.Resources {
		raw, err := os.ReadFile(filepath.Join(manifestDir, name))
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployment = o
		case *batchv1.Job:
			m.job = o
		case *corev1.Secret:
			m.secret = o
		case *corev1.ConfigMap:
			m.configMap = o
		case *monitoringv1.PodMonitor:
			m.podMonitor = o
		default:
			t.Fatalf("%s: a %T, which this test does not check", name, obj)
		}
	}
	if m.deployment == nil || m.job == nil || m.secret == nil || m.configMap == nil || m.podMonitor == nil {
		t.Fatalf("want one Deployment, Job, Secret, ConfigMap and PodMonitor; got %+v", m)
	}
	for _, img := range k.Images {
		if img.Name != strings.Split(m.deployment.Spec.Template.Spec.Containers[0].Image, ":")[0] {
			t.Errorf("kustomization.yaml replaces image %s, which the worker does not run", img.Name)
		}
	}
	return m
}

// decode reads one manifest into its Go type by its apiVersion and kind,
// failing on unknown and duplicate fields as the API server's strict
// field validation does.
func decode(raw []byte) (runtime.Object, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	decoder := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	obj, _, err := decoder.Decode(raw, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("strict decoding: %w", err)
	}
	return obj, nil
}

// referenceProblems checks what a pod takes from the Secret and the
// ConfigMap, and the files its variables point to.
func (m manifests) referenceProblems(spec corev1.PodSpec) []string {
	var problems []string
	secretKeys := map[string]bool{}
	for k := range m.secret.StringData {
		secretKeys[k] = true
	}
	for k := range m.secret.Data {
		secretKeys[k] = true
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		if v.Secret == nil {
			continue
		}
		if v.Secret.SecretName != m.secret.Name {
			problems = append(problems, fmt.Sprintf("volume %s: no secret %s", v.Name, v.Secret.SecretName))
		}
		for _, item := range v.Secret.Items {
			if !secretKeys[item.Key] {
				problems = append(problems, fmt.Sprintf("volume %s: secret %s has no key %s", v.Name, m.secret.Name, item.Key))
			}
		}
	}
	for _, c := range spec.Containers {
		for _, from := range c.EnvFrom {
			switch {
			case from.ConfigMapRef != nil && from.ConfigMapRef.Name != m.configMap.Name:
				problems = append(problems, fmt.Sprintf("%s: envFrom names no ConfigMap %s", c.Name, from.ConfigMapRef.Name))
			case from.SecretRef != nil && from.SecretRef.Name != m.secret.Name:
				problems = append(problems, fmt.Sprintf("%s: envFrom names no Secret %s", c.Name, from.SecretRef.Name))
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if ref := e.ValueFrom.SecretKeyRef; ref != nil && (ref.Name != m.secret.Name || !secretKeys[ref.Key]) {
				problems = append(problems, fmt.Sprintf("%s: %s from secret %s key %s, which does not exist", c.Name, e.Name, ref.Name, ref.Key))
			}
			if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
				if _, ok := m.configMap.Data[ref.Key]; ref.Name != m.configMap.Name || !ok {
					problems = append(problems, fmt.Sprintf("%s: %s from ConfigMap %s key %s, which does not exist", c.Name, e.Name, ref.Name, ref.Key))
				}
			}
		}
		for _, mount := range c.VolumeMounts {
			if _, ok := volumes[mount.Name]; !ok {
				problems = append(problems, fmt.Sprintf("%s: mounts volume %s, which the pod does not have", c.Name, mount.Name))
			}
		}
		problems = append(problems, m.missingFiles(c, volumes)...)
	}
	return problems
}

// missingFiles are the variables of c whose value is a path under one of
// its secret mounts that the mounted secret volume does not provide.
func (m manifests) missingFiles(c corev1.Container, volumes map[string]corev1.Volume) []string {
	var problems []string
	env := m.environment(c)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range env {
			if !yield(k) {
				return
			}
		}
	}) {
		value := env[name]
		for _, mount := range c.VolumeMounts {
			v := volumes[mount.Name]
			rel, ok := strings.CutPrefix(value, mount.MountPath+"/")
			if !ok || v.Secret == nil {
				continue
			}
			provided := slices.ContainsFunc(v.Secret.Items, func(item corev1.KeyToPath) bool { return path.Clean(item.Path) == rel })
			if !provided {
				problems = append(problems, fmt.Sprintf("%s: %s=%s, which volume %s does not provide", c.Name, name, value, mount.Name))
			}
		}
	}
	return problems
}

// environment is c's variables with their literal values: the
// ConfigMap's through envFrom, then env's own (secrets have no value here).
func (m manifests) environment(c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil && from.ConfigMapRef.Name == m.configMap.Name {
			for k, v := range m.configMap.Data {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

func (m manifests) envNames(c corev1.Container) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m.environment(c) {
			if !yield(k) {
				return
			}
		}
	})
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// variablesNamed are the FLOWPROOF_* and TEMPORAL_* names in the worker's
// -help.
func variablesNamed(help string) map[string]bool {
	names := map[string]bool{}
	for _, n := range regexp.MustCompile(`\b(FLOWPROOF|TEMPORAL)_[A-Z0-9_]+\b`).FindAllString(help, -1) {
		names[n] = true
	}
	return names
}

// stopTimeout is the -stop-timeout the worker gets from args, parsed as
// the worker parses it.
func stopTimeout(t *testing.T, args []string) time.Duration {
	t.Helper()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	stop := fs.Duration("stop-timeout", 0, "")
	for _, a := range args {
		if strings.HasPrefix(strings.TrimLeft(a, "-"), "stop-timeout") {
			if err := fs.Parse([]string{a}); err != nil {
				t.Fatalf("worker argument %q: %v", a, err)
			}
			return *stop
		}
	}
	t.Fatalf("the worker's args %q set no -stop-timeout: the grace period is judged against it", args)
	return 0
}

// checkServedPaths runs the worker from the image with a Temporal that
// accepts connections but never answers, so it serves its probes and
// metrics while it is not polling: the liveness path must answer 200, the
// readiness path 503 (not 404: the path exists and says not ready), and the
// PodMonitor's path Prometheus' text format.
func checkServedPaths(t *testing.T, worker string, c corev1.Container, pm *monitoringv1.PodMonitor) {
	temporal, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = temporal.Close() }()
	metricsAddr := freeAddr(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "token.key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte("k"), 32), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), worker, c.Args...)
	cmd.Env = []string{
		"HOME=" + dir,
		"TEMPORAL_CONFIG_FILE=" + filepath.Join(dir, "absent.toml"),
		"TEMPORAL_ADDRESS=" + temporal.Addr().String(),
		"FLOWPROOF_WORKER_METRICS_ADDR=" + metricsAddr,
		"FLOWPROOF_TOKEN_KEY_FILE=" + keyFile,
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker's log:\n%s", stderr.String())
		}
	}()
	base := "http://" + metricsAddr
	waitServing(t, base+c.LivenessProbe.HTTPGet.Path)

	for _, want := range []struct {
		path   string
		status int
		body   string
	}{
		{c.LivenessProbe.HTTPGet.Path, http.StatusOK, ""},
		{c.ReadinessProbe.HTTPGet.Path, http.StatusServiceUnavailable, ""},
		{pm.Spec.PodMetricsEndpoints[0].Path, http.StatusOK, "# TYPE go_goroutines gauge"},
	} {
		status, body := get(t, base+want.path)
		t.Logf("GET %s while Temporal does not answer: %d %s", want.path, status, firstLine(body))
		if status != want.status || !strings.Contains(body, want.body) {
			t.Errorf("GET %s: %d, want %d with %q", want.path, status, want.status, want.body)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func waitServing(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker serves no %s after 20s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func mapsSubset(sub, super map[string]string) bool {
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

// binariesFromImage builds the image as `make image` does and writes its
// worker and starter into a temporary directory.
func binariesFromImage(t *testing.T) string {
	t.Helper()
	img, err := image.Build(t.Context(), image.Options{RepoRoot: filepath.Join("..", "..", "..")})
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{image.BinDir + "/worker", image.BinDir + "/starter"}
	files, err := image.Files(img, paths...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, p := range paths {
		if err := os.WriteFile(filepath.Join(dir, path.Base(p)), files[p].Data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
