// Documented upper bounds for every size read from a file or the command line, checked before the
// allocation the size drives. They are far above any model or run this project targets (Llama 3
// 405B has 126 layers, hidden 16384, vocab 128256), so they refuse only corrupt or hostile input;
// where a size drives an allocation it is also checked against the memory actually available.
#pragma once

#include <cstdint>
#include <string>

namespace qlora::limits {

// config.json (LlamaConfig).
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxHiddenSize = 65536;
inline constexpr int64_t kMaxIntermediateSize = 1 << 20;
inline constexpr int64_t kMaxHeads = 1024;
inline constexpr int64_t kMaxHeadDim = 1024;
inline constexpr int64_t kMaxVocabSize = 1 << 22;  // 4M; the largest public vocabularies are ~256k
inline constexpr int64_t kMaxPositionEmbeddings = 1 << 24;

// Training: tokens per sequence, sequences per micro-batch, micro-batches per step.
inline constexpr int64_t kMaxSeqLen = 1 << 20;
inline constexpr int64_t kMaxMicroBatch = 65536;
inline constexpr int64_t kMaxGradAccum = 65536;

// Generation: new tokens per call (the KV cache holds prompt + new tokens).
inline constexpr int64_t kMaxNewTokens = 1 << 20;

// Data: a record longer than this many bytes per token of max_seq_len cannot fit in one sample
// after tokenizing (no tokenizer this project loads has pieces near this long), so it is cut before
// encode: tokenizing stays bounded however big the record.
inline constexpr int64_t kMaxBytesPerToken = 64;

// Errors: one line of at most this many characters reaches the user (core/error_text.h). Room for
// two absolute paths of a deep checkout and the words around them; only an over-long value (a
// 51 MB JSONL line) is cut.
inline constexpr size_t kMaxErrorChars = 640;

// Bytes of memory this process can still get: MemAvailable + SwapFree of /proc/meminfo, capped by
// RLIMIT_AS/RLIMIT_DATA; UINT64_MAX when unknown (then only the documented limits apply).
uint64_t available_host_memory();

// Throws qlora::Error (exit 1) unless `bytes` fit in available_host_memory(); `what` says what
// would be allocated and from which input ("the KV cache for --max-new-tokens 1000000").
void check_host_memory(uint64_t bytes, const std::string& what);

// a * b (and a * b * c) saturating at UINT64_MAX for non-negative factors: sizes from hostile
// files must not wrap around to a small number.
uint64_t saturating_mul(uint64_t a, uint64_t b);

}  // namespace qlora::limits
