/* faissx_version.h alone, as strict ISO C. */
#include <faissx/faissx_version.h>

#include <string.h>

int main(void) {
    return (FAISSX_VERSION_MAJOR >= 0 &&
            strlen(FAISSX_VERSION_STRING) >= 5) ? 0 : 1;
}
