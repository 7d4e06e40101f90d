//go:build !unix

package server

// Direct writes need a non-blocking write(2); elsewhere the write loop does every write.
const canWriteDirect = false

func writeNonblocking(fd uintptr, b []byte) int { return 0 }
