// Package promtext reads the Prometheus text exposition format that
// gateways serve on /metrics: one scrape as a map of series to values. The
// load generator and the tests share it.
package promtext

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is a scrape of a Prometheus text endpoint: series name with
// labels ("name{a=\"b\"}") to value.
type Metrics map[string]float64

// Sum adds the values of every series of metric name whose labels contain
// each of match (e.g. `role="view"`). name may carry labels itself,
// `name{a="b"}`, which count as matches.
func (m Metrics) Sum(name string, match ...string) float64 {
	if n, labels, ok := strings.Cut(name, "{"); ok {
		name = n
		match = append(strings.Split(strings.TrimSuffix(labels, "}"), ","), match...)
	}
	var total float64
series:
	for k, v := range m {
		n, labels, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		for _, want := range match {
			if !strings.Contains(labels, want) {
				continue series
			}
		}
		total += v
	}
	return total
}

// Has reports whether m holds any series of metric name.
func (m Metrics) Has(name string) bool {
	for k := range m {
		if n, _, _ := strings.Cut(k, "{"); n == name {
			return true
		}
	}
	return false
}

// scrapeClient keeps no idle connection: between two scrapes nothing holds a
// goroutine in the scraped gateway, so its go_goroutines counts only its
// own (plus the one serving the scrape).
var scrapeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Scrape GETs a Prometheus text endpoint and parses it, within ctx's
// deadline, or 5 s when ctx has none.
func Scrape(ctx context.Context, url string) (Metrics, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to scrape %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Parse parses the Prometheus text exposition format, keeping
// samples and skipping comments.
func Parse(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the last space outside the labels; a
		// timestamp may follow it.
		key, rest := line, ""
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			key, rest = line[:i+1], line[i+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			key, rest = line[:i], line[i:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read metrics: %w", err)
	}
	if len(m) == 0 {
		return nil, errors.New("no metrics in the reply")
	}
	return m, nil
}
