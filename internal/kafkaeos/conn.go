// Package kafkaeos holds the Kafka protocol pieces that flowproof's
// exactly-once stages share and franz-go does not offer as such: a reader
// that knows when it has read everything committed, a transactional offset
// commit for a producer that is no group member, fresh metadata, and the
// retry of retriable broker answers. Every activity package that reads or
// writes Kafka transactionally uses these, so they live once, here.
package kafkaeos

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Conn is a worker's way to Kafka: one plain (non-transactional) client for
// metadata, admin requests and reads, shared by every activity, and the
// options to build a client of its own (a transactional producer, a
// partition consumer) for one unit of work.
type Conn struct {
	Client *kgo.Client
	Admin  *kadm.Client
	opts   []kgo.Opt
}

// Dial builds the shared client; opts (TLS, SASL) are added to every client
// the Conn makes. Close releases it.
func Dial(brokers []string, opts ...kgo.Opt) (*Conn, error) {
	if len(brokers) == 0 {
		return nil, fmt.Errorf("kafka: no brokers configured")
	}
	all := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	client, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &Conn{Client: client, Admin: kadm.NewClient(client), opts: all}, nil
}

// NewClient builds a client with the Conn's connection options plus opts
// (a transactional id, consumed partitions, ...). The caller closes it.
func (c *Conn) NewClient(opts ...kgo.Opt) (*kgo.Client, error) {
	client, err := kgo.NewClient(append(append([]kgo.Opt(nil), c.opts...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return client, nil
}

// Close releases the shared client.
func (c *Conn) Close() { c.Client.Close() }
