-- Pending effects of payment-only transitions (billing.Payment.Pending: the audit entry and
-- the email a payment's failure or cancellation leaves to do), written by the same UPDATE
-- as the new status and cleared once they are done; NULL when nothing is pending.
ALTER TABLE {schema}.payments ADD COLUMN pending jsonb;

-- Payments with pending effects (few), in id order as Go compares strings: the ones a
-- crashed process left, which the pending-payment cleanup finishes.
CREATE INDEX payments_pending ON {schema}.payments ((id COLLATE "C"))
	WHERE NOT flag_del AND pending IS NOT NULL;
