/* jobs.cpp -- the server's table of running jobs (jobs.h). */
#include "net/jobs.h"

namespace fx {

std::shared_ptr<JobSink> JobTable::start(const Key& k) {
    auto sink = std::make_shared<JobSink>();
    sink->t0 = now_s();
    std::lock_guard<std::mutex> g(mu_);
    auto e = early_.find(k);
    if (e != early_.end()) {
        sink->cancel.store(true);
        early_.erase(e);
    }
    running_[k] = sink;
    return sink;
}

void JobTable::finish(const Key& k) {
    std::lock_guard<std::mutex> g(mu_);
    running_.erase(k);
}

std::shared_ptr<JobSink> JobTable::find(const Key& k) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = running_.find(k);
    return it == running_.end() ? nullptr : it->second;
}

bool JobTable::cancel(const Key& k) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = running_.find(k);
    if (it != running_.end()) {
        it->second->cancel.store(true);
        return true;
    }
    if (early_.emplace(k, 1).second) {
        early_order_.push_back(k);
        while (early_order_.size() > kEarly) {
            early_.erase(early_order_.front());
            early_order_.pop_front();
        }
    }
    return false;
}

} // namespace fx
