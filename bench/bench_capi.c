/* bench_capi.c -- the FAISS C API (libfaissx) against faiss C++ called
 * directly, in the same process, on the same data, as ratios.
 *
 * For each measured operation the two sides run alternately (round r runs
 * the C API first when r is even, faiss C++ first when r is odd), the
 * median per side is taken, and the ratio C API / C++ is printed. The
 * results of the two sides (labels and distances) are compared byte for
 * byte; any difference makes the program exit with status 1.
 *
 * Run with --help for the options. Threads: by default the program calls
 * omp_set_num_threads(1) and openblas_set_num_threads(1) before anything
 * else (overriding OMP_NUM_THREADS / OPENBLAS_NUM_THREADS), see --threads. */
#define _POSIX_C_SOURCE 200809L

#include "bench_util.h"
#include "bench.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVFFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * The C API side
 * ------------------------------------------------------------------------ */

static void capi_report(const char* what) {
    const char* msg = faiss_get_last_error();
    fprintf(stderr, "C API %s: %s\n", what, msg ? msg : "(no message)");
}

static void* capi_flat_new(int d) {
    FaissIndexFlatL2* ix = NULL;
    if (faiss_IndexFlatL2_new_with(&ix, d)) {
        capi_report("faiss_IndexFlatL2_new_with");
        return NULL;
    }
    return ix;
}

static void* capi_ivf_new(int d, size_t nlist) {
    FaissIndexFlatL2* q = NULL;
    FaissIndexIVFFlat* ivf = NULL;
    if (faiss_IndexFlatL2_new_with(&q, d)) {
        capi_report("faiss_IndexFlatL2_new_with");
        return NULL;
    }
    if (faiss_IndexIVFFlat_new_with(&ivf, (FaissIndex*)q, (size_t)d, nlist)) {
        capi_report("faiss_IndexIVFFlat_new_with");
        faiss_Index_free((FaissIndex*)q);
        return NULL;
    }
    faiss_IndexIVFFlat_set_own_fields(ivf, 1);
    return ivf;
}

static void* capi_hnsw_new(int d, int M) {
    char desc[32];
    FaissIndex* ix = NULL;
    snprintf(desc, sizeof desc, "HNSW%d", M);
    if (faiss_index_factory(&ix, d, desc, METRIC_L2)) {
        capi_report("faiss_index_factory");
        return NULL;
    }
    return ix;
}

static int capi_train(void* ix, int64_t n, const float* x) {
    if (faiss_Index_train((FaissIndex*)ix, n, x)) {
        capi_report("faiss_Index_train");
        return -1;
    }
    return 0;
}

static int capi_add(void* ix, int64_t n, const float* x) {
    if (faiss_Index_add((FaissIndex*)ix, n, x)) {
        capi_report("faiss_Index_add");
        return -1;
    }
    return 0;
}

static int capi_reset(void* ix) {
    if (faiss_Index_reset((FaissIndex*)ix)) {
        capi_report("faiss_Index_reset");
        return -1;
    }
    return 0;
}

static int capi_set_nprobe(void* ix, size_t nprobe) {
    FaissIndexIVF* ivf = faiss_IndexIVF_cast((FaissIndex*)ix);
    if (!ivf) {
        fprintf(stderr, "C API set_nprobe: not an IndexIVF\n");
        return -1;
    }
    faiss_IndexIVF_set_nprobe(ivf, nprobe);
    return 0;
}

static int capi_set_ef_search(void* ix, int ef) {
    FaissParameterSpace* ps = NULL;
    int rc = 0;
    if (faiss_ParameterSpace_new(&ps)) {
        capi_report("faiss_ParameterSpace_new");
        return -1;
    }
    if (faiss_ParameterSpace_set_index_parameter(ps, (FaissIndex*)ix,
                                                 "efSearch", (double)ef)) {
        capi_report("faiss_ParameterSpace_set_index_parameter");
        rc = -1;
    }
    faiss_ParameterSpace_free(ps);
    return rc;
}

static int capi_search(void* ix, int64_t n, const float* x, int64_t k,
                       float* D, int64_t* I) {
    if (faiss_Index_search((const FaissIndex*)ix, n, x, k, D, I)) {
        capi_report("faiss_Index_search");
        return -1;
    }
    return 0;
}

static void capi_free_index(void* ix) {
    faiss_Index_free((FaissIndex*)ix);
}

static const bench_ops capi_ops = {
    "C API",       capi_flat_new, capi_ivf_new,    capi_hnsw_new,
    capi_train,    capi_add,      capi_reset,      capi_set_nprobe,
    capi_set_ef_search, capi_search, capi_free_index,
};

/* Side 0 is the C API, side 1 faiss C++. */
static const bench_ops* sides[2] = {&capi_ops, &bench_cpp_ops};
/* --aa replaces side 0 by a copy of the C++ side. */
static bench_ops aa_ops;

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

typedef struct {
    int d;
    int64_t nb;       /* Flat and IVF base size */
    int64_t nt;       /* IVF training set */
    int64_t nq;       /* batch queries */
    int64_t nsingle;  /* queries searched one at a time */
    int64_t hnsw_nb;  /* HNSW base size */
    int64_t k;
    size_t nlist;
    size_t nprobe;
    int hnsw_m;
    int ef_search;
    int ncentres;
    double sigma;
    int rounds;
    int build_rounds; /* IVF training and HNSW construction */
    int warmup;
    int threads;
    unsigned long long seed;
    int64_t ncalls;   /* calls in the per-call overhead loop */
    int aa;           /* A/A control: faiss C++ on both sides */
    int samples;      /* print every sample */
    int do_flat, do_ivf, do_hnsw, do_calls;
} options;

static void usage(FILE* f, const char* prog) {
    fprintf(f,
            "usage: %s [options]\n"
            "  --quick          smoke-run sizes (a few seconds)\n"
            "  --d N            dimension (128)\n"
            "  --nb N           Flat/IVF base size (100000)\n"
            "  --nt N           IVF training points (50000)\n"
            "  --nq N           batch queries (1000)\n"
            "  --nsingle N      queries searched one at a time (200)\n"
            "  --hnsw-nb N      HNSW base size (100000)\n"
            "  --k N            neighbours (10)\n"
            "  --nlist N        IVF lists (1024)\n"
            "  --nprobe N       IVF nprobe (16)\n"
            "  --hnsw-m N       HNSW M (32)\n"
            "  --ef N           HNSW efSearch (64)\n"
            "  --centres N      data clusters (1000)\n"
            "  --sigma X        cluster std-dev; centres are N(0,1) (0.25)\n"
            "  --rounds N       measured rounds per side (5)\n"
            "  --build-rounds N rounds for IVF train / HNSW build (2)\n"
            "  --warmup N       unmeasured rounds first (1)\n"
            "  --threads N      OpenMP and OpenBLAS threads (1)\n"
            "  --seed N         data seed (1234)\n"
            "  --ncalls N       calls in the per-call overhead loop (100000)\n"
            "  --only LIST      comma list of calls,flat,ivf,hnsw (all)\n"
            "  --aa             A/A control: faiss C++ on both sides (shows\n"
            "                   the noise floor of the ratios)\n"
            "  --samples        also print every sample\n",
            prog);
}

static int parse_args(int argc, char** argv, options* o) {
    *o = (options){
        .d = 128, .nb = 100000, .nt = 50000, .nq = 1000, .nsingle = 200,
        .hnsw_nb = 100000, .k = 10, .nlist = 1024, .nprobe = 16,
        .hnsw_m = 32, .ef_search = 64, .ncentres = 1000, .sigma = 0.25,
        .rounds = 5, .build_rounds = 2, .warmup = 1, .threads = 1,
        .seed = 1234,
        .ncalls = 100000, .aa = 0,
        .do_flat = 1, .do_ivf = 1, .do_hnsw = 1, .do_calls = 1,
    };
    /* --quick first, so explicit sizes after it still apply. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            o->nb = 5000;
            o->nt = 5000;
            o->nq = 100;
            o->nsingle = 20;
            o->hnsw_nb = 2000;
            o->ncalls = 2000;
            o->nlist = 64;
            o->nprobe = 8;
            o->ncentres = 100;
            o->rounds = 3;
            o->build_rounds = 1;
            o->warmup = 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--quick") == 0)
            continue;
        if (strcmp(a, "--aa") == 0) {
            o->aa = 1;
            continue;
        }
        if (strcmp(a, "--samples") == 0) {
            o->samples = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout, argv[0]);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: unknown option or missing value: %s\n",
                    argv[0], a);
            return -1;
        }
        const char* v = argv[++i];
        long long n = 0;
        int bad = 0;
#define INTOPT(flag, field, lo)                                    \
    else if (strcmp(a, flag) == 0) {                               \
        bad = bench_parse_ll(v, lo, &n);                                 \
        o->field = n;                                              \
    }
        if (0) {
        }
        INTOPT("--d", d, 1)
        INTOPT("--nb", nb, 1)
        INTOPT("--nt", nt, 1)
        INTOPT("--nq", nq, 1)
        INTOPT("--nsingle", nsingle, 1)
        INTOPT("--ncalls", ncalls, 1)
        INTOPT("--hnsw-nb", hnsw_nb, 1)
        INTOPT("--k", k, 1)
        INTOPT("--nlist", nlist, 1)
        INTOPT("--nprobe", nprobe, 1)
        INTOPT("--hnsw-m", hnsw_m, 2)
        INTOPT("--ef", ef_search, 1)
        INTOPT("--centres", ncentres, 1)
        INTOPT("--rounds", rounds, 1)
        INTOPT("--build-rounds", build_rounds, 1)
        INTOPT("--warmup", warmup, 0)
        INTOPT("--threads", threads, 1)
        INTOPT("--seed", seed, 0)
        else if (strcmp(a, "--sigma") == 0) {
            char* end;
            o->sigma = strtod(v, &end);
            bad = *v == '\0' || *end != '\0' || !(o->sigma >= 0);
        } else if (strcmp(a, "--only") == 0) {
            o->do_flat = strstr(v, "flat") != NULL;
            o->do_ivf = strstr(v, "ivf") != NULL;
            o->do_hnsw = strstr(v, "hnsw") != NULL;
            o->do_calls = strstr(v, "calls") != NULL;
            bad = !(o->do_flat || o->do_ivf || o->do_hnsw || o->do_calls);
        } else {
            fprintf(stderr, "%s: unknown option %s\n", argv[0], a);
            return -1;
        }
#undef INTOPT
        if (bad) {
            fprintf(stderr, "%s: bad value for %s: %s\n", argv[0], a, v);
            return -1;
        }
    }
    if (o->nsingle > o->nq)
        o->nsingle = o->nq;
    return 0;
}

/* ------------------------------------------------------------------------
 * Data: a mixture of Gaussians (centres N(0,1) per component, points
 * centre + sigma * N(0,1)), deterministic from the seed.
 * ------------------------------------------------------------------------ */

static unsigned long long splitmix(unsigned long long* s) {
    unsigned long long z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform01(unsigned long long* s) {
    return ((splitmix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double gaussian(unsigned long long* s) {
    double u = uniform01(s), v = uniform01(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static float* xmalloc(size_t bytes) {
    void* p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static float* make_centres(const options* o) {
    unsigned long long s = o->seed;
    float* c = xmalloc(sizeof(float) * (size_t)o->ncentres * o->d);
    for (size_t i = 0; i < (size_t)o->ncentres * o->d; i++)
        c[i] = (float)gaussian(&s);
    return c;
}

/* n points; `stream` separates base, training and query sets. */
static float* make_points(const options* o, const float* centres, int64_t n,
                          unsigned long long stream) {
    unsigned long long s = o->seed * 0x100000001B3ULL + stream;
    float* x = xmalloc(sizeof(float) * (size_t)n * o->d);
    for (int64_t i = 0; i < n; i++) {
        const float* c =
                centres + (size_t)(splitmix(&s) % (unsigned)o->ncentres) * o->d;
        for (int j = 0; j < o->d; j++)
            x[(size_t)i * o->d + j] = c[j] + (float)(o->sigma * gaussian(&s));
    }
    return x;
}

/* ------------------------------------------------------------------------
 * Timing and results
 * ------------------------------------------------------------------------ */

enum { MAX_ROUNDS = 64 };

typedef struct {
    char name[64];
    char unit[8];     /* "ms", "us" or "ns" */
    double scale;     /* seconds -> unit, divided per item when per-item */
    int n;            /* samples per side */
    double t[2][MAX_ROUNDS];
    int identical;    /* 1 yes, 0 no, -1 not checked */
} row;

enum { MAX_ROWS = 16 };
static row rows[MAX_ROWS];
static int nrows;
static int mismatches;

static row* new_row(const char* name, const char* unit, double scale) {
    row* r = &rows[nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->unit, sizeof r->unit, "%s", unit);
    r->scale = scale;
    r->identical = -1;
    return r;
}

static double minimum(const double* t, int n) {
    double m = t[0];
    for (int i = 1; i < n; i++)
        m = t[i] < m ? t[i] : m;
    return m;
}

static double maximum(const double* t, int n) {
    double m = t[0];
    for (int i = 1; i < n; i++)
        m = t[i] > m ? t[i] : m;
    return m;
}

/* Record whether the two sides produced the same bytes. */
static void check_same(row* r, const void* a, const void* b, size_t bytes) {
    int same = memcmp(a, b, bytes) == 0;
    if (r->identical != 0)
        r->identical = same;
    if (!same)
        mismatches++;
}

/* Search results of one side. */
typedef struct {
    float* D;
    int64_t* I;
} results;

static void results_alloc(results* r, int64_t n, int64_t k) {
    r->D = xmalloc(sizeof(float) * (size_t)(n * k));
    r->I = (int64_t*)xmalloc(sizeof(int64_t) * (size_t)(n * k));
}

static void results_free(results* r) {
    free(r->D);
    free(r->I);
}

/* Abort on a failed operation: the benchmark is meaningless after it. */
#define MUST(call)                                                         \
    do {                                                                   \
        if ((call) != 0) {                                                 \
            fprintf(stderr, "failed: %s (%s:%d)\n", #call, __FILE__,       \
                    __LINE__);                                             \
            exit(2);                                                       \
        }                                                                  \
    } while (0)

static void* must_ptr(void* p, const char* what) {
    if (!p) {
        fprintf(stderr, "failed: %s\n", what);
        exit(2);
    }
    return p;
}
#define MUSTP(call) must_ptr((call), #call)

/* Single-query loops alternate sides every SLICE queries, the per-call
 * loop every CALL_SLICE calls. */
enum { SLICE = 50, CALL_SLICE = 1000 };

/* The side that runs at position `pos` (0 or 1) of round `r`. */
static int side_at(int r, int pos) {
    return (r % 2 == 0) ? pos : 1 - pos;
}

/* Search the nq queries on each side's own index and compare: the C API
 * built the same index as faiss C++. The result goes to every row given. */
static void verify_builds(const options* o, void* ix[2], const float* xq,
                          row* r1, row* r2, row* r3, row* r4) {
    results res[2];
    for (int s = 0; s < 2; s++) {
        results_alloc(&res[s], o->nq, o->k);
        MUST(sides[s]->search(ix[s], o->nq, xq, o->k, res[s].D, res[s].I));
    }
    size_t nk = (size_t)(o->nq * o->k);
    int same = memcmp(res[0].I, res[1].I, nk * sizeof(int64_t)) == 0 &&
            memcmp(res[0].D, res[1].D, nk * sizeof(float)) == 0;
    if (!same)
        mismatches++;
    row* rows4[4] = {r1, r2, r3, r4};
    for (int i = 0; i < 4; i++)
        if (rows4[i])
            rows4[i]->identical = same;
    for (int s = 0; s < 2; s++)
        results_free(&res[s]);
}

/* From here on both sides work on side 0's index (a faissx handle is the
 * faiss::Index*), so the timings compare the two call paths on the very
 * same object and memory. */
static void share(void* ix[2]) {
    if (ix[1] != ix[0])
        sides[1]->free_index(ix[1]);
    ix[1] = ix[0];
}

/* On the shared index ix: time reset+add of xb (row `radd`, may be NULL:
 * no add), a batch search (row `rbatch`) and single-query searches (row
 * `rsingle`), over warmup + rounds rounds; results of the two sides are
 * compared every round. */
static void run_rounds(const options* o, void* ix, int64_t nb,
                       const float* xb, const float* xq, row* radd,
                       row* rbatch, row* rsingle) {
    results batch[2], single[2];
    for (int s = 0; s < 2; s++) {
        results_alloc(&batch[s], o->nq, o->k);
        results_alloc(&single[s], o->nsingle, o->k);
    }
    int total = o->warmup + o->rounds;
    for (int r = 0; r < total; r++) {
        int m = r - o->warmup; /* measured round number, < 0: warm-up */
        if (radd) {
            for (int pos = 0; pos < 2; pos++) {
                int s = side_at(r, pos);
                MUST(sides[s]->reset(ix));
                double t0 = bench_now();
                MUST(sides[s]->add(ix, nb, xb));
                double t1 = bench_now();
                if (m >= 0)
                    radd->t[s][m] = t1 - t0;
            }
        }
        for (int pos = 0; pos < 2; pos++) {
            int s = side_at(r, pos);
            double t0 = bench_now();
            MUST(sides[s]->search(ix, o->nq, xq, o->k, batch[s].D,
                                  batch[s].I));
            double t1 = bench_now();
            if (m >= 0)
                rbatch->t[s][m] = t1 - t0;
        }
        /* Single queries: the sides take turns every SLICE queries, who
         * goes first alternating, so background load hits both alike. */
        double tsum[2] = {0, 0};
        for (int64_t i0 = 0; i0 < o->nsingle; i0 += SLICE) {
            int64_t i1 = i0 + SLICE < o->nsingle ? i0 + SLICE : o->nsingle;
            for (int pos = 0; pos < 2; pos++) {
                int s = side_at(r + (int)(i0 / SLICE), pos);
                double t0 = bench_now();
                for (int64_t i = i0; i < i1; i++)
                    MUST(sides[s]->search(ix, 1, xq + (size_t)i * o->d,
                                          o->k, single[s].D + i * o->k,
                                          single[s].I + i * o->k));
                tsum[s] += bench_now() - t0;
            }
        }
        if (m >= 0) {
            rsingle->t[0][m] = tsum[0];
            rsingle->t[1][m] = tsum[1];
        }
        size_t nbk = (size_t)(o->nq * o->k), nsk = (size_t)(o->nsingle * o->k);
        check_same(rbatch, batch[0].I, batch[1].I, nbk * sizeof(int64_t));
        check_same(rbatch, batch[0].D, batch[1].D, nbk * sizeof(float));
        check_same(rsingle, single[0].I, single[1].I, nsk * sizeof(int64_t));
        check_same(rsingle, single[0].D, single[1].D, nsk * sizeof(float));
        if (radd && rbatch->identical == 0)
            radd->identical = 0;
    }
    if (radd)
        radd->n = o->rounds;
    rbatch->n = rsingle->n = o->rounds;
    for (int s = 0; s < 2; s++) {
        results_free(&batch[s]);
        results_free(&single[s]);
    }
}

/* Time a build step (training, or adding to a graph) on both sides over
 * o->build_rounds alternating rounds; every round starts from a fresh
 * index made by `make` (not timed), so here each side has its own index.
 * The last round's indexes are left in ix[]. */
static void run_build(const options* o, row* rw, void* ix[2],
                      void* (*make)(int s, const options* o),
                      int (*step)(int s, void* ix, void* ctx), void* ctx) {
    for (int r = 0; r < o->build_rounds; r++) {
        for (int pos = 0; pos < 2; pos++) {
            int s = side_at(r, pos);
            if (ix[s])
                sides[s]->free_index(ix[s]);
            ix[s] = MUSTP(make(s, o));
            double t0 = bench_now();
            MUST(step(s, ix[s], ctx));
            rw->t[s][r] = bench_now() - t0;
        }
    }
    rw->n = o->build_rounds;
}

static void* make_ivf(int s, const options* o) {
    return sides[s]->ivf_new(o->d, o->nlist);
}

static void* make_hnsw(int s, const options* o) {
    return sides[s]->hnsw_new(o->d, o->hnsw_m);
}

typedef struct {
    int64_t n;
    const float* x;
} step_data;

static int step_train(int s, void* ix, void* ctx) {
    step_data* sd = ctx;
    return sides[s]->train(ix, sd->n, sd->x);
}

static int step_add(int s, void* ix, void* ctx) {
    step_data* sd = ctx;
    return sides[s]->add(ix, sd->n, sd->x);
}

/* ------------------------------------------------------------------------
 * The benchmarks
 * ------------------------------------------------------------------------ */

/* The fixed cost of one call: 1-NN of one query in a 16-vector Flat index,
 * ncalls times, cycling through the queries. */
static void bench_calls(const options* o, const float* xb, const float* xq) {
    enum { NB = 16 };
    char name[64];
    float* D[2];
    int64_t* I[2];
    int64_t nq = o->nq < 256 ? o->nq : 256;
    void* ix = MUSTP(sides[0]->flat_new(o->d));
    MUST(sides[0]->add(ix, NB, xb));
    for (int s = 0; s < 2; s++) {
        D[s] = xmalloc(sizeof(float) * nq);
        I[s] = (int64_t*)xmalloc(sizeof(int64_t) * nq);
    }
    snprintf(name, sizeof name, "call: Flat %d vectors, 1 query, k=1", NB);
    row* rw = new_row(name, "ns", 1e9 / o->ncalls);
    for (int r = 0; r < o->warmup + o->rounds; r++) {
        int m = r - o->warmup;
        double tsum[2] = {0, 0};
        for (int64_t i0 = 0; i0 < o->ncalls; i0 += CALL_SLICE) {
            int64_t i1 = i0 + CALL_SLICE < o->ncalls ? i0 + CALL_SLICE
                                                     : o->ncalls;
            for (int pos = 0; pos < 2; pos++) {
                int s = side_at(r + (int)(i0 / CALL_SLICE), pos);
                int (*search)(void*, int64_t, const float*, int64_t, float*,
                              int64_t*) = sides[s]->search;
                double t0 = bench_now();
                for (int64_t i = i0; i < i1; i++) {
                    int64_t q = i % nq;
                    MUST(search(ix, 1, xq + (size_t)q * o->d, 1, D[s] + q,
                                I[s] + q));
                }
                tsum[s] += bench_now() - t0;
            }
        }
        if (m >= 0) {
            rw->t[0][m] = tsum[0];
            rw->t[1][m] = tsum[1];
        }
        check_same(rw, I[0], I[1], sizeof(int64_t) * nq);
        check_same(rw, D[0], D[1], sizeof(float) * nq);
    }
    rw->n = o->rounds;
    sides[0]->free_index(ix);
    for (int s = 0; s < 2; s++) {
        free(D[s]);
        free(I[s]);
    }
}

static void bench_flat(const options* o, const float* xb, const float* xq) {
    char name[64];
    void* ix[2];
    snprintf(name, sizeof name, "Flat add %lld", (long long)o->nb);
    row* radd = new_row(name, "ms", 1e3);
    snprintf(name, sizeof name, "Flat search batch %lld", (long long)o->nq);
    row* rbatch = new_row(name, "ms", 1e3);
    snprintf(name, sizeof name, "Flat search single (per query)");
    row* rsingle = new_row(name, "us", 1e6 / o->nsingle);
    for (int s = 0; s < 2; s++) {
        ix[s] = MUSTP(sides[s]->flat_new(o->d));
        MUST(sides[s]->add(ix[s], o->nb, xb));
    }
    verify_builds(o, ix, xq, radd, rbatch, rsingle, NULL);
    share(ix);
    run_rounds(o, ix[0], o->nb, xb, xq, radd, rbatch, rsingle);
    sides[0]->free_index(ix[0]);
}

static void bench_ivf(const options* o, const float* xt, const float* xb,
                      const float* xq) {
    char name[64];
    void* ix[2] = {NULL, NULL};
    snprintf(name, sizeof name, "IVF%zu,Flat train %lld", o->nlist,
             (long long)o->nt);
    row* rtrain = new_row(name, "ms", 1e3);
    snprintf(name, sizeof name, "IVF%zu,Flat add %lld", o->nlist,
             (long long)o->nb);
    row* radd = new_row(name, "ms", 1e3);
    snprintf(name, sizeof name, "IVF search batch %lld, nprobe %zu",
             (long long)o->nq, o->nprobe);
    row* rbatch = new_row(name, "ms", 1e3);
    snprintf(name, sizeof name, "IVF search single, nprobe %zu (per query)",
             o->nprobe);
    row* rsingle = new_row(name, "us", 1e6 / o->nsingle);
    step_data sd = {o->nt, xt};
    run_build(o, rtrain, ix, make_ivf, step_train, &sd);
    for (int s = 0; s < 2; s++) {
        MUST(sides[s]->set_nprobe(ix[s], o->nprobe));
        MUST(sides[s]->add(ix[s], o->nb, xb));
    }
    verify_builds(o, ix, xq, rtrain, radd, rbatch, rsingle);
    share(ix);
    run_rounds(o, ix[0], o->nb, xb, xq, radd, rbatch, rsingle);
    sides[0]->free_index(ix[0]);
}

static void bench_hnsw(const options* o, const float* xb, const float* xq) {
    char name[64];
    void* ix[2] = {NULL, NULL};
    snprintf(name, sizeof name, "HNSW%d add (build) %lld", o->hnsw_m,
             (long long)o->hnsw_nb);
    row* rbuild = new_row(name, "ms", 1e3);
    snprintf(name, sizeof name, "HNSW search batch %lld, efSearch %d",
             (long long)o->nq, o->ef_search);
    row* rbatch = new_row(name, "ms", 1e3);
    snprintf(name, sizeof name, "HNSW search single, efSearch %d (per query)",
             o->ef_search);
    row* rsingle = new_row(name, "us", 1e6 / o->nsingle);
    step_data sd = {o->hnsw_nb, xb};
    run_build(o, rbuild, ix, make_hnsw, step_add, &sd);
    for (int s = 0; s < 2; s++)
        MUST(sides[s]->set_ef_search(ix[s], o->ef_search));
    verify_builds(o, ix, xq, rbuild, rbatch, rsingle, NULL);
    share(ix);
    run_rounds(o, ix[0], 0, NULL, xq, NULL, rbatch, rsingle);
    sides[0]->free_index(ix[0]);
}

/* ------------------------------------------------------------------------ */

static void print_samples(void) {
    printf("\nsamples (in round order; side 0 ran first in even rounds):\n");
    for (int i = 0; i < nrows; i++) {
        row* r = &rows[i];
        for (int s = 0; s < 2; s++) {
            printf("  %-44s %-14s", s == 0 ? r->name : "", sides[s]->name);
            for (int j = 0; j < r->n; j++)
                printf(" %9.1f", r->t[s][j] * r->scale);
            printf(" %s\n", r->unit);
        }
    }
}

static void print_table(void) {
    printf("\n| operation | samples | %s | %s | ratio | paired ratio "
           "| C++ spread | identical |\n",
           sides[0]->name, sides[1]->name);
    printf("|---|---:|---:|---:|---:|---:|---:|:---:|\n");
    for (int i = 0; i < nrows; i++) {
        row* r = &rows[i];
        double mc = bench_median(r->t[0], r->n) * r->scale;
        double mp = bench_median(r->t[1], r->n) * r->scale;
        double spread = (maximum(r->t[1], r->n) - minimum(r->t[1], r->n)) *
                r->scale / mp * 100.0;
        double ratios[MAX_ROUNDS];
        for (int j = 0; j < r->n; j++)
            ratios[j] = r->t[0][j] / r->t[1][j];
        printf("| %s | %d | %.1f %s | %.1f %s | %.3f | %.3f | ", r->name,
               r->n, mc, r->unit, mp, r->unit, mc / mp,
               bench_median(ratios, r->n));
        if (r->n > 1)
            printf("%.1f %% | ", spread);
        else
            printf("- | ");
        printf("%s |\n", r->identical < 0 ? "-" : r->identical ? "yes" : "NO");
    }
}

int main(int argc, char** argv) {
    options o;
    if (parse_args(argc, argv, &o)) {
        usage(stderr, argv[0]);
        return 2;
    }
    if (o.rounds > MAX_ROUNDS || o.build_rounds > MAX_ROUNDS) {
        fprintf(stderr, "at most %d rounds\n", MAX_ROUNDS);
        return 2;
    }
    if (o.aa) {
        aa_ops = bench_cpp_ops;
        aa_ops.name = "faiss C++ (A)";
        sides[0] = &aa_ops;
    }
    int threads = bench_set_threads(o.threads);

    printf("faissx bench: %s vs %s, same process\n", sides[0]->name,
           sides[1]->name);
    printf("%s\n", bench_faiss_info());
    printf("threads: OpenMP %d, OpenBLAS %d (set by the program)\n", threads,
           o.threads);
    printf("data: d=%d, %d clusters, centres N(0,1), sigma %.3g, seed %llu\n",
           o.d, o.ncentres, o.sigma, o.seed);
    printf("sizes: nb=%lld nt=%lld nq=%lld nsingle=%lld hnsw-nb=%lld k=%lld\n",
           (long long)o.nb, (long long)o.nt, (long long)o.nq,
           (long long)o.nsingle, (long long)o.hnsw_nb, (long long)o.k);
    printf("rounds: %d measured (+%d warm-up), %d for IVF train / HNSW "
           "build; sides alternate first; median per side\n",
           o.rounds, o.warmup, o.build_rounds);
    fflush(stdout);

    double t_start = bench_now();
    float* centres = make_centres(&o);
    int64_t nbmax = o.nb > o.hnsw_nb ? o.nb : o.hnsw_nb;
    float* xb = make_points(&o, centres, nbmax, 1);
    float* xq = make_points(&o, centres, o.nq, 2);
    float* xt = o.do_ivf ? make_points(&o, centres, o.nt, 3) : NULL;
    free(centres);

    if (o.do_calls) {
        bench_calls(&o, xb, xq);
        fprintf(stderr, "calls done (%.0f s)\n", bench_now() - t_start);
    }
    if (o.do_flat) {
        bench_flat(&o, xb, xq);
        fprintf(stderr, "flat done (%.0f s)\n", bench_now() - t_start);
    }
    if (o.do_ivf) {
        bench_ivf(&o, xt, xb, xq);
        fprintf(stderr, "ivf done (%.0f s)\n", bench_now() - t_start);
    }
    if (o.do_hnsw) {
        bench_hnsw(&o, xb, xq);
        fprintf(stderr, "hnsw done (%.0f s)\n", bench_now() - t_start);
    }
    if (o.samples)
        print_samples();
    print_table();
    printf("\ntimes: median per side; ratio: of the two medians; paired "
           "ratio: median of the per-round ratios (robust to load changes "
           "between rounds); C++ spread: (max - min) / median of the C++ "
           "samples; identical: labels and distances byte-equal between "
           "the sides in every round\n");
    printf("total %.1f s; %s\n", bench_now() - t_start,
           mismatches ? "RESULTS DIFFER between C API and C++"
                      : "all results identical");
    free(xb);
    free(xq);
    free(xt);
    return mismatches ? 1 : 0;
}
