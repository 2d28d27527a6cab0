//go:build !unix

package seal

// lockDir is a no-op where flock is missing: processes initialising or
// rotating the same key directory at the same moment may then each create
// an identity, and the last one named current wins (the others stay, unused).
func lockDir(string) (unlock func(), err error) { return func() {}, nil }
