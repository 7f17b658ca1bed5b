package experiments

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints "name: done/total points (r resumed) | rate | ETA" to w, at
// most once per interval and once at the end, so a long sweep shows where it
// is without flooding the terminal or a log file.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	name     string
	total    int
	resumed  int
	done     int // computed in this run
	failed   int
	start    time.Time
	last     time.Time
	interval time.Duration
}

func newProgress(w io.Writer, name string, total, resumed int) *progress {
	p := &progress{w: w, name: name, total: total, resumed: resumed, start: time.Now(), interval: 2 * time.Second}
	fmt.Fprintf(w, "%s: %d points, %d already done, %d to compute\n", name, total, resumed, total-resumed)
	return p
}

// point records one finished (or failed) point.
func (p *progress) point(ok bool, label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.done++
	} else {
		p.failed++
	}
	now := time.Now()
	if now.Sub(p.last) < p.interval && p.resumed+p.done+p.failed < p.total {
		return
	}
	p.last = now
	p.print(now, label)
}

func (p *progress) print(now time.Time, label string) {
	el := now.Sub(p.start).Seconds()
	finished := p.done + p.failed
	left := p.total - p.resumed - finished
	msg := fmt.Sprintf("%s: %d/%d points", p.name, p.resumed+p.done, p.total)
	if p.resumed > 0 {
		msg += fmt.Sprintf(" (%d resumed)", p.resumed)
	}
	if p.failed > 0 {
		msg += fmt.Sprintf(", %d failed", p.failed)
	}
	if finished > 0 && el > 0 {
		rate := float64(finished) / el
		msg += fmt.Sprintf(" | %.3g points/s", rate)
		if left > 0 {
			msg += " | ETA " + time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second).String()
		}
	}
	msg += " | elapsed " + time.Duration(el*float64(time.Second)).Round(time.Second).String()
	if label != "" && left > 0 {
		msg += " | last " + label
	}
	fmt.Fprintln(p.w, msg)
}
