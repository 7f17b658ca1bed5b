package main

import (
	"flag"
	"io"

	"github.com/hata-go/hata/vk"
)

func init() {
	commands["devices"] = command{"list the Vulkan devices and the properties that matter", runDevices}
}

// runDevices implements hata devices.
func runDevices(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hata devices", flag.ContinueOnError)
	usageLine(fs, stderr, "usage: hata devices   (every Vulkan device the loader finds; no flags)")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	return vk.DescribeDevices(stdout)
}
