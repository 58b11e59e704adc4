package main

import (
	"context"

	"github.com/flowproof/flowproof/internal/health"
)

// chromiumBinary is where Debian's chromium package installs the browser.
const chromiumBinary = "/usr/bin/chromium"

// chromium is Debian's Chromium, which the HTML report's test opens the
// report in (headless). It runs no process of the stack: `install --only
// chromium` installs it, and `up` does not start it.
type chromium struct{}

func (chromium) name() string { return "chromium" }

func (chromium) install(ctx context.Context, _ *stack) error {
	return installDebianPackage(ctx, "chromium", chromiumBinary)
}

func (chromium) start(context.Context, *stack) error { return nil }

func (chromium) check(context.Context, *stack) health.Result {
	res := health.Result{Component: "chromium", Healthy: debianBinaryFound(chromiumBinary), Detail: chromiumBinary + " installed"}
	if !res.Healthy {
		res.Detail = chromiumBinary + " is missing (bin/stackctl install --only chromium)"
	}
	return res
}

func (chromium) processes(*stack) []string { return nil }
