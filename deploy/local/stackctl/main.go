// Command stackctl runs flowproof's local stack from real components: a
// 3-node Kafka cluster, a Flink session cluster with its SQL Gateway, the
// Temporal dev server with its UI (in the secure profile the Temporal
// server proper on Debian's PostgreSQL, TLS on its frontend, and the
// Temporal UI server), Redis (Debian's redis-server, the endpoint's store),
// and the reference token service and HTTP endpoint; on request also
// Prometheus and flowproof's own worker.
//
//	stackctl up [--profile default|secure] [--taskmanagers N] [--with-prometheus] [--with-worker] [--with-drills]   install, start, wait until ready
//	stackctl install [--profile default|secure] [--only C,...]   fetch or build into the cache, start nothing
//	stackctl down                                        stop every process of the stack
//	stackctl status [--json]                             up/down per component
//	stackctl env                                         the client settings of the stack's profile, as export lines
//	stackctl logs [component]                            log file paths, or one log's tail
//	stackctl kill PROCESS... [--json]                    SIGKILL single processes (fault drills)
//	stackctl stop PROCESS... [--grace D] [--json]        SIGTERM single processes, SIGKILL after the grace
//	stackctl usage [--json] [--reset-peak]               CPU seconds, RSS and peak RSS per process
//	stackctl usage --since SNAPSHOT [--result RESULT]    what the stack spent since a saved snapshot (make demo's table)
//	stackctl --version
//
// Everything binds to 127.0.0.1; data, logs and pid files live under
// FLOWPROOF_STACK_DIR, caches under FLOWPROOF_CACHE_DIR (see internal/localstack).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand. setup registers its flags on fs (most of them
// write into s.opts) and returns what runs once they are parsed, with the
// arguments left after the flags.
type command struct {
	name, args, summary string
	setup               func(fs *flag.FlagSet, s *stack, stdout io.Writer) func(ctx context.Context, args []string) error
}

var commands = []command{
	{"up", "[flags]", "Install what is missing, start every component and wait until each is ready.", setupUp},
	{"down", "[flags]", "Stop every process of the stack (the worker first).", setupDown},
	{"status", "[flags]", "Check every component; exit 1 if any is down.", setupStatus},
	{"env", "", "Print the client settings of the stack's profile as shell export lines (the secure profile's include its SCRAM password).", setupEnv},
	{"logs", "[component]", "List the log files, or print the tail of one process's log.", setupLogs},
	{"install", "", "Fetch or build what the components need into the cache, without starting them.", setupInstall},
	{"kill", "PROCESS... [--json]", "SIGKILL processes of the stack (kafka-2, flink-taskmanager-1, worker, ...), as a crash would.", setupKill},
	{"stop", "PROCESS... [--grace D] [--json]", "SIGTERM processes of the stack, SIGKILL after the grace; prints how long each took to exit.", setupStop},
	{"usage", "[--json] [--reset-peak] [--since SNAPSHOT [--result RESULT] [--pace FILE]]", "CPU seconds, RSS and peak RSS of every process of the stack; with --since, what was spent since a saved snapshot.", setupUsage},
	{"pace", "--out FILE [--every D]", "Time two fixed tasks on one core every D until stopped, one JSON line a sample, for usage --since --pace.", setupPace},
	{"kafka-class", "MAIN-CLASS [args]", "Run a class from the stack's Kafka jars in the foreground.", setupKafkaClass},
}

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ error }

// run returns the exit code: 0 on success and after -h or --version, 2 for
// a wrong command line, 1 when the command failed.
func run(args []string, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("stackctl", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { printUsage(stderr) }
	showVersion := global.Bool("version", false, "print the version and exit")
	if err := global.Parse(args); err != nil {
		return parseExitCode(err)
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("stackctl"))
		return 0
	}
	if global.NArg() == 0 {
		printUsage(stderr)
		return 2
	}
	name := global.Arg(0)
	if name == "help" {
		printUsage(stdout)
		return 0
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "stackctl: unknown command %q\n", name)
		printUsage(stderr)
		return 2
	}
	cmd := commands[i]
	s, err := newStack()
	if err != nil {
		fmt.Fprintf(stderr, "stackctl: %v\n", err)
		return 1
	}
	fs := flag.NewFlagSet("stackctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: stackctl %s %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
		if hasFlags(fs) {
			fmt.Fprintln(stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	execute := cmd.setup(fs, s, stdout)
	if err := fs.Parse(global.Args()[1:]); err != nil {
		return parseExitCode(err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := execute(ctx, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "stackctl %s: %v\n", cmd.name, err)
		if errors.As(err, new(usageError)) {
			fs.Usage()
			return 2
		}
		return 1
	}
	return 0
}

func parseExitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: stackctl [--version] COMMAND [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'stackctl COMMAND -h' for a command's flags.")
}

func setupUp(fs *flag.FlagSet, s *stack, stdout io.Writer) func(context.Context, []string) error {
	fs.StringVar(&s.opts.profile, "profile", s.opts.profile, "stack profile: "+profileDefault+" (plaintext Kafka, Temporal dev server) or "+profileSecure+
		" (Kafka with SASL_SSL, Temporal with TLS); remembered by later commands, and the stack's data is kept for one profile")
	fs.IntVar(&s.opts.taskManagers, "taskmanagers", s.opts.taskManagers, "number of Flink TaskManagers; remembered by later commands")
	fs.BoolVar(&s.opts.withPrometheus, "with-prometheus", s.opts.withPrometheus, "also run Prometheus (Debian package) scraping the stack; remembered by later commands")
	fs.BoolVar(&s.opts.withWorker, "with-worker", false, "also build and run bin/worker on task queue "+workerTaskQueue()+"; never implied by an earlier up")
	fs.BoolVar(&s.opts.withDrills, "with-drills", false, "also build and run bin/drillworker on task queue "+drillapi.TaskQueue+", which kills and restarts the stack's processes for fault drills; never implied by an earlier up")
	fs.DurationVar(&s.opts.readyTimeout, "timeout", s.opts.readyTimeout, "how long to wait for each component to be ready")
	onlyFlag(fs, s, "start")
	return func(ctx context.Context, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		return up(ctx, s, stdout)
	}
}

func setupDown(fs *flag.FlagSet, s *stack, _ io.Writer) func(context.Context, []string) error {
	onlyFlag(fs, s, "stop")
	return func(_ context.Context, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		return down(s)
	}
}

func setupStatus(fs *flag.FlagSet, s *stack, stdout io.Writer) func(context.Context, []string) error {
	asJSON := fs.Bool("json", false, "print one JSON object keyed by component")
	onlyFlag(fs, s, "check")
	return func(ctx context.Context, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		// The workers are shown once an up started them, also after they died.
		s.opts.withWorker = fileExists(s.pidFile(workerProcess))
		s.opts.withDrills = fileExists(s.pidFile(drillWorkerProcess))
		return status(ctx, s, *asJSON, stdout)
	}
}

func setupEnv(_ *flag.FlagSet, s *stack, stdout io.Writer) func(context.Context, []string) error {
	return func(_ context.Context, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		return printEnv(s, stdout)
	}
}

func setupLogs(_ *flag.FlagSet, s *stack, stdout io.Writer) func(context.Context, []string) error {
	return func(_ context.Context, args []string) error {
		if len(args) > 1 {
			return usageError{fmt.Errorf("want at most one process name, got %q", args)}
		}
		return logs(s, args, stdout)
	}
}

func setupInstall(fs *flag.FlagSet, s *stack, _ io.Writer) func(context.Context, []string) error {
	// Not remembered: installing only fills the cache, so a test run can
	// build the secure profile's Temporal server while the default stack
	// is still in use.
	fs.StringVar(&s.opts.profile, "profile", s.opts.profile, "the profile whose components to install: "+profileDefault+" or "+profileSecure)
	onlyFlag(fs, s, "install")
	return func(ctx context.Context, args []string) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if err := checkProfile(s.opts.profile); err != nil {
			return usageError{err}
		}
		return install(ctx, s)
	}
}

// setupKafkaClass takes no flags of its own: everything after the class
// name is the class's.
func setupKafkaClass(_ *flag.FlagSet, s *stack, _ io.Writer) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usageError{errors.New("want a main class, e.g. org.apache.kafka.tools.ProducerPerformance")}
		}
		return kafkaClass(ctx, s, args)
	}
}

// onlyFlag registers --only, which narrows a command to named components.
func onlyFlag(fs *flag.FlagSet, s *stack, verb string) {
	known := componentNames()
	fs.Func("only", "comma-separated components to "+verb+" ("+strings.Join(known, ",")+"); all when empty", func(v string) error {
		s.opts.only = splitNames(v)
		for _, name := range s.opts.only {
			if !slices.Contains(known, name) {
				return fmt.Errorf("unknown component %q", name)
			}
		}
		return nil
	})
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", args[0])}
	}
	return nil
}

func splitNames(s string) []string {
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
