/* test_autotune.c -- AutoTune_c.h (ParameterSpace, ParameterRange) against
 * faiss C++.
 *
 * The 1.7.3 C API has no ParameterSpace_initialize, so a space made in C
 * only ever holds ranges it created with add_range, whose value lists are
 * empty (and cannot grow through the C API). To exercise the enumeration
 * calls on real ranges the tests fill a C-made space with faiss's own
 * initialize() through the white-box oracle, then compare every
 * combination with a space initialized in pure C++. */
#include "common.h"
#include "oracle.h"
#include "oracle_autotune.h"

#include <math.h>
#include <stdlib.h>

#define ORC(call)                                                          \
    cr_assert_eq((call), 0, "oracle %s failed: %s%s", #call,               \
                 oracle_autotune_error(), oracle_last_error())

enum { D = 16, NB = 2000, NQ = 20, K = 10 };

static FaissIndex* make_trained(const char* factory, const float* xb) {
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, factory, METRIC_L2));
    FXT_OK(faiss_Index_train(ix, NB, xb));
    FXT_OK(faiss_Index_add(ix, NB, xb));
    return ix;
}

/* C search vs the same index built in C++ with `params` applied by faiss's
 * ParameterSpace. */
static void search_matches(FaissIndex* ix, const char* factory,
                           const float* xb, const float* xq,
                           const char* params) {
    float D_[NQ * K], Dr[NQ * K];
    idx_t I[NQ * K], Ir[NQ * K];
    FXT_OK(faiss_Index_search(ix, NQ, xq, K, D_, I));
    ORC(oracle_factory_search(factory, D, METRIC_L2, NB, xb, NB, xb, NULL,
                              params, NQ, xq, K, Dr, Ir));
    FXT_SAME(I, Ir, sizeof I);
    FXT_SAME(D_, Dr, sizeof D_);
}

/* ---- a fresh space ---------------------------------------------------- */

Test(autotune, fresh_space_matches_cpp) {
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    cr_assert_not_null(ps);
    size_t nr = 0;
    char ref[64] = "unset";
    ORC(oracle_ps_fresh(0, &nr, ref, sizeof ref));
    /* an empty product: one combination, the empty name */
    cr_assert_eq(faiss_ParameterSpace_n_combinations(ps), nr);
    cr_assert_eq(nr, 1);
    char name[64];
    memset(name, 'x', sizeof name);
    FXT_OK(faiss_ParameterSpace_combination_name(ps, 0, name, sizeof name));
    cr_assert_str_eq(name, ref);
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, 1, name, sizeof name),
            "outside");
    /* the empty combination sets nothing and is accepted */
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 1);
    FaissIndex* ix = make_trained("IVF16,Flat", xb);
    FXT_OK(faiss_ParameterSpace_set_index_parameters_cno(ps, ix, 0));
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 1);
    faiss_ParameterSpace_display(ps);
    faiss_Index_free(ix);
    faiss_ParameterSpace_free(ps);
    faiss_ParameterSpace_free(NULL);
    free(xb);
}

/* ---- add_range -------------------------------------------------------- */

Test(autotune, add_range_creates_an_empty_range) {
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    FaissParameterRange* r = NULL;
    FXT_OK(faiss_ParameterSpace_add_range(ps, "nprobe", &r));
    cr_assert_not_null(r);
    cr_assert_str_eq(faiss_ParameterRange_name(r), "nprobe");
    double* v = (double*)1;
    size_t n = 99;
    faiss_ParameterRange_values(r, &v, &n);
    cr_assert_eq(n, 0, "a new range has no values");
    /* one empty range makes the product empty, as in C++ */
    cr_assert_eq(faiss_ParameterSpace_n_combinations(ps), 0);
    char name[32];
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, 0, name, sizeof name),
            "outside");
    /* adding an existing name returns that range (faiss semantics) */
    FaissParameterRange* r2 = NULL;
    FXT_OK(faiss_ParameterSpace_add_range(ps, "nprobe", &r2));
    cr_assert_eq(r2, r);
    /* the out-parameter is optional */
    FXT_OK(faiss_ParameterSpace_add_range(ps, "efSearch", NULL));
    FXT_OK(faiss_ParameterSpace_add_range(ps, "efSearch", &r2));
    cr_assert_str_eq(faiss_ParameterRange_name(r2), "efSearch");
    /* errors */
    FXT_ERR(faiss_ParameterSpace_add_range(NULL, "x", &r2), "NULL");
    FXT_ERR(faiss_ParameterSpace_add_range(ps, NULL, &r2), "NULL");
    cr_assert_null(faiss_ParameterRange_name(NULL));
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    v = (double*)1;
    n = 5;
    faiss_ParameterRange_values(NULL, &v, &n);
    cr_assert_null(v);
    cr_assert_eq(n, 0);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    faiss_ParameterSpace_free(ps);
}

/* ---- enumeration after faiss's initialize ----------------------------- */

static void enumeration_matches(const char* factory) {
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 2);
    FaissIndex* ix = make_trained(factory, xb);
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    ORC(oracle_ps_initialize_handle(ps, ix));
    size_t n = faiss_ParameterSpace_n_combinations(ps);
    size_t nr = 0;
    char ref[256], name[256];
    ORC(oracle_ps_initialized(factory, D, NB, xb, 0, &nr, ref, sizeof ref));
    cr_assert_eq(n, nr, "%s: %zu combinations, C++ %zu", factory, n, nr);
    cr_assert_gt(n, 1, "%s: initialize found no parameters", factory);
    for (size_t c = 0; c < n; c++) {
        ORC(oracle_ps_initialized(factory, D, NB, xb, c, &nr, ref,
                                  sizeof ref));
        FXT_OK(faiss_ParameterSpace_combination_name(ps, c, name,
                                                     sizeof name));
        cr_assert_str_eq(name, ref, "%s combination %zu", factory, c);
    }
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, n, name, sizeof name),
            "outside");
    faiss_ParameterSpace_display(ps);
    faiss_ParameterSpace_free(ps);
    faiss_Index_free(ix);
    free(xb);
}

Test(autotune, enumeration_ivf_matches_cpp) {
    FXT_LOCAL_ONLY("enumerates or reads parameters on the local faiss object");
    enumeration_matches("IVF16,Flat");
}

Test(autotune, enumeration_hnsw_matches_cpp) {
    FXT_LOCAL_ONLY("enumerates or reads parameters on the local faiss object");
    enumeration_matches("HNSW16");
}

/* Values edited through the pointer drive the names and set_*_cno. */
Test(autotune, range_values_are_live) {
    FXT_LOCAL_ONLY("enumerates or reads parameters on the local faiss object");
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 3);
    float* xq = fxt_clustered(NQ, D, 20, 0.05f, 4);
    FaissIndex* ix = make_trained("IVF16,Flat", xb);
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    ORC(oracle_ps_initialize_handle(ps, ix));
    FaissParameterRange* r = NULL;
    FXT_OK(faiss_ParameterSpace_add_range(ps, "nprobe", &r));
    cr_assert_str_eq(faiss_ParameterRange_name(r), "nprobe");
    double* v = NULL;
    size_t n = 0;
    faiss_ParameterRange_values(r, &v, &n);
    cr_assert_eq(n, faiss_ParameterSpace_n_combinations(ps),
                 "nprobe is the only IVF16,Flat parameter");
    cr_assert_gt(n, 2);
    cr_assert_not_null(v);
    /* each cno sets nprobe = values[cno] */
    for (size_t c = 0; c < n; c++) {
        FXT_OK(faiss_ParameterSpace_set_index_parameters_cno(ps, ix, c));
        cr_assert_eq((double)faiss_IndexIVF_nprobe(ix), v[c]);
    }
    v[1] = 3;
    v[2] = 5;
    char name[64];
    FXT_OK(faiss_ParameterSpace_combination_name(ps, 1, name, sizeof name));
    cr_assert_str_eq(name, "nprobe=3");
    FXT_OK(faiss_ParameterSpace_set_index_parameters_cno(ps, ix, 2));
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 5);
    search_matches(ix, "IVF16,Flat", xb, xq, "nprobe=5");
    FXT_OK(faiss_ParameterSpace_set_index_parameters_cno(ps, ix, 1));
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 3);
    search_matches(ix, "IVF16,Flat", xb, xq, "nprobe=3");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters_cno(ps, ix, n),
            "outside");
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 3, "failed call changed nprobe");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters_cno(ps, ix, (size_t)-1),
            "outside");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters_cno(NULL, ix, 0),
            "NULL");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters_cno(ps, NULL, 0),
            "NULL");
    faiss_ParameterSpace_free(ps);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

/* ---- setting parameters by name --------------------------------------- */

Test(autotune, set_nprobe_on_ivf_matches_cpp) {
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 5);
    float* xq = fxt_clustered(NQ, D, 20, 0.05f, 6);
    FaissIndex* ix = make_trained("IVF16,Flat", xb);
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));

    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, ix, "nprobe=4"));
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 4);
    search_matches(ix, "IVF16,Flat", xb, xq, "nprobe=4");

    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, ix, "nprobe", 7));
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 7);
    search_matches(ix, "IVF16,Flat", xb, xq, "nprobe=7");

    /* the parameter matters: nprobe 1 and 16 give different results here,
     * and the C index follows the C++ one in both */
    float D1[NQ * K], D16[NQ * K];
    idx_t I1[NQ * K], I16[NQ * K];
    ORC(oracle_factory_search("IVF16,Flat", D, METRIC_L2, NB, xb, NB, xb,
                              NULL, "nprobe=1", NQ, xq, K, D1, I1));
    ORC(oracle_factory_search("IVF16,Flat", D, METRIC_L2, NB, xb, NB, xb,
                              NULL, "nprobe=16", NQ, xq, K, D16, I16));
    cr_assert(memcmp(I1, I16, sizeof I1) != 0,
              "test data too easy: nprobe has no effect");
    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, ix, "nprobe=1"));
    search_matches(ix, "IVF16,Flat", xb, xq, "nprobe=1");
    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, ix, "nprobe", 16));
    search_matches(ix, "IVF16,Flat", xb, xq, "nprobe=16");

    faiss_ParameterSpace_free(ps);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

Test(autotune, set_efsearch_on_hnsw_matches_cpp) {
    FXT_LOCAL_ONLY("enumerates or reads parameters on the local faiss object");
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 7);
    float* xq = fxt_uniform(NQ, D, 8);
    FaissIndex* ix = NULL;
    FXT_OK(faiss_index_factory(&ix, D, "HNSW16", METRIC_L2));
    FXT_OK(faiss_Index_add(ix, NB, xb));
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    int ef = 0;

    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, ix, "efSearch=32"));
    ORC(oracle_hnsw_efsearch(ix, &ef));
    cr_assert_eq(ef, 32);
    search_matches(ix, "HNSW16", xb, xq, "efSearch=32");

    FXT_OK(faiss_ParameterSpace_set_index_parameter(ps, ix, "efSearch", 10));
    ORC(oracle_hnsw_efsearch(ix, &ef));
    cr_assert_eq(ef, 10);
    search_matches(ix, "HNSW16", xb, xq, "efSearch=10");

    FXT_OK(faiss_ParameterSpace_set_index_parameters(ps, ix,
                                                     "efSearch=200"));
    ORC(oracle_hnsw_efsearch(ix, &ef));
    cr_assert_eq(ef, 200);
    search_matches(ix, "HNSW16", xb, xq, "efSearch=200");

    faiss_ParameterSpace_free(ps);
    faiss_Index_free(ix);
    free(xb);
    free(xq);
}

/* ---- errors ------------------------------------------------------------ */

Test(autotune, parameter_errors) {
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 9);
    FaissIndex* ix = make_trained("IVF16,Flat", xb);
    FaissIndex* flat = NULL;
    FXT_OK(faiss_IndexFlatL2_new_with(&flat, D));
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));

    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, ix, "nosuchparam",
                                                     3),
            "nosuchparam");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters(ps, ix,
                                                      "nosuchparam=3"),
            "nosuchparam");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters(ps, ix, "garbage"),
            "garbage");
    /* a real parameter the index does not have */
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, flat, "nprobe", 4),
            "nprobe");
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, ix, "efSearch", 4),
            "efSearch");
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, ix, "nprobe", NAN),
            "NaN");
    cr_assert_eq(faiss_IndexIVF_nprobe(ix), 1, "failed calls changed nprobe");
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(NULL, ix, "nprobe", 2),
            "NULL");
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, NULL, "nprobe", 2),
            "NULL");
    FXT_ERR(faiss_ParameterSpace_set_index_parameter(ps, ix, NULL, 2),
            "NULL");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters(NULL, ix, "nprobe=2"),
            "NULL");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters(ps, NULL, "nprobe=2"),
            "NULL");
    FXT_ERR(faiss_ParameterSpace_set_index_parameters(ps, ix, NULL), "NULL");
    FXT_ERR(faiss_ParameterSpace_new(NULL), "NULL");
    cr_assert_eq(faiss_ParameterSpace_n_combinations(NULL), 0);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));
    faiss_ParameterSpace_display(NULL);
    cr_assert(strstr(faiss_get_last_error(), "NULL"));

    faiss_ParameterSpace_free(ps);
    faiss_Index_free(flat);
    faiss_Index_free(ix);
    free(xb);
}

Test(autotune, combination_name_small_buffer_truncates) {
    FXT_LOCAL_ONLY("enumerates or reads parameters on the local faiss object");
    float* xb = fxt_clustered(NB, D, 20, 0.05f, 10);
    FaissIndex* ix = make_trained("IVF16,Flat", xb);
    FaissParameterSpace* ps = NULL;
    FXT_OK(faiss_ParameterSpace_new(&ps));
    ORC(oracle_ps_initialize_handle(ps, ix));
    size_t n = faiss_ParameterSpace_n_combinations(ps);
    cr_assert_gt(n, 0);
    char full[64];
    FXT_OK(faiss_ParameterSpace_combination_name(ps, n - 1, full,
                                                 sizeof full));
    size_t len = strlen(full);
    cr_assert_gt(len, 5);
    /* exactly enough room */
    char* exact = malloc(len + 1);
    FXT_OK(faiss_ParameterSpace_combination_name(ps, n - 1, exact, len + 1));
    cr_assert_str_eq(exact, full);
    free(exact);
    /* one byte short: error, but a truncated NUL-terminated prefix */
    char small[64];
    memset(small, 'x', sizeof small);
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, n - 1, small, len),
            "too small");
    cr_assert_eq(small[len - 1], '\0');
    cr_assert_eq(strncmp(small, full, len - 1), 0);
    cr_assert_eq(small[len], 'x', "wrote past the buffer");
    memset(small, 'x', sizeof small);
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, n - 1, small, 5),
            "too small");
    cr_assert_eq(small[4], '\0');
    cr_assert_eq(strncmp(small, full, 4), 0);
    cr_assert_eq(small[5], 'x');
    memset(small, 'x', sizeof small);
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, n - 1, small, 1),
            "too small");
    cr_assert_eq(small[0], '\0');
    /* nothing fits in 0 bytes: untouched */
    memset(small, 'x', sizeof small);
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, n - 1, small, 0), "0");
    cr_assert_eq(small[0], 'x');
    FXT_ERR(faiss_ParameterSpace_combination_name(ps, 0, NULL, 10), "NULL");
    FXT_ERR(faiss_ParameterSpace_combination_name(NULL, 0, small, 10),
            "NULL");
    faiss_ParameterSpace_free(ps);
    faiss_Index_free(ix);
    free(xb);
}
