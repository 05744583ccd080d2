// Writing and reading quantized weights in the bitsandbytes / transformers 4-bit layout.
#include "io/bnb_format.h"

#include <cmath>
#include <cstring>

#include "core/device.h"
#include "core/error.h"
#include "core/json_value.h"

namespace qlora::io {
namespace {

const char* kStatePrefix = ".quant_state.bitsandbytes__";

std::string state_key(const std::string& weight_name, quant::QuantType type) {
    return weight_name + kStatePrefix + quant::quant_type_name(type);
}

at::Tensor json_bytes(const std::string& text) {
    at::Tensor t = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
    std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
    return t;
}

std::string bytes_text(const at::Tensor& t) {
    at::Tensor c = t.to(at::kByte).contiguous();
    return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
                       static_cast<size_t>(c.numel()));
}

// bitsandbytes writes str(torch.bfloat16).strip("torch."): "bfloat16", "float16", "float32".
c10::ScalarType state_dtype(const std::string& name, const std::string& where) {
    if (name == "bfloat16") return at::kBFloat16;
    if (name == "float16") return at::kHalf;
    if (name == "float32") return at::kFloat;
    QLORA_FAIL(where, ": dtype must be bfloat16, float16 or float32, found '", name, "'");
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> bnb_4bit_tensors(const quant::Quant4Tensor& t,
                                                                 const std::string& weight_name) {
    nlohmann::ordered_json state;
    state["quant_type"] = quant::quant_type_name(t.type());
    state["blocksize"] = t.blocksize();
    state["dtype"] = dtype_name(t.dtype());
    state["shape"] = t.shape();
    if (t.double_quant()) {
        state["nested_blocksize"] = bnb::kNestedBlocksize;
        state["nested_dtype"] = "float32";
        state["nested_offset"] = static_cast<double>(t.nested_offset());
    }
    std::vector<std::pair<std::string, at::Tensor>> out;
    out.emplace_back(weight_name, t.packed().cpu().reshape({-1, 1}));
    out.emplace_back(weight_name + ".absmax", t.absmax().cpu());
    out.emplace_back(weight_name + ".quant_map", t.code());
    if (t.double_quant()) {
        out.emplace_back(weight_name + ".nested_absmax", t.nested_absmax().cpu());
        out.emplace_back(weight_name + ".nested_quant_map", t.nested_code().cpu());
    }
    out.emplace_back(state_key(weight_name, t.type()), json_bytes(state.dump()));
    return out;
}

bool is_bnb_state_key(const std::string& name) {
    for (const char* suffix : {".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map"}) {
        const size_t n = std::strlen(suffix);
        if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) return true;
    }
    return name.find(kStatePrefix) != std::string::npos;
}

bool is_bnb_4bit_weight(const SafetensorsFolder& folder, const std::string& weight_name) {
    return folder.contains(state_key(weight_name, quant::QuantType::kNF4)) ||
           folder.contains(state_key(weight_name, quant::QuantType::kFP4));
}

quant::Quant4Tensor read_bnb_4bit(const SafetensorsFolder& folder, const std::string& weight_name) {
    const bool nf4 = folder.contains(state_key(weight_name, quant::QuantType::kNF4));
    QLORA_CHECK(nf4 || folder.contains(state_key(weight_name, quant::QuantType::kFP4)),
                folder.folder(), ": '", weight_name,
                "' has no quant_state.bitsandbytes__nf4 or __fp4 entry");
    const quant::QuantType key_type = nf4 ? quant::QuantType::kNF4 : quant::QuantType::kFP4;
    const std::string key = state_key(weight_name, key_type);
    const std::string where = folder.folder() + ": " + key;
    nlohmann::json state;
    try {
        state = nlohmann::json::parse(bytes_text(folder.load(key)));
    } catch (const nlohmann::json::parse_error& e) {
        QLORA_FAIL(where, ": quant_state is not valid JSON (", e.what(), ")");
    }
    QLORA_CHECK(state.is_object(), where, ": quant_state must be a JSON object, found ",
                state.type_name());
    const std::string state_where = where + ": quant_state";
    const quant::QuantType type =
        quant::parse_quant_type(json_field<std::string>(state, "quant_type", state_where));
    QLORA_CHECK(type == key_type, where, ": quant_type \"", quant::quant_type_name(type),
                "\" contradicts the key's suffix \"", quant::quant_type_name(key_type), "\"");
    const int64_t blocksize = json_field<int64_t>(state, "blocksize", state_where);
    const c10::ScalarType dtype =
        state_dtype(json_field<std::string>(state, "dtype", state_where), where);
    const std::vector<int64_t> shape =
        json_field<std::vector<int64_t>>(state, "shape", state_where);

    for (const char* part : {"", ".absmax"}) {
        QLORA_CHECK(folder.contains(weight_name + part), folder.folder(), ": quantized weight '",
                    weight_name, "' is missing its tensor '", weight_name + part, "'");
    }
    at::Tensor packed = folder.load(weight_name);
    QLORA_CHECK(packed.scalar_type() == at::kByte, where, ": packed weight must be U8, found ",
                packed.scalar_type());
    at::Tensor absmax = folder.load(weight_name + ".absmax");
    at::Tensor nested_absmax, nested_code;
    float offset = 0.0f;
    if (state.contains("nested_absmax") || state.contains("nested_offset")) {
        const std::string nested = weight_name + ".nested_absmax";
        const std::string nested_map = weight_name + ".nested_quant_map";
        QLORA_CHECK(folder.contains(nested) && folder.contains(nested_map), folder.folder(),
                    ": double-quantized weight '", weight_name, "' is missing '", nested, "' or '",
                    nested_map, "'");
        QLORA_CHECK(
            json_field<int64_t>(state, "nested_blocksize", state_where) == bnb::kNestedBlocksize,
            where, ": nested_blocksize must be 256, found ", state.at("nested_blocksize").dump());
        offset = static_cast<float>(json_field<double>(state, "nested_offset", state_where));
        nested_absmax = folder.load(nested);
        nested_code = folder.load(nested_map);
    }
    return quant::Quant4Tensor::from_parts(packed, absmax, nested_absmax, nested_code, offset,
                                           shape, dtype, type, blocksize,
                                           folder.folder() + ": " + weight_name);
}

nlohmann::ordered_json bnb_quantization_config(const quant::Quant4Options& options,
                                               c10::ScalarType compute_dtype) {
    nlohmann::ordered_json q;
    q["_load_in_4bit"] = true;
    q["_load_in_8bit"] = false;
    q["bnb_4bit_compute_dtype"] = dtype_name(compute_dtype);
    q["bnb_4bit_quant_storage"] = "uint8";
    q["bnb_4bit_quant_type"] = quant::quant_type_name(options.type);
    q["bnb_4bit_use_double_quant"] = options.double_quant;
    q["llm_int8_enable_fp32_cpu_offload"] = false;
    q["llm_int8_has_fp16_weight"] = false;
    q["llm_int8_skip_modules"] = nullptr;
    q["llm_int8_threshold"] = 6.0;
    q["load_in_4bit"] = true;
    q["load_in_8bit"] = false;
    q["quant_method"] = "bitsandbytes";
    return q;
}

quant::Quant4Options parse_bnb_quantization_config(const nlohmann::json& config,
                                                   const std::string& where) {
    QLORA_CHECK(config.is_object(), where, ": quantization_config must be an object");
    const std::string method = config.value("quant_method", std::string());
    QLORA_CHECK(method == "bitsandbytes", where,
                ": quantization_config.quant_method must be \"bitsandbytes\", found \"", method,
                "\"");
    QLORA_CHECK(config.value("load_in_4bit", false) || config.value("_load_in_4bit", false), where,
                ": only 4-bit bitsandbytes checkpoints are supported (load_in_4bit is not true)");
    quant::Quant4Options options;
    options.type = quant::parse_quant_type(config.value("bnb_4bit_quant_type", std::string("fp4")));
    options.double_quant = config.value("bnb_4bit_use_double_quant", false);
    return options;
}

}  // namespace qlora::io
