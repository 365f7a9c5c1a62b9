/* clustering.cpp -- Clustering_c.h: k-means. */
#include "core/core.h"
#include "core/progress.h"

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>

#include <cstring>
#include <memory>
#include <typeinfo>
#include <vector>

namespace {
inline faiss::Clustering* cl(FaissClustering* p) {
    return reinterpret_cast<faiss::Clustering*>(p);
}
inline const faiss::Clustering* cl(const FaissClustering* p) {
    return reinterpret_cast<const faiss::Clustering*>(p);
}
inline const faiss::ClusteringIterationStats* st(
        const FaissClusteringIterationStats* p) {
    return reinterpret_cast<const faiss::ClusteringIterationStats*>(p);
}

void to_cpp(const FaissClusteringParameters* c,
            faiss::ClusteringParameters* p) {
    p->niter = c->niter;
    p->nredo = c->nredo;
    p->verbose = c->verbose != 0;
    p->spherical = c->spherical != 0;
    p->int_centroids = c->int_centroids != 0;
    p->update_index = c->update_index != 0;
    p->frozen_centroids = c->frozen_centroids != 0;
    p->min_points_per_centroid = c->min_points_per_centroid;
    p->max_points_per_centroid = c->max_points_per_centroid;
    p->seed = c->seed;
    p->decode_block_size = c->decode_block_size;
}
} // namespace

/* Clustering_train with progress. A plain flat assignment index (the usual
 * case) is trained through a counting copy, which gives progress per
 * iteration and lets a cancelled call leave the index and the Clustering
 * object (centroids, iteration statistics) unchanged; with another index
 * the call reports only its start and end and, once started, runs to the
 * end. */
static int train_with_job(const char* func, faiss::Clustering* c, idx_t n,
                          const float* x, FaissIndex* index) {
    auto ix = fx::index(index);
    bool flat = fx::is_plain_flat(ix);
    std::unique_ptr<fx::JobScope> job;
    try {
        job.reset(new fx::JobScope(FAISSX_PROGRESS_CLUSTERING,
                                   flat ? (int64_t)c->niter * c->nredo : 1));
    } catch (...) {
        return fx::handle_exception(func);
    }
    if (!flat) {
        try {
            c->train(n, x, *ix);
            job->step(job->total());
            return 0;
        } catch (...) {
            return fx::job_exception(func, *job);
        }
    }
    auto f = static_cast<faiss::IndexFlat*>(ix);
    std::vector<float> centroids = c->centroids;
    std::vector<faiss::ClusteringIterationStats> stats = c->iteration_stats;
    try {
        fx::CountingFlat counter(f->d, f->metric_type);
        counter.codes = f->codes;
        counter.ntotal = f->ntotal;
        job->set_interruptible(true);
        c->train(n, x, counter);
        job->step(job->total());
        job->set_interruptible(false);
        f->codes.swap(counter.codes);
        f->ntotal = counter.ntotal;
        return 0;
    } catch (...) {
        c->centroids.swap(centroids);
        c->iteration_stats.swap(stats);
        return fx::job_exception(func, *job);
    }
}

#define FX_CL_GETTER(ty, name)                                         \
    ty faiss_Clustering_##name(const FaissClustering* obj) {           \
        FX_REQUIRE_RET(obj, (ty)0, "clustering is NULL");              \
        return (ty)cl(obj)->name;                                      \
    }
#define FX_ST_GETTER(ty, name)                                         \
    ty faiss_ClusteringIterationStats_##name(                          \
            const FaissClusteringIterationStats* obj) {                \
        FX_REQUIRE_RET(obj, (ty)0, "stats is NULL");                   \
        return (ty)st(obj)->name;                                      \
    }

extern "C" {

void faiss_ClusteringParameters_init(FaissClusteringParameters* params) {
    FX_REQUIRE_RET(params, , "params is NULL");
    faiss::ClusteringParameters d;
    params->niter = d.niter;
    params->nredo = d.nredo;
    params->verbose = d.verbose;
    params->spherical = d.spherical;
    params->int_centroids = d.int_centroids;
    params->update_index = d.update_index;
    params->frozen_centroids = d.frozen_centroids;
    params->min_points_per_centroid = d.min_points_per_centroid;
    params->max_points_per_centroid = d.max_points_per_centroid;
    params->seed = d.seed;
    params->decode_block_size = d.decode_block_size;
}

FX_CL_GETTER(int, niter)
FX_CL_GETTER(int, nredo)
FX_CL_GETTER(int, verbose)
FX_CL_GETTER(int, spherical)
FX_CL_GETTER(int, int_centroids)
FX_CL_GETTER(int, update_index)
FX_CL_GETTER(int, frozen_centroids)
FX_CL_GETTER(int, min_points_per_centroid)
FX_CL_GETTER(int, max_points_per_centroid)
FX_CL_GETTER(int, seed)
FX_CL_GETTER(size_t, decode_block_size)
FX_CL_GETTER(size_t, d)
FX_CL_GETTER(size_t, k)

FX_ST_GETTER(float, obj)
FX_ST_GETTER(double, time)
FX_ST_GETTER(double, time_search)
FX_ST_GETTER(double, imbalance_factor)
FX_ST_GETTER(int, nsplit)

void faiss_Clustering_centroids(FaissClustering* clustering,
                                float** centroids, size_t* size) {
    if (!clustering) {
        fx::note_error(FAISSX_E_INVALID, __func__, "clustering is NULL");
        if (centroids) *centroids = nullptr;
        if (size) *size = 0;
        return;
    }
    auto& c = cl(clustering)->centroids;
    if (centroids) *centroids = c.data();
    if (size) *size = c.size();
}

void faiss_Clustering_iteration_stats(
        FaissClustering* clustering,
        FaissClusteringIterationStats** iteration_stats, size_t* size) {
    if (!clustering) {
        fx::note_error(FAISSX_E_INVALID, __func__, "clustering is NULL");
        if (iteration_stats) *iteration_stats = nullptr;
        if (size) *size = 0;
        return;
    }
    auto& s = cl(clustering)->iteration_stats;
    if (iteration_stats)
        *iteration_stats =
                reinterpret_cast<FaissClusteringIterationStats*>(s.data());
    if (size) *size = s.size();
}

int faiss_Clustering_new_with_params(FaissClustering** p_clustering, int d,
                                     int k,
                                     const FaissClusteringParameters* cp) {
    FX_NOT_NULL(p_clustering);
    FX_NOT_NULL(cp);
    if (int rc = fx::check_dim(__func__, d)) return rc;
    FX_REQUIRE(k > 0, "k must be > 0 (got %d)", k);
    FX_REQUIRE(cp->niter > 0, "niter must be > 0 (got %d)", cp->niter);
    FX_REQUIRE(cp->nredo > 0, "nredo must be > 0 (got %d)", cp->nredo);
    FX_TRY
    faiss::ClusteringParameters p;
    to_cpp(cp, &p);
    *p_clustering = reinterpret_cast<FaissClustering*>(
            new faiss::Clustering(d, k, p));
    return 0;
    FX_CATCH
}

int faiss_Clustering_new(FaissClustering** p_clustering, int d, int k) {
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    return faiss_Clustering_new_with_params(p_clustering, d, k, &cp);
}

int faiss_Clustering_train(FaissClustering* clustering, idx_t n,
                           const float* x, FaissIndex* index) {
    FX_NOT_NULL(clustering);
    FX_NOT_NULL(index);
    auto c = cl(clustering);
    if (int rc = fx::check_vectors(__func__, n, x, (int)c->d, "x")) return rc;
    FX_REQUIRE(fx::index(index)->d == (int)c->d,
               "index dimension %d differs from clustering dimension %zu",
               fx::index(index)->d, c->d);
    FX_REQUIRE(n >= (idx_t)c->k,
               "need at least k = %zu training points (got %lld)", c->k,
               (long long)n);
    if (fx::job_wanted()) return train_with_job(__func__, c, n, x, index);
    FX_TRY
    c->train(n, x, *fx::index(index));
    return 0;
    FX_CATCH
}

void faiss_Clustering_free(FaissClustering* clustering) {
    delete cl(clustering);
}

int faiss_kmeans_clustering(size_t d, size_t n, size_t k, const float* x,
                            float* centroids, float* q_error) {
    if (int rc = fx::check_dim(__func__, (long long)d)) return rc;
    FX_REQUIRE(k > 0, "k must be > 0");
    FX_REQUIRE(n >= k, "need at least k = %zu points (got %zu)", k, n);
    FX_NOT_NULL(centroids);
    if (int rc = fx::check_vectors(__func__, (idx_t)n, x, (int)d, "x"))
        return rc;
    if (fx::job_wanted()) {
        // faiss::kmeans_clustering's own steps, over a counting index
        std::unique_ptr<fx::JobScope> job;
        FX_TRY
        faiss::Clustering clus(d, k);
        job.reset(new fx::JobScope(FAISSX_PROGRESS_CLUSTERING,
                                   (int64_t)clus.niter * clus.nredo));
        clus.verbose = d * n * k > (1L << 30);
        fx::CountingFlat counter((int)d, faiss::METRIC_L2);
        job->set_interruptible(true);
        try {
            clus.train(n, x, counter);
            job->step(job->total());
        } catch (...) {
            return fx::job_exception(__func__, *job);
        }
        std::memcpy(centroids, clus.centroids.data(),
                    sizeof(float) * d * k);
        if (q_error) *q_error = clus.iteration_stats.back().obj;
        return 0;
        FX_CATCH
    }
    FX_TRY
    float err = faiss::kmeans_clustering(d, n, k, x, centroids);
    if (q_error) *q_error = err;
    return 0;
    FX_CATCH
}

} // extern "C"
