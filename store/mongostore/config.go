package mongostore

import (
	"errors"
	"fmt"
	"time"
)

// ClaimMode says how the store makes claims and other conditional multi-record changes
// exclusive between replicas.
type ClaimMode int

const (
	// ClaimAuto (the zero value) asks the server on first use: FerretDB (which reports
	// ferretdbVersion in buildInfo) gets ClaimSerialized, MongoDB gets ClaimAtomic.
	ClaimAuto ClaimMode = iota
	// ClaimAtomic relies on the server evaluating an update's filter and applying it
	// atomically per document, as MongoDB does: updateMany({_id: {$in: batch}, <claimable>})
	// is the arbiter.
	ClaimAtomic
	// ClaimSerialized holds a short store-level lease (in the locks collection, arbitrated
	// by unique inserts) per collection around every write renewkit makes to its
	// documents, and checks the conditions of writes by id in the store, writing with the
	// filter {_id} alone. FerretDB v1 needs it: its updates read, then rewrite, each
	// document without re-checking the filter, so two concurrent conditional updates can
	// both "win"; and only an exact {_id} filter avoids a collection scan.
	ClaimSerialized
)

func (m ClaimMode) String() string {
	switch m {
	case ClaimAuto:
		return "auto"
	case ClaimAtomic:
		return "atomic"
	case ClaimSerialized:
		return "serialized"
	}
	return fmt.Sprintf("ClaimMode(%d)", int(m))
}

// MoneyFormat says how plans' price and payments' amount are stored.
type MoneyFormat int

const (
	// MoneyMinorUnits (the zero value) stores integers of minor units (cents): 4990 is
	// 49.90 BRL. It reads int32, int64, and double or decimal128 values that are whole
	// numbers; a fractional value (49.9) is a malformed record. renewkit writes int64.
	MoneyMinorUnits MoneyFormat = iota
	// MoneyMajorUnits stores major units (reais, dollars) as the original Python app
	// does: 49.9 is 49.90 BRL, read as 4990 minor units. It reads double, int32, int64
	// (29 is 29.00) and decimal128 values, rounded half away from zero to the currency's
	// minor unit (see doc.go, Money); renewkit writes a double (49.9).
	MoneyMajorUnits
)

func (m MoneyFormat) String() string {
	switch m {
	case MoneyMinorUnits:
		return "minor-units"
	case MoneyMajorUnits:
		return "major-units"
	}
	return fmt.Sprintf("MoneyFormat(%d)", int(m))
}

// References says how renewkit stores an id reference (user_id, plan_id, subscription_id)
// that it writes where none is stored: in a new document, or in a field that is missing or
// null. A reference already stored keeps its BSON type when renewkit changes it: an
// ObjectID stays an ObjectID and a string stays a string.
type References int

const (
	// ReferencesString (the zero value) stores strings, as the original app writes its
	// subscriptions ("user_id": str(user_id)).
	ReferencesString References = iota
	// ReferencesObjectID stores an id of 24 hex digits as an ObjectID; other ids stay
	// strings.
	ReferencesObjectID
)

func (r References) String() string {
	switch r {
	case ReferencesString:
		return "string"
	case ReferencesObjectID:
		return "objectid"
	}
	return fmt.Sprintf("References(%d)", int(r))
}

// value is the stored form of a new reference to id.
func (r References) value(id string) any {
	if r == ReferencesObjectID {
		return idValue(id)
	}
	return id
}

// Collections names the collections the store uses. Empty fields take the defaults, which
// are the original application's names plus renewkit's own.
type Collections struct {
	Users         string // default "users"
	Plans         string // default "plans"
	Subscriptions string // default "subscriptions"
	Payments      string // default "payments"
	Sessions      string // default "sessions"
	Audit         string // default "audit_logs"
	JobRuns       string // default "job_runs"
	JobStates     string // default "job_states"
	WebhookEvents string // default "webhook_events"
	Locks         string // default "locks"
	Notifications string // default "notifications"
	Snapshots     string // default "daily_snapshots"
}

// Config tunes the store. The zero value is the documented default for every field.
type Config struct {
	// Collections overrides collection names.
	Collections Collections
	// BatchSize bounds how many documents one bulk command touches: the ids of one
	// claim round (an updateMany on {_id: {$in: batch}}), and the documents of one
	// insertMany in InsertSubscriptions. Default 200. Keep it small on FerretDB v1.
	BatchSize int
	// ClaimMode defaults to ClaimAuto.
	ClaimMode ClaimMode
	// MutexTTL is the lease of the store-level mutex used in ClaimSerialized mode; a
	// replica that crashes while holding it blocks the others for at most this long.
	// Default 30 seconds.
	MutexTTL time.Duration
	// Money says how plans' price and payments' amount are stored; default
	// MoneyMinorUnits. Set MoneyMajorUnits for the original app's float prices.
	Money MoneyFormat
	// DefaultCurrency is the currency (ISO 4217, three letters, e.g. "BRL" for the
	// original app) of plans and payments stored without one. Empty (the default) reads
	// them with an empty currency. It is never written: a document without a currency
	// keeps none until renewkit writes a changed currency.
	DefaultCurrency string
	// References says how new references are stored; default ReferencesString. Stored
	// references keep their type either way.
	References References
	// FerretDBIDIndex says the database has the indexes IndexFerretDBPostgreSQL creates,
	// so that on FerretDB v1 on PostgreSQL a statement by one _id is an index lookup. The
	// store then writes and reads the documents of a batch one _id at a time where it
	// otherwise sends one statement for all of them ({_id: {$in: ...}} or a shared token,
	// which FerretDB answers by having PostgreSQL return every document the pushed-down
	// part of the filter matches): claims stamp each candidate by its _id, ListUsers reads
	// each user by its _id, and identical writes (finished notifications, access taken
	// away) are not merged into one updateMany. It changes what is sent, not what it
	// means, and only where the server pushes field filters down (FerretDB v1 on
	// PostgreSQL); elsewhere (MongoDB, FerretDB on SQLite) it is ignored. Default false:
	// without the index each statement by _id is a scan of the table.
	FerretDBIDIndex bool
}

// DefaultBatchSize is Config.BatchSize's default.
const DefaultBatchSize = 200

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("BatchSize: %d is negative; use 0 for the default (%d)", c.BatchSize, DefaultBatchSize))
	}
	if c.ClaimMode < ClaimAuto || c.ClaimMode > ClaimSerialized {
		errs = append(errs, fmt.Errorf("ClaimMode: %v is unknown; use ClaimAuto, ClaimAtomic or ClaimSerialized", c.ClaimMode))
	}
	if c.MutexTTL < 0 {
		errs = append(errs, fmt.Errorf("MutexTTL: %v is negative; use 0 for the default (30s)", c.MutexTTL))
	}
	if c.Money < MoneyMinorUnits || c.Money > MoneyMajorUnits {
		errs = append(errs, fmt.Errorf("Config.Money: %v is unknown; use MoneyMinorUnits (integers of cents) or MoneyMajorUnits (floats such as 49.9)", c.Money))
	}
	if c.References < ReferencesString || c.References > ReferencesObjectID {
		errs = append(errs, fmt.Errorf("References: %v is unknown; use ReferencesString or ReferencesObjectID", c.References))
	}
	if c.DefaultCurrency != "" && !validCurrency(c.DefaultCurrency) {
		errs = append(errs, fmt.Errorf("DefaultCurrency: %q is not a currency code; use three uppercase letters of ISO 4217, such as \"BRL\", or leave it empty", c.DefaultCurrency))
	}
	seen := map[string]string{}
	for _, f := range c.Collections.withDefaults().fields() {
		if err := validCollectionName(f.value); err != nil {
			errs = append(errs, fmt.Errorf("collection name Collections.%s: %w", f.name, err))
			continue
		}
		if other, ok := seen[f.value]; ok {
			errs = append(errs, fmt.Errorf("collection name Collections.%s: %q is also used for %s; give each part its own collection", f.name, f.value, other))
		}
		seen[f.value] = f.name
	}
	return errors.Join(errs...)
}

func validCollectionName(n string) error {
	switch {
	case n == "":
		return errors.New("empty name")
	case len(n) > 200:
		return fmt.Errorf("%q is longer than 200 bytes", n)
	}
	for _, r := range n {
		if r == '$' || r == 0 {
			return fmt.Errorf("%q contains '$' or NUL", n)
		}
	}
	return nil
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

type namedField struct{ name, value string }

func (c Collections) fields() []namedField {
	return []namedField{
		{"Users", c.Users}, {"Plans", c.Plans}, {"Subscriptions", c.Subscriptions}, {"Payments", c.Payments},
		{"Sessions", c.Sessions}, {"Audit", c.Audit}, {"JobRuns", c.JobRuns}, {"JobStates", c.JobStates},
		{"WebhookEvents", c.WebhookEvents}, {"Locks", c.Locks}, {"Notifications", c.Notifications},
		{"Snapshots", c.Snapshots},
	}
}

func (c Collections) withDefaults() Collections {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.Users, "users")
	def(&c.Plans, "plans")
	def(&c.Subscriptions, "subscriptions")
	def(&c.Payments, "payments")
	def(&c.Sessions, "sessions")
	def(&c.Audit, "audit_logs")
	def(&c.JobRuns, "job_runs")
	def(&c.JobStates, "job_states")
	def(&c.WebhookEvents, "webhook_events")
	def(&c.Locks, "locks")
	def(&c.Notifications, "notifications")
	def(&c.Snapshots, "daily_snapshots")
	return c
}

func (c Config) withDefaults() Config {
	c.Collections = c.Collections.withDefaults()
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MutexTTL == 0 {
		c.MutexTTL = 30 * time.Second
	}
	return c
}
