package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flowproof/flowproof/internal/localstack"
)

// The brokers' request counts at a usage snapshot. The same pipeline code
// has cost Kafka 41 to 69 CPU s from one fresh run to the next, and what a
// broker spends is paid mostly per request, not per record
// (docs/performance.md, "What a chunk costs the brokers"): a fetch that
// wakes for a few records costs about what one that returns thousands
// does. Counting each kind of request between the two snapshots tells
// which of them a run's Kafka CPU went into.

// kafkaRequestsMetric is the counter deploy/jmx-exporter/kafka.yml makes of
// Kafka's RequestMetrics RequestsPerSec meters, one per request type and
// version.
const kafkaRequestsMetric = "kafka_network_requests_total"

// fetchTotal is the meter Kafka marks for every fetch besides the
// FetchConsumer or FetchFollower one of the same fetch: counting it would
// count each fetch twice.
const fetchTotal = "Fetch"

// brokerRequests are one broker's request counts since it started, by
// request type.
type brokerRequests map[string]float64

// readKafkaRequests reads every broker's request counts, keyed by node;
// the error names the brokers whose exporter did not answer.
func readKafkaRequests(ctx context.Context) (map[string]brokerRequests, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	counts := map[string]brokerRequests{}
	var failed []string
	for node := 1; node <= kafkaNodes; node++ {
		url := "http://" + localstack.Host + ":" + strconv.Itoa(kafkaMetricsPort(node)) + "/metrics"
		c, err := scrapeKafkaRequests(ctx, url)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", kafkaNodeName(node), err))
			continue
		}
		counts[kafkaNodeName(node)] = c
	}
	if len(failed) > 0 {
		return counts, fmt.Errorf("request counts not read from %s", strings.Join(failed, "; "))
	}
	return counts, nil
}

func scrapeKafkaRequests(ctx context.Context, url string) (brokerRequests, error) {
	status, body, err := httpGet(ctx, url)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, status)
	}
	return parseKafkaRequests(body)
}

// parseKafkaRequests sums the request counter of one exporter's page by
// request type, over its versions.
func parseKafkaRequests(page []byte) (brokerRequests, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		return nil, fmt.Errorf("parse the metrics page: %w", err)
	}
	family, ok := families[kafkaRequestsMetric]
	if !ok {
		return nil, fmt.Errorf("no %s on the metrics page (deploy/jmx-exporter/kafka.yml exports it; a broker started with an older one lacks it)", kafkaRequestsMetric)
	}
	counts := brokerRequests{}
	for _, m := range family.GetMetric() {
		for _, label := range m.GetLabel() {
			if label.GetName() == "request" && label.GetValue() != fetchTotal {
				counts[label.GetValue()] += m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			}
		}
	}
	return counts, nil
}

// requestCount is one request type's count between two snapshots.
type requestCount struct {
	Request string  `json:"request"`
	Count   float64 `json:"count"`
}

// kafkaRequestsBetween is what every broker answered between two
// snapshots, by request type, most first; an error says why it cannot be
// told (counts missing, or a broker restarted and its counts began again).
func kafkaRequestsBetween(before, after map[string]brokerRequests) ([]requestCount, error) {
	if len(before) == 0 || len(after) == 0 {
		return nil, fmt.Errorf("a snapshot has no request counts")
	}
	sums := map[string]float64{}
	for _, broker := range slices.Sorted(maps.Keys(after)) {
		was, ok := before[broker]
		if !ok {
			return nil, fmt.Errorf("%s's counts are missing from the first snapshot", broker)
		}
		for request, now := range after[broker] {
			if now < was[request] {
				return nil, fmt.Errorf("%s's %s count fell from %.0f to %.0f: the broker restarted in between", broker, request, was[request], now)
			}
			sums[request] += now - was[request]
		}
	}
	if len(after) < len(before) {
		return nil, fmt.Errorf("counts of %d brokers at the first snapshot, of %d at the second", len(before), len(after))
	}
	var out []requestCount
	for request, n := range sums {
		if n > 0 {
			out = append(out, requestCount{request, n})
		}
	}
	slices.SortFunc(out, func(a, b requestCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Request, b.Request))
	})
	return out, nil
}

// kafkaRequestsShown is how many request types the report names; the
// rest are summed up as "other", except kafkaConnectionsRequest.
const kafkaRequestsShown = 6

// kafkaConnectionsRequest is named whatever its rank: a client sends it
// first on every new connection, so on a plaintext listener it counts the
// connections the brokers accepted (on a SASL listener the broker answers
// it inside the authentication, outside the request metrics).
const kafkaConnectionsRequest = "ApiVersions"

// kafkaRequestsLine is the report's line of the brokers' requests;
// messages > 0 adds the count per 1,000 messages of the run.
func kafkaRequestsLine(counts []requestCount, messages int64) string {
	var total float64
	for _, c := range counts {
		total += c.Count
	}
	perThousand := ""
	if messages > 0 {
		perThousand = fmt.Sprintf(" (%.1f a 1,000 messages)", total/float64(messages)*1000)
	}
	var parts []string
	var other float64
	for i, c := range counts {
		if i < kafkaRequestsShown || c.Request == kafkaConnectionsRequest {
			parts = append(parts, c.Request+" "+commas(int64(c.Count)))
		} else {
			other += c.Count
		}
	}
	if other > 0 {
		parts = append(parts, "other "+commas(int64(other)))
	}
	return fmt.Sprintf("kafka requests through the run, all brokers: %s%s: %s", commas(int64(total)), perThousand, strings.Join(parts, ", "))
}
