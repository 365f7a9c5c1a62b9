/* progress.h -- internal: progress reports and cancellation of long calls
 * (train, add, k-means), local and server-side.
 *
 * A JobScope lives on the stack of a long C API call. It reads the calling
 * thread's settings -- a progress callback, a cancel token (faissx.h), or a
 * server job record (JobSink, set by net/handler.cpp around the call) --
 * and is the thread's "current job" while it lives. Work reports units done
 * with step(); a requested cancellation takes effect (fx::Error with
 * FAISSX_E_CANCELED) only while the job is interruptible, i.e. while the
 * caller is able to undo what was done. faiss's own polling
 * (faiss::InterruptCallback, e.g. once per k-means iteration and between
 * distance blocks) consults the current job of the polling thread. */
#ifndef FX_PROGRESS_H
#define FX_PROGRESS_H

#include "core/bridge.h"

#include <faiss/IndexFlat.h>

#include <atomic>

namespace fx {

/* A server-side job as the PROGRESS / CANCEL requests see it. The handler
 * owns it; the worker running the call updates done/total, another worker
 * raises `cancel`. */
struct JobSink {
    std::atomic<int64_t> done{0};
    std::atomic<int64_t> total{0};
    std::atomic<int> op{0};
    std::atomic<bool> cancel{false};
    std::atomic<bool> cancelled{false}; /* the call stopped because of it */
    double t0 = 0;                      /* monotonic seconds at the start */
};

/* Sets the calling thread's job sink (nullptr: none); returns the old one. */
JobSink* job_attach_sink(JobSink* sink);

/* Monotonic clock, seconds. */
double now_s();

/* True when the calling thread has a progress callback, a cancel token or
 * a job sink: long calls then take their reporting path. */
bool job_wanted();

/* True when the calling thread's cancel token is raised. */
bool job_token_raised();

class JobScope {
public:
    /* Starts a job of `total` units (>= 1) for the calling thread. Throws
     * Error(FAISSX_E_CANCELED) if cancellation is already requested. */
    JobScope(int op, int64_t total);
    ~JobScope();
    JobScope(const JobScope&) = delete;
    JobScope& operator=(const JobScope&) = delete;

    void set_total(int64_t total);
    /* While on, a requested cancellation stops the work (step() throws, and
     * faiss's InterruptCallback polls see it); the caller undoes the
     * partial work. */
    void set_interruptible(bool on);
    /* Reports `done` units (clamped to [done so far, total]) and calls the
     * callback; throws Error(FAISSX_E_CANCELED) when interruptible and a
     * cancellation is requested. */
    void step(int64_t done);
    /* One more unit. */
    void tick() { step(done_ + 1); }
    /* Whether a cancellation has been requested (token, sink, callback). */
    bool cancel_requested();
    /* Whether this job stopped because of a cancellation. */
    bool cancelled() const { return cancelled_; }
    /* Whether the progress callback (rather than a token or CANCEL) asked
     * for the cancellation. */
    bool cancelled_by_callback() const { return cb_cancel_; }
    bool interruptible() const { return interruptible_; }
    /* Records that the job stops for a cancellation; returns the message. */
    const char* mark_cancelled();
    int64_t done() const { return done_; }
    int64_t total() const { return total_; }

    /* The calling thread's current job, or nullptr. */
    static JobScope* current();

private:
    [[noreturn]] void throw_cancelled();
    void report();

    int op_;
    int64_t done_ = 0, total_ = 1;
    double t0_;
    FaissxProgressCallback cb_;
    void* user_;
    FaissxCancelToken* token_;
    JobSink* sink_;
    bool interruptible_ = false;
    bool cb_cancel_ = false;
    bool cancelled_ = false;
    JobScope* prev_;
};

/* The FaissxError of an exception thrown during `job` (call only inside a
 * catch block): FAISSX_E_CANCELED when the job was cancelled (also when
 * faiss's InterruptCallback threw), else handle_exception's code. */
int job_exception(const char* func, JobScope& job);

/* A flat index that counts each search as one unit of the current job:
 * k-means runs exactly one search per iteration, so given to faiss's
 * Clustering (directly, or as an IVF's clustering_index) it turns
 * iterations into progress. Results are those of an IndexFlat. */
struct CountingFlat : faiss::IndexFlat {
    CountingFlat(int d, faiss::MetricType m) : faiss::IndexFlat(d, m) {}
    void search(idx_t n, const float* x, idx_t k, float* distances,
                idx_t* labels,
                const faiss::SearchParameters* params = nullptr)
            const override;
};

/* Long calls on a local index with reporting and rollback (index.cpp). */
int train_with_job(const char* func, faiss::Index* ix, idx n,
                   const float* x);
int add_with_job(const char* func, faiss::Index* ix, idx n, const float* x,
                 const idx* xids);

} // namespace fx

#endif
