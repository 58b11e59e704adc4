package endpoint

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// journal is an append-only file of accepted batches, so that a restarted
// endpoint keeps its promises: batch numbers go on increasing, a token's used
// quota stays used, and a retry of a batch accepted before the restart is
// still answered from the idempotency store instead of creating a duplicate.
//
// Each accepted batch is one JSON line, written before the client is
// answered. Lines are not fsynced: the journal survives the endpoint process
// being killed, not the machine losing power.
type journal struct {
	mu   sync.Mutex
	file *os.File
}

// journalRecord is one accepted batch.
type journalRecord struct {
	AcceptedAt  int64           `json:"accepted_at_ms"`
	BatchNumber int64           `json:"batch_number"`
	TokenID     string          `json:"jti"`
	TokenExpiry int64           `json:"token_exp"` // unix seconds
	Messages    int64           `json:"messages"`
	Key         string          `json:"key,omitempty"` // scoped Idempotency-Key
	Fingerprint []byte          `json:"fingerprint,omitempty"`
	Response    json.RawMessage `json:"response,omitempty"` // only when Key is set
}

// openJournal replays path into the endpoint's state and reopens it for
// appending. Replay drops what can no longer matter (expired tokens,
// expired idempotency entries) and rewrites the file without it, so the
// journal does not grow across restarts.
func openJournal(path string, e *Endpoint) (*journal, error) {
	live, err := replayJournal(path, e)
	if err != nil {
		return nil, err
	}
	tmp := path + ".compact"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, rec := range live {
		line, err := json.Marshal(rec)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("journal: encode record: %w", err)
		}
		// A bufio.Writer keeps its first error and Flush returns it.
		_, _ = w.Write(line)
		_ = w.WriteByte('\n')
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("journal: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &journal{file: file}, nil
}

func replayJournal(path string, e *Endpoint) ([]journalRecord, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	now := e.cfg.Now()
	var live []journalRecord
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 0, 1<<20), int(e.cfg.MaxBodyBytes)*4)
	for lineNo := 1; scanner.Scan(); lineNo++ {
		var rec journalRecord
		if err := json.Unmarshal(scanner.Bytes(), &rec); err != nil {
			// A line cut short by a kill mid-write is the last one; anything
			// else means the file is not ours or is damaged.
			if !scanner.Scan() {
				e.log.Sugar().Warnf("journal %s: ignoring incomplete last line %d", path, lineNo)
				break
			}
			return nil, fmt.Errorf("journal %s line %d: %w", path, lineNo, err)
		}
		if rec.BatchNumber > e.batchNumber.Load() {
			e.batchNumber.Store(rec.BatchNumber)
		}
		tokenExpiry := time.Unix(rec.TokenExpiry, 0)
		tokenLive := now.Before(tokenExpiry.Add(e.cfg.Leeway))
		if tokenLive {
			e.quota.add(rec.TokenID, rec.Messages, tokenExpiry)
		}
		acceptedAt := time.UnixMilli(rec.AcceptedAt)
		keyLive := rec.Key != "" && now.Before(acceptedAt.Add(e.cfg.IdempotencyTTL))
		if keyLive && len(rec.Fingerprint) == 32 {
			e.idempotency.restore(rec.Key, [32]byte(rec.Fingerprint), rec.Response, acceptedAt)
		}
		if tokenLive || keyLive {
			live = append(live, rec)
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	// Keep the highest batch number even when its record expired, so that
	// numbers keep increasing after the compaction drops it.
	if n := e.batchNumber.Load(); n > 0 && (len(live) == 0 || live[len(live)-1].BatchNumber != n) {
		live = append(live, journalRecord{AcceptedAt: now.UnixMilli(), BatchNumber: n})
	}
	return live, nil
}

func (j *journal) append(rec journalRecord) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("journal: encode record: %w", err)
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.file.Write(line); err != nil {
		return fmt.Errorf("journal: append: %w", err)
	}
	return nil
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.file.Close()
}
