package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/talowa/wedge/wasm/wasmbuild"
)

// TestPoolHammer drives one module's instance pool on its own, with no guest
// calls: many goroutines get (take, else wait), put and discard instances at
// random, in rounds. Between rounds, with every worker parked (some holding
// an instance) and the refill done, each instance must be exactly one of
// idle, busy or missing, and the live-instances gauge must count the idle
// and busy ones; no instance may ever be handed to two holders at once; and
// close, called while a refill may still be running, must leave no live
// instance. Bounded in rounds and in time; run it under -race.
func TestPoolHammer(t *testing.T) {
	const (
		size    = 4
		workers = 2 * size // more goroutines than instances: waits and hand-offs
		keepers = size / 2 // workers that may hold an instance across a round's end
		rounds  = 20
		ops     = 100 // per worker per round
		discard = 64  // one op in discard is a discard, which costs an instantiation
	)
	ctx := context.Background()
	path, err := wasmbuild.Cached(ctx, "internal/testguests/noop", wasmbuild.DefaultCacheDir())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRuntime(ctx, NewConfig().WithPoolSize(size).WithCompilationCache(wasmbuild.CompilationCacheDir()).
		WithRegisterer(prometheus.NewRegistry()).WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, Spec{Name: "hammer", Version: "1", Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	p := m.pool

	// live reads the module's instances gauge, which instances move as
	// they are created and closed.
	live := func() int {
		var d dto.Metric
		if err := m.series.instances.Write(&d); err != nil {
			t.Fatal(err)
		}
		return int(d.GetGauge().GetValue())
	}
	var inUse sync.Map // *instance -> its holder, while one holds it
	held := make([]*instance, workers)
	get := func(w int) *instance {
		i := p.take()
		if i == nil {
			// Waits end once a put or a refill hands an instance over; the
			// bound only turns a lost wake-up into a failure, not a hang.
			var err error
			if i, err = p.wait(10 * time.Second); err != nil {
				t.Errorf("worker %d: %v", w, err)
				return nil
			}
		}
		if other, dup := inUse.LoadOrStore(i, w); dup {
			t.Errorf("instance handed to worker %d while worker %d holds it", w, other)
		}
		return i
	}
	giveBack := func(i *instance, rnd *rand.Rand) {
		inUse.Delete(i)
		if rnd.IntN(discard) == 0 {
			p.discard(i, "hammer")
			return
		}
		p.put(i)
	}
	check := func(when string) {
		t.Helper()
		// A refill between missing's decrement and its put holds an instance
		// nowhere the counts see: wait for it, as for the workers.
		filled := make(chan struct{})
		go func() { p.fillers.Wait(); close(filled) }()
		select {
		case <-filled:
		case <-time.After(time.Minute):
			t.Fatalf("%s: the refill never ended", when)
		}
		idle, busy := 0, 0
		for k := range p.slots {
			if p.slots[k].Load() != nil {
				idle++
			}
		}
		for _, i := range held {
			if i != nil {
				busy++
			}
		}
		missing := int(p.missing.Load())
		if n := live(); idle+busy+missing != size || n != idle+busy || p.waiters.Load() != 0 {
			t.Fatalf("%s: idle %d + busy %d + missing %d, want %d; live %d; waiters %d",
				when, idle, busy, missing, size, n, p.waiters.Load())
		}
	}

	deadline := time.Now().Add(20 * time.Second)
	r := 0
	for ; r < rounds && time.Now().Before(deadline) && !t.Failed(); r++ {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rnd := rand.New(rand.NewPCG(uint64(r), uint64(w)))
				if held[w] != nil {
					giveBack(held[w], rnd)
					held[w] = nil
				}
				for range ops {
					i := get(w)
					if i == nil {
						return
					}
					giveBack(i, rnd)
				}
				if w < keepers && rnd.IntN(2) == 0 {
					held[w] = get(w)
				}
			})
		}
		wg.Wait()
		check(fmt.Sprint("after round ", r))
	}
	t.Logf("%d rounds of %d workers x %d operations", r, workers, ops)

	// Close the module, which closes the pool once nothing is in flight,
	// with a refill likely still running.
	for w, i := range held {
		if i != nil {
			inUse.Delete(i)
			p.discard(i, "hammer")
			held[w] = nil
		}
	}
	m.Close()
	<-m.Done()
	for k := range p.slots {
		if p.slots[k].Load() != nil {
			t.Fatalf("slot %d holds an instance after close", k)
		}
	}
	if n := live(); n != 0 {
		t.Fatalf("%d instances live after close", n)
	}
}
