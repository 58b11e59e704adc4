package main

import (
	"context"
	"errors"

	"github.com/flowproof/flowproof/internal/health"
)

// kafka is a placeholder until the component is written; every call fails.
type kafka struct{}

func (kafka) name() string { return "kafka" }
func (kafka) install(ctx context.Context, s *stack) error {
	return errors.New("kafka: not written yet")
}
func (kafka) start(ctx context.Context, s *stack) error { return errors.New("kafka: not written yet") }
func (kafka) check(ctx context.Context, s *stack) health.Result {
	return health.Result{Component: "kafka", Detail: "not written yet"}
}
func (kafka) processes(s *stack) []string { return nil }
