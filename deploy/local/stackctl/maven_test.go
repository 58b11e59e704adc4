package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeMaven puts an mvn on PATH that counts its calls in calls and, like
// dependency:copy-dependencies, writes jars into -DoutputDirectory; with
// fail set it fails instead.
func fakeMaven(t *testing.T, fail bool) (calls string) {
	t.Helper()
	bin := t.TempDir()
	calls = filepath.Join(t.TempDir(), "calls")
	script := `#!/bin/sh
echo "$*" >> "` + calls + `"
if [ "` + map[bool]string{true: "1", false: "0"}[fail] + `" = 1 ]; then echo "[ERROR] Could not resolve dependencies"; exit 1; fi
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac
done
mkdir -p "$out" && touch "$out/b-1.0.jar" "$out/a-2.0.jar"
`
	writeFile(t, filepath.Join(bin, "mvn"), script)
	if err := os.Chmod(filepath.Join(bin, "mvn"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return calls
}

func mavenCalls(t *testing.T, calls string) int {
	t.Helper()
	raw, err := os.ReadFile(calls)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(raw), "\n")
}

func TestResolveJarsOncePerPomContent(t *testing.T) {
	s := testStack(t)
	calls := fakeMaven(t, false)
	pom := filepath.Join(s.repoDir, "deploy", "x", "pom.xml")
	if err := os.MkdirAll(filepath.Dir(pom), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, pom, "<project>v1</project>")

	dir, err := s.resolveJars(t.Context(), "x", "deploy/x/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dir, filepath.Join(s.cacheDir, "jars", "x-")) {
		t.Errorf("jar dir %s is not under the cache", dir)
	}
	raw, _ := os.ReadFile(calls)
	for _, want := range []string{"-f " + pom, "dependency:copy-dependencies", "-DincludeScope=runtime"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("mvn called with %q; want %q in it", raw, want)
		}
	}
	cp, err := classpath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "a-2.0.jar") + ":" + filepath.Join(dir, "b-1.0.jar"); cp != want {
		t.Errorf("classpath %q, want %q", cp, want)
	}

	again, err := s.resolveJars(t.Context(), "x", "deploy/x/pom.xml")
	if err != nil || again != dir || mavenCalls(t, calls) != 1 {
		t.Errorf("unchanged pom: dir %s (was %s), %d mvn calls, err %v; want the cached dir and no new call", again, dir, mavenCalls(t, calls), err)
	}

	writeFile(t, pom, "<project>v2</project>")
	changed, err := s.resolveJars(t.Context(), "x", "deploy/x/pom.xml")
	if err != nil || changed == dir || mavenCalls(t, calls) != 2 {
		t.Errorf("changed pom: dir %s (was %s), %d mvn calls, err %v; want a new dir and call", changed, dir, mavenCalls(t, calls), err)
	}
}

func TestResolveJarsFailureCachesNothing(t *testing.T) {
	s := testStack(t)
	fakeMaven(t, true)
	if err := os.MkdirAll(filepath.Join(s.repoDir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.repoDir, "deploy", "pom.xml"), "<project/>")
	_, err := s.resolveJars(t.Context(), "x", "deploy/pom.xml")
	if err == nil || !strings.Contains(err.Error(), "Could not resolve dependencies") {
		t.Fatalf("err = %v; want mvn's output in it", err)
	}
	if complete, _ := filepath.Glob(filepath.Join(s.cacheDir, "jars", "*", ".complete")); len(complete) > 0 {
		t.Errorf("a failed resolution left %v", complete)
	}
}

func TestClasspathOfAnEmptyDirIsAnError(t *testing.T) {
	if _, err := classpath(t.TempDir()); err == nil {
		t.Error("classpath of a dir without jars succeeded")
	}
}

func TestLastLines(t *testing.T) {
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("lastLines = %q", got)
	}
	if got := lastLines("a\n", 5); got != "a" {
		t.Errorf("lastLines = %q", got)
	}
}

// pom is the part of a Maven pom the pinning check reads.
type pom struct {
	Properties struct {
		Entries []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"properties"`
	Dependencies []struct {
		GroupID    string `xml:"groupId"`
		ArtifactID string `xml:"artifactId"`
		Version    string `xml:"version"`
	} `xml:"dependencies>dependency"`
}

var pinnedVersion = regexp.MustCompile(`^\d+(\.\d+)*(-[0-9.]+)?$`)

// The jar cache is keyed by the pom's content, which only works while
// every version in it is exact.
func TestStackPomsPinEveryVersion(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{kafkaPom, flinkPom} {
		raw, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		var p pom
		if err := xml.Unmarshal(raw, &p); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		props := map[string]string{}
		for _, e := range p.Properties.Entries {
			props["${"+e.XMLName.Local+"}"] = strings.TrimSpace(e.Value)
		}
		if len(p.Dependencies) == 0 {
			t.Errorf("%s has no dependencies", rel)
		}
		for _, d := range p.Dependencies {
			version := d.Version
			if v, ok := props[version]; ok {
				version = v
			}
			if !pinnedVersion.MatchString(version) {
				t.Errorf("%s: %s:%s has version %q (%q); want an exact release", rel, d.GroupID, d.ArtifactID, d.Version, version)
			}
		}
	}
}
