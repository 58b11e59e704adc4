// Command starter starts and follows flowproof runs and manages the nightly
// schedule:
//
//	starter start [input flags]        start a PipelineWorkflow and print its UI link
//	starter run [input flags] [--json] start, follow with a progress bar, print the result
//	starter status ID                  describe a run, its progress or its result
//	starter schedule create|list|trigger|delete
//	starter setup [--schedule]         prepare a namespace: search attributes, workers, schedule
//	starter cleanup [--dry-run]          remove what finished runs left behind
//	starter drill NAME... | --all        run fault drills on the local stack
//	starter report ID --html FILE       write a run's result as an HTML report with charts
//	starter history [--schedule ID] [--status S] [--json]   list past runs with their key figures
//	starter compare RUN [--baseline N] [--tolerance F=P%] [--junit FILE]   judge a run against its baseline
//
// The Temporal connection follows Temporal's conventions (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE) and
// defaults to the local stack. See docs/running.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/temporalclient"
	"github.com/flowproof/flowproof/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the command line and returns the exit code: 0 on success, 2
// for invalid usage, 1 for a failed operation or a run that did not succeed,
// 130 when interrupted while following a run.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Commands take ctx from cmd.Context(), which cobra sets from ExecuteContextC.
	root := newRootCommand(stdout, stderr) //nolint:contextcheck // see above
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var exit exitError
	if errors.As(err, &exit) {
		if exit.err != nil {
			fmt.Fprintf(stderr, "starter: %v\n", exit.err)
		}
		return exit.code
	}
	fmt.Fprintf(stderr, "starter: %v\n", err)
	var usage usageError
	if errors.As(err, &usage) || isCobraUsageError(err) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	}
	return 1
}

// usageError is a mistake on the command line.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError ends the program with code after err (if any) is printed.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

// isCobraUsageError recognises cobra's own argument errors, which it does
// not type.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// app holds what every subcommand shares: the connection flags and the
// output streams.
type app struct {
	stdout, stderr io.Writer

	temporal  temporalclient.Overrides
	uiURL     string
	taskQueue string
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "starter",
		Short: "Start, follow and schedule flowproof pipeline runs on Temporal",
		Long: `starter starts flowproof's PipelineWorkflow, follows its progress and manages the
nightly schedule. A worker (bin/worker) must be running on the same task queue.

The Temporal connection is configured like the temporal CLI: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_* and TEMPORAL_PROFILE, or the
--address and --namespace flags; the default is the local stack.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usagef("a command is required")
		},
	}
	root.Version = version.String("starter")
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.DisableDefaultCmd = true

	local := localstack.FromEnv()
	pf := root.PersistentFlags()
	pf.StringVar(&a.temporal.Address, "address", "", "Temporal frontend host:port (default: $TEMPORAL_ADDRESS, the temporal.toml profile, or "+local.TemporalAddress+")")
	pf.StringVar(&a.temporal.Namespace, "namespace", "", "Temporal namespace (default: $TEMPORAL_NAMESPACE, the temporal.toml profile, or "+localstack.TemporalNamespace+")")
	pf.StringVar(&a.uiURL, "ui-url", local.TemporalUIURL, "Temporal Web UI base URL for printed links ($"+localstack.EnvTemporalUIURL+")")
	pf.StringVar(&a.taskQueue, "task-queue", localstack.TaskQueue, "task queue of the flowproof worker")

	root.AddCommand(a.startCommand(), a.runCommand(), a.statusCommand(), a.scheduleCommand(), a.cleanupCommand(), a.drillCommand(), a.setupCommand(),
		a.reportCommand(), a.historyCommand(), a.compareCommand())
	return root
}

// noArgs rejects positional arguments as a usage error, which for a command
// with subcommands means an unknown subcommand.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return usagef("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
}

// exactArgs wants n positional arguments, named in the error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s wants %s, got %d argument(s)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

// dial connects to Temporal. The SDK's log lines go to stderr at warning
// level and above, so that stdout keeps only the command's output.
func (a *app) dial(ctx context.Context) (client.Client, string, error) {
	if a.taskQueue == "" {
		return nil, "", usagef("--task-queue: must not be empty")
	}
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.Lock(zapcore.AddSync(a.stderr)), zapcore.WarnLevel)
	opts, err := temporalclient.Options(a.temporal, temporalclient.Logger(zap.New(core)))
	if err != nil {
		return nil, "", err
	}
	c, err := temporalclient.Dial(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	return c, opts.Namespace, nil
}
