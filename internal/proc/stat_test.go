package proc

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	const tail = " 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	for _, tc := range []struct {
		name, line string
		want       Stat
		ok         bool
	}{
		{"plain", "42 (sleep) S" + tail, Stat{State: "S", PPID: 1, PGRP: 42, StartTicks: 987654}, true},
		{"comm with spaces and parentheses", "42 (a) (b c) Z" + tail, Stat{State: "Z", PPID: 1, PGRP: 42, StartTicks: 987654}, true},
		{"comm ending in parentheses", "42 (a b) c)) S" + tail, Stat{State: "S", PPID: 1, PGRP: 42, StartTicks: 987654}, true},
		{"comm that looks like fields", "42 (x) R 7 7 7 (y) D" + tail, Stat{State: "D", PPID: 1, PGRP: 42, StartTicks: 987654}, true},
		{"no parenthesis", "42 sleep S" + tail, Stat{}, false},
		{"cut short", "42 (sleep) S 1 42 42", Stat{}, false},
		{"not a number", "42 (sleep) S x 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10", Stat{}, false},
		{"empty", "", Stat{}, false},
	} {
		got, ok := parseStat([]byte(tc.line))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: parseStat(%q) = %+v, %v; want %+v, %v", tc.name, tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReadStat(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "R" || st.PPID != os.Getppid() || st.PGRP != unix.Getpgrp() || st.StartTicks == 0 || st.Exited() {
		t.Errorf("ReadStat(self) = %+v; want running, ppid %d, pgrp %d, a start time", st, os.Getppid(), unix.Getpgrp())
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStat(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadStat(reaped pid) = %v; want fs.ErrNotExist", err)
	}
}

func TestExited(t *testing.T) {
	for state, want := range map[string]bool{"R": false, "S": false, "D": false, "T": false, "Z": true, "X": true} {
		if got := (Stat{State: state}).Exited(); got != want {
			t.Errorf("Stat{State: %q}.Exited() = %v, want %v", state, got, want)
		}
	}
}

func TestPIDsAndSameExecutable(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pids := PIDs()
	if !slices.Contains(pids, os.Getpid()) || !slices.Contains(pids, cmd.Process.Pid) {
		t.Errorf("PIDs() = %v; want this process %d and its child %d among them", pids, os.Getpid(), cmd.Process.Pid)
	}
	if !SameExecutable(os.Getpid()) {
		t.Error("SameExecutable(self) = false")
	}
	if SameExecutable(cmd.Process.Pid) {
		t.Error("SameExecutable(sleep) = true")
	}
}
