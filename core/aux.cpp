/* aux.cpp -- impl/AuxIndexStructures_c.h (range search results, ID
 * selectors, buffer lists, distance computers) and the selector
 * combinators of faissx.h. */
#include "core/core.h"

#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/IDSelector.h>

#include <memory>
#include <vector>

namespace {

using faiss::IDSelector;

inline faiss::RangeSearchResult* rsr(FaissRangeSearchResult* p) {
    return reinterpret_cast<faiss::RangeSearchResult*>(p);
}
inline const faiss::RangeSearchResult* rsr(const FaissRangeSearchResult* p) {
    return reinterpret_cast<const faiss::RangeSearchResult*>(p);
}
/* Every selector handle points at the faiss::IDSelector base. */
template <class H>
inline const IDSelector* sel(const H* p) {
    return reinterpret_cast<const IDSelector*>(p);
}
template <class H, class T>
inline H* sel_handle(T* p) {
    return reinterpret_cast<H*>(static_cast<IDSelector*>(p));
}
inline faiss::BufferList* bl(FaissBufferList* p) {
    return reinterpret_cast<faiss::BufferList*>(p);
}
inline const faiss::BufferList* bl(const FaissBufferList* p) {
    return reinterpret_cast<const faiss::BufferList*>(p);
}
inline faiss::RangeSearchPartialResult* pres(
        FaissRangeSearchPartialResult* p) {
    return reinterpret_cast<faiss::RangeSearchPartialResult*>(p);
}
inline faiss::RangeQueryResult* qres(FaissRangeQueryResult* p) {
    return reinterpret_cast<faiss::RangeQueryResult*>(p);
}
inline faiss::DistanceComputer* dcomp(FaissDistanceComputer* p) {
    return reinterpret_cast<faiss::DistanceComputer*>(p);
}

/* A distance computer that knows how many vectors its index holds, so the
 * C calls can refuse out-of-range ids instead of reading out of bounds. */
struct CheckedDC : faiss::DistanceComputer {
    std::unique_ptr<faiss::DistanceComputer> inner;
    faiss::Index::idx_t ntotal;
    bool has_query = false;
    CheckedDC(faiss::DistanceComputer* dc, faiss::Index::idx_t ntotal)
            : inner(dc), ntotal(ntotal) {}
    void set_query(const float* x) override {
        inner->set_query(x);
        has_query = true;
    }
    float operator()(faiss::Index::idx_t i) override {
        return (*inner)(i);
    }
    float symmetric_dis(faiss::Index::idx_t i,
                        faiss::Index::idx_t j) override {
        return inner->symmetric_dis(i, j);
    }
};

int check_dc_id(const char* func, faiss::DistanceComputer* dc, idx_t i) {
    if (auto c = dynamic_cast<CheckedDC*>(dc))
        if (i < 0 || i >= c->ntotal)
            return fx::fail(FAISSX_E_INVALID, func,
                            "vector id %lld is outside [0, %lld)",
                            (long long)i, (long long)c->ntotal);
    return 0;
}

/* set_lims/copy_result write res->lims[qno] and, per query, the entries
 * at res->lims[qno]: they need lims, and each query at most once (a
 * repeated query would make copy_result overflow the labels array). */
int check_partial(const char* func, const faiss::RangeSearchPartialResult* p) {
    if (!p->res || !p->res->lims)
        return fx::fail(FAISSX_E_INVALID, func,
                        "the RangeSearchResult has no lims (made with "
                        "alloc_lims = 0)");
    std::vector<char> seen(p->res->nq, 0);
    for (const auto& q : p->queries) {
        if (q.qno < 0 || (size_t)q.qno >= p->res->nq)
            return fx::fail(FAISSX_E_INVALID, func,
                            "query number %lld is outside [0, %zu)",
                            (long long)q.qno, p->res->nq);
        if (seen[q.qno]++)
            return fx::fail(FAISSX_E_INVALID, func,
                            "query %lld was started twice with new_result",
                            (long long)q.qno);
    }
    return 0;
}

size_t bufferlist_total(const faiss::BufferList* b) {
    if (b->buffers.empty()) return 0;
    return (b->buffers.size() - 1) * b->buffer_size + b->wp;
}

} // namespace

extern "C" {

/* ---- RangeSearchResult ---- */

size_t faiss_RangeSearchResult_nq(const FaissRangeSearchResult* obj) {
    FX_REQUIRE_RET(obj, 0, "result is NULL");
    return rsr(obj)->nq;
}

int faiss_RangeSearchResult_new_with(FaissRangeSearchResult** p_rsr, idx_t nq,
                                     int alloc_lims) {
    FX_NOT_NULL(p_rsr);
    FX_REQUIRE(nq >= 0, "nq must be >= 0 (got %lld)", (long long)nq);
    FX_TRY
    *p_rsr = reinterpret_cast<FaissRangeSearchResult*>(
            new faiss::RangeSearchResult(nq, alloc_lims != 0));
    return 0;
    FX_CATCH
}

int faiss_RangeSearchResult_new(FaissRangeSearchResult** p_rsr, idx_t nq) {
    return faiss_RangeSearchResult_new_with(p_rsr, nq, 1);
}

int faiss_RangeSearchResult_do_allocation(FaissRangeSearchResult* obj) {
    FX_NOT_NULL(obj);
    auto r = rsr(obj);
    FX_REQUIRE(r->lims != nullptr, "result has no lims (allocated without)");
    FX_REQUIRE(r->labels == nullptr && r->distances == nullptr,
               "result is already allocated");
    FX_TRY
    r->do_allocation();
    return 0;
    FX_CATCH
}

void faiss_RangeSearchResult_free(FaissRangeSearchResult* obj) {
    delete rsr(obj);
}

size_t faiss_RangeSearchResult_buffer_size(const FaissRangeSearchResult* obj) {
    FX_REQUIRE_RET(obj, 0, "result is NULL");
    return rsr(obj)->buffer_size;
}

void faiss_RangeSearchResult_lims(FaissRangeSearchResult* obj,
                                  size_t** lims) {
    if (!obj) {
        fx::note_error(FAISSX_E_INVALID, __func__, "result is NULL");
        if (lims) *lims = nullptr;
        return;
    }
    if (lims) *lims = rsr(obj)->lims;
}

void faiss_RangeSearchResult_labels(FaissRangeSearchResult* obj,
                                    idx_t** labels, float** distances) {
    if (!obj) {
        fx::note_error(FAISSX_E_INVALID, __func__, "result is NULL");
        if (labels) *labels = nullptr;
        if (distances) *distances = nullptr;
        return;
    }
    if (labels) *labels = rsr(obj)->labels;
    if (distances) *distances = rsr(obj)->distances;
}

/* ---- IDSelector family ---- */

void faiss_IDSelector_free(FaissIDSelector* obj) {
    delete reinterpret_cast<IDSelector*>(obj);
}

int faiss_IDSelector_is_member(const FaissIDSelector* s, idx_t id) {
    FX_REQUIRE_RET(s, 0, "selector is NULL");
    return sel(s)->is_member(id);
}

void faiss_IDSelectorRange_free(FaissIDSelectorRange* obj) {
    delete reinterpret_cast<IDSelector*>(obj);
}

idx_t faiss_IDSelectorRange_imin(const FaissIDSelectorRange* obj) {
    auto r = obj ? dynamic_cast<const faiss::IDSelectorRange*>(sel(obj))
                 : nullptr;
    FX_REQUIRE_RET(r, 0, "selector is NULL or not an IDSelectorRange");
    return r->imin;
}

idx_t faiss_IDSelectorRange_imax(const FaissIDSelectorRange* obj) {
    auto r = obj ? dynamic_cast<const faiss::IDSelectorRange*>(sel(obj))
                 : nullptr;
    FX_REQUIRE_RET(r, 0, "selector is NULL or not an IDSelectorRange");
    return r->imax;
}

int faiss_IDSelectorRange_new(FaissIDSelectorRange** p_sel, idx_t imin,
                              idx_t imax) {
    FX_NOT_NULL(p_sel);
    FX_REQUIRE(imin <= imax, "imin %lld > imax %lld", (long long)imin,
               (long long)imax);
    FX_TRY
    *p_sel = sel_handle<FaissIDSelectorRange>(
            new faiss::IDSelectorRange(imin, imax));
    return 0;
    FX_CATCH
}

int faiss_IDSelectorBatch_nbits(const FaissIDSelectorBatch* obj) {
    auto b = obj ? dynamic_cast<const faiss::IDSelectorBatch*>(sel(obj))
                 : nullptr;
    FX_REQUIRE_RET(b, 0, "selector is NULL or not an IDSelectorBatch");
    return b->nbits;
}

idx_t faiss_IDSelectorBatch_mask(const FaissIDSelectorBatch* obj) {
    auto b = obj ? dynamic_cast<const faiss::IDSelectorBatch*>(sel(obj))
                 : nullptr;
    FX_REQUIRE_RET(b, 0, "selector is NULL or not an IDSelectorBatch");
    return b->mask;
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch** p_sel, size_t n,
                              const idx_t* indices) {
    FX_NOT_NULL(p_sel);
    FX_REQUIRE(n == 0 || indices != nullptr, "argument 'indices' is NULL");
    FX_TRY
    *p_sel = sel_handle<FaissIDSelectorBatch>(
            new faiss::IDSelectorBatch(n, indices));
    return 0;
    FX_CATCH
}

int faiss_IDSelectorNot_new(FaissIDSelectorNot** p_sel,
                            const FaissIDSelector* s) {
    FX_NOT_NULL(p_sel);
    FX_NOT_NULL(s);
    FX_TRY
    *p_sel = sel_handle<FaissIDSelectorNot>(new faiss::IDSelectorNot(sel(s)));
    return 0;
    FX_CATCH
}

} // extern "C"

/* The And/Or/XOr constructors differ only in the operation. */
template <class H>
static int new_binary_selector(const char* func, fx::SelBinary::Op op,
                               H** p_sel, const FaissIDSelector* lhs_sel,
                               const FaissIDSelector* rhs_sel) {
    if (!p_sel) return fx::fail(FAISSX_E_INVALID, func, "argument 'p_sel' is NULL");
    if (!lhs_sel)
        return fx::fail(FAISSX_E_INVALID, func, "argument 'lhs_sel' is NULL");
    if (!rhs_sel)
        return fx::fail(FAISSX_E_INVALID, func, "argument 'rhs_sel' is NULL");
    try {
        *p_sel = sel_handle<H>(new fx::SelBinary(op, sel(lhs_sel), sel(rhs_sel)));
        return 0;
    } catch (...) {
        return fx::handle_exception(func);
    }
}

extern "C" {

int faiss_IDSelectorAnd_new(FaissIDSelectorAnd** p_sel,
                            const FaissIDSelector* lhs_sel,
                            const FaissIDSelector* rhs_sel) {
    return new_binary_selector(__func__, fx::SelBinary::AND, p_sel, lhs_sel,
                               rhs_sel);
}

int faiss_IDSelectorOr_new(FaissIDSelectorOr** p_sel,
                           const FaissIDSelector* lhs_sel,
                           const FaissIDSelector* rhs_sel) {
    return new_binary_selector(__func__, fx::SelBinary::OR, p_sel, lhs_sel,
                               rhs_sel);
}

int faiss_IDSelectorXOr_new(FaissIDSelectorXOr** p_sel,
                            const FaissIDSelector* lhs_sel,
                            const FaissIDSelector* rhs_sel) {
    return new_binary_selector(__func__, fx::SelBinary::XOR, p_sel, lhs_sel,
                               rhs_sel);
}

int faiss_IDSelectorBitmap_new(FaissIDSelectorBitmap** p_sel, size_t n,
                               const uint8_t* bitmap) {
    FX_NOT_NULL(p_sel);
    FX_REQUIRE(n == 0 || bitmap != nullptr, "argument 'bitmap' is NULL");
    FX_TRY
    *p_sel = sel_handle<FaissIDSelectorBitmap>(
            new faiss::IDSelectorBitmap(n, bitmap));
    return 0;
    FX_CATCH
}

/* ---- BufferList ---- */

void faiss_BufferList_free(FaissBufferList* obj) {
    delete bl(obj);
}

size_t faiss_BufferList_buffer_size(const FaissBufferList* obj) {
    FX_REQUIRE_RET(obj, 0, "buffer list is NULL");
    return bl(obj)->buffer_size;
}

size_t faiss_BufferList_wp(const FaissBufferList* obj) {
    FX_REQUIRE_RET(obj, 0, "buffer list is NULL");
    return bl(obj)->wp;
}

int faiss_BufferList_append_buffer(FaissBufferList* obj) {
    FX_NOT_NULL(obj);
    FX_TRY
    bl(obj)->append_buffer();
    return 0;
    FX_CATCH
}

int faiss_BufferList_new(FaissBufferList** p_bl, size_t buffer_size) {
    FX_NOT_NULL(p_bl);
    FX_REQUIRE(buffer_size > 0, "buffer_size must be > 0");
    FX_TRY
    *p_bl = reinterpret_cast<FaissBufferList*>(
            new faiss::BufferList(buffer_size));
    return 0;
    FX_CATCH
}

int faiss_BufferList_add(FaissBufferList* obj, idx_t id, float dis) {
    FX_NOT_NULL(obj);
    FX_TRY
    bl(obj)->add(id, dis);
    return 0;
    FX_CATCH
}

int faiss_BufferList_copy_range(FaissBufferList* obj, size_t ofs, size_t n,
                                idx_t* dest_ids, float* dest_dis) {
    FX_NOT_NULL(obj);
    FX_REQUIRE(n == 0 || (dest_ids && dest_dis),
               "destination arrays must not be NULL");
    size_t total = bufferlist_total(bl(obj));
    FX_REQUIRE(ofs <= total && n <= total - ofs,
               "range [%zu, %zu) exceeds the %zu stored entries", ofs,
               ofs + n, total);
    FX_TRY
    bl(obj)->copy_range(ofs, n, dest_ids, dest_dis);
    return 0;
    FX_CATCH
}

/* ---- RangeQueryResult / RangeSearchPartialResult ---- */

idx_t faiss_RangeQueryResult_qno(const FaissRangeQueryResult* obj) {
    FX_REQUIRE_RET(obj, 0, "query result is NULL");
    return reinterpret_cast<const faiss::RangeQueryResult*>(obj)->qno;
}

size_t faiss_RangeQueryResult_nres(const FaissRangeQueryResult* obj) {
    FX_REQUIRE_RET(obj, 0, "query result is NULL");
    return reinterpret_cast<const faiss::RangeQueryResult*>(obj)->nres;
}

FaissRangeSearchPartialResult* faiss_RangeQueryResult_pres(
        const FaissRangeQueryResult* obj) {
    FX_REQUIRE_RET(obj, nullptr, "query result is NULL");
    return reinterpret_cast<FaissRangeSearchPartialResult*>(
            reinterpret_cast<const faiss::RangeQueryResult*>(obj)->pres);
}

int faiss_RangeQueryResult_add(FaissRangeQueryResult* qr, float dis,
                               idx_t id) {
    FX_NOT_NULL(qr);
    FX_TRY
    qres(qr)->add(dis, id);
    return 0;
    FX_CATCH
}

FaissRangeSearchResult* faiss_RangeSearchPartialResult_res(
        const FaissRangeSearchPartialResult* obj) {
    FX_REQUIRE_RET(obj, nullptr, "partial result is NULL");
    return reinterpret_cast<FaissRangeSearchResult*>(
            reinterpret_cast<const faiss::RangeSearchPartialResult*>(obj)
                    ->res);
}

int faiss_RangeSearchPartialResult_new(FaissRangeSearchPartialResult** p_res,
                                       FaissRangeSearchResult* res_in) {
    FX_NOT_NULL(p_res);
    FX_NOT_NULL(res_in);
    FX_TRY
    *p_res = reinterpret_cast<FaissRangeSearchPartialResult*>(
            new faiss::RangeSearchPartialResult(rsr(res_in)));
    return 0;
    FX_CATCH
}

int faiss_RangeSearchPartialResult_finalize(
        FaissRangeSearchPartialResult* res) {
    FX_NOT_NULL(res);
    if (int rc = check_partial(__func__, pres(res))) return rc;
    FX_REQUIRE(pres(res)->res->labels == nullptr &&
                       pres(res)->res->distances == nullptr,
               "the result is already allocated (finalize runs once)");
    FX_TRY
    /* faiss's finalize() runs do_allocation inside `omp single`, from
     * which an exception cannot propagate (std::terminate). The same
     * steps, outside any OpenMP construct: */
    auto p = pres(res);
    p->set_lims();
    p->res->do_allocation();
    p->copy_result();
    return 0;
    FX_CATCH
}

int faiss_RangeSearchPartialResult_set_lims(
        FaissRangeSearchPartialResult* res) {
    FX_NOT_NULL(res);
    if (int rc = check_partial(__func__, pres(res))) return rc;
    FX_TRY
    pres(res)->set_lims();
    return 0;
    FX_CATCH
}

int faiss_RangeSearchPartialResult_new_result(
        FaissRangeSearchPartialResult* res, idx_t qno,
        FaissRangeQueryResult** qr) {
    FX_NOT_NULL(res);
    auto p = pres(res);
    FX_REQUIRE(qno >= 0 && (size_t)qno < p->res->nq,
               "query number %lld is outside [0, %zu)", (long long)qno,
               p->res->nq);
    FX_TRY
    faiss::RangeQueryResult& q = p->new_result(qno);
    if (qr) *qr = reinterpret_cast<FaissRangeQueryResult*>(&q);
    return 0;
    FX_CATCH
}

void faissx_RangeSearchPartialResult_free(FaissRangeSearchPartialResult* obj) {
    delete pres(obj);
}

/* ---- DistanceComputer ---- */

int faiss_DistanceComputer_set_query(FaissDistanceComputer* dc,
                                     const float* x) {
    FX_NOT_NULL(dc);
    FX_NOT_NULL(x);
    FX_TRY
    dcomp(dc)->set_query(x);
    return 0;
    FX_CATCH
}

int faiss_DistanceComputer_vector_to_query_dis(FaissDistanceComputer* dc,
                                               idx_t i, float* qd) {
    FX_NOT_NULL(dc);
    FX_NOT_NULL(qd);
    if (int rc = check_dc_id(__func__, dcomp(dc), i)) return rc;
    if (auto c = dynamic_cast<CheckedDC*>(dcomp(dc)))
        FX_REQUIRE(c->has_query,
                   "no query set: call faiss_DistanceComputer_set_query");
    FX_TRY
    *qd = (*dcomp(dc))(i);
    return 0;
    FX_CATCH
}

int faiss_DistanceComputer_symmetric_dis(FaissDistanceComputer* dc, idx_t i,
                                         idx_t j, float* vd) {
    FX_NOT_NULL(dc);
    FX_NOT_NULL(vd);
    if (int rc = check_dc_id(__func__, dcomp(dc), i)) return rc;
    if (int rc = check_dc_id(__func__, dcomp(dc), j)) return rc;
    FX_TRY
    *vd = dcomp(dc)->symmetric_dis(i, j);
    return 0;
    FX_CATCH
}

void faiss_DistanceComputer_free(FaissDistanceComputer* obj) {
    delete dcomp(obj);
}

int faissx_Index_get_distance_computer(const FaissIndex* index,
                                       FaissDistanceComputer** p_dc) {
    FX_NOT_NULL(index);
    FX_NOT_NULL(p_dc);
    FX_TRY
    auto ix = fx::index(index);
    std::unique_ptr<faiss::DistanceComputer> dc(ix->get_distance_computer());
    auto c = new CheckedDC(dc.release(), ix->ntotal);
    *p_dc = reinterpret_cast<FaissDistanceComputer*>(
            static_cast<faiss::DistanceComputer*>(c));
    return 0;
    FX_CATCH
}

} // extern "C"
