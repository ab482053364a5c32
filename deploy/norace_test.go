//go:build !race

package deploy

// raceEnabled tells whether the tests run with the race detector.
const raceEnabled = false
