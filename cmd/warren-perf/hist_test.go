package main

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistIndexContiguous(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1 << 20, 1<<63 - 1, 1 << 63, ^uint64(0)} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d (prev %d, buckets %d)", v, i, prev, histBuckets)
		}
		if h := histHigh(i); h < v {
			t.Fatalf("histHigh(histIndex(%d)) = %d < value", v, h)
		}
		if i > 0 && histHigh(i-1) >= v {
			t.Fatalf("value %d also fits bucket %d (high %d)", v, i-1, histHigh(i-1))
		}
		prev = i
	}
	for v := uint64(0); v < 1<<16; v++ {
		i := histIndex(v)
		if histHigh(i) < v || (i > 0 && histHigh(i-1) >= v) {
			t.Fatalf("value %d: bucket %d high %d, previous high %d", v, i, histHigh(i), histHigh(i-1))
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	var h, a, b hist
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(rng.ExpFloat64() * 200_000) // ns, mean 200 µs
		if i%2 == 0 {
			a.record(vals[i])
		} else {
			b.record(vals[i])
		}
	}
	h.merge(&a)
	h.merge(&b)
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.99, 0.999, 1} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/16) {
			t.Errorf("q%.3f: got %d, exact %d", q, got, exact)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] {
		t.Errorf("max: got %d want %d", h.quantile(1), vals[len(vals)-1])
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
}
