// Package unused has code nothing uses, for the test that staticcheck reports it (U1000).
package unused

func neverCalled() int { return 1 }
