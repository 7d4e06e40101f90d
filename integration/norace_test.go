//go:build !race

package integration

// raceEnabled reports whether the tests run under the race detector, which slows the broker down.
const raceEnabled = false
