package report

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium (bin/stackctl install --only
// chromium). Without it the test is skipped, saying so, unless CI=true or
// FLOWPROOF_REQUIRE_CHROMIUM=1, where it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" || os.Getenv("FLOWPROOF_REQUIRE_CHROMIUM") == "1" {
		t.Fatalf("chromium is not installed (bin/stackctl install --only chromium): %v", err)
	}
	t.Skipf("SKIPPED, NOT CHECKED: chromium is not installed (bin/stackctl install --only chromium): %v", err)
	return ""
}

// drawnChart is what the browser measured of one chart.
type drawnChart struct {
	ID     string  `json:"id"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	Shapes int     `json:"shapes"`
	Texts  int     `json:"texts"`
}

const measureCharts = `Array.from(document.querySelectorAll('figure[data-chart]')).map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {id: f.dataset.chart, width: box.width, height: box.height,
    shapes: svg ? svg.querySelectorAll('path, rect, circle, polyline').length : 0,
    texts: svg ? svg.querySelectorAll('text').length : 0};
})`

// TestReportRendersInChromium opens the report of a recorded run in
// headless Chromium: every chart is drawn (an SVG with a size, shapes and
// labels), the console has no errors, and a screenshot is written
// (to $FLOWPROOF_REPORT_SCREENSHOT when set, as docs/report.png was made).
func TestReportRendersInChromium(t *testing.T) {
	browser := chromiumPath(t)
	page := renderFile(t, loadRun(t, recordedResult))

	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	var mu sync.Mutex
	var consoleErrors []string
	// The first call starts the browser, without the timeout (see chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()
	listenErr := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				consoleErrors = append(consoleErrors, fmt.Sprintf("console.%s: %v", ev.Type, ev.Args))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, "exception: "+ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				consoleErrors = append(consoleErrors, "log: "+ev.Entry.Text)
			}
		}
	})

	if listenErr != nil {
		t.Fatalf("listen to the page's console: %v", listenErr)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page), chromedp.WaitReady("body")); err != nil {
		t.Fatalf("open the report in chromium: %v", err)
	}
	drawn, err := chromedp.Run(ctx, chromedp.Evaluate[[]drawnChart](measureCharts))
	if err != nil {
		t.Fatalf("measure the charts: %v", err)
	}
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}

	if len(drawn) != len(chartIDs) {
		t.Errorf("%d charts on the page, want %d: %+v", len(drawn), len(chartIDs), drawn)
	}
	for _, c := range drawn {
		if c.Width < 100 || c.Height < 100 || c.Shapes < 5 || c.Texts < 3 {
			t.Errorf("chart %s not drawn: %+v", c.ID, c)
		}
	}
	mu.Lock()
	if len(consoleErrors) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(consoleErrors, "\n"))
	}
	mu.Unlock()

	out := os.Getenv("FLOWPROOF_REPORT_SCREENSHOT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "report.png")
	}
	if err := os.WriteFile(out, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("charts %+v; screenshot %s (%d bytes)", drawn, out, len(screenshot))
}
