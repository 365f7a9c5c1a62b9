/* shm_binary_idmap.cpp -- for test_remote_shm: a local IndexBinaryIDMap
 * over an IndexBinaryFlat. The faiss C API has no constructor for it; a
 * server gets one through faissx_index_binary_upload of this. */
#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/c_api/IndexBinary_c.h>

extern "C" FaissIndexBinary* fxt_binary_idmap_flat(int d) {
    auto m = new faiss::IndexBinaryIDMap(new faiss::IndexBinaryFlat(d));
    m->own_fields = true; // faiss_IndexBinary_free frees both
    return reinterpret_cast<FaissIndexBinary*>(
            static_cast<faiss::IndexBinary*>(m));
}
