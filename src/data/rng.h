// The data pipeline's own RNG: splitmix64 (Steele, Lea, Flood 2014) and a Fisher-Yates shuffle on
// it, so shuffles are identical on every compiler and standard library (std::shuffle is not).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace qlora::data {

class SplitMix64 {
  public:
    explicit SplitMix64(uint64_t seed) : state_(seed) {}

    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    // Uniform in [0, n), n > 0: rejection sampling removes the modulo bias.
    uint64_t below(uint64_t n) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t x = next();
        while (x >= limit) x = next();
        return x % n;
    }

  private:
    uint64_t state_;
};

// Fisher-Yates from the back: for i = n-1 .. 1, swap v[i] with v[below(i + 1)].
template <typename T>
void shuffle_in_place(std::vector<T>& v, SplitMix64& rng) {
    for (size_t i = v.size(); i > 1; --i) {
        const size_t j = static_cast<size_t>(rng.below(i));
        std::swap(v[i - 1], v[j]);
    }
}

// The stream for one purpose and epoch: different epochs (and the eval split) never share draws.
inline SplitMix64 seeded_stream(uint64_t seed, uint64_t purpose, uint64_t epoch) {
    const uint64_t base = SplitMix64(seed ^ (purpose * 0xD1B54A32D192ED03ull)).next();
    return SplitMix64(SplitMix64(base ^ (epoch * 0x9E3779B97F4A7C15ull)).next());
}

}  // namespace qlora::data
