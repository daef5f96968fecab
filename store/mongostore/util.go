package mongostore

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

func sortBy[T any](xs []T, key func(T) string) {
	slices.SortStableFunc(xs, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}

// findOne decodes the first document matching filter with decode, or returns notFound.
func findOne[T any](ctx context.Context, c *mongo.Collection, filter bson.D, decode func(bson.Raw) (T, error), what, id string, opts ...options.Lister[options.FindOneOptions]) (T, error) {
	var zero T
	raw, err := c.FindOne(ctx, filter, opts...).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return zero, notFound(what, id)
	}
	if err != nil {
		return zero, opErr("find "+what, err)
	}
	v, err := decode(raw)
	if err != nil {
		return zero, malformed(c.Name(), raw, err)
	}
	return v, nil
}

// findLive decodes the live (not soft-deleted) document with the billing id, or returns
// notFound. It filters on the exact _id only and checks flag_del here, so FerretDB v1 answers
// without a collection scan.
func findLive[T any](ctx context.Context, c *mongo.Collection, id string, decode func(bson.Raw) (T, error), what string) (T, error) {
	var zero T
	raw, err := c.FindOne(ctx, byID(id)).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return zero, notFound(what, id)
	}
	if err != nil {
		return zero, opErr("find "+what, err)
	}
	if deleted, _ := raw.Lookup("flag_del").BooleanOK(); deleted {
		return zero, notFound(what, id)
	}
	v, err := decode(raw)
	if err != nil {
		return zero, malformed(c.Name(), raw, err)
	}
	return v, nil
}

// prepareInsert starts an Insert method: it returns ctx's error, if any, and otherwise gives
// *id a new billing id when it is empty.
func prepareInsert(ctx context.Context, id *string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if *id == "" {
		*id = billing.NewID()
	}
	return nil
}

func insert(ctx context.Context, c *mongo.Collection, doc bson.D, what, id string) error {
	if _, err := c.InsertOne(ctx, doc); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return conflict(what, id)
		}
		return opErr("insert "+what, err)
	}
	return nil
}

func unmarshal[T any](raw bson.Raw) (T, error) {
	var d T
	err := bson.Unmarshal(raw, &d)
	return d, err
}
