package main

import (
	"context"
	"errors"

	"github.com/flowproof/flowproof/internal/health"
)

// flink is a placeholder until the component is written; every call fails.
type flink struct{}

func (flink) name() string { return "flink" }
func (flink) install(ctx context.Context, s *stack) error {
	return errors.New("flink: not written yet")
}
func (flink) start(ctx context.Context, s *stack) error { return errors.New("flink: not written yet") }
func (flink) check(ctx context.Context, s *stack) health.Result {
	return health.Result{Component: "flink", Detail: "not written yet"}
}
func (flink) processes(s *stack) []string { return nil }
