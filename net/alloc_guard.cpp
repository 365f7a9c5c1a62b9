/* alloc_guard.cpp -- faissx-server's replacement of the global operator
 * new / delete, which enforces AllocBudget (net/alloc_budget.h) on the
 * thread that parses an uploaded index. Linked into the server executable
 * only: a library must not replace a program's allocator.
 *
 * Outside a budget the cost is one thread-local load per call before
 * malloc / free (bench/bench_upload_guard.cpp measures it). Semantics are
 * the standard ones: new loops on the new-handler and throws
 * std::bad_alloc; the nothrow forms return NULL; aligned forms use
 * aligned_alloc; every delete form frees with free(). */
#include "net/alloc_budget.h"

#include <cstdlib>
#include <new>

namespace {

using fx::alloc_hook::tl_state;

void* allocate(std::size_t size, std::size_t align) {
    if (size == 0) size = 1;
    if (tl_state && !fx::alloc_hook::admit(size)) return nullptr;
    for (;;) {
        void* p;
        if (align <= alignof(std::max_align_t)) {
            p = std::malloc(size);
        } else {
            std::size_t rounded = (size + align - 1) / align * align;
            p = rounded < size ? nullptr : std::aligned_alloc(align, rounded);
        }
        if (p) {
            if (tl_state) fx::alloc_hook::track(p, size);
            return p;
        }
        std::new_handler h = std::get_new_handler();
        if (!h) return nullptr;
        h();
    }
}

void release(void* p) noexcept {
    if (tl_state) fx::alloc_hook::untrack(p);
    std::free(p);
}

void* or_throw(void* p) {
    if (!p) throw std::bad_alloc();
    return p;
}

struct Announce {
    Announce() { fx::alloc_hook::set_installed(); }
} announce;

} // namespace

void* operator new(std::size_t n) { return or_throw(allocate(n, 0)); }
void* operator new[](std::size_t n) { return or_throw(allocate(n, 0)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return allocate(n, 0);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return allocate(n, 0);
    } catch (...) {
        return nullptr;
    }
}
void* operator new(std::size_t n, std::align_val_t a) {
    return or_throw(allocate(n, (std::size_t)a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return or_throw(allocate(n, (std::size_t)a));
}
void* operator new(std::size_t n, std::align_val_t a,
                   const std::nothrow_t&) noexcept {
    try {
        return allocate(n, (std::size_t)a);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, std::align_val_t a,
                     const std::nothrow_t&) noexcept {
    try {
        return allocate(n, (std::size_t)a);
    } catch (...) {
        return nullptr;
    }
}

void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    release(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    release(p);
}
void operator delete[](void* p, std::align_val_t,
                       const std::nothrow_t&) noexcept {
    release(p);
}
