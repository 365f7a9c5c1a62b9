/* hugepages.cpp -- transparent huge pages for large index arrays.
 *
 * A flat index scans its whole code array for every query batch, and
 * filling it faults in every page once. With 2 MiB pages both need 512
 * times fewer TLB entries and page faults. Where the kernel's THP mode is
 * "madvise" (Debian's default) only memory marked MADV_HUGEPAGE gets them,
 * and only when a page is first touched: khugepaged collapses pages that
 * are already there slowly (one scan per 10 s by default). So faissx marks
 * a big array right after allocating it and before filling it: the
 * allocation goes through reserve_huge, which copies the old contents
 * into the new, advised buffer itself. The contents are the same bytes
 * either way; only their placement changes. FAISSX_HUGEPAGES=0 turns it
 * off (docs/api.md, "Huge pages"). */
#include "core/bridge.h"

#include "net/client.h"

#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexPreTransform.h>

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <strings.h>

namespace fx {

namespace {

constexpr uintptr_t kHuge = (uintptr_t)2 << 20;

/* FAISSX_HUGEPAGES read at each use (it guards allocations of 32 MiB and
 * more, next to which a getenv costs nothing), so a program may change
 * it between calls. A malformed value is reported once and leaves the
 * default (on). */
bool wanted() {
    const char* v = std::getenv("FAISSX_HUGEPAGES");
    if (!v || !*v) return true;
    static const char* const yes[] = {"1", "true", "yes", "on"};
    static const char* const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return true;
        if (!strcasecmp(v, no[i])) return false;
    }
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
        fx_clog(FAISSX_LOG_WARN,
                "FAISSX_HUGEPAGES='%s' ignored: expected 0/off/false/no or "
                "1/on/true/yes (huge pages stay on)", v);
    return true;
}

} // namespace

size_t hugepages_advise(const void* p, size_t n) {
    if (!p || n < kHugepagesMin || !wanted()) return 0;
    // Only whole 2 MiB pages inside the buffer: the pages around it may
    // belong to other allocations, which the advice must not reach.
    uintptr_t a = ((uintptr_t)p + kHuge - 1) & ~(kHuge - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(kHuge - 1);
    if (e <= a) return 0;
    // Placement only: a kernel without THP (EINVAL) or any other refusal
    // leaves the memory as it was, and the caller carries on.
    if (madvise((void*)a, e - a, MADV_HUGEPAGE) != 0) return 0;
    return e - a;
}

void reserve_huge(std::vector<uint8_t>& v, size_t need) {
    if (need <= v.capacity()) return;
    size_t cap = std::max(need, 2 * v.capacity());
    if (cap < kHugepagesMin || !wanted()) {
        v.reserve(cap);
        return;
    }
    // A fresh vector's reserve allocates without touching the memory
    // (uint8_t has nothing to construct), so the advice comes before any
    // page is faulted in; then the old bytes are copied over.
    std::vector<uint8_t> fresh;
    fresh.reserve(cap);
    hugepages_advise(fresh.data(), cap);
    fresh.insert(fresh.end(), v.begin(), v.end());
    v.swap(fresh);
}

namespace {

/* The flat code array that grows when vectors are added to ix, or NULL. */
faiss::IndexFlatCodes* codes_of(faiss::Index* ix) {
    for (int depth = 0; ix && depth < 8; depth++) {
        if (auto m = dynamic_cast<faiss::IndexIDMap*>(ix))
            ix = m->index;
        else if (auto t = dynamic_cast<faiss::IndexPreTransform*>(ix))
            ix = t->index;
        else if (auto h = dynamic_cast<faiss::IndexHNSW*>(ix))
            ix = h->storage;
        else
            return dynamic_cast<faiss::IndexFlatCodes*>(ix);
    }
    return nullptr;
}

} // namespace

void reserve_codes_for_add(faiss::Index* ix, idx n) {
    if (n <= 0) return;
    auto f = codes_of(ix);
    size_t need;
    // An impossible size is left to faiss's own add to refuse; small
    // arrays and FAISSX_HUGEPAGES=0 leave faiss's add as it is.
    if (f && f->ntotal >= 0 &&
        !__builtin_mul_overflow((size_t)f->ntotal + (size_t)n, f->code_size,
                                &need) &&
        need >= kHugepagesMin && wanted())
        reserve_huge(f->codes, need);
}

void hugepages_advise_codes(faiss::Index* ix) {
    if (auto f = codes_of(ix)) hugepages_advise(f->codes.data(), f->codes.size());
}

} // namespace fx
