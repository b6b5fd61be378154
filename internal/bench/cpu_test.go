package bench

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestTreeCPU: the CPU of a process tree includes a busy child's, and
// none of the tree's CPU is lost between two readings.
func TestTreeCPU(t *testing.T) {
	// A shell whose child spins for a while, then both wait.
	cmd := exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30' & wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	root := cmd.Process.Pid
	own, err := readProcStat(root)
	if err != nil {
		t.Fatal(err)
	}
	if own.ppid != os.Getpid() {
		t.Errorf("ppid of the child: got %d, want %d", own.ppid, os.Getpid())
	}
	var got time.Duration
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		m, err := treeCPU([]int{root})
		if err != nil {
			t.Fatal(err)
		}
		got = m[root]
		if got >= 100*time.Millisecond {
			break
		}
	}
	if own2, _ := readProcStat(root); got <= own2.cpu {
		t.Errorf("tree CPU %v, want more than the root's own %v (the busy child's)", got, own2.cpu)
	}
}

func TestParseCPUFlag(t *testing.T) {
	w, err := parseCPUFlag("optin=4101+4102,postgres=3900")
	if err != nil || len(w.names) != 2 || w.names[1] != "postgres" || len(w.pids[0]) != 2 || w.pids[0][1] != 4102 {
		t.Errorf("parseCPUFlag: got %+v, %v", w, err)
	}
	for _, bad := range []string{"optin", "optin=", "=12", "optin=x", "optin=1"} {
		if _, err := parseCPUFlag(bad); err == nil {
			t.Errorf("parseCPUFlag(%q): got nil error", bad)
		}
	}
}
