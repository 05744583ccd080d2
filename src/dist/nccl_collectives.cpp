// NCCL collectives. Before each operation a rank records its sequence number in the store
// ("p/<rank>"); when a wait times out, the ranks whose record lags are the ones named as missing,
// because NCCL itself cannot tell which peer stopped.
#include "dist/nccl_collectives.h"

#include "core/error.h"

#ifdef QLORA_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace qlora::dist {

#ifdef QLORA_WITH_CUDA
namespace {

std::string first_line(const char* what) {
    std::string s(what);
    return s.substr(0, s.find('\n'));
}

class NcclCollectives final : public Collectives {
  public:
    NcclCollectives(c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                    c10::Device device, std::chrono::milliseconds timeout)
        : Collectives(rank, world_size, timeout), store_(std::move(store)), device_(device) {
        auto options = c10d::ProcessGroupNCCL::Options::create();
        options->timeout = timeout + std::chrono::seconds(30);
        try {
            pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, rank, world_size, options);
            pg_->setBoundDeviceId(device_);  // eager communicator init on our device
        } catch (const c10::Error& e) {
            QLORA_RUNTIME_CHECK(
                false, "dist: rank ", rank,
                " cannot create the NCCL process group: ", first_line(e.what_without_backtrace()));
        }
    }
    ~NcclCollectives() override {
        try {
            pg_->shutdown();
        } catch (...) {
            // Shutting down after a failed peer may throw; the process is leaving anyway.
        }
    }

    c10::Device device() const override { return device_; }
    std::string backend() const override { return "nccl"; }

    void all_reduce_sum(at::Tensor& tensor) override {
        check_device(tensor, "all_reduce");
        std::vector<at::Tensor> v{tensor};
        c10d::AllreduceOptions o;
        o.reduceOp = c10d::ReduceOp::SUM;
        o.timeout = timeout_;
        run("all_reduce", [&] { return pg_->allreduce(v, o); });
    }
    void broadcast(at::Tensor& tensor, int root) override {
        QLORA_CHECK(root >= 0 && root < world_size_, "dist: broadcast root ", root,
                    " is not a rank of ", world_size_);
        check_device(tensor, "broadcast");
        std::vector<at::Tensor> v{tensor};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        o.timeout = timeout_;
        run("broadcast", [&] { return pg_->broadcast(v, o); });
    }
    at::Tensor all_gather(const at::Tensor& tensor) override {
        check_device(tensor, "all_gather");
        at::Tensor in = tensor.contiguous();
        std::vector<int64_t> shape{world_size_};
        shape.insert(shape.end(), in.sizes().begin(), in.sizes().end());
        at::Tensor out = at::empty(shape, in.options());
        run("all_gather", [&] { return pg_->_allgather_base(out, in); });
        return out;
    }
    void barrier() override {
        c10d::BarrierOptions o;
        o.device_ids = {device_.index()};
        o.timeout = timeout_;
        run("barrier", [&] { return pg_->barrier(o); });
    }

  private:
    void check_device(const at::Tensor& t, const char* op) const {
        QLORA_CHECK(t.device() == device_ && t.is_contiguous(), "dist: NCCL ", op,
                    " takes contiguous tensors on ", device_.str(), ", got ", t.device().str());
    }

    template <typename Launch>
    void run(const char* op, Launch launch) {
        ++sequence_;
        try {
            store_->set("p/" + std::to_string(rank_), std::to_string(sequence_));
            c10::intrusive_ptr<c10d::Work> work = launch();
            if (work->wait(timeout_)) return;
        } catch (const c10::Error& e) {
            fail(op, first_line(e.what_without_backtrace()));
        }
        fail(op, "the wait returned without completion");
    }

    [[noreturn]] void fail(const char* op, const std::string& why) {
        std::vector<int> behind;
        try {
            for (int r = 0; r < world_size_; ++r) {
                const std::string key = "p/" + std::to_string(r);
                if (!store_->check({key})) {
                    behind.push_back(r);
                    continue;
                }
                std::vector<uint8_t> v = store_->get(key);
                if (std::stoll(std::string(v.begin(), v.end())) < sequence_) behind.push_back(r);
            }
        } catch (const std::exception&) {
            // The store is gone too: report what NCCL said.
        }
        QLORA_RUNTIME_CHECK(
            behind.empty(), "dist: ", rank_list(behind), " of ", world_size_, " did not reach ", op,
            " #", sequence_, " within ", timeout_.count() / 1000.0,
            " s (exited, crashed or stuck: see its log); rank ", rank_, " gives up");
        QLORA_RUNTIME_CHECK(false, "dist: rank ", rank_, ": NCCL ", op, " #", sequence_,
                            " failed: ", why);
        std::abort();  // unreachable: the check above throws
    }

    c10::intrusive_ptr<c10d::Store> store_;
    c10::Device device_;
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
    int64_t sequence_ = 0;
};

}  // namespace

std::unique_ptr<Collectives> make_nccl_collectives(c10::intrusive_ptr<c10d::Store> store, int rank,
                                                   int world_size, c10::Device device,
                                                   std::chrono::milliseconds timeout) {
    QLORA_CHECK(device.is_cuda() && device.has_index(), "dist: NCCL needs a CUDA device, got ",
                device.str());
    c10::cuda::set_device(device.index());
    return std::make_unique<NcclCollectives>(std::move(store), rank, world_size, device, timeout);
}

#else

std::unique_ptr<Collectives> make_nccl_collectives(c10::intrusive_ptr<c10d::Store>, int, int,
                                                   c10::Device, std::chrono::milliseconds) {
    QLORA_FAIL(
        "dist: the NCCL backend needs a CUDA build of qlora-cpp (this one was built without CUDA)");
}

#endif

}  // namespace qlora::dist
