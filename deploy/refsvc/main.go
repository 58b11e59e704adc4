// Command refsvc runs the reference services that flowproof's pipeline talks
// to: an OAuth2 client-credentials token service and an HTTP batch endpoint
// that accepts messages under those tokens. Each subcommand is its own
// process; they share only the signing key file.
//
//	refsvc token-service --signing-key-file PATH [flags]
//	refsvc endpoint      --signing-key-file PATH [flags]
//
// Every flag can also be set by an environment variable named
// REFSVC_<SUBCOMMAND>_<FLAG> (upper case, dashes as underscores), e.g.
// REFSVC_ENDPOINT_ERROR_RATE=0.1; a flag on the command line wins. The
// client secret is read only from FLOWPROOF_TOKEN_CLIENT_SECRET and the
// endpoint's admin token only from FLOWPROOF_ENDPOINT_ADMIN_TOKEN, and the
// endpoint's Redis password from the file --redis-password-file names, so
// that none shows in a process list. See docs/reference-services.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flowproof/flowproof/deploy/refsvc/endpoint"
	"github.com/flowproof/flowproof/deploy/refsvc/internal/httpx"
	"github.com/flowproof/flowproof/deploy/refsvc/tokens"
	"github.com/flowproof/flowproof/deploy/refsvc/tokenservice"
	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/localstack"
	"github.com/flowproof/flowproof/internal/version"
)

// EnvClientSecret holds the token service's client secret; its clients
// read the same variable.
const EnvClientSecret = localstack.EnvTokenClientSecret

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns the exit code: 0 after a clean shutdown, -h or --version, 2
// for a wrong command line, 1 when a service failed.
func run(args []string) int {
	if len(args) == 0 {
		usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd := args[0]; cmd {
	case "token-service":
		err = runTokenService(ctx, args[1:])
	case "endpoint":
		err = runEndpoint(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		usage()
		return 0
	case "-version", "--version":
		fmt.Println(version.String("refsvc"))
		return 0
	default:
		fmt.Fprintf(os.Stderr, "refsvc: unknown subcommand %q\n", cmd)
		usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "refsvc %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: refsvc token-service|endpoint [flags]   (refsvc SUBCOMMAND -h lists the flags)\n       refsvc --version")
}

// common are the flags both subcommands have.
type common struct {
	listen         string
	signingKeyFile string
	logLevel       zapcore.Level
	shutdownGrace  time.Duration
}

func (c *common) register(fs *flag.FlagSet, defaultListen string) {
	fs.StringVar(&c.listen, "listen", defaultListen, "address to listen on")
	fs.StringVar(&c.signingKeyFile, "signing-key-file", "", "file holding the base64 HS256 signing key shared by both services (mode 0600; required)")
	c.logLevel = zapcore.InfoLevel
	fs.Var(&c.logLevel, "log-level", "log level: debug (logs every request), info (the default), warn, error")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long requests in flight may take to finish on SIGTERM")
}

// parse applies REFSVC_<SUBCOMMAND>_<FLAG> environment variables and then the
// command line.
func parse(fs *flag.FlagSet, args []string) error {
	prefix := "REFSVC_" + envName(fs.Name()) + "_"
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := prefix + envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("environment variable %s: %w", name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fs.Parse(args)
}

func envName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

func newLogger(service string, level zapcore.Level) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeDuration = zapcore.StringDurationEncoder
	cfg.OutputPaths, cfg.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log.With(zap.String("service", service)), nil
}

func loadKey(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("--signing-key-file is required")
	}
	return tokens.LoadKey(path)
}

func runTokenService(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("token-service", flag.ExitOnError)
	var c common
	c.register(fs, fmt.Sprintf("%s:%d", localstack.Host, localstack.TokenServicePort))
	clientID := fs.String("client-id", localstack.TokenClientID, "the client id allowed to get tokens (its secret comes from "+EnvClientSecret+")")
	defaultTTL := fs.Duration("default-ttl", tokenservice.DefaultTTL, "token lifetime when the client does not ask for less")
	maxTTL := fs.Duration("max-ttl", tokenservice.DefaultTTL, "longest lifetime a client may ask for with ttl_seconds")
	defaultQuota := fs.Int64("default-quota", tokenservice.DefaultQuota, "messages a token allows when the client does not ask")
	maxQuota := fs.Int64("max-quota", tokenservice.DefaultQuota, "largest quota a client may ask for with quota")
	if err := parse(fs, args); err != nil {
		return err
	}
	secret := os.Getenv(EnvClientSecret)
	if secret == "" {
		return fmt.Errorf("%s is not set; the token service needs a client secret", EnvClientSecret)
	}
	key, err := loadKey(c.signingKeyFile)
	if err != nil {
		return err
	}
	log, err := newLogger("token-service", c.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	handler, err := tokenservice.NewHandler(tokenservice.Config{
		ClientID:     *clientID,
		ClientSecret: secret,
		SigningKey:   key,
		DefaultTTL:   *defaultTTL,
		MaxTTL:       *maxTTL,
		DefaultQuota: *defaultQuota,
		MaxQuota:     *maxQuota,
	}, httpx.NewRegistry(), log)
	if err != nil {
		return err
	}
	log.Info("starting", zap.String("client_id", *clientID), zap.Duration("default_ttl", *defaultTTL),
		zap.Duration("max_ttl", *maxTTL), zap.Int64("default_quota", *defaultQuota), zap.Int64("max_quota", *maxQuota))
	return serve(ctx, c, handler, log)
}

func runEndpoint(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("endpoint", flag.ExitOnError)
	var c common
	c.register(fs, fmt.Sprintf("%s:%d", localstack.Host, localstack.EndpointPort))
	leeway := fs.Duration("leeway", 0, "clock skew tolerated when checking a token's expiry")
	maxBatch := fs.Int("max-batch-messages", endpoint.DefaultMaxBatchMessages, "largest batch accepted")
	maxBody := fs.Int64("max-body-bytes", endpoint.DefaultMaxBodyBytes, "largest request body accepted")
	idemTTL := fs.Duration("idempotency-ttl", endpoint.DefaultIdempotencyTTL, "how long an accepted batch's response is kept for retries")
	redisAddr := fs.String("redis-addr", localstack.RedisAddress(), "host:port of the Redis that keeps accepted batches, quota use and run figures")
	redisPasswordFile := fs.String("redis-password-file", "", "file holding the Redis password (mode 0600); no AUTH when empty")
	keyPrefix := fs.String("redis-key-prefix", endpoint.DefaultKeyPrefix, "prefix of every key the endpoint writes to Redis")
	var faults endpointapi.Faults
	fs.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of batch requests answered with --error-status")
	fs.IntVar(&faults.ErrorStatus, "error-status", 503, "status of an injected error")
	fs.Float64Var(&faults.ThrottleRate, "throttle-rate", 0, "fraction of batch requests answered 429 with Retry-After")
	fs.IntVar(&faults.RetryAfterSeconds, "retry-after-seconds", 1, "Retry-After of an injected 429")
	fs.IntVar(&faults.LatencyMillis, "latency-ms", 0, "latency added to every batch request")
	fs.Float64Var(&faults.LostResponseRate, "lost-response-rate", 0, "fraction of batches accepted but answered with --error-status")
	if err := parse(fs, args); err != nil {
		return err
	}
	key, err := loadKey(c.signingKeyFile)
	if err != nil {
		return err
	}
	redisPassword, err := loadSecretFile(*redisPasswordFile)
	if err != nil {
		return fmt.Errorf("redis password: %w", err)
	}
	log, err := newLogger("endpoint", c.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	redis.SetLogger(redisLogger{log.Named("redis")})
	handler, ep, err := endpoint.NewHandler(endpoint.Config{
		SigningKey:       key,
		Leeway:           *leeway,
		MaxBatchMessages: *maxBatch,
		MaxBodyBytes:     *maxBody,
		IdempotencyTTL:   *idemTTL,
		Redis:            redis.NewClient(&redis.Options{Addr: *redisAddr, Password: redisPassword}),
		KeyPrefix:        *keyPrefix,
		Faults:           faults,
		AdminToken:       os.Getenv(endpointapi.EnvAdminToken),
	}, httpx.NewRegistry(), log)
	if err != nil {
		return err
	}
	f := ep.Faults("")
	log.Info("starting", zap.Int("max_batch_messages", *maxBatch), zap.Duration("idempotency_ttl", *idemTTL),
		zap.String("redis", *redisAddr), zap.Bool("admin_api_open", os.Getenv(endpointapi.EnvAdminToken) != ""),
		zap.Float64("error_rate", f.ErrorRate), zap.Float64("throttle_rate", f.ThrottleRate),
		zap.Int("latency_ms", f.LatencyMillis), zap.Float64("lost_response_rate", f.LostResponseRate))
	serveErr := serve(ctx, c, handler, log)
	if err := ep.Close(); err != nil {
		log.Error("close redis client", zap.Error(err))
		return errors.Join(serveErr, err)
	}
	return serveErr
}

// redisLogger puts go-redis's own messages (a pool that cannot dial, say)
// into the endpoint's JSON log.
type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}

// loadSecretFile reads a secret kept in a file readable by its owner only;
// "" for no path.
func loadSecretFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %v; it must be readable by its owner only (0600)", path, info.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	secret := strings.TrimSpace(string(raw))
	if secret == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return secret, nil
}

func serve(ctx context.Context, c common, handler http.Handler, log *zap.Logger) error {
	if err := httpx.Serve(ctx, c.listen, handler, c.shutdownGrace, log); err != nil {
		log.Error("server failed", zap.Error(err))
		return err
	}
	return nil
}
