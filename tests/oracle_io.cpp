/* oracle_io.cpp -- faiss C++ writers behind oracle_io.h. */
#include "oracle_io.h"

#include <faiss/Index.h>
#include <faiss/IndexBinary.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <memory>
#include <string>

static thread_local std::string io_err;

extern "C" const char* oracle_io_error(void) {
    return io_err.c_str();
}

extern "C" int oracle_io_write(const char* factory, int d, int metric,
                               idx_t nt, const float* xt, idx_t nb,
                               const float* xb, const idx_t* xids,
                               const char* path) {
    try {
        std::unique_ptr<faiss::Index> ix(faiss::index_factory(
                d, factory, static_cast<faiss::MetricType>(metric)));
        if (nt > 0) ix->train(nt, xt);
        if (nb > 0) {
            if (xids)
                ix->add_with_ids(nb, xb, xids);
            else
                ix->add(nb, xb);
        }
        faiss::write_index(ix.get(), path);
        return 0;
    } catch (const std::exception& e) {
        io_err = e.what();
        return -1;
    }
}

extern "C" int oracle_io_write_binary(const char* desc, int d, idx_t nt,
                                      const uint8_t* xt, idx_t nb,
                                      const uint8_t* xb, const char* path) {
    try {
        std::unique_ptr<faiss::IndexBinary> ix(
                faiss::index_binary_factory(d, desc));
        if (nt > 0) ix->train(nt, xt);
        if (nb > 0) ix->add(nb, xb);
        faiss::write_index_binary(ix.get(), path);
        return 0;
    } catch (const std::exception& e) {
        io_err = e.what();
        return -1;
    }
}

extern "C" int oracle_io_read_search(const char* path, int cpp_io_flags,
                                     idx_t nq, const float* xq, idx_t k,
                                     float* D, idx_t* I) {
    try {
        std::unique_ptr<faiss::Index> ix(
                faiss::read_index(path, cpp_io_flags));
        ix->search(nq, xq, k, D, I);
        return 0;
    } catch (const std::exception& e) {
        io_err = e.what();
        return -1;
    }
}

extern "C" int oracle_io_flag_mmap(void) {
    return faiss::IO_FLAG_MMAP;
}

extern "C" int oracle_io_flag_read_only(void) {
    return faiss::IO_FLAG_READ_ONLY;
}
