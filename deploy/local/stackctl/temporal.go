package main

import (
	"context"
	"errors"

	"github.com/flowproof/flowproof/internal/health"
)

// temporal is a placeholder until the component is written; every call fails.
type temporal struct{}

func (temporal) name() string { return "temporal" }
func (temporal) install(ctx context.Context, s *stack) error {
	return errors.New("temporal: not written yet")
}
func (temporal) start(ctx context.Context, s *stack) error {
	return errors.New("temporal: not written yet")
}
func (temporal) check(ctx context.Context, s *stack) health.Result {
	return health.Result{Component: "temporal", Detail: "not written yet"}
}
func (temporal) processes(s *stack) []string { return nil }
