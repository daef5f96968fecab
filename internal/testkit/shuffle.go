package testkit

import "math/rand/v2"

// Shuffled returns each of items times times, in an order rng shuffles: the deliveries of
// a storm test, where a gateway sends every event more than once and in any order. items
// is not changed.
func Shuffled[T any](rng *rand.Rand, items []T, times int) []T {
	out := make([]T, 0, len(items)*times)
	for _, it := range items {
		for range times {
			out = append(out, it)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
