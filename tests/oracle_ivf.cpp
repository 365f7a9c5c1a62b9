/* oracle_ivf.cpp -- faiss C++ references for test_ivf.c. */
#include "oracle_ivf.h"
#include "oracle_ix_impl.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/clone_index.h>
#include <faiss/impl/IDSelector.h>

#include <memory>

namespace {

struct TrackedFlat : faiss::IndexFlat {
    int* destroyed;
    TrackedFlat(int d, faiss::MetricType m, int* flag)
            : faiss::IndexFlat(d, m), destroyed(flag) {
        *destroyed = 0;
    }
    ~TrackedFlat() override {
        *destroyed = 1;
    }
};

} // namespace

extern "C" {

OIx* oix_ivfflat(int d, int metric, size_t nlist) {
    try {
        faiss::Index* q;
        if (metric == METRIC_INNER_PRODUCT)
            q = new faiss::IndexFlatIP(d);
        else
            q = new faiss::IndexFlatL2(d);
        auto ix = new faiss::IndexIVFFlat(
                q, d, nlist, static_cast<faiss::MetricType>(metric));
        ix->own_fields = true;
        return oix_detail::wrap(ix);
    } catch (const std::exception& e) {
        oix_detail::err() = e.what();
        return nullptr;
    }
}

OIx* oix_ivf_empty_clone(const OIx* src) {
    try {
        faiss::Index* c = faiss::clone_index(src->index);
        c->reset();
        return oix_detail::wrap(c);
    } catch (const std::exception& e) {
        oix_detail::err() = e.what();
        return nullptr;
    }
}

int oix_merge(OIx* dst, OIx* src, idx_t add_id) {
    OIX_TRY
    oix_detail::ivf(dst)->merge_from(*src->index, add_id);
    return 0;
    OIX_CATCH
}

int oix_copy_subset(const OIx* src, OIx* dst, int subset_type, idx_t a1,
                    idx_t a2) {
    OIX_TRY
    oix_detail::ivf(src)->copy_subset_to(*oix_detail::ivf(dst), subset_type,
                                         a1, a2);
    return 0;
    OIX_CATCH
}

int oix_update_vectors(OIx* o, int nv, const idx_t* idx, const float* v) {
    OIX_TRY
    oix_detail::ivf(o)->update_vectors(nv, idx, v);
    return 0;
    OIX_CATCH
}

double oix_imbalance_factor(const OIx* o) {
    return oix_detail::ivf(o)->invlists->imbalance_factor();
}

int oix_search_ivf_params(const OIx* o, idx_t n, const float* x, idx_t k,
                          size_t nprobe, size_t max_codes, idx_t sel_lo,
                          idx_t sel_hi, float* D, idx_t* I) {
    OIX_TRY
    faiss::SearchParametersIVF sp;
    sp.nprobe = nprobe;
    sp.max_codes = max_codes;
    std::unique_ptr<faiss::IDSelectorRange> sel;
    if (sel_lo >= 0) {
        sel.reset(new faiss::IDSelectorRange(sel_lo, sel_hi));
        sp.sel = sel.get();
    }
    o->index->search(n, x, k, D, I, &sp);
    return 0;
    OIX_CATCH
}

FaissIDSelector* oracle_selector_range(idx_t lo, idx_t hi) {
    return reinterpret_cast<FaissIDSelector*>(
            static_cast<faiss::IDSelector*>(new faiss::IDSelectorRange(lo, hi)));
}

void oracle_selector_free(FaissIDSelector* sel) {
    delete reinterpret_cast<faiss::IDSelector*>(sel);
}

FaissIndex* oracle_tracked_flat(int d, int metric, int* destroyed) {
    return reinterpret_cast<FaissIndex*>(static_cast<faiss::Index*>(
            new TrackedFlat(d, static_cast<faiss::MetricType>(metric),
                            destroyed)));
}

const void* oracle_ivf_stats_address(void) {
    return &faiss::indexIVF_stats;
}

} // extern "C"
