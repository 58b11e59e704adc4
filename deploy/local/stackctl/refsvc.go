package main

import (
	"context"
	"errors"

	"github.com/flowproof/flowproof/internal/health"
)

// refServices is a placeholder until the component is written; every call fails.
type refServices struct{}

func (refServices) name() string { return "refsvc" }
func (refServices) install(ctx context.Context, s *stack) error {
	return errors.New("refsvc: not written yet")
}
func (refServices) start(ctx context.Context, s *stack) error {
	return errors.New("refsvc: not written yet")
}
func (refServices) check(ctx context.Context, s *stack) health.Result {
	return health.Result{Component: "refsvc", Detail: "not written yet"}
}
func (refServices) processes(s *stack) []string { return nil }
