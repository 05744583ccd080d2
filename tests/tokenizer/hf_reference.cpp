// Peer comparison helpers for the tokenizer tests.
#include "hf_reference.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer::test {
namespace {

using nlohmann::json;

std::vector<json> read_jsonl(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    std::vector<json> out;
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line));
    return out;
}

std::string show(const std::vector<int64_t>& ids, size_t at) {
    std::ostringstream s;
    const size_t begin = at > 3 ? at - 3 : 0;
    for (size_t i = begin; i < std::min(ids.size(), at + 5); ++i) s << (i ? " " : "") << ids[i];
    return "[" + s.str() + "]";
}

size_t first_difference(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    return i;
}

size_t count_characters(const std::string& text) {
    size_t n = 0;
    for (size_t i = 0; i < text.size(); i += utf8::char_length(text, i)) ++n;
    return n;
}

// Exact, or (where a Unicode normalizer rewrote the text) each of our spans covers the peer's:
// HF aligns a composed character to its first source character only (NFC of e + U+0301 maps
// to the 'e'), we to the whole run it came from.
bool offsets_agree(const std::vector<std::pair<size_t, size_t>>& ours,
                   const std::vector<std::pair<size_t, size_t>>& peer, bool exact) {
    if (exact || ours.size() != peer.size()) return ours == peer;
    for (size_t i = 0; i < ours.size(); ++i) {
        if (ours[i].first > peer[i].first || ours[i].second < peer[i].second) return false;
    }
    return true;
}

}  // namespace

std::vector<HfExpected> read_expected(const std::string& path) {
    std::vector<HfExpected> out;
    for (const json& j : read_jsonl(path)) {
        HfExpected e;
        e.ids = j["ids"].get<std::vector<int64_t>>();
        e.plain = j["plain"].get<std::vector<int64_t>>();
        for (const json& o : j["offsets"])
            e.offsets.emplace_back(o[0].get<size_t>(), o[1].get<size_t>());
        e.decoded = j["decoded"].get<std::string>();
        e.decoded_skip = j["decoded_skip"].get<std::string>();
        out.push_back(std::move(e));
    }
    return out;
}

std::vector<std::string> read_texts(const std::string& path) {
    std::vector<std::string> out;
    for (const json& j : read_jsonl(path)) out.push_back(j["text"].get<std::string>());
    return out;
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int64_t>& ids, bool skip_special,
                          bool* emitted_partial_utf8) {
    StreamDecoder stream(tok, skip_special);
    std::string out;
    for (int64_t id : ids) {
        const std::string piece = stream.step(id);
        if (emitted_partial_utf8 != nullptr && utf8::first_invalid(piece) != std::string::npos) {
            *emitted_partial_utf8 = true;
        }
        out += piece;
    }
    return out + stream.finish();
}

ParityReport compare_with_peer(const Tokenizer& tok, const std::vector<std::string>& texts,
                               const std::vector<HfExpected>& expected, bool exact_offsets) {
    ParityReport r;
    EXPECT_EQ(texts.size(), expected.size());
    auto note = [&](const std::string& what) {
        if (r.examples.size() < 5) r.examples.push_back(what);
    };
    for (size_t i = 0; i < std::min(texts.size(), expected.size()); ++i) {
        const std::string& text = texts[i];
        const HfExpected& e = expected[i];
        ++r.texts;
        r.bytes += text.size();
        r.characters += count_characters(text);
        const Encoding full = tok.encode_with_offsets(text, true);
        const Encoding plain = tok.encode_with_offsets(text, false);
        if (full.ids != e.ids || plain.ids != e.plain) {
            ++r.id_mismatches;
            const size_t at = first_difference(plain.ids, e.plain);
            note("text " + std::to_string(i) + ": ids differ at " + std::to_string(at) + ": ours " +
                 show(plain.ids, at) + " peer " + show(e.plain, at));
            continue;
        }
        if (!offsets_agree(plain.offsets, e.offsets, exact_offsets)) {
            ++r.offset_mismatches;
            size_t at = 0;
            while (at < plain.offsets.size() && at < e.offsets.size() &&
                   plain.offsets[at] == e.offsets[at]) {
                ++at;
            }
            auto span = [](const std::vector<std::pair<size_t, size_t>>& o, size_t k) {
                return k < o.size() ? "(" + std::to_string(o[k].first) + ", " +
                                          std::to_string(o[k].second) + ")"
                                    : std::string("none");
            };
            note("text " + std::to_string(i) + ": offsets of token " + std::to_string(at) +
                 " (id " + std::to_string(plain.ids[std::min(at, plain.ids.size() - 1)]) +
                 ") differ: ours " + span(plain.offsets, at) + " peer " + span(e.offsets, at));
        }
        const std::string decoded = tok.decode(plain.ids, false);
        if (decoded != e.decoded || tok.decode(full.ids, true) != e.decoded_skip) {
            ++r.decode_mismatches;
            note("text " + std::to_string(i) + ": decode differs: ours '" + decoded.substr(0, 60) +
                 "' peer '" + e.decoded.substr(0, 60) + "'");
        }
        if (e.decoded == text) ++r.round_trips;
        bool partial = false;
        if (stream_decode(tok, plain.ids, false, &partial) != decoded || partial) {
            ++r.stream_mismatches;
            note("text " + std::to_string(i) + ": streaming decode differs from decode");
        }
    }
    return r;
}

void run_peer_script(const std::string& script, const std::string& args) {
    const auto r = qlora::test::run_command(qlora::test::python() + " " + QLORA_SOURCE_DIR +
                                            "/scripts/" + script + " " + args);
    ASSERT_EQ(r.exit_code, 0) << script << " failed:\n" << r.output;
}

}  // namespace qlora::tokenizer::test
