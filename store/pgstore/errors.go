package pgstore

import (
	"errors"

	"github.com/renewkit/renewkit/billing"
)

// joinErrs joins record errors into one error.
func joinErrs(errs []error) error { return errors.Join(errs...) }

// onlyRecordErrors reports whether err is made of *billing.RecordError only.
func onlyRecordErrors(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyRecordErrors(e) {
				return false
			}
		}
		return true
	}
	_, ok := err.(*billing.RecordError)
	return ok
}
