// The hf-int4 layout: codes from quant/int4_codes.h, the function fake quant uses too, so
// unpack(pack(w)) is fake_quantize_weight(w) bit for bit; test_int4_format checks it.
#include "quant/int4_format.h"

#include "core/error.h"
#include "quant/int4_codes.h"

namespace qlora::quant {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string module_of(const std::string& weight_name) {
    const std::string suffix = ".weight";
    QLORA_CHECK(weight_name.size() > suffix.size() && weight_name.ends_with(suffix),
                "int4 layout: expected a weight name ending in .weight, got '", weight_name, "'");
    return weight_name.substr(0, weight_name.size() - suffix.size());
}

std::string shape_text(const at::Tensor& t) {
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i) {
        if (i > 0) s += ", ";
        s += std::to_string(t.size(i));
    }
    return s + "]";
}

}  // namespace

Int4Packed int4_codes(const at::Tensor& w_in, int64_t group, const std::string& name) {
    QLORA_CHECK(w_in.defined() && w_in.dim() == 2 && w_in.numel() > 0, "int4 pack: ", name,
                " must be a non-empty 2-D weight [out, in], got shape ",
                w_in.defined() ? shape_text(w_in) : "none");
    QLORA_CHECK(w_in.scalar_type() == at::kFloat || w_in.scalar_type() == at::kHalf ||
                    w_in.scalar_type() == at::kBFloat16,
                "int4 pack: ", name, " must be float32/float16/bfloat16, got ",
                c10::toString(w_in.scalar_type()));
    QLORA_CHECK(group > 0, "int4 pack: group_size must be > 0, got ", group);
    at::Tensor w = w_in.to(at::kCPU, at::kFloat).contiguous();
    QLORA_CHECK(w.isfinite().all().item<bool>(), "int4 pack: ", name, " has non-finite values");
    const int64_t rows = w.size(0), cols = w.size(1);
    const Int4Groups q = int4_groups(w, group);
    const int64_t groups = q.codes.size(1);
    at::Tensor d16 = q.scale.to(at::kHalf);
    QLORA_CHECK(d16.isfinite().all().item<bool>(), "int4 pack: ", name,
                " has a group whose scale max|w|/8 overflows float16");
    Int4Packed out;
    out.qweight =
        q.codes.view({rows, groups * group}).narrow(1, 0, cols).to(at::kByte).contiguous();
    out.scales = d16.view({rows, groups}).contiguous();
    return out;
}

Int4Packed pack_int4(const at::Tensor& w, int64_t group, const std::string& name) {
    Int4Packed c = int4_codes(w, group, name);
    const int64_t rows = c.qweight.size(0), cols = c.qweight.size(1);
    const int64_t bytes = ceil_div(cols, 2);
    at::Tensor codes = at::constant_pad_nd(c.qweight, {0, 2 * bytes - cols}).view({rows, bytes, 2});
    at::Tensor low = codes.select(2, 0), high = codes.select(2, 1);
    c.qweight = at::bitwise_or(low, at::bitwise_left_shift(high, 4)).contiguous();
    return c;
}

at::Tensor unpack_int4(const at::Tensor& qweight, const at::Tensor& scales, int64_t in_features,
                       int64_t group, const std::string& name) {
    QLORA_CHECK(in_features > 0 && group > 0, "int4 unpack: ", name,
                ": in_features and group_size must be > 0, got ", in_features, " and ", group);
    QLORA_CHECK(qweight.defined() && qweight.scalar_type() == at::kByte && qweight.dim() == 2,
                "int4 tensor ", name, ".qweight: expected uint8 [out, ", ceil_div(in_features, 2),
                "], found ", qweight.defined() ? c10::toString(qweight.scalar_type()) : "none", " ",
                qweight.defined() ? shape_text(qweight) : "");
    const int64_t rows = qweight.size(0);
    const int64_t bytes = ceil_div(in_features, 2), groups = ceil_div(in_features, group);
    QLORA_CHECK(qweight.size(1) == bytes, "int4 tensor ", name, ".qweight: expected shape [", rows,
                ", ", bytes, "] (two codes per byte of in_features ", in_features, "), found ",
                shape_text(qweight));
    QLORA_CHECK(scales.defined() && scales.scalar_type() == at::kHalf && scales.dim() == 2,
                "int4 tensor ", name, ".scales: expected float16 [", rows, ", ", groups,
                "], found ", scales.defined() ? c10::toString(scales.scalar_type()) : "none", " ",
                scales.defined() ? shape_text(scales) : "");
    QLORA_CHECK(scales.size(0) == rows && scales.size(1) == groups, "int4 tensor ", name,
                ".scales: expected shape [", rows, ", ", groups, "] (one scale per group of ",
                group, " of in_features ", in_features, "), found ", shape_text(scales));
    at::Tensor q = qweight.contiguous();
    at::Tensor low = at::bitwise_and(q, 15), high = at::bitwise_right_shift(q, 4);
    at::Tensor code =
        at::stack({low, high}, 2).view({rows, 2 * bytes}).narrow(1, 0, in_features).to(at::kFloat);
    at::Tensor x = at::constant_pad_nd(code, {0, groups * group - in_features}, 8.0)
                       .view({rows, groups, group});
    at::Tensor d16 = scales.to(q.device()).to(at::kFloat).view({rows, groups, 1});
    return ((x - 8.0) * d16).view({rows, groups * group}).narrow(1, 0, in_features).contiguous();
}

std::string int4_qweight_name(const std::string& weight_name) {
    return module_of(weight_name) + ".qweight";
}
std::string int4_scales_name(const std::string& weight_name) {
    return module_of(weight_name) + ".scales";
}

std::vector<std::pair<std::string, at::Tensor>> int4_tensors(const Int4Packed& q,
                                                             const std::string& weight_name) {
    return {{int4_qweight_name(weight_name), q.qweight}, {int4_scales_name(weight_name), q.scales}};
}

nlohmann::ordered_json int4_quantization_config(int64_t group) {
    nlohmann::ordered_json c;
    c["quant_method"] = "qlora_int4";
    c["bits"] = 4;
    c["group_size"] = group;
    c["scheme"] = "symmetric_q4_0";
    c["packing"] = "low_nibble_first";
    return c;
}

bool is_int4_config(const nlohmann::json& c) {
    return c.is_object() && c.contains("quant_method") && c["quant_method"] == "qlora_int4";
}

int64_t int4_group_size(const nlohmann::json& c, const std::string& source) {
    auto field = [&](const char* key) -> const nlohmann::json& {
        QLORA_CHECK(c.contains(key), source, ": quantization_config of qlora_int4 lacks '", key,
                    "'");
        return c.at(key);
    };
    const nlohmann::json& bits = field("bits");
    QLORA_CHECK(bits.is_number_integer() && bits.get<int64_t>() == 4, source,
                ": quantization_config 'bits' expected 4, found ", bits.dump());
    const nlohmann::json& g = field("group_size");
    QLORA_CHECK(g.is_number_integer() && g.get<int64_t>() > 0, source,
                ": quantization_config 'group_size' expected a positive integer, found ", g.dump());
    if (c.contains("scheme")) {
        QLORA_CHECK(c["scheme"] == "symmetric_q4_0", source,
                    ": quantization_config 'scheme' expected \"symmetric_q4_0\", found ",
                    c["scheme"].dump());
    }
    if (c.contains("packing")) {
        QLORA_CHECK(c["packing"] == "low_nibble_first", source,
                    ": quantization_config 'packing' expected \"low_nibble_first\", found ",
                    c["packing"].dump());
    }
    return g.get<int64_t>();
}

}  // namespace qlora::quant
