//go:build !linux

package main

import (
	"context"
	"time"
)

func newTimerfdPacer(context.Context, time.Duration) pacer { return nil }
