/* c_ivfsq_linkage.c -- faiss_IndexIVFScalarQuantizer_new and _new_with
 * called from C.
 *
 * Upstream 1.7.3 defines no faiss_IndexIVFScalarQuantizer_new at all and
 * compiles _new_with with C++ linkage (a mangled symbol), so this program
 * fails to link against upstream's libfaiss_c. */
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/IndexScalarQuantizer_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            const char* m_ = faiss_get_last_error();                      \
            fprintf(stderr, "%s:%d: %s failed (%s)\n", __FILE__, __LINE__, \
                    #cond, m_ ? m_ : "no message");                        \
            return 1;                                                     \
        }                                                                 \
    } while (0)

int main(void) {
    FaissIndexIVFScalarQuantizer* a = NULL;
    CHECK(faiss_IndexIVFScalarQuantizer_new(&a) == 0);
    CHECK(a != NULL);
    CHECK(faiss_IndexIVFScalarQuantizer_cast((FaissIndex*)a) == a);
    faiss_IndexIVFScalarQuantizer_free(a);

    enum { D = 8, NB = 400, NLIST = 4 };
    FaissIndexFlatL2* q = NULL;
    CHECK(faiss_IndexFlatL2_new_with(&q, D) == 0);
    FaissIndexIVFScalarQuantizer* b = NULL;
    CHECK(faiss_IndexIVFScalarQuantizer_new_with(&b, (FaissIndex*)q, D,
                                                 NLIST, QT_8bit) == 0);
    CHECK(b != NULL);
    CHECK(faiss_Index_d((FaissIndex*)b) == D);
    CHECK(faiss_Index_metric_type((FaissIndex*)b) == METRIC_L2);
    CHECK(faiss_IndexIVFScalarQuantizer_nlist(b) == NLIST);
    CHECK(faiss_IndexIVFScalarQuantizer_quantizer(b) == (FaissIndex*)q);

    float* x = malloc(sizeof(float) * NB * D);
    CHECK(x != NULL);
    unsigned s = 12345;
    for (int i = 0; i < NB * D; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)((s >> 8) & 0xffff) / 65536.0f;
    }
    CHECK(faiss_Index_train((FaissIndex*)b, NB, x) == 0);
    CHECK(faiss_Index_add((FaissIndex*)b, NB, x) == 0);
    CHECK(faiss_Index_ntotal((FaissIndex*)b) == NB);
    faiss_IndexIVFScalarQuantizer_set_nprobe(b, NLIST);
    float dis[3];
    idx_t lab[3];
    CHECK(faiss_Index_search((FaissIndex*)b, 1, x + 7 * D, 3, dis, lab) == 0);
    CHECK(lab[0] == 7); /* a stored vector finds itself with every list */

    faiss_IndexIVFScalarQuantizer_free(b); /* does not own the quantizer */
    faiss_IndexFlatL2_free(q);
    free(x);
    puts("IndexIVFScalarQuantizer constructors have C linkage");
    return 0;
}
