/* c_ivfstats_O0.c -- a C program, built at -O0, that calls
 * faiss_IndexIVFStats_init.
 *
 * IndexIVF_c.h defines faiss_IndexIVFStats_init as a plain C99 `inline`
 * function. Unoptimised C does not inline it, and a C99 inline definition
 * emits no symbol, so the call needs an external definition from the
 * library; upstream 1.7.3's libfaiss_c has none and this program fails to
 * link against it. Linking (and the checks below) is the test. */
#include <faiss/c_api/IndexIVF_c.h>

#include <stdio.h>
#include <string.h>

#if defined(__OPTIMIZE__)
#error "this check must be compiled without optimisation (-O0)"
#endif

int main(void) {
    FaissIndexIVFStats st;
    memset(&st, 0xff, sizeof st);
    faiss_IndexIVFStats_init(&st);
    if (st.nq != 0 || st.nlist != 0 || st.ndis != 0 ||
        st.nheap_updates != 0 || st.quantization_time != 0.0 ||
        st.search_time != 0.0) {
        fprintf(stderr, "faiss_IndexIVFStats_init did not zero the stats\n");
        return 1;
    }
    /* the global statistics are reachable from C too */
    FaissIndexIVFStats* g = faiss_get_indexIVF_stats();
    if (!g) {
        fprintf(stderr, "faiss_get_indexIVF_stats returned NULL\n");
        return 1;
    }
    faiss_IndexIVFStats_init(g);
    if (g->nq != 0 || g->ndis != 0) {
        fprintf(stderr, "global stats not reset\n");
        return 1;
    }
    puts("faiss_IndexIVFStats_init links and works at -O0");
    return 0;
}
