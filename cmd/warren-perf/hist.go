package main

import "math/bits"

// hist is a log-bucketed latency histogram in the manner of HdrHistogram with 5 significant bits:
// values below 64 have their own bucket, larger ones share a bucket with the values that agree in
// their top 6 bits, so a reported percentile is at most 1/32 (about 3%) above the true value. It
// is 15 KiB, records in a few nanoseconds without allocating, and merges by adding counts.
// (github.com/HdrHistogram/hdrhistogram-go would do as well; this is 40 lines and no dependency.)
// A hist belongs to one goroutine; merge them when the goroutines are done.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // 32 buckets per power of two
	histBuckets = (64-histSubBits-1)*histSub + 2*histSub
)

// histIndex maps v to its bucket: v itself below 64, else shift*32 + (v >> shift) where
// shift = bitlen(v) - 6 (so v >> shift is in [32, 63]). The indexes are contiguous.
func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return shift*histSub + int(v>>shift)
}

// histHigh is the largest value of bucket i.
func histHigh(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<shift - 1
}

func (h *hist) record(v uint64) {
	h.counts[histIndex(v)]++
	h.n++
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the highest value of the bucket holding the q-th value (0 < q <= 1), capped
// at the exact maximum; 0 if nothing was recorded.
func (h *hist) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(1, min(rank, h.n))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histHigh(i), h.max)
		}
	}
	return h.max
}

// latency reports the histogram (nanoseconds) in microseconds; nil if nothing was recorded.
func (h *hist) latency() *Latency {
	if h.n == 0 {
		return nil
	}
	us := func(ns uint64) float64 { return float64(ns) / 1e3 }
	return &Latency{Count: h.n, P50: us(h.quantile(0.5)), P99: us(h.quantile(0.99)), P999: us(h.quantile(0.999)), Max: us(h.max)}
}
