package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowproof/flowproof/internal/health"
	"github.com/flowproof/flowproof/internal/localstack"
)

// postgresBinaries is where Debian's postgresql package puts the server's
// programs, one directory per major version.
const postgresBinaries = "/usr/lib/postgresql/*/bin/postgres"

// postgresSystemUser is the system user Debian's package creates;
// PostgreSQL refuses to run as root, so stackctl run as root runs it as
// this user.
const postgresSystemUser = "postgres"

// postgresSuperuser is the bootstrap superuser initdb makes. Only the
// Unix socket, in a directory no one but root and postgresSystemUser can
// enter, admits it without a password: stackctl creates the Temporal role
// through it, and nothing else uses it.
const postgresSuperuser = "postgres"

// temporalDatabases are the databases Temporal's schema tool creates, in
// the order they are set up: persistence, then visibility.
var temporalDatabases = []string{"temporal", "temporal_visibility"}

// postgres runs Debian's PostgreSQL as the secure profile's Temporal
// store: bound to 127.0.0.1 on its own port, its data under the stack dir,
// the Temporal server logging in as localstack.PostgresUser with a
// password generated once into the stack dir.
//
//	data/postgres/temporal.password  the Temporal role's password (root, 0600)
//	data/postgres/pgdata/            the cluster (postgresSystemUser, 0700), also its socket
type postgres struct{}

const postgresProcess = "postgres"

func (postgres) name() string { return "postgres" }

func (postgres) install(ctx context.Context, _ *stack) error {
	if err := installDebianPackage(ctx, "postgresql", postgresBinaries); err != nil {
		return err
	}
	// setfacl lets the postgres user reach a stack dir below a closed
	// directory (see letPostgresThrough).
	return installDebianPackage(ctx, "acl", setfaclBinary)
}

func (postgres) processes(*stack) []string { return []string{postgresProcess} }

func postgresAddr() string { return fmt.Sprintf("%s:%d", localstack.Host, localstack.PostgresPort) }

func postgresDataDir(s *stack) string { return filepath.Join(s.dataDir("postgres"), "pgdata") }

// postgresBinDir is the bin directory of the newest installed major
// version.
func postgresBinDir() (string, error) {
	matches, _ := filepath.Glob(postgresBinaries)
	if len(matches) == 0 {
		return "", fmt.Errorf("no PostgreSQL server at %s; run `stackctl install`", postgresBinaries)
	}
	major := func(path string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
		return n
	}
	newest := slices.MaxFunc(matches, func(a, b string) int { return major(a) - major(b) })
	return filepath.Dir(newest), nil
}

// postgresRunAs is the user PostgreSQL runs as: postgresSystemUser when
// stackctl runs as root, nil (stackctl's own user) otherwise.
func postgresRunAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(postgresSystemUser)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL cannot run as root and its system user is missing (Debian's postgresql package creates it): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", postgresSystemUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", postgresSystemUser, err)
	}
	// No supplementary groups: root's own (group root) must not come along.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (p postgres) start(ctx context.Context, s *stack) error {
	binDir, err := postgresBinDir()
	if err != nil {
		return err
	}
	runAs, err := postgresRunAs()
	if err != nil {
		return err
	}
	// The cluster's owner must be able to enter its data dir: the parent is
	// open to all, the password file in it is root's alone.
	if err := os.MkdirAll(s.dataDir("postgres"), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.dataDir("postgres"), err)
	}
	if err := os.Chmod(s.dataDir("postgres"), 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", s.dataDir("postgres"), err)
	}
	password, err := ensureSecretFile(localstack.PostgresPasswordFile(s.dir), "PostgreSQL password of the temporal role")
	if err != nil {
		return err
	}
	if runAs != nil {
		if err := letPostgresThrough(ctx, s.dataDir("postgres"), runAs); err != nil {
			return err
		}
	}
	if err := initPostgres(ctx, binDir, postgresDataDir(s), runAs); err != nil {
		return err
	}
	if err := writeOwned(filepath.Join(postgresDataDir(s), "pg_hba.conf"), postgresHBA(), runAs); err != nil {
		return err
	}
	if err := s.start(process{name: postgresProcess, argv: postgresArgv(binDir, postgresDataDir(s)), dir: postgresDataDir(s), user: runAs}); err != nil {
		return err
	}
	return ensureTemporalRole(ctx, s, password)
}

// postgresArgv is the server's command line: initdb's postgresql.conf,
// with what the stack needs on top.
func postgresArgv(binDir, dataDir string) []string {
	settings := [][2]string{
		{"listen_addresses", localstack.Host},
		{"port", strconv.Itoa(localstack.PostgresPort)},
		// The socket sits in the data dir (mode 0700), so only root and the
		// cluster's owner reach it, and stackctl finds it without knowing
		// Debian's /run/postgresql.
		{"unix_socket_directories", dataDir},
		{"hba_file", filepath.Join(dataDir, "pg_hba.conf")},
		// CREATE/ALTER ROLE carry the Temporal role's password; a failed
		// one must not be copied into the log.
		{"log_min_error_statement", "panic"},
		// One Temporal process runs four services, each with its own pools
		// (see temporalPersistence); the default 100 leaves room.
		{"max_connections", "100"},
		{"shared_buffers", "64MB"},
		// A commit returns before its WAL reaches the disk (the WAL writer
		// flushes within 600 ms): the Temporal server commits on every
		// workflow step, and on this shared disk each flush queued behind
		// Kafka's writes and the KRaft controllers' own fsyncs. A crash of
		// the machine may lose the last commits of this throwaway local
		// store; it never corrupts it.
		{"synchronous_commit", "off"},
	}
	argv := []string{filepath.Join(binDir, "postgres"), "-D", dataDir}
	for _, kv := range settings {
		argv = append(argv, "-c", kv[0]+"="+kv[1])
	}
	return argv
}

// postgresHBA admits the superuser on the socket alone and the Temporal
// role over TCP from loopback with its password (SCRAM).
func postgresHBA() string {
	return "# Written by flowproof stackctl on every `up`; edits are overwritten.\n" +
		"local all " + postgresSuperuser + " trust\n" +
		"host all " + localstack.PostgresUser + " 127.0.0.1/32 scram-sha-256\n"
}

// initPostgres creates the cluster unless it exists. initdb writes into a
// scratch dir renamed into place when complete, so an interrupted initdb
// never passes for a cluster.
func initPostgres(ctx context.Context, binDir, dataDir string, runAs *syscall.Credential) error {
	if fileExists(filepath.Join(dataDir, "PG_VERSION")) {
		return nil
	}
	scratch := dataDir + ".partial"
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("remove %s: %w", scratch, err)
	}
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", scratch, err)
	}
	if runAs != nil {
		if err := os.Chown(scratch, int(runAs.Uid), int(runAs.Gid)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", scratch, postgresSystemUser, err)
		}
	}
	logf("creating the PostgreSQL cluster in %s", dataDir)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", scratch, "-U", postgresSuperuser, "-E", "UTF8", "--locale=C",
		"--auth-local=trust", "--auth-host=scram-sha-256")
	cmd.Dir = scratch
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, lastLines(string(out), 20))
	}
	if err := os.Rename(scratch, dataDir); err != nil {
		return fmt.Errorf("move the new cluster into place: %w", err)
	}
	return nil
}

// writeOwned writes a config file of the cluster, owned by the cluster's
// user and readable by it alone.
func writeOwned(path, content string, runAs *syscall.Credential) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if runAs == nil {
		return nil
	}
	if err := os.Chown(path, int(runAs.Uid), int(runAs.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// setfaclBinary is where Debian's acl package puts setfacl.
const setfaclBinary = "/usr/bin/setfacl"

// letPostgresThrough makes sure the cluster's owner can reach dir: a stack
// under root's home (mode 0700) is out of its reach, and PostgreSQL would
// only say "permission denied" at start. A directory above dir that stops
// the user gets an ACL entry that lets that user alone pass (search, not
// list), rather than opening the directory to everyone.
func letPostgresThrough(ctx context.Context, dir string, runAs *syscall.Credential) error {
	canEnter := func(d string) bool {
		// test -x on a directory needs search permission on it and on
		// every directory above, as the user sees them (ACLs included).
		cmd := exec.CommandContext(ctx, "test", "-x", d)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
		return cmd.Run() == nil
	}
	grant := func(d string) error {
		entry := "u:" + postgresSystemUser + ":x"
		if out, err := exec.CommandContext(ctx, setfaclBinary, "-m", entry, d).CombinedOutput(); err != nil {
			return fmt.Errorf("setfacl -m %s %s: %w: %s", entry, d, err, strings.TrimSpace(string(out)))
		}
		logf("let the %s user pass through %s (ACL %s): the stack's PostgreSQL data is below it", postgresSystemUser, d, entry)
		return nil
	}
	return grantPassage(dir, canEnter, grant)
}

// grantPassage walks from the root down to dir and grants passage through
// each directory that canEnter refuses.
func grantPassage(dir string, canEnter func(string) bool, grant func(string) error) error {
	var chain []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	slices.Reverse(chain)
	for _, d := range chain {
		if canEnter(d) {
			continue
		}
		if err := grant(d); err != nil {
			return fmt.Errorf("PostgreSQL runs as the %s user, who cannot enter %s: put the stack elsewhere (FLOWPROOF_STACK_DIR) or let the user through: %w",
				postgresSystemUser, d, err)
		}
		if !canEnter(d) {
			return fmt.Errorf("PostgreSQL runs as the %s user, who cannot enter %s even with an ACL: put the stack elsewhere (FLOWPROOF_STACK_DIR)",
				postgresSystemUser, d)
		}
	}
	return nil
}

// superuserConn connects through the Unix socket as the bootstrap
// superuser, waiting for a PostgreSQL that is starting.
func superuserConn(ctx context.Context, s *stack) (*pgx.Conn, error) {
	config, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	config.Host = postgresDataDir(s)
	config.Port = uint16(localstack.PostgresPort)
	config.User = postgresSuperuser
	config.Database = "postgres"
	config.ConnectTimeout = 2 * time.Second
	deadline := time.Now().Add(s.opts.readyTimeout)
	for {
		conn, err := pgx.ConnectConfig(ctx, config)
		if err == nil {
			return conn, nil
		}
		if _, ok := s.running(postgresProcess); !ok {
			return nil, fmt.Errorf("postgres exited; see %s: %w", s.logFile(postgresProcess), err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres not accepting connections after %s: %w", s.opts.readyTimeout, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ensureTemporalRole makes the Temporal role, or sets its password to the
// one in the stack's file, so that the file is always the truth. The role
// may create databases: Temporal's schema tool creates its own.
func ensureTemporalRole(ctx context.Context, s *stack, password string) error {
	conn, err := superuserConn(ctx, s)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", localstack.PostgresUser).Scan(&exists); err != nil {
		return fmt.Errorf("look up role %s: %w", localstack.PostgresUser, err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	// Role statements take no parameters; the password is quoted as a literal.
	literal, err := conn.PgConn().EscapeString(password)
	if err != nil {
		return fmt.Errorf("quote the password: %w", err)
	}
	statement := fmt.Sprintf("%s ROLE %s LOGIN CREATEDB PASSWORD '%s'", verb, pgx.Identifier{localstack.PostgresUser}.Sanitize(), literal)
	if _, err := conn.Exec(ctx, statement); err != nil {
		// The error names no part of the statement, so the password stays out.
		return fmt.Errorf("%s role %s: %w", strings.ToLower(verb), localstack.PostgresUser, err)
	}
	return nil
}

// temporalConn connects over TCP as the Temporal role with its password,
// as the Temporal server does.
func temporalConn(ctx context.Context, s *stack, database string) (*pgx.Conn, error) {
	password, err := localstack.PostgresPassword(s.dir)
	if err != nil {
		return nil, err
	}
	config, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	config.Host = localstack.Host
	config.Port = uint16(localstack.PostgresPort)
	config.User = localstack.PostgresUser
	config.Password = password
	config.Database = database
	config.ConnectTimeout = 5 * time.Second
	// No TLS on loopback; pgx would otherwise try it first and fall back.
	config.TLSConfig = nil
	config.Fallbacks = nil
	return pgx.ConnectConfig(ctx, config)
}

// check logs in as the Temporal role over TCP and asks for the server's
// version and which of Temporal's databases exist: that passes only for a
// server that accepts the role's password and answers queries.
func (postgres) check(ctx context.Context, s *stack) health.Result {
	start := time.Now()
	res := health.Result{Component: "postgres", Addresses: []string{postgresAddr()}}
	detail, err := postgresStatus(ctx, s)
	res.LatencyMillis = time.Since(start).Milliseconds()
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	res.Healthy, res.Detail = true, detail
	return res
}

func postgresStatus(ctx context.Context, s *stack) (string, error) {
	// The stack's own process must be alive: a PostgreSQL of another
	// stack dir on the same port would otherwise pass for this one.
	pid, ok := s.running(postgresProcess)
	if !ok {
		return "", fmt.Errorf("postgres process of this stack is not running (see %s)", s.logFile(postgresProcess))
	}
	if !listensOn(pid, localstack.PostgresPort) {
		return "", fmt.Errorf("postgres (pid %d) does not listen on port %d (yet); see %s", pid, localstack.PostgresPort, s.logFile(postgresProcess))
	}
	conn, err := temporalConn(ctx, s, "postgres")
	if err != nil {
		return "", fmt.Errorf("connect to %s as %s: %w", postgresAddr(), localstack.PostgresUser, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var version string
	var databases []string
	err = conn.QueryRow(ctx, "SELECT current_setting('server_version'), ARRAY(SELECT datname::text FROM pg_database WHERE datname = ANY($1) ORDER BY datname)",
		temporalDatabases).Scan(&version, &databases)
	if err != nil {
		return "", fmt.Errorf("query %s as %s: %w", postgresAddr(), localstack.PostgresUser, err)
	}
	return fmt.Sprintf("postgresql %s, login as %s, databases %s", version, localstack.PostgresUser, databaseList(databases)), nil
}

func databaseList(databases []string) string {
	if len(databases) == 0 {
		return "none yet"
	}
	return strings.Join(databases, ", ")
}
