/* jobs.h -- internal: the server's table of running jobs, for PROGRESS and
 * CANCEL (docs/protocol.md, "Progress and cancellation").
 *
 * A TRAIN / ADD / ADD_WITH_IDS request whose header has FX_FLAG_JOB runs
 * as a job named by (tenant, client id, request id); only requests of the
 * same tenant and client can see or cancel it. A CANCEL that arrives
 * before its job started is remembered (the last kEarly of them), so the
 * job is cancelled as it starts. */
#ifndef FX_JOBS_H
#define FX_JOBS_H

#include "core/progress.h"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace fx {

class JobTable {
public:
    static constexpr size_t kEarly = 4096;
    using Key = std::tuple<std::string, uint64_t, uint64_t>;

    /* Registers a starting job; its sink starts cancelled if a CANCEL for
     * it came first. */
    std::shared_ptr<JobSink> start(const Key& k);
    /* Unregisters a finished job. */
    void finish(const Key& k);
    /* The running job's sink, or nullptr (not started, or finished). */
    std::shared_ptr<JobSink> find(const Key& k);
    /* Cancels the job; returns whether it was running (else the request is
     * remembered for when it starts). */
    bool cancel(const Key& k);

private:
    std::mutex mu_;
    std::map<Key, std::shared_ptr<JobSink>> running_;
    std::map<Key, int> early_;
    std::deque<Key> early_order_;
};

} // namespace fx

#endif
