// Package experiments turns a config file into results: it enumerates the
// points of a sweep, computes each on a backend (the CPU reference of package
// ref, or a GPU), stores every finished point at once, and assembles a CSV,
// figures (package plots) and a record of what was run.
//
// # Configs
//
// One TOML file per figure or table (configs/*.toml). The key kind selects
// the experiment, and with it a Go struct that holds the documented defaults:
//
//	budget     BudgetConfig     accuracy vs token budget, per method (Fig. 7)
//	rbit       RbitConfig       accuracy vs hash bits, trained vs random (Fig. 8)
//	training   TrainingConfig   hash training loss and held-out recall per step
//	speed      SpeedConfig      decode latency and speedup over dense (Fig. 5)
//	breakdown  BreakdownConfig  HATA's stage times per kernel variant (Fig. 9)
//
// and, on the project's small trained model (package model, weights/):
//
//	niah          NIAHConfig         needle-in-a-haystack accuracy, context x depth (Fig. 6)
//	perplexity    PerplexityConfig   bits/byte and agreement with dense vs budget
//	throughput    ThroughputConfig   whole-model decode tokens/s per method
//	model_budget  ModelBudgetConfig  the budget ablation on the model's own traces
//	model_rbit    ModelRbitConfig    the rbit ablation on the model's own traces
//
// The file overrides the defaults, and the command line overrides the file
// (Overrides: -set key=value, -vkdevice, -shard, -out). A key the kind does
// not have, or a value out of range, is a *ConfigError naming the file, the
// line and the key. The accuracy kinds (budget, rbit, training) take their
// decode steps from the synthetic generator (package synth, input = "synth")
// or from a model's trace (input = "trace", tensorio.ReadTrace).
//
// # Results
//
// RunFile writes <out>/<name>/: config.json (the resolved config), one file
// per finished point under points/, <kind>.csv, the figures as PNG and SVG,
// and results.json (config, devices with driver and API, git commit, date,
// points done and missing, files). Every file is written atomically.
//
// Resume: re-running the same config computes only the points without a
// file, so an interrupted sweep (Ctrl-C or kill -9) loses at most the points
// in flight, and the assembled CSV is the one an uninterrupted run writes. The
// identity of a config is its resolved form less devices and description;
// running a changed config into a directory that holds another config's
// points is refused (*ConfigChangedError): give it another name, or -out.
//
// Sharding: Overrides.Shard i/n runs the points i, i+n, i+2n, ... into
// <out>/<name>.shard-i-of-n; Merge joins shard directories of the same config
// into one. Several devices (Common.Devices, or -vkdevice) run points
// concurrently, one worker per device; every row names its device.
//
// # Backends
//
// A Backend builds methods (ref.Method); the CPU backend is ref.New. Other
// backends register a device prefix with RegisterBackend ("vk" makes "vk:0"
// mean Vulkan device 0). The timing kinds need a backend that implements
// Timer; the CPU's timer reports wall-clock medians (clock "cpu-wallclock"),
// meant for testing the pipeline, not for the paper's GPU numbers.
package experiments
