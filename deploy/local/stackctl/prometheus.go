package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/redact"
)

// prometheusBinary is where Debian's prometheus package installs the server.
const prometheusBinary = "/usr/bin/prometheus"

// prometheus runs Debian's Prometheus (only with `up --with-prometheus`) as a
// process of the stack, with its configuration and time series under the
// stack dir, scraping every metrics endpoint of the stack.
type prometheus struct{}

func (prometheus) name() string { return "prometheus" }

// scrapeJob is one job of the generated prometheus.yml.
type scrapeJob struct {
	name    string
	targets []string
}

func prometheusTarget(port int) string { return localstack.Host + ":" + strconv.Itoa(port) }

// prometheusScrapeJobs lists what Prometheus scrapes on a stack of
// taskManagers TaskManagers; a component that gains a metrics endpoint adds
// its job here. Kafka and Flink are read through the JMX exporter agent
// (jmxexporter.go).
func prometheusScrapeJobs(taskManagers int) []scrapeJob {
	var kafkaTargets, flinkTargets []string
	for node := 1; node <= kafkaNodes; node++ {
		kafkaTargets = append(kafkaTargets, prometheusTarget(kafkaMetricsPort(node)))
	}
	for n := 1; n <= taskManagers; n++ {
		flinkTargets = append(flinkTargets, prometheusTarget(flinkTaskManagerMetricsPort(n)))
	}
	return []scrapeJob{
		{name: "token-service", targets: []string{prometheusTarget(localstack.TokenServicePort)}},
		{name: "endpoint", targets: []string{prometheusTarget(localstack.EndpointPort)}},
		{name: "worker", targets: []string{prometheusTarget(localstack.WorkerMetricsPort)}},
		{name: "temporal", targets: []string{prometheusTarget(localstack.TemporalMetricsPort)}},
		{name: "kafka", targets: kafkaTargets},
		{name: "flink", targets: flinkTargets},
	}
}

func (prometheus) install(ctx context.Context, _ *stack) error {
	return installDebianPackage(ctx, "prometheus", prometheusBinary)
}

func (prometheus) start(_ context.Context, s *stack) error {
	dir := s.dataDir("prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "tsdb"), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	source := filepath.Join(s.repoDir, prometheusConfigSource)
	committed, err := os.ReadFile(source)
	if err != nil {
		return fmt.Errorf("read the Prometheus configuration: %w", err)
	}
	config, err := prometheusConfig(committed, filepath.Dir(source), prometheusScrapeJobs(s.opts.taskManagers))
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, config, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", configFile, err)
	}
	// A running Prometheus keeps its old targets (say, another TaskManager
	// count) and rules until told to reload them.
	if pid, ok := s.running("prometheus"); ok {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload prometheus (pid %d): %w", pid, err)
		}
		logf("prometheus already running (pid %d); reloaded %s", pid, configFile)
		return nil
	}
	return s.start(prometheusProcess(dir, configFile))
}

func prometheusProcess(dir, configFile string) process {
	return process{
		name: "prometheus",
		argv: []string{
			prometheusBinary,
			"--config.file=" + configFile,
			"--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
			// Runs are short-lived proofs; a few days of history is plenty and
			// keeps the stack dir small.
			"--storage.tsdb.retention.time=3d",
			"--web.listen-address=" + prometheusTarget(localstack.PrometheusPort),
			"--log.level=warn",
		},
		dir: dir,
	}
}

// prometheusConfigSource is the committed configuration (with its alert
// rules) that the stack's Prometheus runs from, so that there is one.
const prometheusConfigSource = "deploy/prometheus/prometheus.yml"

// prometheusConfig renders the stack's prometheus.yml from the committed
// one (in sourceDir): everything in it stays, its rule files by absolute
// path, and each job scrapes the stack's address for it; the stack's jobs
// the committed file lacks are added. A committed job the stack has no
// address for is an error rather than a scrape of somebody else's target.
func prometheusConfig(committed []byte, sourceDir string, jobs []scrapeJob) ([]byte, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(committed, &cfg); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if files, ok := cfg["rule_files"].([]any); ok {
		for i, f := range files {
			if name, ok := f.(string); ok && !filepath.IsAbs(name) {
				files[i] = filepath.Join(sourceDir, name)
			}
		}
	}
	targets := map[string][]string{}
	for _, job := range jobs {
		targets[job.name] = job.targets
	}
	staticConfigs := func(job string) []any { return []any{map[string]any{"targets": targets[job]}} }
	scrapes, _ := cfg["scrape_configs"].([]any)
	committedJobs := map[string]bool{}
	for _, sc := range scrapes {
		scrape, _ := sc.(map[string]any)
		name, _ := scrape["job_name"].(string)
		if _, ok := targets[name]; !ok {
			return nil, fmt.Errorf("scrape job %q has no address on the local stack (prometheusScrapeJobs)", name)
		}
		scrape["static_configs"] = staticConfigs(name)
		committedJobs[name] = true
	}
	for _, job := range jobs {
		if !committedJobs[job.name] {
			scrapes = append(scrapes, map[string]any{"job_name": job.name, "static_configs": staticConfigs(job.name)})
		}
	}
	cfg["scrape_configs"] = scrapes
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	header := "# Written by flowproof stackctl on every `up` from " + prometheusConfigSource + "; edit that one.\n"
	return append([]byte(header), out...), nil
}

// check wants 200 from /-/ready; the detail adds how many targets Prometheus
// sees up, which tells which metrics endpoints of the stack answer.
func (prometheus) check(ctx context.Context, s *stack) health.Result {
	base := "http://" + prometheusTarget(localstack.PrometheusPort)
	res := health.Result{Component: "prometheus", Addresses: []string{base}}
	if _, ok := s.running("prometheus"); !ok {
		res.Detail = fmt.Sprintf("prometheus process of this stack is not running (see %s)", s.logFile("prometheus"))
		return res
	}
	status, _, err := httpGet(ctx, base+"/-/ready")
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	if status != http.StatusOK {
		res.Detail = fmt.Sprintf("GET %s/-/ready: status %d, want 200", base, status)
		return res
	}
	res.Healthy = true
	res.Detail = base + " ready"
	// Targets show up only after the first scrape round, seconds after ready.
	if up, total, err := prometheusTargetsUp(ctx, base); err == nil && total > 0 {
		res.Detail = fmt.Sprintf("%s ready, %d/%d scrape targets up", base, up, total)
	}
	return res
}

func prometheusTargetsUp(ctx context.Context, base string) (up, total int, err error) {
	status, body, err := httpGet(ctx, base+"/api/v1/targets?state=active")
	if err != nil {
		return 0, 0, err
	}
	if status != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s/api/v1/targets: status %d", base, status)
	}
	var targets struct {
		Data struct {
			ActiveTargets []struct {
				Health string `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &targets); err != nil {
		return 0, 0, fmt.Errorf("decode prometheus targets: %w", err)
	}
	for _, t := range targets.Data.ActiveTargets {
		if t.Health == "up" {
			up++
		}
	}
	return up, len(targets.Data.ActiveTargets), nil
}

// httpGet fetches url and returns its status and up to 4 MiB of its body.
// Its errors name url redacted.
func httpGet(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("request %s: %w", redact.URL(url), redact.Error(err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", redact.URL(url), redact.Error(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("GET %s: read body: %w", redact.URL(url), err)
	}
	return resp.StatusCode, body, nil
}

func (prometheus) processes(*stack) []string { return []string{"prometheus"} }
