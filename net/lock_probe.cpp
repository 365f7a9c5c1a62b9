/* lock_probe.cpp -- --test-lock-probe DIR (lock_probe.h). */
#include "net/lock_probe.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

namespace fx {

std::string LockProbe::mark(const std::string& name, int op) noexcept {
    try {
        std::string path = dir_ + "/" + name;
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                        0644);
        if (fd < 0) {
            // No logger here; the server's stderr is its log, and the test
            // waiting for this file fails showing it.
            fprintf(stderr, "faissx-server: --test-lock-probe: cannot create "
                            "'%s': %s\n", path.c_str(), strerror(errno));
            return std::string();
        }
        char text[16];
        int n = snprintf(text, sizeof text, "%d\n", op);
        ssize_t wr = ::write(fd, text, (size_t)n);
        (void)wr; // the name is what tests read
        ::close(fd);
        return path;
    } catch (...) {
        return std::string();
    }
}

void LockProbe::lock(std::shared_mutex& mu, bool write,
                     const std::string& index, int op) {
    const std::string mode = write ? "write" : "read";
    bool got = write ? mu.try_lock() : mu.try_lock_shared();
    if (!got) {
        mark(index + ".blocked-" + mode + "." + std::to_string(++seq_), op);
        if (write)
            mu.lock();
        else
            mu.lock_shared();
    }
    // From here on the lock is held: nothing may throw.
    bool overlap = false;
    {
        std::lock_guard<std::mutex> g(mu_);
        try {
            Holders& h = held_[&mu];
            overlap = h.writers > 0 || (write && h.readers > 0);
            (write ? h.writers : h.readers)++;
        } catch (...) {
            // No memory for the count: unlock() finds no entry and skips it.
        }
    }
    unsigned long long n = ++seq_;
    std::string in;
    try {
        std::string num = std::to_string(n);
        if (overlap) mark("OVERLAP." + index + "." + num, op);
        in = mark(index + "." + mode + "." + num, op);
    } catch (...) {
    }
    if (in.empty()) return;
    // Held until the test removes the file; polled, as this is a testing
    // aid and the wait is what the test is about.
    auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    while (::access(in.c_str(), F_OK) == 0 &&
           std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void LockProbe::unlock(std::shared_mutex& mu, bool write) {
    {
        std::lock_guard<std::mutex> g(mu_);
        auto it = held_.find(&mu);
        if (it != held_.end()) {
            (write ? it->second.writers : it->second.readers)--;
            if (it->second.writers == 0 && it->second.readers == 0)
                held_.erase(it);
        }
    }
    if (write)
        mu.unlock();
    else
        mu.unlock_shared();
}

} // namespace fx
