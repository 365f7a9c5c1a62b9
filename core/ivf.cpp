/* ivf.cpp -- IndexIVF_c.h and IndexIVFFlat_c.h, the IVF search statistics,
 * and SearchParametersIVF (faissx.h). */
#include "core/core.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>

#include <cstddef>
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

int ivf_add_core(const char* func, faiss::IndexIVF* ivf, idx_t n,
                 const float* x, const idx_t* xids,
                 const idx_t* precomputed_idx) {
    if (int rc = fx::check_vectors(func, n, x, ivf->d, "x")) return rc;
    if (n > 0 && !precomputed_idx)
        return fx::fail(FAISSX_E_INVALID, func,
                        "argument 'precomputed_idx' is NULL");
    if (!ivf->is_trained)
        return fx::fail(FAISSX_E_INVALID, func, "index is not trained");
    if (int rc = check_assign(func, ivf, (size_t)n, precomputed_idx))
        return rc;
    try {
        ivf->add_core(n, x, xids, precomputed_idx);
        return 0;
    } catch (...) {
        return fx::handle_exception(func);
    }
}

} // namespace

namespace fx {
int ivf_add_core_checked(const char* func, faiss::IndexIVF* ivf, idx_t n,
                         const float* x, const idx_t* xids,
                         const idx_t* precomputed_idx) {
    return ivf_add_core(func, ivf, n, x, xids, precomputed_idx);
}
} // namespace fx

extern "C" {

/* ---- IndexIVF ---- */

FX_INDEX_FREE(IndexIVF)
FX_DOWNCAST_R(IndexIVF, faiss::IndexIVF, FX_KIND_IVF)
FX_GETTER_R(IndexIVF, faiss::IndexIVF, size_t, nlist, o->nlist, FX_KIND_IVF, "nlist")
FX_GETTER_R(IndexIVF, faiss::IndexIVF, size_t, nprobe, o->nprobe, FX_KIND_IVF, "nprobe")
FX_SETTER_R(IndexIVF, faiss::IndexIVF, size_t, nprobe, o->nprobe = val, FX_KIND_IVF, "nprobe")
FX_GETTER(IndexIVF, faiss::IndexIVF, FaissIndex*, quantizer,
          reinterpret_cast<FaissIndex*>(o->quantizer))
FX_GETTER_R(IndexIVF, faiss::IndexIVF, char, quantizer_trains_alone,
          o->quantizer_trains_alone, FX_KIND_IVF, "quantizer_trains_alone")
FX_OWN_FIELDS_R(IndexIVF, faiss::IndexIVF)

int faiss_IndexIVF_merge_from(FaissIndexIVF* index, FaissIndexIVF* other,
                              idx_t add_id) {
    FX_CAST(a, faiss::IndexIVF, index);
    FX_CAST(b, faiss::IndexIVF, other);
    FX_REQUIRE(a != b, "cannot merge an index into itself");
    FX_TRY
    a->merge_from(*b, add_id);
    return 0;
    FX_CATCH
}

int faiss_IndexIVF_copy_subset_to(const FaissIndexIVF* index,
                                  FaissIndexIVF* other, int subset_type,
                                  idx_t a1, idx_t a2) {
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
    FX_CAST_RET(ivf, faiss::IndexIVF, index, 0);
    FX_REQUIRE_RET(list_no < ivf->nlist, 0, "list_no %zu >= nlist %zu",
                   list_no, ivf->nlist);
    FX_TRY
    return ivf->get_list_size(list_no);
    FX_CATCH_RET(0)
}

int faiss_IndexIVF_make_direct_map(FaissIndexIVF* index,
                                   int new_maintain_direct_map) {
    FX_CAST(ivf, faiss::IndexIVF, index);
    FX_TRY
    ivf->make_direct_map(new_maintain_direct_map != 0);
    return 0;
    FX_CATCH
}

double faiss_IndexIVF_imbalance_factor(const FaissIndexIVF* index) {
    FX_CAST_RET(ivf, faiss::IndexIVF, index, 0.0);
    FX_TRY
    return ivf->invlists->imbalance_factor();
    FX_CATCH_RET(0.0)
}

void faiss_IndexIVF_print_stats(const FaissIndexIVF* index) {
    FX_CAST_RET(ivf, faiss::IndexIVF, index, );
    FX_TRY
    ivf->invlists->print_stats();
    FX_CATCH_RET()
}

void faiss_IndexIVF_invlists_get_ids(const FaissIndexIVF* index,
                                     size_t list_no, idx_t* invlist) {
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
FX_GETTER(IndexIVFFlat, faiss::IndexIVFFlat, FaissIndex*, quantizer,
          reinterpret_cast<FaissIndex*>(o->quantizer))
FX_GETTER_R(IndexIVFFlat, faiss::IndexIVFFlat, char, quantizer_trains_alone,
          o->quantizer_trains_alone, FX_KIND_IVFFLAT, "quantizer_trains_alone")
FX_OWN_FIELDS_R(IndexIVFFlat, faiss::IndexIVFFlat)

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
    if (int rc = fx::check_metric(__func__, metric)) return rc;
    FX_REQUIRE(nlist > 0, "nlist must be > 0");
    FX_REQUIRE(fx::index(quantizer)->d == (int)d,
               "quantizer dimension %d differs from d = %zu",
               fx::index(quantizer)->d, d);
    // A remote quantizer makes a remote IVF, built over a copy of the
    // (empty) quantizer and sent to its server.
    if (auto rq = fx::as_remote(fx::index(quantizer)))
        return fx::remote_wrap(
                __func__, rq,
                [&](faiss::Index* q) {
                    auto ivf = new faiss::IndexIVFFlat(
                            q, d, nlist, static_cast<faiss::MetricType>(metric));
                    ivf->own_fields = true;
                    return static_cast<faiss::Index*>(ivf);
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
    FX_CAST(ivf, faiss::IndexIVFFlat, index);
    return ivf_add_core(__func__, ivf, n, x, xids, precomputed_idx);
}

int faiss_IndexIVFFlat_update_vectors(FaissIndexIVFFlat* index, int nv,
                                      idx_t* idx, const float* v) {
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
