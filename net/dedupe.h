/* dedupe.h -- internal: the server's memory of recent mutation replies, so
 * that a retried mutation (same tenant, client id and request id) is
 * applied once and gets the original reply (docs/protocol.md, "Retries").
 *
 * Bounds: the last kPerClient completed replies of each (tenant, client),
 * and kBudgetBytes of reply bytes in all; the oldest go first. A request
 * that arrives while its first copy still runs waits for that copy's
 * reply (until its own deadline). */
#ifndef FX_DEDUPE_H
#define FX_DEDUPE_H

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace fx {

class ReplyCache {
public:
    static constexpr size_t kPerClient = 1024;
    static constexpr size_t kBudgetBytes = (size_t)64 << 20;

    enum Outcome {
        RUN,     /* first sight: run the request, then finish() or abandon() */
        REPLAY,  /* a retry: *reply holds the original reply */
        EXPIRED, /* the first copy is still running and the deadline passed */
    };

    /* Looks the request up. deadline_ms is on now_ms()'s clock; 0 = wait
     * as long as the first copy runs. */
    Outcome begin(const std::string& tenant, uint64_t client, uint64_t request,
                  int op, uint64_t deadline_ms, std::vector<uint8_t>* reply,
                  int* status);
    /* Records the reply of a request begin() answered RUN for. */
    void finish(const std::string& tenant, uint64_t client, uint64_t request,
                int op, const uint8_t* reply, size_t len, int status);
    /* Forgets a RUN request without a reply (its retry will run it). */
    void abandon(const std::string& tenant, uint64_t client, uint64_t request);

    /* For tests and logs. */
    size_t entries();
    size_t bytes();
    size_t running(); /* requests begin() answered RUN, not yet ended */

    /* Steady-clock milliseconds, the clock of deadlines. */
    static uint64_t now_ms();

private:
    using Key = std::tuple<std::string, uint64_t, uint64_t>;
    using ClientKey = std::pair<std::string, uint64_t>;
    struct Done {
        std::vector<uint8_t> reply;
        int status = 0;
        int op = 0;
        std::list<Key>::iterator age;
    };
    void evict_oldest_locked();

    std::mutex mu_;
    std::condition_variable cv_;
    std::map<Key, Done> done_;
    std::set<Key> running_;
    std::list<Key> order_; /* completion order, oldest first */
    std::map<ClientKey, std::deque<uint64_t>> per_client_;
    size_t bytes_ = 0;
};

} // namespace fx

#endif
