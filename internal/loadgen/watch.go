package loadgen

import (
	"sync"
	"time"
)

// peakInterval is how often a watch samples resident memory for its peak.
const peakInterval = 200 * time.Millisecond

// watch follows the CPU time and resident memory of some processes (the
// gateways) through a run: a baseline before any viewer connects, the
// window's start and end, and the peak RSS sampled in between.
type watch struct {
	pids   []int
	before []ProcSample
	start  []ProcSample
	end    []ProcSample
	errs   []error
	// wchar at the window's edges (ReadWchar); nil where unreadable.
	wstart, wend []*uint64

	mu   sync.Mutex
	peak []int64 // guarded by mu

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// newWatch takes the baseline of pids.
func newWatch(pids []int) *watch {
	w := &watch{pids: pids, peak: make([]int64, len(pids)), errs: make([]error, len(pids))}
	w.before = w.sample()
	return w
}

func (w *watch) sample() []ProcSample {
	s := make([]ProcSample, len(w.pids))
	for i, pid := range w.pids {
		var err error
		s[i], err = ReadProc(pid)
		if err != nil && w.errs[i] == nil {
			w.errs[i] = err
		}
	}
	return s
}

func (w *watch) notePeak(s []ProcSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range s {
		w.peak[i] = max(w.peak[i], s[i].RSSKB)
	}
}

// startPeak starts sampling the peak RSS.
func (w *watch) startPeak() {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	if len(w.pids) == 0 {
		close(w.done)
		return
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(peakInterval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.notePeak(w.sample())
			}
		}
	}()
}

// stopPeak stops the sampling; it may be called more than once.
func (w *watch) stopPeak() {
	w.once.Do(func() {
		if w.stop != nil {
			close(w.stop)
			<-w.done
		}
	})
}

func (w *watch) windowStart() {
	w.start = w.sample()
	w.wstart = w.wchars()
}

func (w *watch) windowEnd() {
	w.end = w.sample()
	w.wend = w.wchars()
	w.notePeak(w.end)
}

// wchars reads each process's wchar; nil entries could not be read.
func (w *watch) wchars() []*uint64 {
	out := make([]*uint64, len(w.pids))
	for i, pid := range w.pids {
		if v, err := ReadWchar(pid); err == nil {
			out[i] = &v
		}
	}
	return out
}

// report returns each process's CPU time over the window (from the
// baseline if the window had no start) and its memory figures, and names
// the processes that could not be read.
func (w *watch) report(errf func(string, ...any)) []ProcReport {
	if len(w.pids) == 0 || w.end == nil {
		return nil
	}
	from := w.start
	if from == nil {
		from = w.before
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ProcReport, len(w.pids))
	for i, pid := range w.pids {
		if w.errs[i] != nil {
			errf("pid %d: %v", pid, w.errs[i])
		}
		out[i] = ProcReport{
			PID:         pid,
			CPUMS:       ms(w.end[i].CPU - from[i].CPU),
			RSSBeforeKB: w.before[i].RSSKB,
			RSSAfterKB:  w.end[i].RSSKB,
			RSSPeakKB:   w.peak[i],
		}
		if w.wstart != nil && w.wend != nil && w.wstart[i] != nil && w.wend[i] != nil {
			out[i].WcharMB = float64(*w.wend[i]-*w.wstart[i]) / 1e6
		}
	}
	return out
}
