#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz_handler.c into tests/corpus/handler/.

One file per message: a valid request of every operation, then malformed
ones (bad header fields, truncation, trailing bytes, bad keys, limits, deep
selectors, garbage uploads). The output is deterministic; regenerate with

    python3 tools/gen_corpus.py [OUTDIR]

and commit the result. Index handles are written as tags that the fuzz
target replaces with the handles of its pre-built indexes (see the comment
at the top of tests/fuzz_handler.c): TAG | 0 = Flat d=8 ("fz-flat"),
TAG | 1 = IDMap,Flat d=8 ("fz-idmap"), TAG | 2 = IVF4,Flat d=8 ("fz-ivf"),
TAG | 3 = Flat d=8 ("fz-flat2").
The wire format is docs/protocol.md.
"""
import os
import struct
import sys

MAGIC = 0x58534146
VERSION = 1
FLAG_REPLY = 1
FLAG_JOB = 2
FLAG_STATE = 4
TAG = 0xFA155E00000000 << 8
H_FLAT, H_IDMAP, H_IVF, H_FLAT2 = TAG | 0, TAG | 1, TAG | 2, TAG | 3
D = 8
KEY = "fuzz-key"
RO_KEY = "fuzz-ro"

OPS = {name: i + 1 for i, name in enumerate([
    "PING", "CREATE", "OPEN", "LIST", "DROP", "RELEASE", "INFO", "TRAIN",
    "ADD", "ADD_WITH_IDS", "SEARCH", "RANGE_SEARCH", "ASSIGN", "RESET",
    "REMOVE_IDS", "RECONSTRUCT_N", "RECONSTRUCT_KEYS", "RESIDUAL",
    "SA_CODE_SIZE", "SA_ENCODE", "SA_DECODE", "SET_PARAM", "GET_PARAM",
    "SERIALIZE", "UPLOAD", "CLONE", "MERGE_FROM", "WRAP", "FETCH", "IVF",
    "BINARY", "PROGRESS", "CANCEL", "UPLOAD_BEGIN", "UPLOAD_CHUNK",
    "UPLOAD_COMMIT", "UPLOAD_ABORT", "DOWNLOAD_BEGIN", "DOWNLOAD_CHUNK",
    "DOWNLOAD_END", "COMPOSITE", "ADD_STREAM", "LIMITS"])}

WRAP_IVFFLAT, WRAP_IVFSQ, WRAP_IDMAP, WRAP_IDMAP2, WRAP_PRETRANSFORM, \
    WRAP_REFINE_FLAT = range(1, 7)
BIN_CREATE, BIN_WRAP_IVF, BIN_INFO, BIN_TRAIN, BIN_ADD, BIN_ADD_WITH_IDS, \
    BIN_SEARCH = range(1, 8)
BIN_UPLOAD = 16
BIN_ADD_STREAM = 18
IVF_MAKE_DIRECT_MAP, IVF_IMBALANCE, IVF_SEARCH_PREASSIGNED, IVF_ADD_CORE, \
    IVF_UPDATE_VECTORS, IVF_COPY_SUBSET_TO, IVF_TRAIN_RESIDUAL = range(1, 8)
COMP_PREPEND, COMP_INNER, COMP_CHAIN = range(1, 4)
KIND_IVF, KIND_IDMAP = 1 << 1, 1 << 3
SEL_RANGE, SEL_BATCH, SEL_NOT, SEL_AND, SEL_OR, SEL_XOR, SEL_BITMAP = range(1, 8)


def pad8(b):
    return b + b"\0" * (-len(b) % 8)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def i64(v):
    return struct.pack("<q", v)


def f64(v):
    return struct.pack("<d", v)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return u64(len(b)) + pad8(b)


def array(fmt, values):
    return u64(len(values)) + pad8(struct.pack("<%d%s" % (len(values), fmt),
                                               *values))


def f32s(values):
    return array("f", values)


def i64s(values):
    return array("q", values)


def u8s(data):
    return u64(len(data)) + pad8(bytes(data))


def vectors(n, seed):
    """n * D deterministic floats in [0, 1)."""
    out = []
    s = seed
    for _ in range(n * D):
        s = (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append((s >> 40) / 16777216.0)
    return out


def header(op, body_len, flags=0, request_id=1, client_id=0xC0FFEE,
           timeout_ms=1000, status=0, magic=MAGIC, version=VERSION):
    return struct.pack("<IHHIIQQIi", magic, version, op, flags, body_len,
                       request_id, client_id, timeout_ms, status)


def message(op, body, key=KEY, **kw):
    body = string(key) + body
    return header(op, len(body), **kw) + body


def flat_index_bytes(n):
    """An IndexFlatL2 (d = D, n vectors) in faiss's file format."""
    xb = vectors(n, 99)
    out = b"IxF2"
    out += struct.pack("<iqqq?i", D, n, 1 << 20, 1 << 20, True, 1)
    out += struct.pack("<Q", n * D)  # codes, counted in 4-byte words
    out += struct.pack("<%df" % (n * D), *xb)
    return out


def flat_index_forged(n, words):
    """flat_index_bytes(n) whose codes vector claims `words` 4-byte words
    (the n vectors that follow are all there is)."""
    real = flat_index_bytes(n)
    head = 4 + struct.calcsize("<iqqq?i")
    return real[:head] + struct.pack("<Q", words) + real[head + 8:]


def binary_flat_index_bytes(n, claimed=None):
    """An IndexBinaryFlat (d = 64 bits, n codes) in faiss's binary format;
    `claimed`: a forged byte count for its codes vector."""
    d, code_size = 64, 8
    xb = bytes((7 * i) & 0xFF for i in range(n * code_size))
    out = b"IBxF" + struct.pack("<iiq?i", d, code_size, n, True, 1)
    out += struct.pack("<Q", len(xb) if claimed is None else claimed)
    return out + xb


def selector_all_types():
    # or(and(range[1000,1030), not(batch{1003,1006})), bitmap)
    return (i64(SEL_OR) + i64(SEL_AND) + i64(SEL_RANGE) + i64(1000) +
            i64(1030) + i64(SEL_NOT) + i64(SEL_BATCH) + i64s([1003, 1006]) +
            i64(SEL_XOR) + i64(SEL_RANGE) + i64(0) + i64(10) +
            i64(SEL_BITMAP) + u8s([0x0F, 0xF0, 0xAA]))


def seeds():
    x2 = vectors(2, 1)
    x4 = vectors(4, 2)
    m = {}
    O = OPS
    # ---- a valid request of every operation
    m["ping"] = message(O["PING"], b"")
    m["create-named"] = message(O["CREATE"], string("new-index") + i64(D) +
                                i64(1) + string("IVF2,Flat"))
    m["create-unnamed"] = message(O["CREATE"], string("") + i64(4) + i64(0) +
                                  string("HNSW8"))
    m["open"] = message(O["OPEN"], string("fz-flat"))
    m["list"] = message(O["LIST"], b"")
    m["drop"] = message(O["DROP"], string("fz-idmap"))
    m["release"] = message(O["RELEASE"], u64(H_IVF))
    m["info"] = message(O["INFO"], u64(H_IVF))
    m["train"] = message(O["TRAIN"], u64(H_FLAT) + i64(4) + f32s(x4))
    m["add"] = message(O["ADD"], u64(H_FLAT) + i64(4) + f32s(x4))
    m["add-with-ids"] = message(O["ADD_WITH_IDS"], u64(H_IDMAP) + i64(2) +
                                f32s(x2) + i64s([7, 8]))
    m["search"] = message(O["SEARCH"], u64(H_FLAT) + i64(2) + i64(5) +
                          f32s(x2))
    m["search-ivf"] = message(O["SEARCH"], u64(H_IVF) + i64(2) + i64(3) +
                              f32s(x2))
    m["range-search"] = message(O["RANGE_SEARCH"], u64(H_FLAT) + i64(2) +
                                f64(0.5) + f32s(x2))
    m["assign"] = message(O["ASSIGN"], u64(H_IDMAP) + i64(2) + i64(4) +
                          f32s(x2))
    m["reset"] = message(O["RESET"], u64(H_IVF))
    m["remove-ids"] = message(O["REMOVE_IDS"], u64(H_IDMAP) +
                              selector_all_types())
    m["reconstruct-n"] = message(O["RECONSTRUCT_N"], u64(H_FLAT) + i64(3) +
                                 i64(4))
    # IndexIDMap has no reconstruct: an error (this used to terminate the
    # server from inside faiss's OpenMP loop).
    m["reconstruct-n-idmap"] = message(O["RECONSTRUCT_N"], u64(H_IDMAP) +
                                       i64(3) + i64(4))
    m["reconstruct-keys"] = message(O["RECONSTRUCT_KEYS"], u64(H_FLAT) +
                                    i64s([0, 5, 63]))
    m["residual"] = message(O["RESIDUAL"], u64(H_FLAT) + i64(2) + f32s(x2) +
                            i64s([0, 3]))
    m["sa-code-size"] = message(O["SA_CODE_SIZE"], u64(H_IVF))
    m["sa-encode"] = message(O["SA_ENCODE"], u64(H_FLAT) + i64(2) + f32s(x2))
    m["sa-decode"] = message(O["SA_DECODE"], u64(H_FLAT) + i64(1) +
                             u8s(range(4 * D)))
    m["set-param"] = message(O["SET_PARAM"], u64(H_IVF) + string("nprobe") +
                             f64(3))
    m["get-param"] = message(O["GET_PARAM"], u64(H_IVF) + string("nlist"))
    m["serialize"] = message(O["SERIALIZE"], u64(H_FLAT))
    m["upload"] = message(O["UPLOAD"], string("uploaded") +
                          u8s(flat_index_bytes(3)))
    m["clone"] = message(O["CLONE"], u64(H_IDMAP))
    m["merge-from"] = message(O["MERGE_FROM"], u64(H_FLAT) + u64(H_FLAT2) +
                              i64(0))
    m["wrap-ivfflat"] = message(O["WRAP"], u64(H_FLAT2) + i64(WRAP_IVFFLAT) +
                                i64(D) + i64(16) + i64(1))
    m["wrap-refine"] = message(O["WRAP"], u64(H_IVF) + i64(WRAP_REFINE_FLAT))
    m["fetch-xb"] = message(O["FETCH"], u64(H_FLAT2) + string("xb") + i64(0))
    m["fetch-id-map"] = message(O["FETCH"], u64(H_IDMAP) + string("id_map") +
                                i64(0))
    m["fetch-list-ids"] = message(O["FETCH"], u64(H_IVF) +
                                  string("list_ids") + i64(1))
    m["ivf-imbalance"] = message(O["IVF"], u64(H_IVF) + i64(IVF_IMBALANCE))
    m["ivf-direct-map"] = message(O["IVF"], u64(H_IVF) +
                                  i64(IVF_MAKE_DIRECT_MAP) + i64(1))
    m["ivf-search-preassigned"] = message(
        O["IVF"], u64(H_IVF) + i64(IVF_SEARCH_PREASSIGNED) + i64(1) + i64(3) +
        i64(0) + f32s(x2[:D]) + i64s([2]) + f32s([0.25]))
    m["ivf-add-core"] = message(O["IVF"], u64(H_IVF) + i64(IVF_ADD_CORE) +
                                i64(2) + f32s(x2) + i64(1) + i64s([50, 51]) +
                                i64s([0, 3]))
    m["ivf-copy-subset"] = message(O["IVF"], u64(H_IVF) +
                                   i64(IVF_COPY_SUBSET_TO) + u64(H_IVF) +
                                   i64(0) + i64(0) + i64(10))
    # ---- malformed or refused
    ping = m["ping"]
    m["bad-short"] = ping[:21]
    m["bad-magic"] = message(O["PING"], b"", magic=0x46534158)
    m["bad-version"] = message(O["PING"], b"", version=2)
    m["bad-op-0"] = message(0, b"")
    m["bad-op-ffff"] = message(0xFFFF, b"")
    m["bad-reply-flag"] = message(O["PING"], b"", flags=FLAG_REPLY)
    m["bad-body-len"] = ping[:12] + struct.pack("<I", 1000) + ping[16:]
    m["bad-truncated-search"] = (header(O["SEARCH"], 40) +
                                 (string(KEY) + u64(H_FLAT) + i64(2) +
                                  i64(5) + f32s(x2))[:40])
    m["bad-trailing"] = message(O["INFO"], u64(H_FLAT) + u64(0))
    m["bad-key"] = message(O["LIST"], b"", key="wrong")
    m["bad-ro-add"] = message(O["ADD"], u64(H_FLAT) + i64(2) + f32s(x2),
                              key=RO_KEY)
    m["bad-nan"] = message(O["ADD"], u64(H_FLAT) + i64(1) +
                           f32s([float("nan")] * D))
    m["bad-k"] = message(O["SEARCH"], u64(H_FLAT) + i64(1) + i64(65) +
                         f32s(x2[:D]))
    m["bad-dim"] = message(O["SEARCH"], u64(H_FLAT) + i64(1) + i64(1) +
                           f32s(x2[:D - 1]))
    m["bad-deep-selector"] = message(O["REMOVE_IDS"], u64(H_IDMAP) +
                                     i64(SEL_NOT) * 12 + i64(SEL_RANGE) +
                                     i64(0) + i64(1))
    # Not a truncated real index: faiss 1.7.3's read_index leaks the partly
    # read index on a read error, which the ASan run would report.
    m["bad-upload"] = message(O["UPLOAD"], string("") +
                              u8s(b"IxQQ" + bytes(range(40))))
    m["bad-name"] = message(O["CREATE"], string("../etc") + i64(D) + i64(1) +
                            string("Flat"))
    m["bad-huge-array"] = message(O["RECONSTRUCT_KEYS"], u64(H_FLAT) +
                                  u64(1 << 61) + i64(0))
    # ---- binary indexes (FX_OP_BINARY): the fixture has no binary index,
    # so these create one, and probe the family check and sub-op decoding
    m["binary-create"] = message(O["BINARY"], i64(BIN_CREATE) + string("") +
                                 i64(64) + string("BIVF2"))
    m["binary-search-float-handle"] = message(
        O["BINARY"], i64(BIN_SEARCH) + u64(H_FLAT) + i64(1) + i64(2) +
        u8s(bytes(8)))
    m["binary-bad-sub-op"] = message(O["BINARY"], i64(99) + u64(H_FLAT))
    # progress and cancellation (appended: earlier seeds keep their numbers)
    m["train-job"] = message(O["TRAIN"], u64(H_FLAT) + i64(4) + f32s(x4),
                             flags=FLAG_JOB, request_id=9)
    m["progress"] = message(O["PROGRESS"], u64(9))
    m["cancel"] = message(O["CANCEL"], u64(9))
    m["bad-flags"] = message(O["PING"], b"", flags=8)
    m["bad-progress-trailing"] = message(O["PROGRESS"], u64(9) + u64(0))
    # chunked upload (one message per input: the later ones find no upload)
    m["upload-begin"] = message(O["UPLOAD_BEGIN"], u64(4096) + i64(0))
    m["upload-chunk"] = message(O["UPLOAD_CHUNK"], u64(1) + u64(0) +
                                u8s(bytes(64)))
    m["upload-commit"] = message(O["UPLOAD_COMMIT"], u64(1) + string("up"))
    m["upload-abort"] = message(O["UPLOAD_ABORT"], u64(1))
    m["bad-upload-begin-huge"] = message(O["UPLOAD_BEGIN"], u64(1 << 62) +
                                         i64(0))
    m["bad-upload-begin-kind"] = message(O["UPLOAD_BEGIN"], u64(64) + i64(9))
    # chunked download
    m["download-begin"] = message(O["DOWNLOAD_BEGIN"], u64(H_IVF) + i64(0))
    m["download-chunk"] = message(O["DOWNLOAD_CHUNK"], u64(1) + u64(0) +
                                  u64(0))
    m["download-end"] = message(O["DOWNLOAD_END"], u64(1))
    m["bad-download-begin-binary"] = message(O["DOWNLOAD_BEGIN"],
                                             u64(H_FLAT) + i64(1))
    # composites (appended likewise)
    m["composite-inner-idmap"] = message(O["COMPOSITE"], u64(H_IDMAP) +
                                         i64(COMP_INNER) + i64(KIND_IDMAP))
    m["composite-inner-ivf"] = message(O["COMPOSITE"], u64(H_IVF) +
                                       i64(COMP_INNER) + i64(KIND_IVF))
    m["composite-chain-not-pt"] = message(O["COMPOSITE"], u64(H_FLAT) +
                                          i64(COMP_CHAIN))
    m["composite-prepend-junk"] = message(O["COMPOSITE"], u64(H_FLAT) +
                                          i64(COMP_PREPEND) +
                                          u8s(b"QQQQ" + bytes(12)))
    m["composite-unknown"] = message(O["COMPOSITE"], u64(H_FLAT) + i64(77))
    # uploads with forged sizes (appended likewise): faiss 1.7.3 resizes a
    # vector to the size its bytes claim before reading it, and leaks the
    # partly read index when the bytes then run out. The server's
    # allocation guard (net/alloc_guard.cpp, linked into fuzz_handler too)
    # refuses the allocation and frees what the parse left behind.
    m["upload-forged-size-huge"] = message(
        O["UPLOAD"], string("") + u8s(flat_index_forged(3, 1 << 36)))
    m["upload-forged-size-256m"] = message(
        O["UPLOAD"], string("") + u8s(flat_index_forged(3, 1 << 26)))
    m["upload-truncated"] = message(
        O["UPLOAD"], string("") + u8s(flat_index_bytes(16)[:200]))
    m["upload-forged-ntotal"] = message(
        O["UPLOAD"], string("") + u8s(b"IxF2" + struct.pack(
            "<iqqq?i", D, 1 << 40, 1 << 20, 1 << 20, True, 1) +
            struct.pack("<Q", 3 * D) + struct.pack("<%df" % (3 * D),
                                                   *vectors(3, 99))))
    m["binary-upload"] = message(
        O["BINARY"], i64(BIN_UPLOAD) + string("") +
        u8s(binary_flat_index_bytes(4)))
    m["binary-upload-forged-size"] = message(
        O["BINARY"], i64(BIN_UPLOAD) + string("") +
        u8s(binary_flat_index_bytes(4, claimed=1 << 38)))
    m["binary-upload-truncated"] = message(
        O["BINARY"], i64(BIN_UPLOAD) + string("") +
        u8s(binary_flat_index_bytes(16)[:60]))
    # shared-memory stream adds (appended): the fuzz state has no socket,
    # so the token resolves to nothing; the fields are still decoded
    def stream(h, n, with_ids, nslots, rows, off, sbytes):
        return message(O["ADD_STREAM"], u64(h) + i64(n) + i64(with_ids) +
                       u64(0x1234) + u64(0x5678) + u64(nslots) + u64(rows) +
                       u64(off) + u64(sbytes))
    m["add-stream"] = stream(H_FLAT, 100, 0, 4, 64, 4096, 65536)
    m["add-stream-ids"] = stream(H_IDMAP, 100, 1, 4, 64, 4096, 65536)
    m["add-stream-bad-layout"] = stream(H_FLAT, 100, 0, 1 << 40, 0, 0,
                                        1 << 63)
    m["add-stream-truncated"] = message(O["ADD_STREAM"], u64(H_FLAT) +
                                        i64(5))
    # ---- FX_FLAG_STATE: the replies carry the indexes' state too
    m["search-state"] = message(O["SEARCH"], u64(H_FLAT) + i64(2) + i64(5) +
                                f32s(x2), flags=FLAG_STATE)
    m["merge-from-state"] = message(O["MERGE_FROM"], u64(H_FLAT) +
                                    u64(H_FLAT2) + i64(0), flags=FLAG_STATE)
    m["ivf-copy-subset-state"] = message(
        O["IVF"], u64(H_IVF) + i64(IVF_COPY_SUBSET_TO) + u64(H_IVF) +
        i64(0) + i64(0) + i64(10), flags=FLAG_STATE)
    m["state-and-job"] = message(O["ADD"], u64(H_FLAT) + i64(1) +
                                 f32s(x2[:D]), flags=FLAG_STATE | FLAG_JOB)
    # ---- per-call search parameters (proto.h: i64 type, i64 has_selector,
    # [selector], then the type's fields)
    PARAMS_PLAIN, PARAMS_IVF, PARAMS_HNSW = 1, 2, 3
    m["search-params-ivf"] = message(
        O["SEARCH"], u64(H_IVF) + i64(2) + i64(3) + f32s(x2) +
        i64(PARAMS_IVF) + i64(1) + i64(SEL_RANGE) + i64(0) + i64(40) +
        u64(2) + u64(0))
    m["search-params-plain-selector"] = message(
        O["SEARCH"], u64(H_IDMAP) + i64(2) + i64(3) + f32s(x2) +
        i64(PARAMS_PLAIN) + i64(1) + selector_all_types())
    # HNSW parameters on a Flat: faiss 1.7.3's Flat search reads only the
    # selector (as a local call), so this one succeeds too
    m["search-params-hnsw"] = message(
        O["SEARCH"], u64(H_FLAT) + i64(2) + i64(3) + f32s(x2) +
        i64(PARAMS_HNSW) + i64(0) + i64(16) + i64(1))
    m["range-search-params"] = message(
        O["RANGE_SEARCH"], u64(H_IVF) + i64(2) + f64(0.5) + f32s(x2) +
        i64(PARAMS_IVF) + i64(0) + u64(2) + u64(0))
    m["bad-params-type"] = message(
        O["SEARCH"], u64(H_FLAT) + i64(1) + i64(3) + f32s(x2[:D]) +
        i64(99) + i64(0))
    m["bad-params-hnsw-ef"] = message(
        O["SEARCH"], u64(H_FLAT) + i64(1) + i64(3) + f32s(x2[:D]) +
        i64(PARAMS_HNSW) + i64(0) + i64(-5) + i64(0))
    m["bad-params-truncated"] = message(
        O["SEARCH"], u64(H_IVF) + i64(1) + i64(3) + f32s(x2[:D]) +
        i64(PARAMS_IVF) + i64(0) + u64(2))
    # ---- LIMITS: the server's limits; any key may ask (appended)
    m["limits"] = message(O["LIMITS"], b"")
    m["limits-read-only"] = message(O["LIMITS"], b"", key=RO_KEY)
    m["limits-trailing"] = message(O["LIMITS"], u64(7))
    # the binary sub-op of a stream add (appended; the fuzz state's indexes
    # are float ones: it is refused after the handle)
    m["binary-add-stream"] = message(
        O["BINARY"], i64(BIN_ADD_STREAM) + u64(H_FLAT) + i64(100) + i64(0) +
        u64(0x1234) + u64(0x5678) + u64(4) + u64(64) + u64(4096) +
        u64(65536))
    return m


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "tests", "corpus", "handler")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name.endswith(".bin"):
            os.remove(os.path.join(out, name))
    m = seeds()
    for i, (name, data) in enumerate(m.items()):
        with open(os.path.join(out, "%02d-%s.bin" % (i, name)), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(m), os.path.normpath(out)))


if __name__ == "__main__":
    main()
