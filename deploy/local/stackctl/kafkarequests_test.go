package main

import (
	"strings"
	"testing"
)

// An exporter page as the JMX exporter agent writes it with
// deploy/jmx-exporter/kafka.yml: one counter per request type and version.
const exporterPage = `# HELP kafka_network_requests_total RequestsPerSec
# TYPE kafka_network_requests_total counter
kafka_network_requests_total{request="Fetch",version="17",} 1320.0
kafka_network_requests_total{request="FetchFollower",version="17",} 1000.0
kafka_network_requests_total{request="FetchConsumer",version="17",} 300.0
kafka_network_requests_total{request="FetchConsumer",version="16",} 20.0
kafka_network_requests_total{request="Produce",version="11",} 1.5E3
# HELP kafka_server_messagesinpersec_total MessagesInPerSec
# TYPE kafka_server_messagesinpersec_total counter
kafka_server_messagesinpersec_total 244903.0
`

// Kafka marks "Fetch" for every fetch as well as "FetchConsumer" or
// "FetchFollower"; each fetch is counted once.
func TestParseKafkaRequestsSumsTheVersionsOfEachRequestType(t *testing.T) {
	got, err := parseKafkaRequests([]byte(exporterPage))
	if err != nil {
		t.Fatal(err)
	}
	want := brokerRequests{"FetchFollower": 1000, "FetchConsumer": 320, "Produce": 1500}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for request, n := range want {
		if got[request] != n {
			t.Errorf("%s: got %v, want %v", request, got[request], n)
		}
	}
}

func TestParseKafkaRequestsNamesAPageWithoutTheCounter(t *testing.T) {
	_, err := parseKafkaRequests([]byte("# TYPE kafka_server_messagesinpersec_total counter\nkafka_server_messagesinpersec_total 1.0\n"))
	if err == nil || !strings.Contains(err.Error(), kafkaRequestsMetric) {
		t.Fatalf("err = %v, want one naming %s", err, kafkaRequestsMetric)
	}
}

func TestKafkaRequestsBetweenSumsTheBrokersMostFirstAndRefusesARestart(t *testing.T) {
	before := map[string]brokerRequests{
		"kafka-1": {"Produce": 100, "FetchFollower": 1000},
		"kafka-2": {"Produce": 50, "FetchFollower": 900},
	}
	after := map[string]brokerRequests{
		"kafka-1": {"Produce": 300, "FetchFollower": 1500, "EndTxn": 10},
		"kafka-2": {"Produce": 150, "FetchFollower": 1300},
	}
	got, err := kafkaRequestsBetween(before, after)
	if err != nil {
		t.Fatal(err)
	}
	want := []requestCount{{"FetchFollower", 900}, {"Produce", 300}, {"EndTxn", 10}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %v, want %v", i, got[i], want[i])
		}
	}

	after["kafka-2"] = brokerRequests{"Produce": 20, "FetchFollower": 30}
	if _, err := kafkaRequestsBetween(before, after); err == nil || !strings.Contains(err.Error(), "kafka-2") || !strings.Contains(err.Error(), "restarted") {
		t.Errorf("a broker whose counts fell: err = %v, want it named as restarted", err)
	}
	delete(after, "kafka-2")
	if _, err := kafkaRequestsBetween(before, after); err == nil {
		t.Error("a broker missing from the second snapshot: no error")
	}
	if _, err := kafkaRequestsBetween(nil, after); err == nil {
		t.Error("no counts at the first snapshot: no error")
	}
}

func TestKafkaRequestsLineNamesTheLargestAndTheConnectionsAndSumsTheRest(t *testing.T) {
	counts := []requestCount{{"FetchFollower", 9000}, {"FetchConsumer", 4000}, {"Produce", 3000},
		{"Metadata", 500}, {"EndTxn", 200}, {"AddPartitionsToTxn", 200}, {"Heartbeat", 70}, {"ApiVersions", 40}, {"OffsetFetch", 30}}
	got := kafkaRequestsLine(counts, 1_000_000)
	want := "kafka requests through the run, all brokers: 17,040 (17.0 a 1,000 messages): FetchFollower 9,000, FetchConsumer 4,000, Produce 3,000, Metadata 500, EndTxn 200, AddPartitionsToTxn 200, ApiVersions 40, other 100"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := kafkaRequestsLine(counts[:1], 0); strings.Contains(got, "a 1,000 messages") {
		t.Errorf("without a run: %q, want no figure per message", got)
	}
}
