package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunVKDeviceList: an empty entry in -vkdevice's list is a usage error
// that quotes the list, not a device named "".
func TestRunVKDeviceList(t *testing.T) {
	for _, list := range []string{",", "0,", " ,1", "0,,1"} {
		var stdout, stderr bytes.Buffer
		status := run([]string{"run", "-vkdevice", list, "../../configs/quick.toml"}, &stdout, &stderr)
		if status != 2 || !strings.Contains(stderr.String(), "-vkdevice") || !strings.Contains(stderr.String(), "empty device") {
			t.Errorf("-vkdevice %q: status %d, stderr %q; want 2 and an error naming -vkdevice", list, status, stderr.String())
		}
	}
}
