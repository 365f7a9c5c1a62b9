/* example_c.c -- an ordinary FAISS C program, built against faissx.
 *
 * It builds an IVF index over clustered vectors, searches it, saves it to
 * disk, reads it back and checks the reloaded index answers identically;
 * then keeps a flat index of vectors under its own ids. Nothing here is
 * faissx-specific: the same file builds against upstream's libfaiss_c.
 *
 *   cc example_c.c $(pkg-config --cflags --libs faiss_c) -o example_c
 *   ./example_c [index-file]
 */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                         \
    do {                                                                    \
        if ((call) != 0) {                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__,   \
                    #call, faiss_get_last_error());                         \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

enum { D = 64, NB = 20000, NT = 10000, NQ = 5, K = 4, NCENTRES = 100 };

static unsigned long long rng = 42;
static float frand(void) { /* xorshift64*, uniform in [0, 1) */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ULL) >> 40) / 16777216.0f;
}

/* Vectors scattered around NCENTRES random centres: like real embeddings,
 * and unlike uniform noise, they have neighbourhoods worth indexing. */
static float* clustered(int n, const float* centres) {
    float* x = malloc(sizeof(float) * n * D);
    for (int i = 0; i < n; i++) {
        const float* c = centres + (rand() % NCENTRES) * D;
        for (int j = 0; j < D; j++) x[i * D + j] = c[j] + 0.05f * (frand() - 0.5f);
    }
    return x;
}

static void print_results(const char* title, const idx_t* I, const float* Dist) {
    printf("%s\n", title);
    for (int q = 0; q < NQ; q++) {
        printf("  query %d:", q);
        for (int j = 0; j < K; j++)
            printf("  %6lld (%.4f)", (long long)I[q * K + j], Dist[q * K + j]);
        printf("\n");
    }
}

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "example_ivf.faiss";
    srand(7);
    float* centres = malloc(sizeof(float) * NCENTRES * D);
    for (int i = 0; i < NCENTRES * D; i++) centres[i] = frand();
    float* xt = clustered(NT, centres);
    float* xb = clustered(NB, centres);
    float* xq = clustered(NQ, centres);

    /* 1. An IVF index from the factory: train, add, search. */
    FaissIndex* index = NULL;
    CHECK(faiss_index_factory(&index, D, "IVF64,Flat", METRIC_L2));
    printf("built IVF64,Flat: d=%d trained=%d\n", faiss_Index_d(index),
           faiss_Index_is_trained(index));
    CHECK(faiss_Index_train(index, NT, xt));
    CHECK(faiss_Index_add(index, NB, xb));
    printf("trained and added %lld vectors\n", (long long)faiss_Index_ntotal(index));

    FaissParameterSpace* ps = NULL;
    CHECK(faiss_ParameterSpace_new(&ps));
    CHECK(faiss_ParameterSpace_set_index_parameter(ps, index, "nprobe", 8));
    faiss_ParameterSpace_free(ps);

    idx_t I[NQ * K], I2[NQ * K], Ie[NQ * K];
    float Dist[NQ * K], Dist2[NQ * K], De[NQ * K];
    CHECK(faiss_Index_search(index, NQ, xq, K, Dist, I));
    print_results("IVF search (nprobe=8):", I, Dist);

    /* The exact answer, for comparison. */
    FaissIndexFlatL2* exact = NULL;
    CHECK(faiss_IndexFlatL2_new_with(&exact, D));
    CHECK(faiss_Index_add(exact, NB, xb));
    CHECK(faiss_Index_search(exact, NQ, xq, K, De, Ie));
    int agree = 0;
    for (int q = 0; q < NQ; q++) agree += I[q * K] == Ie[q * K];
    printf("nearest neighbour agrees with exact search for %d/%d queries\n", agree, NQ);

    /* 2. Persist, reload, and check the reloaded index answers the same. */
    CHECK(faiss_write_index_fname(index, path));
    FaissIndex* loaded = NULL;
    CHECK(faiss_read_index_fname(path, 0, &loaded));
    FaissIndexIVF* ivf = faiss_IndexIVF_cast(loaded);
    if (!ivf) {
        fprintf(stderr, "reloaded index is not an IVF index\n");
        return 1;
    }
    faiss_IndexIVF_set_nprobe(ivf, 8);
    CHECK(faiss_Index_search(loaded, NQ, xq, K, Dist2, I2));
    int same = memcmp(I, I2, sizeof I) == 0 && memcmp(Dist, Dist2, sizeof Dist) == 0;
    printf("wrote %s and read it back: %lld vectors, results %s\n", path,
           (long long)faiss_Index_ntotal(loaded), same ? "identical" : "DIFFERENT");

    /* 3. Vectors under the caller's own ids. */
    FaissIndexFlatL2* flat = NULL;
    FaissIndexIDMap* idmap = NULL;
    CHECK(faiss_IndexFlatL2_new_with(&flat, D));
    CHECK(faiss_IndexIDMap_new(&idmap, flat));
    faiss_IndexIDMap_set_own_fields(idmap, 1); /* freeing idmap frees flat */
    idx_t ids[3] = {1001, 2002, 3003};
    CHECK(faiss_Index_add_with_ids(idmap, 3, xb, ids));
    idx_t l[1];
    float dd[1];
    CHECK(faiss_Index_search(idmap, 1, xb + D, 1, dd, l));
    printf("IDMap: vector stored under id 2002 found as id %lld at distance %.1f\n",
           (long long)l[0], dd[0]);

    /* 4. A bad call fails cleanly, with a message. */
    if (faiss_Index_search(index, NQ, xq, 0, Dist, I) != 0)
        printf("k = 0 refused: %s\n", faiss_get_last_error());

    int ok = same && l[0] == 2002 && agree >= NQ - 1;
    faiss_Index_free(idmap);
    faiss_Index_free(loaded);
    faiss_Index_free(exact);
    faiss_Index_free(index);
    free(xt);
    free(xb);
    free(xq);
    free(centres);
    printf(ok ? "example: OK\n" : "example: FAILED\n");
    return ok ? 0 : 1;
}
