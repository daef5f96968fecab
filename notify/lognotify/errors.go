package lognotify

import "errors"

// Sentinel errors.
var (
	// ErrInvalidOption: an option was given a nil or empty value.
	ErrInvalidOption = errors.New("lognotify: invalid option")
)
