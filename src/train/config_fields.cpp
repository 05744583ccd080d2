// The schema table and the per-type codecs behind it (YAML node <-> typed field).
#include "train/config_fields.h"

#include <algorithm>
#include <charconv>
#include <type_traits>

#include "core/error.h"
#include "core/error_text.h"

namespace qlora::train {
namespace {

using Problem = std::optional<std::string>;

Problem expected(const char* what, const YAML::Node& node) {
    return std::string("expected ") + what + ", found " + describe_node(node);
}

// Shortest text that reads back to the same double, so a resolved config round-trips exactly.
std::string format_double(double v) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    std::string s(buf, res.ptr);
    // "1" would read back as an integer-looking scalar; keep it visibly a float.
    if (s.find_first_of(".eEni") == std::string::npos) s += ".0";
    return s;
}

template <typename T>
struct Codec;

template <>
struct Codec<bool> {
    static Problem read(const YAML::Node& n, bool& out) {
        if (!n.IsScalar()) return expected("true or false", n);
        try {
            out = n.as<bool>();
            return std::nullopt;
        } catch (const YAML::Exception&) {
            return expected("true or false", n);
        }
    }
    static void write(YAML::Emitter& e, bool v) { e << v; }
};

template <typename Int>
requires std::is_integral_v<Int>
struct Codec<Int> {
    static Problem read(const YAML::Node& n, Int& out) {
        const char* what = std::is_signed_v<Int> ? "an integer" : "a non-negative integer";
        if (!n.IsScalar()) return expected(what, n);
        try {
            out = n.as<Int>();
            return std::nullopt;
        } catch (const YAML::Exception&) {
            return expected(what, n);
        }
    }
    static void write(YAML::Emitter& e, Int v) { e << v; }
};

template <>
struct Codec<double> {
    static Problem read(const YAML::Node& n, double& out) {
        if (!n.IsScalar()) return expected("a number", n);
        try {
            out = n.as<double>();
            return std::nullopt;
        } catch (const YAML::Exception&) {
            return expected("a number", n);
        }
    }
    static void write(YAML::Emitter& e, double v) { e << format_double(v); }
};

template <>
struct Codec<std::string> {
    static Problem read(const YAML::Node& n, std::string& out) {
        if (!n.IsScalar()) return expected("a string", n);
        out = n.Scalar();
        return std::nullopt;
    }
    static void write(YAML::Emitter& e, const std::string& v) { e << YAML::DoubleQuoted << v; }
};

// Lists also accept a single scalar as a one-element list ("targets: all-linear").
template <typename T>
struct Codec<std::vector<T>> {
    static Problem read(const YAML::Node& n, std::vector<T>& out) {
        std::vector<T> items;
        if (n.IsScalar()) {
            T item{};
            if (auto p = Codec<T>::read(n, item)) return p;
            items.push_back(item);
        } else if (n.IsSequence()) {
            for (size_t i = 0; i < n.size(); ++i) {
                T item{};
                if (auto p = Codec<T>::read(n[i], item)) {
                    return "item " + std::to_string(i) + ": " + *p;
                }
                items.push_back(item);
            }
        } else {
            return expected("a list", n);
        }
        out = std::move(items);
        return std::nullopt;
    }
    static void write(YAML::Emitter& e, const std::vector<T>& v) {
        e << YAML::Flow << YAML::BeginSeq;
        for (const T& item : v) Codec<T>::write(e, item);
        e << YAML::EndSeq;
    }
};

// A config vocabulary (quant.type, optim.name, ...) is the enum's one table of names
// (core/enum_names.h): it reads, writes back and lists what an error offers.
template <typename E>
struct EnumVocabulary;

#define QLORA_ENUM_VOCABULARY(Enum, table)          \
    template <>                                     \
    struct EnumVocabulary<Enum> {                   \
        static constexpr const auto& names = table; \
    };

QLORA_ENUM_VOCABULARY(quant::QuantType, quant::kQuantTypeNames)
QLORA_ENUM_VOCABULARY(data::Format, data::kFormatNames)
QLORA_ENUM_VOCABULARY(data::Template, data::kTemplateNames)
QLORA_ENUM_VOCABULARY(data::OnBadRecord, data::kOnBadRecordNames)
QLORA_ENUM_VOCABULARY(optim::OptimizerKind, optim::kOptimizerKindNames)
QLORA_ENUM_VOCABULARY(optim::ScheduleKind, optim::kScheduleKindNames)
QLORA_ENUM_VOCABULARY(quant::FakeQuantWeight, quant::kFakeQuantWeightNames)
QLORA_ENUM_VOCABULARY(lora::QatActivations, lora::kQatActivationsNames)
QLORA_ENUM_VOCABULARY(lora::QatMode, lora::kQatModeNames)
QLORA_ENUM_VOCABULARY(dist::ParallelSetting, dist::kParallelSettingNames)
#undef QLORA_ENUM_VOCABULARY

template <typename E>
requires std::is_enum_v<E>
struct Codec<E> {
    static Problem read(const YAML::Node& n, E& out) {
        if (n.IsScalar()) {
            if (std::optional<E> v = EnumVocabulary<E>::names.find(n.Scalar())) {
                out = *v;
                return std::nullopt;
            }
        }
        const std::string found = n.IsScalar() ? "'" + n.Scalar() + "'" : describe_node(n);
        return "expected one of " + EnumVocabulary<E>::names.list() + ", found " + found;
    }
    static void write(YAML::Emitter& e, E v) {
        e << YAML::DoubleQuoted << EnumVocabulary<E>::names.name(v);
    }
};

// null (or "~") unsets an optional field.
template <typename T>
struct Codec<std::optional<T>> {
    static Problem read(const YAML::Node& n, std::optional<T>& out) {
        if (n.IsNull()) {
            out.reset();
            return std::nullopt;
        }
        T value{};
        if (auto p = Codec<T>::read(n, value)) return p;
        out = value;
        return std::nullopt;
    }
    static void write(YAML::Emitter& e, const std::optional<T>& v) {
        if (v) {
            Codec<T>::write(e, *v);
        } else {
            e << YAML::Null;
        }
    }
};

// get: a generic lambda returning a reference to the member, for const and mutable configs.
template <typename Get>
ConfigField make_field(std::string key, Get get) {
    using T = std::remove_cvref_t<decltype(get(std::declval<TrainConfig&>()))>;
    return ConfigField{
        std::move(key),
        [get](const YAML::Node& n, TrainConfig& c) { return Codec<T>::read(n, get(c)); },
        [get](YAML::Emitter& e, const TrainConfig& c) { Codec<T>::write(e, get(c)); }};
}

#define QLORA_FIELD(section, member, name) \
    make_field(                            \
        section "." name, [](auto& c) -> auto& { return c.member; })

std::vector<ConfigField> build_fields() {
    return {
        QLORA_FIELD("model", model.path, "path"),
        QLORA_FIELD("model", model.dtype, "dtype"),
        QLORA_FIELD("quant", quant.enabled, "enabled"),
        QLORA_FIELD("quant", quant.type, "type"),
        QLORA_FIELD("quant", quant.blocksize, "blocksize"),
        QLORA_FIELD("quant", quant.double_quant, "double_quant"),
        QLORA_FIELD("lora", lora.r, "r"),
        QLORA_FIELD("lora", lora.alpha, "alpha"),
        QLORA_FIELD("lora", lora.dropout, "dropout"),
        QLORA_FIELD("lora", lora.targets, "targets"),
        QLORA_FIELD("lora", lora.use_rslora, "use_rslora"),
        QLORA_FIELD("data", data.train, "train"),
        QLORA_FIELD("data", data.eval, "eval"),
        QLORA_FIELD("data", data.eval_split, "eval_split"),
        QLORA_FIELD("data", data.format, "format"),
        QLORA_FIELD("data", data.template_name, "template"),
        QLORA_FIELD("data", data.max_seq_len, "max_seq_len"),
        QLORA_FIELD("data", data.packing, "packing"),
        QLORA_FIELD("data", data.group_by_length, "group_by_length"),
        QLORA_FIELD("data", data.train_on_inputs, "train_on_inputs"),
        QLORA_FIELD("data", data.on_bad_record, "on_bad_record"),
        QLORA_FIELD("data", data.shuffle, "shuffle"),
        QLORA_FIELD("train", train.max_steps, "max_steps"),
        QLORA_FIELD("train", train.epochs, "epochs"),
        QLORA_FIELD("train", train.micro_batch, "micro_batch"),
        QLORA_FIELD("train", train.grad_accum, "grad_accum"),
        QLORA_FIELD("train", train.gradient_checkpointing, "gradient_checkpointing"),
        QLORA_FIELD("train", train.offload_activations, "offload_activations"),
        QLORA_FIELD("train", train.seed, "seed"),
        QLORA_FIELD("train", train.skip_nonfinite, "skip_nonfinite"),
        QLORA_FIELD("train", train.log_every, "log_every"),
        QLORA_FIELD("optim", optim.name, "name"),
        QLORA_FIELD("optim", optim.lr, "lr"),
        QLORA_FIELD("optim", optim.weight_decay, "weight_decay"),
        QLORA_FIELD("optim", optim.betas, "betas"),
        QLORA_FIELD("optim", optim.eps, "eps"),
        QLORA_FIELD("optim", optim.max_grad_norm, "max_grad_norm"),
        QLORA_FIELD("optim", optim.schedule, "schedule"),
        QLORA_FIELD("optim", optim.warmup_ratio, "warmup_ratio"),
        QLORA_FIELD("optim", optim.warmup_steps, "warmup_steps"),
        QLORA_FIELD("eval", eval.every, "every"),
        QLORA_FIELD("eval", eval.max_batches, "max_batches"),
        QLORA_FIELD("eval", eval.prompts, "prompts"),
        QLORA_FIELD("eval", eval.max_new_tokens, "max_new_tokens"),
        QLORA_FIELD("eval", eval.on_start, "on_start"),
        QLORA_FIELD("output", output.dir, "dir"),
        QLORA_FIELD("output", output.save_every, "save_every"),
        QLORA_FIELD("output", output.keep, "keep"),
        QLORA_FIELD("qat", qat.enabled, "enabled"),
        QLORA_FIELD("qat", qat.weight, "weight"),
        QLORA_FIELD("qat", qat.group_size, "group_size"),
        QLORA_FIELD("qat", qat.activations, "activations"),
        QLORA_FIELD("qat", qat.mode, "mode"),
        QLORA_FIELD("qat", qat.start_step, "start_step"),
        QLORA_FIELD("hardware", hardware.device, "device"),
        QLORA_FIELD("hardware", hardware.memory_limit_gb, "memory_limit_gb"),
        QLORA_FIELD("hardware", hardware.parallel, "parallel"),
        QLORA_FIELD("hardware", hardware.world_size, "world_size"),
        QLORA_FIELD("hardware", hardware.dist_timeout_s, "dist_timeout_s"),
    };
}

#undef QLORA_FIELD

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

}  // namespace

const std::vector<ConfigField>& config_fields() {
    static const std::vector<ConfigField> fields = build_fields();
    return fields;
}

const std::vector<std::string>& config_sections() {
    static const std::vector<std::string> sections = {
        "model", "quant", "lora", "data", "train", "optim", "eval", "output", "qat", "hardware"};
    return sections;
}

const ConfigField* find_config_field(const std::string& key) {
    for (const ConfigField& f : config_fields()) {
        if (f.key == key) return &f;
    }
    return nullptr;
}

std::string closest_key(const std::string& key, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_distance = SIZE_MAX;
    for (const std::string& c : candidates) {
        const size_t d = edit_distance(key, c);
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    // Beyond this many edits it is a different word, not a typo.
    const size_t limit = std::max<size_t>(3, key.size() / 2);
    return best_distance <= limit ? best : std::string();
}

std::string describe_node(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Null:
            return "null";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Map:
            return "a mapping";
        case YAML::NodeType::Scalar:
            return "'" + cut_middle(node.Scalar(), 80) + "'";  // a whole file may be one scalar
        default:
            return "nothing";
    }
}

}  // namespace qlora::train
