// PCRE2 wrapper. Match data and the JIT stack are per thread (encode is const and may run from
// several data-loader threads at once).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace {

std::string cut(const std::string& s) { return s.size() > 80 ? s.substr(0, 77) + "..." : s; }

// Long runs (a megabyte of letters) need more backtracking room than PCRE2's 32 KiB default.
struct ThreadMatchState {
    pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    ThreadMatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
    ~ThreadMatchState() {
        pcre2_match_context_free(context);
        pcre2_jit_stack_free(stack);
    }
};

ThreadMatchState& thread_state() {
    thread_local ThreadMatchState state;
    return state;
}

}  // namespace

struct Regex::Impl {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(const std::string& pattern, const std::string& source)
    : impl_(std::make_unique<Impl>()), pattern_(pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (impl_->code == nullptr) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof(message));
        QLORA_FAIL(source, ": regex '", cut(pattern), "' does not compile at offset ", offset, ": ",
                   reinterpret_cast<const char*>(message));
    }
    impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& matches) const {
    matches.clear();
    ThreadMatchState& state = thread_state();
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t start = 0;
    while (start <= text.size()) {
        const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), start, 0,
                                                    data, state.context)
                                  : pcre2_match(impl_->code, subject, text.size(), start,
                                                PCRE2_NO_UTF_CHECK, data, state.context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            pcre2_match_data_free(data);
            QLORA_RUNTIME_CHECK(false, "regex '", cut(pattern_), "' failed on a ", text.size(),
                                "-byte text (PCRE2 error ", rc, ")");
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
        matches.emplace_back(ov[0], ov[1]);
        if (ov[1] > ov[0]) {
            start = ov[1];
        } else if (ov[1] < text.size()) {
            start = ov[1] + utf8::char_length(text, ov[1]);
        } else {
            break;
        }
    }
    pcre2_match_data_free(data);
}

}  // namespace qlora::tokenizer
