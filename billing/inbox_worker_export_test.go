package billing

// SetInboxWorkerBusy replaces w's test of whether applying events takes the CPU from
// acknowledgements (InboxConfig.BusyShare), so tests can hold it either way.
func SetInboxWorkerBusy(w *InboxWorker, busy func() bool) { w.busy = busy }
