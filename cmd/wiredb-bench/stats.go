package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// hist is a log-linear latency histogram of microseconds: exact below 128 µs, then 128
// buckets per power of two (under 1% error), up to ~2^27 µs (134 s; more is clamped).
// Recording allocates nothing. Not safe for concurrent use: one per reader goroutine,
// merged at the end.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	sum    float64 // µs
	max    uint64  // µs
}

const (
	histSub     = 7
	histMaxExp  = 21
	histBuckets = (histMaxExp + 1) << histSub
	histMaxUS   = (uint64(1) << (histMaxExp + histSub)) - 1
)

func histIndex(v uint64) int {
	if v > histMaxUS {
		v = histMaxUS
	}
	if v < 1<<histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSub // >= 1
	return (e-1)<<histSub + int(v>>(e-1))
}

// histValue is the middle of bucket i, in µs.
func histValue(i int) float64 {
	if i < 1<<histSub {
		return float64(i)
	}
	e := i >> histSub
	m := i - (e-1)<<histSub
	lo := float64(uint64(m) << (e - 1))
	return lo + float64(uint64(1)<<(e-1))/2
}

func (h *hist) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	us := uint64(ns / 1000)
	h.counts[histIndex(us)]++
	h.n++
	h.sum += float64(us)
	if us > h.max {
		h.max = us
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile in milliseconds.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += uint64(c)
		if cum >= rank {
			v := histValue(i)
			if v > float64(h.max) {
				v = float64(h.max)
			}
			return v / 1000
		}
	}
	return float64(h.max) / 1000
}

func (h *hist) summary() map[string]any {
	if h.n == 0 {
		return map[string]any{"n": 0}
	}
	return map[string]any{
		"n":    h.n,
		"mean": round3(h.sum / float64(h.n) / 1000),
		"p50":  round3(h.quantile(0.50)),
		"p90":  round3(h.quantile(0.90)),
		"p99":  round3(h.quantile(0.99)),
		"max":  round3(float64(h.max) / 1000),
	}
}

func round3(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	return math.Round(x*1000) / 1000
}

// --- the server process, from /proc ---------------------------------------------------

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100 on every Linux
// ABI Go supports (the kernel fixes it for user space).
const clockTicks = 100

// procCPU is the CPU time (user + system, seconds) a process has used so far.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// the command name (field 2) is in parentheses and may hold spaces: fields after the last ')'
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// procRSS is VmRSS in bytes.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	i := bytes.Index(b, []byte("\nVmRSS:"))
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	line := b[i+7:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) < 1 {
		return 0, fmt.Errorf("/proc/%d/status: bad VmRSS", pid)
	}
	kb, err := strconv.ParseUint(string(f[0]), 10, 64)
	return kb * 1024, err
}

// machineBusy is the CPU time (seconds, all cores) the whole machine has spent busy so
// far: /proc/stat's first line less idle and iowait.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return math.NaN()
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return math.NaN()
	}
	var busy uint64
	for i, x := range f[1:] {
		v, err := strconv.ParseUint(string(x), 10, 64)
		if err != nil {
			return math.NaN()
		}
		if i == 3 || i == 4 || i == 8 || i == 9 { // idle, iowait, guest, guest_nice (in user already)
			continue
		}
		busy += v
	}
	return float64(busy) / clockTicks
}

// selfCPU is this process's CPU time (seconds).
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// serverProbe measures the server processes (-pid, one or several) over a phase: CPU
// delta, RSS sampled every 200 ms (peak, end; the sum over the processes), and, with
// -redis, the shared log (cluster.go). Without a pid it measures nothing and reports nulls.
type serverProbe struct {
	pids     []int
	cpu0     []float64
	self0    float64
	busy0    float64
	t0       time.Time
	rss0     uint64
	peak     uint64
	last     uint64
	lastEach []uint64
	redis    *redisProbe
	redisErr error
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     int
	finished bool
}

// startProbe starts measuring o's servers (and Redis, sampling the streams of rooms).
func startProbe(o *options, rooms []string) *serverProbe {
	p := &serverProbe{pids: o.pids, stop: make(chan struct{}), t0: time.Now(), self0: selfCPU(), busy0: machineBusy()}
	if o.redis != "" {
		p.redis, p.redisErr = startRedisProbe(o.redis, o.redisPID, o.redisKey, rooms)
	}
	if len(p.pids) == 0 && p.redis == nil {
		return p
	}
	p.cpu0 = make([]float64, len(p.pids))
	for i, pid := range p.pids {
		p.cpu0[i], _ = procCPU(pid)
	}
	p.lastEach = make([]uint64, len(p.pids))
	p.sample()
	p.rss0, p.peak = p.last, p.last
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-p.stop:
				return
			case <-t.C:
				if len(p.pids) > 0 {
					p.sample()
				}
				if p.redis != nil && i%5 == 0 {
					p.redis.sample()
				}
			}
		}
	}()
	return p
}

func (p *serverProbe) sample() {
	var sum uint64
	each := make([]uint64, len(p.pids))
	for i, pid := range p.pids {
		r, err := procRSS(pid)
		if err != nil {
			p.mu.Lock()
			p.errs++
			p.mu.Unlock()
			return
		}
		each[i] = r
		sum += r
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = sum
	copy(p.lastEach, each)
	if sum > p.peak {
		p.peak = sum
	}
}

// rssNow samples and returns the current RSS, summed over the servers (0 without a pid).
func (p *serverProbe) rssNow() uint64 {
	if len(p.pids) == 0 {
		return 0
	}
	p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// cpuNow is the CPU time the servers have used so far, summed (0 without a pid).
func (p *serverProbe) cpuNow() float64 {
	var sum float64
	for _, pid := range p.pids {
		c, _ := procCPU(pid)
		sum += c
	}
	return sum
}

// finish stops sampling and returns the measurements (nil values without a pid).
func (p *serverProbe) finish() map[string]any {
	if !p.finished {
		p.finished = true
		close(p.stop)
		p.wg.Wait()
	}
	tool := selfCPU() - p.self0
	busy := machineBusy() - p.busy0
	out := map[string]any{
		"wall_s":        round3(time.Since(p.t0).Seconds()),
		"tool_cpu_s":    round3(tool),
		"machine_cpu_s": round3(busy), // all processes, all cores (/proc/stat): for context
		"server_cpu_s":  nil,
		"rss_start_mb":  nil,
		"rss_peak_mb":   nil,
		"rss_end_mb":    nil,
	}
	if p.redisErr != nil {
		out["redis_error"] = p.redisErr.Error()
	}
	if p.redis != nil {
		p.redis.finish(out)
		p.redis = nil
	}
	if len(p.pids) == 0 {
		return out
	}
	// what the rest of the machine used meanwhile (other processes, the kernel's own
	// threads): a round with much of it ran on a busy machine
	defer func() {
		if sc, ok := out["server_cpu_s"].(float64); ok {
			other := busy - tool - sc
			if rc, ok := out["redis_cpu_s"].(float64); ok {
				other -= rc
			}
			out["other_cpu_s"] = round3(other)
			out["other_cpu_util"] = round3(other / time.Since(p.t0).Seconds())
		}
	}()
	p.sample()
	var sum float64
	each := make([]float64, len(p.pids))
	ok := true
	for i, pid := range p.pids {
		cpu1, err := procCPU(pid)
		if err != nil {
			ok = false
			break
		}
		each[i] = round3(cpu1 - p.cpu0[i])
		sum += cpu1 - p.cpu0[i]
	}
	if ok {
		out["server_cpu_s"] = round3(sum)
	}
	out["rss_start_mb"] = mb(p.rss0)
	out["rss_peak_mb"] = mb(p.peak)
	out["rss_end_mb"] = mb(p.last)
	if len(p.pids) > 1 {
		out["servers"] = len(p.pids)
		if ok {
			out["server_cpu_s_each"] = each
		}
		e := make([]float64, len(p.lastEach))
		for i, r := range p.lastEach {
			e[i] = mb(r)
		}
		out["rss_end_mb_each"] = e
	}
	return out
}

func mb(b uint64) float64 { return round3(float64(b) / (1 << 20)) }

// --- results ----------------------------------------------------------------------------

// result is one scenario's outcome: a JSON object printed on one line of stdout.
type result map[string]any

func (r result) merge(m map[string]any) {
	for k, v := range m {
		r[k] = v
	}
}

func (r result) fail(err error) {
	r["ok"] = false
	if prev, ok := r["error"].(string); ok && prev != "" {
		r["error"] = prev + "; " + err.Error()
		return
	}
	r["error"] = err.Error()
}

func (r result) print() {
	b, err := json.Marshal(r)
	if err != nil {
		// NaN has no JSON: make such values null and try again
		for k, v := range r {
			if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
				r[k] = nil
			}
		}
		b, _ = json.Marshal(r)
	}
	os.Stdout.Write(append(b, '\n'))
}

func fmtMS(x any) string {
	if f, ok := x.(float64); ok && !math.IsNaN(f) {
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
	return "-"
}

// show formats a result value for the human summary: "-" when there is none.
func show(x any) any {
	if x == nil {
		return "-"
	}
	return x
}
