/* flat.cpp -- IndexFlat_c.h: exact search (Flat, FlatIP, FlatL2, Flat1D)
 * and IndexRefineFlat. */
#include "core/core.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexRefine.h>
#include <faiss/utils/distances.h>

#include <vector>

extern "C" {

/* ---- IndexFlat ---- */

int faiss_IndexFlat_new(FaissIndexFlat** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexFlat>(
            static_cast<faiss::Index*>(new faiss::IndexFlat()));
    return 0;
    FX_CATCH
}

int faiss_IndexFlat_new_with(FaissIndexFlat** p_index, idx_t d,
                             FaissMetricType metric) {
    FX_NOT_NULL(p_index);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    if (int rc = fx::check_metric(__func__, fx::raw_enum(metric))) return rc;
    FX_REMOTE_CREATE(p_index, d, "Flat", metric);
    FX_TRY
    *p_index = fx::handle<FaissIndexFlat>(static_cast<faiss::Index*>(
            new faiss::IndexFlat(d, static_cast<faiss::MetricType>(metric))));
    return 0;
    FX_CATCH
}

/* On a remote flat index the vectors are copied to the client: the pointer
 * stays valid until the next faiss_IndexFlat_xb call on that handle or its
 * free, and reflects the index at the time of the call. */
void faiss_IndexFlat_xb(FaissIndexFlat* index, float** p_xb, size_t* p_size) {
    if (auto r = index && fx::remote_is(fx::index(index), FX_KIND_FLAT)
                         ? fx::as_remote(fx::index(index))
                         : nullptr) {
        try {
            r->xb_copy = r->fetch("xb");
            if (p_xb) *p_xb = reinterpret_cast<float*>(r->xb_copy.data());
            if (p_size) *p_size = r->xb_copy.size() / sizeof(float);
        } catch (...) {
            fx::handle_exception(__func__);
            if (p_xb) *p_xb = nullptr;
            if (p_size) *p_size = 0;
        }
        return;
    }
    auto f = fx::as<faiss::IndexFlat>(reinterpret_cast<FaissIndex*>(index));
    if (!f) {
        fx::note_error(FAISSX_E_INVALID, __func__,
                       "index is NULL or not an IndexFlat");
        if (p_xb) *p_xb = nullptr;
        if (p_size) *p_size = 0;
        return;
    }
    if (p_xb) *p_xb = f->get_xb();
    if (p_size) *p_size = f->codes.size() / sizeof(float);
}

FX_DOWNCAST_R(IndexFlat, faiss::IndexFlat, FX_KIND_FLAT)
FX_INDEX_FREE(IndexFlat)

int faiss_IndexFlat_compute_distance_subset(FaissIndex* index, idx_t n,
                                            const float* x, idx_t k,
                                            float* distances,
                                            const idx_t* labels) {
    if (auto r = index && fx::remote_is(fx::index(index), FX_KIND_FLAT)
                         ? fx::as_remote(fx::index(index))
                         : nullptr) {
        // The vectors come over once; the distances are computed here with
        // the same kernels faiss's IndexFlat uses, so results are identical.
        if (int rc = fx::check_vectors(__func__, n, x, r->d, "x")) return rc;
        if (int rc = fx::check_knn(__func__, n, k, distances, labels)) return rc;
        FX_TRY
        std::vector<float> y((size_t)(n * k) * r->d);
        try {
            // One round trip: the server checks every key against its
            // ntotal (no INFO first).
            r->reconstruct_batch(n * k, labels, y.data());
        } catch (const fx::Error& e) {
            // It refused a label: name it as a local call does, against a
            // fresh ntotal (a second round trip, on this error only).
            if (e.code != FAISSX_E_INVALID) throw;
            r->sync();
            for (idx_t i = 0; i < n * k; i++)
                FX_REQUIRE(labels[i] >= 0 && labels[i] < r->ntotal,
                           "labels[%lld] = %lld is outside [0, %lld)",
                           (long long)i, (long long)labels[i],
                           (long long)r->ntotal);
            throw;
        }
        for (idx_t i = 0; i < n * k; i++) {
            const float* xi = x + (i / k) * r->d;
            const float* yi = y.data() + (size_t)i * r->d;
            distances[i] = r->metric_type == faiss::METRIC_INNER_PRODUCT
                    ? faiss::fvec_inner_product(xi, yi, r->d)
                    : faiss::fvec_L2sqr(xi, yi, r->d);
        }
        return 0;
        FX_CATCH
    }
    FX_CAST(f, faiss::IndexFlat, index);
    if (int rc = fx::check_vectors(__func__, n, x, f->d, "x")) return rc;
    if (int rc = fx::check_knn(__func__, n, k, distances, labels)) return rc;
    for (idx_t i = 0; i < n * k; i++)
        FX_REQUIRE(labels[i] >= 0 && labels[i] < f->ntotal,
                   "labels[%lld] = %lld is outside [0, %lld)", (long long)i,
                   (long long)labels[i], (long long)f->ntotal);
    FX_TRY
    f->compute_distance_subset(n, x, k, distances, labels);
    return 0;
    FX_CATCH
}

/* ---- IndexFlatIP / IndexFlatL2 ---- */

FX_DOWNCAST_R(IndexFlatIP, faiss::IndexFlatIP, FX_KIND_FLAT_IP)
FX_INDEX_FREE(IndexFlatIP)

int faiss_IndexFlatIP_new(FaissIndexFlatIP** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexFlatIP>(
            static_cast<faiss::Index*>(new faiss::IndexFlatIP()));
    return 0;
    FX_CATCH
}

int faiss_IndexFlatIP_new_with(FaissIndexFlatIP** p_index, idx_t d) {
    FX_NOT_NULL(p_index);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_REMOTE_UPLOAD(p_index, new faiss::IndexFlatIP(d));
    FX_TRY
    *p_index = fx::handle<FaissIndexFlatIP>(
            static_cast<faiss::Index*>(new faiss::IndexFlatIP(d)));
    return 0;
    FX_CATCH
}

FX_DOWNCAST_R(IndexFlatL2, faiss::IndexFlatL2, FX_KIND_FLAT_L2)
FX_INDEX_FREE(IndexFlatL2)

int faiss_IndexFlatL2_new(FaissIndexFlatL2** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexFlatL2>(
            static_cast<faiss::Index*>(new faiss::IndexFlatL2()));
    return 0;
    FX_CATCH
}

int faiss_IndexFlatL2_new_with(FaissIndexFlatL2** p_index, idx_t d) {
    FX_NOT_NULL(p_index);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_REMOTE_UPLOAD(p_index, new faiss::IndexFlatL2(d));
    FX_TRY
    *p_index = fx::handle<FaissIndexFlatL2>(
            static_cast<faiss::Index*>(new faiss::IndexFlatL2(d)));
    return 0;
    FX_CATCH
}

/* ---- IndexRefineFlat ---- */

int faiss_IndexRefineFlat_new(FaissIndexRefineFlat** p_index,
                              FaissIndex* base_index) {
    FX_NOT_NULL(p_index);
    FX_NOT_NULL(base_index);
    // faiss checks this only after allocating the refine storage, which
    // then leaks when it throws.
    FX_REQUIRE(fx::index(base_index)->ntotal == 0,
               "base_index must be empty (ntotal = %lld)",
               (long long)fx::index(base_index)->ntotal);
    FX_TRY
    *p_index = fx::handle<FaissIndexRefineFlat>(static_cast<faiss::Index*>(
            new faiss::IndexRefineFlat(fx::index(base_index))));
    return 0;
    FX_CATCH
}

FX_INDEX_FREE(IndexRefineFlat)
FX_DOWNCAST_R(IndexRefineFlat, faiss::IndexRefineFlat, FX_KIND_REFINE)
FX_GETTER(IndexRefineFlat, faiss::IndexRefineFlat, int, own_fields,
          o->own_fields)
FX_SETTER(IndexRefineFlat, faiss::IndexRefineFlat, int, own_fields,
          o->own_fields = val != 0)
FX_GETTER(IndexRefineFlat, faiss::IndexRefineFlat, float, k_factor,
          o->k_factor)
FX_SETTER(IndexRefineFlat, faiss::IndexRefineFlat, float, k_factor,
          o->k_factor = val)

/* ---- IndexFlat1D ---- */

FX_DOWNCAST(IndexFlat1D, faiss::IndexFlat1D)
FX_INDEX_FREE(IndexFlat1D)

int faiss_IndexFlat1D_new(FaissIndexFlat1D** p_index) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexFlat1D>(
            static_cast<faiss::Index*>(new faiss::IndexFlat1D()));
    return 0;
    FX_CATCH
}

int faiss_IndexFlat1D_new_with(FaissIndexFlat1D** p_index,
                               int continuous_update) {
    FX_NOT_NULL(p_index);
    FX_TRY
    *p_index = fx::handle<FaissIndexFlat1D>(static_cast<faiss::Index*>(
            new faiss::IndexFlat1D(continuous_update != 0)));
    return 0;
    FX_CATCH
}

int faiss_IndexFlat1D_update_permutation(FaissIndexFlat1D* index) {
    FX_CAST(f, faiss::IndexFlat1D, reinterpret_cast<FaissIndex*>(index));
    FX_TRY
    f->update_permutation();
    return 0;
    FX_CATCH
}

} // extern "C"
