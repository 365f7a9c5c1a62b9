/* oracle_clustering.h -- faiss C++ references for test_clustering.c. Every
 * function returns 0, or -1 with the message in oracle_clustering_error(). */
#ifndef FXT_ORACLE_CLUSTERING_H
#define FXT_ORACLE_CLUSTERING_H

#include <stddef.h>
#include <stdint.h>
#include <faiss/c_api/faiss_c.h>
#include <faiss/c_api/Clustering_c.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* oracle_clustering_error(void);

/* The fields of a default faiss::ClusteringParameters. */
int oracle_cp_defaults(FaissClusteringParameters* out);

/* Per-iteration statistics that do not depend on timing. */
typedef struct OracleIterStats {
    float obj;
    double imbalance_factor;
    int nsplit;
} OracleIterStats;

/* faiss::Clustering(d, k, cp) trained on x with a faiss::IndexFlatL2 (or
 * IndexFlatIP when ip != 0): centroids (k*d), the number of iteration
 * stats and the first min(n, cap) of them, and the index's ntotal. */
int oracle_clustering_train(int d, int k, const FaissClusteringParameters* cp,
                            int ip, idx_t n, const float* x, float* centroids,
                            size_t* nstats, OracleIterStats* stats,
                            size_t cap, idx_t* index_ntotal);

/* faiss::kmeans_clustering. */
int oracle_kmeans(size_t d, size_t n, size_t k, const float* x,
                  float* centroids, float* q_error);

#ifdef __cplusplus
}
#endif

#endif
