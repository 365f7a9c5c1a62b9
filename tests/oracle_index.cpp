/* oracle_index.cpp -- faiss C++ references behind oracle_index.h. */
#include "oracle_index.h"
#include "oracle.h"

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/impl/IDSelector.h>

#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

thread_local std::string err;

std::unique_ptr<faiss::Index> build(const char* factory, int d, int metric,
                                    idx_t nt, const float* xt, idx_t nb,
                                    const float* xb,
                                    const idx_t* xids = nullptr) {
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(
            d, factory, static_cast<faiss::MetricType>(metric)));
    if (nt > 0) ix->train(nt, xt);
    if (nb > 0 && xids)
        ix->add_with_ids(nb, xb, xids);
    else if (nb > 0)
        ix->add(nb, xb);
    return ix;
}

std::unique_ptr<faiss::IDSelector> make_sel(const OracleSel& s) {
    if (s.ids)
        return std::unique_ptr<faiss::IDSelector>(
                new faiss::IDSelectorBatch(s.nids, s.ids));
    return std::unique_ptr<faiss::IDSelector>(
            new faiss::IDSelectorRange(s.imin, s.imax));
}

} // namespace

#define OTRY try {
#define OCATCH                                                             \
    }                                                                      \
    catch (const std::exception& e) {                                      \
        err = e.what();                                                    \
        return -1;                                                         \
    }

extern "C" {

const char* oracle_index_error(void) {
    return err.c_str();
}

int oracle_remove_search(const char* factory, int d, int metric, idx_t nt,
                         const float* xt, idx_t nb, const float* xb,
                         const idx_t* xids, OracleSel sel, size_t* n_removed, idx_t* ntotal,
                         idx_t nq, const float* xq, idx_t k, float* D,
                         idx_t* I) {
    OTRY
    auto ix = build(factory, d, metric, nt, xt, nb, xb, xids);
    auto s = make_sel(sel);
    *n_removed = ix->remove_ids(*s);
    *ntotal = ix->ntotal;
    if (nq > 0) ix->search(nq, xq, k, D, I);
    return 0;
    OCATCH
}

int oracle_search_sel(const char* factory, int d, int metric, idx_t nt,
                      const float* xt, idx_t nb, const float* xb,
                      const idx_t* xids, OracleSel sel, size_t nprobe, idx_t nq,
                      const float* xq, idx_t k, float* D, idx_t* I) {
    OTRY
    auto ix = build(factory, d, metric, nt, xt, nb, xb, xids);
    auto s = make_sel(sel);
    if (dynamic_cast<faiss::IndexIVF*>(ix.get())) {
        faiss::SearchParametersIVF p;
        p.sel = s.get();
        p.nprobe = nprobe;
        ix->search(nq, xq, k, D, I, &p);
    } else {
        faiss::SearchParameters p;
        p.sel = s.get();
        ix->search(nq, xq, k, D, I, &p);
    }
    return 0;
    OCATCH
}

int oracle_idmap_search_sel(const char* sub, int d, int metric, idx_t nt,
                            const float* xt, idx_t nb, const float* xb,
                            const idx_t* xids, OracleSel sel, size_t nprobe,
                            idx_t nq, const float* xq, idx_t k, float* D,
                            idx_t* I) {
    OTRY
    auto ix = build(sub, d, metric, nt, xt, nb, xb);
    auto s = make_sel(sel);
    std::vector<idx_t> pos;
    for (idx_t i = 0; i < nb; i++)
        if (s->is_member(xids[i])) pos.push_back(i);
    faiss::IDSelectorBatch bp(pos.size(), pos.data());
    faiss::SearchParametersIVF pi;
    faiss::SearchParameters p;
    faiss::SearchParameters* pp = &p;
    if (dynamic_cast<faiss::IndexIVF*>(ix.get())) {
        pi.nprobe = nprobe;
        pp = &pi;
    }
    pp->sel = &bp;
    ix->search(nq, xq, k, D, I, pp);
    for (idx_t i = 0; i < nq * k; i++)
        if (I[i] >= 0) I[i] = xids[I[i]];
    return 0;
    OCATCH
}

int oracle_residual_n(const char* factory, int d, int metric, idx_t nt,
                      const float* xt, idx_t nb, const float* xb, idx_t n,
                      const float* x, const idx_t* keys, float* residuals) {
    OTRY
    auto ix = build(factory, d, metric, nt, xt, nb, xb);
    ix->compute_residual_n(n, x, residuals, keys);
    return 0;
    OCATCH
}

int oracle_sa_decode(const char* factory, int d, int metric, idx_t nt,
                     const float* xt, idx_t n, const uint8_t* codes,
                     float* x) {
    OTRY
    auto ix = build(factory, d, metric, nt, xt, 0, nullptr);
    ix->sa_decode(n, codes, x);
    return 0;
    OCATCH
}

int oracle_ivf_centroids(const char* factory, int d, int metric, idx_t nt,
                         const float* xt, float* centroids) {
    OTRY
    auto ix = build(factory, d, metric, nt, xt, 0, nullptr);
    auto ivf = dynamic_cast<faiss::IndexIVF*>(ix.get());
    if (!ivf) throw std::runtime_error("not an IVF index");
    ivf->quantizer->reconstruct_n(0, ivf->nlist, centroids);
    return 0;
    OCATCH
}

} // extern "C"
