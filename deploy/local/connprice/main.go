// Command connprice measures what one new Kafka connection of the worker
// costs the local stack's brokers: it opens fresh franz-go clients with the
// worker's own connection settings (FLOWPROOF_KAFKA_*, so TLS and SASL on
// the secure profile), each connecting, logging in and asking for metadata
// before it closes, and divides the brokers' CPU time over those
// connections (from /proc, the pid files of the stack). It then says
// whether the brokers resume TLS sessions, which would make reconnecting
// cheaper. docs/performance.md has its figures.
//
//	eval "$(FLOWPROOF_STACK_DIR=~/.local/share/flowproof/stack-secure bin/stackctl env)"
//	go run ./deploy/local/connprice -connections 60 -rounds 4
//
// The brokers' own work goes on meanwhile (replication, the controller,
// compilation in a young JVM), so each round first measures their CPU
// over -idle doing nothing and subtracts that rate over the round; run it
// on an otherwise idle stack and compare rounds.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/internal/kafkaconn"
	"github.com/flowproof/flowproof/internal/localstack"
)

func main() {
	connections := flag.Int("connections", 60, "fresh clients per round")
	rounds := flag.Int("rounds", 4, "rounds")
	idle := flag.Duration("idle", 3*time.Second, "how long each round measures the brokers' CPU without connections first")
	flag.Parse()
	if err := run(*connections, *rounds, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "connprice:", err)
		os.Exit(1)
	}
}

func run(connections, rounds int, idle time.Duration) error {
	security, err := kafkaconn.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	opts, err := security.ClientOptions()
	if err != nil {
		return err
	}
	brokers := localstack.FromEnv().KafkaBrokers
	procs, err := localstack.StackProcs("kafka-*")
	if err != nil {
		return err
	}
	fmt.Printf("%s, brokers %s\n", security.Describe(), strings.Join(brokers, ","))
	for r := 1; r <= rounds; r++ {
		idleStart, err := localstack.CPUSeconds(procs)
		if err != nil {
			return err
		}
		time.Sleep(idle)
		before, err := localstack.CPUSeconds(procs)
		if err != nil {
			return err
		}
		idleRate := (before - idleStart) / idle.Seconds()
		start := time.Now()
		for i := range connections {
			if err := connectOnce(brokers[i%len(brokers)], opts); err != nil {
				return err
			}
		}
		after, err := localstack.CPUSeconds(procs)
		if err != nil {
			return err
		}
		elapsed := time.Since(start)
		perConnection := (after - before - idleRate*elapsed.Seconds()) * 1000 / float64(connections)
		fmt.Printf("round %d: %d connections in %v, brokers' CPU %.1f ms per connection (less %.0f ms/s measured idle before)\n",
			r, connections, elapsed.Round(time.Millisecond), perConnection, idleRate*1000)
	}
	if security.TLS {
		return reportResumption(security, brokers[0])
	}
	return nil
}

// connectOnce makes a client that knows only broker, has it connect, log
// in and answer a metadata request, and closes it.
func connectOnce(broker string, opts []kgo.Opt) error {
	client, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(broker)}, opts...)...)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Ping(ctx); err != nil {
		return fmt.Errorf("connect to %s: %w", broker, err)
	}
	return nil
}

// reportResumption dials broker three times with a TLS session cache and
// says whether any dial resumed a session.
func reportResumption(security kafkaconn.Settings, broker string) error {
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: security.ServerName, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	if config.ServerName == "" {
		host, _, err := net.SplitHostPort(broker)
		if err != nil {
			return fmt.Errorf("broker %q: %w", broker, err)
		}
		config.ServerName = host
	}
	if security.CAFile != "" {
		pem, err := os.ReadFile(security.CAFile)
		if err != nil {
			return err
		}
		config.RootCAs = x509.NewCertPool()
		config.RootCAs.AppendCertsFromPEM(pem)
	}
	resumed := 0
	for range 3 {
		conn, err := tls.Dial("tcp", broker, config)
		if err != nil {
			return fmt.Errorf("TLS dial %s: %w", broker, err)
		}
		// A TLS 1.3 server sends its session tickets after the handshake;
		// reading takes them in (the broker itself sends nothing first).
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		_, err = conn.Read(make([]byte, 1))
		didResume := conn.ConnectionState().DidResume
		_ = conn.Close() // nothing was written; the read's error is what counts
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read from %s: %w", broker, err)
		}
		if didResume {
			resumed++
		}
	}
	fmt.Printf("TLS session resumption: %d of 3 dials to %s resumed\n", resumed, broker)
	return nil
}
