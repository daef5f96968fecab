package mongostore

import (
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// matches must agree with the server. The cases are the ones checked against FerretDB
// v1.24 and MongoDB semantics: empty values match missing and null fields, false matches
// missing, numbers compare across BSON types, arrays match exactly.
func TestMatches(t *testing.T) {
	d := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	oid := bson.NewObjectID()
	docs := map[int]bson.D{
		1: {}, 2: {{Key: "f", Value: nil}}, 3: {{Key: "f", Value: ""}}, 4: {{Key: "f", Value: "x"}},
		5: {{Key: "f", Value: false}}, 6: {{Key: "f", Value: true}}, 7: {{Key: "f", Value: bson.A{}}},
		8: {{Key: "f", Value: bson.A{"a"}}}, 9: {{Key: "f", Value: int64(0)}}, 10: {{Key: "f", Value: int32(0)}},
		11: {{Key: "f", Value: bson.NewDateTimeFromTime(d)}}, 12: {{Key: "f", Value: bson.A{"a", "b"}}},
		13: {{Key: "f", Value: 0.0}}, 14: {{Key: "f", Value: int32(3)}}, 15: {{Key: "f", Value: oid}},
		16: {{Key: "f", Value: oid.Hex()}},
	}
	cases := []struct {
		name string
		cond bson.D
		want []int
	}{
		{"in empty null", bson.D{{Key: "f", Value: bson.D{{Key: "$in", Value: bson.A{"", nil}}}}}, []int{1, 2, 3}},
		{"in null", bson.D{{Key: "f", Value: bson.D{{Key: "$in", Value: bson.A{nil}}}}}, []int{1, 2}},
		{"ne true", bson.D{{Key: "f", Value: bson.D{{Key: "$ne", Value: true}}}}, []int{1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{"in null []", bson.D{{Key: "f", Value: bson.D{{Key: "$in", Value: bson.A{nil, bson.A{}}}}}}, []int{1, 2, 7}},
		{"eq [a]", bson.D{{Key: "f", Value: []string{"a"}}}, []int{8}},
		{"eq [a b]", bson.D{{Key: "f", Value: []string{"a", "b"}}}, []int{12}},
		{"eq a", bson.D{{Key: "f", Value: "a"}}, []int{8, 12}},
		{"in 0 null", bson.D{{Key: "f", Value: bson.D{{Key: "$in", Value: bson.A{int64(0), nil}}}}}, []int{1, 2, 9, 10, 13}},
		{"eq int64 3", bson.D{{Key: "f", Value: int64(3)}}, []int{14}},
		{"exists false", bson.D{{Key: "f", Value: bson.D{{Key: "$exists", Value: false}}}}, []int{1}},
		{"exists true", bson.D{{Key: "f", Value: bson.D{{Key: "$exists", Value: true}}}}, []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		{"eq date", bson.D{{Key: "f", Value: bson.NewDateTimeFromTime(d)}}, []int{11}},
		{"lte date", bson.D{{Key: "f", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(d.Add(time.Second))}}}}, []int{11}},
		{"lte earlier date", bson.D{{Key: "f", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(d.Add(-time.Second))}}}}, nil},
		{"id match", bson.D{{Key: "f", Value: idMatch(oid.Hex())}}, []int{15, 16}},
		{"or", bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: "f", Value: "x"}}, bson.D{{Key: "f", Value: true}}}}}, []int{4, 6}},
	}
	for _, c := range cases {
		var got []int
		for i := 1; i <= len(docs); i++ {
			raw, err := bson.Marshal(docs[i])
			if err != nil {
				t.Fatal(err)
			}
			if matches(raw, c.cond) {
				got = append(got, i)
			}
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
			continue
		}
		for k := range got {
			if got[k] != c.want[k] {
				t.Errorf("%s: matched %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
	if matches(nil, bson.D{{Key: "f", Value: "x"}}) {
		t.Error("a missing document matched")
	}
}
