package seal_test

import (
	"context"
	"testing"
	"time"

	"github.com/sieve-broker/sieve/broker/seal"
)

func TestCheckInterval(t *testing.T) {
	for _, tc := range []struct {
		rotation, want time.Duration
	}{
		{rotation: 0, want: time.Minute},
		{rotation: 4 * time.Minute, want: time.Minute},
		{rotation: 16 * time.Minute, want: 2 * time.Minute},
		{rotation: 8 * time.Hour, want: time.Hour},
		{rotation: 90 * day, want: time.Hour},
	} {
		if got := seal.CheckInterval(tc.rotation); got != tc.want {
			t.Errorf("CheckInterval(%v) = %v, want %v", tc.rotation, got, tc.want)
		}
	}
}

// An unusable schedule stops the loop at once rather than running never.
func TestRunScheduleValidates(t *testing.T) {
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	r := &seal.Rotation{Every: 0}
	if err := r.RunSchedule(ctx, time.Millisecond, nil); err == nil {
		t.Fatal("a schedule without a sealer or period ran")
	}
}
