package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Stack profiles. The default one is the quick local stack: plaintext
// Kafka, the Temporal dev server. The secure one is run like a production
// cluster: Kafka speaks SASL_SSL (SCRAM users and certificates made by
// stackctl) and Temporal serves TLS, so that every client's security
// settings are exercised for real.
const (
	profileDefault = "default"
	profileSecure  = "secure"
)

var profiles = []string{profileDefault, profileSecure}

func checkProfile(name string) error {
	if !slices.Contains(profiles, name) {
		return fmt.Errorf("unknown profile %q; want %s", name, strings.Join(profiles, " or "))
	}
	return nil
}

func (s *stack) secure() bool { return s.opts.profile == profileSecure }

// profileFile records which profile the stack's data was made for. Unlike
// the saved options it outlives down: Kafka's SCRAM users are written at
// format time, so a data dir belongs to one profile for good.
func (s *stack) profileFile() string { return filepath.Join(s.dir, "data", "profile") }

// dataProfile is the profile the stack's data was made for; "" when there
// is none yet. Kafka storage formatted before profiles existed is the
// default profile's.
func (s *stack) dataProfile() (string, error) {
	raw, err := os.ReadFile(s.profileFile())
	if err == nil {
		return strings.TrimSpace(string(raw)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read the stack's profile: %w", err)
	}
	for node := 1; node <= kafkaNodes; node++ {
		if fileExists(filepath.Join(kafkaLogDir(s, node), "meta.properties")) {
			return profileDefault, nil
		}
	}
	return "", nil
}

// claimDataProfile ties the stack's data to s's profile, refusing data made
// for another one: switching would need Kafka formatted afresh, which
// loses the data, and that is the user's call, not stackctl's.
func (s *stack) claimDataProfile() error {
	if err := checkProfile(s.opts.profile); err != nil {
		return err
	}
	have, err := s.dataProfile()
	if err != nil {
		return err
	}
	if have != "" && have != s.opts.profile {
		return fmt.Errorf("the stack in %s was made for profile %q, not %q (Kafka's users and certificates are made when its storage is formatted); "+
			"keep its data and run profile %q in a stack dir of its own (FLOWPROOF_STACK_DIR=%s), or run `stackctl down` and remove %s to start afresh (its data is lost)",
			s.dir, have, s.opts.profile, s.opts.profile, s.profileStackDir(have, s.opts.profile), filepath.Join(s.dir, "data"))
	}
	if have == s.opts.profile && fileExists(s.profileFile()) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.profileFile()), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(s.profileFile(), []byte(s.opts.profile+"\n"), 0o644); err != nil {
		return fmt.Errorf("record the stack's profile: %w", err)
	}
	return nil
}

// profileStackDir suggests a stack dir for profile want beside s's, which
// holds profile have: the secure profile's is the default one's with
// "-secure" appended (as make test-secure and make demo PROFILE=secure
// use), and back.
func (s *stack) profileStackDir(have, want string) string {
	if want == profileDefault {
		if dir, ok := strings.CutSuffix(s.dir, "-"+have); ok {
			return dir
		}
	}
	return s.dir + "-" + want
}
