/* alloc_budget.cpp -- AllocBudget (see alloc_budget.h): the thread-local
 * state behind the server's operator new (net/alloc_guard.cpp).
 *
 * The allocations made under a budget are kept in an open-addressing hash
 * table (linear probing, backward-shift deletion) whose own memory comes
 * from malloc, never from operator new, so the hooks do not recurse. */
#include "net/alloc_budget.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace fx {

namespace {

std::atomic<bool> g_installed{false};

struct Slot {
    void* p;
    size_t size;
};

struct Table {
    Slot* slots = nullptr;
    size_t cap = 0; /* a power of two, or 0 */
    size_t n = 0;

    static size_t hash(void* p, size_t cap) {
        uint64_t x = (uint64_t)(uintptr_t)p;
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        return (size_t)x & (cap - 1);
    }
    bool grow() {
        size_t ncap = cap ? cap * 2 : 1024;
        Slot* ns = static_cast<Slot*>(std::calloc(ncap, sizeof(Slot)));
        if (!ns) return false;
        for (size_t i = 0; i < cap; i++) {
            if (!slots[i].p) continue;
            size_t j = hash(slots[i].p, ncap);
            while (ns[j].p) j = (j + 1) & (ncap - 1);
            ns[j] = slots[i];
        }
        std::free(slots);
        slots = ns;
        cap = ncap;
        return true;
    }
    bool insert(void* p, size_t size) {
        if ((n + 1) * 2 > cap && !grow()) return false;
        size_t j = hash(p, cap);
        while (slots[j].p) j = (j + 1) & (cap - 1);
        slots[j] = Slot{p, size};
        n++;
        return true;
    }
    /* Removes p; returns its size, or SIZE_MAX if absent. */
    size_t erase(void* p) {
        if (!cap) return SIZE_MAX;
        size_t j = hash(p, cap);
        while (slots[j].p && slots[j].p != p) j = (j + 1) & (cap - 1);
        if (!slots[j].p) return SIZE_MAX;
        size_t size = slots[j].size;
        // Backward shift: pull later members of the probe run into the hole.
        size_t hole = j;
        for (size_t k = (j + 1) & (cap - 1); slots[k].p; k = (k + 1) & (cap - 1)) {
            size_t home = hash(slots[k].p, cap);
            bool movable = hole <= k ? (home <= hole || home > k)
                                     : (home <= hole && home > k);
            if (movable) {
                slots[hole] = slots[k];
                hole = k;
            }
        }
        slots[hole] = Slot{nullptr, 0};
        n--;
        return size;
    }
    void clear() {
        std::free(slots);
        slots = nullptr;
        cap = n = 0;
    }
};

enum { OFF = 0, ACTIVE = 1, DRAINING = 2 };

thread_local size_t tl_max_one, tl_max_total, tl_used, tl_refused;
thread_local bool tl_untrackable; /* the table could not grow: never free */
thread_local Table tl_table;

void stop() {
    alloc_hook::tl_state = OFF;
    tl_table.clear();
    tl_used = 0;
}

} // namespace

namespace alloc_hook {

thread_local int tl_state = OFF;

bool admit(size_t size) {
    if (tl_state != ACTIVE) return true;
    if (size > tl_max_one || size > tl_max_total - tl_used) {
        if (!tl_refused) tl_refused = size ? size : 1;
        return false;
    }
    return true;
}

void track(void* p, size_t size) {
    if (tl_state != ACTIVE || !p) return;
    tl_used += size;
    if (!tl_table.insert(p, size)) tl_untrackable = true;
}

void untrack(void* p) {
    if (tl_state == OFF || !p) return;
    size_t size = tl_table.erase(p);
    if (size != SIZE_MAX) tl_used -= size;
}

void set_installed() { g_installed = true; }

} // namespace alloc_hook

AllocBudget::AllocBudget(size_t max_one, size_t max_total) {
    stop(); // one budget per thread at a time
    tl_max_one = max_one;
    tl_max_total = max_total;
    tl_refused = 0;
    tl_untrackable = false;
    alloc_hook::tl_state = ACTIVE;
}

AllocBudget::~AllocBudget() {
    if (alloc_hook::tl_state != OFF) stop();
}

void AllocBudget::drain() {
    if (alloc_hook::tl_state == ACTIVE) alloc_hook::tl_state = DRAINING;
}

void AllocBudget::keep() { stop(); }

void AllocBudget::release_leftovers() {
    if (alloc_hook::tl_state == OFF) return;
    alloc_hook::tl_state = OFF; // the frees below are not hooked
    if (!tl_untrackable) {
        for (size_t i = 0; i < tl_table.cap; i++) {
            Slot s = tl_table.slots[i];
            if (!s.p) continue;
            released_ += s.size;
            std::free(s.p);
        }
    }
    stop();
}

size_t AllocBudget::refused() const { return tl_refused; }

bool alloc_guard_installed() { return g_installed; }

} // namespace fx
