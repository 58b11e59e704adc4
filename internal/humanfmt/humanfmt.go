// Package humanfmt writes figures the way flowproof shows them to people,
// the same in the starter's summary and in the HTML report.
package humanfmt

import (
	"strconv"
	"strings"
	"time"
)

// Commas writes n with thousands separators: 1000000 -> "1,000,000".
func Commas[T ~int | ~int64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Millis writes a duration given in milliseconds, to the second from a
// minute up, to the millisecond below.
func Millis(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}
