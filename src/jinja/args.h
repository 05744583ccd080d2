// Reading a builtin's arguments the way Python binds them: by position or by keyword, with
// defaults, and a TypeError naming the function for a wrong type or an unknown keyword.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "jinja/error.h"
#include "jinja/value.h"

namespace qlora::jinja {

class ArgReader {
  public:
    // params: the builtin's parameter names in order (its Python signature after the input).
    ArgReader(std::string function, const CallArgs& args, std::initializer_list<const char*> params)
        : function_(std::move(function)), args_(args), params_(params) {
        if (args.positional.size() > params_.size()) {
            fail(TemplateError::Kind::kType,
                 function_ + "() takes at most " + std::to_string(params_.size()) +
                     " argument(s), got " + std::to_string(args.positional.size()));
        }
        for (const auto& [k, v] : args.keyword) {
            bool known = false;
            for (const char* p : params_) known = known || k == p;
            if (!known)
                fail(TemplateError::Kind::kType,
                     function_ + "() got an unexpected keyword argument '" + k + "'");
        }
    }

    // The argument for parameter i, or null when not given.
    const Value* get(size_t i) const {
        if (i < args_.positional.size()) return &args_.positional[i];
        return args_.keyword_arg(params_[i]);
    }
    Value value_or(size_t i, Value fallback) const {
        const Value* v = get(i);
        return v ? *v : fallback;
    }
    bool flag(size_t i, bool fallback) const {
        const Value* v = get(i);
        return v ? v->truthy() : fallback;
    }
    int64_t integer(size_t i, int64_t fallback) const {
        const Value* v = get(i);
        if (!v || v->is_none()) return fallback;
        if (!v->is_int() && !v->is_bool()) type_error(i, "an integer", *v);
        return v->as_int();
    }
    std::string string(size_t i, std::string fallback) const {
        const Value* v = get(i);
        if (!v || v->is_none()) return fallback;
        if (!v->is_string()) type_error(i, "a string", *v);
        return v->as_string();
    }
    const Value& required(size_t i) const {
        const Value* v = get(i);
        if (!v) {
            fail(TemplateError::Kind::kType,
                 function_ + "() missing required argument '" + std::string(params_[i]) + "'");
        }
        return *v;
    }

  private:
    [[noreturn]] void type_error(size_t i, const char* expected, const Value& got) const {
        fail(TemplateError::Kind::kType, function_ + "(): argument '" + std::string(params_[i]) +
                                             "' must be " + expected + ", not " + got.type_name());
    }

    std::string function_;
    const CallArgs& args_;
    std::vector<const char*> params_;
};

}  // namespace qlora::jinja
