package main

import (
	"context"
	"errors"

	"github.com/flowproof/flowproof/internal/health"
)

// prometheus is a placeholder until the component is written; every call fails.
type prometheus struct{}

func (prometheus) name() string { return "prometheus" }
func (prometheus) install(ctx context.Context, s *stack) error {
	return errors.New("prometheus: not written yet")
}
func (prometheus) start(ctx context.Context, s *stack) error {
	return errors.New("prometheus: not written yet")
}
func (prometheus) check(ctx context.Context, s *stack) health.Result {
	return health.Result{Component: "prometheus", Detail: "not written yet"}
}
func (prometheus) processes(s *stack) []string { return nil }
