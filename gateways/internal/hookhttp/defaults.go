package hookhttp

import (
	"log/slog"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
)

// Defaults returns log and clock, each replaced by core's when nil, and slog.Default()
// for a nil logger without a core (a renewal lookup).
func Defaults(core gateways.Core, log *slog.Logger, clock billing.Clock) (*slog.Logger, billing.Clock) {
	if core != nil {
		if log == nil {
			log = core.Logger()
		}
		if clock == nil {
			clock = core.Clock()
		}
	}
	if log == nil {
		log = slog.Default()
	}
	if clock == nil {
		clock = billing.SystemClock()
	}
	return log, clock
}
