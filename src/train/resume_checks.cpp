// The checkpoint file named in optimizer-state errors (train/resume_checks.h).
#include "train/resume_checks.h"

#include <c10/util/Exception.h>

#include <filesystem>

#include "core/error.h"
#include "core/error_text.h"

namespace qlora::train {

void restore_optimizer_state(optim::Optimizer& optimizer, const optim::StateDict& state,
                             const std::string& checkpoint_dir) {
    const std::string file =
        (std::filesystem::path(checkpoint_dir) / "trainer_state.safetensors").string();
    try {
        optimizer.load_state_dict(state);
    } catch (const Error& e) {
        QLORA_FAIL(file, ": malformed trainer state: ", e.what());
    } catch (const c10::Error& e) {
        QLORA_FAIL(file, ": malformed trainer state: ", first_line_cut(e.what_without_backtrace()));
    }
}

}  // namespace qlora::train
