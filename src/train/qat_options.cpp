// qat_options: config section -> lora::QatOptions.
#include "train/qat_options.h"

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "lora/apply_lora.h"

namespace qlora::train {

lora::QatOptions qat_options(const TrainConfig& c) {
    lora::QatOptions o;
    o.scheme.weight = c.qat.weight;
    o.scheme.group_size = c.qat.group_size;
    o.scheme.nf4.type = quant::QuantType::kNF4;
    o.scheme.nf4.blocksize = c.quant.blocksize;
    o.scheme.nf4.double_quant = c.quant.double_quant;
    o.activations_int8 = c.qat.activations == lora::QatActivations::kInt8;
    o.mode = c.qat.mode;
    return o;
}

std::string describe_qat(const TrainConfig& c) {
    using quant::FakeQuantWeight;
    std::string w = quant::fake_quant_weight_name(c.qat.weight);
    if (c.qat.weight == FakeQuantWeight::kInt4) w += " group " + std::to_string(c.qat.group_size);
    if (c.qat.weight == FakeQuantWeight::kInt8) w += " per channel";
    if (c.qat.weight == FakeQuantWeight::kNF4) {
        w += " blocksize " + std::to_string(c.quant.blocksize) +
             (c.quant.double_quant ? " double quant" : "");
    }
    return w + ", activations " + lora::qat_activations_name(c.qat.activations) + ", " +
           lora::qat_mode_name(c.qat.mode) + ", from step " + std::to_string(c.qat.start_step + 1);
}

bool switch_qat(model::LlamaImpl& model, const TrainConfig& c, int64_t steps_done, bool on,
                MetricsWriter& metrics) {
    if (!c.qat.enabled || on || steps_done < c.qat.start_step) return on;
    lora::set_qat_active(model, true);
    nlohmann::ordered_json event;
    event["step"] = steps_done + 1;
    event["event"] = "qat_on";
    event["qat"] = describe_qat(c);
    metrics.event(event);
    log_info("fake quantization on from step ", steps_done + 1);
    return true;
}

}  // namespace qlora::train
