package pgstore

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// DefaultSchema is the schema the store's tables live in when Config.Schema is empty.
const DefaultSchema = "renewkit"

// Config tunes a Store. The zero value is the documented default of every field.
type Config struct {
	// Schema is the PostgreSQL schema holding renewkit's tables, so they can live beside
	// the host's own. Default "renewkit". Migrate creates it. It must be a plain
	// identifier: a letter or underscore, then letters, digits or underscores, at most 63
	// bytes.
	Schema string
	// MaxRetries bounds how many times a statement that failed with a serialization
	// failure or a deadlock (SQLSTATE 40001, 40P01) is run again. Every statement the store
	// retries is a single atomic statement, so a failed attempt wrote nothing. Default 5;
	// negative is an error.
	MaxRetries int
	// RetryBackoff is the pause before the first retry; it doubles with each one.
	// Default 5ms.
	RetryBackoff time.Duration
	// Logger receives the migration log. Default slog.Default().
	Logger *slog.Logger
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Validate reports every problem of c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Schema != "" && !identRE.MatchString(c.Schema) {
		errs = append(errs, fmt.Errorf("schema %q is not a plain identifier: use letters, digits and underscores, starting with a letter or underscore, at most 63 bytes", c.Schema))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("MaxRetries %d is negative: use 0 for the default (5)", c.MaxRetries))
	}
	if c.RetryBackoff < 0 {
		errs = append(errs, fmt.Errorf("RetryBackoff %v is negative: use 0 for the default (5ms)", c.RetryBackoff))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 5 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
