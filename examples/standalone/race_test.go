//go:build race

package main

// raceEnabled: the test binary runs with -race, so the server binary is built with it too
// (its dependencies are then already in the build cache).
const raceEnabled = true
