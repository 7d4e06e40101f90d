//go:build unix

package server

import "syscall"

const canWriteDirect = true

// writeNonblocking makes one write(2) on the non-blocking descriptor fd and returns how many bytes
// it took (0 if none: the socket buffer is full, or an error the write loop will meet again).
func writeNonblocking(fd uintptr, b []byte) int {
	n, err := syscall.Write(int(fd), b)
	if err != nil || n < 0 {
		return 0
	}
	return n
}
