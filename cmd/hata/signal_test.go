package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptHelper is the process TestSecondInterrupt signals: it says
// when interruptible's context is cancelled, then waits for the second
// signal (which should end it) or gives up after a minute.
func TestInterruptHelper(t *testing.T) {
	if os.Getenv("HATA_INTERRUPT_HELPER") != "1" {
		t.Skip("a helper process of TestSecondInterrupt")
	}
	ctx, stop := interruptible()
	defer stop()
	os.Stdout.WriteString("ready\n")
	<-ctx.Done()
	os.Stdout.WriteString("cancelled\n")
	time.Sleep(time.Minute)
	os.Stdout.WriteString("survived\n")
}

// TestSecondInterrupt: the first Ctrl-C cancels interruptible's context
// (the command stops cleanly) and a second ends the process, as a user
// who presses it again expects.
func TestSecondInterrupt(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestInterruptHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "HATA_INTERRUPT_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	wait := func(want string) {
		t.Helper()
		for lines.Scan() {
			if strings.TrimSpace(lines.Text()) == want {
				return
			}
		}
		cmd.Process.Kill()
		t.Fatalf("the helper never said %q", want)
	}
	wait("ready")
	cmd.Process.Signal(syscall.SIGINT)
	wait("cancelled")
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Errorf("the helper ended with %v, want killed by the second SIGINT", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Error("the helper outlived a second SIGINT by 20 s")
	}
}
