package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of the CPU times in
// /proc/PID/stat: 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat is what treeCPU reads of one process.
type procStat struct {
	ppid int
	cpu  time.Duration // user + system time
}

// readProcStat reads /proc/PID/stat (proc(5)): the fields after the
// command name, which is in parentheses and may hold spaces.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / clockTicks}, nil
}

// treeCPU returns the CPU time (user + system) used so far by each
// process in roots and by all of its living descendants: a PostgreSQL
// server is its postmaster and one backend per connection. A descendant
// that has exited is not counted, so the tree must outlive the
// measurement (pooled connections do).
func treeCPU(roots []int) (map[int]time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	stats := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil { // a process may exit meanwhile
			stats[pid] = st
		}
	}
	out := map[int]time.Duration{}
	for _, root := range roots {
		if _, ok := stats[root]; !ok {
			return nil, fmt.Errorf("no process %d", root)
		}
		for pid, st := range stats {
			for p := pid; p > 1; p = stats[p].ppid {
				if p == root {
					out[root] += st.cpu
					break
				}
				if _, ok := stats[p]; !ok {
					break
				}
			}
		}
	}
	return out, nil
}

// cpuWatch measures the CPU the named process trees use between start
// and stop.
type cpuWatch struct {
	names  []string
	pids   [][]int
	before map[int]time.Duration
}

// parseCPUFlag parses --cpu: NAME=PID[+PID...] entries, comma-separated,
// e.g. optin=4101+4102,postgres=3900.
func parseCPUFlag(v string) (*cpuWatch, error) {
	w := &cpuWatch{}
	if v == "" {
		return w, nil
	}
	for _, part := range strings.Split(v, ",") {
		name, list, ok := strings.Cut(part, "=")
		if !ok || name == "" || list == "" {
			return nil, fmt.Errorf("--cpu: %q: want NAME=PID[+PID...]", part)
		}
		var pids []int
		for _, p := range strings.Split(list, "+") {
			pid, err := strconv.Atoi(p)
			if err != nil || pid <= 1 {
				return nil, fmt.Errorf("--cpu: %q: %q is not a process id", part, p)
			}
			pids = append(pids, pid)
		}
		w.names, w.pids = append(w.names, name), append(w.pids, pids)
	}
	return w, nil
}

func (w *cpuWatch) all() []int {
	var all []int
	for _, p := range w.pids {
		all = append(all, p...)
	}
	return all
}

func (w *cpuWatch) start() error {
	if len(w.names) == 0 {
		return nil
	}
	var err error
	w.before, err = treeCPU(w.all())
	return err
}

// print writes one line per name: the CPU its trees used since start,
// and per operation of ops, which unit names ("signup").
func (w *cpuWatch) print(out io.Writer, ops int64, unit string) error {
	if len(w.names) == 0 {
		return nil
	}
	after, err := treeCPU(w.all())
	if err != nil {
		return err
	}
	var b strings.Builder
	var total time.Duration
	for i, name := range w.names {
		var used time.Duration
		for _, pid := range w.pids[i] {
			used += after[pid] - w.before[pid]
		}
		total += used
		fmt.Fprintf(&b, "cpu %s: %v, %s per %s\n", name, used, perOp(used, ops), unit)
	}
	if len(w.names) > 1 {
		fmt.Fprintf(&b, "cpu together: %v, %s per %s\n", total, perOp(total, ops), unit)
	}
	_, err = io.WriteString(out, b.String())
	return err
}

func perOp(d time.Duration, ops int64) string {
	if ops <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f ms", float64(d)/float64(ops)/float64(time.Millisecond))
}
