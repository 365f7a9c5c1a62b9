/* test_factory.c -- index_factory_c.h and clone_index_c.h: every factory
 * string below builds, trains, fills and searches exactly like
 * faiss::index_factory in C++; clones search like their originals and are
 * independent of them; bad strings and unclonable indexes fail clearly. */
#include "common.h"
#include "oracle.h"

#include <stdlib.h>

#define ORF(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s", #call,                 \
                 oracle_last_error())

enum { D = 32, NT = 1000, NB = 1000, NQ = 20, K = 10 };

typedef struct Data {
    float *xt, *xb, *xq;
    idx_t* ids;
} Data;

static Data data(void) {
    Data s;
    s.xt = fxt_clustered(NT, D, 30, 0.1f, 1);
    s.xb = fxt_clustered(NB, D, 30, 0.1f, 2);
    s.xq = fxt_clustered(NQ, D, 30, 0.1f, 3);
    s.ids = malloc(sizeof(idx_t) * NB);
    for (idx_t i = 0; i < NB; i++) s.ids[i] = 7 * i + 1000;
    return s;
}

static void data_free(Data* s) {
    free(s->xt);
    free(s->xb);
    free(s->xq);
    free(s->ids);
}

typedef struct Entry {
    const char* desc;
    int metric;
    const char* params; /* ParameterSpace string, NULL for none */
} Entry;

static int is_idmap(const char* desc) {
    return strncmp(desc, "IDMap", 5) == 0;
}

static void set_params(FaissIndex* ix, const char* params) {
    if (!params) return;
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, ix, params));
    faiss_ParameterSpace_free(ps);
}

/* faiss_index_factory, then train / add (with ids for IDMap) as the
 * oracle does. */
static FaissIndex* build(const Entry* e, const Data* s) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, e->desc, e->metric));
    cr_assert_not_null(ix);
    cr_assert_eq(faiss_Index_d(ix), D);
    cr_assert_eq(faiss_Index_metric_type(ix), e->metric, "%s", e->desc);
    cr_assert_eq(faiss_Index_ntotal(ix), 0);
    FXT_OK(faiss_Index_train(ix, NT, s->xt));
    cr_assert(faiss_Index_is_trained(ix), "%s: not trained", e->desc);
    if (is_idmap(e->desc))
        FXT_OK(faiss_Index_add_with_ids(ix, NB, s->xb, s->ids));
    else
        FXT_OK(faiss_Index_add(ix, NB, s->xb));
    cr_assert_eq(faiss_Index_ntotal(ix), NB);
    set_params(ix, e->params);
    return ix;
}

static void search_oracle(const Entry* e, const Data* s, float* D_,
                          idx_t* I) {
    ORF(oracle_factory_search(e->desc, D, e->metric, NT, s->xt, NB, s->xb,
                              is_idmap(e->desc) ? s->ids : NULL, e->params,
                              NQ, s->xq, K, D_, I));
}

static void same_results(const float* D1, const idx_t* I1, const float* D2,
                         const idx_t* I2, const char* what) {
    cr_assert(memcmp(I1, I2, sizeof(idx_t) * NQ * K) == 0,
              "%s: labels differ", what);
    cr_assert(memcmp(D1, D2, sizeof(float) * NQ * K) == 0,
              "%s: distances differ", what);
}

/* ---- factory strings faiss 1.7.3 supports ----------------------------- */

static const Entry TABLE[] = {
        {"Flat", METRIC_L2, NULL},
        {"Flat", METRIC_INNER_PRODUCT, NULL},
        {"Flat", METRIC_L1, NULL},
        {"IVF32,Flat", METRIC_L2, "nprobe=4"},
        {"IVF32,Flat", METRIC_INNER_PRODUCT, "nprobe=4"},
        {"IVF32,SQ8", METRIC_L2, "nprobe=8"},
        {"IVF32,SQfp16", METRIC_L2, NULL},
        {"IVF32,SQ4", METRIC_INNER_PRODUCT, "nprobe=2"},
        {"IVF32,PQ8np", METRIC_L2, "nprobe=4"},
        {"IVF32,PQ8x4fs", METRIC_L2, "nprobe=4"},
        {"IVF32_HNSW8,Flat", METRIC_L2, "nprobe=3"},
        {"IMI2x4,Flat", METRIC_L2, "nprobe=5"},
        {"PQ8np", METRIC_L2, NULL},
        {"PQ8x4fs", METRIC_L2, NULL},
        {"SQ8", METRIC_L2, NULL},
        {"SQ8", METRIC_INNER_PRODUCT, NULL},
        {"SQ4", METRIC_L2, NULL},
        {"SQ6", METRIC_L2, NULL},
        {"SQfp16", METRIC_L2, NULL},
        {"HNSW16", METRIC_L2, NULL},
        {"HNSW16", METRIC_INNER_PRODUCT, "efSearch=32"},
        {"HNSW16,Flat", METRIC_L2, "efSearch=64"},
        {"HNSW16,SQ8", METRIC_L2, NULL},
        {"NSG16,Flat", METRIC_L2, NULL},
        {"LSH", METRIC_L2, NULL},
        {"LSHrt", METRIC_L2, NULL},
        {"PCA16,IVF16,Flat", METRIC_L2, "nprobe=4"},
        {"PCAR16,Flat", METRIC_L2, NULL},
        {"PCAW16,Flat", METRIC_L2, NULL},
        {"RR32,Flat", METRIC_L2, NULL},
        {"L2norm,Flat", METRIC_INNER_PRODUCT, NULL},
        {"Pad64,Flat", METRIC_L2, NULL},
        {"OPQ4_16,IVF16,PQ4np", METRIC_L2, "nprobe=4"},
        {"ITQ32,LSHt", METRIC_L2, NULL},
        {"IDMap,Flat", METRIC_L2, NULL},
        {"IDMap2,Flat", METRIC_INNER_PRODUCT, NULL},
        {"IDMap,HNSW16", METRIC_L2, NULL},
        {"IVF32,Flat,RFlat", METRIC_L2, "nprobe=2"},
        {"PQ8np,RFlat", METRIC_L2, NULL},
        {"Flat,RFlat", METRIC_L2, NULL},
        {"RQ2x4", METRIC_L2, NULL},
};

Test(factory, table_matches_cpp, .timeout = 300) {
    Data s = data();
    float D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    for (size_t i = 0; i < sizeof TABLE / sizeof *TABLE; i++) {
        const Entry* e = &TABLE[i];
        FaissIndex* ix = build(e, &s);
        FXT_OK(faiss_Index_search(ix, NQ, s.xq, K, D1, I1));
        search_oracle(e, &s, D2, I2);
        same_results(D1, I1, D2, I2, e->desc);
        faiss_Index_free(ix);
    }
    data_free(&s);
}

/* The factory builds the C++ types the typed C calls expect. */
Test(factory, built_types) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, 16, "Flat", METRIC_INNER_PRODUCT));
    cr_assert_not_null(faiss_IndexFlat_cast(ix));
    cr_assert_null(faiss_IndexIVF_cast(ix));
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 16, "IVF8,Flat", METRIC_L2));
    cr_assert_not_null(faiss_IndexIVFFlat_cast(ix));
    cr_assert_eq(faiss_IndexIVF_nlist(faiss_IndexIVF_cast(ix)), 8);
    /* remote: a handle on the quantizer inside the server's IVF */
    FaissIndex* qz = faiss_IndexIVF_quantizer(faiss_IndexIVF_cast(ix));
    cr_assert_not_null(faiss_IndexFlat_cast(qz), "quantizer: %s",
                       faiss_get_last_error());
    cr_assert_eq(faiss_Index_d(qz), 16);
    cr_assert_eq(faissx_index_is_remote(qz), faissx_index_is_remote(ix));
    cr_assert_eq(faiss_IndexIVF_own_fields(faiss_IndexIVF_cast(ix)), 1);
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 16, "IVF8,SQ8", METRIC_L2));
    cr_assert_not_null(faiss_IndexIVFScalarQuantizer_cast(ix));
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 16, "SQ8", METRIC_L2));
    cr_assert_not_null(faiss_IndexScalarQuantizer_cast(ix));
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 16, "LSH", METRIC_L2));
    cr_assert_not_null(faiss_IndexLSH_cast(ix));
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 16, "IDMap,Flat", METRIC_L2));
    cr_assert_not_null(faiss_IndexIDMap_cast(ix));
    cr_assert_null(faiss_IndexIDMap2_cast(ix));
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 16, "IDMap2,Flat", METRIC_L2));
    cr_assert_not_null(faiss_IndexIDMap2_cast(ix));
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 16, "PCA8,Flat", METRIC_L2));
    cr_assert_not_null(faiss_IndexPreTransform_cast(ix));
    faiss_Index_free(ix);
}

/* Strings faiss 1.7.3 cannot parse, or whose parameters it refuses. */
Test(factory, bad_strings) {
    const char* bad[] = {"Foo",     "flat",        "IVF,Flat",  "IVF32,Blah",
                         "RFlat",   "Flat,Flat",   "IDMap",     ",",
                         ",Flat",   "Flat,",       "  Flat",    "IVF-3,Flat",
                         "HNSW-1",  "SQ3",         "PQ7",       "IVF32,PQ7",
                         "IVF32,PQ8x9",
                         "IVF99999999999999999999,Flat"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FaissIndex* ix = NULL;
        FXT_ERR(faiss_index_factory(&ix, D, bad[i], METRIC_L2), "");
        cr_assert_null(ix, "%s", bad[i]);
        int code = faissx_last_error_code();
        cr_assert(code == FAISSX_E_FAISS || code == FAISSX_E_STD,
                  "%s: code %d", bad[i], code);
    }
}

/* A zero parameter makes faiss 1.7.3 build an index that divides by zero
 * or aborts on an assertion (at construction, training or search); the C
 * API refuses such strings up front. */
Test(factory, zero_parameters_are_refused) {
    const char* zero[] = {"PQ0",          "IVF0,Flat",       "HNSW0",
                          "NSG0,Flat",    "PQ8x0",           "RQ2x0",
                          "OPQ0,PQ8",     "OPQ8_0,PQ8",      "IVF32,PQ0",
                          "HNSW16_PQ0",   "PQ8x4fs_0",       "LSQ0x4",
                          "IVF32_HNSW0,Flat", "PCA0,Flat",   "IVF00,Flat"};
    for (size_t i = 0; i < sizeof zero / sizeof *zero; i++) {
        FaissIndex* ix = NULL;
        FXT_ERR(faiss_index_factory(&ix, D, zero[i], METRIC_L2),
                "parameter 0");
        cr_assert_eq(faissx_last_error_code(), FAISSX_E_INVALID);
        cr_assert_null(ix);
    }
    /* zeros inside numbers are fine */
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, "IVF10,Flat", METRIC_L2));
    faiss_Index_free(ix);
    FXT_OK(faiss_index_factory(&ix, 40, "HNSW20,SQ8", METRIC_L2));
    faiss_Index_free(ix);
    /* and the binary factory */
    const char* bzero[] = {"BIVF0", "BHNSW0", "BIVF4_HNSW0", "BHash0",
                           "BHash2x0", "BHash0x8"};
    for (size_t i = 0; i < sizeof bzero / sizeof *bzero; i++) {
        FaissIndexBinary* bx = NULL;
        FXT_ERR(faiss_index_binary_factory(&bx, 64, bzero[i]), "parameter 0");
        cr_assert_null(bx);
    }
    /* hash keys are 64-bit: wider hashes are refused (faiss does not) */
    FaissIndexBinary* bx = NULL;
    FXT_ERR(faiss_index_binary_factory(&bx, 128, "BHash65"), "bits");
    FXT_ERR(faiss_index_binary_factory(&bx, 256, "BHash2x70"), "bits");
    FXT_ERR(faiss_index_binary_factory(&bx, 32, "BHash40"), "bits");
    FXT_ERR(faiss_index_binary_factory(&bx, 64, "BHash2x40"), "bits");
    FXT_ERR(faiss_index_binary_factory(&bx, 64, "BHash3x24"), "bits");
    cr_assert_null(bx);
    FXT_OK(faiss_index_binary_factory(&bx, 128, "BHash64"));
    faiss_IndexBinary_free(bx);
}

Test(factory, argument_errors) {
    FaissIndex* ix = NULL;
    FXT_ERR(faiss_index_factory(&ix, 0, "Flat", METRIC_L2), "");
    FXT_ERR(faiss_index_factory(&ix, -4, "Flat", METRIC_L2), "");
    FXT_ERR(faiss_index_factory(&ix, 8, "Flat", (FaissMetricType)99),
            "metric");
    FXT_ERR(faiss_index_factory(&ix, 8, "Flat", (FaissMetricType)-1),
            "metric");
    FXT_ERR(faiss_index_factory(&ix, 8, "Flat", (FaissMetricType)5),
            "metric");
    FXT_ERR(faiss_index_factory(&ix, 8, NULL, METRIC_L2), "NULL");
    FXT_ERR(faiss_index_factory(&ix, 8, "", METRIC_L2), "empty");
    FXT_ERR(faiss_index_factory(NULL, 8, "Flat", METRIC_L2), "NULL");
    cr_assert_null(ix);
    /* every metric faiss knows is accepted */
    const int metrics[] = {METRIC_INNER_PRODUCT, METRIC_L2,
                           METRIC_L1,            METRIC_Linf,
                           METRIC_Lp,            METRIC_Canberra,
                           METRIC_BrayCurtis,    METRIC_JensenShannon};
    for (size_t i = 0; i < sizeof metrics / sizeof *metrics; i++) {
        FXT_OK(faiss_index_factory(&ix, 8, "Flat", metrics[i]));
        cr_assert_eq(faiss_Index_metric_type(ix), metrics[i]);
        faiss_Index_free(ix);
    }
}

/* ---- clone_index ------------------------------------------------------ */

static const Entry CLONABLE[] = {
        {"Flat", METRIC_L2, NULL},
        {"Flat", METRIC_INNER_PRODUCT, NULL},
        {"IVF32,Flat", METRIC_L2, "nprobe=4"},
        {"IVF32,SQ8", METRIC_L2, "nprobe=4"},
        {"IVF32,PQ8np", METRIC_L2, "nprobe=4"},
        {"IVF32_HNSW8,Flat", METRIC_L2, "nprobe=4"},
        {"PQ8np", METRIC_L2, NULL},
        {"SQ8", METRIC_L2, NULL},
        {"SQfp16", METRIC_INNER_PRODUCT, NULL},
        {"LSH", METRIC_L2, NULL},
        {"HNSW16", METRIC_L2, NULL},
        {"HNSW16,SQ8", METRIC_L2, NULL},
        {"PCA16,IVF16,Flat", METRIC_L2, "nprobe=4"},
        {"RR32,PCA16,Flat", METRIC_L2, NULL},
        {"IDMap,Flat", METRIC_L2, NULL},
        {"IDMap2,Flat", METRIC_L2, NULL},
        {"IDMap,HNSW16", METRIC_L2, NULL},
        {"RQ2x4", METRIC_L2, NULL},
};

Test(factory, clones_search_identically_and_are_independent,
     .timeout = 300) {
    Data s = data();
    float D1[NQ * K], D2[NQ * K], Do[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K], Io[NQ * K];
    idx_t more_ids[100];
    for (int i = 0; i < 100; i++) more_ids[i] = 500000 + i;
    for (size_t i = 0; i < sizeof CLONABLE / sizeof *CLONABLE; i++) {
        const Entry* e = &CLONABLE[i];
        FaissIndex* ix = build(e, &s);
        FXT_OK(faiss_Index_search(ix, NQ, s.xq, K, D1, I1));
        search_oracle(e, &s, Do, Io);
        same_results(D1, I1, Do, Io, e->desc);

        FaissIndex* c = NULL;
        FXT_OK(faiss_clone_index(ix, &c));
        cr_assert_not_null(c);
        cr_assert_neq(c, ix);
        cr_assert_eq(faiss_Index_ntotal(c), NB);
        cr_assert_eq(faiss_Index_d(c), D);
        cr_assert_eq(faiss_Index_metric_type(c), e->metric);
        FXT_OK(faiss_Index_search(c, NQ, s.xq, K, D2, I2));
        same_results(D1, I1, D2, I2, e->desc);

        /* changing the clone leaves the original alone */
        if (is_idmap(e->desc))
            FXT_OK(faiss_Index_add_with_ids(c, 100, s.xt, more_ids));
        else
            FXT_OK(faiss_Index_add(c, 100, s.xt));
        cr_assert_eq(faiss_Index_ntotal(c), NB + 100);
        FXT_OK(faiss_Index_reset(c));
        cr_assert_eq(faiss_Index_ntotal(c), 0);
        cr_assert_eq(faiss_Index_ntotal(ix), NB, "%s", e->desc);
        FXT_OK(faiss_Index_search(ix, NQ, s.xq, K, D2, I2));
        same_results(D1, I1, D2, I2, e->desc);
        faiss_Index_free(c);
        /* and freeing it too */
        FXT_OK(faiss_Index_search(ix, NQ, s.xq, K, D2, I2));
        same_results(D1, I1, D2, I2, e->desc);

        /* a clone of the clone is still a faithful copy */
        FaissIndex *c1 = NULL, *c2 = NULL;
        FXT_OK(faiss_clone_index(ix, &c1));
        FXT_OK(faiss_clone_index(c1, &c2));
        faiss_Index_free(c1);
        FXT_OK(faiss_Index_search(c2, NQ, s.xq, K, D2, I2));
        same_results(D1, I1, D2, I2, e->desc);
        faiss_Index_free(c2);
        faiss_Index_free(ix);
    }
    data_free(&s);
}

/* A clone of an untrained index trains to the same result. */
Test(factory, clone_before_training) {
    Data s = data();
    const Entry e = {"IVF32,SQ8", METRIC_L2, NULL};
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, e.desc, e.metric));
    FaissIndex* c = NULL;
    FXT_OK(faiss_clone_index(ix, &c));
    cr_assert_not(faiss_Index_is_trained(c));
    faiss_Index_free(ix);
    FXT_OK(faiss_Index_train(c, NT, s.xt));
    FXT_OK(faiss_Index_add(c, NB, s.xb));
    float D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    FXT_OK(faiss_Index_search(c, NQ, s.xq, K, D1, I1));
    search_oracle(&e, &s, D2, I2);
    same_results(D1, I1, D2, I2, "clone trained later");
    faiss_Index_free(c);
    data_free(&s);
}

/* faiss 1.7.3 cannot clone these: the error names the problem. */
Test(factory, unclonable_indexes_fail_clearly) {
    const char* descs[] = {"IVF32,PQ8x4fs", "PQ8x4fs",   "Flat,RFlat",
                           "PQ8np,RFlat",   "ITQ32,LSHt", "L2norm,Flat",
                           "LSQ2x4",        "IVF32,RQ2x4"};
    for (size_t i = 0; i < sizeof descs / sizeof *descs; i++) {
        FaissIndex* ix = NULL;
        FXT_OK(faiss_index_factory(&ix, D, descs[i], METRIC_L2));
        FaissIndex* c = NULL;
        FXT_ERR(faiss_clone_index(ix, &c), "not supported");
        cr_assert_null(c, "%s", descs[i]);
        faiss_Index_free(ix);
    }
    FaissIndexShards* sh = NULL;
    FXT_OK(faiss_IndexShards_new(&sh, D));
    FaissIndex* c = NULL;
    FXT_ERR(faiss_clone_index((FaissIndex*)sh, &c), "not supported");
    faiss_IndexShards_free(sh);
    FXT_ERR(faiss_clone_index(NULL, &c), "NULL");
    FaissIndex* f = NULL;
    FXT_OK(faiss_index_factory(&f, D, "Flat", METRIC_L2));
    FXT_ERR(faiss_clone_index(f, NULL), "NULL");
    faiss_Index_free(f);
}

/* faiss 1.7.3 dereferences the (NULL) graph of an NSG index that has not
 * been built: the C API refuses instead of crashing. Once built, it
 * clones. */
Test(factory, unbuilt_nsg_is_not_cloned) {
    Data s = data();
    const char* descs[] = {"NSG16,Flat", "IDMap,NSG16,Flat",
                           "PCA16,NSG16,Flat"};
    for (size_t i = 0; i < sizeof descs / sizeof *descs; i++) {
        FaissIndex* ix = NULL;
        FXT_OK(faiss_index_factory(&ix, D, descs[i], METRIC_L2));
        FaissIndex* c = NULL;
        FXT_ERR(faiss_clone_index(ix, &c), "NSG");
        cr_assert_null(c);
        faiss_Index_free(ix);
    }
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, "NSG16,Flat", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, NB, s.xb));
    FaissIndex* c = NULL;
    FXT_OK(faiss_clone_index(ix, &c));
    cr_assert_eq(faiss_Index_ntotal(c), NB);
    float D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    FXT_OK(faiss_Index_search(ix, NQ, s.xq, K, D1, I1));
    FXT_OK(faiss_Index_search(c, NQ, s.xq, K, D2, I2));
    same_results(D1, I1, D2, I2, "built NSG clone");
    /* NSG cannot grow; the refusal is faiss's, with a message */
    FXT_ERR(faiss_Index_add(c, 10, s.xt), "");
    cr_assert_eq(faiss_Index_ntotal(ix), NB);
    faiss_Index_free(c);
    faiss_Index_free(ix);
    data_free(&s);
}

/* An IVF index whose lists are mapped from a file (FAISS_IO_FLAG_MMAP). */
Test(factory, clone_of_mmapped_ivf) {
    Data s = data();
    const Entry e = {"IVF32,Flat", METRIC_L2, NULL};
    FaissIndex* ix = build(&e, &s);
    const char* p = fxt_tmp_path("clone-mmap.index");
    FXT_OK(faiss_write_index_fname(ix, p));
    FaissIndex* m = NULL;
    FXT_OK(faiss_read_index_fname(p, FAISS_IO_FLAG_MMAP, &m));
    FaissIndex* c = NULL;
    FXT_ERR(faiss_clone_index(m, &c), "not supported");
    cr_assert_null(c);
    faiss_Index_free(m);
    faiss_Index_free(ix);
    data_free(&s);
}

/* faiss 1.7.3's own clone of an HNSW index is a plain IndexHNSW that
 * cannot be written; the C API's clone keeps the exact type, so the clone
 * round-trips through a file like the original. */
Test(factory, hnsw_clones_can_be_written) {
    Data s = data();
    const Entry es[] = {{"HNSW16", METRIC_L2, NULL},
                        {"HNSW16,SQ8", METRIC_L2, NULL},
                        {"IDMap,HNSW16", METRIC_L2, NULL},
                        {"IVF32_HNSW8,Flat", METRIC_L2, "nprobe=4"}};
    const char* p = fxt_tmp_path("hnsw-clone.index");
    float D1[NQ * K], D2[NQ * K];
    idx_t I1[NQ * K], I2[NQ * K];
    for (size_t i = 0; i < 4; i++) {
        FaissIndex* ix = build(&es[i], &s);
        FaissIndex* c = NULL;
        FXT_OK(faiss_clone_index(ix, &c));
        FXT_OK(faiss_write_index_fname(c, p));
        FaissIndex* r = NULL;
        FXT_OK(faiss_read_index_fname(p, 0, &r));
        FXT_OK(faiss_Index_search(ix, NQ, s.xq, K, D1, I1));
        FXT_OK(faiss_Index_search(r, NQ, s.xq, K, D2, I2));
        same_results(D1, I1, D2, I2, es[i].desc);
        faiss_Index_free(r);
        faiss_Index_free(c);
        faiss_Index_free(ix);
    }
    data_free(&s);
}
