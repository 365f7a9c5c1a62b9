/* dedupe.cpp -- ReplyCache (see dedupe.h). */
#include "net/dedupe.h"

#include <algorithm>
#include <chrono>

namespace fx {

uint64_t ReplyCache::now_ms() {
    return (uint64_t)std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
}

ReplyCache::Outcome ReplyCache::begin(const std::string& tenant,
                                      uint64_t client, uint64_t request,
                                      int op, uint64_t deadline_ms,
                                      std::vector<uint8_t>* reply,
                                      int* status) {
    Key k(tenant, client, request);
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
        if (!running_.count(k)) break;
        // The first copy is still running: its reply is this one's.
        if (deadline_ms == 0) {
            cv_.wait(g);
        } else {
            uint64_t now = now_ms();
            if (now >= deadline_ms) return EXPIRED;
            cv_.wait_for(g, std::chrono::milliseconds(deadline_ms - now));
        }
    }
    auto it = done_.find(k);
    // The same ids with another op is not a retry (a client reusing ids):
    // run it, and its reply replaces the old one.
    if (it != done_.end() && it->second.op == op) {
        *reply = it->second.reply;
        *status = it->second.status;
        return REPLAY;
    }
    running_.insert(k);
    return RUN;
}

void ReplyCache::evict_oldest_locked() {
    const Key& k = order_.front();
    auto pc = per_client_.find(ClientKey(std::get<0>(k), std::get<1>(k)));
    if (pc != per_client_.end()) {
        auto& q = pc->second;
        auto pos = std::find(q.begin(), q.end(), std::get<2>(k));
        if (pos != q.end()) q.erase(pos); // the front, in practice
        if (q.empty()) per_client_.erase(pc);
    }
    auto it = done_.find(k);
    if (it != done_.end()) {
        bytes_ -= it->second.reply.size();
        done_.erase(it);
    }
    order_.pop_front();
}

void ReplyCache::finish(const std::string& tenant, uint64_t client,
                        uint64_t request, int op, const uint8_t* reply,
                        size_t len, int status) {
    Key k(tenant, client, request);
    {
        std::lock_guard<std::mutex> g(mu_);
        running_.erase(k);
        auto old = done_.find(k);
        if (old != done_.end()) { // replaced (ids reused with another op)
            auto& q = per_client_[ClientKey(tenant, client)];
            auto pos = std::find(q.begin(), q.end(), request);
            if (pos != q.end()) q.erase(pos);
            order_.erase(old->second.age);
            bytes_ -= old->second.reply.size();
            done_.erase(old);
        }
        try {
            Done d;
            d.reply.assign(reply, reply + len);
            d.status = status;
            d.op = op;
            order_.push_back(k);
            d.age = std::prev(order_.end());
            done_.emplace(k, std::move(d));
            bytes_ += len;
            auto& q = per_client_[ClientKey(tenant, client)];
            q.push_back(request);
            // This client's oldest reply goes when it has too many.
            if (q.size() > kPerClient) {
                Key oldest(tenant, client, q.front());
                q.pop_front();
                auto o = done_.find(oldest);
                if (o != done_.end()) {
                    bytes_ -= o->second.reply.size();
                    order_.erase(o->second.age);
                    done_.erase(o);
                }
            }
            while (bytes_ > kBudgetBytes && order_.size() > 1)
                evict_oldest_locked();
        } catch (const std::bad_alloc&) {
            // Out of memory: the retry, if any, runs the request again.
            auto o = done_.find(k);
            if (o == done_.end() && !order_.empty() && order_.back() == k)
                order_.pop_back();
        }
    }
    cv_.notify_all();
}

void ReplyCache::abandon(const std::string& tenant, uint64_t client,
                         uint64_t request) {
    {
        std::lock_guard<std::mutex> g(mu_);
        running_.erase(Key(tenant, client, request));
    }
    cv_.notify_all();
}

size_t ReplyCache::entries() {
    std::lock_guard<std::mutex> g(mu_);
    return done_.size();
}

size_t ReplyCache::running() {
    std::lock_guard<std::mutex> g(mu_);
    return running_.size();
}

size_t ReplyCache::bytes() {
    std::lock_guard<std::mutex> g(mu_);
    return bytes_;
}

} // namespace fx
