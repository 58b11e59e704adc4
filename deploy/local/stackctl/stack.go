package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// stack is the on-disk layout of one local stack: every component keeps its
// data under data/<name>, its log in logs/<name>.log and its pid in
// run/<name>.pid.
type stack struct {
	dir      string // FLOWPROOF_STACK_DIR
	cacheDir string // FLOWPROOF_CACHE_DIR
	repoDir  string // the flowproof checkout (for deploy/ files and go builds)
	opts     options
}

type options struct {
	profile        string // profileDefault or profileSecure
	taskManagers   int
	withPrometheus bool
	withWorker     bool
	withDrills     bool
	readyTimeout   time.Duration
	only           []string // component names; all when empty
}

func defaultOptions() options {
	return options{profile: profileDefault, taskManagers: 3, readyTimeout: 5 * time.Minute}
}

func (s *stack) dataDir(name string) string { return filepath.Join(s.dir, "data", name) }
func (s *stack) logFile(name string) string { return filepath.Join(s.dir, "logs", name+".log") }
func (s *stack) pidFile(name string) string { return filepath.Join(s.dir, "run", name+".pid") }
func (s *stack) optionsFile() string        { return filepath.Join(s.dir, "run", "options.json") }

// component is one part of the stack. Components start in the order of
// components() and stop in reverse.
type component interface {
	name() string
	// install fetches or builds what the component needs into the cache; it is
	// a no-op when the cache already has it.
	install(ctx context.Context, s *stack) error
	// start writes configuration and starts the component's processes; those
	// already running are left alone.
	start(ctx context.Context, s *stack) error
	// check asks the running component whether it is really ready.
	check(ctx context.Context, s *stack) health.Result
	// processes names the component's OS processes (for down, status, memory).
	processes(s *stack) []string
}

// defaultStopGrace is how long a process gets between SIGTERM and SIGKILL,
// unless its component says otherwise (stopGracer).
const defaultStopGrace = 30 * time.Second

// stopGracer is a component whose processes need another grace period.
type stopGracer interface {
	stopGrace() time.Duration
}

func stopGrace(c component) time.Duration {
	if g, ok := c.(stopGracer); ok {
		return g.stopGrace()
	}
	return defaultStopGrace
}

// coreComponents always run; optionalComponents only when asked for. The
// secure profile runs the Temporal server proper on PostgreSQL where the
// default one runs the dev server.
func coreComponents(s *stack) []component {
	if s.secure() {
		return []component{kafka{}, flink{}, postgres{}, temporalServer{}, redisServer{}, refServices{}}
	}
	return []component{kafka{}, flink{}, temporal{}, redisServer{}, refServices{}}
}

func optionalComponents() []component {
	return []component{prometheus{}, worker{}, drillWorker{}, chromium{}}
}

// componentNames lists the components of every profile.
func componentNames() []string {
	var names []string
	for _, profile := range profiles {
		s := &stack{opts: options{profile: profile}}
		for _, c := range append(coreComponents(s), optionalComponents()...) {
			if !slices.Contains(names, c.name()) {
				names = append(names, c.name())
			}
		}
	}
	return names
}

// components lists what the command acts on, in start order. The workers
// come last: they need all the others.
func components(s *stack) []component {
	if len(s.opts.only) > 0 {
		// Naming a component selects it, the optional ones included.
		var picked []component
		for _, c := range append(coreComponents(s), optionalComponents()...) {
			if slices.Contains(s.opts.only, c.name()) {
				picked = append(picked, c)
			}
		}
		return picked
	}
	list := coreComponents(s)
	if s.opts.withPrometheus {
		list = append(list, prometheus{})
	}
	if s.opts.withWorker {
		list = append(list, worker{})
	}
	if s.opts.withDrills {
		list = append(list, drillWorker{})
	}
	return list
}

func newStack() (*stack, error) {
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	s := &stack{
		dir:      localstack.StackDir(),
		cacheDir: localstack.CacheDir(),
		repoDir:  repo,
		opts:     defaultOptions(),
	}
	saved, err := readSavedOptions(s.optionsFile())
	if err != nil {
		return nil, err
	}
	if saved.TaskManagers > 0 {
		s.opts.taskManagers = saved.TaskManagers
	}
	s.opts.withPrometheus = saved.WithPrometheus
	// A stack that is down has no saved options; its data still knows the
	// profile it was made for.
	s.opts.profile = saved.Profile
	if s.opts.profile == "" {
		if s.opts.profile, err = s.dataProfile(); err != nil {
			return nil, err
		}
	}
	if s.opts.profile == "" {
		s.opts.profile = profileDefault
	}
	return s, nil
}

// savedOptions are what up records for later commands: status and down
// must know the profile, the TaskManager count and whether Prometheus
// runs, and a later up keeps them unless told otherwise. The worker is not among them: a
// later up (say, of the test suite) must not start it without being asked.
type savedOptions struct {
	Profile        string `json:"profile,omitempty"`
	TaskManagers   int    `json:"taskmanagers"`
	WithPrometheus bool   `json:"with_prometheus"`
}

func readSavedOptions(path string) (savedOptions, error) {
	var saved savedOptions
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return saved, nil
	}
	if err != nil {
		return saved, fmt.Errorf("read saved options: %w", err)
	}
	if err := json.Unmarshal(raw, &saved); err != nil {
		// A damaged file only loses the memory of earlier flags.
		logf("ignoring %s: %v", path, err)
		return savedOptions{}, nil
	}
	return saved, nil
}

func (s *stack) saveOptions() error {
	raw, err := json.Marshal(savedOptions{Profile: s.opts.profile, TaskManagers: s.opts.taskManagers, WithPrometheus: s.opts.withPrometheus})
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.optionsFile(), raw, 0o644); err != nil {
		return fmt.Errorf("save options: %w", err)
	}
	return nil
}

// repoRoot finds the flowproof checkout from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "deploy", "local", "stackctl")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run stackctl inside the flowproof checkout (no deploy/local/stackctl above %s)", dir)
		}
	}
}
