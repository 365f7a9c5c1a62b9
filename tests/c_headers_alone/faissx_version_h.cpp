// faissx_version.h alone, as C++11.
#include <faissx/faissx_version.h>

#include <cstring>

int main() {
    return (FAISSX_VERSION_MAJOR >= 0 &&
            std::strlen(FAISSX_VERSION_STRING) >= 5) ? 0 : 1;
}
