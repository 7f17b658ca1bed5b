// Command hata runs HATA (hash-aware top-k attention) and its baselines on your
// own tensors, on the CPU reference or on a Vulkan GPU, and runs the
// experiments that reproduce the paper's figures.
//
//	hata attend   one decode step of one layer on .npy tensors
//	hata devices  the Vulkan devices and the properties that matter
//	hata train    learn hash weights from attention traces
//	hata run      run an experiment config (results/<name>/: CSV, JSON, figures)
//	hata merge    join the shards of a sharded sweep
//	hata bench    time one decode step on the GPU
//	hata generate / hata traces   the project's small trained model
//
// Every command exits 0 on success, 1 when the work fails and 2 on a usage
// error; errors name the file, tensor, shape or key that is wrong, and no
// output file is written unless the whole command succeeded.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of hata.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands maps each subcommand name to its implementation; files of this
// package add their own in init functions.
var commands = map[string]command{}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes hata with args and returns the exit status. A panic, which would
// be a bug, is turned into a one-line message and status 3 instead of a trace
// (set HATA_TRACE=1 to see the trace).
func run(args []string, stdout, stderr io.Writer) (status int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "hata: internal error: %v (please report it; HATA_TRACE=1 prints the trace)\n", r)
			if os.Getenv("HATA_TRACE") != "" {
				stderr.Write(debug.Stack())
			}
			status = 3
		}
	}()
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "hata: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	err := c.run(args[1:], stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "hata %s: %v\n", args[0], err)
		return 2
	}
	fmt.Fprintf(stderr, "hata %s: %v\n", args[0], err)
	return 1
}

// usage prints the list of commands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hata COMMAND [flags]   (hata COMMAND -h for its flags)")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
}

// usageLine makes fs's -h print line (how the command is called, with its
// positional arguments) before the flags, as every command's usage does.
func usageLine(fs *flag.FlagSet, stderr io.Writer, line string) {
	fs.Usage = func() {
		fmt.Fprintln(stderr, line)
		fs.PrintDefaults()
	}
}

// parseFlags parses args with fs, allowing flags after positional arguments
// (hata run CONFIG -shard 0/4), and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// givenFlags returns the names of the flags the command line set, once
// fs has parsed it (flag.Visit): the way to tell a flag given its default
// value from one left out.
func givenFlags(fs *flag.FlagSet) map[string]bool {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given
}

// oneOf reports whether v is one of the allowed values, as a usage error
// listing them otherwise.
func oneOf(flagName, v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return usagef("-%s %q: want one of %s", flagName, v, strings.Join(allowed, ", "))
}

// interruptible returns a context that the first Ctrl-C (or SIGTERM)
// cancels, so that the command stops cleanly; the signals' default handling
// is back before the context is done, so a second Ctrl-C ends the process at
// once. stop releases the signals.
func interruptible() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
		}
		signal.Stop(sig)
		cancel()
	}()
	return ctx, cancel
}
