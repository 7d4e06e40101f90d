package storage

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for Pebble's background goroutines to log into.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPebbleStartupLinesAtDebug checks that Pebble's own start-up lines ("Found 0 WALs" and the
// like) are logged at debug level: a broker logging at info shows none of them, one logging at
// debug shows them with component=pebble.
func TestPebbleStartupLinesAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var out lockedBuffer
		log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
		s, err := OpenPebble(t.TempDir(), PebbleOptions{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, s, true, "k", "v")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var pebbleLines []string
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, "component=pebble") && !strings.Contains(line, "level=ERROR") {
				pebbleLines = append(pebbleLines, line)
			}
		}
		switch level {
		case slog.LevelInfo:
			for _, line := range pebbleLines {
				if !strings.Contains(line, "level=DEBUG") && strings.Contains(line, "WAL") {
					t.Errorf("Pebble's start-up line logged above debug: %s", line)
				}
			}
			if strings.Contains(out.String(), "Found 0 WALs") {
				t.Errorf("at info level, Pebble's start-up lines are logged:\n%s", out.String())
			}
		case slog.LevelDebug:
			if !strings.Contains(out.String(), "level=DEBUG") || !strings.Contains(out.String(), "Found 0 WALs") {
				t.Errorf("at debug level, Pebble's start-up line \"Found 0 WALs\" is missing:\n%s", out.String())
			}
		}
	}
}
