/* alloc_budget.h -- internal: an allocation budget for parsing untrusted
 * faiss bytes (the server's UPLOAD).
 *
 * faiss 1.7.3's read_index believes the sizes in its input: a vector's
 * size field of 2^40 is resized before a byte of it is read, and an index
 * it had half built when the input runs out is leaked. While an AllocBudget
 * is armed on a thread, operator new on that thread refuses (throws
 * std::bad_alloc) any allocation above max_one bytes or one that takes the
 * bytes allocated under the budget (and not yet freed) above max_total,
 * and remembers every allocation it made; after a failed parse,
 * release_leftovers() frees the ones still alive -- the partly read index
 * faiss leaked. The enforcement needs the process's operator new to be
 * faissx's (net/alloc_guard.cpp, linked into faissx-server); elsewhere a
 * budget counts nothing and frees nothing (guard_installed() says which).
 *
 * Cost outside a budget: one thread-local load per allocation. */
#ifndef FX_ALLOC_BUDGET_H
#define FX_ALLOC_BUDGET_H

#include <cstddef>

namespace fx {

class AllocBudget {
public:
    AllocBudget(size_t max_one, size_t max_total);
    /* Stops tracking; frees nothing. */
    ~AllocBudget();
    AllocBudget(const AllocBudget&) = delete;
    AllocBudget& operator=(const AllocBudget&) = delete;

    /* Stops counting new allocations (frees still untrack): call first in
     * a catch block, before building messages. */
    void drain();
    /* The parse succeeded: stop tracking, keep everything. */
    void keep();
    /* The parse failed and every object it made is unreachable: frees
     * the allocations made under the budget that are still alive. Call
     * after the exception is gone (outside the catch block). */
    void release_leftovers();

    /* The size of the first allocation refused (0: none). */
    size_t refused() const;
    /* Bytes freed by release_leftovers(). */
    size_t released() const { return released_; }

private:
    size_t released_ = 0;
};

/* True when the process's operator new enforces budgets. */
bool alloc_guard_installed();

/* For net/alloc_guard.cpp: called by its operator new / delete. */
namespace alloc_hook {
/* Nonzero while a budget is armed or draining on this thread. */
extern thread_local int tl_state;
/* Before malloc: false to refuse (the caller throws bad_alloc). */
bool admit(size_t size);
/* After a successful malloc of an admitted allocation. */
void track(void* p, size_t size);
/* Before free. */
void untrack(void* p);
/* The guard announces itself (a static initialiser in alloc_guard.cpp). */
void set_installed();
} // namespace alloc_hook

} // namespace fx

#endif
