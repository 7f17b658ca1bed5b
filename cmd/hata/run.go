package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hata-go/hata/experiments"
)

func init() {
	commands["run"] = command{"run an experiment config: results/<name>/ (CSV, JSON, figures)", runRun}
	commands["merge"] = command{"join the shards of a sharded sweep", runMerge}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runRun implements hata run CONFIG: Ctrl-C stops the sweep after the points
// in flight; every finished point is kept and a re-run computes only the rest.
func runRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata run", flag.ContinueOnError)
	var ov experiments.Overrides
	var sets stringList
	shard := fs.String("shard", "", "run every n-th point: i/n with 0 <= i < n (a job array's index and size)")
	vkdev := fs.String("vkdevice", "", "Vulkan devices to spread the points over: a comma list of indices or names (replaces the config's devices)")
	fs.Var(&sets, "set", "override a config key in TOML syntax, e.g. -set synth.n=8192 (repeatable)")
	fs.StringVar(&ov.Out, "out", "results", "results root: the run writes OUT/<name>/")
	defaults := fs.String("defaults", "", "print every key of this kind ("+strings.Join(experiments.Kinds, ", ")+") with its default, as a config, and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hata run CONFIG.toml [-shard i/n] [-vkdevice 0,1] [-set key=value]... [-out DIR]")
		fmt.Fprintln(stderr, "       hata run -defaults KIND")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "speed experiments on a GPU time their steps as hata bench does and read the same ", benchEnv)
	}
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if *defaults != "" {
		if len(pos) > 0 {
			return usagef("-defaults takes no config file, got %q", pos)
		}
		if err := experiments.WriteDefaults(stdout, *defaults); err != nil {
			return usagef("-defaults: %v", err)
		}
		return nil
	}
	if len(pos) != 1 {
		return usagef("want exactly one config file, got %d arguments", len(pos))
	}
	ov.Set = sets
	if *shard != "" {
		if ov.Shard, err = experiments.ParseShard(*shard); err != nil {
			return usageError{err}
		}
	}
	if *vkdev != "" {
		for _, d := range strings.Split(*vkdev, ",") {
			if d = strings.TrimSpace(d); d == "" {
				return usagef("-vkdevice %q: an empty device in the list", *vkdev)
			}
			ov.Devices = append(ov.Devices, "vk:"+d)
		}
	}
	ctx, stop := interruptible()
	defer stop()
	dir, err := experiments.RunContext(ctx, pos[0], ov, stderr)
	if err != nil {
		return err
	}
	if dir != "" { // "": an empty shard, which made no directory
		fmt.Fprintln(stdout, dir)
	}
	return nil
}

// runMerge implements hata merge -out DIR SHARD_DIR...
func runMerge(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata merge", flag.ContinueOnError)
	out := fs.String("out", "", "directory of the merged results (required)")
	usageLine(fs, stderr, "usage: hata merge -out results/NAME SHARD_DIR...")
	dirs, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if *out == "" || len(dirs) == 0 {
		return usagef("need -out and at least one shard directory")
	}
	if err := experiments.Merge(*out, stderr, dirs...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, *out)
	return nil
}
