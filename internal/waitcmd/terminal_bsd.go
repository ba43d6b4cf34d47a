//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package waitcmd

import "golang.org/x/sys/unix"

const ioctlReadTermios = unix.TIOCGETA
