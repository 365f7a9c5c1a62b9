/* oracle_aux.cpp -- faiss C++ references behind oracle_aux.h. */
#include "oracle_aux.h"

#include <faiss/IndexFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace {
thread_local std::string err;

void members(const faiss::IDSelector& s, idx_t lo, idx_t hi, uint8_t* out) {
    for (idx_t i = lo; i < hi; i++) out[i - lo] = s.is_member(i) ? 1 : 0;
}

std::vector<faiss::Index::idx_t> selected(idx_t nb, const uint8_t* member) {
    std::vector<faiss::Index::idx_t> v;
    for (idx_t i = 0; i < nb; i++)
        if (member[i]) v.push_back(i);
    return v;
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

const char* oracle_aux_error(void) {
    return err.c_str();
}

size_t oracle_rsr_buffer_size(idx_t nq) {
    faiss::RangeSearchResult r(nq);
    return r.buffer_size;
}

int oracle_range_members(idx_t imin, idx_t imax, idx_t lo, idx_t hi,
                         uint8_t* out) {
    OTRY
    faiss::IDSelectorRange s(imin, imax);
    members(s, lo, hi, out);
    return 0;
    OCATCH
}

int oracle_not_range_members(idx_t imin, idx_t imax, idx_t lo, idx_t hi,
                             uint8_t* out) {
    OTRY
    faiss::IDSelectorRange s(imin, imax);
    faiss::IDSelectorNot n(&s);
    members(n, lo, hi, out);
    return 0;
    OCATCH
}

int oracle_batch_members(size_t n, const idx_t* ids, idx_t lo, idx_t hi,
                         uint8_t* out, int* nbits, idx_t* mask) {
    OTRY
    faiss::IDSelectorBatch s(n, ids);
    members(s, lo, hi, out);
    *nbits = s.nbits;
    *mask = s.mask;
    return 0;
    OCATCH
}

int oracle_bitmap_members(size_t n, const uint8_t* bitmap, idx_t lo,
                          idx_t hi, uint8_t* out) {
    OTRY
    faiss::IDSelectorBitmap s(n, bitmap);
    members(s, lo, hi, out);
    return 0;
    OCATCH
}

int oracle_flat_search_sel(int d, int metric, idx_t nb, const float* xb,
                           const uint8_t* member, idx_t nq, const float* xq,
                           idx_t k, float* D, idx_t* I) {
    OTRY
    faiss::IndexFlat ix(d, static_cast<faiss::MetricType>(metric));
    ix.add(nb, xb);
    auto ids = selected(nb, member);
    faiss::IDSelectorBatch sel(ids.size(), ids.data());
    faiss::SearchParameters sp;
    sp.sel = &sel;
    ix.search(nq, xq, k, D, I, &sp);
    return 0;
    OCATCH
}

int oracle_flat_remove_sel(int d, idx_t nb, const float* xb,
                           const uint8_t* member, size_t* nremoved,
                           idx_t* ntotal, float* rest) {
    OTRY
    faiss::IndexFlatL2 ix(d);
    ix.add(nb, xb);
    auto ids = selected(nb, member);
    faiss::IDSelectorBatch sel(ids.size(), ids.data());
    *nremoved = ix.remove_ids(sel);
    *ntotal = ix.ntotal;
    std::memcpy(rest, ix.get_xb(), ix.ntotal * d * sizeof(float));
    return 0;
    OCATCH
}

int oracle_bufferlist(size_t bs, size_t n, const idx_t* ids,
                      const float* dis, const uint8_t* append_before,
                      size_t* wp, size_t* nbuffers, size_t ofs, size_t cnt,
                      idx_t* out_ids, float* out_dis) {
    OTRY
    faiss::BufferList bl(bs);
    for (size_t i = 0; i < n; i++) {
        if (append_before && append_before[i]) bl.append_buffer();
        bl.add(ids[i], dis[i]);
    }
    *wp = bl.wp;
    *nbuffers = bl.buffers.size();
    if (cnt) bl.copy_range(ofs, cnt, out_ids, out_dis);
    return 0;
    OCATCH
}

int oracle_partial(size_t nq, size_t nqueries, const idx_t* qnos,
                   const size_t* counts, const float* dis, const idx_t* ids,
                   size_t* lims, idx_t* labels, float* distances) {
    OTRY
    faiss::RangeSearchResult res(nq);
    faiss::RangeSearchPartialResult pres(&res);
    size_t pos = 0;
    for (size_t j = 0; j < nqueries; j++) {
        faiss::RangeQueryResult& q = pres.new_result(qnos[j]);
        for (size_t i = 0; i < counts[j]; i++, pos++)
            q.add(dis[pos], ids[pos]);
    }
    pres.finalize();
    std::memcpy(lims, res.lims, (nq + 1) * sizeof(size_t));
    std::memcpy(labels, res.labels, res.lims[nq] * sizeof(idx_t));
    std::memcpy(distances, res.distances, res.lims[nq] * sizeof(float));
    return 0;
    OCATCH
}

int oracle_dc(const char* factory, int d, int metric, idx_t nb,
              const float* xb, idx_t nq, const float* xq, idx_t nids,
              const idx_t* ids, float* qdis, idx_t npairs,
              const idx_t* pairs, float* sym) {
    OTRY
    std::unique_ptr<faiss::Index> ix(faiss::index_factory(
            d, factory, static_cast<faiss::MetricType>(metric)));
    ix->train(nb, xb);
    ix->add(nb, xb);
    std::unique_ptr<faiss::DistanceComputer> dc(ix->get_distance_computer());
    for (idx_t q = 0; q < nq; q++) {
        dc->set_query(xq + q * d);
        for (idx_t j = 0; j < nids; j++) qdis[q * nids + j] = (*dc)(ids[j]);
    }
    for (idx_t p = 0; p < npairs; p++)
        sym[p] = dc->symmetric_dis(pairs[2 * p], pairs[2 * p + 1]);
    return 0;
    OCATCH
}

} // extern "C"
