package main

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cluster mode: several servers serving the same rooms (wiredb's `cluster redis`).
//
//   - -url takes several base URLs (comma-separated, or the flag repeated). The clients of
//     a room are spread over them round-robin: client c of room r (peer number
//     g = r*clients + c over the whole run) connects to url[g % n], so a room's clients
//     are on different servers and every server carries its share of the rooms. With one
//     URL nothing changes.
//   - -pid takes as many process IDs (same syntax): server CPU and RSS are the sums, with
//     each process's value beside them (*_each).
//   - -redis redis://127.0.0.1:<port>/<db> samples the shared log: Redis's CPU
//     (/proc/<pid>/stat of redis-server, its pid from INFO server), INFO memory
//     (used_memory, sampled every second for the peak, and the RSS), INFO commandstats
//     (calls and µs per command, as deltas), and XLEN of each room's stream (-redis-key,
//     sampled every second) to show that checkpoints bound it. The samples are a few
//     O(1) commands a second: they cost Redis next to nothing, and are in its CPU.

// listFlag is a flag that may be repeated and takes comma-separated values; the first
// explicit value replaces the default.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }

func (l *listFlag) Set(s string) error {
	if !l.set {
		l.vals, l.set = nil, true
	}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			l.vals = append(l.vals, v)
		}
	}
	return nil
}

func parsePIDs(vals []string) ([]int, error) {
	var out []int
	for _, v := range vals {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("-pid %q: not a process ID", v)
		}
		if p > 0 {
			out = append(out, p)
		}
	}
	return out, nil
}

// urlFor is the base URL of peer number g (round-robin).
func (o *options) urlFor(g int) string { return o.urls[g%len(o.urls)] }

// --- a minimal RESP client, enough for INFO and XLEN ------------------------------------

type redisConn struct {
	c  net.Conn
	r  *bufio.Reader
	mu sync.Mutex
}

// redisAddr turns redis://host:port/db (or host:port) into host:port and db, and
// refuses any host that is not a loopback address.
func redisAddr(raw string) (addr string, db int, err error) {
	if !strings.Contains(raw, "://") {
		raw = "redis://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, err
	}
	if u.Scheme != "redis" {
		return "", 0, fmt.Errorf("%s: only redis:// (plain, local) is supported", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", 0, fmt.Errorf("%s: the host must be a loopback address", raw)
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if db, err = strconv.Atoi(p); err != nil {
			return "", 0, fmt.Errorf("%s: bad database number", raw)
		}
	}
	return net.JoinHostPort(host, port), db, nil
}

func dialRedis(raw string) (*redisConn, error) {
	addr, db, err := redisAddr(raw)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	rc := &redisConn{c: c, r: bufio.NewReader(c)}
	if db != 0 {
		if _, err := rc.do("SELECT", strconv.Itoa(db)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return rc, nil
}

func (rc *redisConn) close() { rc.c.Close() }

func appendCmd(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// pipeline sends the commands in one write and reads their replies.
func (rc *redisConn) pipeline(cmds [][]string) ([]any, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var b []byte
	for _, c := range cmds {
		b = appendCmd(b, c...)
	}
	_ = rc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(b); err != nil {
		return nil, err
	}
	out := make([]any, len(cmds))
	for i := range cmds {
		v, err := rc.read()
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (rc *redisConn) do(args ...string) (any, error) {
	r, err := rc.pipeline([][]string{args})
	if err != nil {
		return nil, err
	}
	if e, ok := r[0].(redisError); ok {
		return nil, e
	}
	return r[0], nil
}

type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

func (rc *redisConn) read() (any, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, fmt.Errorf("redis: short reply %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		b := make([]byte, n+2)
		if _, err := ioReadFull(rc.r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = rc.read(); err != nil {
				return nil, err
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// info parses INFO <section> into field -> value.
func (rc *redisConn) info(section string) (map[string]string, error) {
	v, err := rc.do("INFO", section)
	if err != nil {
		return nil, err
	}
	s, _ := v.(string)
	out := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, val, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			out[k] = val
		}
	}
	return out, nil
}

// commandStats parses INFO commandstats: cmdstat_xadd:calls=3,usec=24,... -> calls, usec.
func commandStats(info map[string]string) map[string][2]float64 {
	out := map[string][2]float64{}
	for k, v := range info {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		var calls, usec float64
		for _, kv := range strings.Split(v, ",") {
			f, x, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseFloat(x, 64)
			switch f {
			case "calls":
				calls = n
			case "usec":
				usec = n
			}
		}
		out[name] = [2]float64{calls, usec}
	}
	return out
}

func infoInt(m map[string]string, k string) int64 {
	n, _ := strconv.ParseInt(m[k], 10, 64)
	return n
}

// --- the probe of the shared log ----------------------------------------------------

// redisProbe samples Redis over one phase of a scenario (started with the server probe).
type redisProbe struct {
	rc      *redisConn
	pid     int
	keys    []string
	cpu0    float64
	mem0    int64
	memPeak int64
	memLast int64
	rssLast int64
	stats0  map[string][2]float64
	xlenMax int64
	xlenSum []int64 // per sample: the sum over the rooms
	xlenEnd map[string]int64
	errs    int
	lastErr string
	own     map[string]float64 // commands the probe itself sent: calls, by name
}

const maxXlenKeys = 200

// startRedisProbe connects and takes the first sample; nil (and an error) when Redis
// cannot be reached.
func startRedisProbe(raw string, pid int, keyFmt string, rooms []string) (*redisProbe, error) {
	rc, err := dialRedis(raw)
	if err != nil {
		return nil, err
	}
	p := &redisProbe{rc: rc, pid: pid, xlenEnd: map[string]int64{}, own: map[string]float64{}}
	if len(rooms) > maxXlenKeys {
		rooms = rooms[:maxXlenKeys]
	}
	for _, r := range rooms {
		p.keys = append(p.keys, strings.ReplaceAll(keyFmt, "%s", r))
	}
	if p.pid == 0 {
		srv, err := rc.info("server")
		if err != nil {
			rc.close()
			return nil, err
		}
		p.pid = int(infoInt(srv, "process_id"))
	}
	p.cpu0, _ = procCPU(p.pid)
	mem, err := rc.info("memory")
	if err != nil {
		rc.close()
		return nil, err
	}
	p.mem0 = infoInt(mem, "used_memory")
	p.memPeak, p.memLast = p.mem0, p.mem0
	cs, err := rc.info("commandstats")
	if err != nil {
		rc.close()
		return nil, err
	}
	p.stats0 = commandStats(cs)
	return p, nil
}

// sample reads used_memory and the streams' lengths (one pipelined round trip).
func (p *redisProbe) sample() {
	cmds := [][]string{{"INFO", "memory"}}
	for _, k := range p.keys {
		cmds = append(cmds, []string{"XLEN", k})
	}
	p.own["info"]++
	p.own["xlen"] += float64(len(p.keys))
	r, err := p.rc.pipeline(cmds)
	if err != nil {
		p.errs++
		p.lastErr = err.Error()
		return
	}
	if s, ok := r[0].(string); ok {
		m := map[string]string{}
		for _, line := range strings.Split(s, "\r\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				m[k] = v
			}
		}
		p.memLast = infoInt(m, "used_memory")
		p.rssLast = infoInt(m, "used_memory_rss")
		p.memPeak = max(p.memPeak, p.memLast)
	}
	var sum int64
	for i, k := range p.keys {
		n, ok := r[i+1].(int64)
		if !ok {
			if e, isErr := r[i+1].(redisError); isErr {
				p.errs++
				p.lastErr = string(e)
			}
			continue
		}
		p.xlenEnd[k] = n
		p.xlenMax = max(p.xlenMax, n)
		sum += n
	}
	p.xlenSum = append(p.xlenSum, sum)
}

func (p *redisProbe) finish(out map[string]any) {
	p.sample()
	defer p.rc.close()
	if cpu, err := procCPU(p.pid); err == nil {
		out["redis_cpu_s"] = round3(cpu - p.cpu0)
	} else {
		out["redis_cpu_s"] = nil
	}
	out["redis_pid"] = p.pid
	out["redis_used_memory_mb_start"] = mb(uint64(p.mem0))
	out["redis_used_memory_mb_peak"] = mb(uint64(p.memPeak))
	out["redis_used_memory_mb_end"] = mb(uint64(p.memLast))
	out["redis_rss_mb_end"] = mb(uint64(p.rssLast))
	if rss, err := procRSS(p.pid); err == nil {
		out["redis_proc_rss_mb_end"] = mb(rss)
	}
	if len(p.keys) > 0 {
		var end int64
		for _, n := range p.xlenEnd {
			end = max(end, n)
		}
		out["xlen_rooms_sampled"] = len(p.keys)
		out["xlen_max"] = p.xlenMax // the longest stream of any room in any sample
		out["xlen_end_max"] = end   // the longest at the end
		out["xlen_samples"] = len(p.xlenSum)
		if len(p.xlenSum) > 0 && len(p.keys) > 1 {
			var peak int64
			for _, s := range p.xlenSum {
				peak = max(peak, s)
			}
			out["xlen_total_peak"] = peak // every sampled room's stream together
		}
	}
	if cs, err := p.rc.info("commandstats"); err == nil {
		now := commandStats(cs)
		type row struct {
			name        string
			calls, usec float64
		}
		p.own["info"]++ // this one
		var rows []row
		var ownUsec float64
		for k, v := range now {
			d := row{k, v[0] - p.stats0[k][0], v[1] - p.stats0[k][1]}
			if own := p.own[k]; own > 0 && d.calls > 0 {
				// the probe's own commands: out of the counts (their µs are reported apart)
				share := min(own/d.calls, 1)
				ownUsec += d.usec * share
				d.calls -= own
				d.usec -= d.usec * share
			}
			if d.calls > 0 {
				rows = append(rows, d)
			}
		}
		out["redis_probe_usec"] = round3(ownUsec)
		sort.Slice(rows, func(i, j int) bool { return rows[i].usec > rows[j].usec })
		cmds := map[string]any{}
		for _, r := range rows {
			cmds[r.name] = map[string]any{"calls": r.calls, "usec": r.usec}
		}
		out["redis_commands"] = cmds
	}
	if p.errs > 0 {
		out["redis_sample_errors"] = p.errs
		out["redis_sample_last_error"] = p.lastErr
	}
}

// perThousand adds Redis's cost per 1,000 updates to a result that counted updates.
func perThousand(res result, updates int64) {
	if updates <= 0 {
		return
	}
	k := float64(updates) / 1000
	if cpu, ok := res["redis_cpu_s"].(float64); ok {
		res["redis_cpu_ms_per_1k_updates"] = round3(cpu * 1e3 / k)
	}
	start, ok1 := res["redis_used_memory_mb_start"].(float64)
	peak, ok2 := res["redis_used_memory_mb_peak"].(float64)
	end, ok3 := res["redis_used_memory_mb_end"].(float64)
	if ok1 && ok2 && ok3 {
		res["redis_mem_peak_growth_kb_per_1k_updates"] = round3((peak - start) * 1024 / k)
		res["redis_mem_end_growth_kb_per_1k_updates"] = round3((end - start) * 1024 / k)
	}
	if cmds, ok := res["redis_commands"].(map[string]any); ok {
		var calls float64
		for _, v := range cmds {
			calls += v.(map[string]any)["calls"].(float64)
		}
		res["redis_calls_per_update"] = round3(calls / float64(updates))
	}
}
