// Naming the tensor behind a non-finite loss (train/nonfinite_report.h).
#include "train/nonfinite_report.h"

#include <cmath>
#include <sstream>

#include "io/finite_check.h"

namespace qlora::train {

std::string nonfinite_step_message(const torch::nn::Module& model, int64_t step, double loss,
                                   double grad_norm) {
    std::ostringstream out;
    out << "non-finite " << (std::isfinite(loss) ? "gradient norm" : "loss") << " at step " << step
        << " (loss " << loss << ", grad_norm " << grad_norm << "); stopping without saving. ";
    if (auto name = io::first_nonfinite_tensor(model)) {
        out << "The model's tensor '" << *name
            << "' holds NaN or Inf: check the model files or the adapter";
    } else {
        out << "Lower optim.lr, or set train.skip_nonfinite: true";
    }
    return out.str();
}

}  // namespace qlora::train
