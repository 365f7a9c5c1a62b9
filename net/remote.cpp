/* remote.cpp -- RemoteIndex (a faiss::Index living on a faissx-server), the
 * client configuration (faissx_configure, FAISSX_SERVER) and the named-index
 * API of faissx.h. */
#include "net/remote.h"

#include "core/core.h"
#include "net/cache.h"
#include "core/progress.h"

#include <faiss/IndexIVF.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <cerrno>
#include <exception>
#include <climits>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <functional>
#include <typeinfo>
#include <thread>
#include <cstring>
#include <strings.h>
#include <mutex>
#include <vector>

/* A byte count with an optional K, M or G suffix (powers of 1024): false
 * for anything else, *out untouched. */
static bool parse_bytes(const char* v, int64_t* out) {
    char* end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    int shift = 0;
    if (end != v && *end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': shift = 10; end++; break;
        case 'm': case 'M': shift = 20; end++; break;
        case 'g': case 'G': shift = 30; end++; break;
        }
    }
    if (end == v || *end || errno || n < 0 || n > (INT64_MAX >> shift))
        return false;
    *out = (int64_t)n << shift;
    return true;
}

/* A yes/no value: 1, 0, or -1 when it is neither. */
static int parse_switch(const char* v) {
    static const char* const yes[] = {"1", "true", "yes", "on"};
    static const char* const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return 1;
        if (!strcasecmp(v, no[i])) return 0;
    }
    return -1;
}

namespace fx {

using namespace reply;

namespace {

/* The configuration new indexes use, guarded by g_mu. g_opts' strings
 * point into g_url, g_key, g_ca. */
std::mutex g_mu;
std::shared_ptr<Conn> g_conn;
bool g_disabled = false;
bool g_env_read = false;
std::string g_env_error; /* a malformed FAISSX_* variable, sticky */
std::string g_url, g_key, g_ca;
FaissxClientOptions g_opts;
bool g_opts_set = false;

/* g_opts with defaults (and the environment's knobs) until configured. */
void ensure_opts_locked() {
    if (g_opts_set) return;
    faissx_client_options_init(&g_opts);
    g_opts_set = true;
}

/* Takes a copy of o (strings included) as the configuration. */
void store_opts_locked(const FaissxClientOptions& o) {
    g_url = o.url ? o.url : "";
    g_key = o.api_key ? o.api_key : "";
    g_ca = o.tls_ca ? o.tls_ca : "";
    g_opts = o;
    g_opts.url = g_url.empty() ? nullptr : g_url.c_str();
    g_opts.api_key = g_key.c_str();
    g_opts.tls_ca = g_ca.empty() ? nullptr : g_ca.c_str();
    g_opts_set = true;
}

/* build() of rcall, called by the C transport once per attempt: an
 * exception is kept for rcall to rethrow. */
template <class B>
struct Builder {
    B* build;
    std::exception_ptr failed;
    static int run(fx_wbuf* w, void* arg) {
        auto* b = static_cast<Builder*>(arg);
        try {
            (*b->build)(w);
            return 0;
        } catch (...) {
            b->failed = std::current_exception();
            return -1;
        }
    }
};

/* One request/reply round trip: build() writes the fields after the key
 * (directly into the message; again for a retry), parse() reads the reply
 * body; op_class -1 = the op's (fx_op_class). Failures throw fx::Error. */
template <class B, class P>
void rcall(const Conn* c, int op, B build, P parse, int op_class = -1) {
    Builder<B> b{&build, nullptr};
    fx_reply rep;
    char err[1400];
    int rc = fx_client_call_build(c->c, op, op_class, &Builder<B>::run, &b,
                                  &rep, err, sizeof err);
    if (b.failed) std::rethrow_exception(b.failed);
    if (rc != 0) throw Error(rc, err);
    try {
        parse(&rep.r);
        if (fx_r_end(&rep.r) != 0) proto_error(fx_op_name(op), &rep.r);
    } catch (...) {
        fx_reply_free(&rep);
        throw;
    }
    fx_reply_free(&rep);
}

void no_fields(fx_wbuf*) {}
void no_reply(fx_rbuf*) {}

/* rcall with FX_FLAG_STATE, so that the reply also carries the state of
 * the indexes the call read or changed (parse reads it when the reply goes
 * on: see has_more). A server that predates the flag refuses it before
 * running anything ("unknown header flags"): the call is sent again
 * without it, and c does not ask again; parse then finds no state. */
template <class B, class P>
void rcall_state(const Conn* c, int op, B build, P parse, int op_class = -1) {
    if (!c->no_state_flag.load(std::memory_order_relaxed)) {
        try {
            fx_client_next_call_as(0, FX_FLAG_STATE);
            rcall(c, op, build, parse, op_class);
            return;
        } catch (const Error& e) {
            if (e.code != FAISSX_E_INVALID ||
                !std::strstr(e.what(), "unknown header flags"))
                throw;
            c->no_state_flag = true;
        }
    }
    rcall(c, op, build, parse, op_class);
}

/* True when the reply has fields left (optional trailing ones). */
bool has_more(const fx_rbuf* r) {
    return r->pos < r->len;
}

/* rcall for a long call (TRAIN, ADD, ADD_WITH_IDS) when the calling thread
 * wants progress or cancellation: the request (flagged FX_FLAG_JOB, with a
 * request id chosen here) is sent from a helper thread, while this thread
 * asks the server for the job's progress every kPollMs (PROGRESS, on its
 * own NNG context), reports it to the callback, and sends CANCEL once the
 * token or the callback asks. The server stops the job and replies
 * FAISSX_E_CANCELED, its index unchanged. */
constexpr int kPollMs = 100;

template <class B, class P>
void rcall_job(const Conn* c, int op, int progress_op, B build, P parse,
               uint64_t rid = 0, JobScope* outer = nullptr) {
    if (!job_wanted()) {
        if (rid) fx_client_next_call_as(rid, 0);
        return rcall(c, op, build, parse);
    }
    // outer: the caller's job (a stream add that fell back), whose
    // progress only goes on from where it was.
    std::unique_ptr<JobScope> own;
    if (!outer) own.reset(new JobScope(progress_op, 1)); // throws if cancelled
    JobScope& job = outer ? *outer : *own;
    if (!rid) rid = fx_client_new_request_id(c->c);
    int tmo = fx_client_thread_timeout(0); // the helper inherits it
    fx_client_thread_timeout(tmo);
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    std::exception_ptr failure;
    std::thread t([&] {
        try {
            fx_client_thread_timeout(tmo);
            fx_client_next_call_as(rid, FX_FLAG_JOB);
            rcall(c, op, build, parse);
        } catch (...) {
            failure = std::current_exception();
        }
        std::lock_guard<std::mutex> g(mu);
        finished = true;
        cv.notify_all();
    });
    bool cancel_sent = false;
    for (;;) {
        {
            std::unique_lock<std::mutex> l(mu);
            if (cv.wait_for(l, std::chrono::milliseconds(kPollMs),
                            [&] { return finished; }))
                break;
        }
        // A lost poll is not an error: the call itself reports failures.
        int old = fx_client_thread_timeout(2000);
        try {
            int64_t running = 0, done = 0, total = 0;
            rcall(c, FX_OP_PROGRESS, [&](fx_wbuf* w) { fx_w_u64(w, rid); },
                  [&](fx_rbuf* r) {
                      running = rd_i64(r, "progress");
                      (void)rd_i64(r, "progress");
                      done = rd_i64(r, "progress");
                      total = rd_i64(r, "progress");
                      double el;
                      if (fx_r_f64(r, &el)) proto_error("progress", r);
                  });
            if (running && total > 0) {
                if (total != job.total()) job.set_total(total);
                job.step(done);
            }
        } catch (...) {
        }
        if (!cancel_sent && job.cancel_requested()) {
            try {
                rcall(c, FX_OP_CANCEL, [&](fx_wbuf* w) { fx_w_u64(w, rid); },
                      [&](fx_rbuf* r) { (void)rd_i64(r, "cancel"); });
                cancel_sent = true;
            } catch (...) {
            }
        }
        fx_client_thread_timeout(old);
    }
    t.join();
    if (failure) std::rethrow_exception(failure);
    job.step(job.total());
}


/* ---- chunked upload (docs/protocol.md, "Chunked upload") ----
 *
 * The bytes go to the server in chunks of at most kChunk (and at most what
 * the server's message limit allows: UPLOAD_BEGIN says), each its own call
 * with the admin deadline; COMMIT has the server parse and install them.
 * Progress is reported per chunk (FAISSX_PROGRESS_UPLOAD: bytes, plus one
 * unit for COMMIT). A cancellation (token, or the callback returning
 * non-zero) is honoured before each chunk and before COMMIT: the client
 * sends UPLOAD_ABORT and the server drops what it staged. An upload the
 * server lost (restart) is started over (upload_bytes). Small uploads
 * without progress or cancellation wanted, and servers that predate the
 * chunked ops, take the single-message UPLOAD. */
constexpr uint64_t kChunk = (uint64_t)4 << 20;
constexpr uint64_t kSingleUpload = (uint64_t)64 << 10;

/* Tells the server to drop upload `id`, if it can be reached soon; a
 * server that cannot be discards it by itself (client gone, or idle). */
void upload_abort(const Conn* c, uint64_t id) {
    int old = fx_client_thread_timeout(2000);
    try {
        rcall(c, FX_OP_UPLOAD_ABORT, [&](fx_wbuf* w) { fx_w_u64(w, id); },
              no_reply);
    } catch (...) {
    }
    fx_client_thread_timeout(old);
}

Error upload_cancelled(const JobScope& job) {
    return Error(FAISSX_E_CANCELED,
                 std::string(job.cancelled_by_callback()
                                     ? "upload cancelled by the progress "
                                       "callback"
                                     : "upload cancelled") +
                         "; nothing was uploaded");
}

/* How many times one upload is started over after the server lost it. */
constexpr int kUploadRestarts = 3;

/* The server no longer has the upload a CHUNK or COMMIT named. */
bool upload_gone(const Error& e) {
    return e.code == FAISSX_E_NOT_FOUND &&
           std::strstr(e.what(), "unknown upload ") != nullptr;
}

/* Sends the n bytes of upload `id` in chunks (within maxc, the server's
 * bound) and commits them as `name`. */
void upload_chunks_commit(const Conn* c, uint64_t id, uint64_t maxc,
                          const uint8_t* data, uint64_t n, const char* name,
                          JobScope& job,
                          const WireParse& info) {
    uint64_t chunk = std::min(kChunk, maxc ? maxc : kChunk);
    for (uint64_t off = 0; off < n;) {
        if (job.cancel_requested()) throw upload_cancelled(job);
        uint64_t m = std::min(chunk, n - off), got = 0;
        rcall(c, FX_OP_UPLOAD_CHUNK,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, id);
                  fx_w_u64(w, off);
                  fx_w_array(w, data + off, m, 1);
              },
              [&](fx_rbuf* r) {
                  if (fx_r_u64(r, &got)) proto_error("upload_chunk", r);
              });
        if (got != off + m)
            throw Error(FAISSX_E_PROTOCOL,
                        "upload_chunk: the server has " +
                                std::to_string(got) + " bytes, expected " +
                                std::to_string(off + m));
        off += m;
        job.step((int64_t)off);
    }
    if (job.cancel_requested()) throw upload_cancelled(job);
    rcall(c, FX_OP_UPLOAD_COMMIT,
          [&](fx_wbuf* w) {
              fx_w_u64(w, id);
              fx_w_str(w, name ? name : "");
          },
          info);
}

/* Uploads n bytes of kind FX_UPLOAD_* and commits them as `name` ("":
 * unnamed); info() reads COMMIT's (or single()'s UPLOAD's) reply. */
void upload_bytes(const Conn* c, const uint8_t* data, uint64_t n, int kind,
                  const char* name,
                  const std::function<void()>& single,
                  const WireParse& info) {
    std::unique_ptr<JobScope> job;
    try {
        job.reset(new JobScope(FAISSX_PROGRESS_UPLOAD, (int64_t)n + 1));
    } catch (const Error& e) {
        if (e.code == FAISSX_E_CANCELED)
            throw Error(FAISSX_E_CANCELED,
                        "upload cancelled before it started; nothing was "
                        "uploaded");
        throw;
    }
    if (n <= kSingleUpload && !job_wanted()) {
        single();
        job->step(job->total());
        return;
    }
    // A CHUNK or COMMIT that finds its upload gone (the server restarted,
    // or discarded it) starts the upload over: the bytes are still here.
    // A COMMIT that had completed before a restart is not repeated: its
    // retry is answered from the durable store (docs/protocol.md).
    for (int restarts = 0;; restarts++) {
        uint64_t id = 0, maxc = 0;
        try {
            rcall(c, FX_OP_UPLOAD_BEGIN,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, n);
                      fx_w_i64(w, kind);
                  },
                  [&](fx_rbuf* r) {
                      if (fx_r_u64(r, &id) || fx_r_u64(r, &maxc))
                          proto_error("upload_begin", r);
                  });
        } catch (const Error& e) {
            // A server older than chunked uploads: one message it is.
            if (e.code != FAISSX_E_UNSUPPORTED ||
                !std::strstr(e.what(), "unknown operation"))
                throw;
            single();
            job->step(job->total());
            return;
        }
        try {
            upload_chunks_commit(c, id, maxc, data, n, name, *job, info);
        } catch (const Error& e) {
            if (!upload_gone(e)) {
                upload_abort(c, id);
                throw;
            }
            if (restarts < kUploadRestarts) continue; // nothing to abort
            throw Error(e.code, std::string(e.what()) +
                                        " (the upload was started over " +
                                        std::to_string(restarts) +
                                        " times: the server kept losing it)");
        } catch (...) {
            // Whatever stopped it (cancel, a failed chunk, a refused
            // commit), nothing stays staged; a commit that did run makes
            // this a no-op.
            upload_abort(c, id);
            throw;
        }
        break;
    }
    job->step(job->total());
}

} // namespace

void remote_upload(const Conn* c, const uint8_t* data, uint64_t n, int kind,
                   const char* name, const std::function<void()>& single,
                   const WireParse& info) {
    upload_bytes(c, data, n, kind, name, single, info);
}

namespace {

/* ---- chunked download (docs/protocol.md, "Chunked download") ---- */

/* Tells the server it may drop download `id` (best effort, as aborts). */
void download_end(const Conn* c, uint64_t id) {
    int old = fx_client_thread_timeout(2000);
    try {
        rcall(c, FX_OP_DOWNLOAD_END, [&](fx_wbuf* w) { fx_w_u64(w, id); },
              no_reply);
    } catch (...) {
    }
    fx_client_thread_timeout(old);
}

Error download_cancelled(bool by_callback) {
    return Error(FAISSX_E_CANCELED,
                 std::string(by_callback ? "download cancelled by the "
                                           "progress callback"
                                         : "download cancelled") +
                         "; nothing was returned");
}

} // namespace

std::vector<uint8_t> remote_download(
        const Conn* c, uint64_t handle, int kind,
        const std::function<std::vector<uint8_t>()>& single) {
    if (job_token_raised())
        throw Error(FAISSX_E_CANCELED,
                    "download cancelled before it started; nothing was "
                    "returned");
    uint64_t total = 0, id = 0, mc = 0;
    std::vector<uint8_t> out;
    try {
        rcall(c, FX_OP_DOWNLOAD_BEGIN,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, kind);
              },
              [&](fx_rbuf* r) {
                  const void* p;
                  uint64_t n;
                  if (fx_r_u64(r, &total) || fx_r_u64(r, &id) ||
                      fx_r_u64(r, &mc) ||
                      fx_r_array(r, 1, UINT64_MAX, &p, &n))
                      proto_error("download_begin", r);
                  if (n > total || (id == 0 && n != total) ||
                      (id != 0 && n == 0))
                      throw Error(FAISSX_E_PROTOCOL,
                                  "download_begin: " + std::to_string(n) +
                                          " of " + std::to_string(total) +
                                          " bytes in the first reply");
                  out.reserve(total);
                  out.assign(static_cast<const uint8_t*>(p),
                             static_cast<const uint8_t*>(p) + n);
              });
    } catch (const Error& e) {
        // A server older than chunked downloads: one message it is.
        if (e.code != FAISSX_E_UNSUPPORTED ||
            !std::strstr(e.what(), "unknown operation"))
            throw;
        JobScope job(FAISSX_PROGRESS_DOWNLOAD, 1);
        out = single();
        job.set_total((int64_t)out.size());
        job.step(job.total());
        return out;
    }
    try {
        JobScope job(FAISSX_PROGRESS_DOWNLOAD, (int64_t)total);
        job.step((int64_t)out.size());
        while (out.size() < total) {
            if (job.cancel_requested())
                throw download_cancelled(job.cancelled_by_callback());
            uint64_t off = out.size();
            rcall(c, FX_OP_DOWNLOAD_CHUNK,
                  [&](fx_wbuf* w) {
                      fx_w_u64(w, id);
                      fx_w_u64(w, off);
                      fx_w_u64(w, mc);
                  },
                  [&](fx_rbuf* r) {
                      const void* p;
                      uint64_t n;
                      if (fx_r_array(r, 1, UINT64_MAX, &p, &n))
                          proto_error("download_chunk", r);
                      if (n == 0 || n > total - off)
                          throw Error(FAISSX_E_PROTOCOL,
                                      "download_chunk: " + std::to_string(n) +
                                              " bytes at offset " +
                                              std::to_string(off) + " of " +
                                              std::to_string(total));
                      auto b = static_cast<const uint8_t*>(p);
                      out.insert(out.end(), b, b + n);
                  });
            job.step((int64_t)out.size());
        }
    } catch (const Error& e) {
        if (id) download_end(c, id);
        if (e.code == FAISSX_E_CANCELED &&
            !std::strstr(e.what(), "download"))
            throw download_cancelled(std::strstr(e.what(), "callback"));
        throw;
    } catch (...) {
        if (id) download_end(c, id);
        throw;
    }
    if (id) download_end(c, id);
    return out;
}

namespace {

/* Reads index info into *out, a new RemoteIndex (named when name is not
 * NULL): owning it, *out frees (and so releases) the index when the call
 * then fails (a malformed reply). */
void read_info(fx_rbuf* r, const std::shared_ptr<Conn>& conn,
               const char* name, std::unique_ptr<RemoteIndex>* out) {
    IndexInfo in;
    read_index_info(r, "index info", &in);
    out->reset(RemoteIndex::from_info(in, conn, name));
}

FaissIndex* hand_out(std::unique_ptr<RemoteIndex> ix) {
    return handle<FaissIndex>(static_cast<faiss::Index*>(ix.release()));
}

/* Uploads faiss index bytes (chunked) as `name` (NULL: unnamed) and
 * returns the new remote index in *out. */
void upload_index_bytes(const std::shared_ptr<Conn>& conn,
                        const std::vector<uint8_t>& bytes, const char* name,
                        std::unique_ptr<RemoteIndex>* out) {
    auto info = [&](fx_rbuf* r) {
        read_info(r, conn, name && *name ? name : nullptr, out);
    };
    upload_bytes(
            conn.get(), bytes.data(), bytes.size(), FX_UPLOAD_INDEX, name,
            [&] {
                rcall(conn.get(), FX_OP_UPLOAD,
                      [&](fx_wbuf* w) {
                          fx_w_str(w, name ? name : "");
                          fx_w_array(w, bytes.data(), bytes.size(), 1);
                      },
                      info);
            },
            info);
}

void write_selector(fx_wbuf* w, const faiss::IDSelector* s, int depth) {
    if (depth > FX_SEL_MAX_DEPTH)
        throw Error(FAISSX_E_INVALID, "selector nested too deeply");
    if (auto r = dynamic_cast<const faiss::IDSelectorRange*>(s)) {
        fx_w_i64(w, FX_SEL_RANGE);
        fx_w_i64(w, r->imin);
        fx_w_i64(w, r->imax);
    } else if (auto b = dynamic_cast<const faiss::IDSelectorBatch*>(s)) {
        std::vector<idx> ids(b->set.begin(), b->set.end());
        fx_w_i64(w, FX_SEL_BATCH);
        fx_w_array(w, ids.data(), ids.size(), sizeof(idx));
    } else if (auto a = dynamic_cast<const faiss::IDSelectorArray*>(s)) {
        fx_w_i64(w, FX_SEL_BATCH);
        fx_w_array(w, a->ids, a->n, sizeof(idx));
    } else if (auto m = dynamic_cast<const faiss::IDSelectorBitmap*>(s)) {
        fx_w_i64(w, FX_SEL_BITMAP);
        fx_w_array(w, m->bitmap, m->n, 1);
    } else if (auto n = dynamic_cast<const faiss::IDSelectorNot*>(s)) {
        fx_w_i64(w, FX_SEL_NOT);
        write_selector(w, n->sel, depth + 1);
    } else if (auto c = dynamic_cast<const SelBinary*>(s)) {
        fx_w_i64(w, c->op == SelBinary::AND  ? FX_SEL_AND
                    : c->op == SelBinary::OR ? FX_SEL_OR
                                             : FX_SEL_XOR);
        write_selector(w, c->a, depth + 1);
        write_selector(w, c->b, depth + 1);
    } else if (dynamic_cast<const faiss::IDSelectorAll*>(s)) {
        fx_w_i64(w, FX_SEL_NOT); // all = not(empty range)
        fx_w_i64(w, FX_SEL_RANGE);
        fx_w_i64(w, 0);
        fx_w_i64(w, 0);
    } else {
        throw Error(FAISSX_E_UNSUPPORTED,
                    "this IDSelector type cannot be sent to a server");
    }
}

/* The optional trailing search parameters of SEARCH (and the binary
 * SEARCH sub-op): docs/protocol.md. */
void write_search_params(fx_wbuf* w, const faiss::SearchParameters* params) {
    // Exact types only: a subclass's own fields would be dropped silently.
    const std::type_info& t = typeid(*params);
    auto ivfp = t == typeid(faiss::SearchParametersIVF)
            ? static_cast<const faiss::SearchParametersIVF*>(params)
            : nullptr;
    auto hnswp = t == typeid(faiss::SearchParametersHNSW)
            ? static_cast<const faiss::SearchParametersHNSW*>(params)
            : nullptr;
    if (!ivfp && !hnswp && t != typeid(faiss::SearchParameters))
        throw Error(FAISSX_E_UNSUPPORTED,
                    "this kind of search parameters cannot be sent to a "
                    "server (plain, IVF and HNSW ones can)");
    if (hnswp && hnswp->efSearch <= 0)
        throw Error(FAISSX_E_INVALID, "efSearch must be > 0 (got " +
                                              std::to_string(hnswp->efSearch) +
                                              ")");
    fx_w_i64(w, ivfp ? FX_PARAMS_IVF : hnswp ? FX_PARAMS_HNSW : FX_PARAMS_PLAIN);
    fx_w_i64(w, params->sel != nullptr);
    if (params->sel) write_selector(w, params->sel, 0);
    if (ivfp) {
        fx_w_u64(w, ivfp->nprobe);
        fx_w_u64(w, ivfp->max_codes);
    }
    if (hnswp) {
        fx_w_i64(w, hnswp->efSearch);
        fx_w_i64(w, hnswp->check_relative_distance);
    }
}

/* Marks a write through r for the client cache when it ends, whether it
 * succeeded or not (a failed or timed-out write may have been applied):
 * r's cached results are gone before the call returns. */
struct WriteScope {
    const RemoteIndex* r;
    explicit WriteScope(const RemoteIndex* r) : r(r) {}
    ~WriteScope() { cache::wrote(r); }
};

template <class T>
void key_put(std::string* k, const T& v) {
    k->append(reinterpret_cast<const char*>(&v), sizeof v);
}

/* The start of a cache key: r's identity, the call, what fixes the shape
 * and meaning of its result. */
std::string key_begin(const RemoteIndex* r, char call) {
    std::string k = cache::ident(r);
    k.push_back(call);
    key_put(&k, (int64_t)r->d);
    key_put(&k, (int64_t)r->metric_type);
    key_put(&k, r->metric_arg);
    return k;
}

} // namespace

/* ---- reading replies ---- */

namespace reply {

/* ---- the server's message limit (docs/client.md, "Message limit") ---- */

namespace {

uint64_t pad8(uint64_t n) {
    return (n + 7) & ~(uint64_t)7;
}

/* The size of an add or train request of n vectors of d floats (with ids
 * or not), less the API key: the least its message can be. */
uint64_t vectors_request_bytes(int64_t n, int64_t d, bool ids) {
    uint64_t un = n > 0 ? (uint64_t)n : 0, ud = d > 0 ? (uint64_t)d : 0;
    uint64_t b = FX_HDR_SIZE + 8 /* empty key */ + 16 /* handle, n */ +
                 8 + pad8(un * ud * sizeof(float));
    if (ids) b += 8 + un * sizeof(int64_t);
    return b;
}

/* Refuses at once (FAISSX_E_LIMIT, nothing built or sent) a request of at
 * least `bytes` bytes that is over the server's message limit: the server
 * would drop it unread. Adds and trains are not split (a failure half
 * way would leave half of them applied). */
void check_request_size(const Conn* c, int op, uint64_t bytes) {
    char err[1024];
    int rc = fx_client_check_size(c->c, op, bytes, err, sizeof err);
    if (rc != 0) throw Error(rc, err);
}

/* How many queries each request of a batched read may carry so that the
 * request (req_fixed bytes, then q_bytes a query) and its reply
 * (rep_fixed, then r_bytes a query) fit the server's message limit and
 * the batch its max_batch: n when the whole call fits, when the limits
 * are unknown (an older server: one request, as before), or when not
 * even one query fits (the one request then fails with the clear
 * FAISSX_E_LIMIT). Asks the limits only for a call over
 * FX_LIMITS_ASK_BYTES. */
int64_t batch_step(const Conn* c, int64_t n, uint64_t req_fixed,
                   uint64_t q_bytes, uint64_t rep_fixed, uint64_t r_bytes) {
    if (n <= 1) return n;
    uint64_t un = (uint64_t)n;
    if (req_fixed + un * q_bytes <= FX_LIMITS_ASK_BYTES &&
        rep_fixed + un * r_bytes <= FX_LIMITS_ASK_BYTES)
        return n;
    fx_limits lim;
    if (!fx_client_limits(c->c, FAISSX_OP_SEARCH, &lim)) return n;
    // Every array may take up to 7 bytes of padding: 64 bytes of slack.
    uint64_t max = lim.max_message_bytes;
    uint64_t step = un;
    if (lim.max_batch > 0 && lim.max_batch < step) step = lim.max_batch;
    uint64_t fixed[2] = {req_fixed + 64, rep_fixed + 64};
    uint64_t per[2] = {q_bytes, r_bytes};
    for (int i = 0; i < 2; i++) {
        if (fixed[i] >= max) return n;
        if (per[i] && (max - fixed[i]) / per[i] < step)
            step = (max - fixed[i]) / per[i];
    }
    return step >= 1 ? (int64_t)step : n;
}

/* The bytes of a read request before its query array's data: the header,
 * the key, then what fields(w) writes (the fixed fields and the array's
 * count). */
template <class F>
uint64_t request_prefix(const Conn* c, F fields) {
    fx_wbuf w;
    fx_client_begin(c->c, &w);
    fields(&w);
    uint64_t n = w.len;
    fx_w_free(&w);
    return n;
}

} // namespace

void proto_error(const char* what, const fx_rbuf* r) {
    throw Error(FAISSX_E_PROTOCOL, std::string("malformed reply to ") + what +
                                           (r->err ? std::string(": ") + r->err : ""));
}

int64_t rd_i64(fx_rbuf* r, const char* what) {
    int64_t v;
    if (fx_r_i64(r, &v)) proto_error(what, r);
    return v;
}

std::vector<uint8_t> read_bytes(fx_rbuf* r, const char* what) {
    const void* p;
    uint64_t n;
    if (fx_r_array(r, 1, UINT64_MAX, &p, &n)) proto_error(what, r);
    return std::vector<uint8_t>(static_cast<const uint8_t*>(p),
                                static_cast<const uint8_t*>(p) + n);
}

void read_index_info(fx_rbuf* r, const char* what, IndexInfo* out) {
    char cls[256];
    if (fx_r_u64(r, &out->handle)) proto_error(what, r);
    out->d = rd_i64(r, what);
    out->metric = rd_i64(r, what);
    out->trained = rd_i64(r, what) != 0;
    out->ntotal = rd_i64(r, what);
    out->kind = rd_i64(r, what);
    if (fx_r_str(r, cls, sizeof cls - 1)) proto_error(what, r);
    out->cls = cls;
    for (int i = 0; i < 3; i++) out->sizes[i] = RemoteIndex::kSizeUnknown;
    if (r->pos == r->len) return; // a server that predates the sizes
    for (int i = 0; i < 3; i++) out->sizes[i] = rd_i64(r, "index info");
}

void read_range(fx_rbuf* r, int64_t n, faiss::RangeSearchResult* result,
                const char* what) {
    std::vector<uint64_t> lims(n + 1);
    read_into(r, lims.data(), (uint64_t)n + 1, what);
    if (lims[0] != 0) proto_error(what, r);
    for (int64_t i = 0; i < n; i++) {
        if (lims[i + 1] < lims[i]) proto_error(what, r);
        result->lims[i] = lims[i + 1] - lims[i];
    }
    result->do_allocation();
    read_into(r, result->labels, lims[n], what);
    read_into(r, result->distances, lims[n], what);
}

} // namespace reply

/* ---- what remote indexes of both families share ---- */

template <class Base>
RemoteOf<Base>::~RemoteOf() {
    if (own_children)
        for (auto c : children) delete c;
    // Without a connection the server reclaims orphans itself: do not
    // make a free wait for a deadline.
    if (named || !conn || fx_client_state(conn->c) != FAISSX_CONN_CONNECTED)
        return;
    try {
        // A short wait (docs/client.md, "Freeing a remote index"): a
        // server that died just now would otherwise hold the free for the
        // whole admin deadline.
        fx_client_next_call_wait(FX_RELEASE_WAIT_MS);
        rcall(conn.get(), FX_OP_RELEASE,
              [&](fx_wbuf* w) { fx_w_u64(w, handle); }, no_reply);
    } catch (...) {
        // The server may be gone; it reclaims orphans itself.
    }
}

template <class Base>
void RemoteOf<Base>::adopt(const IndexInfo& in, const std::shared_ptr<Conn>& c,
                           const char* index_name) {
    handle = in.handle;
    this->d = (int)in.d;
    this->metric_type = (faiss::MetricType)in.metric;
    this->is_trained = in.trained;
    this->ntotal = in.ntotal;
    kind = in.kind;
    cls = in.cls;
    nlist_seen = in.sizes[0];
    conn = c;
    named = index_name != nullptr;
    if (index_name) name = index_name; // a named handle reopens by name
}

template <class Base>
void RemoteOf<Base>::take_info(const IndexInfo& in) {
    std::lock_guard<std::mutex> g(sync_mu);
    if (this->ntotal != in.ntotal) this->ntotal = in.ntotal;
    if (this->is_trained != in.trained) this->is_trained = in.trained;
    if (kind != in.kind) kind = in.kind;
}

template <class Base>
void RemoteOf<Base>::take_state(idx_t nt, bool trained) const {
    auto self = const_cast<RemoteOf*>(this);
    std::lock_guard<std::mutex> g(self->sync_mu);
    if (self->ntotal != nt) self->ntotal = nt;
    if (self->is_trained != trained) self->is_trained = trained;
}

template <class Base>
void RemoteOf<Base>::saw_trained() const {
    auto self = const_cast<RemoteOf*>(this);
    std::lock_guard<std::mutex> g(self->sync_mu);
    if (!self->is_trained) self->is_trained = true;
}

template <class Base>
void RemoteOf<Base>::read_state(fx_rbuf* r, const char* what) {
    this->ntotal = rd_i64(r, what);
    this->is_trained = rd_i64(r, what) != 0;
}

template <class Base>
bool RemoteOf<Base>::reopen_as(
        const char* family,
        const std::function<bool(const IndexInfo&)>& same) const {
    if (!named || name.empty() || !conn) return false;
    IndexInfo in;
    std::string what = std::string(family) + " info";
    try {
        rcall(conn.get(), FX_OP_OPEN,
              [&](fx_wbuf* w) { fx_w_str(w, name.c_str()); },
              [&](fx_rbuf* r) { read_index_info(r, what.c_str(), &in); });
    } catch (...) {
        return false;
    }
    if (!same(in)) return false; // another index now has the name
    fx_clog(FAISSX_LOG_INFO, "%s '%s': handle %llu is gone (server "
            "restarted?); reopened as %llu", family, name.c_str(),
            (unsigned long long)handle.load(), (unsigned long long)in.handle);
    handle = in.handle;
    return true;
}

template struct RemoteOf<faiss::Index>;
template struct RemoteOf<faiss::IndexBinary>;

/* ---- RemoteIndex ---- */

void RemoteIndex::send(const Conn* c, int64_t op, int op_class,
                       const WireBuild& build, const WireParse& parse,
                       uint64_t rid) {
    if (rid) fx_client_next_call_as(rid, 0);
    rcall(c, (int)op, build, parse, op_class);
}

RemoteIndex* RemoteIndex::from_info(const IndexInfo& in,
                                    const std::shared_ptr<Conn>& c,
                                    const char* index_name) {
    std::unique_ptr<RemoteIndex> ix(new RemoteIndex());
    ix->adopt(in, c, index_name);
    ix->nprobe_seen = in.sizes[1];
    ix->code_size_seen = in.sizes[2];
    return ix.release();
}

void RemoteIndex::take_sizes(const IndexInfo& in) {
    // Not nprobe: it stays the value this handle's caller last set or
    // read, which the caller's search_preassigned buffers are sized by
    // (a refresh for ntotal must not make the next call read more).
    if (in.sizes[0] != kSizeUnknown) nlist_seen = in.sizes[0];
    if (in.sizes[2] != kSizeUnknown) code_size_seen = in.sizes[2];
}

bool RemoteIndex::reopen() const {
    return reopen_as("index", [&](const IndexInfo& in) {
        if ((int)in.d != d || (faiss::MetricType)in.metric != metric_type ||
            (in.kind & FX_KIND_BINARY))
            return false;
        const_cast<RemoteIndex*>(this)->take_sizes(in);
        return true;
    });
}

RemoteIndex::~RemoteIndex() {
    cache::forget(this);
    inner_views.clear(); // their handles go before this one's
    // own_fields of a composite not built from client handles reads 1
    // (FX_OWN_FIELDS_R): the transforms prepended to it are its own.
    // (~RemoteOf then frees the children it owns and releases the handle.)
    if (own_children || children.empty())
        for (auto t : child_transforms) delete t;
}

void RemoteIndex::train(idx_t n, const float* x) {
    WriteScope ws(this);
    check_request_size(conn.get(), FX_OP_TRAIN,
                       vectors_request_bytes(n, d, false));
    with_reopen(this, [&](uint64_t rid) {
        rcall_job(conn.get(), FX_OP_TRAIN, FAISSX_PROGRESS_TRAIN,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, n);
                  fx_w_array(w, x, (uint64_t)n * d, sizeof(float));
              },
              [&](fx_rbuf* r) { read_state(r, "train"); }, rid);
    });
    // As in a local program, the caller's transform objects in the chain
    // are trained now: they get the server's trained state.
    if (!child_transforms.empty()) {
        try {
            copy_back_transforms();
        } catch (const std::exception& ex) {
            fx_clog(FAISSX_LOG_WARN,
                    "train: the index was trained, but the trained "
                    "transforms could not be copied back to the client's "
                    "objects: %s", ex.what());
        }
    }
}

/* ---- adds through a shared-memory ring (net/shm.h) ---- */

namespace {

/* Adds smaller than this go the ordinary way: the ring's setup and the
 * round trip cost more than the copy saves. FAISSX_SHM_MIN_BYTES
 * overrides it; faissx_client_options_from_env refuses a malformed value,
 * and one set malformed later leaves the default. */
uint64_t shm_min_bytes() {
    const char* v = getenv("FAISSX_SHM_MIN_BYTES");
    int64_t n;
    if (v && *v && parse_bytes(v, &n)) return (uint64_t)n;
    return (uint64_t)256 << 10;
}

/* FAISSX_SHM: off only when it says so (a malformed value, refused by
 * faissx_client_options_from_env, leaves it on). */
bool shm_allowed() {
    const char* v = getenv("FAISSX_SHM");
    return !(v && *v && parse_switch(v) == 0);
}

/* Test hooks: stop producing after FAISSX_TEST_SHM_STALL_AFTER chunks for
 * FAISSX_TEST_SHM_STALL_MS ms (default: a minute). */
int64_t env_i64(const char* name, int64_t dflt) {
    const char* v = getenv(name);
    return v && *v ? strtoll(v, nullptr, 10) : dflt;
}

/* The connection's ring with its `use` lock taken (one stream at a time),
 * made on first use; NULL when shared memory is off for the connection or
 * another add is using it. */
shm::ClientRing* ring_take(Conn* c) {
    std::lock_guard<std::mutex> g(c->shm.mu);
    if (c->shm.state == 0) {
        // Does the server offer a socket? (PING's optional fields)
        std::string path;
        uint64_t inst[2] = {0, 0};
        bool offered = false;
        try {
            rcall(c, FX_OP_PING, no_fields, [&](fx_rbuf* r) {
                uint64_t v;
                char buf[1024];
                if (fx_r_u64(r, &v) || fx_r_str(r, buf, sizeof buf - 1))
                    proto_error("ping", r);
                if (r->pos == r->len) return; // no shared memory there
                if (fx_r_str(r, buf, sizeof buf - 1) ||
                    fx_r_u64(r, &inst[0]) || fx_r_u64(r, &inst[1]))
                    proto_error("ping", r);
                path = buf;
                offered = true;
            });
        } catch (const std::exception& e) {
            return nullptr; // try again on a later add
        }
        c->shm.state = -1;
        if (!offered) {
            fx_clog(FAISSX_LOG_DEBUG, "%s: the server offers no shared "
                    "memory: adds go the ordinary way", fx_client_url(c->c));
            return nullptr;
        }
        std::string why;
        auto ring = shm::open_ring(path.c_str(), inst, &why);
        if (!ring) {
            fx_clog(FAISSX_LOG_INFO, "%s: shared-memory adds are off for "
                    "this connection: %s (socket %s)", fx_client_url(c->c),
                    why.c_str(), path.c_str());
            return nullptr;
        }
        fx_clog(FAISSX_LOG_DEBUG, "%s: adds stream through shared memory "
                "(socket %s)", fx_client_url(c->c), path.c_str());
        c->shm.ring = std::move(ring);
        c->shm.state = 1;
    }
    if (c->shm.state != 1 || !c->shm.ring->use.try_lock()) return nullptr;
    return c->shm.ring.get();
}

/* Lets go of a ring from ring_take; `retire` closes it for good (its
 * socket's EOF tells the server: a stream still queued there is refused). */
void ring_give(Conn* c, shm::ClientRing* r, bool retire) {
    std::lock_guard<std::mutex> g(c->shm.mu);
    r->use.unlock();
    if (retire && c->shm.ring.get() == r) {
        c->shm.ring.reset();
        c->shm.state = -1;
    }
}

int build_stream(fx_wbuf* w, void* arg) {
    auto a = static_cast<shm::StreamCall*>(arg);
    if (a->sub_op) fx_w_i64(w, a->sub_op); // FX_OP_BINARY's sub-op
    fx_w_u64(w, a->handle);
    fx_w_i64(w, a->n);
    fx_w_i64(w, a->with_ids);
    fx_w_u64(w, a->token[0]);
    fx_w_u64(w, a->token[1]);
    fx_w_u64(w, a->nslots);
    fx_w_u64(w, a->rows);
    fx_w_u64(w, FX_SHM_HDR_BYTES);
    fx_w_u64(w, a->slot_bytes);
    return 0;
}

/* An NNG thread: the ADD_STREAM's first attempt ended; the adding thread
 * may be waiting on either futex word. */
void stream_notify(void* arg) {
    auto hd = static_cast<fx_shm_hdr*>(arg);
    fx_shm_futex_wake(&hd->consumed);
    fx_shm_futex_wake(&hd->state);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Moves the stream's state from RUNNING to ABORTED (nothing if it has
 * left RUNNING already) and wakes the server. */
void stream_client_abort(fx_shm_hdr* hd) {
    uint32_t want = FX_SHM_RUNNING;
    __atomic_compare_exchange_n(&hd->state, &want, (uint32_t)FX_SHM_ABORTED,
                                false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    fx_shm_futex_wake(&hd->produced);
}

/* What a stream add sends: n vectors of row_bytes bytes at x (f32
 * vectors of dimension d, copied with the finite check, when `floats`;
 * else binary codes, copied as they are, through FX_OP_BINARY's
 * FX_BIN_ADD_STREAM), and their ids when xids is not NULL. */
struct StreamSrc {
    int64_t n;
    const uint8_t* x;
    uint64_t row_bytes;
    int d;
    bool floats;
    const idx_t* xids;
};

/* The stream: this thread sends ADD_STREAM (its reply is collected at the
 * end) and fills the ring while the server inserts. With a server that
 * publishes the outcome (FX_SHM_FEAT_COMMIT) the add returns as soon as
 * the state word says COMMITTED; its reply, by then on its way, is
 * dropped by the ring's next stream (the outcome and ntotal are known).
 * With a job (the caller's, for a float add whose thread has a progress
 * callback or a cancel token; binary adds have none, as locally),
 * progress is reported after each published chunk and
 * whenever the server consumes more (done = vectors the server added),
 * and a requested cancellation moves the state to ABORTED: the server
 * rolls back, and once its reply is in the add fails with
 * FAISSX_E_CANCELED (a stream the server committed first stays added).
 * Ix: RemoteIndex or RemoteIndexBinary. */
template <class Ix>
bool stream_add(Ix* ix, const StreamSrc& src, JobScope* job) {
    const int64_t n = src.n;
    const idx_t* xids = src.xids;
    if (n <= 0 || src.row_bytes == 0 || ix->no_stream || !shm_allowed() ||
        (uint64_t)n * src.row_bytes < shm_min_bytes())
        return false;
    Conn* c = ix->conn.get();
    shm::ClientRing* ring = ring_take(c);
    if (!ring) return false;
    uint64_t rows = ring->rows_for(src.row_bytes);
    if (rows == 0) {
        ring_give(c, ring, false);
        return false;
    }
    const uint32_t nslots = ring->nslots;
    fx_shm_hdr* hd = ring->hdr();
    uint64_t rid = fx_client_new_request_id(c->c);
    __atomic_store_n(&hd->state, (uint32_t)FX_SHM_IDLE, __ATOMIC_RELEASE);
    __atomic_store_n(&hd->produced, 0u, __ATOMIC_RELAXED);
    __atomic_store_n(&hd->consumed, 0u, __ATOMIC_RELAXED);
    __atomic_store_n(&hd->ntotal, (uint64_t)FX_SHM_NO_NTOTAL,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&hd->stream_id, rid, __ATOMIC_RELEASE);
    __atomic_store_n(&hd->state, (uint32_t)FX_SHM_RUNNING, __ATOMIC_RELEASE);

    std::unique_ptr<shm::StreamCall> sc(new shm::StreamCall());
    sc->sub_op = src.floats ? 0 : FX_BIN_ADD_STREAM;
    sc->handle = ix->handle.load();
    sc->n = (int64_t)n;
    sc->with_ids = xids ? 1 : 0;
    memcpy(sc->token, ring->token, sizeof sc->token);
    sc->nslots = nslots;
    sc->rows = rows;
    sc->slot_bytes = ring->slot_bytes;
    char err[1400] = "";
    fx_client_next_call_as(rid, 0);
    int rc = fx_client_call_start(
            c->c, src.floats ? FX_OP_ADD_STREAM : FX_OP_BINARY, FAISSX_OP_ADD,
            build_stream, sc.get(), stream_notify, hd, &sc->call, err,
            sizeof err);
    const bool started = rc == 0;
    int from_server = 0;
    // When the first attempt fails in a way the call retries (an attempt
    // timeout, a dropped connection), the retries run on a helper thread
    // while this one keeps filling: the request may be running on the
    // server, which then waits for the chunks (the retry gets its reply).
    std::thread retry;
    std::atomic<int> retried{0};
    fx_reply rrep;
    rrep.msg = nullptr;
    auto call_over = [&] {
        if (retry.joinable()) return retried.load(std::memory_order_acquire) != 0;
        int e = fx_client_call_ended(sc->call);
        if (e != 2) return e == 1;
        fx_call* kc = sc->call;
        sc->call = nullptr;
        try {
            retry = std::thread([&, kc] {
                rc = fx_client_call_finish(kc, &rrep, err, sizeof err);
                from_server = fx_client_last_from_server();
                retried.store(1, std::memory_order_release);
                stream_notify(hd);
            });
        } catch (...) {
            sc->call = kc; // no thread: finish retries after the fill
            return true;
        }
        return false;
    };

    // The job: progress from `consumed`, and the cancellation, which
    // aborts the stream (whoever moves the state off RUNNING decides).
    bool cancelled = false;
    uint32_t reported = 0;
    auto job_poll = [&](bool always) {
        if (!job || cancelled) return;
        uint32_t cons = __atomic_load_n(&hd->consumed, __ATOMIC_ACQUIRE);
        if (always || cons != reported) {
            reported = cons;
            job->step(std::min<int64_t>((int64_t)cons * (int64_t)rows, n));
        }
        if (job->cancel_requested()) {
            cancelled = true;
            stream_client_abort(hd);
        }
    };

    int64_t stall_after = env_i64("FAISSX_TEST_SHM_STALL_AFTER", -1);
    int64_t done = 0;
    uint32_t k = 0;
    bool nan = false;
    size_t bad_at = 0;
    const int d = src.d;
    // The call ending first means the server refused (or the transport
    // failed): stop filling.
    auto running = [&] {
        return started && !cancelled && !call_over() &&
               __atomic_load_n(&hd->state, __ATOMIC_ACQUIRE) ==
                       FX_SHM_RUNNING;
    };
    job_poll(false);
    while (done < n && running()) {
        // A free slot: chunk k reuses the slot of chunk k - nslots.
        bool free_slot = false;
        for (int spin = 0; running(); spin++) {
            uint32_t cons = __atomic_load_n(&hd->consumed, __ATOMIC_ACQUIRE);
            if (k - cons < nslots) {
                free_slot = true;
                break;
            }
            if (spin < 200) {
                cpu_relax();
                continue;
            }
            fx_shm_futex_wait(&hd->consumed, cons, 50);
            job_poll(false);
        }
        if (!free_slot) break;
        uint32_t slot = k % nslots;
        uint8_t* sp = ring->slot(slot);
        int64_t r = std::min<int64_t>((int64_t)rows, n - done);
        if (src.floats) {
            size_t bad;
            if (!copy_finite(reinterpret_cast<float*>(sp),
                             reinterpret_cast<const float*>(src.x) +
                                     (size_t)done * d,
                             (size_t)r * d, &bad)) {
                nan = true;
                bad_at = (size_t)done * d + bad;
                stream_client_abort(hd);
                break;
            }
        } else {
            memcpy(sp, src.x + (size_t)done * src.row_bytes,
                   (size_t)r * src.row_bytes);
        }
        if (xids)
            memcpy(sp + FX_SHM_IDS_AT(rows, src.row_bytes), xids + done,
                   (size_t)r * sizeof(idx_t));
        __atomic_store_n(&hd->rows[slot], (uint32_t)r, __ATOMIC_RELEASE);
        __atomic_store_n(&hd->produced, k + 1, __ATOMIC_RELEASE);
        fx_shm_futex_wake(&hd->produced);
        done += r;
        k++;
        job_poll(true); // once per chunk
        if (stall_after >= 0 && (int64_t)k == stall_after && done < n) {
            // Tests wait for this line before they act on the stall.
            fx_clog(FAISSX_LOG_WARN, "test hook: the stream stalls after "
                    "%u chunks", k);
            std::this_thread::sleep_for(std::chrono::milliseconds(
                    env_i64("FAISSX_TEST_SHM_STALL_MS", 60000)));
        }
    }
    // The previous stream's reply has long arrived: drop it.
    ring->prev.reset();

    if (started && !retry.joinable() && !nan && !cancelled && done == n &&
        (ring->features & FX_SHM_FEAT_COMMIT)) {
        // The outcome from the state word (the server wakes it).
        for (int spin = 0;; spin++) {
            if (__atomic_load_n(&hd->state, __ATOMIC_ACQUIRE) !=
                        FX_SHM_RUNNING ||
                fx_client_call_ended(sc->call))
                break;
            if (spin < 200) {
                cpu_relax();
                continue;
            }
            fx_shm_futex_wait(&hd->state, FX_SHM_RUNNING, 50);
            job_poll(false);
        }
        // ntotal was stored before the state's release.
        uint64_t nt = __atomic_load_n(&hd->ntotal, __ATOMIC_RELAXED);
        if (__atomic_load_n(&hd->state, __ATOMIC_ACQUIRE) ==
                    FX_SHM_COMMITTED &&
            nt != FX_SHM_NO_NTOTAL && nt <= (uint64_t)INT64_MAX) {
            ix->take_state((idx_t)nt, true); // streams go to trained indexes
            ring->prev = std::move(sc);
            shm::count_stream();
            ring_give(c, ring, false);
            if (job) job->step(n);
            return true;
        }
    }

    int64_t new_ntotal = 0, new_trained = 0;
    if (started) {
        fx_reply rep;
        if (retry.joinable()) {
            retry.join();
            rep = rrep;
        } else {
            rc = fx_client_call_finish(sc->call, &rep, err, sizeof err);
            sc->call = nullptr;
            from_server = fx_client_last_from_server();
        }
        if (rc == 0) {
            if (fx_r_i64(&rep.r, &new_ntotal) ||
                fx_r_i64(&rep.r, &new_trained) || fx_r_end(&rep.r)) {
                rc = FAISSX_E_PROTOCOL;
                snprintf(err, sizeof err, "malformed reply to add_stream");
            }
            fx_reply_free(&rep);
        }
    }

    if (rc == 0) {
        ix->take_state(new_ntotal, new_trained != 0);
        shm::count_stream();
        ring_give(c, ring, false);
        if (job) job->step(n);
        return true;
    }
    // Failed. Whoever moves the state off RUNNING decides: if the server
    // committed, the add happened (only its reply was lost).
    stream_client_abort(hd);
    bool committed = __atomic_load_n(&hd->state, __ATOMIC_ACQUIRE) ==
                     FX_SHM_COMMITTED;
    // A transport failure leaves the request's fate unknown: it may still
    // be queued on the server, so this ring is not used again.
    bool retire = !from_server ||
                  (rc == FAISSX_E_INVALID &&
                   strstr(err, "unknown shared-memory region"));
    ring_give(c, ring, retire && !committed);
    if (nan)
        throw Error(FAISSX_E_INVALID,
                    "x contains a non-finite value (NaN or inf) at vector " +
                            std::to_string(bad_at / d) + ", component " +
                            std::to_string(bad_at % d));
    if (committed) {
        shm::count_stream();
        ix->sync();
        if (job) job->step(n);
        return true;
    }
    if (cancelled) {
        // The server rolled back (its reply says so, or it is lost): as
        // an ordinary add's cancellation, nothing was added.
        shm::count_cancel();
        throw Error(FAISSX_E_CANCELED, job->mark_cancelled());
    }
    if (from_server && rc == FAISSX_E_UNSUPPORTED) ix->no_stream = true;
    shm::count_fallback();
    fx_clog(FAISSX_LOG_INFO, "%s: add through shared memory failed (%s); "
            "adding the ordinary way%s", fx_client_url(c->c), err,
            retire ? " (shared memory is now off for this connection)" : "");
    return false;
}

} // namespace

bool RemoteIndex::add_stream(idx_t n, const float* x, const idx_t* xids,
                             JobScope* job) {
    if (d <= 0) return false;
    return stream_add(this,
                      StreamSrc{n, reinterpret_cast<const uint8_t*>(x),
                                (uint64_t)d * sizeof(float), d, true, xids},
                      job);
}

bool RemoteIndexBinary::add_stream(idx_t n, const uint8_t* x,
                                   const idx_t* xids) {
    if (code_size <= 0) return false;
    return stream_add(this, StreamSrc{n, x, (uint64_t)code_size, d, false,
                                      xids},
                      nullptr);
}

namespace {
/* The job of a float add when the calling thread wants one (progress
 * callback, cancel token): shared by its stream and, if that falls back,
 * the ordinary ADD. Throws Error(FAISSX_E_CANCELED) when cancellation is
 * already requested: nothing is sent. */
std::unique_ptr<JobScope> add_job(idx_t n) {
    std::unique_ptr<JobScope> job;
    if (job_wanted()) job.reset(new JobScope(FAISSX_PROGRESS_ADD, n));
    return job;
}
} // namespace

void RemoteIndex::add(idx_t n, const float* x) {
    WriteScope ws(this);
    auto job = add_job(n);
    if (add_stream(n, x, nullptr, job.get())) return;
    check_request_size(conn.get(), FX_OP_ADD,
                       vectors_request_bytes(n, d, false));
    with_reopen(this, [&](uint64_t rid) {
        rcall_job(conn.get(), FX_OP_ADD, FAISSX_PROGRESS_ADD,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, n);
                  fx_w_array(w, x, (uint64_t)n * d, sizeof(float));
              },
              [&](fx_rbuf* r) { read_state(r, "add"); }, rid, job.get());
    });
}

void RemoteIndex::add_with_ids(idx_t n, const float* x, const idx_t* xids) {
    WriteScope ws(this);
    auto job = add_job(n);
    if (add_stream(n, x, xids, job.get())) return;
    check_request_size(conn.get(), FX_OP_ADD_WITH_IDS,
                       vectors_request_bytes(n, d, true));
    with_reopen(this, [&](uint64_t rid) {
        rcall_job(conn.get(), FX_OP_ADD_WITH_IDS, FAISSX_PROGRESS_ADD,
              [&](fx_wbuf* w) {
                  fx_w_reserve(w, 48 + ((size_t)n * d + 2) * sizeof(float) +
                                          (size_t)n * sizeof(idx_t));
                  fx_w_u64(w, handle);
                  fx_w_i64(w, n);
                  fx_w_array(w, x, (uint64_t)n * d, sizeof(float));
                  fx_w_array(w, xids, (uint64_t)n, sizeof(idx_t));
              },
              [&](fx_rbuf* r) { read_state(r, "add_with_ids"); }, rid,
              job.get());
    });
}

void RemoteIndex::add_checked(idx_t n, const float* x, const idx_t* xids) {
    WriteScope ws(this);
    auto job = add_job(n);
    if (add_stream(n, x, xids, job.get())) return;
    check_request_size(conn.get(), xids ? FX_OP_ADD_WITH_IDS : FX_OP_ADD,
                       vectors_request_bytes(n, d, xids != nullptr));
    with_reopen(this, [&](uint64_t rid) {
        rcall_job(conn.get(), xids ? FX_OP_ADD_WITH_IDS : FX_OP_ADD,
              FAISSX_PROGRESS_ADD,
              [&](fx_wbuf* w) {
                  size_t cnt = (size_t)n * (size_t)d;
                  fx_w_reserve(w, 48 + (cnt + 2) * sizeof(float) +
                                          (xids ? (size_t)n * sizeof(idx_t)
                                                : 0));
                  fx_w_u64(w, handle);
                  fx_w_i64(w, n);
                  auto dst = static_cast<float*>(
                          fx_w_array_reserve(w, cnt, sizeof(float)));
                  if (!dst) return; // out of memory: the call reports it
                  size_t bad;
                  if (!copy_finite(dst, x, cnt, &bad))
                      throw Error(FAISSX_E_INVALID,
                                  "x contains a non-finite value (NaN or "
                                  "inf) at vector " + std::to_string(bad / d) +
                                  ", component " + std::to_string(bad % d));
                  if (xids) fx_w_array(w, xids, (uint64_t)n, sizeof(idx_t));
              },
              [&](fx_rbuf* r) {
                  read_state(r, xids ? "add_with_ids" : "add");
              },
              rid, job.get());
    });
}

void RemoteIndex::search(idx_t n, const float* x, idx_t k, float* distances,
                         idx_t* labels,
                         const faiss::SearchParameters* params) const {
    remote_refuse_quantizer_params(params);
    // Calls with per-call parameters (a selector, nprobe) bypass the cache.
    size_t qbytes = (size_t)n * d * sizeof(float);
    size_t rbytes = (size_t)n * k * (sizeof(float) + sizeof(idx_t));
    cache::Ticket t;
    std::string key;
    cache::Seg segs[2] = {{distances, (size_t)n * k * sizeof(float)},
                          {labels, (size_t)n * k * sizeof(idx_t)}};
    if (!params && n > 0 && cache::fits(qbytes + 64, rbytes)) {
        key = key_begin(this, 'S');
        key_put(&key, (int64_t)n);
        key_put(&key, (int64_t)k);
        key.append(reinterpret_cast<const char*>(x), qbytes);
        if (cache::get(this, key, segs, 2, &t)) return;
    }
    // The reply carries the state the search saw (FX_FLAG_STATE): an
    // IndexShards over remote shards translates ids by these ntotals
    // without asking each shard first (faiss reads them after the shards'
    // searches), and an untrained-looking handle learns it is trained.
    bool got_state = false;
    int64_t nt = 0, tr = 0;
    // A batch whose request or reply would be over the server's message
    // limit goes as several requests that fit (the last one's state is
    // kept): the same results, as one call's.
    auto one = [&](idx_t nb, const float* xs, float* ds, idx_t* ls) {
        with_reopen(this, [&](uint64_t) {
        rcall_state(conn.get(), FX_OP_SEARCH,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, nb);
                  fx_w_i64(w, k);
                  fx_w_array(w, xs, (uint64_t)nb * d, sizeof(float));
                  if (params) write_search_params(w, params);
              },
              [&](fx_rbuf* r) {
                  read_into(r, ds, (uint64_t)nb * k, "search");
                  read_into(r, ls, (uint64_t)nb * k, "search");
                  if ((got_state = has_more(r))) {
                      nt = rd_i64(r, "search");
                      tr = rd_i64(r, "search");
                  }
              });
        });
    };
    idx_t step = n;
    if (n > 1 && k > 0) {
        uint64_t per_q = (uint64_t)d * sizeof(float);
        uint64_t per_r = (uint64_t)k * (sizeof(float) + sizeof(idx_t));
        if ((uint64_t)n * per_q > FX_LIMITS_ASK_BYTES / 2 ||
            (uint64_t)n * per_r > FX_LIMITS_ASK_BYTES / 2) {
            uint64_t fixed = request_prefix(conn.get(), [&](fx_wbuf* w) {
                fx_w_u64(w, handle);
                fx_w_i64(w, n);
                fx_w_i64(w, k);
                fx_w_u64(w, (uint64_t)n * d); // the array's count
                if (params) write_search_params(w, params);
            });
            step = batch_step(conn.get(), n, fixed, per_q,
                              FX_HDR_SIZE + 16 + 16, per_r);
        }
    }
    for (idx_t i0 = 0; i0 < n || i0 == 0; i0 += step) {
        idx_t nb = std::min<idx_t>(step, n - i0);
        one(nb, x + i0 * d, distances + i0 * k, labels + i0 * k);
        if (nb <= 0) break;
    }
    if (got_state)
        take_state(nt, tr != 0);
    else
        saw_trained();
    cache::put(this, std::move(key), segs, 2, t);
}

void RemoteIndex::range_search(idx_t n, const float* x, float radius,
                               faiss::RangeSearchResult* result,
                               const faiss::SearchParameters* params) const {
    remote_refuse_quantizer_params(params);
    auto one = [&](idx_t nb, const float* xs, faiss::RangeSearchResult* res) {
        rcall(conn.get(), FX_OP_RANGE_SEARCH,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, nb);
                  fx_w_f64(w, radius);
                  fx_w_array(w, xs, (uint64_t)nb * d, sizeof(float));
                  if (params) write_search_params(w, params);
              },
              [&](fx_rbuf* r) { read_range(r, nb, res, "range_search"); });
    };
    // A query batch over the server's message limit goes as several
    // requests that fit (the reply's size is not known in advance: a
    // reply over the limit is the server's FAISSX_E_LIMIT); their results
    // are joined into one.
    idx_t step = n;
    uint64_t per_q = (uint64_t)d * sizeof(float);
    if (n > 1 && (uint64_t)n * per_q > FX_LIMITS_ASK_BYTES / 2) {
        uint64_t fixed = request_prefix(conn.get(), [&](fx_wbuf* w) {
            fx_w_u64(w, handle);
            fx_w_i64(w, n);
            fx_w_f64(w, radius);
            fx_w_u64(w, (uint64_t)n * d);
            if (params) write_search_params(w, params);
        });
        step = batch_step(conn.get(), n, fixed, per_q, 0, 0);
    }
    if (step >= n) {
        one(n, x, result);
    } else {
        std::vector<std::unique_ptr<faiss::RangeSearchResult>> parts;
        for (idx_t i0 = 0; i0 < n; i0 += step) {
            idx_t nb = std::min<idx_t>(step, n - i0);
            parts.emplace_back(new faiss::RangeSearchResult(nb));
            one(nb, x + i0 * d, parts.back().get());
        }
        idx_t i = 0;
        for (auto& p : parts)
            for (size_t j = 0; j < p->nq; j++)
                result->lims[i++] = p->lims[j + 1] - p->lims[j];
        result->do_allocation();
        size_t at = 0;
        for (auto& p : parts) {
            size_t m = p->lims[p->nq];
            if (m) {
                std::memcpy(result->labels + at, p->labels,
                            m * sizeof(idx_t));
                std::memcpy(result->distances + at, p->distances,
                            m * sizeof(float));
            }
            at += m;
        }
    }
    saw_trained();
}

void RemoteIndex::assign(idx_t n, const float* x, idx_t* labels,
                         idx_t k) const {
    auto one = [&](idx_t nb, const float* xs, idx_t* ls) {
        rcall(conn.get(), FX_OP_ASSIGN,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, handle);
                  fx_w_i64(w, nb);
                  fx_w_i64(w, k);
                  fx_w_array(w, xs, (uint64_t)nb * d, sizeof(float));
              },
              [&](fx_rbuf* r) {
                  read_into(r, ls, (uint64_t)nb * k, "assign");
              });
    };
    // Split as search is (see there).
    idx_t step = n;
    uint64_t per_q = (uint64_t)d * sizeof(float);
    uint64_t per_r = k > 0 ? (uint64_t)k * sizeof(idx_t) : 0;
    if (n > 1 && ((uint64_t)n * per_q > FX_LIMITS_ASK_BYTES / 2 ||
                  (uint64_t)n * per_r > FX_LIMITS_ASK_BYTES / 2)) {
        uint64_t fixed = request_prefix(conn.get(), [&](fx_wbuf* w) {
            fx_w_u64(w, handle);
            fx_w_i64(w, n);
            fx_w_i64(w, k);
            fx_w_u64(w, (uint64_t)n * d);
        });
        step = batch_step(conn.get(), n, fixed, per_q, FX_HDR_SIZE + 8,
                          per_r);
    }
    for (idx_t i0 = 0; i0 < n || i0 == 0; i0 += step) {
        idx_t nb = std::min<idx_t>(step, n - i0);
        one(nb, x + i0 * d, labels + i0 * k);
        if (nb <= 0) break;
    }
    saw_trained();
}

void RemoteIndex::reset() {
    WriteScope ws(this);
    remote_change(this, FX_OP_RESET, FAISSX_OP_ADD, "reset", [](fx_wbuf*) {});
}

size_t RemoteIndex::remove_ids(const faiss::IDSelector& sel) {
    uint64_t removed = 0;
    WriteScope ws(this);
    remote_change(this, FX_OP_REMOVE_IDS, FAISSX_OP_ADD, "remove_ids",
                  [&](fx_wbuf* w) { write_selector(w, &sel, 0); },
                  [&](fx_rbuf* r) {
                      if (fx_r_u64(r, &removed)) proto_error("remove_ids", r);
                  });
    return removed;
}

void RemoteIndex::reconstruct(idx_t key, float* recons) const {
    cache::Ticket t;
    std::string ck;
    cache::Seg seg = {recons, (size_t)d * sizeof(float)};
    if (cache::fits(64, seg.len)) {
        ck = key_begin(this, 'R');
        key_put(&ck, (int64_t)key);
        if (cache::get(this, ck, &seg, 1, &t)) return;
    }
    rcall(conn.get(), FX_OP_RECONSTRUCT_KEYS,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_array(w, &key, 1, sizeof(idx_t));
          },
          [&](fx_rbuf* r) { read_into(r, recons, (uint64_t)d, "reconstruct"); });
    cache::put(this, std::move(ck), &seg, 1, t);
}

void RemoteIndex::reconstruct_batch(idx_t n, const idx_t* keys,
                                    float* recons) const {
    cache::Ticket t;
    std::string ck;
    cache::Seg seg = {recons, (size_t)n * d * sizeof(float)};
    size_t kbytes = (size_t)n * sizeof(idx_t);
    if (n > 0 && cache::fits(kbytes + 64, seg.len)) {
        ck = key_begin(this, 'B');
        ck.append(reinterpret_cast<const char*>(keys), kbytes);
        if (cache::get(this, ck, &seg, 1, &t)) return;
    }
    rcall(conn.get(), FX_OP_RECONSTRUCT_KEYS,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_array(w, keys, (uint64_t)n, sizeof(idx_t));
          },
          [&](fx_rbuf* r) {
              read_into(r, recons, (uint64_t)n * d, "reconstruct");
          });
    cache::put(this, std::move(ck), &seg, 1, t);
}

void RemoteIndex::reconstruct_n(idx_t i0, idx_t ni, float* recons) const {
    cache::Ticket t;
    std::string ck;
    cache::Seg seg = {recons, (size_t)ni * d * sizeof(float)};
    if (ni > 0 && cache::fits(64, seg.len)) {
        ck = key_begin(this, 'N');
        key_put(&ck, (int64_t)i0);
        key_put(&ck, (int64_t)ni);
        if (cache::get(this, ck, &seg, 1, &t)) return;
    }
    rcall(conn.get(), FX_OP_RECONSTRUCT_N,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_i64(w, i0);
              fx_w_i64(w, ni);
          },
          [&](fx_rbuf* r) {
              read_into(r, recons, (uint64_t)ni * d, "reconstruct_n");
          });
    cache::put(this, std::move(ck), &seg, 1, t);
}

void RemoteIndex::compute_residual(const float* x, float* residual,
                                   idx_t key) const {
    compute_residual_n(1, x, residual, &key);
}

void RemoteIndex::compute_residual_n(idx_t n, const float* xs,
                                     float* residuals,
                                     const idx_t* keys) const {
    rcall(conn.get(), FX_OP_RESIDUAL,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_i64(w, n);
              fx_w_array(w, xs, (uint64_t)n * d, sizeof(float));
              fx_w_array(w, keys, (uint64_t)n, sizeof(idx_t));
          },
          [&](fx_rbuf* r) {
              read_into(r, residuals, (uint64_t)n * d, "compute_residual");
          });
}

size_t RemoteIndex::sa_code_size() const {
    // A code size does not change while the index lives: the one in the
    // index info is the server's. (-1, no codec: ask, for its error.)
    if (code_size_seen >= 0) return (size_t)code_size_seen.load();
    uint64_t cs = 0;
    rcall(conn.get(), FX_OP_SA_CODE_SIZE,
          [&](fx_wbuf* w) { fx_w_u64(w, handle); },
          [&](fx_rbuf* r) {
              if (fx_r_u64(r, &cs)) proto_error("sa_code_size", r);
          });
    return (size_t)cs;
}

void RemoteIndex::sa_encode(idx_t n, const float* x, uint8_t* bytes) const {
    // No SA_CODE_SIZE round trip first: the reply's array is n codes,
    // whose size the server knows (and checks: an index without
    // sa_code_size fails the call there).
    rcall(conn.get(), FX_OP_SA_ENCODE,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_i64(w, n);
              fx_w_array(w, x, (uint64_t)n * d, sizeof(float));
          },
          [&](fx_rbuf* r) {
              const void* p;
              uint64_t len;
              if (fx_r_array(r, 1, UINT64_MAX, &p, &len) != 0 ||
                  (n == 0 ? len != 0 : len % (uint64_t)n != 0))
                  proto_error("sa_encode", r);
              if (len) std::memcpy(bytes, p, len);
          });
    saw_trained();
}

void RemoteIndex::sa_decode(idx_t n, const uint8_t* bytes, float* x) const {
    // One round trip: the code size from the index info (asked for only
    // from a server that does not send it). The server checks the array
    // against its own; an index without a codec (-1) sends none and gets
    // the server's refusal.
    int64_t seen = code_size_seen;
    size_t cs = seen == kSizeUnknown ? sa_code_size()
                : seen < 0           ? 0
                                     : (size_t)seen;
    rcall(conn.get(), FX_OP_SA_DECODE,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_i64(w, n);
              fx_w_array(w, bytes, (uint64_t)n * cs, 1);
          },
          [&](fx_rbuf* r) { read_into(r, x, (uint64_t)n * d, "sa_decode"); });
    saw_trained();
}

void RemoteIndex::merge_from(faiss::Index& other, idx_t add_id) {
    auto o = as_remote(&other);
    if (!o || o->conn != conn)
        throw Error(FAISSX_E_UNSUPPORTED,
                    "merge_from needs two indexes on the same server");
    WriteScope ws(this), wo(o); // faiss empties `other`
    // One round trip: the reply carries other's state too (FX_FLAG_STATE;
    // a server that predates it is asked INFO afterwards).
    bool got_other = false;
    int64_t ont = 0, otr = 0;
    rcall_state(conn.get(), FX_OP_MERGE_FROM,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_u64(w, o->handle);
              fx_w_i64(w, add_id);
          },
          [&](fx_rbuf* r) {
              read_state(r, "merge_from");
              if ((got_other = has_more(r))) {
                  ont = rd_i64(r, "merge_from");
                  otr = rd_i64(r, "merge_from");
              }
          });
    if (got_other)
        o->take_state(ont, otr != 0);
    else
        o->sync();
}

std::vector<uint8_t> RemoteIndex::fetch(const char* what, int64_t arg) const {
    std::vector<uint8_t> out;
    rcall(conn.get(), FX_OP_FETCH,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_str(w, what);
              fx_w_i64(w, arg);
          },
          [&](fx_rbuf* r) {
              (void)rd_i64(r, "fetch"); // the element size
              out = read_bytes(r, "fetch");
          });
    return out;
}

void RemoteIndex::ivf_call(int64_t op, const WireBuild& build,
                           const WireParse& parse,
                           bool want_state) {
    int cls = op == FX_IVF_SEARCH_PREASSIGNED ? FAISSX_OP_SEARCH
              : op == FX_IVF_ADD_CORE || op == FX_IVF_UPDATE_VECTORS ||
                              op == FX_IVF_COPY_SUBSET_TO
                      ? FAISSX_OP_ADD
              : op == FX_IVF_TRAIN_RESIDUAL ? FAISSX_OP_TRAIN
                                            : FAISSX_OP_ADMIN;
    // Every sub-op but these writes, and copy_subset_to writes another
    // index: drop the cache of the whole server (they are rare).
    struct ServerWrite {
        const RemoteIndex* r;
        ~ServerWrite() {
            if (r) cache::wrote_server(fx_client_url(r->conn->c));
        }
    } sw{op == FX_IVF_SEARCH_PREASSIGNED || op == FX_IVF_IMBALANCE ? nullptr
                                                                   : this};
    auto b = [&](fx_wbuf* w) {
        fx_w_u64(w, handle);
        fx_w_i64(w, op);
        build(w);
    };
    if (want_state)
        rcall_state(conn.get(), FX_OP_IVF, b, parse, cls);
    else
        rcall(conn.get(), FX_OP_IVF, b, parse, cls);
}

void RemoteIndex::ivf_mutate(int64_t op, const WireBuild& build) {
    ivf_call(op, build, [&](fx_rbuf* r) { read_state(r, "ivf"); });
}

void RemoteIndex::sync(idx_t* nt, bool* trained) {
    IndexInfo in;
    remote_on(this, FX_OP_INFO, FAISSX_OP_ADMIN, false, [](fx_wbuf*) {},
              [&](fx_rbuf* r) { read_index_info(r, "index info", &in); });
    take_info(in);
    take_sizes(in);
    if (nt) *nt = in.ntotal;
    if (trained) *trained = in.trained;
}

bool RemoteIndex::trained_now() {
    {
        std::lock_guard<std::mutex> g(sync_mu);
        if (is_trained) return true;
    }
    bool t = false;
    sync(nullptr, &t);
    return t;
}

void RemoteIndex::set_param(const char* name, double value) {
    WriteScope ws(this); // nprobe, efSearch, ... change results
    remote_change(this, FX_OP_SET_PARAM, FAISSX_OP_ADMIN, "set_param",
                  [&](fx_wbuf* w) {
                      fx_w_str(w, name);
                      fx_w_f64(w, value);
                  });
    if (!std::strcmp(name, "verbose")) verbose = value != 0;
    // What the server now has (faiss's ParameterSpace sets int(value)):
    // a caller sizes search_preassigned's assign by it.
    if (!std::strcmp(name, "nprobe"))
        nprobe_seen = value >= 0 && value <= INT_MAX ? (int64_t)(int)value
                                                      : kSizeUnknown;
}

double RemoteIndex::get_param(const char* name) const {
    // An IVF's nlist is fixed when it is built: the index info's is the
    // server's (no round trip).
    if (!std::strcmp(name, "nlist") && nlist_seen > 0)
        return (double)nlist_seen.load();
    double v = 0;
    rcall(conn.get(), FX_OP_GET_PARAM,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_str(w, name);
          },
          [&](fx_rbuf* r) {
              if (fx_r_f64(r, &v)) proto_error("get_param", r);
          });
    auto self = const_cast<RemoteIndex*>(this);
    if (!std::strcmp(name, "nprobe")) self->nprobe_seen = (int64_t)v;
    if (!std::strcmp(name, "nlist")) self->nlist_seen = (int64_t)v;
    return v;
}

std::vector<uint8_t> RemoteIndex::serialize() const {
    return remote_download(conn.get(), handle, FX_UPLOAD_INDEX, [&] {
        std::vector<uint8_t> out;
        rcall(conn.get(), FX_OP_SERIALIZE,
              [&](fx_wbuf* w) { fx_w_u64(w, handle); },
              [&](fx_rbuf* r) { out = read_bytes(r, "serialize"); });
        return out;
    });
}

namespace {

/* Copies the state of src into dst, an object of the same faiss class
 * (the classes the VectorTransform C API constructs, and LinearTransform);
 * false for another class. */
bool assign_transform(faiss::VectorTransform* dst,
                      const faiss::VectorTransform* src) {
    if (typeid(*dst) != typeid(*src)) return false;
#define FX_ASSIGN_AS(T)                                                    \
    if (typeid(*dst) == typeid(faiss::T)) {                                \
        *static_cast<faiss::T*>(dst) = *static_cast<const faiss::T*>(src); \
        return true;                                                       \
    }
    FX_ASSIGN_AS(RandomRotationMatrix)
    FX_ASSIGN_AS(PCAMatrix)
    FX_ASSIGN_AS(ITQMatrix)
    FX_ASSIGN_AS(ITQTransform)
    FX_ASSIGN_AS(OPQMatrix)
    FX_ASSIGN_AS(RemapDimensionsTransform)
    FX_ASSIGN_AS(NormalizationTransform)
    FX_ASSIGN_AS(CenteringTransform)
    FX_ASSIGN_AS(LinearTransform)
#undef FX_ASSIGN_AS
    return false;
}

} // namespace

void RemoteIndex::prepend_transform(const std::vector<uint8_t>& vt_bytes) {
    WriteScope ws(this); // the chain changes every result
    IndexInfo in;
    rcall(conn.get(), FX_OP_COMPOSITE,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_i64(w, FX_COMP_PREPEND);
              fx_w_array(w, vt_bytes.data(), vt_bytes.size(), 1);
          },
          [&](fx_rbuf* r) { read_index_info(r, "index info", &in); });
    std::lock_guard<std::mutex> g(sync_mu);
    d = (int)in.d;
    ntotal = in.ntotal;
    is_trained = in.trained;
    kind = in.kind;
    take_sizes(in);
}

RemoteIndex* RemoteIndex::inner(int64_t k) {
    std::lock_guard<std::mutex> g(inner_mu);
    auto it = inner_views.find(k);
    if (it != inner_views.end()) return it->second.get();
    std::unique_ptr<RemoteIndex> ix;
    rcall(conn.get(), FX_OP_COMPOSITE,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_i64(w, FX_COMP_INNER);
              fx_w_i64(w, k);
          },
          [&](fx_rbuf* r) { read_info(r, conn, nullptr, &ix); });
    // One data structure behind two handles: writes through either
    // invalidate the server's cached results.
    ix->linked = linked = true;
    return (inner_views[k] = std::move(ix)).get();
}

void RemoteIndex::copy_back_transforms() {
    std::vector<std::unique_ptr<faiss::VectorTransform>> chain;
    rcall(conn.get(), FX_OP_COMPOSITE,
          [&](fx_wbuf* w) {
              fx_w_u64(w, handle);
              fx_w_i64(w, FX_COMP_CHAIN);
          },
          [&](fx_rbuf* r) {
              uint64_t n;
              if (fx_r_u64(r, &n) || n > 1024) proto_error("chain", r);
              for (uint64_t i = 0; i < n; i++) {
                  const void* p;
                  uint64_t nb;
                  if (fx_r_array(r, 1, UINT64_MAX, &p, &nb))
                      proto_error("chain", r);
                  faiss::VectorIOReader in;
                  in.data.assign(static_cast<const uint8_t*>(p),
                                 static_cast<const uint8_t*>(p) + nb);
                  try {
                      chain.emplace_back(faiss::read_VectorTransform(&in));
                  } catch (const std::exception& ex) {
                      throw Error(FAISSX_E_PROTOCOL,
                                  std::string("malformed transform in the "
                                              "reply to chain: ") + ex.what());
                  }
              }
          });
    // The client's objects are the chain's first ones, unless another
    // handle changed the chain since: then only those that still match.
    for (size_t i = 0; i < child_transforms.size() && i < chain.size(); i++) {
        faiss::VectorTransform* t = child_transforms[i];
        if (t->d_in == chain[i]->d_in && t->d_out == chain[i]->d_out)
            assign_transform(t, chain[i].get());
    }
}

RemoteIndex* as_remote(const faiss::Index* ix) {
    // RemoteIndex is final: the exact-type test is what dynamic_cast would
    // answer, at a fraction of its cost (it runs a few times per call).
    if (!ix || typeid(*ix) != typeid(RemoteIndex)) return nullptr;
    return const_cast<RemoteIndex*>(static_cast<const RemoteIndex*>(ix));
}

bool remote_is(const faiss::Index* ix, int64_t kind) {
    auto r = as_remote(ix);
    return r && (r->kind & kind) != 0;
}

/* ---- configuration ---- */

static int connect_locked(const char* func) {
    fx_client* c = nullptr;
    char err[512];
    int rc = fx_client_open(&g_opts, g_opts.fallback_local, &c, err,
                            sizeof err);
    if (rc != 0) return fail(rc, func, "%s", err);
    auto conn = std::make_shared<Conn>();
    conn->c = c;
    g_conn = conn;
    return 0;
}

/* Reads FAISSX_SERVER and its companions once, unless configured by API. */
static void read_env_locked() {
    if (g_env_read || g_conn || !g_url.empty()) return;
    g_env_read = true;
    const char* url = getenv("FAISSX_SERVER");
    if (!url || !*url) return;
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    if (faissx_client_options_from_env(&o) != 0) {
        const char* m = faiss_get_last_error();
        g_env_error = m ? m : "malformed FAISSX_* variable";
        return;
    }
    store_opts_locked(o);
    cache::configure(o.cache_max_bytes, o.cache_ttl_ms);
}

/* The connection for named-index calls: 0 with *out empty in local mode,
 * or the configured server's connection (whatever its state). */
static int server_conn_locked(const char* func, std::shared_ptr<Conn>* out) {
    out->reset();
    if (g_disabled) return 0;
    read_env_locked();
    if (!g_env_error.empty())
        return fail(FAISSX_E_INVALID, func, "%s", g_env_error.c_str());
    if (g_url.empty()) return 0;
    if (!g_conn)
        if (int rc = connect_locked(func)) return rc;
    *out = g_conn;
    return 0;
}

int remote_conn(const char* func, std::shared_ptr<Conn>* out, bool warn) {
    std::lock_guard<std::mutex> g(g_mu);
    if (int rc = server_conn_locked(func, out)) return rc;
    // Graceful degradation: a constructor makes a local index while the
    // server cannot be reached.
    if (*out && g_opts.fallback_local &&
        fx_client_state((*out)->c) != FAISSX_CONN_CONNECTED) {
        if (warn)
            fx_clog(FAISSX_LOG_WARN,
                "%s: server %s is unreachable (%s): the index is created "
                "locally (fallback_local)",
                func, fx_client_url((*out)->c),
                fx_client_state((*out)->c) == FAISSX_CONN_FAILED
                        ? "connection failed"
                        : "reconnecting");
        out->reset();
    }
    return 0;
}

int remote_create(const char* func, const std::shared_ptr<Conn>& conn,
                  const char* name, int d, const char* description,
                  int metric, FaissIndex** out) {
    try {
        std::unique_ptr<RemoteIndex> ix;
        rcall(conn.get(), FX_OP_CREATE,
              [&](fx_wbuf* w) {
                  fx_w_str(w, name ? name : "");
                  fx_w_i64(w, d);
                  fx_w_i64(w, metric);
                  fx_w_str(w, description);
              },
              [&](fx_rbuf* r) { read_info(r, conn, name, &ix); });
        *out = hand_out(std::move(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

int remote_upload_new(const char* func, const std::shared_ptr<Conn>& conn,
                      faiss::Index* local, FaissIndex** out) {
    std::unique_ptr<faiss::Index> owned(local);
    try {
        faiss::VectorIOWriter bytes;
        faiss::write_index(local, &bytes);
        owned.reset();
        std::unique_ptr<RemoteIndex> ix;
        upload_index_bytes(conn, bytes.data, nullptr, &ix);
        *out = hand_out(std::move(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

int remote_wrap(const char* func, RemoteIndex* child, int64_t type,
                const WireBuild& fields, FaissIndex** out) {
    try {
        std::unique_ptr<RemoteIndex> ix;
        rcall(child->conn.get(), FX_OP_WRAP,
              [&](fx_wbuf* w) {
                  fx_w_u64(w, child->handle);
                  fx_w_i64(w, type);
                  fields(w);
              },
              [&](fx_rbuf* r) { read_info(r, child->conn, nullptr, &ix); });
        ix->children.push_back(child);
        child->linked = ix->linked = true;
        *out = hand_out(std::move(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

int remote_clone(const char* func, const RemoteIndex* src, FaissIndex** out) {
    try {
        std::unique_ptr<RemoteIndex> ix;
        rcall(src->conn.get(), FX_OP_CLONE,
              [&](fx_wbuf* w) { fx_w_u64(w, src->handle); },
              [&](fx_rbuf* r) { read_info(r, src->conn, nullptr, &ix); });
        *out = hand_out(std::move(ix));
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}

void remote_call(const Conn* c, int op, int op_class,
                 const WireBuild& build,
                 const WireParse& parse) {
    rcall(c, op, build, parse, op_class);
}

void remote_write_selector(fx_wbuf* w, const faiss::IDSelector* s) {
    write_selector(w, s, 0);
}

void remote_write_search_params(fx_wbuf* w,
                                const faiss::SearchParameters* params) {
    write_search_params(w, params);
}

void remote_refuse_quantizer_params(const faiss::SearchParameters* params) {
    auto ivfp = dynamic_cast<const faiss::SearchParametersIVF*>(params);
    if (ivfp && ivfp->quantizer_params)
        throw Error(FAISSX_E_UNSUPPORTED,
                    "quantizer search parameters cannot be sent to a server");
}

int remote_named_conn(const char* func, std::shared_ptr<Conn>* c) {
    {
        std::lock_guard<std::mutex> g(g_mu);
        if (int rc = server_conn_locked(func, c)) return rc;
    }
    if (!*c)
        return fail(FAISSX_E_INVALID, func,
                    "no server configured: call faissx_configure or set "
                    "FAISSX_SERVER");
    return 0;
}

} // namespace fx

/* ---- faissx.h remote API ---- */

extern "C" {

void faissx_client_options_init(FaissxClientOptions* o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o->timeout_ms[i] = 30000;
    o->attempt_timeout_ms = 0;
    o->max_attempts = 3;
    o->backoff_base_ms = 50;
    o->backoff_cap_ms = 2000;
    o->pool_size = 1;
}

/* An integer variable in [lo, hi]; 0 when unset, 1 when read, or a
 * FaissxError recorded for func. */
static int env_int(const char* func, const char* name, long lo, long hi,
                   int* out) {
    const char* v = getenv(name);
    if (!v || !*v) return 0;
    char* end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || errno || n < lo || n > hi)
        return fx::fail(FAISSX_E_INVALID, func,
                        "%s: expected an integer in %ld..%ld, got '%s'", name,
                        lo, hi, v);
    *out = (int)n;
    return 1;
}

/* A byte count with an optional K, M or G suffix (powers of 1024); same
 * returns as env_int. */
static int env_bytes(const char* func, const char* name, int64_t* out) {
    const char* v = getenv(name);
    if (!v || !*v) return 0;
    if (!parse_bytes(v, out))
        return fx::fail(FAISSX_E_INVALID, func,
                        "%s: expected a byte count >= 0 with an optional K, "
                        "M or G suffix, got '%s'", name, v);
    return 1;
}

/* A yes/no variable; same returns as env_int. */
static int env_switch(const char* func, const char* name, int* out) {
    const char* v = getenv(name);
    if (!v || !*v) return 0;
    int val = parse_switch(v);
    if (val < 0)
        return fx::fail(FAISSX_E_INVALID, func,
                        "%s: expected 1/0, true/false, yes/no or on/off, "
                        "got '%s'", name, v);
    *out = val;
    return 1;
}

int faissx_client_options_from_env(FaissxClientOptions* o) {
    FX_NOT_NULL(o);
    const char* f = __func__;
    const long kMaxMs = 24L * 3600 * 1000; // a day
    auto str = [](const char* name, const char** out) {
        const char* v = getenv(name);
        if (v && *v) *out = v;
    };
    str("FAISSX_SERVER", &o->url);
    str("FAISSX_API_KEY", &o->api_key);
    str("FAISSX_TLS_CA", &o->tls_ca);
    int v, rc;
    if ((rc = env_int(f, "FAISSX_TIMEOUT_MS", 1, kMaxMs, &v)) < 0) return rc;
    if (rc)
        for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++) o->timeout_ms[i] = v;
    static const char* const per_class[FAISSX_OP_CLASS_COUNT] = {
            "FAISSX_TIMEOUT_SEARCH_MS", "FAISSX_TIMEOUT_ADD_MS",
            "FAISSX_TIMEOUT_TRAIN_MS", "FAISSX_TIMEOUT_ADMIN_MS"};
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++)
        if ((rc = env_int(f, per_class[i], 1, kMaxMs, &o->timeout_ms[i])) < 0)
            return rc;
    struct {
        const char* name;
        long lo, hi;
        int* field;
    } ints[] = {
            {"FAISSX_ATTEMPT_TIMEOUT_MS", 0, kMaxMs, &o->attempt_timeout_ms},
            {"FAISSX_RETRY_MAX_ATTEMPTS", 1, 100, &o->max_attempts},
            {"FAISSX_RETRY_BASE_MS", 1, 60000, &o->backoff_base_ms},
            {"FAISSX_RETRY_CAP_MS", 1, 600000, &o->backoff_cap_ms},
            {"FAISSX_POOL_SIZE", 1, 64, &o->pool_size},
            {"FAISSX_HEARTBEAT_MS", 0, kMaxMs, &o->heartbeat_ms},
    };
    for (auto& e : ints)
        if ((rc = env_int(f, e.name, e.lo, e.hi, e.field)) < 0) return rc;
    if ((rc = env_switch(f, "FAISSX_FALLBACK_LOCAL", &o->fallback_local)) < 0)
        return rc;
    /* Read at each add (no option fields), but checked here so that a
     * malformed value is an error rather than a silent default. */
    int64_t shm_min;
    if ((rc = env_switch(f, "FAISSX_SHM", &v)) < 0) return rc;
    if ((rc = env_bytes(f, "FAISSX_SHM_MIN_BYTES", &shm_min)) < 0) return rc;
    if ((rc = env_int(f, "FAISSX_CACHE_TTL_MS", 0, INT_MAX, &o->cache_ttl_ms)) < 0)
        return rc;
    if ((rc = env_bytes(f, "FAISSX_CACHE_MAX_BYTES", &o->cache_max_bytes)) < 0)
        return rc;
    return 0;
}

/* Checks every field of o; the message names the field. */
static int check_options(const char* func, const FaissxClientOptions* o) {
    for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++)
        if (o->timeout_ms[i] <= 0)
            return fx::fail(FAISSX_E_INVALID, func,
                            "timeout_ms[%d] must be > 0 (got %d)", i,
                            o->timeout_ms[i]);
    if (o->attempt_timeout_ms < 0)
        return fx::fail(FAISSX_E_INVALID, func,
                        "attempt_timeout_ms must be >= 0 (got %d)",
                        o->attempt_timeout_ms);
    if (o->max_attempts < 1 || o->max_attempts > 100)
        return fx::fail(FAISSX_E_INVALID, func,
                        "max_attempts must be in 1..100 (got %d)",
                        o->max_attempts);
    if (o->backoff_base_ms < 1 || o->backoff_cap_ms < o->backoff_base_ms)
        return fx::fail(FAISSX_E_INVALID, func,
                        "backoff_base_ms must be >= 1 and backoff_cap_ms >= "
                        "backoff_base_ms (got %d, %d)",
                        o->backoff_base_ms, o->backoff_cap_ms);
    if (o->pool_size < 1 || o->pool_size > 64)
        return fx::fail(FAISSX_E_INVALID, func,
                        "pool_size must be in 1..64 (got %d)", o->pool_size);
    if (o->heartbeat_ms < 0)
        return fx::fail(FAISSX_E_INVALID, func,
                        "heartbeat_ms must be >= 0 (got %d)", o->heartbeat_ms);
    if (o->fallback_local != 0 && o->fallback_local != 1)
        return fx::fail(FAISSX_E_INVALID, func,
                        "fallback_local must be 0 or 1 (got %d)",
                        o->fallback_local);
    if (int rc = fx::cache::check_limits(func, o->cache_max_bytes,
                                         o->cache_ttl_ms))
        return rc;
    for (int r : o->reserved)
        if (r != 0)
            return fx::fail(FAISSX_E_INVALID, func,
                            "reserved fields must be zero (call "
                            "faissx_client_options_init first)");
    return 0;
}

/* Installs o; the previous connection goes to *old, for the caller to
 * release after unlocking g_mu (closing it runs NNG callbacks, and a state
 * callback may call faissx_connection_state, which takes g_mu). */
static int configure_locked(const char* func, const FaissxClientOptions* o,
                            std::shared_ptr<fx::Conn>* old) {
    fx::g_env_read = true; // explicit configuration wins over FAISSX_SERVER
    fx::g_env_error.clear();
    *old = std::move(fx::g_conn); // indexes keep their own reference
    fx::store_opts_locked(*o);
    fx::cache::configure(o->cache_max_bytes, o->cache_ttl_ms);
    if (!o->url) return 0;
    fx::g_disabled = false;
    int rc = fx::connect_locked(func);
    if (rc != 0) {
        fx::g_url.clear();
        fx::g_opts.url = nullptr;
    }
    return rc;
}

int faissx_configure_ex(const FaissxClientOptions* opts) {
    FX_NOT_NULL(opts);
    if (int rc = check_options(__func__, opts)) return rc;
    std::shared_ptr<fx::Conn> old;
    std::lock_guard<std::mutex> g(fx::g_mu);
    return configure_locked(__func__, opts, &old);
}

int faissx_configure(const char* url, const char* api_key, int timeout_ms) {
    FX_REQUIRE(timeout_ms >= 0, "timeout_ms must be >= 0 (got %d)", timeout_ms);
    FaissxClientOptions o;
    faissx_client_options_init(&o);
    if (int rc = faissx_client_options_from_env(&o)) return rc;
    o.url = url;
    o.api_key = api_key;
    if (timeout_ms > 0)
        for (int i = 0; i < FAISSX_OP_CLASS_COUNT; i++)
            o.timeout_ms[i] = timeout_ms;
    if (int rc = check_options(__func__, &o)) return rc;
    std::shared_ptr<fx::Conn> old;
    std::lock_guard<std::mutex> g(fx::g_mu);
    return configure_locked(__func__, &o, &old);
}

int faissx_set_timeout(FaissxOpClass op_class, int timeout_ms) {
    int cls = fx::raw_enum(op_class);
    FX_REQUIRE(cls >= 0 && cls < FAISSX_OP_CLASS_COUNT,
               "op_class must be a FaissxOpClass (got %d)", cls);
    FX_REQUIRE(timeout_ms > 0, "timeout_ms must be > 0 (got %d)", timeout_ms);
    std::lock_guard<std::mutex> g(fx::g_mu);
    fx::ensure_opts_locked();
    fx::g_opts.timeout_ms[cls] = timeout_ms;
    if (fx::g_conn) fx_client_set_timeout(fx::g_conn->c, cls, (uint32_t)timeout_ms);
    return 0;
}

int faissx_get_timeout(FaissxOpClass op_class) {
    int cls = fx::raw_enum(op_class);
    FX_REQUIRE(cls >= 0 && cls < FAISSX_OP_CLASS_COUNT,
               "op_class must be a FaissxOpClass (got %d)", cls);
    std::lock_guard<std::mutex> g(fx::g_mu);
    if (fx::g_conn) return (int)fx_client_timeout(fx::g_conn->c, cls);
    fx::ensure_opts_locked();
    return fx::g_opts.timeout_ms[cls];
}

int faissx_set_thread_timeout(int timeout_ms) {
    FX_REQUIRE(timeout_ms >= 0, "timeout_ms must be >= 0 (got %d)",
               timeout_ms);
    return fx_client_thread_timeout(timeout_ms);
}

FaissxConnState faissx_connection_state(void) {
    std::lock_guard<std::mutex> g(fx::g_mu);
    std::shared_ptr<fx::Conn> c;
    // Connects if configured (by the environment) and not yet connected,
    // as the first index construction would.
    if (fx::server_conn_locked(__func__, &c) != 0) return FAISSX_CONN_FAILED;
    return c ? fx_client_state(c->c) : FAISSX_CONN_NONE;
}

void faissx_set_connection_callback(FaissxConnStateCallback cb, void* user) {
    fx_client_set_state_callback(cb, user);
}

void faissx_set_log_callback(FaissxLogCallback cb, void* user) {
    fx_log_set_callback(cb, user);
}

void faissx_set_log_level(FaissxLogLevel level) {
    fx_log_set_level(fx::raw_enum(level));
}

int faissx_is_remote(void) {
    std::shared_ptr<fx::Conn> c;
    if (fx::remote_conn(__func__, &c, false) != 0)
        return 1; // configured, unreachable
    return c != nullptr;
}

void faissx_remote_disable(void) {
    std::shared_ptr<fx::Conn> old; // released after the lock (see above)
    std::lock_guard<std::mutex> g(fx::g_mu);
    fx::g_disabled = true;
    old = std::move(fx::g_conn);
    fx::g_url.clear();
    fx::g_opts.url = nullptr;
}

int faissx_index_is_remote(const FaissIndex* index) {
    return index && fx::as_remote(fx::index(index)) != nullptr;
}

int faissx_index_create(FaissIndex** p_index, const char* name, int d,
                        const char* description, FaissMetricType metric) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(name);
    FX_NOT_NULL(description);
    FX_REQUIRE(name[0] != '\0', "name is empty (use faiss_index_factory for "
                                 "an unnamed index)");
    if (int rc = fx::check_dim(__func__, d)) return rc;
    if (int rc = fx::check_metric(__func__, fx::raw_enum(metric))) return rc;
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    return fx::remote_create(__func__, c, name, d, description, metric, p_index);
}

int faissx_index_open(FaissIndex** p_index, const char* name) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(name);
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    FX_TRY
    std::unique_ptr<fx::RemoteIndex> ix; // named: freeing releases nothing
    fx::rcall(c.get(), FX_OP_OPEN, [&](fx_wbuf* w) { fx_w_str(w, name); },
              [&](fx_rbuf* r) { fx::read_info(r, c, name, &ix); });
    if (ix->kind & FX_KIND_BINARY)
        return fx::fail(FAISSX_E_INVALID, __func__,
                        "index '%s' is a binary index (open it with "
                        "faissx_index_binary_open)",
                        name);
    *p_index = fx::hand_out(std::move(ix));
    return 0;
    FX_CATCH
}

int faissx_index_list(char*** p_names, size_t* p_count) {
    FX_NOT_NULL(p_names);
    FX_NOT_NULL(p_count);
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    FX_TRY
    std::vector<std::string> names;
    fx::rcall(c.get(), FX_OP_LIST, fx::no_fields, [&](fx_rbuf* r) {
        uint64_t n;
        if (fx_r_u64(r, &n) || n > (1u << 24)) fx::proto_error("list", r);
        for (uint64_t i = 0; i < n; i++) {
            char name[256];
            int64_t d, nt;
            if (fx_r_str(r, name, sizeof name - 1) || fx_r_i64(r, &d) ||
                fx_r_i64(r, &nt))
                fx::proto_error("list", r);
            names.push_back(name);
        }
    });
    char** out = static_cast<char**>(calloc(names.size() + 1, sizeof(char*)));
    if (!out) throw std::bad_alloc();
    for (size_t i = 0; i < names.size(); i++) {
        out[i] = strdup(names[i].c_str());
        if (!out[i]) {
            faissx_index_list_free(out, i);
            throw std::bad_alloc();
        }
    }
    *p_names = out;
    *p_count = names.size();
    return 0;
    FX_CATCH
}

void faissx_index_list_free(char** names, size_t count) {
    if (!names) return;
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
}

int faissx_index_drop(const char* name) {
    FX_NOT_NULL(name);
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    FX_TRY
    // Handles to it must not answer from the cache.
    struct ServerWrite {
        const char* url;
        ~ServerWrite() { fx::cache::wrote_server(url); }
    } sw{fx_client_url(c->c)};
    fx::rcall(c.get(), FX_OP_DROP, [&](fx_wbuf* w) { fx_w_str(w, name); },
              fx::no_reply);
    return 0;
    FX_CATCH
}

int faissx_index_upload(const FaissIndex* local, const char* name,
                        FaissIndex** p_index) {
    FX_NOT_NULL(local);
    FX_NOT_NULL(p_index);
    if (name && !name[0]) name = nullptr; // "" means unnamed, as NULL
    FX_REQUIRE(!fx::as_remote(fx::index(local)),
               "the index is already remote (use faiss_clone_index)");
    std::shared_ptr<fx::Conn> c;
    if (int rc = fx::remote_named_conn(__func__, &c)) return rc;
    FX_TRY
    faiss::VectorIOWriter bytes;
    faiss::write_index(fx::index(local), &bytes);
    std::unique_ptr<fx::RemoteIndex> ix;
    fx::upload_index_bytes(c, bytes.data, name, &ix);
    *p_index = fx::hand_out(std::move(ix));
    return 0;
    FX_CATCH
}

int faissx_index_download(const FaissIndex* index, FaissIndex** p_local) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(p_local);
    FX_TRY
    auto r = fx::as_remote(fx::index(index));
    faiss::VectorIOReader in;
    if (r) {
        in.data = r->serialize();
    } else {
        faiss::VectorIOWriter w;
        faiss::write_index(fx::index(index), &w);
        in.data.swap(w.data);
    }
    *p_local = fx::handle<FaissIndex>(faiss::read_index(&in));
    return 0;
    FX_CATCH
}

} // extern "C"
