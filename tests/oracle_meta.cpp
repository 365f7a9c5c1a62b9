/* oracle_meta.cpp -- faiss C++ references behind oracle_meta.h. */
#include "oracle_meta.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexReplicas.h>
#include <faiss/IndexShards.h>
#include <faiss/index_factory.h>

#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace {
thread_local std::string err;

using Children = std::vector<std::unique_ptr<faiss::Index>>;

void make_children(Children& c, const char* child, int d, int metric,
                   int n) {
    for (int i = 0; i < n; i++)
        c.emplace_back(faiss::index_factory(
                d, child, static_cast<faiss::MetricType>(metric)));
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

const char* oracle_meta_error(void) {
    return err.c_str();
}

int oracle_shards_prefilled_search(const char* child, int d, int metric,
                                   int nshards, const idx_t* sizes,
                                   const float* xb, int threaded,
                                   int successive_ids, idx_t nq,
                                   const float* xq, idx_t k, float* D,
                                   idx_t* I) {
    OTRY
    Children c;
    make_children(c, child, d, metric, nshards);
    faiss::IndexShards sh(d, threaded != 0, successive_ids != 0);
    const float* p = xb;
    for (int i = 0; i < nshards; i++) {
        c[i]->add(sizes[i], p);
        p += sizes[i] * d;
        sh.add_shard(c[i].get());
    }
    sh.search(nq, xq, k, D, I);
    return 0;
    OCATCH
}

int oracle_shards_add_search(const char* child, int d, int metric,
                             int nshards, int threaded, int successive_ids,
                             idx_t nb, const float* xb, const idx_t* xids,
                             idx_t* child_ntotal, idx_t nq, const float* xq,
                             idx_t k, float* D, idx_t* I) {
    OTRY
    Children c;
    make_children(c, child, d, metric, nshards);
    faiss::IndexShards sh(d, threaded != 0, successive_ids != 0);
    for (int i = 0; i < nshards; i++) sh.add_shard(c[i].get());
    if (xids)
        sh.add_with_ids(nb, xb, xids);
    else
        sh.add(nb, xb);
    for (int i = 0; i < nshards; i++) child_ntotal[i] = c[i]->ntotal;
    sh.search(nq, xq, k, D, I);
    return 0;
    OCATCH
}

int oracle_replicas_search(int d, int metric, int nrep, int threaded,
                           idx_t nb, const float* xb, idx_t nq,
                           const float* xq, idx_t k, float* D, idx_t* I) {
    OTRY
    Children c;
    make_children(c, "Flat", d, metric, nrep);
    faiss::IndexReplicas r(d, threaded != 0);
    for (int i = 0; i < nrep; i++) r.add_replica(c[i].get());
    r.add(nb, xb);
    r.search(nq, xq, k, D, I);
    return 0;
    OCATCH
}

} // extern "C"
