// LayerWeights: where a decoder layer's frozen base weights come from when the layer does not hold
// them itself. A sharded base (dist/sharded_base.h) keeps only this rank's slice of each
// projection and fills the layer's linears for one forward (and again for the recompute of a
// checkpointed layer in backward), then drops them: autograd nodes that captured the base keep
// their own references until their backward has run, and nothing else does.
#pragma once

#include <cstdint>

namespace qlora::model {

class DecoderLayerImpl;

class LayerWeights {
  public:
    virtual ~LayerWeights() = default;
    // Gives the layer's linears their base weights. Every rank of a sharded run calls it in the
    // same order (it may be a collective).
    virtual void acquire(DecoderLayerImpl& layer) = 0;
    // Takes them away again.
    virtual void release(DecoderLayerImpl& layer) = 0;
    // Bytes of base weights this source holds between forwards (this rank's slice).
    virtual int64_t held_nbytes() const = 0;
};

// acquire() for a scope; release() when it ends, also by an exception.
class LayerWeightsLease {
  public:
    LayerWeightsLease(LayerWeights* source, DecoderLayerImpl& layer)
        : source_(source), layer_(layer) {
        if (source_ != nullptr) source_->acquire(layer_);
    }
    ~LayerWeightsLease() {
        if (source_ != nullptr) source_->release(layer_);
    }
    LayerWeightsLease(const LayerWeightsLease&) = delete;
    LayerWeightsLease& operator=(const LayerWeightsLease&) = delete;

  private:
    LayerWeights* source_;
    DecoderLayerImpl& layer_;
};

}  // namespace qlora::model
