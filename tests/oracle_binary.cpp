/* oracle_binary.cpp -- faiss C++ binary indexes behind oracle_binary.h. */
#include "oracle_binary.h"

#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

struct OBx {
    faiss::IndexBinary* index;
};

static thread_local std::string bx_err;

extern "C" const char* obx_error(void) {
    return bx_err.c_str();
}

#define OBX_TRY try {
#define OBX_CATCH                     \
    return 0;                         \
    }                                 \
    catch (const std::exception& e) { \
        bx_err = e.what();            \
        return -1;                    \
    }

extern "C" OBx* obx_factory(const char* desc, int d) {
    try {
        return new OBx{faiss::index_binary_factory(d, desc)};
    } catch (const std::exception& e) {
        bx_err = e.what();
        return nullptr;
    }
}

extern "C" void obx_free(OBx* o) {
    if (o) delete o->index;
    delete o;
}

extern "C" int obx_info(const OBx* o, OBxInfo* info) {
    OBX_TRY
    const faiss::IndexBinary* ix = o->index;
    info->d = ix->d;
    info->is_trained = ix->is_trained;
    info->metric_type = ix->metric_type;
    info->verbose = ix->verbose;
    info->ntotal = ix->ntotal;
    auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(ix);
    info->is_ivf = ivf != nullptr;
    info->nlist = ivf ? ivf->nlist : 0;
    info->nprobe = ivf ? ivf->nprobe : 0;
    auto h = dynamic_cast<const faiss::IndexBinaryHNSW*>(ix);
    info->is_hnsw = h != nullptr;
    info->efSearch = h ? h->hnsw.efSearch : 0;
    OBX_CATCH
}

extern "C" int obx_train(OBx* o, idx_t n, const uint8_t* x) {
    OBX_TRY
    o->index->train(n, x);
    OBX_CATCH
}

extern "C" int obx_add(OBx* o, idx_t n, const uint8_t* x,
                       const idx_t* xids) {
    OBX_TRY
    if (xids)
        o->index->add_with_ids(n, x, xids);
    else
        o->index->add(n, x);
    OBX_CATCH
}

extern "C" int obx_search(const OBx* o, idx_t n, const uint8_t* x, idx_t k,
                          int32_t* D, idx_t* I) {
    OBX_TRY
    o->index->search(n, x, k, D, I);
    OBX_CATCH
}

extern "C" int obx_range(const OBx* o, idx_t n, const uint8_t* x, int radius,
                         size_t** lims, idx_t** labels, float** distances) {
    OBX_TRY
    faiss::RangeSearchResult res(n);
    o->index->range_search(n, x, radius, &res);
    size_t tot = res.lims[n];
    *lims = (size_t*)malloc((n + 1) * sizeof(size_t));
    *labels = (idx_t*)malloc((tot + 1) * sizeof(idx_t));
    *distances = (float*)malloc((tot + 1) * sizeof(float));
    memcpy(*lims, res.lims, (n + 1) * sizeof(size_t));
    memcpy(*labels, res.labels, tot * sizeof(idx_t));
    memcpy(*distances, res.distances, tot * sizeof(float));
    OBX_CATCH
}

extern "C" int obx_assign(const OBx* o, idx_t n, const uint8_t* x,
                          idx_t* labels, idx_t k) {
    OBX_TRY
    o->index->assign(n, x, labels, k);
    OBX_CATCH
}

extern "C" int obx_reset(OBx* o) {
    OBX_TRY
    o->index->reset();
    OBX_CATCH
}

extern "C" int obx_remove(OBx* o, idx_t imin, idx_t imax, size_t nids,
                          const idx_t* ids, size_t* n_removed) {
    OBX_TRY
    if (ids) {
        faiss::IDSelectorBatch sel(nids, ids);
        *n_removed = o->index->remove_ids(sel);
    } else {
        faiss::IDSelectorRange sel(imin, imax);
        *n_removed = o->index->remove_ids(sel);
    }
    OBX_CATCH
}

extern "C" int obx_reconstruct(const OBx* o, idx_t key, uint8_t* recons) {
    OBX_TRY
    o->index->reconstruct(key, recons);
    OBX_CATCH
}

extern "C" int obx_reconstruct_n(const OBx* o, idx_t i0, idx_t ni,
                                 uint8_t* recons) {
    OBX_TRY
    /* faiss 1.7.3's IndexBinary::reconstruct_n and the IndexBinaryIVF
     * override stride by d bits instead of code_size bytes and overflow
     * recons; the reference is per-vector reconstruction. */
    const size_t cs = o->index->code_size;
    if (auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(o->index)) {
        /* every stored vector is in exactly one list */
        for (size_t l = 0; l < ivf->nlist; l++) {
            size_t ls = ivf->invlists->list_size(l);
            const uint8_t* codes = ivf->invlists->get_codes(l);
            const idx_t* ids = ivf->invlists->get_ids(l);
            for (size_t j = 0; j < ls; j++)
                if (ids[j] >= i0 && ids[j] < i0 + ni)
                    memcpy(recons + (ids[j] - i0) * cs, codes + j * cs, cs);
            ivf->invlists->release_codes(l, codes);
            ivf->invlists->release_ids(l, ids);
        }
    } else {
        for (idx_t i = 0; i < ni; i++)
            o->index->reconstruct(i0 + i, recons + i * cs);
    }
    OBX_CATCH
}

extern "C" int obx_set_nprobe(OBx* o, size_t nprobe) {
    OBX_TRY
    auto ivf = dynamic_cast<faiss::IndexBinaryIVF*>(o->index);
    if (!ivf) throw std::runtime_error("not a binary IVF");
    ivf->nprobe = nprobe;
    OBX_CATCH
}

extern "C" int obx_set_efSearch(OBx* o, int ef) {
    OBX_TRY
    auto h = dynamic_cast<faiss::IndexBinaryHNSW*>(o->index);
    if (!h) throw std::runtime_error("not a binary HNSW");
    h->hnsw.efSearch = ef;
    OBX_CATCH
}
