// faissx.h alone, as C++11 (-Wpedantic -Werror); calling through it proves
// the declarations have C linkage.
#include <faissx/faissx.h>

#include <cstdio>

int main() {
    std::printf("faissx %s on faiss %s\n", faissx_version_string(),
                faiss_get_version());
    return faissx_version() > 0 ? 0 : 1;
}
