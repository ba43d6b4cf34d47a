//go:build linux || aix || solaris || zos

package waitcmd

import "golang.org/x/sys/unix"

const ioctlReadTermios = unix.TCGETS
