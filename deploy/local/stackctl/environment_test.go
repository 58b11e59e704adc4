package main

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowproof/flowproof/internal/endpointapi"
	"github.com/flowproof/flowproof/internal/localstack"
)

// environOf reads a running process's environment from /proc. Right after
// start the child may not have exec'd yet, and its environ then reads
// empty (seen under load in make test): it is read again until it is not,
// for up to 5 s; every process these tests start gets at least PATH.
func environOf(t *testing.T, pid int) []string {
	t.Helper()
	var raw []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		raw, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 0 || time.Now().After(deadline) {
			break
		}
	}
	var env []string
	for _, kv := range bytes.Split(raw, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env
}

func TestStartedProcessGetsOnlyTheEnvironmentItNeeds(t *testing.T) {
	t.Setenv("FLOWPROOF_TEST_LEAK", "1")
	t.Setenv(endpointapi.EnvAdminToken, "stackctl's own admin token")
	t.Setenv("OWN_SETTING_X", "inherited")
	s := testStack(t)
	p := process{
		name:    "environment-probe",
		argv:    []string{"sleep", "30"},
		env:     []string{"PROBE_OWN=1"},
		inherit: []string{"OWN_SETTING_*"},
	}
	if err := s.start(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.stop(p.name, time.Second) })
	pid, ok := s.running(p.name)
	if !ok {
		t.Fatal("probe is not running")
	}
	env := environOf(t, pid)
	for _, kv := range env {
		if strings.HasPrefix(kv, "FLOWPROOF_TEST_LEAK=") || strings.HasPrefix(kv, endpointapi.EnvAdminToken+"=") {
			t.Errorf("started process inherited %s", kv)
		}
	}
	for _, want := range []string{"PATH=" + os.Getenv("PATH"), "PROBE_OWN=1", "OWN_SETTING_X=inherited"} {
		if !slices.Contains(env, want) {
			t.Errorf("started process's environment %q lacks %q", env, want)
		}
	}
}

func TestEachReferenceServiceGetsOnlyItsOwnCredential(t *testing.T) {
	s := testStack(t)
	procs := refsvcProcesses(s, "the-client-secret", "the-admin-token")
	for _, p := range procs {
		if strings.Contains(strings.Join(p.argv, " "), "the-") {
			t.Errorf("%s: a credential is on the command line %q", p.name, p.argv)
		}
	}
	token, endpoint := procs[0].environment(nil), procs[1].environment(nil)
	if !slices.Contains(token, envClientSecret+"=the-client-secret") || slices.ContainsFunc(token, func(kv string) bool { return strings.Contains(kv, "the-admin-token") }) {
		t.Errorf("token service environment %q: want the client secret and no admin token", token)
	}
	if !slices.Contains(endpoint, endpointapi.EnvAdminToken+"=the-admin-token") || slices.ContainsFunc(endpoint, func(kv string) bool { return strings.Contains(kv, "the-client-secret") }) {
		t.Errorf("endpoint environment %q: want the admin token and no client secret", endpoint)
	}
	workerSpec, err := workerProcessSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	// The secure profile's settings, left in a shell that sourced its env,
	// must not reach the default profile's worker.
	worker := workerSpec.environment([]string{endpointapi.EnvAdminToken + "=x", "FLOWPROOF_TOKEN_CLIENT_SECRET=y", "AWS_SECRET_ACCESS_KEY=z",
		"TEMPORAL_TLS=true", "FLOWPROOF_KAFKA_SASL_PASSWORD=secure-profile-password"})
	want := slices.Concat([]string{"FLOWPROOF_TOKEN_CLIENT_SECRET=y", EnvStackProfile + "=" + profileDefault, localstack.EnvStackDir + "=" + s.dir},
		lessGCEnvironment, []string{workerMemoryLimit})
	if !slices.Equal(worker, want) {
		t.Errorf("worker environment %q, want %q: its token client secret, the stack's profile and its GC settings", worker, want)
	}
}

func TestAdminTokenIsGeneratedOnceAndPrivate(t *testing.T) {
	s := testStack(t)
	path := adminTokenFile(s)
	first, err := ensureAdminToken(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || len(first) < endpointapi.MinAdminTokenBytes {
		t.Errorf("admin token file mode %v, token %d bytes", info.Mode().Perm(), len(first))
	}
	again, err := ensureAdminToken(path)
	if err != nil || again != first {
		t.Errorf("second ensureAdminToken = %v, changed the token: %v", err, again != first)
	}
	t.Setenv(endpointapi.EnvAdminToken, "")
	if loaded, err := endpointapi.LoadAdminToken(s.dir); err != nil || loaded != first {
		t.Errorf("LoadAdminToken = %v, does not find the token stackctl wrote", err)
	}
}
