// NormalizedText construction, slicing and the ICU-edits alignment transfer.
#include "tokenizer/normalized_text.h"

#include <unicode/edits.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {

NormalizedText NormalizedText::original(std::string_view input, size_t begin, size_t end) {
    NormalizedText t;
    t.text.assign(input.substr(begin, end - begin));
    t.align.resize(t.text.size());
    for (size_t i = begin; i < end;) {
        const size_t len = std::min(utf8::char_length(input, i), end - i);
        const Span span{static_cast<uint32_t>(i), static_cast<uint32_t>(i + len)};
        std::fill_n(t.align.begin() + static_cast<std::ptrdiff_t>(i - begin), len, span);
        i += len;
    }
    return t;
}

NormalizedText NormalizedText::slice(size_t begin, size_t end) const {
    NormalizedText t;
    t.text.assign(text, begin, end - begin);
    t.align.assign(align.begin() + static_cast<std::ptrdiff_t>(begin),
                   align.begin() + static_cast<std::ptrdiff_t>(end));
    return t;
}

Span NormalizedText::original_span(size_t begin, size_t end) const {
    if (begin >= end) {
        if (begin < align.size()) return {align[begin].begin, align[begin].begin};
        if (!align.empty()) return {align.back().end, align.back().end};
        return {};
    }
    Span s = align[begin];
    for (size_t i = begin + 1; i < end; ++i) {
        s.begin = std::min(s.begin, align[i].begin);
        s.end = std::max(s.end, align[i].end);
    }
    return s;
}

void NormalizedBuilder::append(std::string_view bytes, Span span) {
    out_.text.append(bytes);
    out_.align.insert(out_.align.end(), bytes.size(), span);
}

void NormalizedBuilder::copy(const NormalizedText& from, size_t begin, size_t end) {
    out_.text.append(from.text, begin, end - begin);
    out_.align.insert(out_.align.end(), from.align.begin() + static_cast<std::ptrdiff_t>(begin),
                      from.align.begin() + static_cast<std::ptrdiff_t>(end));
}

NormalizedText apply_edits(const NormalizedText& in, std::string out, const icu::Edits& edits) {
    NormalizedText t;
    t.align.resize(out.size());
    UErrorCode status = U_ZERO_ERROR;
    auto it = edits.getFineIterator();
    while (it.next(status)) {
        const auto src = static_cast<size_t>(it.sourceIndex());
        const auto src_len = static_cast<size_t>(it.oldLength());
        const auto dst = static_cast<size_t>(it.destinationIndex());
        const auto dst_len = static_cast<size_t>(it.newLength());
        QLORA_RUNTIME_CHECK(src + src_len <= in.align.size() && dst + dst_len <= out.size(),
                            "Unicode normalization produced inconsistent edits");
        if (!it.hasChange()) {
            std::copy_n(in.align.begin() + static_cast<std::ptrdiff_t>(src), dst_len,
                        t.align.begin() + static_cast<std::ptrdiff_t>(dst));
        } else {
            const Span span = in.original_span(src, src + src_len);
            std::fill_n(t.align.begin() + static_cast<std::ptrdiff_t>(dst), dst_len, span);
        }
    }
    QLORA_RUNTIME_CHECK(U_SUCCESS(status), "Unicode normalization edits: ", u_errorName(status));
    t.text = std::move(out);
    return t;
}

}  // namespace qlora::tokenizer
