package signals

import (
	"os"
	"os/signal"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want unix.Signal
	}{
		{"TERM", unix.SIGTERM}, {"SIGTERM", unix.SIGTERM}, {"sigterm", unix.SIGTERM}, {" hup ", unix.SIGHUP},
		{"15", unix.SIGTERM}, {"USR2", unix.SIGUSR2}, {"RTMIN", 34}, {"SIGRTMIN+3", 37}, {"RTMAX", 64},
		{"RTMAX-2", 62}, {"WINCH", unix.SIGWINCH},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "FOO", "0", "65", "-1", "RTMIN-1", "RTMAX+1", "RTMIN+x"} {
		if sig, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, sig)
		}
	}
}

func TestForwardable(t *testing.T) {
	never := []unix.Signal{unix.SIGCHLD, unix.SIGURG, unix.SIGKILL, unix.SIGSTOP, unix.SIGSEGV,
		unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGABRT, unix.SIGTRAP, unix.SIGSYS, unix.SIGPROF, 32, 33, 34}
	for _, s := range never {
		if Forwardable(s) {
			t.Errorf("%s must never be forwarded", Name(s))
		}
	}
	for _, s := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1,
		unix.SIGUSR2, unix.SIGPIPE, unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU,
		unix.SIGWINCH, unix.SIGPWR, unix.SIGXCPU, 35, 50, 64} {
		if !Forwardable(s) {
			t.Errorf("%s must be forwarded", Name(s))
		}
	}
	for _, s := range Caught() {
		if !Forwardable(s.(unix.Signal)) {
			t.Errorf("Caught() includes %v, which is not forwardable", s)
		}
	}
}

func TestRewrites(t *testing.T) {
	var r Rewrites
	if err := r.Set("TERM:QUIT, SIGHUP:0"); err != nil {
		t.Fatal(err)
	}
	if err := r.Set("usr1:12"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   unix.Signal
		want unix.Signal
		ok   bool
	}{
		{unix.SIGTERM, unix.SIGQUIT, true}, {unix.SIGHUP, 0, false}, {unix.SIGUSR1, unix.SIGUSR2, true},
		{unix.SIGINT, unix.SIGINT, true},
	} {
		got, ok := r.Apply(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Apply(%s) = %v, %v; want %v, %v", Name(tc.in), got, ok, tc.want, tc.ok)
		}
	}
	if got, want := r.String(), "HUP:0,TERM:QUIT,USR1:USR2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, bad := range []string{"TERM", "TERM:FOO", "CHLD:TERM", "URG:0", "NOPE:TERM"} {
		var r Rewrites
		if err := r.Set(bad); err == nil {
			t.Errorf("Set(%q) succeeded, want an error", bad)
		}
	}
}

// Once Subscribe's channel is closed, every caught signal reaches c: none is left to the Go
// runtime, which would drop it (or exit).
func TestSubscribeDeliversEveryCaughtSignal(t *testing.T) {
	c := make(chan os.Signal, 1)
	all := Subscribe(c)
	defer signal.Stop(c)
	select {
	case <-all:
	case <-time.After(time.Minute):
		t.Fatal("Subscribe never finished")
	}
	for _, sig := range Caught() {
		if err := unix.Kill(os.Getpid(), sig.(unix.Signal)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-c:
			if got != sig {
				t.Errorf("sent %v, got %v", sig, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v never arrived", sig)
		}
	}
}
