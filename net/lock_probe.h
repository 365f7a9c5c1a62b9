/* lock_probe.h -- internal: --test-lock-probe DIR, a testing aid
 * (docs/operations.md, "Testing aids"). It makes the server's index locks
 * visible from outside and holds each probed request inside its lock until
 * a test lets it go, so a test shows without timing that searches of one
 * index hold its lock together and writes hold it alone
 * (tests/test_remote_locks.c).
 *
 * Probed: the read lock of SEARCH, ASSIGN and RANGE_SEARCH, and the write
 * lock (WriteLock in handler.cpp) that ADD, ADD_WITH_IDS, TRAIN, RESET,
 * REMOVE_IDS, SET_PARAM and ADD_STREAM (and the binary add, train, reset
 * and remove) take on an index held in memory (a stored index's writers
 * share its entry lock: its store serialises them, persist/store.h).
 * For each:
 *   1. if a try-lock fails (the lock is held in a conflicting mode), the
 *      file DIR/INDEX.blocked-MODE.N is created, then the request waits
 *      for the lock as it always does;
 *   2. with the lock held it creates DIR/INDEX.MODE.N and waits, lock
 *      held, until that file is removed (or 10 minutes passed);
 *   3. if, holding the lock, it finds another holder it should exclude (a
 *      writer with anyone, a reader with a writer), it also creates
 *      DIR/OVERLAP.INDEX.N: the lock failed.
 * INDEX is the index's name (handle-H for an unnamed one), MODE read or
 * write, N a sequence number of the server; a file holds the op number. */
#ifndef FX_LOCK_PROBE_H
#define FX_LOCK_PROBE_H

#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>

namespace fx {

class LockProbe {
public:
    explicit LockProbe(std::string dir) : dir_(std::move(dir)) {}
    /* Takes mu (for writing when `write`, else shared) as described above;
     * returns once the test removed the request's file. */
    void lock(std::shared_mutex& mu, bool write, const std::string& index,
              int op);
    /* Releases mu taken by lock(). */
    void unlock(std::shared_mutex& mu, bool write);

private:
    struct Holders {
        int readers = 0;
        int writers = 0;
    };
    /* Creates DIR/name holding `op`; returns its path. */
    std::string mark(const std::string& name, int op) noexcept;

    std::string dir_;
    std::atomic<unsigned long long> seq_{0};
    std::mutex mu_;
    std::map<const void*, Holders> held_; // by lock, under mu_
};

} // namespace fx

#endif
