// NormalizedText: a piece of (possibly transformed) text that remembers, for every byte, the byte
// range of the original input it came from. This is how token offsets survive normalizers and
// pre-tokenizers that rewrite text (ByteLevel, Metaspace, NFC, Replace), as in HF's
// NormalizedString; a byte of a rewritten run maps to the whole original run.
#pragma once

#include <unicode/uversion.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

U_NAMESPACE_BEGIN
class Edits;
U_NAMESPACE_END

namespace qlora::tokenizer {

struct Span {
    uint32_t begin = 0;
    uint32_t end = 0;
};

struct NormalizedText {
    std::string text;
    std::vector<Span> align;  // align[i]: the original bytes that text[i] stands for

    // input[begin, end) untransformed: each byte maps to its whole character.
    static NormalizedText original(std::string_view input, size_t begin, size_t end);

    NormalizedText slice(size_t begin, size_t end) const;
    // The original range covered by text[begin, end); an empty range maps to an empty span
    // at the position it sits.
    Span original_span(size_t begin, size_t end) const;
    bool empty() const { return text.empty(); }
};

// The span of text inserted in front of `t` (a prepended space or "▁"): as in HF, that of the
// character it is put before.
inline Span inserted_before(const NormalizedText& t) {
    return t.align.empty() ? Span{} : t.align[0];
}

// Builds a NormalizedText by appending output bytes with the original span they stand for.
class NormalizedBuilder {
  public:
    void append(std::string_view bytes, Span span);
    void copy(const NormalizedText& from, size_t begin, size_t end);
    NormalizedText finish() { return std::move(out_); }
    size_t size() const { return out_.text.size(); }

  private:
    NormalizedText out_;
};

// `out` replaces `in.text`, with `edits` (ICU fine-grained edits) saying which source bytes
// became which output bytes: unchanged runs keep their alignment, changed runs map to the union
// of their source spans.
NormalizedText apply_edits(const NormalizedText& in, std::string out, const icu::Edits& edits);

}  // namespace qlora::tokenizer
