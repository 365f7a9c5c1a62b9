/* faissx.h alone, as strict ISO C (c99, -Wpedantic -Werror). */
#include <faissx/faissx.h>

#include <stdio.h>

int main(void) {
    printf("faissx %s on faiss %s\n", faissx_version_string(),
           faiss_get_version());
    return faissx_version() > 0 ? 0 : 1;
}
