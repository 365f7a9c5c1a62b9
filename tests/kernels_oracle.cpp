/* kernels_oracle.cpp -- the reference side of test_kernels' end-to-end
 * checks: a program linked against libfaiss.a alone (no faissx), so faiss
 * runs its own generic distance kernels (distances_simd.cpp.o).
 *
 *   kernels_oracle DATA_DIR OUT_DIR
 *
 * For each index kind (Flat, IVF64,Flat nprobe 8, HNSW32 efSearch 64) built
 * on the SIFT sample's base: writes the index to OUT_DIR/KIND.index and the
 * top-10 search results for the sample's queries to OUT_DIR/KIND.res
 * (nq * 10 floats, then nq * 10 int64 labels). One OpenMP thread makes the
 * builds deterministic (the test sets OMP_NUM_THREADS=1). */
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

static std::vector<float> load_fvecs(const std::string& path, int* d, size_t* n) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) {
        std::perror(path.c_str());
        std::exit(2);
    }
    std::vector<float> out;
    int dim;
    *n = 0;
    while (std::fread(&dim, sizeof dim, 1, f) == 1) {
        size_t at = out.size();
        out.resize(at + dim);
        if (std::fread(out.data() + at, sizeof(float), dim, f) != (size_t)dim) {
            std::fprintf(stderr, "%s: truncated\n", path.c_str());
            std::exit(2);
        }
        *d = dim;
        ++*n;
    }
    std::fclose(f);
    return out;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: kernels_oracle DATA_DIR OUT_DIR\n");
        return 2;
    }
    std::string data = argv[1], out = argv[2];
    int d = 0, dq = 0;
    size_t nb = 0, nq = 0;
    std::vector<float> xb = load_fvecs(data + "/sift5k_base.fvecs", &d, &nb);
    std::vector<float> xq = load_fvecs(data + "/sift5k_query.fvecs", &dq, &nq);
    const int k = 10;
    const char* kinds[][2] = {{"Flat", "Flat"}, {"IVF", "IVF64,Flat"},
                              {"HNSW", "HNSW32"}};
    for (auto& kind : kinds) {
        std::unique_ptr<faiss::Index> index(faiss::index_factory(d, kind[1]));
        index->train(nb, xb.data());
        index->add(nb, xb.data());
        if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index.get()))
            ivf->nprobe = 8;
        if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index.get()))
            hnsw->hnsw.efSearch = 64;
        faiss::write_index(index.get(), (out + "/" + kind[0] + ".index").c_str());
        std::vector<float> D(nq * k);
        std::vector<faiss::Index::idx_t> I(nq * k);
        index->search(nq, xq.data(), k, D.data(), I.data());
        FILE* f = std::fopen((out + "/" + kind[0] + ".res").c_str(), "wb");
        if (!f || std::fwrite(D.data(), sizeof(float), D.size(), f) != D.size() ||
            std::fwrite(I.data(), sizeof(I[0]), I.size(), f) != I.size() ||
            std::fclose(f) != 0) {
            std::perror("write results");
            return 2;
        }
    }
    return 0;
}
