package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker"
)

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var rounds []time.Time
	start := time.Now()
	done := make(chan error)
	go func() {
		done <- broker.Every(ctx, 5*time.Millisecond, 20*time.Millisecond, func(context.Context) {
			rounds = append(rounds, time.Now())
			if len(rounds) == 3 {
				cancel()
			}
			time.Sleep(10 * time.Millisecond) // a slow round delays the next
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Every did not return when its context ended")
	}
	if len(rounds) != 3 {
		t.Fatalf("%d rounds, want 3 (none after the context ended)", len(rounds))
	}
	if d := rounds[0].Sub(start); d < 5*time.Millisecond {
		t.Errorf("first round after %v, want ≥ 5ms", d)
	}
	for i := 1; i < len(rounds); i++ {
		if d := rounds[i].Sub(rounds[i-1]); d < 30*time.Millisecond {
			t.Errorf("round %d %v after the previous began, want ≥ its 10ms plus the 20ms period", i, d)
		}
	}
}

func TestEveryEndsBeforeTheFirstRound(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := broker.Every(ctx, time.Hour, time.Hour, func(context.Context) { t.Error("a round ran") }); err != nil {
		t.Fatal(err)
	}
}
