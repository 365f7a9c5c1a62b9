/* oracle_clustering.cpp -- faiss C++ references behind oracle_clustering.h. */
#include "oracle_clustering.h"

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>

namespace {
thread_local std::string err;
}

#define OTRY try {
#define OCATCH                                                             \
    }                                                                      \
    catch (const std::exception& e) {                                      \
        err = e.what();                                                    \
        return -1;                                                         \
    }

extern "C" {

const char* oracle_clustering_error(void) {
    return err.c_str();
}

int oracle_cp_defaults(FaissClusteringParameters* out) {
    faiss::ClusteringParameters p;
    out->niter = p.niter;
    out->nredo = p.nredo;
    out->verbose = p.verbose;
    out->spherical = p.spherical;
    out->int_centroids = p.int_centroids;
    out->update_index = p.update_index;
    out->frozen_centroids = p.frozen_centroids;
    out->min_points_per_centroid = p.min_points_per_centroid;
    out->max_points_per_centroid = p.max_points_per_centroid;
    out->seed = p.seed;
    out->decode_block_size = p.decode_block_size;
    return 0;
}

int oracle_clustering_train(int d, int k, const FaissClusteringParameters* cp,
                            int ip, idx_t n, const float* x, float* centroids,
                            size_t* nstats, OracleIterStats* stats,
                            size_t cap, idx_t* index_ntotal) {
    OTRY
    faiss::ClusteringParameters p;
    p.niter = cp->niter;
    p.nredo = cp->nredo;
    p.verbose = cp->verbose;
    p.spherical = cp->spherical;
    p.int_centroids = cp->int_centroids;
    p.update_index = cp->update_index;
    p.frozen_centroids = cp->frozen_centroids;
    p.min_points_per_centroid = cp->min_points_per_centroid;
    p.max_points_per_centroid = cp->max_points_per_centroid;
    p.seed = cp->seed;
    p.decode_block_size = cp->decode_block_size;
    faiss::Clustering c(d, k, p);
    std::unique_ptr<faiss::IndexFlat> index;
    if (ip)
        index.reset(new faiss::IndexFlatIP(d));
    else
        index.reset(new faiss::IndexFlatL2(d));
    c.train(n, x, *index);
    std::memcpy(centroids, c.centroids.data(),
                c.centroids.size() * sizeof(float));
    *nstats = c.iteration_stats.size();
    for (size_t i = 0; i < c.iteration_stats.size() && i < cap; i++) {
        stats[i].obj = c.iteration_stats[i].obj;
        stats[i].imbalance_factor = c.iteration_stats[i].imbalance_factor;
        stats[i].nsplit = c.iteration_stats[i].nsplit;
    }
    if (index_ntotal) *index_ntotal = index->ntotal;
    return 0;
    OCATCH
}

int oracle_kmeans(size_t d, size_t n, size_t k, const float* x,
                  float* centroids, float* q_error) {
    OTRY
    *q_error = faiss::kmeans_clustering(d, n, k, x, centroids);
    return 0;
    OCATCH
}

} // extern "C"
