package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sieve-broker/sieve/broker/postgres/pgtest"
	"github.com/sieve-broker/sieve/commerce/postgres"
)

// TestShardKeys: on one PostgreSQL there are no shards to tell apart; on
// Citus shoppers with one key share a shard, so a worker group of them
// reads its subjects with a router query (one task), and a group across
// keys would not.
func TestShardKeys(t *testing.T) {
	ctx := context.Background()
	db := postgres.New(pgtest.New(t))
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("shp_%02d", i)
	}
	keys, err := db.Turns.ShardKeys(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !pgtest.IsCitus(t) {
		if keys != nil {
			t.Fatalf("keys on one PostgreSQL: %v", keys)
		}
		return
	}
	if len(keys) != len(ids) {
		t.Fatalf("%d keys for %d shoppers", len(keys), len(ids))
	}
	byKey := map[int64][]string{}
	for _, id := range ids {
		byKey[keys[id]] = append(byKey[keys[id]], id)
	}
	if len(byKey) < 2 {
		t.Fatalf("40 shoppers on one shard: %v", byKey)
	}
	tasks := func(group []string) string {
		t.Helper()
		return explain(t, db.DB.Pool, "SELECT id FROM subjects WHERE id = ANY($1)", group)
	}
	var mixed []string
	for _, group := range byKey {
		if len(group) > 1 {
			if plan := tasks(group); !strings.Contains(plan, "Task Count: 1\n") {
				t.Errorf("a group of one shard is not a router query:\n%s", plan)
			}
		}
		mixed = append(mixed, group[0])
	}
	if plan := tasks(mixed); strings.Contains(plan, "Task Count: 1\n") {
		t.Errorf("a group across shards planned as one task:\n%s", plan)
	}
}
