/* index.cpp -- Index_c.h: the operations every index supports, plus search
 * with per-call parameters (faissx.h). */
#include "core/bridge.h"
#include "core/core.h"
#include "core/progress.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexLSH.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexNNDescent.h>
#include <faiss/IndexNSG.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexReplicas.h>
#include <faiss/IndexShards.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/HNSW.h>
#include <faiss/impl/IDSelector.h>

#include <algorithm>
#include <cfloat>
#include <limits>
#include <memory>
#include <typeinfo>
#include <vector>

namespace fx {

bool trained_now(const faiss::Index* ix) {
    // A remote handle is not asked first, whatever its cached state says
    // (another client, or a composite sharing the object, may have
    // trained it): the server runs this same check and refuses an
    // untrained index with the text a local call gives (handle_exception),
    // and a call that succeeds marks the handle trained.
    if (as_remote(ix)) return true;
    return ix->is_trained;
}

bool trained_asking(const faiss::Index* ix) {
    if (auto r = as_remote(ix)) { // (its fields change under sync_mu)
        try {
            return r->trained_now();
        } catch (...) {
            return true; // let the real call reach the server and report
        }
    }
    return ix->is_trained;
}

/* trained_now for sa_encode/sa_decode: the server asks the index for its
 * code size before it runs either, so an index without a standalone codec
 * (code size -1 in the info, or unknown) would be refused for that before
 * the untrained check a local call makes first: such a handle asks. */
static bool trained_for_sa(const faiss::Index* ix) {
    auto r = as_remote(ix);
    return r && r->code_size_seen < 0 ? trained_asking(ix) : trained_now(ix);
}

bool positional(const faiss::Index* ix) {
    if (dynamic_cast<const faiss::IndexFlatCodes*>(ix) ||
        dynamic_cast<const faiss::IndexHNSW*>(ix) ||
        dynamic_cast<const faiss::IndexNSG*>(ix) ||
        dynamic_cast<const faiss::IndexNNDescent*>(ix) ||
        dynamic_cast<const faiss::IndexRefine*>(ix))
        return true;
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(ix))
        return pt->index && positional(pt->index);
    return false;
}

int check_key(const char* func, const faiss::Index* ix, idx key) {
    if (positional(ix) && (key < 0 || key >= ix->ntotal))
        return fail(FAISSX_E_INVALID, func,
                    "key %lld out of range [0, %lld)", (long long)key,
                    (long long)ix->ntotal);
    return 0;
}

int check_knn(const char* func, idx n, idx k, const void* distances,
              const void* labels) {
    if (k <= 0)
        return fail(FAISSX_E_INVALID, func, "k must be > 0 (got %lld)",
                    (long long)k);
    if (n > 0 && k > std::numeric_limits<idx>::max() / n)
        return fail(FAISSX_E_INVALID, func,
                    "n * k overflows (n=%lld, k=%lld)", (long long)n,
                    (long long)k);
    if (n > 0 && distances == nullptr)
        return fail(FAISSX_E_INVALID, func, "argument 'distances' is NULL");
    if (n > 0 && labels == nullptr)
        return fail(FAISSX_E_INVALID, func, "argument 'labels' is NULL");
    return 0;
}

/* Selects the sub-index positions whose external id `sel` selects. */
struct IDMapSelector : faiss::IDSelector {
    const std::vector<idx>& id_map;
    const faiss::IDSelector* sel;
    IDMapSelector(const std::vector<idx>& id_map, const faiss::IDSelector* sel)
            : id_map(id_map), sel(sel) {}
    bool is_member(idx i) const override {
        return i >= 0 && (size_t)i < id_map.size() && sel->is_member(id_map[i]);
    }
};

/* A copy of params of a kind the C API makes (plain, IVF, HNSW), for
 * IndexIDMap's translated selector. */
static std::unique_ptr<faiss::SearchParameters> copy_params(
        const faiss::SearchParameters* params) {
    const std::type_info& t = typeid(*params);
    if (t == typeid(faiss::SearchParametersIVF))
        return std::unique_ptr<faiss::SearchParameters>(
                new faiss::SearchParametersIVF(
                        *static_cast<const faiss::SearchParametersIVF*>(
                                params)));
    if (t == typeid(faiss::SearchParametersHNSW))
        return std::unique_ptr<faiss::SearchParameters>(
                new faiss::SearchParametersHNSW(
                        *static_cast<const faiss::SearchParametersHNSW*>(
                                params)));
    if (t == typeid(faiss::SearchParameters))
        return std::unique_ptr<faiss::SearchParameters>(
                new faiss::SearchParameters(*params));
    FAISS_THROW_MSG("this kind of search parameters with a selector is not "
                    "supported on IndexIDMap");
}

/* What knn_search asks of an index's class. A failed dynamic_cast costs
 * tens of ns (it walks the class hierarchy), a few percent of a cheap
 * search, and the answers depend on the dynamic type only: they are worked
 * out once per type and kept per thread, keyed by the type_info (one entry:
 * a thread searches few index classes at a time; a miss just recomputes). */
enum { SEARCH_SHARDS = 1, SEARCH_IDMAP = 2, SEARCH_REPLICAS = 4 };

/* True when every child of an IndexShards or IndexReplicas is a local
 * empty index (a remote one may have vectors its cached ntotal does not
 * show). */
template <class T>
static bool children_empty(const faiss::Index* ix) {
    auto c = static_cast<const T*>(ix);
    for (int i = 0; i < c->count(); i++)
        if (fx::as_remote(c->at(i)) || c->at(i)->ntotal > 0) return false;
    return true;
}

static int search_kind(const faiss::Index* ix) {
    thread_local const std::type_info* last_type = nullptr;
    thread_local int last_kind = 0;
    const std::type_info& t = typeid(*ix);
    if (&t == last_type) return last_kind;
    int kind = (dynamic_cast<const faiss::IndexShards*>(ix) ? SEARCH_SHARDS
                                                            : 0) |
               (dynamic_cast<const faiss::IndexIDMap*>(ix) ? SEARCH_IDMAP : 0) |
               (dynamic_cast<const faiss::IndexReplicas*>(ix) ? SEARCH_REPLICAS
                                                              : 0);
    last_type = &t;
    last_kind = kind;
    return kind;
}

/* k-NN search that never leaves the outputs unwritten. faiss 1.7.3's
 * IndexFlat returns early without touching distances/labels when it is empty
 * and n >= distance_compute_blas_threshold (20), so an empty index (or a
 * wrapper over one: IDMap, PreTransform...) hands back garbage, and an
 * IndexShards with an empty shard merges that shard's zero-filled buffer as
 * real hits (label 0 at distance 0). An empty index yields the "no result"
 * padding faiss uses elsewhere; empty local shards are left out of the
 * search (they hold nothing, so ids and results are those faiss would
 * give). A remote shard is searched as it is: the server pads an empty
 * one itself, and its reply carries the ntotal faiss translates the next
 * shards' ids by (it reads the shards' ntotal after searching them), so
 * no shard is asked for its ntotal first. */
static void knn_search(const faiss::Index* ix, idx n, const float* x, idx k,
                float* distances, idx* labels,
                const faiss::SearchParameters* params) {
    int kind = search_kind(ix);
    // (A remote index answers for itself: its cached ntotal may be stale.
    // So may a composite's of its children -- faiss updates it only when
    // a child is added through it --: shards and replicas are empty when
    // each child is.)
    if (n > 0 && !fx::as_remote(ix) &&
        (kind & SEARCH_SHARDS     ? children_empty<faiss::IndexShards>(ix)
         : kind & SEARCH_REPLICAS ? children_empty<faiss::IndexReplicas>(ix)
                                  : ix->ntotal == 0)) {
        float none = ix->metric_type == faiss::METRIC_INNER_PRODUCT
                ? -FLT_MAX
                : FLT_MAX;
        for (idx i = 0; i < n * k; i++) {
            distances[i] = none;
            labels[i] = -1;
        }
        return;
    }
    if (kind & SEARCH_SHARDS) {
        auto sh = dynamic_cast<const faiss::IndexShards*>(ix);
        auto local_empty = [](const faiss::Index* s) {
            return !fx::as_remote(s) && s->ntotal == 0;
        };
        // A server that predates FX_FLAG_STATE sends no ntotal with its
        // search results: its shards are asked first, as before (and when
        // the first search is how the client learns it, once more after).
        std::vector<bool> synced(sh->count());
        auto sync_old = [&] {
            bool any = false;
            for (int i = 0; i < sh->count(); i++) {
                auto r = fx::as_remote(sh->at(i));
                if (r && !synced[i] && r->conn->no_state_flag) {
                    r->sync(); // inside FX_TRY
                    synced[i] = any = true;
                }
            }
            return any;
        };
        bool some_empty = false;
        for (int i = 0; i < sh->count(); i++)
            some_empty |= local_empty(sh->at(i));
        std::unique_ptr<faiss::IndexShards> full;
        if (some_empty) {
            full.reset(new faiss::IndexShards(sh->d, false, sh->successive_ids));
            for (int i = 0; i < sh->count(); i++) {
                if (local_empty(sh->at(i))) continue;
                // faiss refuses shards whose trained states differ: a
                // remote one that says "not trained" may be stale (rare:
                // mixed local and remote shards, one of them empty).
                auto r = fx::as_remote(sh->at(i));
                if (r && !r->is_trained) r->sync(); // inside FX_TRY
                full->add_shard(const_cast<faiss::Index*>(sh->at(i)));
            }
        }
        const faiss::Index* target = full ? full.get() : ix;
        sync_old();
        target->search(n, x, k, distances, labels, params);
        if (sync_old()) target->search(n, x, k, distances, labels, params);
        return;
    }
    if (params && (kind & SEARCH_IDMAP)) {
        if (auto m = dynamic_cast<const faiss::IndexIDMap*>(ix)) {
            // faiss 1.7.3's IndexIDMap refuses search parameters. Search the
            // sub-index with them, its selector seeing external ids, and
            // translate the labels as IndexIDMap::search does.
            IDMapSelector tr(m->id_map, params->sel);
            std::unique_ptr<faiss::SearchParameters> sub;
            if (params->sel) {
                sub = copy_params(params);
                sub->sel = &tr;
            }
            knn_search(m->index, n, x, k, distances, labels,
                       sub ? sub.get() : params);
            for (idx i = 0; i < n * k; i++)
                if (labels[i] >= 0) labels[i] = m->id_map[labels[i]];
            return;
        }
    }
    if (!params && flat_search_split(ix, n, x, k, distances, labels)) return;
    ix->search(n, x, k, distances, labels, params);
}

/* Range search with parameters. faiss 1.7.3's IndexIDMap refuses them:
 * as knn_search, the sub-index is searched with a selector over external
 * ids and the labels translated. */
static void range_search_p(const faiss::Index* ix, idx n, const float* x,
                           float radius, faiss::RangeSearchResult* res,
                           const faiss::SearchParameters* params) {
    auto m = params && !fx::as_remote(ix)
            ? dynamic_cast<const faiss::IndexIDMap*>(ix)
            : nullptr;
    if (!m) {
        ix->range_search(n, x, radius, res, params);
        return;
    }
    IDMapSelector tr(m->id_map, params->sel);
    std::unique_ptr<faiss::SearchParameters> sub;
    if (params->sel) {
        sub = copy_params(params);
        sub->sel = &tr;
    }
    range_search_p(m->index, n, x, radius, res, sub ? sub.get() : params);
    for (size_t i = 0; i < res->lims[n]; i++)
        if (res->labels[i] >= 0) res->labels[i] = m->id_map[res->labels[i]];
}

} // namespace fx

/* Remote: ntotal and is_trained are fetched from the server, since other
 * clients may have written; on failure the last known value is returned
 * and the error recorded. Values come back through nt/trained, not the
 * fields, which another thread's getter may be updating. Returns false
 * for a local index. */
static bool sync_remote(const FaissIndex* obj, const char* func, idx_t* nt,
                        bool* trained) {
    auto r = fx::as_remote(fx::index(obj));
    if (!r) return false;
    try {
        r->sync(nt, trained);
    } catch (...) {
        fx::handle_exception(func);
        std::lock_guard<std::mutex> g(r->sync_mu);
        *nt = r->ntotal;
        *trained = r->is_trained;
    }
    return true;
}

/* Values faiss would take without complaint, or refuse with a message
 * about its internals: efSearch <= 0 (faiss searches with max(efSearch,
 * k) then), nprobe 0 (range_search fails on "k > 0"). */
static int check_params(const char* func, const faiss::SearchParameters* p) {
    if (auto v = dynamic_cast<const faiss::SearchParametersIVF*>(p))
        if (v->nprobe == 0)
            return fx::fail(FAISSX_E_INVALID, func, "nprobe must be > 0");
    if (auto h = dynamic_cast<const faiss::SearchParametersHNSW*>(p))
        if (h->efSearch <= 0)
            return fx::fail(FAISSX_E_INVALID, func,
                            "efSearch must be > 0 (got %d)", h->efSearch);
    return 0;
}

extern "C" {

void faiss_Index_free(FaissIndex* obj) {
    delete fx::index(obj);
}

int faiss_Index_d(const FaissIndex* obj) {
    FX_REQUIRE_RET(obj, 0, "index is NULL");
    return fx::index(obj)->d;
}

int faiss_Index_is_trained(const FaissIndex* obj) {
    FX_REQUIRE_RET(obj, 0, "index is NULL");
    idx_t nt;
    bool trained;
    if (sync_remote(obj, __func__, &nt, &trained)) return trained;
    return fx::index(obj)->is_trained;
}

idx_t faiss_Index_ntotal(const FaissIndex* obj) {
    FX_REQUIRE_RET(obj, 0, "index is NULL");
    idx_t nt;
    bool trained;
    if (sync_remote(obj, __func__, &nt, &trained)) return nt;
    return fx::index(obj)->ntotal;
}

FaissMetricType faiss_Index_metric_type(const FaissIndex* obj) {
    FX_REQUIRE_RET(obj, METRIC_L2, "index is NULL");
    return static_cast<FaissMetricType>(fx::index(obj)->metric_type);
}

int faiss_Index_verbose(const FaissIndex* obj) {
    FX_REQUIRE_RET(obj, 0, "index is NULL");
    return fx::index(obj)->verbose;
}

void faiss_Index_set_verbose(FaissIndex* obj, int verbose) {
    FX_REQUIRE_RET(obj, , "index is NULL");
    if (auto r = fx::as_remote(fx::index(obj))) {
        FX_TRY
        r->set_param("verbose", verbose != 0);
        return;
        FX_CATCH_RET()
    }
    fx::index(obj)->verbose = verbose != 0;
}

int faiss_Index_train(FaissIndex* index, idx_t n, const float* x) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    if (int rc = fx::check_vectors(__func__, n, x, ix->d, "x")) return rc;
    if (fx::job_wanted()) return fx::train_with_job(__func__, ix, n, x);
    FX_TRY
    ix->train(n, x);
    return 0;
    FX_CATCH
}

/* faiss_Index_add(_with_ids) on a remote index whose arguments pass every
 * check but the values': the values are checked while they are copied into
 * the request (RemoteIndex::add_checked), one pass over them instead of
 * two. Returns 1 when done, a FaissxError (< 0), or 0 when the call is not one
 * of those (the caller then takes its usual path, which also gives any
 * error about the arguments its usual precedence). The error's function
 * name is that of the public call. */
static int remote_add(const char* func, faiss::Index* ix, idx_t n,
                      const float* x, const idx_t* xids, bool with_ids) {
    auto r = fx::as_remote(ix);
    if (!r || n <= 0 || !x || (with_ids && !xids) || ix->d <= 0 ||
        fx::job_wanted() || !fx::trained_now(ix) || fx::read_only_lists(ix))
        return 0;
    try {
        fx_threads_enter();
        r->add_checked(n, x, xids);
        return 1;
    } catch (...) {
        return fx::handle_exception(func);
    }
}

int faiss_Index_add(FaissIndex* index, idx_t n, const float* x) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    // Plain flat indexes: faiss's add is a copy into `codes`, so check the
    // values while copying them (one pass over memory instead of two; the
    // result is the one faiss's IndexFlatCodes::add produces).
    if (n > 0 && x && ix->d > 0 && !fx::job_wanted() &&
        fx::is_plain_flat(ix)) {
        auto f = static_cast<faiss::IndexFlat*>(ix);
        FX_TRY
        size_t bad;
        if (!fx::flat_append_finite(f, n, x, &bad))
            return fx::fail(FAISSX_E_INVALID, __func__,
                            "x contains a non-finite value (NaN or inf) at "
                            "vector %zu, component %zu",
                            bad / (size_t)f->d, bad % (size_t)f->d);
        return 0;
        FX_CATCH
    }
    if (int rc = remote_add(__func__, ix, n, x, nullptr, false))
        return rc > 0 ? 0 : rc;
    if (int rc = fx::check_vectors(__func__, n, x, ix->d, "x")) return rc;
    FX_REQUIRE(fx::trained_now(ix),
               "index is not trained: call faiss_Index_train first");
    FX_REQUIRE_WRITABLE(ix);
    if (fx::job_wanted()) return fx::add_with_job(__func__, ix, n, x, nullptr);
    FX_TRY
    fx::reserve_codes_for_add(ix, n);
    ix->add(n, x);
    return 0;
    FX_CATCH
}

int faiss_Index_add_with_ids(FaissIndex* index, idx_t n, const float* x,
                             const idx_t* xids) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    if (int rc = remote_add(__func__, ix, n, x, xids, true))
        return rc > 0 ? 0 : rc;
    if (int rc = fx::check_vectors(__func__, n, x, ix->d, "x")) return rc;
    FX_REQUIRE(n == 0 || xids != nullptr, "argument 'xids' is NULL");
    FX_REQUIRE(fx::trained_now(ix),
               "index is not trained: call faiss_Index_train first");
    FX_REQUIRE_WRITABLE(ix);
    if (fx::job_wanted()) return fx::add_with_job(__func__, ix, n, x, xids);
    FX_TRY
    fx::reserve_codes_for_add(ix, n);
    ix->add_with_ids(n, x, xids);
    return 0;
    FX_CATCH
}

/* faiss_Index_search and faiss_Index_search_with_params (params NULL:
 * none): the same checks and call, errors named for func. */
static int search_checked(const char* func, const FaissIndex* index,
                          idx_t n, const float* x, idx_t k,
                          const faiss::SearchParameters* p, float* distances,
                          idx_t* labels) {
    if (!index)
        return fx::fail(FAISSX_E_INVALID, func, "argument '%s' is NULL",
                        "index");
    auto ix = fx::index(index);
    if (int rc = fx::check_vectors(func, n, x, ix->d, "x")) return rc;
    if (int rc = fx::check_knn(func, n, k, distances, labels)) return rc;
    if (int rc = check_params(func, p)) return rc;
    if (!fx::trained_now(ix))
        return fx::fail(FAISSX_E_INVALID, func, "index is not trained");
    try {
        fx_threads_enter();
        fx::knn_search(ix, n, x, k, distances, labels, p);
        return 0;
    } catch (...) {
        return fx::handle_exception(func);
    }
}

int faiss_Index_search(const FaissIndex* index, idx_t n, const float* x,
                       idx_t k, float* distances, idx_t* labels) {
    return search_checked(__func__, index, n, x, k, nullptr, distances,
                          labels);
}

int faiss_Index_search_with_params(const FaissIndex* index, idx_t n,
                                   const float* x, idx_t k,
                                   const FaissSearchParameters* params,
                                   float* distances, idx_t* labels) {
    return search_checked(
            __func__, index, n, x, k,
            reinterpret_cast<const faiss::SearchParameters*>(params),
            distances, labels);
}

/* The arguments of a range search after its vectors: a radius that is a
 * number and a result allocated for the n queries. */
static int check_range(const char* func, idx_t n, float radius,
                       const faiss::RangeSearchResult* res) {
    if (std::isnan(radius))
        return fx::fail(FAISSX_E_INVALID, func, "radius is NaN");
    if ((idx_t)res->nq != n)
        return fx::fail(FAISSX_E_INVALID, func,
                        "result was allocated for %zu queries, but n = %lld",
                        res->nq, (long long)n);
    return 0;
}

/* faiss_Index_range_search and faissx_Index_range_search_with_params
 * (params NULL: none), as search_checked. */
static int range_search_checked(const char* func, const FaissIndex* index,
                                idx_t n, const float* x, float radius,
                                const faiss::SearchParameters* p,
                                FaissRangeSearchResult* result) {
    if (!index || !result)
        return fx::fail(FAISSX_E_INVALID, func, "argument '%s' is NULL",
                        index ? "result" : "index");
    auto ix = fx::index(index);
    if (int rc = fx::check_vectors(func, n, x, ix->d, "x")) return rc;
    auto res = reinterpret_cast<faiss::RangeSearchResult*>(result);
    if (int rc = check_range(func, n, radius, res)) return rc;
    if (int rc = check_params(func, p)) return rc;
    if (!fx::trained_now(ix))
        return fx::fail(FAISSX_E_INVALID, func, "index is not trained");
    try {
        fx_threads_enter();
        fx::range_search_p(ix, n, x, radius, res, p);
        return 0;
    } catch (...) {
        return fx::handle_exception(func);
    }
}

int faissx_Index_range_search_with_params(const FaissIndex* index, idx_t n,
                                          const float* x, float radius,
                                          const FaissSearchParameters* params,
                                          FaissRangeSearchResult* result) {
    return range_search_checked(
            __func__, index, n, x, radius,
            reinterpret_cast<const faiss::SearchParameters*>(params), result);
}

int faiss_Index_range_search(const FaissIndex* index, idx_t n,
                             const float* x, float radius,
                             FaissRangeSearchResult* result) {
    return range_search_checked(__func__, index, n, x, radius, nullptr,
                                result);
}

int faiss_Index_assign(FaissIndex* index, idx_t n, const float* x,
                       idx_t* labels, idx_t k) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    if (int rc = fx::check_vectors(__func__, n, x, ix->d, "x")) return rc;
    FX_REQUIRE(k > 0, "k must be > 0 (got %lld)", (long long)k);
    FX_REQUIRE(n == 0 || labels != nullptr, "argument 'labels' is NULL");
    FX_REQUIRE(n == 0 || k <= std::numeric_limits<idx_t>::max() / n,
               "n * k overflows");
    FX_REQUIRE(fx::trained_now(ix), "index is not trained");
    FX_TRY
    if (!fx::as_remote(ix) && ix->ntotal == 0) { // see knn_search
        std::fill(labels, labels + n * k, idx_t(-1));
        return 0;
    }
    ix->assign(n, x, labels, k);
    return 0;
    FX_CATCH
}

int faiss_Index_reset(FaissIndex* index) {
    FX_NOT_NULL(index);
    FX_TRY
    fx::index(index)->reset();
    return 0;
    FX_CATCH
}

int faiss_Index_remove_ids(FaissIndex* index, const FaissIDSelector* sel,
                           size_t* n_removed) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(sel);
    FX_REQUIRE_WRITABLE(fx::index(index));
    FX_TRY
    size_t r = fx::index(index)->remove_ids(
            *reinterpret_cast<const faiss::IDSelector*>(sel));
    if (n_removed) *n_removed = r;
    return 0;
    FX_CATCH
}

int faiss_Index_reconstruct(const FaissIndex* index, idx_t key,
                            float* recons) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(recons);
    auto ix = fx::index(index);
    if (int rc = fx::check_key(__func__, ix, key)) return rc;
    FX_TRY
    ix->reconstruct(key, recons);
    return 0;
    FX_CATCH
}

/* faiss's default Index::reconstruct_n calls reconstruct() inside an OpenMP
 * loop, where an exception (IndexIDMap has no reconstruct, IndexIDMap2 an
 * unknown id, ...) terminates the process. Only these override it without
 * that loop; the others are reconstructed one by one (same values). */
static bool own_reconstruct_n(const faiss::Index* ix) {
    if (dynamic_cast<const faiss::IndexFlatCodes*>(ix) ||
        dynamic_cast<const faiss::IndexIVF*>(ix) ||
        fx::as_remote(ix)) // the server applies this same rule
        return true;
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(ix))
        return pt->index && own_reconstruct_n(pt->index);
    return false;
}

int faiss_Index_reconstruct_n(const FaissIndex* index, idx_t i0, idx_t ni,
                              float* recons) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    FX_REQUIRE(ni >= 0, "ni must be >= 0 (got %lld)", (long long)ni);
    FX_REQUIRE(ni == 0 || recons != nullptr, "argument 'recons' is NULL");
    if (fx::positional(ix))
        FX_REQUIRE(i0 >= 0 && i0 <= ix->ntotal && ni <= ix->ntotal - i0,
                   "range of %lld vectors from %lld is outside [0, %lld)",
                   (long long)ni, (long long)i0, (long long)ix->ntotal);
    FX_TRY
    if (own_reconstruct_n(ix))
        ix->reconstruct_n(i0, ni, recons);
    else
        for (idx_t i = 0; i < ni; i++)
            ix->reconstruct(i0 + i, recons + i * ix->d);
    return 0;
    FX_CATCH
}

int faiss_Index_compute_residual(const FaissIndex* index, const float* x,
                                 float* residual, idx_t key) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(residual);
    auto ix = fx::index(index);
    if (int rc = fx::check_vectors(__func__, 1, x, ix->d, "x")) return rc;
    if (int rc = fx::check_key(__func__, ix, key)) return rc;
    FX_TRY
    ix->compute_residual(x, residual, key);
    return 0;
    FX_CATCH
}

int faiss_Index_compute_residual_n(const FaissIndex* index, idx_t n,
                                   const float* x, float* residuals,
                                   const idx_t* keys) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    if (int rc = fx::check_vectors(__func__, n, x, ix->d, "x")) return rc;
    FX_REQUIRE(n == 0 || residuals != nullptr, "argument 'residuals' is NULL");
    FX_REQUIRE(n == 0 || keys != nullptr, "argument 'keys' is NULL");
    for (idx_t i = 0; i < n; i++)
        if (int rc = fx::check_key(__func__, ix, keys[i])) return rc;
    FX_TRY
    ix->compute_residual_n(n, x, residuals, keys);
    return 0;
    FX_CATCH
}

int faiss_Index_sa_code_size(const FaissIndex* index, size_t* size) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(size);
    FX_TRY
    *size = fx::index(index)->sa_code_size();
    return 0;
    FX_CATCH
}

int faiss_Index_sa_encode(const FaissIndex* index, idx_t n, const float* x,
                          uint8_t* bytes) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    if (int rc = fx::check_vectors(__func__, n, x, ix->d, "x")) return rc;
    FX_REQUIRE(n == 0 || bytes != nullptr, "argument 'bytes' is NULL");
    FX_REQUIRE(fx::trained_for_sa(ix), "index is not trained");
    FX_TRY
    ix->sa_encode(n, x, bytes);
    return 0;
    FX_CATCH
}

int faiss_Index_sa_decode(const FaissIndex* index, idx_t n,
                          const uint8_t* bytes, float* x) {
    FX_NOT_NULL(index);
    auto ix = fx::index(index);
    FX_REQUIRE(n >= 0, "n must be >= 0 (got %lld)", (long long)n);
    FX_REQUIRE(n == 0 || bytes != nullptr, "argument 'bytes' is NULL");
    FX_REQUIRE(n == 0 || x != nullptr, "argument 'x' is NULL");
    FX_REQUIRE(fx::trained_for_sa(ix), "index is not trained");
    FX_TRY
    // An IVF code starts with its list number; faiss trusts it blindly.
    if (auto ivf = dynamic_cast<const faiss::IndexIVF*>(ix)) {
        size_t cs = ivf->sa_code_size();
        for (idx_t i = 0; i < n; i++) {
            idx_t list_no = ivf->decode_listno(bytes + i * cs);
            FX_REQUIRE(list_no >= 0 && (size_t)list_no < ivf->nlist,
                       "code %lld names list %lld, outside [0, %zu)",
                       (long long)i, (long long)list_no, ivf->nlist);
        }
    }
    // IndexLSH without rotation keeps nbits < d components; faiss decodes
    // only those and leaves the rest of each output vector unwritten.
    if (auto lsh = dynamic_cast<const faiss::IndexLSH*>(ix))
        if (!lsh->rotate_data && lsh->nbits < lsh->d)
            std::fill(x, x + (size_t)n * lsh->d, 0.0f);
    ix->sa_decode(n, bytes, x);
    return 0;
    FX_CATCH
}

/* ---- SearchParameters (faissx.h) ---- */

void faiss_SearchParameters_free(FaissSearchParameters* obj) {
    delete reinterpret_cast<faiss::SearchParameters*>(obj);
}

int faiss_SearchParameters_new(FaissSearchParameters** p_sp,
                               FaissIDSelector* sel) {
    FX_NOT_NULL(p_sp);
    FX_TRY
    auto sp = new faiss::SearchParameters();
    sp->sel = reinterpret_cast<faiss::IDSelector*>(sel);
    *p_sp = reinterpret_cast<FaissSearchParameters*>(sp);
    return 0;
    FX_CATCH
}

/* ---- SearchParametersHNSW (faissx.h) ---- */

void faiss_SearchParametersHNSW_free(FaissSearchParametersHNSW* obj) {
    delete reinterpret_cast<faiss::SearchParameters*>(obj);
}

FaissSearchParametersHNSW* faiss_SearchParametersHNSW_cast(
        FaissSearchParameters* sp) {
    auto p = reinterpret_cast<faiss::SearchParameters*>(sp);
    if (!p || !dynamic_cast<faiss::SearchParametersHNSW*>(p)) return nullptr;
    return reinterpret_cast<FaissSearchParametersHNSW*>(sp);
}

int faiss_SearchParametersHNSW_new(FaissSearchParametersHNSW** p_sp) {
    FX_NOT_NULL(p_sp);
    FX_TRY
    *p_sp = reinterpret_cast<FaissSearchParametersHNSW*>(
            static_cast<faiss::SearchParameters*>(
                    new faiss::SearchParametersHNSW()));
    return 0;
    FX_CATCH
}

int faiss_SearchParametersHNSW_new_with(FaissSearchParametersHNSW** p_sp,
                                        FaissIDSelector* sel, int efSearch) {
    FX_NOT_NULL(p_sp);
    FX_REQUIRE(efSearch > 0, "efSearch must be > 0 (got %d)", efSearch);
    FX_TRY
    auto sp = new faiss::SearchParametersHNSW();
    sp->sel = reinterpret_cast<faiss::IDSelector*>(sel);
    sp->efSearch = efSearch;
    *p_sp = reinterpret_cast<FaissSearchParametersHNSW*>(
            static_cast<faiss::SearchParameters*>(sp));
    return 0;
    FX_CATCH
}

static faiss::SearchParametersHNSW* sp_hnsw(
        const FaissSearchParametersHNSW* p) {
    return p ? dynamic_cast<faiss::SearchParametersHNSW*>(
                       reinterpret_cast<faiss::SearchParameters*>(
                               const_cast<FaissSearchParametersHNSW*>(p)))
             : nullptr;
}

#define FX_SP_HNSW(sp, obj, ret)                                           \
    auto sp = sp_hnsw(obj);                                                \
    FX_REQUIRE_RET(sp, ret, "handle is NULL or not SearchParametersHNSW")

const FaissIDSelector* faiss_SearchParametersHNSW_sel(
        const FaissSearchParametersHNSW* obj) {
    FX_SP_HNSW(sp, obj, nullptr);
    return reinterpret_cast<const FaissIDSelector*>(sp->sel);
}

int faiss_SearchParametersHNSW_efSearch(const FaissSearchParametersHNSW* obj) {
    FX_SP_HNSW(sp, obj, 0);
    return sp->efSearch;
}

void faiss_SearchParametersHNSW_set_efSearch(FaissSearchParametersHNSW* obj,
                                             int val) {
    FX_SP_HNSW(sp, obj, );
    sp->efSearch = val; // a search refuses val <= 0 (check_params)
}

int faiss_SearchParametersHNSW_check_relative_distance(
        const FaissSearchParametersHNSW* obj) {
    FX_SP_HNSW(sp, obj, 0);
    return sp->check_relative_distance;
}

void faiss_SearchParametersHNSW_set_check_relative_distance(
        FaissSearchParametersHNSW* obj, int val) {
    FX_SP_HNSW(sp, obj, );
    sp->check_relative_distance = val != 0;
}

} // extern "C"

namespace fx {

int check_metric(const char* func, int metric) {
    switch (metric) {
    case METRIC_INNER_PRODUCT:
    case METRIC_L2:
    case METRIC_L1:
    case METRIC_Linf:
    case METRIC_Lp:
    case METRIC_Canberra:
    case METRIC_BrayCurtis:
    case METRIC_JensenShannon:
        return 0;
    default:
        return fail(FAISSX_E_INVALID, func, "unknown metric type %d", metric);
    }
}

int check_dim(const char* func, long long d) {
    if (d <= 0 || d > std::numeric_limits<int>::max())
        return fail(FAISSX_E_INVALID, func,
                    "dimension d must be in [1, %d] (got %lld)",
                    std::numeric_limits<int>::max(), d);
    return 0;
}

} // namespace fx
