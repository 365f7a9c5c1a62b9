/* shm.cpp -- the shared-memory ring of ADD_STREAM (see shm.h): the
 * server's fd-passing socket and region registry, and the futex helpers.
 *
 * One thread (not the libuv loop, never faiss) polls the listening socket,
 * the connections still in their handshake (each gets FX_SHM_HANDSHAKE_MS
 * to send its hello) and the connections of live regions (EOF = the
 * client is gone: the region is marked gone, waiting streams are woken,
 * and it is unmapped when its last user lets go). */
#include "net/shm.h"

#include "core/bridge.h"
#include "net/client.h"
#include "net/dedupe.h"

#include <faissx/faissx.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

using fx::Error;

namespace {

void random_bytes(void* p, size_t n) {
    uint8_t* b = static_cast<uint8_t*>(p);
    while (n) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw Error(FAISSX_E_IO, std::string("getrandom: ") +
                                             std::strerror(errno));
        }
        b += r;
        n -= (size_t)r;
    }
}

} // namespace

extern "C" {

void fx_shm_futex_wait(uint32_t* addr, uint32_t expect, int timeout_ms) {
    struct timespec ts;
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    syscall(SYS_futex, addr, FUTEX_WAIT, expect, &ts, nullptr, 0);
}

void fx_shm_futex_wake(uint32_t* addr) {
    syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

} // extern "C"

/* ------------------------------------------------------------------------
 * Server: regions and the socket thread
 * ------------------------------------------------------------------------ */

namespace fx {
namespace shm {

struct Region {
    uint8_t* base = nullptr;
    uint64_t size = 0;
    uint64_t token[2] = {0, 0};
    std::string tenant; // bound by the first ADD_STREAM (under the registry mutex)
    std::atomic<bool> gone{false};
    std::atomic<bool> busy{false};
    ~Region() {
        if (base) munmap(base, size);
    }
};

} // namespace shm
} // namespace fx

struct fx_shm_server {
    std::string path;
    fx_shm_log_fn log = nullptr;
    int lfd = -1;
    int wake[2] = {-1, -1};
    uint64_t instance[2] = {0, 0};
    std::thread thr;
    std::mutex mu; // regions
    std::map<std::pair<uint64_t, uint64_t>, std::shared_ptr<fx::shm::Region>>
            regions;
};

namespace {

void slog(fx_shm_server* s, int level, const char* fmt, ...)
        __attribute__((format(printf, 3, 4)));
void slog(fx_shm_server* s, int level, const char* fmt, ...) {
    if (!s->log) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->log(level, msg);
}

enum { LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

struct Pending {
    int fd;
    uint64_t deadline;
    pid_t pid;
    uid_t uid;
};

struct Live {
    int fd;
    std::shared_ptr<fx::shm::Region> region;
};

void answer(int fd, int status, const uint64_t token[2],
            const uint64_t instance[2], const char* text) {
    fx_shm_answer a;
    memset(&a, 0, sizeof a);
    a.status = status;
    if (status == 0) a.features = FX_SHM_FEAT_COMMIT;
    if (token) memcpy(a.token, token, sizeof a.token);
    memcpy(a.instance, instance, sizeof a.instance);
    snprintf(a.text, sizeof a.text, "%s", text ? text : "");
    (void)!send(fd, &a, sizeof a, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Reads the hello and its fd from a connection that has data. Returns the
 * region, or NULL with the reason in why. */
std::shared_ptr<fx::shm::Region> take_hello(fx_shm_server* s, int fd,
                                            std::string* why) {
    fx_shm_hello h;
    memset(&h, 0, sizeof h);
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {&h, sizeof h};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    // Every fd that came along is ours to close, whatever else is wrong.
    std::vector<int> fds;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int x;
            memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof x);
            fds.push_back(x);
        }
    }
    struct Closer {
        std::vector<int>& f;
        ~Closer() {
            for (int x : f) close(x);
        }
    } closer{fds};
    if (r == 0) {
        *why = "the connection closed before the hello";
        return nullptr;
    }
    if (r < 0) {
        *why = std::string("cannot read the hello: ") + std::strerror(errno);
        return nullptr;
    }
    if ((size_t)r != sizeof h || h.magic != FX_SHM_HELLO_MAGIC) {
        *why = "not a faissx shared-memory hello (" + std::to_string(r) +
               " bytes, expected " + std::to_string(sizeof h) + ")";
        return nullptr;
    }
    if (h.version != FX_SHM_VERSION) {
        *why = "unsupported hello version " + std::to_string(h.version) +
               " (this server speaks " + std::to_string(FX_SHM_VERSION) + ")";
        return nullptr;
    }
    if (m.msg_flags & MSG_CTRUNC) {
        *why = "too many file descriptors (expected one)";
        return nullptr;
    }
    if (fds.size() != 1) {
        *why = fds.empty() ? "no file descriptor came with the hello"
                           : "expected one file descriptor, got " +
                                     std::to_string(fds.size());
        return nullptr;
    }
    int mfd = fds[0];
    struct stat st;
    if (fstat(mfd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = "the file descriptor is not a regular file (a memfd)";
        return nullptr;
    }
    uint64_t sz = (uint64_t)st.st_size;
    if (sz < FX_SHM_HDR_BYTES + 4096 || sz > FX_SHM_MAX_BYTES) {
        *why = "region of " + std::to_string(sz) + " bytes is outside [" +
               std::to_string(FX_SHM_HDR_BYTES + 4096) + ", " +
               std::to_string(FX_SHM_MAX_BYTES) + "]";
        return nullptr;
    }
    int seals = fcntl(mfd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK) || !(seals & F_SEAL_GROW)) {
        // A file its owner can still shrink would SIGBUS the server.
        *why = "the region is not sealed against shrinking and growing "
               "(memfd with F_SEAL_SHRINK | F_SEAL_GROW required)";
        return nullptr;
    }
    {
        std::lock_guard<std::mutex> g(s->mu);
        if (s->regions.size() >= FX_SHM_MAX_REGIONS) {
            *why = "too many shared-memory regions (" +
                   std::to_string(FX_SHM_MAX_REGIONS) + ")";
            return nullptr;
        }
    }
    void* p = mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (p == MAP_FAILED) {
        *why = std::string("cannot map the region: ") + std::strerror(errno);
        return nullptr;
    }
    auto rg = std::make_shared<fx::shm::Region>();
    rg->base = static_cast<uint8_t*>(p);
    rg->size = sz;
    try {
        random_bytes(rg->token, sizeof rg->token);
    } catch (const std::exception& e) {
        *why = e.what();
        return nullptr;
    }
    return rg;
}

void mark_gone(fx_shm_server* s, const std::shared_ptr<fx::shm::Region>& r) {
    r->gone = true;
    auto h = reinterpret_cast<fx_shm_hdr*>(r->base);
    fx_shm_futex_wake(&h->produced);
    fx_shm_futex_wake(&h->consumed);
    std::lock_guard<std::mutex> g(s->mu);
    s->regions.erase({r->token[0], r->token[1]});
}

void run(fx_shm_server* s) {
    std::vector<Pending> pending;
    std::vector<Live> live;
    constexpr size_t kMaxPending = 64;
    for (;;) {
        std::vector<struct pollfd> pf;
        pf.push_back({s->wake[0], POLLIN, 0});
        pf.push_back({s->lfd, POLLIN, 0});
        for (auto& p : pending) pf.push_back({p.fd, POLLIN, 0});
        for (auto& l : live) pf.push_back({l.fd, POLLIN, 0});
        uint64_t now = fx::ReplyCache::now_ms();
        int tmo = -1;
        for (auto& p : pending) {
            int left = p.deadline > now ? (int)(p.deadline - now) : 0;
            if (tmo < 0 || left < tmo) tmo = left;
        }
        int n = poll(pf.data(), pf.size(), tmo);
        if (n < 0 && errno != EINTR) {
            slog(s, LOG_WARN, "shm: poll failed: %s", std::strerror(errno));
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        if (pf[0].revents) break; // stop
        size_t np = pending.size();
        // Region connections: anything readable is EOF or a violation.
        for (size_t i = 0; i < live.size();) {
            if (!pf[2 + np + i].revents) {
                i++;
                continue;
            }
            char b[64];
            ssize_t r = recv(live[i].fd, b, sizeof b, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                i++;
                continue;
            }
            // Logged once released: from this line on its token is
            // unknown (tests wait for it).
            mark_gone(s, live[i].region);
            slog(s, r == 0 ? LOG_DEBUG : LOG_WARN,
                 r == 0 ? "shm: a client closed its region; it is released"
                        : "shm: unexpected bytes on a region's connection: "
                          "region released");
            close(live[i].fd);
            live.erase(live.begin() + (long)i);
            // pf indexes shift: the rest are looked at on the next poll.
            break;
        }
        // Handshakes.
        now = fx::ReplyCache::now_ms();
        std::vector<Pending> keep;
        for (size_t i = 0; i < pending.size(); i++) {
            Pending p = pending[i];
            bool ready = i < np && pf[2 + i].revents;
            if (!ready && now < p.deadline) {
                keep.push_back(p);
                continue;
            }
            if (!ready) {
                slog(s, LOG_WARN, "shm: refused a connection (pid %d, uid "
                     "%d): no hello within %d ms", (int)p.pid, (int)p.uid,
                     FX_SHM_HANDSHAKE_MS);
                answer(p.fd, FAISSX_E_TIMEOUT, nullptr, s->instance,
                       "no hello within the handshake timeout");
                close(p.fd);
                continue;
            }
            std::string why;
            auto rg = take_hello(s, p.fd, &why);
            if (!rg) {
                slog(s, LOG_WARN, "shm: refused a region (pid %d, uid %d): %s",
                     (int)p.pid, (int)p.uid, why.c_str());
                answer(p.fd, FAISSX_E_INVALID, nullptr, s->instance,
                       why.c_str());
                close(p.fd);
                continue;
            }
            {
                std::lock_guard<std::mutex> g(s->mu);
                s->regions[{rg->token[0], rg->token[1]}] = rg;
            }
            slog(s, LOG_DEBUG, "shm: region of %llu bytes from pid %d, uid %d",
                 (unsigned long long)rg->size, (int)p.pid, (int)p.uid);
            answer(p.fd, 0, rg->token, s->instance, "");
            live.push_back({p.fd, rg});
        }
        pending.swap(keep);
        // New connections.
        if (pf[1].revents & POLLIN) {
            int fd = accept4(s->lfd, nullptr, nullptr,
                             SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0) {
                struct ucred cr;
                socklen_t cl = sizeof cr;
                memset(&cr, 0, sizeof cr);
                (void)getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
                if (pending.size() >= kMaxPending) {
                    slog(s, LOG_WARN, "shm: refused a connection (pid %d): "
                         "too many handshakes in progress", (int)cr.pid);
                    answer(fd, FAISSX_E_LIMIT, nullptr, s->instance,
                           "too many handshakes in progress");
                    close(fd);
                } else {
                    pending.push_back(
                            {fd,
                             fx::ReplyCache::now_ms() + FX_SHM_HANDSHAKE_MS,
                             cr.pid, cr.uid});
                }
            }
        }
    }
    for (auto& p : pending) close(p.fd);
    for (auto& l : live) {
        mark_gone(s, l.region);
        close(l.fd);
    }
}

} // namespace

extern "C" {

int fx_shm_server_start(const char* path, unsigned mode, fx_shm_log_fn log,
                        fx_shm_server** out, char* err, size_t errsz) {
    *out = nullptr;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (!path || !*path || strlen(path) >= sizeof a.sun_path) {
        snprintf(err, errsz, "--shm-socket: the path must have 1..%zu bytes",
                 sizeof a.sun_path - 1);
        return FAISSX_E_INVALID;
    }
    memcpy(a.sun_path, path, strlen(path));
    std::unique_ptr<fx_shm_server> s(new fx_shm_server());
    s->path = path;
    s->log = log;
    try {
        random_bytes(s->instance, sizeof s->instance);
    } catch (const std::exception& e) {
        snprintf(err, errsz, "--shm-socket: %s", e.what());
        return FAISSX_E_IO;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errsz, "--shm-socket: socket: %s", strerror(errno));
        return FAISSX_E_IO;
    }
    // A socket file left by a server that died: nobody answers on it.
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            if (connect(probe, (struct sockaddr*)&a, sizeof a) != 0 &&
                errno == ECONNREFUSED)
                unlink(path);
            close(probe);
        }
    }
    // The socket file is created with the umask's mode: keep it private
    // until chmod gives it the configured one.
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr*)&a, sizeof a);
    int e = errno;
    umask(old);
    if (rc != 0) {
        snprintf(err, errsz, "--shm-socket: cannot bind '%s': %s", path,
                 strerror(e));
        close(fd);
        return FAISSX_E_IO;
    }
    if (chmod(path, (mode_t)mode) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errsz, "--shm-socket: cannot set up '%s': %s", path,
                 strerror(errno));
        close(fd);
        unlink(path);
        return FAISSX_E_IO;
    }
    if (pipe2(s->wake, O_CLOEXEC) != 0) {
        snprintf(err, errsz, "--shm-socket: pipe: %s", strerror(errno));
        close(fd);
        unlink(path);
        return FAISSX_E_IO;
    }
    s->lfd = fd;
    try {
        fx_shm_server* sp = s.get();
        s->thr = std::thread([sp] { run(sp); });
    } catch (...) {
        snprintf(err, errsz, "--shm-socket: cannot start its thread");
        close(fd);
        close(s->wake[0]);
        close(s->wake[1]);
        unlink(path);
        return FAISSX_E_NOMEM;
    }
    *out = s.release();
    return 0;
}

void fx_shm_server_stop(fx_shm_server* s) {
    if (!s) return;
    (void)!write(s->wake[1], "x", 1);
    if (s->thr.joinable()) s->thr.join();
    close(s->lfd);
    close(s->wake[0]);
    close(s->wake[1]);
    unlink(s->path.c_str());
    {
        std::lock_guard<std::mutex> g(s->mu);
        s->regions.clear(); // streams still running hold their own refs
    }
    delete s;
}

const char* fx_shm_server_path(const fx_shm_server* s) {
    return s->path.c_str();
}

void fx_shm_server_instance(const fx_shm_server* s, uint64_t out[2]) {
    out[0] = s->instance[0];
    out[1] = s->instance[1];
}

size_t fx_shm_server_regions(fx_shm_server* s) {
    std::lock_guard<std::mutex> g(s->mu);
    return s->regions.size();
}

} // extern "C"

namespace fx {
namespace shm {

std::shared_ptr<Region> find(fx_shm_server* s, const uint64_t token[2],
                             const std::string& tenant) {
    std::lock_guard<std::mutex> g(s->mu);
    auto it = s->regions.find({token[0], token[1]});
    // Another tenant's region is indistinguishable from a missing one.
    if (it == s->regions.end() || it->second->gone ||
        (!it->second->tenant.empty() && it->second->tenant != tenant))
        throw Error(FAISSX_E_INVALID,
                    "unknown shared-memory region (its client closed it, "
                    "or the token is wrong)");
    if (it->second->tenant.empty()) it->second->tenant = tenant;
    return it->second;
}

void log(fx_shm_server* s, int level, const std::string& msg) {
    if (s && s->log) s->log(level, msg.c_str());
}

uint8_t* base(Region& r) {
    return r.base;
}

uint64_t size(Region& r) {
    return r.size;
}

bool claim(Region& r) {
    bool f = false;
    return r.busy.compare_exchange_strong(f, true);
}

void release(Region& r) {
    r.busy = false;
}

int wait_chunk(Region& r, uint32_t k, uint64_t stream_id, uint64_t until_ms) {
    auto h = reinterpret_cast<fx_shm_hdr*>(r.base);
    for (int spin = 0;; spin++) {
        uint32_t p = __atomic_load_n(&h->produced, __ATOMIC_ACQUIRE);
        if ((int32_t)(p - k) > 0) return 1;
        if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != FX_SHM_RUNNING ||
            __atomic_load_n(&h->stream_id, __ATOMIC_ACQUIRE) != stream_id)
            return 0;
        if (r.gone) return -1;
        if (spin < 200) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        uint64_t now = fx::ReplyCache::now_ms();
        if (now >= until_ms) return -2;
        uint64_t left = until_ms - now;
        fx_shm_futex_wait(&h->produced, p, left > 50 ? 50 : (int)left);
    }
}

} // namespace shm
} // namespace fx

/* ------------------------------------------------------------------------
 * Client: the region
 * ------------------------------------------------------------------------ */

namespace {
std::atomic<uint64_t> g_streams{0}, g_fallbacks{0}, g_cancels{0};
}

extern "C" uint64_t fx_shm_streams(void) {
    return g_streams.load();
}

extern "C" uint64_t fx_shm_fallbacks(void) {
    return g_fallbacks.load();
}

extern "C" uint64_t fx_shm_cancels(void) {
    return g_cancels.load();
}

namespace fx {
namespace shm {

void count_stream() {
    g_streams++;
}

void count_fallback() {
    g_fallbacks++;
}

void count_cancel() {
    g_cancels++;
}

StreamCall::~StreamCall() {
    fx_client_call_abandon(call);
}

ClientRing::~ClientRing() {
    prev.reset(); // its callback may wake a futex in the mapping
    if (base) munmap(base, size);
    if (sock >= 0) close(sock);
}

uint64_t ClientRing::rows_for(uint64_t row_bytes) const {
    if (row_bytes == 0 || row_bytes > slot_bytes) return 0;
    uint64_t per = row_bytes + 8;
    if (slot_bytes < 128) return 0;
    uint64_t rows = (slot_bytes - 64) / per;
    while (rows && FX_SHM_IDS_AT(rows, row_bytes) + rows * 8 > slot_bytes)
        rows--;
    return rows;
}

std::unique_ptr<ClientRing> open_ring(const char* path,
                                      const uint64_t instance[2],
                                      std::string* why) {
    std::unique_ptr<ClientRing> r(new ClientRing());
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (!path || !*path || strlen(path) >= sizeof a.sun_path) {
        *why = "bad socket path";
        return nullptr;
    }
    memcpy(a.sun_path, path, strlen(path));
    r->size = FX_SHM_HDR_BYTES + (uint64_t)r->nslots * r->slot_bytes;
    int mfd = memfd_create("faissx-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0) {
        *why = std::string("memfd_create: ") + std::strerror(errno);
        return nullptr;
    }
    struct FdCloser {
        int fd;
        ~FdCloser() { close(fd); }
    } mc{mfd};
    if (ftruncate(mfd, (off_t)r->size) != 0 ||
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
                0) {
        *why = std::string("cannot size and seal the memfd: ") +
               std::strerror(errno);
        return nullptr;
    }
    void* p = mmap(nullptr, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd,
                   0);
    if (p == MAP_FAILED) {
        *why = std::string("mmap: ") + std::strerror(errno);
        return nullptr;
    }
    r->base = static_cast<uint8_t*>(p);
    r->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->sock < 0) {
        *why = std::string("socket: ") + std::strerror(errno);
        return nullptr;
    }
    struct timeval tv = {FX_SHM_HANDSHAKE_MS / 1000, 0};
    setsockopt(r->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(r->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(r->sock, (struct sockaddr*)&a, sizeof a) != 0) {
        *why = std::string("cannot connect to ") + path + ": " +
               std::strerror(errno);
        return nullptr;
    }
    fx_shm_hello h;
    memset(&h, 0, sizeof h);
    h.magic = FX_SHM_HELLO_MAGIC;
    h.version = FX_SHM_VERSION;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {&h, sizeof h};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &mfd, sizeof mfd);
    if (sendmsg(r->sock, &m, MSG_NOSIGNAL) != (ssize_t)sizeof h) {
        *why = std::string("cannot send the region: ") + std::strerror(errno);
        return nullptr;
    }
    fx_shm_answer ans;
    size_t got = 0;
    while (got < sizeof ans) {
        ssize_t k = recv(r->sock, reinterpret_cast<char*>(&ans) + got,
                         sizeof ans - got, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR) continue;
            *why = k == 0 ? std::string("the server closed the connection")
                          : std::string("no answer: ") + std::strerror(errno);
            return nullptr;
        }
        got += (size_t)k;
    }
    ans.text[sizeof ans.text - 1] = '\0';
    if (ans.status != 0) {
        *why = std::string("refused: ") + ans.text;
        return nullptr;
    }
    if (ans.instance[0] != instance[0] || ans.instance[1] != instance[1]) {
        *why = std::string("the server at ") + path +
               " is not the one this connection reached";
        return nullptr;
    }
    memcpy(r->token, ans.token, sizeof r->token);
    r->features = ans.features;
    return r;
}

} // namespace shm
} // namespace fx
