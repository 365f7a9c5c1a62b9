/* progress.cpp -- progress reports and cancellation of long calls
 * (faissx.h "Progress and cancellation"; see progress.h).
 *
 * Cancellation must leave the index as it was, so a cancellable call works
 * where it can be undone:
 *   - train runs on a clone, whose trained state is copied back into the
 *     caller's index only once training finished (transplant_trained);
 *   - add runs in slices and, if stopped, truncates what it appended
 *     (AddUndo: flat codes, IVF list sizes, direct map, IDMap ids).
 * Types without such a path still report progress but can be cancelled
 * only before they start. */
#include "core/progress.h"
#include "core/core.h"

#include <faiss/Clustering.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/clone_index.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/invlists/InvertedLists.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <typeinfo>
#include <vector>

struct FaissxCancelToken {
    std::atomic<int> raised{0};
};

namespace fx {

namespace {
thread_local FaissxProgressCallback tl_cb = nullptr;
thread_local void* tl_user = nullptr;
thread_local FaissxCancelToken* tl_token = nullptr;
thread_local JobSink* tl_sink = nullptr;
thread_local JobScope* tl_job = nullptr;

/* faiss polls InterruptCallback::instance from the thread that runs the
 * computation (Clustering, distance blocks) and from OpenMP workers
 * (is_interrupted in HNSW/IVF loops). Only the thread that owns an
 * interruptible job is told to stop: a worker has no job and answers no,
 * and faiss's own check() then throws on the owning thread, outside the
 * parallel regions. */
struct Interrupt : faiss::InterruptCallback {
    bool want_interrupt() override {
        JobScope* j = JobScope::current();
        return j && j->interruptible() && j->cancel_requested();
    }
};

void install_interrupt() {
    static std::once_flag once;
    std::call_once(once, [] {
        std::lock_guard<std::mutex> g(faiss::InterruptCallback::lock);
        if (!faiss::InterruptCallback::instance)
            faiss::InterruptCallback::instance.reset(new Interrupt());
    });
}
} // namespace

double now_s() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

JobSink* job_attach_sink(JobSink* sink) {
    JobSink* old = tl_sink;
    tl_sink = sink;
    return old;
}

bool job_wanted() {
    return tl_cb || tl_token || tl_sink;
}

bool job_token_raised() {
    return tl_token && tl_token->raised.load(std::memory_order_acquire);
}

JobScope* JobScope::current() {
    return tl_job;
}

JobScope::JobScope(int op, int64_t total)
        : op_(op), t0_(now_s()), cb_(tl_cb), user_(tl_user),
          token_(tl_token), sink_(tl_sink), prev_(tl_job) {
    total_ = total < 1 ? 1 : total;
    tl_job = this;
    if (sink_) {
        sink_->op.store(op);
        sink_->total.store(total_);
        sink_->done.store(0);
    }
    report();
    if (cancel_requested()) {
        // A constructor that throws runs no destructor: stop being the
        // thread's current job here, or faiss's interrupt polls would
        // read this (freed) job later.
        tl_job = prev_;
        throw_cancelled();
    }
}

JobScope::~JobScope() {
    tl_job = prev_;
}

void JobScope::set_total(int64_t total) {
    total_ = std::max<int64_t>(total < 1 ? 1 : total, done_);
    if (sink_) sink_->total.store(total_);
}

void JobScope::set_interruptible(bool on) {
    if (on) install_interrupt();
    interruptible_ = on;
}

bool JobScope::cancel_requested() {
    return cb_cancel_ ||
           (token_ && token_->raised.load(std::memory_order_acquire)) ||
           (sink_ && sink_->cancel.load(std::memory_order_acquire));
}

void JobScope::report() {
    if (sink_) sink_->done.store(done_);
    if (!cb_) return;
    FaissxProgress p;
    p.op = op_;
    p.done = done_;
    p.total = total_;
    p.elapsed_s = now_s() - t0_;
    p.eta_s = done_ > 0 ? p.elapsed_s * (double)(total_ - done_) / done_
                        : -1.0;
    if (cb_(&p, user_) != 0) cb_cancel_ = true;
}

void JobScope::step(int64_t done) {
    done_ = std::min(std::max(done, done_), total_);
    report();
    if (interruptible_ && cancel_requested()) throw_cancelled();
}

const char* JobScope::mark_cancelled() {
    cancelled_ = true;
    if (sink_) sink_->cancelled.store(true);
    return cb_cancel_ ? "cancelled by the progress callback; the index is "
                        "unchanged"
                      : "cancelled; the index is unchanged";
}

void JobScope::throw_cancelled() {
    throw Error(FAISSX_E_CANCELED, mark_cancelled());
}

int job_exception(const char* func, JobScope& job) {
    try {
        throw;
    } catch (const faiss::FaissException&) {
        // faiss's InterruptCallback::check() threw for this job
        if (job.interruptible() && job.cancel_requested())
            return fail(FAISSX_E_CANCELED, func, "%s", job.mark_cancelled());
        return handle_exception(func);
    } catch (...) {
        return handle_exception(func);
    }
}

void CountingFlat::search(idx_t n, const float* x, idx_t k, float* distances,
                          idx_t* labels,
                          const faiss::SearchParameters* params) const {
    if (JobScope* j = JobScope::current()) j->tick();
    faiss::IndexFlat::search(n, x, k, distances, labels, params);
}

/* ---- train on a clone, copy the trained state back ---- */
namespace {

template <class T>
bool assign_as(faiss::Index* dst, const faiss::Index* src) {
    static_assert(std::is_copy_assignable<T>::value, "copyable");
    if (typeid(*dst) != typeid(T)) return false;
    *static_cast<T*>(dst) = *static_cast<const T*>(src);
    return true;
}

/* Types whose whole state is values (no owned pointers): a copy assignment
 * transplants it. */
bool assign_values(faiss::Index* dst, const faiss::Index* src) {
    return assign_as<faiss::IndexFlat>(dst, src) ||
           assign_as<faiss::IndexFlatL2>(dst, src) ||
           assign_as<faiss::IndexFlatIP>(dst, src) ||
           assign_as<faiss::IndexScalarQuantizer>(dst, src) ||
           assign_as<faiss::IndexPQ>(dst, src) ||
           assign_as<faiss::IndexLSH>(dst, src);
}

bool value_type(const faiss::Index* ix) {
    const auto& t = typeid(*ix);
    return is_plain_flat(ix) || t == typeid(faiss::IndexScalarQuantizer) ||
           t == typeid(faiss::IndexPQ) || t == typeid(faiss::IndexLSH);
}

const faiss::IndexIVF* ivf_flatq(const faiss::Index* ix) {
    const auto& t = typeid(*ix);
    if (t != typeid(faiss::IndexIVFFlat) &&
        t != typeid(faiss::IndexIVFScalarQuantizer) &&
        t != typeid(faiss::IndexIVFPQ))
        return nullptr;
    auto ivf = static_cast<const faiss::IndexIVF*>(ix);
    return ivf->quantizer && is_plain_flat(ivf->quantizer) ? ivf : nullptr;
}

/* Whether train can run on a clone and be transplanted back. */
bool train_undoable(const faiss::Index* ix) {
    if (as_remote(ix) || store::is_stored(ix)) return false;
    return value_type(ix) || ivf_flatq(ix) != nullptr;
}

/* Copies what train changes from src (a trained clone of dst) into dst. */
void transplant_trained(faiss::Index* dst, const faiss::Index* src) {
    if (assign_values(dst, src)) return;
    auto d = static_cast<faiss::IndexIVF*>(dst);
    auto s = static_cast<const faiss::IndexIVF*>(src);
    if (!assign_values(d->quantizer, s->quantizer))
        throw Error(FAISSX_E_UNKNOWN, "internal: quantizer not transplantable");
    if (auto dq = dynamic_cast<faiss::IndexIVFScalarQuantizer*>(d)) {
        auto sq = static_cast<const faiss::IndexIVFScalarQuantizer*>(s);
        dq->sq = sq->sq;
    } else if (auto dp = dynamic_cast<faiss::IndexIVFPQ*>(d)) {
        auto sp = static_cast<const faiss::IndexIVFPQ*>(s);
        dp->pq = sp->pq;
        dp->precomputed_table = sp->precomputed_table;
        dp->use_precomputed_table = sp->use_precomputed_table;
    }
    d->is_trained = s->is_trained;
}

/* ---- add in slices, truncate on failure ---- */
struct AddUndo {
    faiss::Index* target = nullptr; /* the index holding the codes */
    faiss::IndexIDMap* idmap = nullptr;
    idx ntotal = 0, idmap_ntotal = 0;
    size_t idmap_size = 0;
    std::vector<size_t> list_sizes;
    size_t dm_size = 0;
};

bool add_undo_prepare(faiss::Index* ix, AddUndo* u) {
    if (as_remote(ix) || store::is_stored(ix)) return false;
    faiss::Index* t = ix;
    if (typeid(*ix) == typeid(faiss::IndexIDMap)) {
        u->idmap = static_cast<faiss::IndexIDMap*>(ix);
        u->idmap_ntotal = ix->ntotal;
        u->idmap_size = u->idmap->id_map.size();
        t = u->idmap->index;
        if (!t || as_remote(t)) return false;
    }
    if (value_type(t)) {
        u->target = t;
        u->ntotal = t->ntotal;
        return true;
    }
    auto civf = ivf_flatq(t);
    if (!civf) return false;
    auto ivf = const_cast<faiss::IndexIVF*>(civf);
    if (!dynamic_cast<faiss::ArrayInvertedLists*>(ivf->invlists)) return false;
    if (ivf->direct_map.type == faiss::DirectMap::Hashtable) return false;
    u->target = t;
    u->ntotal = t->ntotal;
    u->list_sizes.resize(ivf->nlist);
    for (size_t l = 0; l < ivf->nlist; l++)
        u->list_sizes[l] = ivf->invlists->list_size(l);
    u->dm_size = ivf->direct_map.array.size();
    return true;
}

void add_undo(const AddUndo& u) {
    faiss::Index* t = u.target;
    if (auto fc = dynamic_cast<faiss::IndexFlatCodes*>(t)) {
        fc->codes.resize((size_t)u.ntotal * fc->code_size);
    } else {
        auto ivf = static_cast<faiss::IndexIVF*>(t);
        for (size_t l = 0; l < ivf->nlist; l++)
            if (ivf->invlists->list_size(l) > u.list_sizes[l])
                ivf->invlists->resize(l, u.list_sizes[l]);
        if (ivf->direct_map.type == faiss::DirectMap::Array)
            ivf->direct_map.array.resize(u.dm_size);
    }
    t->ntotal = u.ntotal;
    if (u.idmap) {
        u.idmap->id_map.resize(u.idmap_size);
        u.idmap->ntotal = u.idmap_ntotal;
    }
}

/* Vectors per slice: about 1/32 of the call, between 1024 and 65536. */
idx slice_of(idx n) {
    return std::min<idx>(65536, std::max<idx>(1024, n / 32));
}

} // namespace

int train_with_job(const char* func, faiss::Index* ix, idx n,
                   const float* x) {
    if (as_remote(ix)) { // the server runs the job (net/remote.cpp)
        try {
            ix->train(n, x);
            return 0;
        } catch (...) {
            return handle_exception(func);
        }
    }
    bool undoable = train_undoable(ix);
    // k-means on a flat quantizer is counted per iteration (CountingFlat as
    // the clustering index: the same computation as on the quantizer)
    auto civf = undoable ? ivf_flatq(ix) : nullptr;
    bool count = civf && civf->quantizer_trains_alone == 0 &&
                 !civf->clustering_index &&
                 !(civf->quantizer->is_trained &&
                   civf->quantizer->ntotal == (idx)civf->nlist);
    std::unique_ptr<JobScope> job;
    try {
        job.reset(new JobScope(FAISSX_PROGRESS_TRAIN,
                               count ? (int64_t)civf->cp.niter * civf->cp.nredo
                                     : 1));
    } catch (...) {
        return handle_exception(func);
    }
    try {
        if (!undoable) {
            ix->train(n, x);
            job->step(job->total());
            return 0;
        }
        std::unique_ptr<faiss::Index> c(faiss::clone_index(ix));
        std::unique_ptr<CountingFlat> counter;
        auto ivf = count ? static_cast<faiss::IndexIVF*>(c.get()) : nullptr;
        if (ivf) {
            counter.reset(new CountingFlat(ivf->d, ivf->quantizer->metric_type));
            ivf->clustering_index = counter.get();
        }
        job->set_interruptible(true);
        try {
            c->train(n, x);
        } catch (...) {
            if (ivf) ivf->clustering_index = nullptr;
            throw;
        }
        if (ivf) ivf->clustering_index = nullptr;
        job->step(job->total()); // the last chance to cancel
        job->set_interruptible(false);
        transplant_trained(ix, c.get());
        return 0;
    } catch (...) {
        return job_exception(func, *job);
    }
}

int add_with_job(const char* func, faiss::Index* ix, idx n, const float* x,
                 const idx* xids) {
    if (as_remote(ix)) { // the server runs the job (net/remote.cpp)
        try {
            if (xids)
                ix->add_with_ids(n, x, xids);
            else
                ix->add(n, x);
            return 0;
        } catch (...) {
            return handle_exception(func);
        }
    }
    AddUndo undo;
    bool undoable = add_undo_prepare(ix, &undo);
    std::unique_ptr<JobScope> job;
    try {
        job.reset(new JobScope(FAISSX_PROGRESS_ADD, n));
    } catch (...) {
        return handle_exception(func);
    }
    job->set_interruptible(undoable);
    try {
        // Only undoable adds are sliced: slices give the same index for
        // these types, but not for all (an HNSW graph inserts a batch
        // level by level), and a durable store would log each slice.
        idx slice = undoable ? slice_of(n) : std::max<idx>(n, 1);
        for (idx i0 = 0; i0 < n; i0 += slice) {
            idx m = std::min(slice, n - i0);
            const float* xs = x + (size_t)i0 * ix->d;
            if (xids)
                ix->add_with_ids(m, xs, xids + i0);
            else
                ix->add(m, xs);
            job->step(i0 + m);
        }
        if (n == 0) job->step(job->total());
        return 0;
    } catch (...) {
        if (undoable) {
            try {
                add_undo(undo);
            } catch (...) {
            }
        }
        return job_exception(func, *job);
    }
}

} // namespace fx

extern "C" {

void faissx_set_progress_callback(FaissxProgressCallback cb, void* user) {
    fx::tl_cb = cb;
    fx::tl_user = cb ? user : nullptr;
}

int faissx_cancel_token_new(FaissxCancelToken** out) {
    FX_NOT_NULL(out);
    FX_TRY
    *out = new FaissxCancelToken();
    return 0;
    FX_CATCH
}

void faissx_cancel_token_cancel(FaissxCancelToken* token) {
    if (token) token->raised.store(1, std::memory_order_release);
}

int faissx_cancel_token_is_cancelled(const FaissxCancelToken* token) {
    return token ? token->raised.load(std::memory_order_acquire) : 0;
}

void faissx_cancel_token_reset(FaissxCancelToken* token) {
    if (token) token->raised.store(0, std::memory_order_release);
}

void faissx_cancel_token_free(FaissxCancelToken* token) {
    delete token;
}

FaissxCancelToken* faissx_set_cancel_token(FaissxCancelToken* token) {
    FaissxCancelToken* old = fx::tl_token;
    fx::tl_token = token;
    return old;
}

} // extern "C"
