/* c_distances_first.c -- utils/distances_c.h as the first include of a C
 * file.
 *
 * Upstream's header uses int64_t but includes only <stdlib.h>. With GNU
 * dialects (the default -std=gnu11 here) glibc's <stdlib.h> pulls in
 * <sys/types.h>, which defines int64_t, so the header compiles; under a
 * strict ISO mode (-std=c99/-std=c11) it does not. Include
 * <faissx/faissx.h> (or <stdint.h>) first in strict-mode code. */
#include <faiss/c_api/utils/distances_c.h>

#include <stdio.h>

int main(void) {
    const float x[4] = {1.0f, 2.0f, 2.0f, 4.0f};
    float n = faiss_fvec_norm_L2sqr(x, 4);
    if (n != 25.0f) {
        fprintf(stderr, "faiss_fvec_norm_L2sqr = %g, expected 25\n", n);
        return 1;
    }
    int64_t d = 2; /* the header's own type is usable */
    float dis[4];
    faiss_pairwise_L2sqr_with_defaults(d, 2, x, 2, x, dis);
    if (dis[0] != 0.0f || dis[3] != 0.0f || dis[1] != 5.0f) {
        fprintf(stderr, "faiss_pairwise_L2sqr_with_defaults: %g %g %g %g\n",
                dis[0], dis[1], dis[2], dis[3]);
        return 1;
    }
    puts("distances_c.h compiles first and works");
    return 0;
}
