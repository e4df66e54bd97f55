"""ErrorBus under a steady stream from many agents (found by tests/soak):
the write-ahead log is copied into the database and started over, and the
volume stored does not stay resident.  Before the fixes the checkpoint
thread's connection had never read the database, so every one of its
checkpoints was a no-op and error_system.db-wal grew by megabytes a second
until keeld stopped; and the writer's 64 MiB page cache kept every page it
filled, growing keeld by ~2 MiB a minute at 100 events/s."""
import os
import time

from conftest import not_instrumented, scaled
from errorbus_util import Publisher, query, stored, wait_for

MIB = 1024 * 1024


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_wal_stays_bounded_under_a_steady_stream(keel_factory):
    """300 events/s from 1,000 agents for 10 s: small transactions every
    50 ms, each touching pages all over the indexes, ~8 MB of WAL a second.
    The WAL file must be started over (truncated) as it goes, never
    approaching what was written."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    wal = os.path.join(k.data_dir, "errorbus", "error_system.db-wal")
    rate, seconds = 300, 10
    largest, sent, t0 = 0, 0, time.time()
    while time.time() - t0 < seconds:
        while sent < (time.time() - t0) * rate:
            pub.f1({"agent": "Steady%04d" % (sent % 1000), "error_type": "timeout",
                    "message": "request %d timed out" % sent, "severity": "ERROR"})
            sent += 1
        largest = max(largest, os.path.getsize(wal) if os.path.exists(wal) else 0)
        time.sleep(0.01)
    assert len(stored(k, "Steady0999", sent // 1000, timeout=scaled(20))) >= sent // 1000
    stats = query(k, "get_statistics")["data"]
    assert stats["dropped"] == 0 and stats["write_failed"] == 0, stats
    # The restart threshold is 16 MiB (WAL_RESTART_FRAMES) plus what one
    # 500 ms pass lets accumulate; without checkpoints this run writes ~80 MB.
    assert largest < 32 * MIB, "WAL reached %.1f MiB" % (largest / MIB)


@not_instrumented
def test_stored_volume_does_not_stay_resident(keel_factory):
    """About 50 MB written to error_system.db, in paced chunks so the queue
    never holds much: resident memory grows by well under that."""
    k = keel_factory("errorbus")
    pub = Publisher(k)
    pub.join()
    filler = "x" * 2000
    # Chunk 0 is the warm-up: the first batches size the writer's buffers.
    chunk, chunks = 1000, 12
    for c in range(chunks + 1):
        for i in range(chunk):
            # Many agents, as a fleet sends: inserts spread over errors_agent.
            pub.f1({"agent": "Mem%03d" % (i % 200), "error_type": "volume",
                    "message": "event %d.%d %s" % (c, i, filler)})
        want = (c + 1) * chunk // 200
        assert len(stored(k, "Mem000", want, timeout=scaled(30))) == want
        if c == 0:
            before = vm_rss(k.proc.pid)
    total = (chunks + 1) * chunk
    stats = wait_for(lambda: (lambda d: d if d["stored"] >= total else None)(
        query(k, "get_statistics")["data"]), timeout=30) or query(k, "get_statistics")["data"]
    assert stats["dropped"] == 0 and stats["stored"] >= total, stats
    growth = vm_rss(k.proc.pid) - before
    # ~12 000 rows of ~4.5 kB (message and raw JSON) is ~50 MB of pages
    # written; the old 64 MiB cache kept them all (+60 MiB measured).
    assert growth < 16 * MIB, "RSS grew %.1f MiB while storing ~50 MB" % (growth / MIB)
