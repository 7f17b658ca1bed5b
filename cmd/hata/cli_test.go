package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyRun is a sweep of 2 methods x 2 budgets x 2 samples on a small
// synthetic layer: seconds on one core.
const tinyRun = `kind = "budget"
name = "cli"
methods = ["dense", "topk"]
budgets = [0.05, 0.25]
samples = 2
[synth]
hq = 4
hkv = 2
d = 32
n = 256
rank = 16
`

// TestRunShardsMerge is the README's sharded sweep through the command line:
// hata run prints the directory it wrote, two shards of the same config
// merged with hata merge give the unsharded run's CSV, and a merge with a
// shard missing fails (status 1) saying so.
func TestRunShardsMerge(t *testing.T) {
	root := t.TempDir()
	cfg := filepath.Join(root, "cli.toml")
	if err := os.WriteFile(cfg, []byte(tinyRun), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "results")
	status, stdout, stderr := hata("run", cfg, "-out", out)
	if status != 0 || strings.TrimSpace(stdout) != filepath.Join(out, "cli") {
		t.Fatalf("hata run: status %d, stdout %q, stderr %q; want 0 and %s", status, stdout, stderr, filepath.Join(out, "cli"))
	}
	want, err := os.ReadFile(filepath.Join(out, "cli", "budget.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var shards []string
	for _, s := range []string{"0/2", "1/2"} {
		status, stdout, stderr := hata("run", cfg, "-shard", s, "-out", out)
		if status != 0 {
			t.Fatalf("hata run -shard %s: status %d, stderr %q", s, status, stderr)
		}
		shards = append(shards, strings.TrimSpace(stdout))
	}
	// A shard past the sweep's 4 points (a job array of more tasks) runs
	// nothing, makes no directory and prints none.
	status, stdout, stderr = hata("run", cfg, "-shard", "9/10", "-out", out)
	if status != 0 || stdout != "" || !strings.Contains(stderr, "shard 9/10 holds none of the sweep's 4 points") {
		t.Errorf("hata run -shard 9/10 of 4 points: status %d, stdout %q, stderr %q; want 0, nothing, and a note", status, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "cli.shard-9-of-10")); err == nil {
		t.Error("an empty shard made its directory")
	}
	merged := filepath.Join(root, "merged")
	if status, _, stderr := hata("merge", "-out", merged, shards[0]); status != 1 || !strings.Contains(stderr, "missing") {
		t.Errorf("hata merge of one shard of two: status %d, stderr %q; want 1 and the points missing", status, stderr)
	}
	status, stdout, stderr = hata("merge", "-out", merged, shards[0], shards[1])
	if status != 0 || strings.TrimSpace(stdout) != merged {
		t.Fatalf("hata merge: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	got, err := os.ReadFile(filepath.Join(merged, "budget.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("merged shards' CSV:\n%s\nwant the unsharded run's:\n%s", got, want)
	}
}

// TestUsage: the exit statuses README promises for how hata is called.
func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		status int
		stderr string
	}{
		{nil, 2, "usage: hata COMMAND"},
		{[]string{"help"}, 0, "merge"},
		{[]string{"atend"}, 2, `unknown command "atend"`},
		{[]string{"run"}, 2, "hata run"},
		{[]string{"run", "a.toml", "b.toml"}, 2, "hata run"},
		{[]string{"run", "no/such/config.toml"}, 1, "no/such/config.toml"},
		{[]string{"merge", "-out", "x"}, 2, "at least one shard"},
		{[]string{"merge", "somedir"}, 2, "need -out"},
		{[]string{"devices", "extra"}, 2, "unexpected arguments"},
		{[]string{"run", "-bogus"}, 2, "-bogus"},
		{[]string{"run", "-defaults", "bugdet"}, 2, `kind "bugdet": want one of budget`},
		{[]string{"run", "-defaults", "budget", "c.toml"}, 2, "takes no config file"},
		// The prompt commands' usage says the prompt is the arguments.
		{[]string{"generate", "-h"}, 0, "usage: hata generate [-method m] [-budget X] [flags] PROMPT..."},
		{[]string{"traces", "-h"}, 0, "usage: hata traces -out DIR [-layers all|2,3] [-model DIR] PROMPT..."},
		{[]string{"traces", "-out"}, 2, "usage: hata traces"},
	} {
		status, _, stderr := hata(c.args...)
		if status != c.status || !strings.Contains(stderr, c.stderr) {
			t.Errorf("hata %q: status %d, stderr %q; want %d and %q", c.args, status, stderr, c.status, c.stderr)
		}
	}
}

// TestHelp: every command's -h exits 0 and opens with a usage line that
// shows how the command is called, the positional arguments included (a
// prompt for generate and traces: README's `hata generate ... "Four score
// ..."`), before its flags.
func TestHelp(t *testing.T) {
	for _, c := range []struct{ cmd, usage string }{
		{"attend", "usage: hata attend -q "},
		{"bench", "usage: hata bench "},
		{"devices", "usage: hata devices"},
		{"generate", "usage: hata generate [-method m] [-budget X] [flags] PROMPT"},
		{"merge", "usage: hata merge "},
		{"run", "usage: hata run CONFIG.toml"},
		{"traces", "usage: hata traces -out DIR [-layers all|2,3] [-model DIR] PROMPT"},
		{"train", "usage: hata train "},
	} {
		status, _, stderr := hata(c.cmd, "-h")
		if status != 0 || !strings.HasPrefix(stderr, c.usage) {
			t.Errorf("hata %s -h: status %d, stderr %q; want 0 and a first line starting %q", c.cmd, status, stderr, c.usage)
		}
	}
}

// TestDevices: hata devices lists the device every Vulkan test runs on,
// marks the default and prints the subgroup check's verdict.
func TestDevices(t *testing.T) {
	needVulkan(t)
	status, stdout, stderr := hata("devices")
	if status != 0 || !strings.Contains(stdout, "0: ") || !strings.Contains(stdout, "<- default") || !strings.Contains(stdout, "subgroup") {
		t.Errorf("hata devices: status %d, stderr %q, stdout:\n%s", status, stderr, stdout)
	}
}

// TestRunDefaults: hata run -defaults KIND prints a config of every key of
// the kind, which hata run then runs as it is (here a speed sweep cut to one
// small point through -set, on the CPU's timer).
func TestRunDefaults(t *testing.T) {
	status, stdout, stderr := hata("run", "-defaults", "speed")
	if status != 0 || !strings.Contains(stdout, `kind = "speed"`) || !strings.Contains(stdout, "reps = 50") {
		t.Fatalf("hata run -defaults speed: status %d, stderr %q, stdout:\n%s", status, stderr, stdout)
	}
	root := t.TempDir()
	cfg := filepath.Join(root, "speed.toml")
	if err := os.WriteFile(cfg, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	status, _, stderr = hata("run", cfg, "-out", root, "-set", "methods=[\"dense\"]", "-set", "batches=[1]", "-set", "ns=[64]",
		"-set", "hq=2", "-set", "hkv=1", "-set", "d=8", "-set", "reps=2")
	if status != 0 {
		t.Errorf("hata run of the printed defaults: status %d, stderr %q", status, stderr)
	}
}

// TestTimedOneDeviceTwice: a speed sweep over one Vulkan device named twice
// (by index and by name) is refused before any point: two timed points at
// once on one device would slow each other down.
func TestTimedOneDeviceTwice(t *testing.T) {
	needVulkan(t)
	root := t.TempDir()
	_, defaults, _ := hata("run", "-defaults", "speed")
	cfg := filepath.Join(root, "speed.toml")
	if err := os.WriteFile(cfg, []byte(defaults), 0o644); err != nil {
		t.Fatal(err)
	}
	status, _, stderr := hata("run", cfg, "-out", root, "-vkdevice", "0,0", "-set", `methods=["dense"]`, "-set", "ns=[64]")
	if status != 1 || !strings.Contains(stderr, "devices: vk:0 and vk:0 are one device") {
		t.Errorf("speed on -vkdevice 0,0: status %d, stderr %q; want 1 and a refusal", status, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "speed")); err == nil {
		t.Error("the refused run made its results directory")
	}
}
