//go:build !linux

package cluster

import "os/exec"

func dieWithTest(*exec.Cmd) {}
