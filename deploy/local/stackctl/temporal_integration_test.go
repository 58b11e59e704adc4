//go:build integration

package main

import (
	"io"
	"os"
	"testing"
)

// TestTemporalDevServerJournalsAhead reads the header of the running dev
// server's SQLite file: its read and write format versions (bytes 18 and
// 19) are 2 once the database is in WAL mode, 1 with the rollback journal.
// The CLI once accepted --sqlite-pragma without applying it
// (temporalio/cli#681), so the flag on the command line proves nothing.
func TestTemporalDevServerJournalsAhead(t *testing.T) {
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	if s.opts.profile != profileDefault {
		t.Skipf("the %s profile's Temporal server keeps its data in PostgreSQL", s.opts.profile)
	}
	if _, ok := s.running("temporal"); !ok {
		t.Fatal("temporal is not running: is the stack up (bin/stackctl status)?")
	}
	f, err := os.Open(temporal{}.databaseFile(s))
	if err != nil {
		t.Fatal(err)
	}
	header := make([]byte, 20)
	_, err = io.ReadFull(f, header)
	_ = f.Close() // read only
	if err != nil {
		t.Fatalf("read the database header: %v", err)
	}
	if string(header[:16]) != "SQLite format 3\x00" {
		t.Fatalf("temporal.db does not start with SQLite's header: %q", header[:16])
	}
	if header[18] != 2 || header[19] != 2 {
		t.Errorf("format versions %d/%d: the database is not in WAL mode (2/2)", header[18], header[19])
	}
}
