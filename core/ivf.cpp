/* ivf.cpp -- IndexIVF_c.h and IndexIVFFlat_c.h, the IVF search statistics,
 * and SearchParametersIVF (faissx.h). */
#include "core/core.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>

#include <cstddef>
#include <algorithm>
#include <cstdio>
#include <cstring>

static_assert(sizeof(FaissIndexIVFStats) == sizeof(faiss::IndexIVFStats),
              "IndexIVFStats layouts differ");
static_assert(offsetof(FaissIndexIVFStats, search_time) ==
                      offsetof(faiss::IndexIVFStats, search_time),
              "IndexIVFStats layouts differ");

namespace {

/* Every list number must be -1 (skip) or a valid list. */
int check_assign(const char* func, const faiss::IndexIVF* ivf, size_t count,
                 const idx_t* assign) {
    for (size_t i = 0; i < count; i++)
        if (assign[i] < -1 || assign[i] >= (idx_t)ivf->nlist)
            return fx::fail(FAISSX_E_INVALID, func,
                            "list number %lld at position %zu is outside "
                            "[-1, %zu)",
                            (long long)assign[i], i, ivf->nlist);
    return 0;
}

} // namespace

namespace fx {
FaissIndex* child_of(const char* func, RemoteIndex* r, int64_t kind) {
    if (!(r->kind & kind)) {
        note_error(FAISSX_E_INVALID, func,
                   "the remote index is a %s, not the type this call needs",
                   r->cls.c_str());
        return nullptr;
    }
    if (!r->children.empty()) return handle<FaissIndex>(r->children[0]);
    // Built on the server (factory, upload, clone): a handle on the inner
    // index there, owned by r (as faiss's own_fields composite owns it).
    int64_t bit = kind & -kind; // the one kind the caller asks about
    try {
        return handle<FaissIndex>(static_cast<faiss::Index*>(r->inner(bit)));
    } catch (...) {
        handle_exception(func);
        return nullptr;
    }
}

FaissIndex* quantizer_of(const char* func, const FaissIndex* h) {
    if (auto r = h ? as_remote(index(h)) : nullptr)
        return child_of(func, r, FX_KIND_IVF);
    if (h && store::is_stored(index(h))) {
        note_error(FAISSX_E_UNSUPPORTED, func,
                   "the quantizer of an index in a durable store is not "
                   "available through its store handle (changes there "
                   "would bypass the store's log)");
        return nullptr;
    }
    auto ivf = as<faiss::IndexIVF>(h);
    if (!ivf) {
        note_error(FAISSX_E_INVALID, func, "handle is NULL or not an IndexIVF");
        return nullptr;
    }
    return handle<FaissIndex>(ivf->quantizer);
}

int ivf_add_core_checked(const char* func, faiss::IndexIVF* ivf, idx_t n,
                         const float* x, const idx_t* xids,
                         const idx_t* precomputed_idx) {
    if (int rc = check_vectors(func, n, x, ivf->d, "x")) return rc;
    if (n > 0 && !precomputed_idx)
        return fail(FAISSX_E_INVALID, func,
                        "argument 'precomputed_idx' is NULL");
    if (!ivf->is_trained)
        return fail(FAISSX_E_INVALID, func, "index is not trained");
    if (read_only_lists(ivf))
        return fail(FAISSX_E_UNSUPPORTED, func,
                        "the index's inverted lists are mapped read-only "
                        "(read with FAISS_IO_FLAG_MMAP)");
    if (int rc = check_assign(func, ivf, (size_t)n, precomputed_idx))
        return rc;
    try {
        ivf->add_core(n, x, xids, precomputed_idx);
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}


int remote_ivf_add_core(const char* func, RemoteIndex* r, idx_t n,
                        const float* x, const idx_t* xids,
                        const idx_t* precomputed_idx) {
    if (int rc = check_vectors(func, n, x, r->d, "x")) return rc;
    if (n > 0 && !precomputed_idx)
        return fail(FAISSX_E_INVALID, func,
                    "argument 'precomputed_idx' is NULL");
    try {
        r->ivf_mutate(FX_IVF_ADD_CORE, [&](fx_wbuf* w) {
            fx_w_i64(w, n);
            fx_w_array(w, x, (uint64_t)n * r->d, sizeof(float));
            fx_w_i64(w, xids != nullptr);
            fx_w_array(w, xids, xids ? (uint64_t)n : 0, sizeof(idx_t));
            fx_w_array(w, precomputed_idx, (uint64_t)n, sizeof(idx_t));
        });
        return 0;
    } catch (...) {
        return handle_exception(func);
    }
}
} // namespace fx

extern "C" {

/* ---- IndexIVF ---- */

FX_INDEX_FREE(IndexIVF)
FX_DOWNCAST_R(IndexIVF, faiss::IndexIVF, FX_KIND_IVF)
FX_GETTER_R(IndexIVF, faiss::IndexIVF, size_t, nlist, o->nlist, FX_KIND_IVF, "nlist")
FX_GETTER_R(IndexIVF, faiss::IndexIVF, size_t, nprobe, o->nprobe, FX_KIND_IVF, "nprobe")
FX_SETTER_R(IndexIVF, faiss::IndexIVF, size_t, nprobe, o->nprobe = val, FX_KIND_IVF, "nprobe")
FaissIndex* faiss_IndexIVF_quantizer(const FaissIndexIVF* obj) {
    return fx::quantizer_of(__func__, reinterpret_cast<const FaissIndex*>(obj));
}
FX_GETTER_R(IndexIVF, faiss::IndexIVF, char, quantizer_trains_alone,
          o->quantizer_trains_alone, FX_KIND_IVF, "quantizer_trains_alone")
FX_OWN_FIELDS_R(IndexIVF, faiss::IndexIVF, FX_KIND_IVF)

int faiss_IndexIVF_merge_from(FaissIndexIVF* index, FaissIndexIVF* other,
                              idx_t add_id) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        FX_NOT_NULL(other);
        FX_TRY
        r->merge_from(*fx::index(reinterpret_cast<FaissIndex*>(other)), add_id);
        return 0;
        FX_CATCH
    }
    FX_CAST(a, faiss::IndexIVF, index);
    FX_CAST(b, faiss::IndexIVF, other);
    FX_REQUIRE(a != b, "cannot merge an index into itself");
    FX_REQUIRE_WRITABLE(a);
    FX_REQUIRE_WRITABLE(b);
    FX_TRY
    a->merge_from(*b, add_id);
    return 0;
    FX_CATCH
}

int faiss_IndexIVF_copy_subset_to(const FaissIndexIVF* index,
                                  FaissIndexIVF* other, int subset_type,
                                  idx_t a1, idx_t a2) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        FX_NOT_NULL(other);
        auto o = fx::as_remote(fx::index(reinterpret_cast<FaissIndex*>(other)));
        FX_REQUIRE(o && o->conn == r->conn,
                   "copy_subset_to needs two indexes on the same server");
        FX_REQUIRE(subset_type >= 0 && subset_type <= 2,
                   "subset_type must be 0, 1 or 2 (got %d)", subset_type);
        FX_TRY
        // One round trip: the reply carries the state of both indexes
        // (FX_FLAG_STATE; a server that predates it is asked INFO for
        // other's afterwards).
        int64_t st[4];
        bool got_other = false;
        r->ivf_call(FX_IVF_COPY_SUBSET_TO,
                    [&](fx_wbuf* w) {
                        fx_w_u64(w, o->handle);
                        fx_w_i64(w, subset_type);
                        fx_w_i64(w, a1);
                        fx_w_i64(w, a2);
                    },
                    [&](fx_rbuf* rb) {
                        if (fx_r_i64(rb, &st[0]) || fx_r_i64(rb, &st[1]))
                            throw fx::Error(FAISSX_E_PROTOCOL, "bad copy_subset_to reply");
                        if ((got_other = rb->pos < rb->len) &&
                            (fx_r_i64(rb, &st[2]) || fx_r_i64(rb, &st[3])))
                            throw fx::Error(FAISSX_E_PROTOCOL, "bad copy_subset_to reply");
                    },
                    true);
        r->take_state(st[0], st[1] != 0);
        if (got_other)
            o->take_state(st[2], st[3] != 0);
        else
            o->sync();
        return 0;
        FX_CATCH
    }
    FX_CAST(a, faiss::IndexIVF, index);
    FX_CAST(b, faiss::IndexIVF, other);
    FX_REQUIRE(subset_type >= 0 && subset_type <= 2,
               "subset_type must be 0, 1 or 2 (got %d)", subset_type);
    FX_REQUIRE(subset_type != 1 || a1 > 0,
               "subset_type 1 needs a1 > 0 (got %lld)", (long long)a1);
    FX_REQUIRE((const void*)a != (const void*)b,
               "cannot copy an index into itself");
    FX_TRY
    a->copy_subset_to(*b, subset_type, a1, a2);
    return 0;
    FX_CATCH
}

int faiss_IndexIVF_search_preassigned(const FaissIndexIVF* index, idx_t n,
                                      const float* x, idx_t k,
                                      const idx_t* assign,
                                      const float* centroid_dis,
                                      float* distances, idx_t* labels,
                                      int store_pairs) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        if (int rc = fx::check_vectors(__func__, n, x, r->d, "x")) return rc;
        if (int rc = fx::check_knn(__func__, n, k, distances, labels)) return rc;
        FX_REQUIRE(n == 0 || (assign && centroid_dis),
                   "assign and centroid_dis must not be NULL");
        FX_TRY
        // One round trip: assign holds min(nprobe, nlist) lists per
        // query for the nprobe this handle last saw (index info, or the
        // caller's own set / get) -- the value the caller sized it by. The
        // server refuses the call with a clear error when its nprobe is
        // another now (another client changed it). Asked for only from a
        // server that does not send them in its index info.
        int64_t nl = r->nlist_seen, npr = r->nprobe_seen;
        if (nl < 0) nl = (int64_t)r->get_param("nlist");
        if (npr < 0) npr = (int64_t)r->get_param("nprobe");
        size_t np = std::min((size_t)npr, (size_t)nl);
        r->ivf_call(FX_IVF_SEARCH_PREASSIGNED,
                    [&](fx_wbuf* w) {
                        fx_w_i64(w, n);
                        fx_w_i64(w, k);
                        fx_w_i64(w, store_pairs != 0);
                        fx_w_array(w, x, (uint64_t)n * r->d, sizeof(float));
                        fx_w_array(w, assign, (uint64_t)n * np, sizeof(idx_t));
                        fx_w_array(w, centroid_dis, (uint64_t)n * np, sizeof(float));
                    },
                    [&](fx_rbuf* rb) {
                        const void* p;
                        uint64_t c;
                        if (fx_r_array(rb, 4, (uint64_t)n * k, &p, &c) || c != (uint64_t)n * k)
                            throw fx::Error(FAISSX_E_PROTOCOL, "bad search_preassigned reply");
                        memcpy(distances, p, c * 4);
                        if (fx_r_array(rb, 8, (uint64_t)n * k, &p, &c) || c != (uint64_t)n * k)
                            throw fx::Error(FAISSX_E_PROTOCOL, "bad search_preassigned reply");
                        memcpy(labels, p, c * 8);
                    });
        return 0;
        FX_CATCH
    }
    FX_CAST(ivf, faiss::IndexIVF, index);
    if (int rc = fx::check_vectors(__func__, n, x, ivf->d, "x")) return rc;
    if (int rc = fx::check_knn(__func__, n, k, distances, labels)) return rc;
    FX_REQUIRE(n == 0 || assign != nullptr, "argument 'assign' is NULL");
    FX_REQUIRE(n == 0 || centroid_dis != nullptr,
               "argument 'centroid_dis' is NULL");
    FX_REQUIRE(ivf->is_trained, "index is not trained");
    // faiss reads min(nprobe, nlist) list numbers per query, no more.
    size_t np = ivf->nprobe < ivf->nlist ? ivf->nprobe : ivf->nlist;
    if (int rc = check_assign(__func__, ivf, (size_t)n * np, assign))
        return rc;
    FX_TRY
    ivf->search_preassigned(n, x, k, assign, centroid_dis, distances, labels,
                            store_pairs != 0);
    return 0;
    FX_CATCH
}

size_t faiss_IndexIVF_get_list_size(const FaissIndexIVF* index,
                                    size_t list_no) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        FX_TRY
        auto b = r->fetch("list_sizes");
        FX_REQUIRE_RET(list_no < b.size() / 8, 0, "list_no %zu >= nlist %zu",
                       list_no, b.size() / 8);
        uint64_t v;
        memcpy(&v, b.data() + list_no * 8, 8);
        return (size_t)v;
        FX_CATCH_RET(0)
    }
    FX_CAST_RET(ivf, faiss::IndexIVF, index, 0);
    FX_REQUIRE_RET(list_no < ivf->nlist, 0, "list_no %zu >= nlist %zu",
                   list_no, ivf->nlist);
    FX_TRY
    return ivf->get_list_size(list_no);
    FX_CATCH_RET(0)
}

int faiss_IndexIVF_make_direct_map(FaissIndexIVF* index,
                                   int new_maintain_direct_map) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        FX_TRY
        r->ivf_mutate(FX_IVF_MAKE_DIRECT_MAP,
                      [&](fx_wbuf* w) { fx_w_i64(w, new_maintain_direct_map != 0); });
        return 0;
        FX_CATCH
    }
    FX_CAST(ivf, faiss::IndexIVF, index);
    FX_TRY
    ivf->make_direct_map(new_maintain_direct_map != 0);
    return 0;
    FX_CATCH
}

double faiss_IndexIVF_imbalance_factor(const FaissIndexIVF* index) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        FX_TRY
        double v = 0;
        r->ivf_call(FX_IVF_IMBALANCE, [](fx_wbuf*) {},
                    [&](fx_rbuf* rb) {
                        if (fx_r_f64(rb, &v))
                            throw fx::Error(FAISSX_E_PROTOCOL, "bad imbalance reply");
                    });
        return v;
        FX_CATCH_RET(0.0)
    }
    FX_CAST_RET(ivf, faiss::IndexIVF, index, 0.0);
    FX_TRY
    return ivf->invlists->imbalance_factor();
    FX_CATCH_RET(0.0)
}

void faiss_IndexIVF_print_stats(const FaissIndexIVF* index) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        FX_TRY
        auto b = r->fetch("list_sizes");
        size_t nl = b.size() / 8, total = 0, maxl = 0, empty = 0;
        for (size_t i = 0; i < nl; i++) {
            uint64_t v;
            memcpy(&v, b.data() + i * 8, 8);
            total += v;
            maxl = v > maxl ? v : maxl;
            empty += v == 0;
        }
        printf("remote IVF index: %zu lists, %zu vectors, largest list %zu, "
               "%zu empty lists\n", nl, total, maxl, empty);
        return;
        FX_CATCH_RET()
    }
    FX_CAST_RET(ivf, faiss::IndexIVF, index, );
    FX_TRY
    ivf->invlists->print_stats();
    FX_CATCH_RET()
}

void faiss_IndexIVF_invlists_get_ids(const FaissIndexIVF* index,
                                     size_t list_no, idx_t* invlist) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVF)) {
        FX_REQUIRE_RET(invlist != nullptr, , "argument 'invlist' is NULL");
        FX_TRY
        auto b = r->fetch("list_ids", (int64_t)list_no);
        if (!b.empty()) memcpy(invlist, b.data(), b.size());
        return;
        FX_CATCH_RET()
    }
    FX_CAST_RET(ivf, faiss::IndexIVF, index, );
    FX_REQUIRE_RET(list_no < ivf->nlist, , "list_no %zu >= nlist %zu",
                   list_no, ivf->nlist);
    FX_REQUIRE_RET(invlist != nullptr, , "argument 'invlist' is NULL");
    FX_TRY
    size_t sz = ivf->invlists->list_size(list_no);
    faiss::InvertedLists::ScopedIds ids(ivf->invlists, list_no);
    if (sz) std::memcpy(invlist, ids.get(), sz * sizeof(idx_t));
    FX_CATCH_RET()
}

void faiss_IndexIVFStats_reset(FaissIndexIVFStats* stats) {
    if (stats) std::memset(stats, 0, sizeof *stats);
}

FaissIndexIVFStats* faiss_get_indexIVF_stats() {
    return reinterpret_cast<FaissIndexIVFStats*>(&faiss::indexIVF_stats);
}

/* ---- IndexIVFFlat ---- */

FX_INDEX_FREE(IndexIVFFlat)
FX_DOWNCAST_R(IndexIVFFlat, faiss::IndexIVFFlat, FX_KIND_IVFFLAT)
FX_GETTER_R(IndexIVFFlat, faiss::IndexIVFFlat, size_t, nlist, o->nlist, FX_KIND_IVFFLAT, "nlist")
FX_GETTER_R(IndexIVFFlat, faiss::IndexIVFFlat, size_t, nprobe, o->nprobe, FX_KIND_IVFFLAT, "nprobe")
FX_SETTER_R(IndexIVFFlat, faiss::IndexIVFFlat, size_t, nprobe, o->nprobe = val, FX_KIND_IVFFLAT, "nprobe")
FaissIndex* faiss_IndexIVFFlat_quantizer(const FaissIndexIVFFlat* obj) {
    return fx::quantizer_of(__func__, reinterpret_cast<const FaissIndex*>(obj));
}
FX_GETTER_R(IndexIVFFlat, faiss::IndexIVFFlat, char, quantizer_trains_alone,
          o->quantizer_trains_alone, FX_KIND_IVFFLAT, "quantizer_trains_alone")
FX_OWN_FIELDS_R(IndexIVFFlat, faiss::IndexIVFFlat, FX_KIND_IVFFLAT)

int faiss_IndexIVFFlat_new(FaissIndexIVFFlat** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexIVFFlat>(
            static_cast<faiss::Index*>(new faiss::IndexIVFFlat()));
    return 0;
    FX_CATCH
}

int faiss_IndexIVFFlat_new_with_metric(FaissIndexIVFFlat** p_index,
                                       FaissIndex* quantizer, size_t d,
                                       size_t nlist, FaissMetricType metric) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(quantizer);
    if (int rc = fx::check_dim(__func__, (long long)d)) return rc;
    if (int rc = fx::check_metric(__func__, fx::raw_enum(metric))) return rc;
    FX_REQUIRE(nlist > 0, "nlist must be > 0");
    FX_REQUIRE(fx::index(quantizer)->d == (int)d,
               "quantizer dimension %d differs from d = %zu",
               fx::index(quantizer)->d, d);
    // A remote quantizer makes a remote IVF on the quantizer's server.
    if (auto rq = fx::as_remote(fx::index(quantizer)))
        return fx::remote_wrap(
                __func__, rq, FX_WRAP_IVFFLAT,
                [&](fx_wbuf* w) {
                    fx_w_i64(w, (int64_t)d);
                    fx_w_i64(w, (int64_t)nlist);
                    fx_w_i64(w, metric);
                },
                reinterpret_cast<FaissIndex**>(p_index));
    FX_TRY
    *p_index = fx::handle<FaissIndexIVFFlat>(
            static_cast<faiss::Index*>(new faiss::IndexIVFFlat(
                    fx::index(quantizer), d, nlist,
                    static_cast<faiss::MetricType>(metric))));
    return 0;
    FX_CATCH
}

int faiss_IndexIVFFlat_new_with(FaissIndexIVFFlat** p_index,
                                FaissIndex* quantizer, size_t d,
                                size_t nlist) {
    return faiss_IndexIVFFlat_new_with_metric(p_index, quantizer, d, nlist,
                                              METRIC_L2);
}

int faiss_IndexIVFFlat_add_core(FaissIndexIVFFlat* index, idx_t n,
                                const float* x, const idx_t* xids,
                                const int64_t* precomputed_idx) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index),
                                    FX_KIND_IVFFLAT))
        return fx::remote_ivf_add_core(__func__, r, n, x, xids,
                                       precomputed_idx);
    FX_CAST(ivf, faiss::IndexIVFFlat, index);
    return fx::ivf_add_core_checked(__func__, ivf, n, x, xids, precomputed_idx);
}

int faiss_IndexIVFFlat_update_vectors(FaissIndexIVFFlat* index, int nv,
                                      idx_t* idx, const float* v) {
    if (auto r = fx::remote_of_kind(reinterpret_cast<const FaissIndex*>(index), FX_KIND_IVFFLAT)) {
        if (int rc = fx::check_vectors(__func__, nv, v, r->d, "v")) return rc;
        FX_REQUIRE(nv == 0 || idx != nullptr, "argument 'idx' is NULL");
        FX_TRY
        r->ivf_mutate(FX_IVF_UPDATE_VECTORS, [&](fx_wbuf* w) {
            fx_w_i64(w, nv);
            fx_w_array(w, idx, (uint64_t)nv, sizeof(idx_t));
            fx_w_array(w, v, (uint64_t)nv * r->d, sizeof(float));
        });
        return 0;
        FX_CATCH
    }
    FX_CAST(ivf, faiss::IndexIVFFlat, index);
    if (int rc = fx::check_vectors(__func__, nv, v, ivf->d, "v")) return rc;
    FX_REQUIRE(nv == 0 || idx != nullptr, "argument 'idx' is NULL");
    for (int i = 0; i < nv; i++)
        FX_REQUIRE(idx[i] >= 0 && idx[i] < ivf->ntotal,
                   "idx[%d] = %lld is outside [0, %lld)", i,
                   (long long)idx[i], (long long)ivf->ntotal);
    FX_TRY
    ivf->update_vectors(nv, idx, v);
    return 0;
    FX_CATCH
}

/* ---- SearchParametersIVF (faissx.h) ---- */

void faiss_SearchParametersIVF_free(FaissSearchParametersIVF* obj) {
    delete reinterpret_cast<faiss::SearchParameters*>(obj);
}

FaissSearchParametersIVF* faiss_SearchParametersIVF_cast(
        FaissSearchParameters* sp) {
    auto p = reinterpret_cast<faiss::SearchParameters*>(sp);
    if (!p || !dynamic_cast<faiss::SearchParametersIVF*>(p)) return nullptr;
    return reinterpret_cast<FaissSearchParametersIVF*>(sp);
}

int faiss_SearchParametersIVF_new(FaissSearchParametersIVF** p_sp) {
    FX_NOT_NULL(p_sp);
    FX_TRY
    *p_sp = reinterpret_cast<FaissSearchParametersIVF*>(
            static_cast<faiss::SearchParameters*>(
                    new faiss::SearchParametersIVF()));
    return 0;
    FX_CATCH
}

int faiss_SearchParametersIVF_new_with(FaissSearchParametersIVF** p_sp,
                                       FaissIDSelector* sel, size_t nprobe,
                                       size_t max_codes) {
    FX_NOT_NULL(p_sp);
    FX_REQUIRE(nprobe > 0, "nprobe must be > 0");
    FX_TRY
    auto sp = new faiss::SearchParametersIVF();
    sp->sel = reinterpret_cast<faiss::IDSelector*>(sel);
    sp->nprobe = nprobe;
    sp->max_codes = max_codes;
    *p_sp = reinterpret_cast<FaissSearchParametersIVF*>(
            static_cast<faiss::SearchParameters*>(sp));
    return 0;
    FX_CATCH
}

static faiss::SearchParametersIVF* sp_ivf(const FaissSearchParametersIVF* p) {
    return dynamic_cast<faiss::SearchParametersIVF*>(
            reinterpret_cast<faiss::SearchParameters*>(
                    const_cast<FaissSearchParametersIVF*>(p)));
}

const FaissIDSelector* faiss_SearchParametersIVF_sel(
        const FaissSearchParametersIVF* obj) {
    auto sp = obj ? sp_ivf(obj) : nullptr;
    FX_REQUIRE_RET(sp, nullptr, "handle is NULL or not SearchParametersIVF");
    return reinterpret_cast<const FaissIDSelector*>(sp->sel);
}

size_t faiss_SearchParametersIVF_nprobe(const FaissSearchParametersIVF* obj) {
    auto sp = obj ? sp_ivf(obj) : nullptr;
    FX_REQUIRE_RET(sp, 0, "handle is NULL or not SearchParametersIVF");
    return sp->nprobe;
}

void faiss_SearchParametersIVF_set_nprobe(FaissSearchParametersIVF* obj,
                                          size_t val) {
    auto sp = obj ? sp_ivf(obj) : nullptr;
    FX_REQUIRE_RET(sp, , "handle is NULL or not SearchParametersIVF");
    sp->nprobe = val;
}

size_t faiss_SearchParametersIVF_max_codes(
        const FaissSearchParametersIVF* obj) {
    auto sp = obj ? sp_ivf(obj) : nullptr;
    FX_REQUIRE_RET(sp, 0, "handle is NULL or not SearchParametersIVF");
    return sp->max_codes;
}

void faiss_SearchParametersIVF_set_max_codes(FaissSearchParametersIVF* obj,
                                             size_t val) {
    auto sp = obj ? sp_ivf(obj) : nullptr;
    FX_REQUIRE_RET(sp, , "handle is NULL or not SearchParametersIVF");
    sp->max_codes = val;
}

} // extern "C"
