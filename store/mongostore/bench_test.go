package mongostore_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// Benchmarks: warn + expire over N subscriptions of N users (half ending in two days, half
// ended yesterday) three ways on the same server:
//
//   - mongostore: billing.Service's CheckExpiringSubscriptions and
//     ProcessExpiredSubscriptions on mongostore (claims, per-record updates, notifications,
//     audit, user access);
//   - raw: the minimal driver operations for the same changes: two updateMany on
//     subscriptions and one on the expired subscriptions' users (access revoked);
//   - loop: the seed's way, find the due documents and update them (and, for an expiry,
//     the user) one at a time.
//
// Each reports ms per subscription and the peak HeapInuse seen while it ran (sampled every
// 5 ms), and prints the commands and statements it sent per subscription, by command and
// collection (a command monitor counts them while the variant runs). mongostore runs at N
// and 10N to show memory does not grow with N.
//
//	eval "$(scripts/ferretdb start)"; BENCH_N=2000 go test -run '^$' -bench . -benchtime 1x ./store/mongostore
//
// or scripts/bench-mongo. BENCH_N defaults to 2000 (FerretDB is slow), BENCH_BATCH to 200;
// set MONGODB_TEST_URI to a real MongoDB to compare.
func BenchmarkWarnExpire(b *testing.B) {
	n := testkit.EnvInt("BENCH_N", 2000)
	counts := &commandCounts{}
	c, err := mongo.Connect(options.Client().ApplyURI(testURI(b)).SetTimeout(2 * time.Minute).
		SetMonitor(&event.CommandMonitor{Started: counts.started, Succeeded: counts.succeeded, Failed: counts.failed}))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Disconnect(context.Background()) }()
	got := map[string]benchResult{}
	run := func(name string, size int, v variant) {
		b.Run(fmt.Sprintf("%s/N=%d", name, size), func(b *testing.B) {
			got[name+"/"+strconv.Itoa(size)] = benchVariant(b, c, counts, size, v)
		})
	}
	for _, size := range []int{n, 10 * n} {
		if size > n && (os.Getenv("BENCH_10N") == "0" || os.Getenv("BENCH_10N") == "" && size > 2000) {
			// 10N on FerretDB v1 takes hours (every write scans the collection); opt in.
			continue
		}
		run("mongostore", size, runService)
	}
	run("raw", n, runRaw)
	run("loop", n, runLoop)
	// The ratios the engine's targets are stated in, from this run.
	ratio := func(what, a, b string, f func(x, y benchResult) float64) {
		x, okx := got[a]
		y, oky := got[b]
		if okx && oky && y.msPerSub > 0 {
			fmt.Printf("ratio %-34s %6.2fx\n", what, f(x, y))
		}
	}
	ms := func(x, y benchResult) float64 { return x.msPerSub / y.msPerSub }
	m, m10 := "mongostore/"+strconv.Itoa(n), "mongostore/"+strconv.Itoa(10*n)
	ratio("mongostore / raw driver", m, "raw/"+strconv.Itoa(n), ms)
	ratio("loop / mongostore (speed-up)", "loop/"+strconv.Itoa(n), m, ms)
	ratio("mongostore per sub, 10N / N", m10, m, ms)
	ratio("mongostore peak heap, 10N / N", m10, m, func(x, y benchResult) float64 { return x.peakMB / y.peakMB })
}

type benchResult struct{ msPerSub, peakMB float64 }

// benchBatch is the batch size of the store and the service: BENCH_BATCH, 200 by default.
// A sweep of fewer records than a batch runs no batch's effects while the next batch is
// claimed, so its peak heap holds one batch where a longer sweep holds two: compare N and
// 10N with N/2 at least twice the batch size to see what grows with the collection alone.
func benchBatch() int { return testkit.EnvInt("BENCH_BATCH", 200) }

type variant func(ctx context.Context, b *testing.B, db *mongo.Database, st *mongostore.Store, n int)

func benchVariant(b *testing.B, c *mongo.Client, counts *commandCounts, n int, run variant) benchResult {
	ctx := context.Background()
	var cpu time.Duration
	elapsed, peak := testkit.Sweeps(b, n, func() testkit.SweepRound {
		db := freshDB(b, c)
		st := newStore(b, db, mongostore.Config{BatchSize: benchBatch(), FerretDBIDIndex: benchByID()})
		seedBench(ctx, b, st, n)
		benchPGIndex(ctx, b, db)
		counts.reset(true)
		return testkit.SweepRound{Store: st,
			Sweep: func() {
				c0 := serverCPU(b)
				run(ctx, b, db, st, n)
				cpu += serverCPU(b) - c0
				counts.reset(false)
			},
			Counts: func() (warned, withPlan int, err error) {
				fmt.Printf("%s: per subscription %s\n", b.Name(), counts.perSub(n))
				w, err := db.Collection("subscriptions").CountDocuments(ctx, bson.D{{Key: "expiration_warning_sent", Value: true}})
				if err != nil {
					return int(w), 0, err
				}
				p, err := db.Collection("users").CountDocuments(ctx, bson.D{{Key: "plan_id", Value: "p1"}})
				return int(w), int(p), err
			}}
	})
	r := benchResult{msPerSub: float64(elapsed.Milliseconds()) / float64(b.N*n), peakMB: float64(peak) / (1 << 20)}
	b.ReportMetric(r.msPerSub, "ms/sub")
	b.ReportMetric(r.peakMB, "peak-heap-MB")
	if os.Getenv("BENCH_SERVER_PIDS") != "" {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*n), "server-cpu-ms/sub")
	}
	return r
}

// serverCPU returns the CPU time (user and system) the processes of BENCH_SERVER_PIDS have
// used so far, with their children's, live (PostgreSQL's backends under its postmaster) or
// reaped, read from Linux's /proc: how much of the server's work a sweep costs, which
// wall-clock time on a loaded machine does not tell. Without BENCH_SERVER_PIDS it is 0.
func serverCPU(b *testing.B) time.Duration {
	var ticks int64
	stat := func(pid string, withReaped bool) {
		raw, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return // a backend that just exited: its time is in its parent's reaped total
		}
		// Fields after the command name (in parentheses): state is 3; utime, stime, cutime
		// and cstime are 14 to 17.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		end := 13 // f[11], f[12]: utime, stime
		if withReaped {
			end = 15 // and cutime, cstime
		}
		for _, v := range f[11:end] {
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatalf("/proc/%s/stat: %v", pid, err)
			}
			ticks += t
		}
	}
	for _, pid := range strings.Fields(os.Getenv("BENCH_SERVER_PIDS")) {
		if _, err := os.Stat("/proc/" + pid); err != nil {
			b.Fatalf("BENCH_SERVER_PIDS: process %s: %v", pid, err)
		}
		stat(pid, true)
		tasks, _ := os.ReadDir("/proc/" + pid + "/task")
		for _, task := range tasks {
			children, _ := os.ReadFile("/proc/" + pid + "/task/" + task.Name() + "/children")
			for _, child := range strings.Fields(string(children)) {
				stat(child, false)
			}
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

var benchNow = testkit.SweepNow

// benchPGIndex runs mongostore.IndexFerretDBPostgreSQL on db when the server is FerretDB on
// the PostgreSQL of POSTGRES_TEST_URI, for every variant alike, unless BENCH_PG_INDEX=0.
func benchPGIndex(ctx context.Context, b testing.TB, db *mongo.Database) {
	if os.Getenv("BENCH_PG_INDEX") == "0" {
		return
	}
	if pg := ferretPostgres(b, db); pg != nil {
		if err := mongostore.IndexFerretDBPostgreSQL(ctx, pg, db.Name()); err != nil {
			b.Fatal(err)
		}
	}
}

// benchByID is mongostore.Config.FerretDBIDIndex for the bench: on with the _id index (see
// benchPGIndex), unless BENCH_BY_ID=0 (the index without the option, for an A/B run). The
// option does nothing where the server pushes no field filter down.
func benchByID() bool {
	return os.Getenv("BENCH_PG_INDEX") != "0" && os.Getenv("BENCH_BY_ID") != "0" && os.Getenv("POSTGRES_TEST_URI") != ""
}

// seedBench inserts one plan and n users, each with one active subscription: half end in
// two days (warned), half ended yesterday (expired, with the user's access).
func seedBench(ctx context.Context, b testing.TB, st *mongostore.Store, n int) {
	b.Helper()
	p := testkit.SweepPlan()
	if err := st.InsertPlan(ctx, &p); err != nil {
		b.Fatal(err)
	}
	subs := testkit.SweepSubscriptions(n, 6)
	users := make([]any, n)
	for i, sub := range subs {
		users[i] = bson.D{{Key: "_id", Value: sub.UserID}, {Key: "email", Value: sub.UserID + "@example.com"}, {Key: "name", Value: "U"},
			{Key: "plan_id", Value: "p1"}, {Key: "subscription_id", Value: sub.ID}, {Key: "subscription_status", Value: "active"},
			{Key: "access_until", Value: sub.CurrentPeriodEnd}, {Key: "created_at", Value: benchNow}, {Key: "flag_del", Value: false}}
	}
	if _, err := st.Database().Collection("users").InsertMany(ctx, users); err != nil {
		b.Fatal(err)
	}
	if err := st.InsertSubscriptions(ctx, subs); err != nil {
		b.Fatal(err)
	}
}

func runService(ctx context.Context, b *testing.B, _ *mongo.Database, st *mongostore.Store, n int) {
	testkit.RunSweep(ctx, b, st, n, billing.Config{BatchSize: benchBatch()})
}

func dueFilters() (warn, expire bson.D) {
	warn = bson.D{{Key: "status", Value: "active"}, {Key: "flag_del", Value: bson.D{{Key: "$ne", Value: true}}},
		{Key: "expiration_warning_sent", Value: bson.D{{Key: "$ne", Value: true}}},
		{Key: "current_period_end", Value: bson.D{{Key: "$gt", Value: benchNow}, {Key: "$lte", Value: benchNow.Add(72 * time.Hour)}}}}
	expire = bson.D{{Key: "status", Value: "active"}, {Key: "flag_del", Value: bson.D{{Key: "$ne", Value: true}}},
		{Key: "current_period_end", Value: bson.D{{Key: "$lte", Value: benchNow}}}}
	return warn, expire
}

// revokeAccess is the user side of an expiry: the plan taken away.
var revokeAccess = bson.D{{Key: "$unset", Value: bson.D{{Key: "plan_id", Value: ""}}},
	{Key: "$set", Value: bson.D{{Key: "subscription_status", Value: "inactive"}, {Key: "updated_at", Value: benchNow}}}}

func runRaw(ctx context.Context, b *testing.B, db *mongo.Database, _ *mongostore.Store, _ int) {
	c := db.Collection("subscriptions")
	warn, expire := dueFilters()
	if _, err := c.UpdateMany(ctx, warn, bson.D{{Key: "$set", Value: bson.D{{Key: "expiration_warning_sent", Value: true}, {Key: "updated_at", Value: benchNow}}}}); err != nil {
		b.Fatal(err)
	}
	cur, err := c.Find(ctx, expire, options.Find().SetProjection(bson.D{{Key: "user_id", Value: 1}}))
	if err != nil {
		b.Fatal(err)
	}
	var in bson.A
	for cur.Next(ctx) {
		in = append(in, cur.Current.Lookup("user_id"))
	}
	if err := cur.Err(); err != nil {
		b.Fatal(err)
	}
	_ = cur.Close(ctx)
	if _, err := c.UpdateMany(ctx, expire, bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "inactive"}, {Key: "updated_at", Value: benchNow}}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Collection("users").UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}, revokeAccess); err != nil {
		b.Fatal(err)
	}
}

func runLoop(ctx context.Context, b *testing.B, db *mongo.Database, _ *mongostore.Store, _ int) {
	c := db.Collection("subscriptions")
	warn, expire := dueFilters()
	each := func(filter bson.D, set bson.D, revoke bool) {
		cur, err := c.Find(ctx, filter)
		if err != nil {
			b.Fatal(err)
		}
		var docs []bson.M // the seed's to_list(): every due document in memory
		if err := cur.All(ctx, &docs); err != nil {
			b.Fatal(err)
		}
		for _, d := range docs {
			if revoke {
				if _, err := db.Collection("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: d["user_id"]}}, revokeAccess); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: d["_id"]}}, bson.D{{Key: "$set", Value: set}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	each(warn, bson.D{{Key: "expiration_warning_sent", Value: true}, {Key: "updated_at", Value: benchNow}}, false)
	each(expire, bson.D{{Key: "status", Value: "inactive"}, {Key: "updated_at", Value: benchNow}}, true)
}

// commandCounts counts, while on, the commands the client sends and the statements they
// carry (the updates of an update, the documents of an insert), by command and collection,
// and the time they took from send to reply. It keeps counters only (and the key of each
// command in flight), so it adds nothing that grows with the run to the peak heap.
type commandCounts struct {
	mu       sync.Mutex
	on       bool
	cmds     map[string]int
	stmts    map[string]int
	took     map[string]time.Duration
	inFlight map[int64]string // request id -> key
}

func (c *commandCounts) reset(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.cmds, c.stmts, c.took, c.inFlight = map[string]int{}, map[string]int{}, map[string]time.Duration{}, map[int64]string{}
	}
	c.on = on
}

func (c *commandCounts) succeeded(_ context.Context, e *event.CommandSucceededEvent) {
	c.done(e.RequestID, e.Duration)
}

func (c *commandCounts) failed(_ context.Context, e *event.CommandFailedEvent) {
	c.done(e.RequestID, e.Duration)
}

func (c *commandCounts) done(req int64, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if key, ok := c.inFlight[req]; ok {
		delete(c.inFlight, req)
		c.took[key] += d
	}
}

func (c *commandCounts) started(_ context.Context, e *event.CommandStartedEvent) {
	coll, ok := e.Command.Lookup(e.CommandName).StringValueOK()
	if !ok {
		return // getMore, endSessions, buildInfo...
	}
	stmts := 1
	for _, arr := range []string{"updates", "deletes", "documents"} {
		if v, err := e.Command.LookupErr(arr); err == nil {
			if vals, err := v.Array().Values(); err == nil {
				stmts = len(vals)
			}
		}
	}
	key := e.CommandName + " " + coll
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		c.cmds[key]++
		c.stmts[key] += stmts
		c.inFlight[e.RequestID] = key
	}
}

// perSub formats the counts per subscription: "update subscriptions 0.03 (0.51 statements,
// 1.20 ms)", the time being the commands' round trips added up.
func (c *commandCounts) perSub(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	total := 0
	for k, v := range c.cmds {
		keys = append(keys, k)
		total += v
	}
	slices.Sort(keys)
	parts := []string{fmt.Sprintf("%.3f commands", float64(total)/float64(n))}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.3f (%.3f statements, %.2f ms)", k, float64(c.cmds[k])/float64(n), float64(c.stmts[k])/float64(n),
			float64(c.took[k].Microseconds())/1000/float64(n)))
	}
	return strings.Join(parts, "; ")
}
