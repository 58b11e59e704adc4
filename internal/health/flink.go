package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowproof/flowproof/flinksql"
)

// flinkOptions: a check reports what it sees now, so a failed request is
// not retried; the caller decides whether and when to ask again.
var flinkOptions = flinksql.Options{RequestTimeout: 10 * time.Second, RetryMax: -1}

// flinkClients keeps one client per base URL, so that checks run every
// second reuse their connections.
var flinkClients = struct {
	sync.Mutex
	jobManagers map[string]*flinksql.JobManager
	gateways    map[string]*flinksql.Gateway
}{jobManagers: map[string]*flinksql.JobManager{}, gateways: map[string]*flinksql.Gateway{}}

// FlinkJobManager asks the JobManager's REST API at baseURL for its overview
// and its registered TaskManagers. It is healthy when at least
// wantTaskManagers TaskManagers are registered and some slot is free, i.e.
// when a new job could be scheduled, e.g.
// "flink 2.2.0, 3 TaskManagers, 12/12 slots free, 0 jobs running".
//
// The TaskManager list is read as well as the overview because the overview
// counts TaskManagers that the ResourceManager knows, and the list shows
// which ones they are when too few have registered.
func FlinkJobManager(ctx context.Context, baseURL string, wantTaskManagers int) Result {
	return run(ctx, "flink-jobmanager", []string{baseURL}, func(ctx context.Context) (string, error) {
		if wantTaskManagers < 1 {
			return "", fmt.Errorf("wantTaskManagers must be at least 1, got %d", wantTaskManagers)
		}
		jm, err := jobManager(baseURL)
		if err != nil {
			return "", err
		}
		overview, err := jm.Overview(ctx)
		if err != nil {
			return "", err
		}
		tms, err := jm.TaskManagers(ctx)
		if err != nil {
			return "", err
		}
		free, total := 0, 0
		ids := make([]string, 0, len(tms))
		for _, tm := range tms {
			free += tm.FreeSlots
			total += tm.SlotsNumber
			ids = append(ids, tm.ID)
		}
		slices.Sort(ids)
		seen := fmt.Sprintf("flink %s, %d TaskManagers, %d/%d slots free, %d jobs running",
			overview.FlinkVersion, len(tms), free, total, overview.JobsRunning)
		if len(tms) < wantTaskManagers {
			return "", fmt.Errorf("%s: want at least %d TaskManagers, registered: [%s]", seen, wantTaskManagers, strings.Join(ids, ", "))
		}
		if free == 0 {
			return "", fmt.Errorf("%s: no free slot for a new job", seen)
		}
		return seen, nil
	})
}

// SQLGateway asks the Flink SQL Gateway's REST API at baseURL which API
// versions it serves and then for its product name and version, e.g.
// "Apache Flink 2.2.0 SQL Gateway, REST API v1-v4". The info is asked in
// the version the pipeline's client speaks, so a gateway without it is
// unhealthy.
func SQLGateway(ctx context.Context, baseURL string) Result {
	return run(ctx, "sql-gateway", []string{baseURL}, func(ctx context.Context) (string, error) {
		gw, err := gateway(baseURL)
		if err != nil {
			return "", err
		}
		versions, err := gw.APIVersions(ctx)
		if err != nil {
			return "", err
		}
		if len(versions) == 0 {
			return "", fmt.Errorf("sql gateway at %s lists no REST API versions", baseURL)
		}
		info, err := gw.Info(ctx)
		if err != nil {
			return "", err
		}
		if info.ProductName == "" || info.Version == "" {
			return "", fmt.Errorf("sql gateway at %s: info has no product name or version", baseURL)
		}
		// The gateway lists its versions oldest first.
		return fmt.Sprintf("%s %s SQL Gateway, REST API %s-%s",
			info.ProductName, info.Version, strings.ToLower(versions[0]), strings.ToLower(versions[len(versions)-1])), nil
	})
}

func jobManager(baseURL string) (*flinksql.JobManager, error) {
	return cachedClient(flinkClients.jobManagers, baseURL, flinksql.NewJobManager)
}

func gateway(baseURL string) (*flinksql.Gateway, error) {
	return cachedClient(flinkClients.gateways, baseURL, flinksql.NewGateway)
}

func cachedClient[C any](clients map[string]*C, baseURL string, newClient func(string, flinksql.Options) (*C, error)) (*C, error) {
	if baseURL == "" {
		return nil, errors.New("base URL is empty; want e.g. http://127.0.0.1:8081")
	}
	flinkClients.Lock()
	defer flinkClients.Unlock()
	if c, ok := clients[baseURL]; ok {
		return c, nil
	}
	c, err := newClient(baseURL, flinkOptions)
	if err != nil {
		return nil, err
	}
	clients[baseURL] = c
	return c, nil
}
